"""Multi-person box tracker: persistent ids, coasting and an explicit LOST state.

Implements the tracking semantics of docs/ros-interface.md (``Person.tracking_state``), 5.6
(``tracking.*`` parameters) and 5.10 (teleop safety): each person gets a string id that stays the
same while the person is tracked, a new person gets a new id (never a frame or detection index),
a person missed for up to ``max_coast_s`` keeps the id and is reported as ``PREDICTED`` at a
constant-velocity box, and a person missed for longer is reported ``LOST`` exactly once.

Each :meth:`BoxTracker.update` call runs:

1. Predict every live track's box at the frame stamp (constant velocity, in pixels per second).
2. Associate detections to predicted boxes greedily by IoU: the highest-IoU pair above
   ``iou_threshold`` first, each track and detection used once. Greedy matching needs no scipy;
   it equals the optimal (Hungarian) assignment whenever people's boxes do not compete for the
   same detection, and with velocity prediction crossing people stay apart (see the tests).
3. Update matched tracks (box, score, velocity), confirm tentative ones after ``min_hits``
   matches, start coasting unmatched confirmed tracks, end unmatched tentative tracks and tracks
   unseen for longer than ``max_coast_s``.
4. Start tracks for unmatched detections, highest score first, up to ``max_tracks``.

Time is the frame stamp in seconds (from the image header), never wall time, so replaying a bag
gives the same states.

Ids are ``<prefix><serial>``: a random prefix per tracker that starts with a letter (REP 155:
ids usable in TF frame names; a fresh prefix per run and per configured pipeline, so a listener
holding ``body_<id>`` frames of an earlier activation or process never sees a new person take an
old id) and a serial that only grows, also across :meth:`BoxTracker.reset`.

When the caller passes each detection's 3D root position, every track also carries its root
velocity in metres per second (the same exponential average as the box velocity).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import secrets
import string
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` pixels in the original image, ``x2 >= x1``, ``y2 >= y1``."""

BOX_SIZE = 4
TRACK_ID_PREFIX_LENGTH = 4
"""Characters of the random id prefix: a letter, then letters or digits, then '_'."""


def new_track_id_prefix() -> str:
    """A random id prefix such as ``'kq7x_'`` (first character a lowercase letter, REP 155)."""
    alphabet = string.ascii_lowercase + string.digits
    rest = ''.join(secrets.choice(alphabet) for _ in range(TRACK_ID_PREFIX_LENGTH - 1))
    return f'{secrets.choice(string.ascii_lowercase)}{rest}_'


