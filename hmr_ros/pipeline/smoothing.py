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
(ros-interface.md 5.9). Filters are per track id and reset when a track is created or
re-acquired after coasting (:class:`TrackFilterBank`). Smoothing adds lag; ``output.publish_raw``
exists for consumers that filter themselves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np

from hmr_ros.pipeline.tracking import Track, TrackState

QUATERNION_SIZE = 4
ROTATION_VECTOR_SIZE = 3
_SMALL_ANGLE_RAD = 1e-8  # below this, sin(x)/x and x/sin(x) use their series


@dataclasses.dataclass(frozen=True)
class OneEuroConfig:
    """One-Euro filter settings (ros-interface.md 5.6, ``smoothing.body.*``/``smoothing.hands.*``).

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


def smoothing_factor(elapsed_s: float, cutoff_hz: float | np.ndarray) -> float | np.ndarray:
    """Exponential smoothing factor of a first-order low-pass filter.

    Args:
        elapsed_s: Time since the previous sample, seconds (> 0).
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
        step = _quaternion_log(_quaternion_multiply(_quaternion_conjugate(value), q))
        # 3. Angular speed, low-passed; cutoff from its norm.
        speed_alpha = smoothing_factor(elapsed_s, config.d_cutoff_hz)
        speed = speed_alpha * (step / elapsed_s) + (1.0 - speed_alpha) * speed
        cutoff_hz = config.min_cutoff_hz + config.beta * np.linalg.norm(speed, axis=-1)
        alpha = smoothing_factor(elapsed_s, cutoff_hz)
        # 4. Move the estimate by the fraction alpha of the step (slerp).
        moved = _quaternion_multiply(value, _quaternion_exp(np.expand_dims(alpha, -1) * step))
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
    the new measurement instead of dragging the stale estimate (ros-interface.md 5.9). A track's
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


def _quaternion_conjugate(q: np.ndarray) -> np.ndarray:
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def _quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a b`` of ``(..., 4)`` quaternions ``(x, y, z, w)``."""
    a_vec, a_w = a[..., :3], a[..., 3:]
    b_vec, b_w = b[..., :3], b[..., 3:]
    vec = a_w * b_vec + b_w * a_vec + np.cross(a_vec, b_vec)
    w = a_w * b_w - np.sum(a_vec * b_vec, axis=-1, keepdims=True)
    return np.concatenate([vec, w], axis=-1)


def _quaternion_log(q: np.ndarray) -> np.ndarray:
    """Rotation vector ``(..., 3)``, radians, of unit quaternions with ``w >= 0``."""
    vec, w = q[..., :3], q[..., 3]
    sin_half = np.linalg.norm(vec, axis=-1)
    angle = 2.0 * np.arctan2(sin_half, w)
    small = sin_half < _SMALL_ANGLE_RAD
    # angle / sin(angle / 2) -> 2 / w as the angle -> 0.
    scale = np.where(small, 2.0 / np.maximum(w, 0.5), angle / np.where(small, 1.0, sin_half))
    return vec * scale[..., None]


def _quaternion_exp(rotation_vector: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` ``(x, y, z, w)`` of rotation vectors ``(..., 3)``, radians."""
    angle = np.linalg.norm(rotation_vector, axis=-1)
    small = angle < _SMALL_ANGLE_RAD
    # sin(angle / 2) / angle -> 1/2 - angle^2 / 48 as the angle -> 0.
    scale = np.where(
        small, 0.5 - angle**2 / 48.0, np.sin(0.5 * angle) / np.where(small, 1.0, angle)
    )
    return np.concatenate(
        [rotation_vector * scale[..., None], np.cos(0.5 * angle)[..., None]], axis=-1
    )
