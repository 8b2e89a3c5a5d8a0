"""One-Euro smoothing of per-track outputs: arrays, unit quaternions and a per-track filter bank.

The One-Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems", CHI 2012) is a first-order low-pass filter whose
cutoff rises with the signal's speed: slow motion is smoothed hard (little jitter), fast motion
lightly (little lag). For each sample ``x`` at stamp ``t``, with ``Te = t - t_prev``:

1. ``alpha(fc) = 1 / (1 + tau / Te)`` with ``tau = 1 / (2 pi fc)``.
2. Speed: ``dx = (x - x_hat_prev) / Te``, low-passed at ``d_cutoff_hz``:
   ``dx_hat = alpha(d_cutoff_hz) dx + (1 - alpha) dx_hat_prev``.
3. Adaptive cutoff ``fc = min_cutoff_hz + beta |dx_hat|``.
4. ``x_hat = alpha(fc) x + (1 - alpha(fc)) x_hat_prev``, computed as
   ``x_hat_prev + alpha (x - x_hat_prev)``.

The speed is taken against the previous *filtered* value (some implementations use the previous
raw sample): the speed estimate is quieter, and the rotation variant below then matches the
scalar filter exactly. Arrays are filtered element by element (each scalar has its own cutoff),
vectorised with numpy in float64. ``beta`` has units of Hz per (signal unit / s), so its value
depends on units: the defaults assume metres (positions) and radians (rotations).

Rotations (:class:`QuaternionOneEuroFilter`) are filtered in the tangent space: the step from the
current estimate to the new sample is the rotation vector ``r = log(q_hat^-1 q)`` (after flipping
``q`` into ``q_hat``'s hemisphere, since ``q`` and ``-q`` are the same rotation); the angular
speed is ``r / Te``, the cutoff uses its norm, and the estimate moves by
``q_hat <- q_hat exp(alpha r)``, a slerp by ``alpha``. About a fixed axis this is exactly the
scalar filter applied to the angle.

Time comes from frame stamps (seconds), so replaying a bag gives identical output
(docs/ros-interface.md). Filters are per track id and reset when a track is created or
re-acquired after coasting (:class:`TrackFilterBank`). Smoothing adds lag; ``output.publish_raw``
exists for consumers that filter themselves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from hmr_ros.geometry.rotations import (
    QUATERNION_SIZE,
    quaternion_xyzw_conjugate_np,
    quaternion_xyzw_exp_np,
    quaternion_xyzw_log_np,
    quaternion_xyzw_multiply_np,
    quaternion_xyzw_to_rotmat_np,
    rotmat_to_quaternion_xyzw_np,
)
from hmr_ros.pipeline.tracking import Track, TrackState

ROTATION_VECTOR_SIZE = 3


@dataclasses.dataclass(frozen=True)
class OneEuroConfig:
    """One-Euro filter settings (``smoothing.body.*``, ``smoothing.hands.*``).

    Attributes:
        min_cutoff_hz: Cutoff at rest, Hz (> 0). Lower: less jitter, more lag when slow.
        beta: Cutoff increase per unit of speed, Hz per (signal unit / s) (>= 0). Higher: less
            lag when fast.
        d_cutoff_hz: Cutoff of the speed estimate, Hz (> 0).
    """

    min_cutoff_hz: float = 1.0
    beta: float = 0.05
    d_cutoff_hz: float = 1.0

    def __post_init__(self) -> None:
        for name in ('min_cutoff_hz', 'd_cutoff_hz'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a finite frequency > 0 Hz, got {value}')
        if not (math.isfinite(self.beta) and self.beta >= 0.0):
            raise ValueError(f'beta must be finite and >= 0, got {self.beta}')


BODY_SMOOTHING = OneEuroConfig(min_cutoff_hz=1.0, beta=0.05, d_cutoff_hz=1.0)
"""``smoothing.body.*`` defaults."""

HAND_SMOOTHING = OneEuroConfig(min_cutoff_hz=2.0, beta=0.3, d_cutoff_hz=1.0)
"""``smoothing.hands.*`` defaults: hands favour responsiveness."""


def smoothing_factor(
    elapsed_s: float | np.ndarray, cutoff_hz: float | np.ndarray
) -> float | np.ndarray:
    """Exponential smoothing factor of a first-order low-pass filter.

    Args:
        elapsed_s: Time since the previous sample, seconds (> 0), scalar or array.
        cutoff_hz: Cutoff frequency, Hz, scalar or array.

    Returns:
        ``1 / (1 + tau / elapsed_s)`` with ``tau = 1 / (2 pi cutoff_hz)``, in (0, 1).
    """
    tau_s = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau_s / elapsed_s)


class _OneEuroState:
    """State and settings shared by the array and the rotation One-Euro filters."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self._config = config if config is not None else OneEuroConfig()
        self._value: np.ndarray | None = None  # last estimate
        self._speed: np.ndarray | None = None  # last filtered rate of change
        self._last_stamp_s = 0.0

    @property
    def config(self) -> OneEuroConfig:
        """Current settings."""
        return self._config

    def set_config(self, config: OneEuroConfig) -> None:
        """Use new settings from the next sample on, keeping the filter state."""
        self._config = config

    @property
    def initialized(self) -> bool:
        """Whether a sample has been seen since creation or the last :meth:`reset`."""
        return self._value is not None

    def reset(self) -> None:
        """Forget the state; the next sample passes unchanged."""
        self._value = None
        self._speed = None


