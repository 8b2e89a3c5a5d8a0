"""The real-time pipeline: one camera frame in, every person's SMPL-X body, hands and track out.

:func:`build_pipeline` turns :class:`~hmr_ros.pipeline.protocol.PipelineOptions` into a
:class:`PipelineRunner`, the production :class:`~hmr_ros.pipeline.protocol.FramePipeline` that the
ROS node and the offline tools drive. One frame goes through these stages (their wall times are
reported in ``FrameResult.stage_times_ms``):

1. ``detect``: person boxes from the configured source: a person detector
   (:class:`~hmr_ros.pipeline.detectors.base.PersonDetector`), boxes passed in by the caller, or
   the built-in front-end (whole image for one operator, then the previous frame's person box).
   Every person the pipeline reports passes ``detection.person_threshold`` on a presence score:
   the detector's, or for the built-in front-end the whole-body model's ``person_score``
   (docs/teleoperation.md), applied after the model and before tracking.
2. ``upload``: the RGB image to the model's device as float [0, 1] (a pinned staging buffer and
   an asynchronous copy on a side stream on CUDA; crops and resizing then happen on the device,
   inside the dual path).
3. ``model``: the dual path (:class:`~hmr_ros.models.dual_path.DualPathModel`) for all boxes at
   once, run by the ``model.backend`` inference backend (hmr_ros.pipeline.backends), under
   autocast in fp16/bf16 on CUDA; static-shape backends pad the boxes to a person bucket.
   Results come back to the host in one non-blocking copy into pinned memory; padding rows are
   dropped after it.
4. ``track``: boxes to persistent track ids (:class:`~hmr_ros.pipeline.tracking.BoxTracker`);
   people briefly missed are reported ``PREDICTED`` with their last estimate, then ``LOST`` once.
5. ``smooth``: One-Euro filtering per track of what consumers read as positions and frames
   (joints, 2D keypoints, vertices, root and wrist positions and rotations, hand keypoints).
   SMPL-X pose parameters are passed through unfiltered: filtering local axis-angle rotations
   independently would not keep them consistent with the filtered joints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import numpy as np
import torch

import hmr_ros
from hmr_ros.body_models.joint_names import (
    MEDIAPIPE_HAND_LANDMARK_NAMES,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
    smplx_hand_to_openpose,
    smplx_output_joint_names,
)
from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.models.alternatives.cmr_hand import CmrHandExpert
from hmr_ros.models.devices import PRECISION_NAMES, resolve_device, resolve_precision
from hmr_ros.models.dual_path import (
    AdapterRequest,
    DualPathConfig,
    DualPathModel,
    DualPathOutput,
)
from hmr_ros.models.dual_path_builder import DualPathBuild, build_dual_path
from hmr_ros.models.fusion import WristSource
from hmr_ros.models.hand_expert import HandExpert, build_hand_expert
from hmr_ros.models.registry import model_entry
from hmr_ros.models.whole_body import build_whole_body
from hmr_ros.pipeline.backends import BackendOptions, InferenceBackend, create_backend
from hmr_ros.pipeline.detectors.base import Detections, PersonDetector
from hmr_ros.pipeline.detectors.follow import FollowFrontEnd, points_in_image
from hmr_ros.pipeline.detectors.plugin import (
    BUILT_IN_DETECTORS,
    DetectorOptions,
    load_configured_detector,
)
from hmr_ros.pipeline.hand_roots import with_hand_roots
from hmr_ros.pipeline.protocol import Frame, PipelineOptions, RuntimeSettings
from hmr_ros.pipeline.rectification import Rectification, Rectifier
from hmr_ros.pipeline.results import FrameResult, HandResult, ModelDescription, PersonResult
from hmr_ros.pipeline.smoothing import PersonSmoother
from hmr_ros.pipeline.tracking import BoxTracker, Track, TrackState

logger = logging.getLogger(__name__)

FINGERTIP_ORDER = ('thumb', 'index', 'middle', 'ring', 'pinky')
"""Fingertips as `smplx` names its vertex joints (``left_thumb`` ...), anatomical order."""

PUBLISHED_JOINT_NAMES: tuple[str, ...] = SMPLX_JOINT_NAMES + tuple(
    f'{side}_{finger}' for side in ('left', 'right') for finger in FINGERTIP_ORDER
)
"""Rows of PersonResult.joints_m: the 55 SMPL-X kinematic joints, then the 10 fingertips."""

PUBLISHED_JOINT_PARENTS: tuple[int, ...] = tuple(SMPLX_PARENTS) + tuple(
    SMPLX_JOINT_NAMES.index(f'{side}_{finger}3')
    for side in ('left', 'right')
    for finger in FINGERTIP_ORDER
)
"""Parent of each published joint: the kinematic parent; a fingertip's is its distal joint."""

HAND_KEYPOINT_ROWS: dict[str, list[int]] = {
    side: [PUBLISHED_JOINT_NAMES.index(name) for name in smplx_hand_to_openpose(side)]
    for side in ('left', 'right')
}
"""Rows of the published joints holding each hand's 21 keypoints, MediaPipe/OpenPose order."""

