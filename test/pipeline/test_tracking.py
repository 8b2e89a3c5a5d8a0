"""Tests for hmr_ros.pipeline.tracking: ids, states, coasting and association."""

import numpy as np
import pytest

from hmr_ros.pipeline.tracking import (
    BoxTracker,
    Track,
    TrackerConfig,
    TrackState,
    associate_greedy,
    box_iou,
)

FRAME_S = 1.0 / 30.0


def box_at(x: float, y: float = 100.0, width: float = 100.0, height: float = 200.0) -> list:
    return [x, y, x + width, y + height]


def by_id(tracks: tuple[Track, ...]) -> dict[str, Track]:
    return {track.id: track for track in tracks}


def test_defaults_follow_ros_interface_5_6() -> None:
    config = TrackerConfig()
    assert (config.iou_threshold, config.min_hits, config.max_coast_s) == (0.3, 2, 0.3)
    assert config.max_tracks >= 4  # at least detection.max_persons


@pytest.mark.parametrize(
    ('changes', 'fragment'),
    [
        ({'iou_threshold': 0.0}, 'iou_threshold'),
        ({'iou_threshold': 1.5}, 'iou_threshold'),
        ({'min_hits': 0}, 'min_hits'),
        ({'min_hits': 2.5}, 'min_hits'),
        ({'max_coast_s': -0.1}, 'max_coast_s'),
        ({'max_coast_s': float('nan')}, 'max_coast_s'),
        ({'max_tracks': 0}, 'max_tracks'),
        ({'velocity_gain': 0.0}, 'velocity_gain'),
    ],
)
def test_config_rejects_bad_values(changes: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        TrackerConfig(**changes)


def test_box_iou_matches_a_hand_computation() -> None:
    """Boxes [0,0,10,10] and [5,0,15,10]: intersection 50, union 150, IoU 1/3."""
    iou = box_iou(
        np.array([[0, 0, 10, 10], [0, 0, 0, 0]]), np.array([[5, 0, 15, 10], [0, 0, 10, 10]])
    )
    np.testing.assert_allclose(iou, [[1 / 3, 1.0], [0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), np.zeros((2, 4))).shape == (0, 2)


def test_associate_greedy_takes_the_best_pair_first() -> None:
    """Track 0 overlaps both detections; greedy gives it its best (0.9) and track 1 the rest."""
    iou = np.array([[0.5, 0.9], [0.6, 0.0]])
    assert associate_greedy(iou, 0.3) == [(0, 1), (1, 0)]
    assert associate_greedy(iou, 0.95) == []


def test_id_persists_over_a_moving_box_and_confirms_after_min_hits() -> None:
    tracker = BoxTracker(id_prefix='p')
    states = []
    ids = set()
    for frame in range(20):
        (track,) = tracker.update([box_at(10.0 + 8.0 * frame)], [0.9], frame * FRAME_S)
        states.append(track.state)
        ids.add(track.id)
        assert track.detection_index == 0
        assert track.hits == track.age_frames == frame + 1
        assert track.last_seen_s == frame * FRAME_S
    assert ids == {'p1'}
    assert states[0] == TrackState.TENTATIVE
    assert set(states[1:]) == {TrackState.TRACKED}
    # Velocity of every corner: 8 px per frame at 30 Hz = 240 px/s in x, none in y.
    np.testing.assert_allclose(track.velocity_px_s, (240.0, 0.0, 240.0, 0.0), atol=1e-6)


def test_min_hits_one_confirms_at_once() -> None:
    tracker = BoxTracker(TrackerConfig(min_hits=1), id_prefix='p')
    (track,) = tracker.update([box_at(0.0)], [0.8], 0.0)
    assert track.state == TrackState.TRACKED


def test_a_new_person_gets_a_new_id_and_ids_are_not_detection_indices() -> None:
    tracker = BoxTracker(id_prefix='p')
    tracker.update([box_at(0.0)], [0.9], 0.0)
    tracker.update([box_at(2.0)], [0.9], FRAME_S)
    # The newcomer is listed first in the detections but must not take id 'p1'.
    tracks = by_id(tracker.update([box_at(500.0), box_at(4.0)], [0.8, 0.9], 2 * FRAME_S))
    assert set(tracks) == {'p1', 'p2'}
    assert tracks['p1'].detection_index == 1
    assert tracks['p1'].state == TrackState.TRACKED
    assert tracks['p2'].detection_index == 0
    assert tracks['p2'].state == TrackState.TENTATIVE
    assert tracks['p2'].box_px == tuple(box_at(500.0))


def test_short_gap_coasts_as_predicted_and_reassociates_with_the_same_id() -> None:
    """Box moves 6 px per frame (180 px/s); missing for 5 frames (0.167 s < 0.3 s)."""
    tracker = BoxTracker(id_prefix='p')
    for frame in range(5):
        tracker.update([box_at(6.0 * frame)], [0.9], frame * FRAME_S)
    for frame in range(5, 10):
        (track,) = tracker.update(np.zeros((0, 4)), np.zeros(0), frame * FRAME_S)
        assert track.id == 'p1'
        assert track.state == TrackState.PREDICTED
        assert track.detection_index is None
        assert track.last_seen_s == 4 * FRAME_S
        # Constant-velocity prediction: x1 = 6 * frame.
        assert track.box_px[0] == pytest.approx(6.0 * frame, abs=1e-6)
    (track,) = tracker.update([box_at(60.0)], [0.7], 10 * FRAME_S)
    assert (track.id, track.state, track.score) == ('p1', TrackState.TRACKED, 0.7)
    assert track.hits == 6
    assert track.age_frames == 11


def test_long_gap_reports_lost_once_then_the_track_is_gone() -> None:
    tracker = BoxTracker(id_prefix='p')
    for frame in range(3):
        tracker.update([box_at(0.0)], [0.9], frame * FRAME_S)
    last_seen_s = 2 * FRAME_S
    states = []
    stamp_s = last_seen_s
    while stamp_s < last_seen_s + 0.5:
        stamp_s += FRAME_S
        states.append(
            [(t.id, t.state, stamp_s - last_seen_s) for t in tracker.update([], [], stamp_s)]
        )
    flat = [entry for frame in states for entry in frame]
    lost = [entry for entry in flat if entry[1] == TrackState.LOST]
    assert len(lost) == 1
    assert lost[0][2] > 0.3
    assert all(entry[1] == TrackState.PREDICTED and entry[2] <= 0.3 for entry in flat[:-1])
    assert states[-1] == [] and tracker.live_tracks == 0
    # The same person coming back is a new person.
    (track,) = tracker.update([box_at(0.0)], [0.9], stamp_s + FRAME_S)
    assert track.id == 'p2'


def test_unconfirmed_track_missed_once_is_lost() -> None:
    tracker = BoxTracker(TrackerConfig(min_hits=3), id_prefix='p')
    tracker.update([box_at(0.0)], [0.9], 0.0)
    (track,) = tracker.update([], [], FRAME_S)
    assert track.state == TrackState.LOST
    assert tracker.update([], [], 2 * FRAME_S) == ()


def test_crossing_people_keep_their_ids() -> None:
    """A walks right from x=0, B left from x=780, 20 px per frame each, 30 px apart vertically.

    At frame 20, A's previous box and B's new box share x: with the 30 px vertical offset their
    IoU is 100*170 / (2*20000 - 17000) = 0.74, while A's own new box, 20 px on, has IoU
    80*200 / (2*20000 - 16000) = 0.67. Matching to last positions would swap the ids; the
    constant-velocity prediction keeps them.
    """
    tracker = BoxTracker(id_prefix='p')
    ids_a, ids_b = set(), set()
    for frame in range(40):
        a = box_at(20.0 * frame, y=100.0)
        b = box_at(780.0 - 20.0 * frame, y=130.0)
        detections, scores = [b, a], [0.9, 0.9]
        if frame % 2:
            detections, scores = [a, b], [0.9, 0.9]
        tracks = tracker.update(detections, scores, frame * FRAME_S)
        assert len(tracks) == 2
        for track in tracks:
            (ids_a if track.box_px == tuple(a) else ids_b).add(track.id)
    assert ids_a == {'p1'} or ids_a == {'p2'}
    assert len(ids_b) == 1 and ids_a != ids_b


def test_max_tracks_limits_new_tracks_by_score() -> None:
    tracker = BoxTracker(TrackerConfig(max_tracks=2), id_prefix='p')
    boxes = [box_at(0.0), box_at(300.0), box_at(600.0)]
    tracks = tracker.update(boxes, [0.5, 0.9, 0.7], 0.0)
    assert [track.detection_index for track in tracks] == [1, 2]
    assert tracker.live_tracks == 2


def test_reset_reports_lost_tracks_and_never_reuses_ids() -> None:
    tracker = BoxTracker(id_prefix='p')
    tracker.update([box_at(0.0), box_at(300.0)], [0.9, 0.9], 0.0)
    lost = tracker.reset()
    assert [(t.id, t.state) for t in lost] == [('p1', TrackState.LOST), ('p2', TrackState.LOST)]
    assert tracker.live_tracks == 0
    (track,) = tracker.update([box_at(0.0)], [0.9], 0.0)
    assert track.id == 'p3'


def test_stamp_going_back_resets_and_reports_the_old_tracks_lost() -> None:
    tracker = BoxTracker(id_prefix='p')
    tracker.update([box_at(0.0)], [0.9], 10.0)
    tracks = tracker.update([box_at(0.0)], [0.9], 1.0)
    assert [(t.id, t.state) for t in tracks] == [
        ('p1', TrackState.LOST),
        ('p2', TrackState.TENTATIVE),
    ]


def test_set_config_keeps_tracks_and_applies_from_the_next_update() -> None:
    tracker = BoxTracker(id_prefix='p')
    tracker.update([box_at(0.0)], [0.9], 0.0)
    tracker.update([box_at(0.0)], [0.9], FRAME_S)
    tracker.set_config(TrackerConfig(max_coast_s=0.0))
    (track,) = tracker.update([], [], 2 * FRAME_S)
    assert (track.id, track.state) == ('p1', TrackState.LOST)


@pytest.mark.parametrize(
    ('boxes', 'scores', 'fragment'),
    [
        ([[0, 0, 1]], [0.5], r'shape \(N, 4\)'),
        ([[0, 0, 1, 1]], [0.5, 0.5], 'one per box'),
        ([[0, 0, float('nan'), 1]], [0.5], 'finite'),
        ([[10, 0, 1, 1]], [0.5], 'x2 >= x1'),
    ],
)
def test_update_rejects_malformed_detections(boxes: list, scores: list, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        BoxTracker(id_prefix='p').update(boxes, scores, 0.0)


def test_outputs_are_frozen() -> None:
    (track,) = BoxTracker(id_prefix='p').update([box_at(0.0)], [0.9], 0.0)
    with pytest.raises(AttributeError):
        track.state = TrackState.LOST  # type: ignore[misc]
    assert track.center_px == (50.0, 200.0)
    assert track.area_px == 100.0 * 200.0


def test_single_person_mode_keeps_the_id_through_a_jump() -> None:
    """With one live track and one detection, single_person matches them at any IoU."""
    tracker = BoxTracker(TrackerConfig(min_hits=2), id_prefix='p')
    first = tracker.update([[0, 0, 100, 200]], [0.9], 0.0, single_person=True)
    # A disjoint box: IoU 0, which would end the tentative track and start id 'p2'.
    jumped = tracker.update([[300, 0, 400, 200]], [0.9], 0.033, single_person=True)
    assert [t.id for t in jumped] == [first[0].id]
    assert jumped[0].state == TrackState.TRACKED
    plain = BoxTracker(TrackerConfig(min_hits=2), id_prefix='p')
    plain.update([[0, 0, 100, 200]], [0.9], 0.0)
    assert [t.state for t in plain.update([[300, 0, 400, 200]], [0.9], 0.033)] == [
        TrackState.LOST,
        TrackState.TENTATIVE,
    ]


def test_ids_start_with_a_letter_and_differ_between_trackers() -> None:
    """REP 155: ids are usable in TF frame names (start with a letter); a new tracker (a new run
    or a reconfigured pipeline) draws a new prefix, so its ids never repeat an old run's."""
    first = [t.id for t in BoxTracker().update([box_at(0.0)], [0.9], 0.0)]
    second = [t.id for t in BoxTracker().update([box_at(0.0)], [0.9], 0.0)]
    assert first[0][0].isalpha() and second[0][0].isalpha()
    assert first != second
    with pytest.raises(ValueError, match='start with a letter'):
        BoxTracker(id_prefix='7')


def test_root_velocity_is_the_rate_of_the_matched_positions() -> None:
    """Root at z = 2.0 m then 2.1 m 0.1 s later: 1 m/s along z (first difference, gain unused);
    a third sample 2.3 m after 0.1 s measures 2 m/s, averaged with gain 0.5 to 1.5 m/s."""
    tracker = BoxTracker(TrackerConfig(velocity_gain=0.5), id_prefix='p')
    stamps, depths = (0.0, 0.1, 0.2), (2.0, 2.1, 2.3)
    velocities = []
    for stamp_s, depth in zip(stamps, depths, strict=True):
        (track,) = tracker.update(
            [box_at(0.0)], [0.9], stamp_s, positions_m=np.array([[0.0, 0.0, depth]])
        )
        velocities.append(track.velocity_mps)
    np.testing.assert_allclose(velocities, [[0, 0, 0], [0, 0, 1.0], [0, 0, 1.5]], atol=1e-9)
    (coasting,) = tracker.update([], [], 0.25)
    assert coasting.state == TrackState.PREDICTED
    np.testing.assert_allclose(coasting.velocity_mps, [0, 0, 1.5], atol=1e-9)
