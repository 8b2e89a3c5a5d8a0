"""The contract between a frame source (the ROS node, the CLI) and the real-time pipeline.

A consumer builds a pipeline once from :class:`PipelineOptions` through a
:data:`PipelineFactory` (``hmr_ros.pipeline.runner.build_pipeline`` in production), hands it one
:class:`Frame` at a time from a single worker thread and converts each
:class:`~hmr_ros.pipeline.results.FrameResult` back into messages or files. Settings that may
change while frames flow (docs/ros-interface.md, the [D] parameters) travel as
:class:`RuntimeSettings` through :meth:`FramePipeline.update_settings`; the consumer calls it from
the same worker thread between two frames, so a pipeline need not be thread-safe.

No ROS types here: the node, the CLI and the tests share this module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from hmr_ros.pipeline.detectors.base import Detections
from hmr_ros.pipeline.detectors.plugin import DetectorOptions
from hmr_ros.pipeline.frames import CameraIntrinsics
from hmr_ros.pipeline.results import FrameResult, ModelDescription
from hmr_ros.pipeline.smoothing import BODY_SMOOTHING, HAND_SMOOTHING, OneEuroConfig
from hmr_ros.pipeline.tracking import TrackerConfig

ADAPTER_CHOICES: tuple[str, ...] = ('auto', 'none', 'hand', 'body', 'both')
"""``model.adapters``: 'auto' loads the adapters whose checkpoint paths are set."""

DEVICE_CHOICES_HINT = "'auto', 'cpu', 'cuda' or 'cuda:<index>'"

PRECISION_CHOICES: tuple[str, ...] = ('auto', 'fp32', 'fp16', 'bf16')
"""``model.precision``: 'auto' is fp16 on CUDA and fp32 on CPU."""

BACKEND_CHOICES: tuple[str, ...] = (
    'auto',
    'eager',
    'cuda_graph',
    'compile',
    'onnxruntime',
    'tensorrt',
)
"""``model.backend`` (hmr_ros.pipeline.backends): 'auto' is the best available, logged."""
WRIST_SOURCE_CHOICES: tuple[str, ...] = ('hand', 'body', 'blend')
"""``model.wrist_source``: models.fusion.WRIST_SOURCES, listed here without importing torch."""
DEFAULT_WRIST_SOURCE = 'body'
"""models.fusion.DEFAULT_WRIST_SOURCE (a test keeps the two equal)."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded camera image with everything the pipeline needs to place people in 3D.

    Attributes:
        image_rgb: ``(H, W, 3)`` ``uint8`` RGB; may be a read-only view of the message buffer,
            so copy before writing.
        intrinsics: Pinhole intrinsics of this image (its size equals ``image_rgb``'s).
        stamp_s: Acquisition time from the image header, seconds (ROS time; sim time with bags).
        frame_id: Camera optical frame of the image (never empty).
        received_monotonic_s: ``time.monotonic()`` when the image arrived, for processing-time
            and latency statistics.
    """

    image_rgb: np.ndarray
    intrinsics: CameraIntrinsics
    stamp_s: float
    frame_id: str
    received_monotonic_s: float

    def __post_init__(self) -> None:
        image = self.image_rgb
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f'Frame.image_rgb must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}'
            )
        if not self.frame_id:
            raise ValueError('Frame.frame_id must name the camera optical frame, got an empty one')
        if not math.isfinite(self.stamp_s):
            raise ValueError(f'Frame.stamp_s must be finite, got {self.stamp_s}')


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """Which networks and files to load (read once, when the pipeline is built).

    Attributes:
        whole_body_variant: Body model variant the file must hold (models/registry.py:
            ``smplerx_h32``, ``fastmetro_s_r50`` ...), or 'auto': whatever the file holds.
        hand_variant: Hand model variant the file must hold (``hamer`` ...), or 'auto'.
        whole_body_checkpoint: Whole-body checkpoint file (official or project format).
        hand_checkpoint: Hand expert checkpoint file.
        hand_adapter_checkpoint: Hand adapter file (body guides hands), '' for none.
        body_adapter_checkpoint: Body adapter file (hands refine the body), '' for none.
        body_model_dir: Folder with SMPLX_NEUTRAL.npz and the MANO files.
        adapters: One of :data:`ADAPTER_CHOICES`.
        device: 'auto', 'cpu', 'cuda' or 'cuda:<index>'.
        precision: One of :data:`PRECISION_CHOICES`.
        use_test_assets: Build on generated stand-in weights and body models instead of the
            files above; outputs are meaningless and every consumer must say so loudly.
        backend: One of :data:`BACKEND_CHOICES` (hmr_ros.pipeline.backends).
        engine_cache_dir: TensorRT engines and exported ONNX graphs; '' is
            ``~/.cache/hmr_ros/engines``.
        rebuild_engines: Rebuild cached TensorRT engines and ONNX graphs.
        compile_cache_dir: Inductor's cache of the ``compile`` backend; '' is
            ``~/.cache/hmr_ros/inductor``.
        wrist_source: One of :data:`WRIST_SOURCE_CHOICES` (DualPathConfig.wrist_source).
    """

    whole_body_variant: str = 'auto'
    hand_variant: str = 'auto'
    whole_body_checkpoint: str = ''
    hand_checkpoint: str = ''
    hand_adapter_checkpoint: str = ''
    body_adapter_checkpoint: str = ''
    body_model_dir: str = ''
    adapters: str = 'auto'
    device: str = 'auto'
    precision: str = 'auto'
    use_test_assets: bool = False
    backend: str = 'auto'
    engine_cache_dir: str = ''
    rebuild_engines: bool = False
    compile_cache_dir: str = ''
    wrist_source: str = DEFAULT_WRIST_SOURCE

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_CHOICES:
            raise ValueError(
                f'backend {self.backend!r} is not valid; choose one of '
                f'{", ".join(BACKEND_CHOICES)}'
            )
        if self.wrist_source not in WRIST_SOURCE_CHOICES:
            raise ValueError(
                f'wrist_source {self.wrist_source!r} is not valid; choose one of '
                f'{", ".join(WRIST_SOURCE_CHOICES)}'
            )
        if self.adapters not in ADAPTER_CHOICES:
            raise ValueError(
                f'adapters {self.adapters!r} is not valid; choose one of '
                f'{", ".join(ADAPTER_CHOICES)}'
            )
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(
                f'precision {self.precision!r} is not valid; choose one of '
                f'{", ".join(PRECISION_CHOICES)}'
            )
        if not is_device_name(self.device):
            raise ValueError(f'device {self.device!r} is not valid; use {DEVICE_CHOICES_HINT}')


def is_device_name(device: str) -> bool:
    """Whether ``device`` is 'auto', 'cpu', 'cuda' or 'cuda:<index>' (no torch import)."""
    if device in ('auto', 'cpu', 'cuda'):
        return True
    prefix, _, index = device.partition(':')
    return prefix == 'cuda' and index.isdigit()


HAND_ROOT_SOURCES: tuple[str, ...] = ('mesh', 'registered')
"""Published hand roots: the mesh's wrists or the registered ones (pipeline/hand_roots.py)."""


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """Settings the pipeline must accept between frames (the dynamic parameters).

    Attributes:
        tracking: Tracker settings (``tracking.*``).
        smoothing_enable: Apply One-Euro smoothing to the outputs.
        body_smoothing: One-Euro settings of body outputs (``smoothing.body.*``).
        hand_smoothing: One-Euro settings of hand outputs (``smoothing.hands.*``).
        person_threshold: Smallest person detection score kept, 0..1.
        min_box_px: Smallest person box side kept, pixels.
        min_hand_confidence: Hands below it are reported ``valid=False``, 0..1.
        publish_vertices: Fill ``PersonResult.vertices_m`` (costly; off by default).
        hand_root: Hand roots published: 'mesh' or 'registered' (pipeline/hand_roots.py).
    """

    tracking: TrackerConfig = TrackerConfig()
    smoothing_enable: bool = True
    body_smoothing: OneEuroConfig = BODY_SMOOTHING
    hand_smoothing: OneEuroConfig = HAND_SMOOTHING
    person_threshold: float = 0.5
    min_box_px: float = 48.0
    min_hand_confidence: float = 0.5
    publish_vertices: bool = False
    hand_root: str = 'mesh'

    def __post_init__(self) -> None:
        if self.hand_root not in HAND_ROOT_SOURCES:
            raise ValueError(
                f'hand_root must be one of {HAND_ROOT_SOURCES}, got {self.hand_root!r}'
            )
        for name in ('person_threshold', 'min_hand_confidence'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        if not (math.isfinite(self.min_box_px) and self.min_box_px >= 0.0):
            raise ValueError(f'min_box_px must be a finite number >= 0, got {self.min_box_px}')


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """Everything needed to build a pipeline.

    Attributes:
        model: Networks and files.
        max_persons: Most persons processed per image.
        estimate_hands: Run the hand expert (False: body path only; hands come from SMPL-X).
        tracking_enable: Track persons across frames (False: every detection is a new id).
        settings: Initial runtime settings.
        detector_plugin: A person detector (``detection.plugin``): 'onnx' or 'torchvision'
            (shipped, on ``detector.weights``) or ``'package.module:factory'``, loaded with
            :func:`hmr_ros.pipeline.detectors.plugin.load_configured_detector`; '' uses the
            built-in single-operator front-end.
        detector: Settings of that detector (file, format, class).
    """

    model: ModelOptions = ModelOptions()
    max_persons: int = 4
    estimate_hands: bool = True
    tracking_enable: bool = True
    settings: RuntimeSettings = RuntimeSettings()
    detector_plugin: str = ''
    detector: DetectorOptions = DetectorOptions()

    def __post_init__(self) -> None:
        if self.max_persons < 1:
            raise ValueError(f'max_persons must be at least 1, got {self.max_persons}')


class FramePipeline(Protocol):
    """What the node and the CLI need from a pipeline; ``runner.py`` provides the real one.

    A pipeline may also offer ``prefetch(frame)``, callable from the image callback's thread,
    to start moving a frame to the device while ``process`` still runs the previous one; the
    node calls it when present.
    """

    def describe(self) -> ModelDescription:
        """Static facts about the loaded model (ModelInfo and MeshTopology)."""
        ...

    def process(self, frame: Frame, detections: Detections | None = None) -> FrameResult:
        """Estimate every person in one frame; called from one worker thread.

        Args:
            frame: The decoded image with its intrinsics, stamp and frame.
            detections: Person boxes from outside (the node's external ``detections`` input);
                an empty :class:`Detections` means nobody is in the image. None lets the
                pipeline find the persons itself (its detector or the built-in front-end).

        Raises:
            Exception: Any failure for this frame; the caller logs it, counts it and goes on
                with the next frame.
        """
        ...

    def update_settings(self, settings: RuntimeSettings) -> None:
        """Use new runtime settings from the next frame on (same thread as ``process``)."""
        ...

    def reset_tracking(self) -> None:
        """Drop every track and filter state (same thread as ``process``)."""
        ...

    def close(self) -> None:
        """Release models and device memory; the pipeline is not used afterwards."""
        ...


PipelineFactory = Callable[[PipelineOptions], FramePipeline]
"""Builds a pipeline; raises an exception whose message names the missing file or parameter."""