PREFETCH_BUDGET_BYTES = 2 * 3840 * 2160 * 3 * 4
"""Float copies the uploader may hold ahead of use: two 4K UHD frames (about 200 MB)."""

TEST_ASSET_VARIANTS = ('smplerx_tiny', 'hamer_tiny')
"""Variants built (randomly initialised) when ``model.use_test_assets`` is set."""


class PipelineConfigurationError(ValueError):
    """The options cannot build a pipeline; the message names the parameter and the fix."""


@dataclasses.dataclass(frozen=True)
class _PersonEstimate:
    """One person's numbers from the model, host memory, before tracking and smoothing."""

    values: dict[str, np.ndarray]


@dataclasses.dataclass
class _StagingSlot:
    """One reusable set of upload buffers (CUDA): pinned host copy, device uint8, device float.

    ``free`` is the copy's event while the frame waits, then an event recorded on the compute
    stream once the frame that used the slot is queued (at the next upload); the slot is reused
    only after that event has passed, checked with a non-blocking ``query``.
    """

    pinned: torch.Tensor
    device_uint8: torch.Tensor
    device_float: torch.Tensor
    free: torch.cuda.Event | None = None


class FrameUploader:
    """Moves RGB images to the model's device as (1, 3, H, W) float [0, 1], ahead of use.

    ``prefetch`` may be called from another thread (the node's image callback, the ROS executor
    thread) as soon as a frame arrives. On CUDA it never waits for the GPU: the image is copied
    (a host memcpy) into a pinned buffer of a reused staging slot, and the host-to-device copy
    and the uint8 -> float conversion are queued on a side stream, so frame N+1 crosses the bus
    while the compute stream runs frame N. Slots are allocated once per image size; a slot is
    reused only when a non-blocking event query says the GPU is done with it, and when none is
    free the prefetch is skipped (counted) rather than waited for. ``upload`` (the worker
    thread) takes the prefetched tensor and makes the compute stream wait for that copy only; a
    frame that was never prefetched is uploaded on the spot. On CPU the same split moves the
    conversion off the worker thread.

    At most ``capacity`` prefetched frames are kept (the newest); older ones were dropped by the
    one-slot hand-off anyway. Their float copies (4 bytes per channel) together stay within
    ``max_prefetch_bytes``: a frame too large for it is not prefetched but uploaded when used, so
    a huge image costs one float copy, not one per prefetch slot (a 64 MB image raised the
    node's memory by about 1 GB).
    """

    def __init__(
        self,
        device: torch.device,
        capacity: int = 2,
        max_prefetch_bytes: int = PREFETCH_BUDGET_BYTES,
    ) -> None:
        self._device = device
        self._capacity = capacity
        self._max_prefetch_bytes = max_prefetch_bytes
        self._lock = threading.Lock()
        # (image array, device tensor, copy-done event or None, staging slot or None).
        self._ready: list[
            tuple[np.ndarray, torch.Tensor, torch.cuda.Event | None, _StagingSlot | None]
        ] = []
        self._stream = torch.cuda.Stream(device) if device.type == 'cuda' else None
        self._slots: list[_StagingSlot] = []
        self._in_use: _StagingSlot | None = None
        self.prefetch_hits = 0
        self.prefetch_misses = 0
        self.prefetch_skipped = 0

    def prefetch(self, image_rgb: np.ndarray) -> None:
        """Start moving one image to the device (any thread; never waits for the GPU).

        An image whose float copy exceeds the prefetch budget is left for ``upload``.
        """
        float_bytes = image_rgb.size * 4
        if float_bytes > self._max_prefetch_bytes:
            return
        if self._stream is None:
            tensor, event, slot = *self._start(image_rgb), None
        else:
            staged = self._start_staged(image_rgb)
            if staged is None:
                self.prefetch_skipped += 1
                return
            tensor, event, slot = staged
        with self._lock:
            self._ready.append((image_rgb, tensor, event, slot))
            del self._ready[: -self._capacity]
            while sum(entry[1].nbytes for entry in self._ready) > self._max_prefetch_bytes:
                del self._ready[0]

    def upload(self, image_rgb: np.ndarray) -> torch.Tensor:
        """The image on the device, ready for the compute stream (worker thread)."""
        with self._lock:
            found = next((i for i, entry in enumerate(self._ready) if entry[0] is image_rgb), None)
            entry = self._ready.pop(found) if found is not None else None
            previous, self._in_use = self._in_use, entry[3] if entry is not None else None
        if previous is not None:
            # Everything the previous frame does with its slot is queued by now.
            previous.free = torch.cuda.Event()
            previous.free.record(torch.cuda.current_stream(self._device))
        if entry is None:
            self.prefetch_misses += 1
            tensor, event = self._start(image_rgb)
        else:
            self.prefetch_hits += 1
            _, tensor, event, _ = entry
        if event is not None:
            compute = torch.cuda.current_stream(self._device)
            compute.wait_event(event)
            tensor.record_stream(compute)
        return tensor

    def _start(self, image_rgb: np.ndarray) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        host = torch.from_numpy(np.ascontiguousarray(image_rgb))
        if self._stream is None:
            return host.permute(2, 0, 1).unsqueeze(0).float().div_(255.0), None
        pinned = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
        pinned.copy_(host)
        with torch.cuda.stream(self._stream):
            on_device = pinned.to(self._device, non_blocking=True)
            tensor = on_device.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            event = torch.cuda.Event()
            event.record(self._stream)
        return tensor, event

    def _start_staged(
        self, image_rgb: np.ndarray
    ) -> tuple[torch.Tensor, torch.cuda.Event, _StagingSlot] | None:
        """Queue the copy through a free staging slot; None when every slot is still busy."""
        assert self._stream is not None
        slot = self._free_slot(image_rgb.shape)
        if slot is None:
            return None
        slot.pinned.numpy()[...] = image_rgb  # host memcpy into page-locked memory
        with torch.cuda.stream(self._stream):
            slot.device_uint8.copy_(slot.pinned, non_blocking=True)
            torch.div(slot.device_uint8.permute(2, 0, 1)[None], 255.0, out=slot.device_float)
            event = torch.cuda.Event()
            event.record(self._stream)
        # Until the worker takes it, the slot is free again once its copy is done (a frame
        # evicted unread); upload() replaces this with the compute stream's event.
        slot.free = event
        return slot.device_float, event, slot

    def _free_slot(self, shape: tuple[int, ...]) -> _StagingSlot | None:
        with self._lock:
            busy = {id(entry[3]) for entry in self._ready} | {id(self._in_use)}
            for slot in self._slots:
                if tuple(slot.pinned.shape) != shape or id(slot) in busy:
                    continue
                if slot.free is None or slot.free.query():
                    return slot
            self._slots = [s for s in self._slots if tuple(s.pinned.shape) == shape]
            if len(self._slots) >= self._capacity + 2:
                return None
            height, width = shape[0], shape[1]
            slot = _StagingSlot(
                pinned=torch.empty(shape, dtype=torch.uint8, pin_memory=True),
                device_uint8=torch.empty(shape, dtype=torch.uint8, device=self._device),
                device_float=torch.empty(
                    (1, 3, height, width), dtype=torch.float32, device=self._device
                ),
            )
            self._slots.append(slot)
            return slot


