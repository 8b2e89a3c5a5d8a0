"""Operator selection: which tracked person drives the teleop outputs.

Implements ``operator.mode`` and ``operator.id`` of docs/ros-interface.md and the stickiness rule
of 5.10: once a person is chosen, the choice holds while that track is ``TRACKED`` or
``PREDICTED`` (coasting), so the robot does not jump between people; only when the track is
``LOST`` or gone is a new operator picked, in the same frame. Modes:

- ``largest``: the confirmed person with the largest box (area in pixels).
- ``closest``: the confirmed person whose root (pelvis) is nearest the camera (smallest depth,
  metres); falls back to ``largest`` when no depth is known for anyone.
- ``id``: exactly the track ``operator.id`` while it is ``TRACKED`` or ``PREDICTED``, else none.
- ``none``: no operator (the per-side wrist poses and operator TF aliases are not published).

New operators are picked among ``TRACKED`` tracks only: a ``TENTATIVE`` track may be a false
detection and a ``PREDICTED`` one is not seen in this frame.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

from hmr_ros.pipeline.tracking import Track, TrackState

OPERATOR_MODES: tuple[str, ...] = ('largest', 'closest', 'id', 'none')
"""Valid ``operator.mode`` values."""

_KEEPS_OPERATOR = (TrackState.TRACKED, TrackState.PREDICTED)


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """Operator selection settings (docs/ros-interface.md, ``operator.*``, both dynamic).

    Attributes:
        mode: One of :data:`OPERATOR_MODES`.
        id: Track id to follow when ``mode`` is ``'id'``; ignored otherwise.
    """

    mode: str = 'largest'
    id: str = ''

    def __post_init__(self) -> None:
        if self.mode not in OPERATOR_MODES:
            raise ValueError(
                f'operator.mode {self.mode!r} is not valid; choose one of '
                f'{", ".join(OPERATOR_MODES)}'
            )
        if self.mode == 'id' and not self.id:
            raise ValueError(
                "operator.mode 'id' needs operator.id set to a track id (see the persons topic)"
            )


class OperatorSelector:
    """Sticky operator choice over the tracker's output (see the module docstring).

    Not thread-safe: call it from the inference worker only.
    """

    def __init__(self, config: OperatorConfig | None = None) -> None:
        self._config = config if config is not None else OperatorConfig()
        self._current_id: str | None = None

    @property
    def config(self) -> OperatorConfig:
        """Current settings."""
        return self._config

    def set_config(self, config: OperatorConfig) -> None:
        """Apply new settings; a changed mode or id drops the current choice.

        The next :meth:`select` then picks afresh, as a user changing ``operator.mode`` expects.
        """
        if config != self._config:
            self._current_id = None
        self._config = config

    @property
    def current_id(self) -> str | None:
        """Id chosen by the last :meth:`select`, None when there is no operator."""
        return self._current_id

    def reset(self) -> None:
        """Forget the current operator (e.g. the ``~/reset_tracking`` service)."""
        self._current_id = None

    def select(
        self, tracks: Iterable[Track], root_depth_m: Mapping[str, float] | None = None
    ) -> str | None:
        """Choose the operator for one frame.

        Args:
            tracks: This frame's tracker output.
            root_depth_m: Root (pelvis) depth along the camera's optical axis, metres, by track
                id; used by ``closest``. Missing or non-finite entries count as unknown.

        Returns:
            The operator's track id, or None when there is none.
        """
        states = {track.id: track for track in tracks}
        mode = self._config.mode
        if mode == 'none':
            self._current_id = None
        elif mode == 'id':
            wanted = states.get(self._config.id)
            keep = wanted is not None and wanted.state in _KEEPS_OPERATOR
            self._current_id = self._config.id if keep else None
        else:
            current = states.get(self._current_id) if self._current_id is not None else None
            if current is None or current.state not in _KEEPS_OPERATOR:
                candidates = [
                    track for track in states.values() if track.state == TrackState.TRACKED
                ]
                self._current_id = _pick(mode, candidates, root_depth_m or {})
        return self._current_id


def _pick(mode: str, candidates: list[Track], root_depth_m: Mapping[str, float]) -> str | None:
    """Pick a new operator among confirmed, visible tracks; ties go to the earlier track."""
    if not candidates:
        return None
    if mode == 'closest':
        depths = {
            track.id: root_depth_m[track.id]
            for track in candidates
            if track.id in root_depth_m
            and math.isfinite(root_depth_m[track.id])
            and root_depth_m[track.id] > 0.0
        }
        if depths:
            return min(depths, key=lambda track_id: depths[track_id])
    return max(candidates, key=lambda track: track.area_px).id