class OneEuroFilter(_OneEuroState):
    """One-Euro filter over float arrays of a fixed shape (see the module docstring).

    Stamps: the first sample (or the first after :meth:`reset`) passes unchanged; a sample with
    the previous stamp returns the previous estimate unchanged; a stamp earlier than the previous
    one (bag restarted) resets the filter to that sample.
    """

    def filter(self, values: np.ndarray | float, stamp_s: float) -> np.ndarray:
        """Filter one sample.

        Args:
            values: Array of any shape (fixed while the filter is initialised), signal units.
            stamp_s: Sample stamp, seconds.

        Returns:
            Filtered float64 array of the same shape (a new array).

        Raises:
            ValueError: Non-finite values or stamp, or a shape differing from the previous
                samples' (call :meth:`reset` first when the shape legitimately changes).
        """
        x = _finite_array(values, 'values')
        _check_stamp(stamp_s)
        value, speed = self._value, self._speed
        if value is None or speed is None or stamp_s < self._last_stamp_s:
            self._value = x.copy()
            self._speed = np.zeros_like(x)
            self._last_stamp_s = stamp_s
            return x
        if x.shape != value.shape:
            raise ValueError(
                f'sample shape {x.shape} differs from the filtered shape {value.shape}; '
                'reset() the filter before changing shape'
            )
        elapsed_s = stamp_s - self._last_stamp_s
        if elapsed_s == 0.0:
            return value.copy()
        config = self._config
        speed_alpha = smoothing_factor(elapsed_s, config.d_cutoff_hz)
        speed = speed_alpha * ((x - value) / elapsed_s) + (1.0 - speed_alpha) * speed
        cutoff_hz = config.min_cutoff_hz + config.beta * np.abs(speed)
        alpha = smoothing_factor(elapsed_s, cutoff_hz)
        # Written as a step towards x so that a constant input stays exactly constant.
        self._value = value + alpha * (x - value)
        self._speed = speed
        self._last_stamp_s = stamp_s
        return self._value.copy()


