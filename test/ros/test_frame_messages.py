"""The fast PersonArray/HandPoseArray builder equals the readable per-object builders."""

from __future__ import annotations

import array
import dataclasses

import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

from _scripted_pipeline import make_person  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from hmr_ros.msg import HandPoseArray, PersonArray  # noqa: E402
from hmr_ros.pipeline.results import FrameResult  # noqa: E402
from hmr_ros.pipeline.tracking import TrackState  # noqa: E402
from hmr_ros.ros import conversions  # noqa: E402


def assert_messages_equal(actual: object, expected: object, path: str = 'msg') -> None:
    """Field by field, recursively; float fields within 1e-6 (float32 rounding of one ulp)."""
    fields = getattr(type(expected), 'get_fields_and_field_types', None)
    if fields is not None:
        assert type(actual) is type(expected), path
        for name in fields():
            assert_messages_equal(getattr(actual, name), getattr(expected, name), f'{path}.{name}')
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path  # type: ignore[arg-type]
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):  # type: ignore[call-overload]
            assert_messages_equal(a, e, f'{path}[{i}]')
    elif isinstance(expected, (np.ndarray, array.array, float)):
        a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
        assert a.shape == e.shape, path
        np.testing.assert_allclose(a, e, atol=1e-6, err_msg=path)
    else:
        assert actual == expected, path


def persons_mix() -> tuple:
    """Tracked with vertices, low-confidence hands, invalid hands, LOST, non-finite root."""
    nan_root = make_person('9', phase=0.4)
    nan_root = dataclasses.replace(nan_root, root_position_m=np.full(3, np.nan))
    float32 = make_person('11', phase=1.3, with_vertices=True)
    float32 = dataclasses.replace(
        float32,
        root_rotation=float32.root_rotation.astype(np.float32),
        joints_m=float32.joints_m.astype(np.float32),
    )
    return (
        make_person('1', with_vertices=True),
        make_person('2', hand_confidence=0.4),
        make_person('3', hands_valid=False),
        make_person('4', state=TrackState.LOST),
        nan_root,
        float32,
    )


@pytest.mark.parametrize('convention', ['operator', 'smplx'])
def test_fast_messages_equal_the_readable_builders(convention: str) -> None:
    result = FrameResult(stamp_s=1.0, frame_id='cam', frame_index=3, persons=persons_mix())
    header = conversions.make_header(Time(sec=12, nanosec=34), 'cam')
    people, hands = conversions.frame_messages(result, header, 17, 0.025, convention, 0.5)
    expected_people = conversions.person_array_message(result, header, 17, 0.025, convention)
    expected_hands = conversions.hand_pose_array_message(result, header, 17, convention, 0.5)
    assert_messages_equal(people, expected_people)
    assert_messages_equal(hands, expected_hands)
    assert len(hands.hands) == 6  # persons 1, 9 and 11: usable hands only
    assert len(people.persons[0].vertices) == 15
    # What goes on the wire is the same too.
    for message, kind in ((people, PersonArray), (hands, HandPoseArray)):
        assert_messages_equal(deserialize_message(serialize_message(message), kind), message)


def test_fast_messages_of_an_empty_frame_and_bad_sizes() -> None:
    header = conversions.make_header(Time(sec=1), 'cam')
    empty = FrameResult(stamp_s=1.0, frame_id='cam', frame_index=1, persons=())
    people, hands = conversions.frame_messages(empty, header, 1, 0.0, 'operator', 0.5)
    assert people.persons == [] and hands.hands == [] and people.header.frame_id == 'cam'
    broken = dataclasses.replace(make_person('1'), body_pose=np.zeros((20, 3)))
    with pytest.raises(ValueError, match='body_pose'):
        conversions.frame_messages(
            FrameResult(1.0, 'cam', 1, (broken,)), header, 1, 0.0, 'operator', 0.5
        )


def test_float32_sequence_is_an_array_of_float32() -> None:
    values = np.arange(6, dtype=np.float64).reshape(2, 3) / 3
    sequence = conversions.float32_sequence(values)
    assert isinstance(sequence, array.array) and sequence.typecode == 'f'
    np.testing.assert_array_equal(np.asarray(sequence), values.astype(np.float32).ravel())
    assert len(conversions.float32_sequence(np.zeros((0, 3)))) == 0
