"""What every inference backend provides, and the options that configure one.

A backend runs :class:`~hmr_ros.models.dual_path.DualPathModel` on one frame's person boxes and
returns its :class:`~hmr_ros.models.dual_path.DualPathOutput` on the model's device. Backends with
static shapes (graph capture, compilation, ONNX Runtime, TensorRT) run a fixed person count, the
*bucket* (1, 2, 4 ... and ``max_persons``, hmr_ros.pipeline.buckets): they pad the boxes to the
bucket and return one row per bucket slot; the caller copies the whole output to the host once
and drops the rows past the real boxes there (``PipelineRunner`` does). The eager backend runs
exactly the boxes it gets, so CPU outputs stay what they were before backends existed.

Nothing here imports optional packages; each backend module imports its own inside functions.
"""

from __future__ import annotations

import abc
import dataclasses
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch import Tensor

from hmr_ros.models.dual_path import DualPathModel, DualPathOutput
from hmr_ros.pipeline.buckets import bucket_size, pad_persons, person_buckets


class BackendUnavailableError(RuntimeError):
    """A backend cannot run here; the message says why and what to choose instead."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hmr_ros`` (``~/.cache/hmr_ros``): engines and compiler caches."""
    import os

    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'hmr_ros'


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    """How a backend is configured (``model.*`` parameters of the node, flags of the CLI).

    Attributes:
        max_persons: Most persons per frame, the largest person bucket.
        engine_cache_dir: Folder of TensorRT engines and exported ONNX graphs; '' is
            ``default_cache_dir() / 'engines'``.
        rebuild_engines: Rebuild TensorRT engines even when a valid cached one exists.
        compile_cache_dir: Inductor's cache folder for the ``compile`` backend; '' is
            ``default_cache_dir() / 'inductor'``.
        model_digest: SHA-256 (hex) identifying the weights (from the checkpoint files' hashes);
            '' lets the backend hash the state dict itself. Part of every engine's cache key.
    """

    max_persons: int = 4
    engine_cache_dir: str = ''
    rebuild_engines: bool = False
    compile_cache_dir: str = ''
    model_digest: str = ''

    def __post_init__(self) -> None:
        if self.max_persons < 1:
            raise ValueError(f'max_persons must be at least 1, got {self.max_persons}')

    @property
    def engine_dir(self) -> Path:
        """Where engines and exported graphs are cached."""
        return (
            Path(self.engine_cache_dir)
            if self.engine_cache_dir
            else default_cache_dir() / 'engines'
        )

    @property
    def inductor_dir(self) -> Path:
        """Inductor's cache folder."""
        return (
            Path(self.compile_cache_dir)
            if self.compile_cache_dir
            else default_cache_dir() / 'inductor'
        )


def pad_to_bucket(
    boxes_xyxy: Tensor, batch_index: Tensor, buckets: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """Boxes and image indices padded to their bucket (hmr_ros.pipeline.buckets)."""
    padded = pad_persons(boxes_xyxy, batch_index, bucket_size(boxes_xyxy.shape[0], buckets))
    return padded.boxes_xyxy, padded.batch_index


def autocast_for(device: torch.device, precision: torch.dtype) -> AbstractContextManager[object]:
    """Autocast in ``precision`` on ``device``; no autocast for fp32."""
    if precision == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=precision)


class InferenceBackend(abc.ABC):
    """Runs the dual path; built by :func:`hmr_ros.pipeline.backends.create_backend`.

    Attributes:
        name: The backend's registry name ('eager', 'cuda_graph' ...), reported in ModelInfo.
        static_shapes: Whether ``run`` pads to person buckets (outputs have bucket rows).
    """

    name: str = ''
    static_shapes: bool = False

    def __init__(
        self,
        model: DualPathModel,
        device: torch.device,
        precision: torch.dtype,
        options: BackendOptions,
    ) -> None:
        self.model = model
        self.device = device
        self.precision = precision
        self.options = options
        self.buckets = person_buckets(options.max_persons)

    def prepare(self, image_hw: tuple[int, int] | None = None) -> None:  # noqa: B027
        """Build, compile or capture ahead of the first frame (configure time).

        Args:
            image_hw: the camera's image size where known (graph capture needs it); backends
                that need it and do not get it prepare on the first frame of a new size.
        """

    @abc.abstractmethod
    def run(
        self, images: Tensor, boxes_xyxy: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> DualPathOutput:
        """The dual path's output for the boxes (see DualPathModel.forward for shapes).

        Static-shape backends return ``bucket_size(P)`` rows; rows past P are padding.
        """

    def describe(self) -> str:
        """One line for logs and diagnostics."""
        return self.name

    def close(self) -> None:  # noqa: B027
        """Release engines, sessions and captured graphs."""