class PipelineRunner:
    """Detection, dual path, tracking and smoothing for a stream of frames (one thread).

    Args:
        model: the dual-path system in eval mode, on ``device``.
        description: static facts for ModelInfo/MeshTopology.
        options: the pipeline options it was built from.
        device: where the model runs.
        precision: autocast dtype on CUDA (float32: no autocast).
        detector: a person detector; None uses the built-in front-end for one operator.
        backend: runs the model (hmr_ros.pipeline.backends); None runs it eagerly.
    """

    def __init__(
        self,
        model: DualPathModel,
        description: ModelDescription,
        options: PipelineOptions,
        device: torch.device,
        precision: torch.dtype,
        detector: PersonDetector | None = None,
        backend: InferenceBackend | None = None,
    ) -> None:
        self._model = model
        if backend is None:
            from hmr_ros.pipeline.backends.eager import EagerBackend

            backend = EagerBackend(model, device, precision, BackendOptions())
        self._backend = backend
        self._host_staging = HostStaging(device)
        self._description = description
        self._options = options
        self._device = device
        self._precision = precision
        self._detector = detector
        self._follow = FollowFrontEnd()
        self._uploader = FrameUploader(device)
        self._rectifier = Rectifier()
        self._settings = options.settings
        self._tracker = BoxTracker(self._settings.tracking)
        self._smoother = PersonSmoother(
            self._settings.body_smoothing, self._settings.hand_smoothing, HAND_KEYPOINT_ROWS
        )
        self._last_estimates: dict[str, _PersonEstimate] = {}
        self._frame_index = 0

    # ------------------------------------------------------------------ FramePipeline protocol
    def describe(self) -> ModelDescription:
        """Static facts about the loaded model."""
        return self._description

    def update_settings(self, settings: RuntimeSettings) -> None:
        """New dynamic settings, in effect from the next frame; filter and track state kept."""
        self._settings = settings
        self._tracker.set_config(settings.tracking)
        self._smoother.set_configs(settings.body_smoothing, settings.hand_smoothing)

    def reset_tracking(self) -> None:
        """Forget every track, filter and the followed person."""
        self._tracker.reset()
        self._smoother.reset()
        self._follow.reset()
        self._last_estimates.clear()

    def close(self) -> None:
        """Release the backend and the model (and their device memory)."""
        self._backend.close()
        self._model.cpu()
        if self._device.type == 'cuda':
            torch.cuda.empty_cache()

    def prefetch(self, frame: Frame) -> None:
        """Start moving a just-arrived frame to the device; safe from another thread.

        The node calls this from its image callback, so the copy of frame N+1 overlaps the
        inference of frame N; ``process`` then finds the frame already on the device.
        """
        self._uploader.prefetch(frame.image_rgb)

    def process(self, frame: Frame, detections: Detections | None = None) -> FrameResult:
        """Estimate every person in one frame.

        Args:
            frame: the decoded image, its intrinsics, stamp and frame.
            detections: person boxes from outside (e.g. an external detector topic); None uses
                the configured detector or the built-in front-end.

        Returns:
            The frame's result, stamped with the image's stamp and frame.
        """
        times: dict[str, float] = {}
        image_hw = frame.image_rgb.shape[:2]
        with _timed(times, 'detect'):
            boxes = self._person_boxes(frame, detections)
        estimates: list[_PersonEstimate] = []
        if len(boxes):
            # Raw images with a distortion D are rectified (same K) before the models see them;
            # boxes go in and pixel outputs come out in the raw image (pipeline/rectification).
            rectification = self._rectifier.for_intrinsics(frame.intrinsics)
            model_boxes = boxes.boxes_px
            with _timed(times, 'upload'):
                image = self._uploader.upload(frame.image_rgb)
                intrinsics = torch.as_tensor(
                    frame.intrinsics.k_matrix, dtype=torch.float32, device=self._device
                )[None]
                if rectification is not None:
                    image = rectification.rectify(image)
                    model_boxes = rectification.undistort_boxes(model_boxes)
            with _timed(times, 'model'):
                estimates = self._run_model(image, model_boxes, intrinsics)
            if rectification is not None:
                estimates = [_in_raw_image(estimate, rectification) for estimate in estimates]
        following = self._detector is None and detections is None
        if following:
            # The whole image (or last frame's region) is where we looked, not the person's box:
            # track the box around the joints the model found.
            boxes = _keypoint_boxes(boxes, estimates, image_hw)
        boxes, estimates = self._present_persons(boxes, estimates, following)
        with _timed(times, 'track'):
            tracks = self._track(boxes, frame.stamp_s, following, estimates)
        with _timed(times, 'smooth'):
            persons = self._persons(tracks, estimates, frame.stamp_s)
        if following:
            self._follow_operator(persons, image_hw)
        self._frame_index += 1
        return FrameResult(
            stamp_s=frame.stamp_s,
            frame_id=frame.frame_id,
            frame_index=self._frame_index,
            persons=tuple(persons),
            stage_times_ms=times,
        )

    # ------------------------------------------------------------------ stages
    def _person_boxes(self, frame: Frame, detections: Detections | None) -> Detections:
        settings = self._settings
        if detections is None and self._detector is not None:
            detections = self._detector.detect(frame.image_rgb, frame.stamp_s)
        if detections is None:
            return self._follow.propose(frame.image_rgb.shape[:2])
        return detections.filtered(
            settings.person_threshold, settings.min_box_px, self._options.max_persons
        )

    def _run_model(
        self, image: torch.Tensor, boxes_px: np.ndarray, intrinsics: torch.Tensor
    ) -> list[_PersonEstimate]:
        boxes = torch.as_tensor(boxes_px, dtype=torch.float32, device=self._device)
        batch_index = torch.zeros(len(boxes), dtype=torch.long, device=self._device)
        # Static-shape backends return bucket rows; the rows past len(boxes) are padding and
        # are dropped below, after the single device-to-host copy.
        output = self._backend.run(image, boxes, batch_index, intrinsics)
        with torch.inference_mode():
            output = with_hand_roots(output, self._settings.hand_root)
        host = _to_host(output, self._settings.publish_vertices, self._host_staging)
        return [
            _PersonEstimate({name: value[p] for name, value in host.items()})
            for p in range(len(boxes))
        ]

    def _present_persons(
        self, boxes: Detections, estimates: list[_PersonEstimate], following: bool
    ) -> tuple[Detections, list[_PersonEstimate]]:
        """The boxes (and their estimates) whose presence score passes person_threshold.

        The presence score is the detector's where boxes come from a detector or from outside
        (already filtered in ``_person_boxes``); with the built-in front-end, whose proposals
        are only regions to look at, it is the whole-body model's ``person_score``.
        """
        if not estimates:
            return boxes, estimates
        settings = self._settings
        min_box_px = settings.min_box_px
        if following:
            scores = np.array([e.values['person_score'] for e in estimates], np.float32)
            boxes = Detections(boxes.boxes_px, scores.reshape(-1))
            # A box around the joints is no detection box: the front-end judges its size.
            min_box_px = 0.0
        keep = boxes.kept_indices(settings.person_threshold, min_box_px, self._options.max_persons)
        return (
            Detections(boxes.boxes_px[keep], boxes.scores[keep]),
            [estimates[i] for i in keep],
        )

    def _track(
        self,
        boxes: Detections,
        stamp_s: float,
        following: bool,
        estimates: list[_PersonEstimate],
    ) -> tuple[Track, ...]:
        if self._options.tracking_enable:
            roots = np.array([e.values['root_position'] for e in estimates], np.float64)
            return self._tracker.update(
                boxes.boxes_px,
                boxes.scores,
                stamp_s,
                single_person=following,
                positions_m=roots.reshape(-1, 3),
            )
        tracks = []
        for index, (box, score) in enumerate(zip(boxes.boxes_px, boxes.scores, strict=True)):
            tracks.append(
                Track(
                    id=self._tracker.new_id(),
                    state=TrackState.TRACKED,
                    box_px=tuple(float(v) for v in box),  # type: ignore[arg-type]
                    score=float(score),
                    age_frames=1,
                    hits=1,
                    last_seen_s=stamp_s,
                    velocity_px_s=(0.0, 0.0, 0.0, 0.0),
                    detection_index=index,
                )
            )
        return tuple(tracks)

    def _persons(
        self, tracks: tuple[Track, ...], estimates: list[_PersonEstimate], stamp_s: float
    ) -> list[PersonResult]:
        self._smoother.sync_tracks(tracks)
        reported: list[tuple[Track, dict[str, np.ndarray]]] = []
        for track in tracks:
            if track.detection_index is not None:
                self._last_estimates[track.id] = estimates[track.detection_index]
            estimate = self._last_estimates.get(track.id)
            if estimate is None:
                continue  # coasting before any estimate: not possible with BoxTracker
            if track.state == TrackState.LOST:
                self._last_estimates.pop(track.id, None)
            reported.append((track, estimate.values))
        if self._settings.smoothing_enable:
            # One vectorised One-Euro update for every person still tracked (smoothing.py).
            smoothed = [(t, v) for t, v in reported if t.state != TrackState.LOST]
            filtered = self._smoother.smooth(
                [t.id for t, _ in smoothed], [v for _, v in smoothed], stamp_s
            )
            by_id = {t.id: values for (t, _), values in zip(smoothed, filtered, strict=True)}
            reported = [(t, by_id.get(t.id, v)) for t, v in reported]
        return [self._person_result(track, values) for track, values in reported]

    def _person_result(self, track: Track, values: dict[str, np.ndarray]) -> PersonResult:
        min_confidence = self._settings.min_hand_confidence
        hands = [
            HandResult(
                side=side,
                valid=bool(values['hand_confidence'][s] >= min_confidence),
                confidence=float(values['hand_confidence'][s]),
                box_px=values['hand_boxes_px'][s],
                wrist_position_m=values['hand_wrist_position'][s],
                wrist_rotation=values['hand_wrist_rotation'][s],
                keypoints_m=values['hand_keypoints'][s],
                keypoint_confidence=values['joint_confidence'][HAND_KEYPOINT_ROWS[side]],
                finger_pose_aa=values['hand_finger_pose'][s],
            )
            for s, side in enumerate(('left', 'right'))
        ]
        return PersonResult(
            track_id=track.id,
            tracking_state=track.state,
            track_age=track.age_frames,
            confidence=track.score,
            box_px=np.asarray(track.box_px, np.float32),
            global_orient=values['global_orient'],
            body_pose=values['body_pose'],
            left_hand_pose=values['left_hand_pose'],
            right_hand_pose=values['right_hand_pose'],
            jaw_pose=values['jaw_pose'],
            betas=values['betas'],
            expression=values['expression'],
            transl=values['transl'],
            root_position_m=values['root_position'],
            root_rotation=values['root_rotation'],
            root_velocity_mps=np.asarray(track.velocity_mps, np.float32),
            joints_m=values['joints'],
            keypoints_2d_px=values['keypoints_2d_px'],
            vertices_m=values['vertices'],
            left_hand=hands[0],
            right_hand=hands[1],
            joint_confidence=values['joint_confidence'],
        )

    def _follow_operator(self, persons: list[PersonResult], image_hw: tuple[int, int]) -> None:
        observed = [
            p for p in persons if p.tracking_state in (TrackState.TRACKED, TrackState.TENTATIVE)
        ]
        if observed:
            self._follow.observe(observed[0].keypoints_2d_px, image_hw)
        else:
            self._follow.reset()


