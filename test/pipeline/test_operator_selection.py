"""Tests for hmr_ros.pipeline.operator: the four modes and stickiness."""

import pytest

from hmr_ros.pipeline.operator_selection import OPERATOR_MODES, OperatorConfig, OperatorSelector
from hmr_ros.pipeline.tracking import BoxTracker, Track, TrackState


def person(track_id: str, width: float, state: TrackState = TrackState.TRACKED) -> Track:
    """A track whose box is width x 2*width pixels (area 2 width^2)."""
    return Track(track_id, state, (0.0, 0.0, width, 2 * width), 0.9, 5, 5, 0.0, (0.0,) * 4, 0)


def test_defaults_and_modes_follow_ros_interface_5_6() -> None:
    assert OperatorConfig() == OperatorConfig(mode='largest', id='')
    assert OPERATOR_MODES == ('largest', 'closest', 'id', 'none')


@pytest.mark.parametrize(
    ('changes', 'fragment'),
    [({'mode': 'nearest'}, 'largest, closest, id, none'), ({'mode': 'id'}, 'operator.id')],
)
def test_config_rejects_bad_values(changes: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        OperatorConfig(**changes)


def test_largest_picks_the_biggest_confirmed_box() -> None:
    selector = OperatorSelector()
    tracks = [
        person('1', 100),
        person('2', 150),
        person('3', 400, TrackState.TENTATIVE),
        person('4', 300, TrackState.PREDICTED),
        person('5', 500, TrackState.LOST),
    ]
    assert selector.select(tracks) == '2'
    assert selector.current_id == '2'


def test_largest_is_sticky_until_the_operator_is_lost() -> None:
    selector = OperatorSelector()
    assert selector.select([person('1', 100), person('2', 50)]) == '1'
    # Someone bigger arrives: the operator stays.
    assert selector.select([person('1', 100), person('2', 300)]) == '1'
    # The operator coasts: still the operator.
    assert selector.select([person('1', 100, TrackState.PREDICTED), person('2', 300)]) == '1'
    # The operator is lost: the largest remaining person takes over in the same frame.
    assert selector.select([person('1', 100, TrackState.LOST), person('2', 300)]) == '2'
    assert selector.select([person('2', 300), person('3', 50)]) == '2'
    # Gone without a LOST report (e.g. after a tracker reset): re-selected too.
    assert selector.select([person('3', 50)]) == '3'


def test_no_operator_without_confirmed_people() -> None:
    selector = OperatorSelector()
    assert selector.select([]) is None
    assert selector.select([person('1', 100, TrackState.TENTATIVE)]) is None
    assert selector.select([person('1', 100, TrackState.TRACKED)]) == '1'


def test_closest_picks_the_smallest_root_depth_and_is_sticky() -> None:
    selector = OperatorSelector(OperatorConfig(mode='closest'))
    tracks = [person('1', 300), person('2', 100), person('3', 100, TrackState.TENTATIVE)]
    assert selector.select(tracks, {'1': 3.0, '2': 1.5, '3': 0.5}) == '2'
    assert selector.select(tracks, {'1': 0.8, '2': 1.5, '3': 0.5}) == '2'
    tracks[1] = person('2', 100, TrackState.LOST)
    assert selector.select(tracks, {'1': 0.8, '3': 0.5}) == '1'


def test_closest_ignores_unknown_depths_and_falls_back_to_largest() -> None:
    selector = OperatorSelector(OperatorConfig(mode='closest'))
    tracks = [person('1', 300), person('2', 100), person('3', 200)]
    assert selector.select(tracks, {'1': float('nan'), '2': -1.0, '3': 2.0}) == '3'
    selector.reset()
    assert selector.select(tracks, {}) == '1'
    selector.reset()
    assert selector.select(tracks) == '1'


def test_id_mode_follows_exactly_the_configured_track() -> None:
    selector = OperatorSelector(OperatorConfig(mode='id', id='2'))
    assert selector.select([person('1', 300), person('2', 100)]) == '2'
    assert selector.select([person('1', 300), person('2', 100, TrackState.PREDICTED)]) == '2'
    assert selector.select([person('1', 300), person('2', 100, TrackState.LOST)]) is None
    assert selector.select([person('1', 300)]) is None
    assert selector.select([person('2', 100, TrackState.TENTATIVE)]) is None


def test_none_mode_never_selects() -> None:
    selector = OperatorSelector(OperatorConfig(mode='none'))
    assert selector.select([person('1', 300)]) is None
    assert selector.current_id is None


def test_changing_the_mode_reselects_and_an_unchanged_config_keeps_the_operator() -> None:
    selector = OperatorSelector()
    tracks = [person('1', 100), person('2', 300)]
    depths = {'1': 1.0, '2': 4.0}
    assert selector.select([person('1', 100)], depths) == '1'
    assert selector.select(tracks, depths) == '1'
    selector.set_config(OperatorConfig())
    assert selector.select(tracks, depths) == '1'
    selector.set_config(OperatorConfig(mode='largest', id='7'))  # id changed: pick afresh
    assert selector.select(tracks, depths) == '2'
    selector.set_config(OperatorConfig(mode='closest'))
    assert selector.select(tracks, depths) == '1'
    selector.set_config(OperatorConfig(mode='none'))
    assert selector.select(tracks, depths) is None


def test_works_on_real_tracker_output() -> None:
    """Two people through BoxTracker: the operator is confirmed on frame 2 and survives a gap."""
    tracker = BoxTracker(id_prefix='p')
    selector = OperatorSelector()
    small, large = [0.0, 0.0, 50.0, 100.0], [200.0, 0.0, 400.0, 400.0]
    assert selector.select(tracker.update([small, large], [0.9, 0.9], 0.0)) is None
    assert selector.select(tracker.update([small, large], [0.9, 0.9], 0.033)) == 'p2'
    assert selector.select(tracker.update([small], [0.9], 0.066)) == 'p2'  # coasting
    frames = [tracker.update([small], [0.9], 0.066 + 0.033 * k) for k in range(1, 12)]
    assert [selector.select(frame) for frame in frames][-1] == 'p1'