class TrackState(enum.IntEnum):
    """Tracking state; the values are the ``hmr_msgs`` ``tracking_state`` constants."""

    TENTATIVE = 0  # seen fewer than min_hits times
    TRACKED = 1  # confirmed and detected in this frame
    PREDICTED = 2  # confirmed, not detected in this frame, coasting within max_coast_s
    LOST = 3  # final report for this id; the track is gone after this frame


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings; defaults from docs/ros-interface.md (``tracking.*``).

    Attributes:
        iou_threshold: Smallest IoU between a predicted box and a detection for them to match,
            in (0, 1].
        min_hits: Matched frames (the first detection included) before a track is ``TRACKED``;
            1 confirms at once.
        max_coast_s: Longest time, seconds, a confirmed track may go undetected and still be
            reported as ``PREDICTED``; past it the track is ``LOST``.
        max_tracks: Most live tracks; detections beyond it start no track. Coasting tracks take
            slots too, hence a margin above ``detection.max_persons`` (4).
        velocity_gain: Weight of the newest box displacement in the velocity estimate (an
            exponential average), in (0, 1]; 1 uses the last displacement only.
    """

    iou_threshold: float = 0.3
    min_hits: int = 2
    max_coast_s: float = 0.3
    max_tracks: int = 16
    velocity_gain: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f'iou_threshold must be in (0, 1], got {self.iou_threshold}')
        if isinstance(self.min_hits, bool) or not isinstance(self.min_hits, int):
            raise ValueError(f'min_hits must be an integer, got {self.min_hits!r}')
        if self.min_hits < 1:
            raise ValueError(f'min_hits must be at least 1, got {self.min_hits}')
        if not (math.isfinite(self.max_coast_s) and self.max_coast_s >= 0.0):
            raise ValueError(f'max_coast_s must be a finite number >= 0, got {self.max_coast_s}')
        if isinstance(self.max_tracks, bool) or not isinstance(self.max_tracks, int):
            raise ValueError(f'max_tracks must be an integer, got {self.max_tracks!r}')
        if self.max_tracks < 1:
            raise ValueError(f'max_tracks must be at least 1, got {self.max_tracks}')
        if not 0.0 < self.velocity_gain <= 1.0:
            raise ValueError(f'velocity_gain must be in (0, 1], got {self.velocity_gain}')


@dataclasses.dataclass(frozen=True)
class Track:
    """One person's track as reported for one frame.

    Attributes:
        id: Tracker id, unique within this tracker's lifetime (also across :meth:`reset`).
        state: See :class:`TrackState`.
        box_px: ``(x1, y1, x2, y2)`` pixels: the matched detection when ``TRACKED`` or
            ``TENTATIVE``, the constant-velocity prediction when ``PREDICTED`` or ``LOST``.
        score: Score of the last matched detection, 0 to 1.
        age_frames: Updates since the track started, this one included (1 on creation).
        hits: Updates in which the track was matched to a detection.
        last_seen_s: Stamp, seconds, of the last matched detection.
        velocity_px_s: Rate of change of ``(x1, y1, x2, y2)``, pixels per second.
        detection_index: Index of the matched detection in this update's input, None when the
            track was not matched in this frame.
        velocity_mps: Rate of change of the root position the caller passed, metres per second
            in that position's frame; zeros until two positions were matched.
    """

    id: str
    state: TrackState
    box_px: Box
    score: float
    age_frames: int
    hits: int
    last_seen_s: float
    velocity_px_s: Box
    detection_index: int | None
    velocity_mps: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def center_px(self) -> tuple[float, float]:
        """Box centre ``(x, y)``, pixels."""
        x1, y1, x2, y2 = self.box_px
        return (0.5 * (x1 + x2), 0.5 * (y1 + y2))

    @property
    def area_px(self) -> float:
        """Box area, square pixels."""
        x1, y1, x2, y2 = self.box_px
        return max(x2 - x1, 0.0) * max(y2 - y1, 0.0)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        boxes_a: ``(A, 4)`` boxes ``(x1, y1, x2, y2)``.
        boxes_b: ``(B, 4)`` boxes ``(x1, y1, x2, y2)``.

    Returns:
        ``(A, B)`` float64 IoU in [0, 1]; 0 where the union is empty (degenerate boxes).
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, BOX_SIZE)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, BOX_SIZE)
    width = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
        0,
        None,
    )
    height = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
        0,
        None,
    )
    intersection = width * height
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def associate_greedy(iou: np.ndarray, iou_threshold: float) -> list[tuple[int, int]]:
    """Match rows (tracks) to columns (detections) greedily by descending IoU.

    Ties are broken by row, then column, so the result is deterministic.

    Args:
        iou: ``(T, D)`` IoU matrix.
        iou_threshold: Pairs below this IoU never match.

    Returns:
        ``(row, column)`` pairs, each row and column at most once, in matching order.
    """
    rows, columns = np.nonzero(iou >= iou_threshold)
    if rows.size == 0:
        return []
    order = np.lexsort((columns, rows, -iou[rows, columns]))
    used_rows: set[int] = set()
    used_columns: set[int] = set()
    pairs = []
    for row, column in zip(rows[order].tolist(), columns[order].tolist(), strict=True):
        if row in used_rows or column in used_columns:
            continue
        used_rows.add(row)
        used_columns.add(column)
        pairs.append((row, column))
    return pairs


@dataclasses.dataclass
class _TrackMemory:
    """Mutable state of one live track (internal)."""

    id: str
    state: TrackState
    box_px: np.ndarray  # (4,) last matched box
    velocity_px_s: np.ndarray  # (4,)
    score: float
    age_frames: int
    hits: int
    last_seen_s: float
    has_velocity: bool = False
    position_m: np.ndarray | None = None  # (3,) last matched root position
    position_seen_s: float = 0.0
    velocity_mps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    has_position_velocity: bool = False

    def predict(self, stamp_s: float) -> np.ndarray:
        """Constant-velocity box at ``stamp_s``, kept at non-negative width and height."""
        box = self.box_px + self.velocity_px_s * (stamp_s - self.last_seen_s)
        for low, high in ((0, 2), (1, 3)):
            if box[high] < box[low]:
                box[low] = box[high] = 0.5 * (box[low] + box[high])
        return box

    def report(self, box_px: np.ndarray, detection_index: int | None) -> Track:
        return Track(
            id=self.id,
            state=self.state,
            box_px=_as_box(box_px),
            score=self.score,
            age_frames=self.age_frames,
            hits=self.hits,
            last_seen_s=self.last_seen_s,
            velocity_px_s=_as_box(self.velocity_px_s),
            detection_index=detection_index,
            velocity_mps=(
                float(self.velocity_mps[0]),
                float(self.velocity_mps[1]),
                float(self.velocity_mps[2]),
            ),
        )

    def absorb_position(self, position_m: np.ndarray, stamp_s: float, gain: float) -> None:
        """Update the root velocity from a new matched position (non-finite ones are skipped)."""
        if not np.all(np.isfinite(position_m)):
            return
        if self.position_m is not None and stamp_s > self.position_seen_s:
            measured = (position_m - self.position_m) / (stamp_s - self.position_seen_s)
            if self.has_position_velocity:
                self.velocity_mps = gain * measured + (1.0 - gain) * self.velocity_mps
            else:
                self.velocity_mps = measured
                self.has_position_velocity = True
        self.position_m = position_m.copy()
        self.position_seen_s = stamp_s


def _as_box(values: np.ndarray) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


class BoxTracker:
    """Tracks people across frames from per-frame detection boxes (see the module docstring).

    Not thread-safe: call it from the inference worker only.

    Args:
        config: Settings; defaults of :class:`TrackerConfig` when None.
        id_prefix: Prefix of every id; None draws a random one (:func:`new_track_id_prefix`).
            Give a fixed one only for reproducible tests; it must start with a letter.
    """

    def __init__(self, config: TrackerConfig | None = None, id_prefix: str | None = None) -> None:
        self._config = config if config is not None else TrackerConfig()
        if id_prefix is None:
            id_prefix = new_track_id_prefix()
        if not id_prefix[:1].isalpha():
            raise ValueError(f'track id prefix must start with a letter (REP 155): {id_prefix!r}')
        self._id_prefix = id_prefix
        self._tracks: list[_TrackMemory] = []
        self._next_id = 1
        self._last_stamp_s: float | None = None

    def new_id(self) -> str:
        """A fresh id from this tracker's sequence (also for callers that do not track)."""
        serial = self._next_id
        self._next_id += 1
        return f'{self._id_prefix}{serial}'

    @property
    def config(self) -> TrackerConfig:
        """Current settings."""
        return self._config

    def set_config(self, config: TrackerConfig) -> None:
        """Apply new settings from the next update on, keeping every track (dynamic parameters).

        Lowering ``max_tracks`` below the live count removes no track; it only stops new ones.
        """
        self._config = config

    @property
    def live_tracks(self) -> int:
        """Number of tracks that are TENTATIVE, TRACKED or PREDICTED."""
        return len(self._tracks)

    def reset(self) -> tuple[Track, ...]:
        """Drop every track (e.g. the ``~/reset_tracking`` service).

        Ids are not reused afterwards, so a consumer never confuses a new person with an old one.

        Returns:
            The dropped tracks, in ``LOST`` state, so the caller can publish their final state.
        """
        lost = []
        for track in self._tracks:
            track.state = TrackState.LOST
            box = (
                track.predict(self._last_stamp_s)
                if self._last_stamp_s is not None
                else track.box_px
            )
            lost.append(track.report(box, None))
        self._tracks = []
        self._last_stamp_s = None
        return tuple(lost)

    def update(
        self,
        boxes_px: np.ndarray | Sequence[Sequence[float]],
        scores: np.ndarray | Sequence[float],
        stamp_s: float,
        *,
        single_person: bool = False,
        positions_m: np.ndarray | None = None,
    ) -> tuple[Track, ...]:
        """Advance the tracker by one frame.

        Args:
            boxes_px: ``(N, 4)`` detections ``(x1, y1, x2, y2)``, pixels; ``N`` may be 0.
            scores: ``(N,)`` detection scores.
            stamp_s: Frame stamp, seconds (image header). A stamp earlier than the previous one
                (a bag replayed from the start) resets the tracker first; its tracks are reported
                ``LOST`` in this update's result.
            single_person: The caller knows there is one person (the single-operator
                front-end): one live track and one detection are the same person whatever their
                IoU, so a fast move or a poor first box does not start a new id.
            positions_m: ``(N, 3)`` root position of each detection (metres, any fixed frame),
                for :attr:`Track.velocity_mps`; None leaves velocities at zero.

        Returns:
            Every track alive before or started in this frame, oldest id first: ``TENTATIVE``,
            ``TRACKED`` and ``PREDICTED`` ones, and ``LOST`` ones (each reported once, then gone).

        Raises:
            ValueError: Malformed boxes or scores, or a non-finite stamp.
        """
        boxes, confidences = _check_detections(boxes_px, scores)
        positions = None
        if positions_m is not None:
            positions = np.asarray(positions_m, dtype=np.float64).reshape(-1, 3)
            if len(positions) != len(boxes):
                raise ValueError(f'{len(positions)} positions_m for {len(boxes)} boxes')
        if not math.isfinite(stamp_s):
            raise ValueError(f'stamp_s must be finite seconds, got {stamp_s}')
        report: list[Track] = []
        if self._last_stamp_s is not None and stamp_s < self._last_stamp_s:
            logger.warning(
                'frame stamp went back from %.3f s to %.3f s (bag restarted?); resetting tracks',
                self._last_stamp_s,
                stamp_s,
            )
            report.extend(self.reset())
        self._last_stamp_s = stamp_s
        config = self._config

        # 1. Predict.
        predicted = np.array([track.predict(stamp_s) for track in self._tracks]).reshape(
            -1, BOX_SIZE
        )
        # 2. Associate.
        if single_person and len(self._tracks) == 1 and len(boxes) == 1:
            pairs = [(0, 0)]
        else:
            pairs = associate_greedy(box_iou(predicted, boxes), config.iou_threshold)
        detection_of = {row: column for row, column in pairs}
        # 3. Update existing tracks.
        survivors: list[_TrackMemory] = []
        for row, track in enumerate(self._tracks):
            track.age_frames += 1
            column = detection_of.get(row)
            if column is not None:
                self._absorb(track, boxes[column], float(confidences[column]), stamp_s)
                if positions is not None:
                    track.absorb_position(positions[column], stamp_s, config.velocity_gain)
                report.append(track.report(track.box_px, column))
                survivors.append(track)
                continue
            unseen_s = stamp_s - track.last_seen_s
            if track.state == TrackState.TENTATIVE or unseen_s > config.max_coast_s:
                track.state = TrackState.LOST
            else:
                track.state = TrackState.PREDICTED
                survivors.append(track)
            report.append(track.report(predicted[row], None))
        # 4. Start tracks for unmatched detections, best score first.
        matched = set(detection_of.values())
        fresh = [column for column in range(len(boxes)) if column not in matched]
        fresh.sort(key=lambda column: -confidences[column])
        for column in fresh:
            if len(survivors) >= config.max_tracks:
                logger.debug(
                    'max_tracks=%d reached; %d detections start no track',
                    config.max_tracks,
                    len(fresh),
                )
                break
            track = _TrackMemory(
                id=self.new_id(),
                state=TrackState.TRACKED if config.min_hits <= 1 else TrackState.TENTATIVE,
                box_px=boxes[column].copy(),
                velocity_px_s=np.zeros(BOX_SIZE),
                score=float(confidences[column]),
                age_frames=1,
                hits=1,
                last_seen_s=stamp_s,
            )
            if positions is not None:
                track.absorb_position(positions[column], stamp_s, config.velocity_gain)
            survivors.append(track)
            report.append(track.report(track.box_px, column))
        self._tracks = survivors
        prefix_length = len(self._id_prefix)
        report.sort(key=lambda track: int(track.id[prefix_length:]))  # oldest serial first
        return tuple(report)

    def _absorb(self, track: _TrackMemory, box: np.ndarray, score: float, stamp_s: float) -> None:
        """Update a matched track with its detection."""
        elapsed_s = stamp_s - track.last_seen_s
        if elapsed_s > 0.0:
            measured = (box - track.box_px) / elapsed_s
            if track.has_velocity:
                gain = self._config.velocity_gain
                track.velocity_px_s = gain * measured + (1.0 - gain) * track.velocity_px_s
            else:
                track.velocity_px_s = measured
                track.has_velocity = True
        track.box_px = box.copy()
        track.score = score
        track.hits += 1
        track.last_seen_s = stamp_s
        if track.state != TrackState.TENTATIVE or track.hits >= self._config.min_hits:
            track.state = TrackState.TRACKED


def _check_detections(
    boxes_px: np.ndarray | Sequence[Sequence[float]], scores: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert detections to float64 ``(N, 4)`` boxes and ``(N,)`` scores."""
    boxes = np.asarray(boxes_px, dtype=np.float64)
    confidences = np.asarray(scores, dtype=np.float64)
    if boxes.size == 0 and confidences.size == 0:
        return np.zeros((0, BOX_SIZE)), np.zeros(0)
    if boxes.ndim != 2 or boxes.shape[1] != BOX_SIZE:
        raise ValueError(f'boxes_px must have shape (N, 4) as (x1, y1, x2, y2), got {boxes.shape}')
    if confidences.shape != (boxes.shape[0],):
        raise ValueError(
            f'scores must have shape ({boxes.shape[0]},), one per box, got {confidences.shape}'
        )
    if not (np.all(np.isfinite(boxes)) and np.all(np.isfinite(confidences))):
        raise ValueError('boxes_px and scores must be finite; drop NaN detections before tracking')
    if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
        raise ValueError('boxes_px must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1')
    return boxes, confidences