def _keypoint_boxes(
    proposals: Detections, estimates: list[_PersonEstimate], image_hw: tuple[int, int]
) -> Detections:
    """Each person's box around their projected joints inside the image (else the proposal)."""
    boxes = proposals.boxes_px.copy()
    for index, estimate in enumerate(estimates):
        points = estimate.values['keypoints_2d_px']
        inside = points_in_image(points, image_hw)
        if inside.sum() >= 2:
            lower, upper = points[inside].min(axis=0), points[inside].max(axis=0)
            if (upper > lower).all():
                boxes[index] = np.concatenate([lower, upper])
    return Detections(boxes, proposals.scores)


@contextmanager
def _timed(times: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    times[stage] = (time.perf_counter() - start) * 1e3


_PUBLISHED_JOINTS: dict[tuple[str, ...], torch.Tensor] = {}


def _published_joint_indices(joint_names: tuple[str, ...]) -> torch.Tensor:
    """Rows of the SMPL-X output joints that PUBLISHED_JOINT_NAMES select (cached)."""
    if joint_names not in _PUBLISHED_JOINTS:
        index = {name: i for i, name in enumerate(joint_names)}
        _PUBLISHED_JOINTS[joint_names] = torch.tensor(
            [index[name] for name in PUBLISHED_JOINT_NAMES]
        )
    return _PUBLISHED_JOINTS[joint_names]


class HostStaging:
    """A reused pinned host buffer that device results are copied into (CUDA only).

    The copy is non-blocking (pinned memory lets it run as a DMA on the compute stream) and the
    worker thread then waits for that one copy's event only; the buffer grows when needed and is
    reused, so no page-locked allocation happens per frame. On the CPU it does nothing.
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._buffer: torch.Tensor | None = None

    def to_host(self, flat: torch.Tensor) -> np.ndarray:
        """(R, C) float32 device tensor -> numpy (a copy the caller may keep)."""
        if flat.device.type != 'cuda':
            return flat.cpu().numpy()
        count = flat.numel()
        if self._buffer is None or self._buffer.numel() < count:
            self._buffer = torch.empty(count, dtype=torch.float32, pin_memory=True)
        host = self._buffer[:count].view(flat.shape)
        host.copy_(flat, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(flat.device))
        done.synchronize()  # the worker thread waits for this copy only, never the executor
        return host.numpy().copy()


def _to_host(
    output: DualPathOutput, with_vertices: bool, staging: HostStaging | None = None
) -> dict[str, np.ndarray]:
    """The per-row fields consumers read, as float32 numpy, in one device-to-host copy."""
    joint_rows = _published_joint_indices(tuple(_joint_names_of(output)))
    root_index = 0  # pelvis
    fields: dict[str, torch.Tensor] = {
        'global_orient': output.global_orient,
        'body_pose': output.body_pose,
        'left_hand_pose': output.left_hand_pose,
        'right_hand_pose': output.right_hand_pose,
        'jaw_pose': output.jaw_pose,
        'betas': output.betas,
        'expression': output.expression,
        'transl': output.transl,
        'joints': output.joints[:, joint_rows.to(output.joints.device)],
        'keypoints_2d_px': output.keypoints_2d_px[:, joint_rows.to(output.joints.device)],
        'root_position': output.joints[:, root_index],
        'root_rotation': output.root_rotation,
        'vertices': output.vertices if with_vertices else output.vertices[:, :0],
        'hand_boxes_px': output.hand_boxes_px,
        'hand_confidence': output.hand_confidence,
        'hand_wrist_position': output.hand_wrist_position,
        'hand_wrist_rotation': output.hand_wrist_rotation,
        'hand_keypoints': output.hand_keypoints,
        'hand_finger_pose': output.hand_finger_pose,
        'person_score': output.person_score,
        'joint_confidence': output.joint_confidence[:, joint_rows.to(output.joints.device)],
    }
    names = list(fields)
    flat = torch.cat([fields[name].float().reshape(len(output.transl), -1) for name in names], 1)
    flat_host = staging.to_host(flat) if staging is not None else flat.cpu().numpy()
    host: dict[str, np.ndarray] = {}
    start = 0
    for name in names:
        shape = fields[name].shape
        size = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        host[name] = flat_host[:, start : start + size].reshape(shape)
        start += size
    return host


def _in_raw_image(estimate: _PersonEstimate, rectification: Rectification) -> _PersonEstimate:
    """Pixel outputs of a rectified-image estimate in the raw image (3D needs nothing)."""
    values = dict(estimate.values)
    values['keypoints_2d_px'] = rectification.distort_points(values['keypoints_2d_px']).astype(
        np.float32
    )
    values['hand_boxes_px'] = rectification.distort_boxes(values['hand_boxes_px'])
    return _PersonEstimate(values)


def _joint_names_of(output: DualPathOutput) -> tuple[str, ...]:
    """SMPL-X output joint names for the number of joints in the output (127 or 144)."""
    count = output.joints.shape[1]
    for use_face_contour in (True, False):
        names = smplx_output_joint_names(use_face_contour)
        if len(names) == count:
            return names
    raise ValueError(f'unexpected number of SMPL-X output joints: {count}')


# ---------------------------------------------------------------------- building
def describe_model(
    build: DualPathBuild | None,
    model: DualPathModel,
    *,
    synthetic: bool,
    device: torch.device,
    precision: torch.dtype,
    weights_note: str,
    backend: str = 'eager',
) -> ModelDescription:
    """ModelInfo/MeshTopology facts of a built system."""
    smplx_model = model.smplx_model
    files = tuple(str(info.path) for info in build.weights) if build else ()
    hashes = tuple(info.sha256 for info in build.weights) if build else ()
    version = build.model_version if build else _test_asset_version(model)
    left_ids, right_ids = hand_vertex_ids(smplx_model)
    device_name = str(device)
    if device.type == 'cuda':
        device_name += f' ({torch.cuda.get_device_name(device)})'
    return ModelDescription(
        model_version=version,
        adapters=model.adapters,
        checkpoint_files=files,
        checkpoint_sha256=hashes,
        synthetic_weights=synthetic,
        weights_note=weights_note,
        backend=backend,
        precision=PRECISION_NAMES[precision],
        device=device_name,
        gender='neutral',
        num_betas=smplx_model.num_betas,
        num_expression=smplx_model.num_expression_coeffs,
        joint_names=PUBLISHED_JOINT_NAMES,
        joint_parents=PUBLISHED_JOINT_PARENTS,
        hand_keypoint_names=MEDIAPIPE_HAND_LANDMARK_NAMES,
        faces=smplx_model.faces.cpu().numpy().astype(np.uint32),
        left_hand_vertex_ids=left_ids,
        right_hand_vertex_ids=right_ids,
        body_input_hw=(512, 384),
        hand_input_size=model.hand_path.hand_expert.config.crop_size_px,
    )


def hand_vertex_ids(smplx_model: SMPLXBodyModel) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-X vertices skinned mostly to a hand (its wrist or finger joints), per side.

    Derived from the model file's skinning weights, so it holds for any SMPL-X file.
    """
    weights = smplx_model.layer.lbs_weights.detach().cpu().numpy()  # (V, 55)
    dominant = weights.argmax(axis=1)
    ids = []
    for side in ('left', 'right'):
        joints = [
            i
            for i, name in enumerate(SMPLX_JOINT_NAMES)
            if name == f'{side}_wrist'
            or (name.startswith(f'{side}_') and name[-1].isdigit() and 'eye' not in name)
        ]
        ids.append(np.flatnonzero(np.isin(dominant, joints)).astype(np.uint32))
    return ids[0], ids[1]


def build_pipeline(
    options: PipelineOptions, detector: PersonDetector | None = None
) -> PipelineRunner:
    """Load the models named by the options and return a ready pipeline.

    Args:
        options: what to build.
        detector: a person detector object; None loads ``options.detector_plugin`` when set,
            else the pipeline uses the built-in single-operator front-end.

    Raises:
        PipelineConfigurationError: a required file parameter is empty, the device is absent, or
            the ``detection.plugin`` detector cannot be loaded.
        CheckpointError, BodyModelFileNotFoundError: a file is missing or does not match (their
            messages name the file); the node reports them with the parameter.
    """
    if detector is None and options.detector_plugin:
        # Before the models: a wrong plugin name fails in a second, not after loading weights.
        detector = _load_detector_plugin(
            options.detector_plugin,
            dataclasses.replace(options.detector, device=options.model.device),
        )
    model_options = options.model
    device = resolve_device(model_options.device, 'model.device')
    precision = resolve_precision(model_options.precision, device)
    config = DualPathConfig(
        adapters=cast(AdapterRequest, model_options.adapters),
        wrist_source=cast(WristSource, model_options.wrist_source),
    )
    build: DualPathBuild | None
    if model_options.use_test_assets:
        model = _test_asset_model(config, device, model_options.hand_variant)
        build = None
        note = (
            f'RANDOM STAND-IN WEIGHTS ({_test_asset_version(model).replace("+", " + ")}, '
            'untrained) and generated body models: the outputs are meaningless; set the model.* '
            'file parameters for real use'
        )
        if _cmr_variant(model_options.hand_variant):
            note += f'; {model.mode_description}'
        logger.warning(note)
    else:
        _require(
            model_options.whole_body_checkpoint,
            'model.whole_body_checkpoint',
            'a body model checkpoint (SMPLer-X .pth.tar, FastMETRO _state_dict.bin or a '
            'converted .safetensors)',
        )
        _require(
            model_options.hand_checkpoint,
            'model.hand_checkpoint',
            'a HaMeR checkpoint (official .ckpt or converted .safetensors)',
        )
        _require(
            model_options.body_model_dir,
            'model.body_model_dir',
            'the folder holding SMPLX_NEUTRAL.npz',
        )
        build = build_dual_path(
            model_options.whole_body_checkpoint,
            model_options.hand_checkpoint,
            model_options.body_model_dir,
            hand_adapter_file=model_options.hand_adapter_checkpoint or None,
            body_adapter_file=model_options.body_adapter_checkpoint or None,
            config=config,
            device=device,
            whole_body_variant=model_options.whole_body_variant,
            hand_variant=model_options.hand_variant,
        )
        model = build.model
        note = f'{build.model_version} weights from the configured files; {model.mode_description}'
        if _uses_test_variant(build):
            # No trained weights exist for the tiny test-only variants: such files can only be
            # stand-ins (hmr-ros make-test-assets), so say so as loudly as use_test_assets does.
            note = (
                f'STAND-IN WEIGHTS: {build.model_version} uses the test-only tiny variants '
                f'(random, untrained; outputs are meaningless); {note}'
            )
            logger.warning(note)
    backend = _build_backend(options, model, build, device, precision)
    description = describe_model(
        build,
        model,
        synthetic=build is None or _uses_test_variant(build),
        device=device,
        precision=precision,
        weights_note=note,
        backend=backend.name,
    )
    logger.info(
        'pipeline ready: %s on %s, %s, backend %s',
        description.model_version,
        description.device,
        description.precision,
        backend.describe(),
    )
    return PipelineRunner(model, description, options, device, precision, detector, backend)


def _build_backend(
    options: PipelineOptions,
    model: DualPathModel,
    build: DualPathBuild | None,
    device: torch.device,
    precision: torch.dtype,
) -> InferenceBackend:
    """The ``model.backend`` backend; its failure names the parameter (no fallback)."""
    from hmr_ros.pipeline.backends import BackendUnavailableError

    model_options = options.model
    digest = ''
    if build is not None:  # the weights are identified by their files' hashes
        digest = hashlib.sha256(
            '+'.join(info.sha256 for info in build.weights).encode()
        ).hexdigest()
    backend_options = BackendOptions(
        max_persons=options.max_persons,
        engine_cache_dir=model_options.engine_cache_dir,
        rebuild_engines=model_options.rebuild_engines,
        compile_cache_dir=model_options.compile_cache_dir,
        model_digest=digest,
    )
    try:
        return create_backend(model_options.backend, model, device, precision, backend_options)
    except BackendUnavailableError as error:
        raise PipelineConfigurationError(
            f'model.backend {model_options.backend!r}: {error}; set model.backend to another '
            "backend ('eager' runs everywhere)"
        ) from error


def _load_detector_plugin(entry_point: str, options: DetectorOptions) -> PersonDetector:
    """The ``detection.plugin`` detector; any failure names the parameter."""
    try:
        detector = load_configured_detector(entry_point, options)
    except Exception as error:  # import errors, the factory's own errors: all become one kind
        hint = (
            'check detection.weights and detection.onnx_format / detection.torchvision_model'
            if entry_point in BUILT_IN_DETECTORS
            else "set it to 'onnx', 'torchvision', 'package.module:factory' of an installed "
            'module whose factory returns an object with detect(image_rgb, stamp_s), or to '
            "'' for the built-in front-end"
        )
        raise PipelineConfigurationError(
            f"detection.plugin '{entry_point}' cannot be used: {type(error).__name__}: {error}; "
            f'{hint}'
        ) from error
    logger.info('person detector from detection.plugin %s: %s', entry_point, type(detector))
    return detector


def _uses_test_variant(build: DualPathBuild) -> bool:
    """Whether a base model is a test-only tiny variant (the registry's test_variants)."""
    return any(
        info.variant in TEST_ASSET_VARIANTS
        or info.variant in model_entry(info.model).test_variants
        for info in build.weights[:2]
    )


def _require(value: str, parameter: str, what: str) -> None:
    if not value:
        raise PipelineConfigurationError(
            f'{parameter} is empty: set it to {what} (docs/licences.md; '
            'models), or set model.use_test_assets to true to try the node on random stand-ins'
        )


def _cmr_variant(hand_variant: str) -> bool:
    """Whether model.hand_variant names a CMR variant (CMR has no test-only tiny variant)."""
    from hmr_ros.models.alternatives.cmr import CMR_VARIANTS

    return hand_variant in CMR_VARIANTS


def _test_asset_version(model: DualPathModel) -> str:
    """'smplerx_tiny+hamer_tiny', or 'smplerx_tiny+cmr_sg_r18' with a CMR stand-in."""
    hand = getattr(model.hand_path.hand_expert, 'variant', TEST_ASSET_VARIANTS[1])
    return f'{TEST_ASSET_VARIANTS[0]}+{hand}'


def _test_asset_model(
    config: DualPathConfig, device: torch.device, hand_variant: str = TEST_ASSET_VARIANTS[1]
) -> DualPathModel:
    """The tiny registered variants with seeded random weights and generated body models.

    A CMR ``hand_variant`` gets its full-size network (CMR has no tiny variant) with random
    weights over a generated mesh hierarchy (models/alternatives/cmr_stand_in.py).
    """
    from hmr_ros.body_models.synthetic import write_mano_models, write_smplx_model
    from hmr_ros.models.alternatives.cmr_stand_in import stand_in_cmr_hand

    folder = Path(tempfile.gettempdir()) / f'hmr_ros_test_assets_{hmr_ros.__version__}'
    smplx_file = folder / 'SMPLX_NEUTRAL.npz'
    if not smplx_file.is_file():
        write_smplx_model(folder, seed=0)
    mano_file = folder / 'MANO_RIGHT.pkl'
    if _cmr_variant(hand_variant) and not mano_file.is_file():
        write_mano_models(folder, seed=0)
    hand_expert: HandExpert | CmrHandExpert
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        whole_body = build_whole_body(TEST_ASSET_VARIANTS[0])
        if _cmr_variant(hand_variant):
            hand_expert = stand_in_cmr_hand(hand_variant, mano_file)
        else:
            hand_expert = build_hand_expert(TEST_ASSET_VARIANTS[1])
    model = DualPathModel(
        whole_body, hand_expert, SMPLXBodyModel(smplx_file), None, None, config
    ).to(device)
    model.requires_grad_(False).eval()
    return model