class QuaternionOneEuroFilter(_OneEuroState):
    """One-Euro filter over unit quaternions ``(..., 4)`` in ``(x, y, z, w)`` order.

    ``(x, y, z, w)`` is the ``geometry_msgs/Quaternion`` order. Inputs are normalised; the output
    is unit-norm and continuous in sign (it stays in the hemisphere of the previous output, so it
    may be ``-q`` of the input's sign convention). ``beta`` is in Hz per (rad/s). Stamps behave
    as in :class:`OneEuroFilter`.
    """

    # State: _value (..., 4) unit quaternions; _speed (..., 3) angular velocity, rad/s.

    def filter(self, quaternions_xyzw: np.ndarray, stamp_s: float) -> np.ndarray:
        """Filter one sample of rotations.

        Args:
            quaternions_xyzw: ``(..., 4)`` quaternions ``(x, y, z, w)``, any non-zero norm.
            stamp_s: Sample stamp, seconds.

        Returns:
            ``(..., 4)`` float64 unit quaternions ``(x, y, z, w)`` (a new array).

        Raises:
            ValueError: Last dimension not 4, zero or non-finite quaternions, non-finite stamp,
                or a shape change without :meth:`reset`.
        """
        q = _unit_quaternions(quaternions_xyzw)
        _check_stamp(stamp_s)
        value, speed = self._value, self._speed
        if value is None or speed is None or stamp_s < self._last_stamp_s:
            self._value = q.copy()
            self._speed = np.zeros(q.shape[:-1] + (ROTATION_VECTOR_SIZE,))
            self._last_stamp_s = stamp_s
            return q
        if q.shape != value.shape:
            raise ValueError(
                f'quaternion shape {q.shape} differs from the filtered shape {value.shape}; '
                'reset() the filter before changing shape'
            )
        elapsed_s = stamp_s - self._last_stamp_s
        if elapsed_s == 0.0:
            return value.copy()
        config = self._config
        # 1. Same hemisphere as the estimate: q and -q are one rotation.
        q = np.where(np.sum(q * value, axis=-1, keepdims=True) < 0.0, -q, q)
        # 2. Step from the estimate to the sample, as a rotation vector in the estimate's frame.
        step = quaternion_xyzw_log_np(
            quaternion_xyzw_multiply_np(quaternion_xyzw_conjugate_np(value), q)
        )
        # 3. Angular speed, low-passed; cutoff from its norm.
        speed_alpha = smoothing_factor(elapsed_s, config.d_cutoff_hz)
        speed = speed_alpha * (step / elapsed_s) + (1.0 - speed_alpha) * speed
        cutoff_hz = config.min_cutoff_hz + config.beta * np.linalg.norm(speed, axis=-1)
        alpha = smoothing_factor(elapsed_s, cutoff_hz)
        # 4. Move the estimate by the fraction alpha of the step (slerp).
        moved = quaternion_xyzw_multiply_np(
            value, quaternion_xyzw_exp_np(np.expand_dims(alpha, -1) * step)
        )
        self._value = moved / np.linalg.norm(moved, axis=-1, keepdims=True)
        self._speed = speed
        self._last_stamp_s = stamp_s
        return self._value.copy()


class TrackFilterBank:
    """One-Euro filters per track id and named channel (e.g. ``'joints'``, ``'root_orient'``).

    Array channels (:meth:`filter`) and rotation channels (:meth:`filter_rotation`) have
    separate name spaces.

    Call :meth:`sync_tracks` with each tracker result before filtering that frame: filters of
    tracks reported ``LOST`` or no longer reported are dropped, and filters of a track
    re-acquired after coasting (``PREDICTED`` then ``TRACKED``) are reset, so the output jumps to
    the new measurement instead of dragging the stale estimate (docs/ros-interface.md). A track's
    channels are created on first use, so a new id starts fresh. One bank holds one setting;
    the node keeps one bank for the body and one for the hands (``smoothing.body.*`` and
    ``smoothing.hands.*``).
    """

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self._config = config if config is not None else OneEuroConfig()
        self._arrays: dict[str, dict[str, OneEuroFilter]] = {}
        self._rotations: dict[str, dict[str, QuaternionOneEuroFilter]] = {}
        self._states: dict[str, TrackState] = {}

    @property
    def config(self) -> OneEuroConfig:
        """Current settings."""
        return self._config

    def set_config(self, config: OneEuroConfig) -> None:
        """Apply new settings to every filter from its next sample on, keeping all state."""
        self._config = config
        for channel_filter in self._all_filters():
            channel_filter.set_config(config)

    @property
    def track_ids(self) -> tuple[str, ...]:
        """Ids that currently own filters, in order of first use."""
        return tuple(dict.fromkeys([*self._arrays, *self._rotations]))

    def sync_tracks(self, tracks: Iterable[Track]) -> None:
        """Follow the tracker: drop filters of gone tracks, reset re-acquired ones."""
        reported: dict[str, TrackState] = {}
        for track in tracks:
            reported[track.id] = track.state
            was_coasting = self._states.get(track.id) == TrackState.PREDICTED
            if was_coasting and track.state in (TrackState.TRACKED, TrackState.TENTATIVE):
                for channel_filter in self._all_filters(track.id):
                    channel_filter.reset()
        for track_id in self.track_ids:
            if reported.get(track_id, TrackState.LOST) == TrackState.LOST:
                self.drop(track_id)
        self._states = {
            track_id: state for track_id, state in reported.items() if state != TrackState.LOST
        }

    def drop(self, track_id: str) -> None:
        """Forget one track's filters."""
        self._arrays.pop(track_id, None)
        self._rotations.pop(track_id, None)
        self._states.pop(track_id, None)

    def reset(self) -> None:
        """Forget every filter (e.g. the ``~/reset_tracking`` service)."""
        self._arrays.clear()
        self._rotations.clear()
        self._states.clear()

    def filter(
        self, track_id: str, channel: str, values: np.ndarray | float, stamp_s: float
    ) -> np.ndarray:
        """Filter an array channel of one track; see :meth:`OneEuroFilter.filter`."""
        channels = self._arrays.setdefault(track_id, {})
        if channel not in channels:
            channels[channel] = OneEuroFilter(self._config)
        return channels[channel].filter(values, stamp_s)

    def filter_rotation(
        self, track_id: str, channel: str, quaternions_xyzw: np.ndarray, stamp_s: float
    ) -> np.ndarray:
        """Filter a rotation channel of one track; see :meth:`QuaternionOneEuroFilter.filter`."""
        channels = self._rotations.setdefault(track_id, {})
        if channel not in channels:
            channels[channel] = QuaternionOneEuroFilter(self._config)
        return channels[channel].filter(quaternions_xyzw, stamp_s)

    def _all_filters(
        self, track_id: str | None = None
    ) -> list[OneEuroFilter | QuaternionOneEuroFilter]:
        """Every filter, or those of one track."""
        groups: list[dict[str, OneEuroFilter] | dict[str, QuaternionOneEuroFilter]] = []
        for table in (self._arrays, self._rotations):
            if track_id is None:
                groups.extend(table.values())
            elif track_id in table:
                groups.append(table[track_id])
        return [channel_filter for group in groups for channel_filter in group.values()]


def _check_stamp(stamp_s: float) -> None:
    if not math.isfinite(stamp_s):
        raise ValueError(f'stamp_s must be finite seconds, got {stamp_s}')


def _finite_array(values: np.ndarray | float, name: str) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{name} must be finite; drop or mask invalid samples before filtering')
    return array


def _unit_quaternions(quaternions_xyzw: np.ndarray) -> np.ndarray:
    q = _finite_array(quaternions_xyzw, 'quaternions_xyzw')
    if q.ndim == 0 or q.shape[-1] != QUATERNION_SIZE:
        raise ValueError(f'quaternions_xyzw must have shape (..., 4), got {q.shape}')
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12):
        raise ValueError('quaternions_xyzw contains a zero quaternion; it is not a rotation')
    return q / norm


# ---------------------------------------------------------------------- per-person channels

BODY = 'body'
HANDS = 'hands'
SIDES = ('left', 'right')

BODY_POSITION_CHANNELS = ('joints', 'keypoints_2d_px', 'transl', 'root_position', 'vertices')
"""Array fields of a person's values filtered with the body settings (empty ones skipped)."""


def _hand_channels(values: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Filtered hand signals: wrists ``(2, 3)``, keypoints relative to them ``(2, 21, 3)``.

    Relative keypoints smooth the fingers apart from the motion of the arm.
    """
    keypoints = values['hand_keypoints']
    return values['hand_wrist_position'], keypoints - keypoints[:, :1]


class ReferencePersonSmoother:
    """The readable per-track, per-channel smoother: one filter object per channel.

    This is what the pipeline ran before :class:`PersonSmoother` and the reference that
    :class:`PersonSmoother` is tested against (style guide section 4: fast paths keep a readable
    reference). Each person's values are a dict of host arrays as the pipeline produces them
    (``joints`` ``(K, 3)``, ``keypoints_2d_px`` ``(K, 2)``, ``transl`` and ``root_position``
    ``(3,)``, ``vertices`` ``(V, 3)`` or ``(0, 3)``, ``root_rotation`` ``(3, 3)``, and per hand
    ``hand_wrist_position`` ``(2, 3)``, ``hand_keypoints`` ``(2, 21, 3)``,
    ``hand_wrist_rotation`` ``(2, 3, 3)``; other fields pass through).

    The body settings filter the joints, 2D keypoints, translation, root position, vertices and
    root rotation. The hand settings (teleoperation wants them responsive) filter the wrist
    positions, the finger keypoints relative to the wrist and the wrist rotations; the filtered
    hand keypoints are written back into the skeleton's hand rows, so a hand's wrist keypoint,
    its wrist position and the skeleton's wrist joint stay the same point.

    Args:
        body: ``smoothing.body.*`` settings.
        hands: ``smoothing.hands.*`` settings.
        hand_joint_rows: rows of ``joints`` holding each side's 21 hand keypoints.
    """

    def __init__(
        self,
        body: OneEuroConfig,
        hands: OneEuroConfig,
        hand_joint_rows: Mapping[str, Sequence[int]],
    ) -> None:
        self._body = TrackFilterBank(body)
        self._hands = TrackFilterBank(hands)
        self._hand_rows = {side: list(hand_joint_rows[side]) for side in SIDES}

    def set_configs(self, body: OneEuroConfig, hands: OneEuroConfig) -> None:
        """New settings from the next frame on; state kept."""
        self._body.set_config(body)
        self._hands.set_config(hands)

    def reset(self) -> None:
        """Forget every track."""
        self._body.reset()
        self._hands.reset()

    def sync_tracks(self, tracks: Iterable[Track]) -> None:
        """See :meth:`TrackFilterBank.sync_tracks`."""
        tracks = tuple(tracks)
        self._body.sync_tracks(tracks)
        self._hands.sync_tracks(tracks)

    def smooth(
        self,
        track_ids: Sequence[str],
        values: Sequence[Mapping[str, np.ndarray]],
        stamp_s: float,
    ) -> list[dict[str, np.ndarray]]:
        """Filtered copies of each person's values (same keys), one person after the other."""
        return [
            self._smooth_one(track_id, person, stamp_s)
            for track_id, person in zip(track_ids, values, strict=True)
        ]

    def _smooth_one(
        self, track_id: str, values: Mapping[str, np.ndarray], stamp_s: float
    ) -> dict[str, np.ndarray]:
        body, hands = self._body, self._hands
        smoothed = dict(values)
        for name in BODY_POSITION_CHANNELS:
            if values[name].size:
                smoothed[name] = body.filter(track_id, name, values[name], stamp_s)
        root = rotmat_to_quaternion_xyzw_np(values['root_rotation'], project=False)
        smoothed['root_rotation'] = quaternion_xyzw_to_rotmat_np(
            body.filter_rotation(track_id, 'root', root, stamp_s)
        ).astype(np.float32)
        wrist_positions, relative = _hand_channels(values)
        wrists = hands.filter(track_id, 'wrists', wrist_positions, stamp_s)
        keypoints = hands.filter(track_id, 'fingers', relative, stamp_s) + wrists[:, None]
        smoothed['hand_wrist_position'] = wrists
        smoothed['hand_keypoints'] = keypoints
        joints = smoothed['joints'].copy()
        for s, side in enumerate(SIDES):
            joints[self._hand_rows[side]] = keypoints[s]
        smoothed['joints'] = joints
        wrist = rotmat_to_quaternion_xyzw_np(values['hand_wrist_rotation'], project=False)
        smoothed['hand_wrist_rotation'] = quaternion_xyzw_to_rotmat_np(
            hands.filter_rotation(track_id, 'wrist', wrist, stamp_s)
        ).astype(np.float32)
        return smoothed


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where each filtered signal sits in a track's flat position vector and rotation stack."""

    position_slices: dict[str, tuple[int, int, tuple[int, ...]]]  # name -> (start, stop, shape)
    num_positions: int
    body_positions: int  # columns [0, body_positions) use the body settings, the rest hands
    key: tuple[tuple[str, tuple[int, ...]], ...]


_LAYOUTS: dict[tuple[tuple[str, tuple[int, ...]], ...], _Layout] = {}


def _layout(values: Mapping[str, np.ndarray]) -> _Layout:
    shapes = [(name, values[name].shape) for name in BODY_POSITION_CHANNELS if values[name].size]
    shapes += [
        ('wrists', values['hand_wrist_position'].shape),
        ('fingers', values['hand_keypoints'].shape),
    ]
    key = tuple(shapes)
    layout = _LAYOUTS.get(key)
    if layout is None:
        slices = {}
        start = body_positions = 0
        for name, shape in shapes:
            stop = start + math.prod(shape)
            slices[name] = (start, stop, tuple(shape))
            start = stop
            if name in BODY_POSITION_CHANNELS:
                body_positions = stop
        layout = _Layout(slices, start, body_positions, key)
        _LAYOUTS[key] = layout
    return layout


_ROOT_ROTATION = 0  # rotation rows: root (body settings), then the left and right wrists
_NUM_ROTATIONS = 1 + len(SIDES)


class PersonSmoother:
    """All persons' One-Euro filtering in one vectorised update per frame.

    Same behaviour as :class:`ReferencePersonSmoother` (outputs equal to about 1e-12; a test
    compares them on a recorded sequence), but every track's signals are one row of a
    ``(P, N)`` float64 matrix of positions (body columns, then hand columns, each column with
    its own settings) and of a ``(P, 3, 4)`` stack of quaternions (root, left wrist, right
    wrist), so a frame costs a fixed number of numpy operations whatever the number of persons,
    joints and vertices. One difference: a person whose set of signals changes (vertices turned
    on or off by ``output.publish_vertices``) restarts from its next sample, where the reference
    restarts only the new channel.

    The returned arrays are read-only views of the filter state (no copy per person).
    """

    def __init__(
        self,
        body: OneEuroConfig,
        hands: OneEuroConfig,
        hand_joint_rows: Mapping[str, Sequence[int]],
    ) -> None:
        self._body_config = body
        self._hands_config = hands
        self._hand_rows = np.array([list(hand_joint_rows[side]) for side in SIDES])
        self._states: dict[str, TrackState] = {}
        # Filter state, one row per track in self._ids; empty until the first frame.
        self._ids: tuple[str, ...] = ()
        self._layout: _Layout | None = None
        self._value = np.zeros((0, 0))
        self._speed = np.zeros((0, 0))
        self._rotation = np.zeros((0, _NUM_ROTATIONS, QUATERNION_SIZE))
        self._angular_speed = np.zeros((0, _NUM_ROTATIONS, ROTATION_VECTOR_SIZE))
        self._last_stamp_s = np.zeros(0)
        self._initialized = np.zeros(0, dtype=bool)
        self._columns: tuple[np.ndarray, ...] | None = None

    def set_configs(self, body: OneEuroConfig, hands: OneEuroConfig) -> None:
        """New settings from the next frame on; state kept."""
        self._body_config, self._hands_config = body, hands
        self._columns = None

    def reset(self) -> None:
        """Forget every track."""
        self._states.clear()
        self._ids = ()
        self._initialized = np.zeros(0, dtype=bool)

    def sync_tracks(self, tracks: Iterable[Track]) -> None:
        """Follow the tracker as :meth:`TrackFilterBank.sync_tracks` does."""
        reported = {track.id: track.state for track in tracks}
        restart = {
            track_id
            for track_id, state in reported.items()
            if self._states.get(track_id) == TrackState.PREDICTED
            and state in (TrackState.TRACKED, TrackState.TENTATIVE)
        }
        if restart and self._ids:
            self._initialized = self._initialized & ~np.isin(np.array(self._ids), list(restart))
        self._states = {
            track_id: state for track_id, state in reported.items() if state != TrackState.LOST
        }

    def smooth(
        self,
        track_ids: Sequence[str],
        values: Sequence[Mapping[str, np.ndarray]],
        stamp_s: float,
    ) -> list[dict[str, np.ndarray]]:
        """Filtered values of the given tracks at one stamp (see the class docstring).

        Args:
            track_ids: ids of the persons to filter, unique.
            values: each person's host arrays (keys as in :class:`ReferencePersonSmoother`).
            stamp_s: the frame's stamp, seconds.

        Returns:
            Per person, a dict with the same keys; filtered fields replaced (float64 positions,
            float32 rotation matrices), the others passed through.

        Raises:
            ValueError: non-finite values or stamp.
        """
        _check_stamp(stamp_s)
        if not track_ids:
            return []
        layout = _layout(values[0])
        if any(_layout(person).key != layout.key for person in values[1:]):
            raise ValueError('persons of one frame must have the same fields and shapes')
        x, quaternions = self._stack(layout, values)
        self._gather(tuple(track_ids), layout)
        self._update(x, quaternions, stamp_s)
        return self._outputs(layout, values)

    # ---------------------------------------------------------------- steps

    def _stack(
        self, layout: _Layout, values: Sequence[Mapping[str, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(P, N)`` float64 and quaternions ``(P, 3, 4)`` of this frame's samples."""
        count = len(values)
        x = np.empty((count, layout.num_positions))
        rotations = np.empty((count, _NUM_ROTATIONS, 3, 3))
        for row, person in enumerate(values):
            for name, (start, stop, _) in layout.position_slices.items():
                if name == 'wrists':
                    x[row, start:stop] = person['hand_wrist_position'].reshape(-1)
                elif name == 'fingers':
                    keypoints = person['hand_keypoints']
                    x[row, start:stop].reshape(keypoints.shape)[:] = keypoints - keypoints[:, :1]
                else:
                    x[row, start:stop] = person[name].reshape(-1)
            rotations[row, _ROOT_ROTATION] = person['root_rotation']
            rotations[row, _ROOT_ROTATION + 1 :] = person['hand_wrist_rotation']
        if not np.all(np.isfinite(x)):
            raise ValueError(
                'values must be finite; drop or mask invalid samples before filtering'
            )
        if not np.all(np.isfinite(rotations)):
            raise ValueError('rotation matrices must be finite')
        quaternions = rotmat_to_quaternion_xyzw_np(rotations, project=False)
        # Normalised once more, as QuaternionOneEuroFilter does with its input.
        return x, quaternions / np.linalg.norm(quaternions, axis=-1, keepdims=True)

    def _gather(self, track_ids: tuple[str, ...], layout: _Layout) -> None:
        """Put the state rows in the order of ``track_ids`` (new tracks uninitialised)."""
        if layout != self._layout:
            self._layout = layout
            self._columns = None
            self._ids = ()  # a different set of signals: every track restarts
        if track_ids == self._ids:
            return
        previous = {track_id: row for row, track_id in enumerate(self._ids)}
        rows = np.array([previous.get(track_id, -1) for track_id in track_ids])
        known = rows >= 0
        take = np.where(known, rows, 0)
        if self._ids:
            self._value = self._value[take]
            self._speed = self._speed[take]
            self._rotation = self._rotation[take]
            self._angular_speed = self._angular_speed[take]
            self._last_stamp_s = self._last_stamp_s[take]
            self._initialized = self._initialized[take] & known
        else:
            count = len(track_ids)
            self._value = np.zeros((count, layout.num_positions))
            self._speed = np.zeros((count, layout.num_positions))
            self._rotation = np.zeros((count, _NUM_ROTATIONS, QUATERNION_SIZE))
            self._angular_speed = np.zeros((count, _NUM_ROTATIONS, ROTATION_VECTOR_SIZE))
            self._last_stamp_s = np.zeros(count)
            self._initialized = np.zeros(count, dtype=bool)
        self._ids = track_ids

    def _column_settings(self) -> tuple[np.ndarray, ...]:
        """Settings per position column and per rotation (built once per layout and config).

        Returns:
            Per position column: min cutoff (Hz), beta, and 0 (body) / 1 (hands) group; the
            speed cutoffs (Hz) of the two groups; per rotation (root, left, right wrist): min
            cutoff, beta and speed cutoff.
        """
        if self._columns is None:
            layout = self._layout
            assert layout is not None
            group = np.zeros(layout.num_positions, dtype=np.intp)
            group[layout.body_positions :] = 1
            configs = (self._body_config, self._hands_config)
            rotations = (self._body_config, self._hands_config, self._hands_config)
            self._columns = (
                np.array([c.min_cutoff_hz for c in configs])[group],
                np.array([c.beta for c in configs])[group],
                group,
                np.array([c.d_cutoff_hz for c in configs]),
                np.array([c.min_cutoff_hz for c in rotations]),
                np.array([c.beta for c in rotations]),
                np.array([c.d_cutoff_hz for c in rotations]),
            )
        return self._columns

    def _update(self, x: np.ndarray, quaternions: np.ndarray, stamp_s: float) -> None:
        """One One-Euro step for every row, written as the reference's filters compute it."""
        restart = ~self._initialized | (stamp_s < self._last_stamp_s)
        elapsed_s = stamp_s - self._last_stamp_s
        moving = ~restart & (elapsed_s > 0.0)  # elapsed 0: keep the previous estimate
        value, speed = self._value, self._speed
        rotation, angular_speed = self._rotation, self._angular_speed
        if np.any(moving):
            rows = slice(None) if np.all(moving) else np.flatnonzero(moving)
            new = self._step_positions(x[rows], value[rows], speed[rows], elapsed_s[rows])
            new_rotation = self._step_rotations(
                quaternions[rows], rotation[rows], angular_speed[rows], elapsed_s[rows]
            )
            if isinstance(rows, slice):
                (value, speed), (rotation, angular_speed) = new, new_rotation
            else:
                value, speed = value.copy(), speed.copy()
                rotation, angular_speed = rotation.copy(), angular_speed.copy()
                value[rows], speed[rows] = new
                rotation[rows], angular_speed[rows] = new_rotation
        if np.any(restart):
            rows_restart = np.flatnonzero(restart)
            if value is self._value:
                value, speed = value.copy(), speed.copy()
                rotation, angular_speed = rotation.copy(), angular_speed.copy()
            value[rows_restart] = x[rows_restart]
            speed[rows_restart] = 0.0
            rotation[rows_restart] = quaternions[rows_restart]
            angular_speed[rows_restart] = 0.0
        value.setflags(write=False)
        self._value, self._speed = value, speed
        self._rotation, self._angular_speed = rotation, angular_speed
        self._last_stamp_s = np.where(moving | restart, stamp_s, self._last_stamp_s)
        self._initialized = np.ones_like(self._initialized)

    def _step_positions(
        self, x: np.ndarray, value: np.ndarray, speed: np.ndarray, elapsed_s: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        min_cutoff, beta, group, d_cutoff = self._column_settings()[:4]
        elapsed = elapsed_s[:, None]
        speed_alpha = np.asarray(smoothing_factor(elapsed, d_cutoff))[:, group]  # (rows, N)
        speed = speed_alpha * ((x - value) / elapsed) + (1.0 - speed_alpha) * speed
        alpha = smoothing_factor(elapsed, min_cutoff + beta * np.abs(speed))
        return value + alpha * (x - value), speed

    def _step_rotations(
        self,
        q: np.ndarray,
        value: np.ndarray,
        speed: np.ndarray,
        elapsed_s: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The :class:`QuaternionOneEuroFilter` step on ``(rows, 3, 4)`` (root, wrists)."""
        min_cutoff, beta, d_cutoff = self._column_settings()[4:]
        elapsed = elapsed_s[:, None]
        q = np.where(np.sum(q * value, axis=-1, keepdims=True) < 0.0, -q, q)
        step = quaternion_xyzw_log_np(
            quaternion_xyzw_multiply_np(quaternion_xyzw_conjugate_np(value), q)
        )
        speed_alpha = np.asarray(smoothing_factor(elapsed, d_cutoff))[..., None]
        speed = speed_alpha * (step / elapsed[..., None]) + (1.0 - speed_alpha) * speed
        cutoff_hz = min_cutoff + beta * np.sqrt(np.sum(speed * speed, axis=-1))
        alpha = np.asarray(smoothing_factor(elapsed, cutoff_hz))
        moved = quaternion_xyzw_multiply_np(value, quaternion_xyzw_exp_np(alpha[..., None] * step))
        return moved / np.sqrt(np.sum(moved * moved, axis=-1, keepdims=True)), speed

    def _outputs(
        self, layout: _Layout, values: Sequence[Mapping[str, np.ndarray]]
    ) -> list[dict[str, np.ndarray]]:
        value = self._value
        matrices = quaternion_xyzw_to_rotmat_np(self._rotation).astype(np.float32)
        matrices.setflags(write=False)
        slices = layout.position_slices
        start, stop, shape = slices['wrists']
        wrists = value[:, start:stop].reshape((-1, *shape))
        start, stop, shape = slices['fingers']
        keypoints = value[:, start:stop].reshape((-1, *shape)) + wrists[:, :, None]
        keypoints.setflags(write=False)
        start, stop, shape = slices['joints']
        joints = value[:, start:stop].reshape((-1, *shape)).copy()
        joints[:, self._hand_rows] = keypoints
        joints.setflags(write=False)
        results = []
        for row, person in enumerate(values):
            smoothed = dict(person)
            for name in BODY_POSITION_CHANNELS:
                if name in slices:
                    start, stop, shape = slices[name]
                    smoothed[name] = value[row, start:stop].reshape(shape)
            smoothed['joints'] = joints[row]
            smoothed['root_rotation'] = matrices[row, _ROOT_ROTATION]
            smoothed['hand_wrist_position'] = wrists[row]
            smoothed['hand_keypoints'] = keypoints[row]
            smoothed['hand_wrist_rotation'] = matrices[row, _ROOT_ROTATION + 1 :]
            results.append(smoothed)
        return results
