"""Standard side channels and output.frame of hmr_node (hmr_ros/ros/side_channels.py,
output_frame.py), pure functions and through the real node with the scripted pipeline."""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

import test_node  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from test_node import RELIABLE, wait_for  # noqa: E402

from hmr_ros.ros import conversions  # noqa: E402
from hmr_ros.ros.side_channels import (  # noqa: E402
    intrinsic_xyz_euler,
    joint_state_message,
    wrist_pose_array,
)

harness_factory = test_node.harness_factory  # the node tests' fixture: node + peer + executor


def _rx(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(b: float) -> np.ndarray:
    return np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])


def _rz(c: float) -> np.ndarray:
    return np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])


def test_euler_angles_recompose_as_a_revolute_x_y_z_chain() -> None:
    """R = Rx(a) Ry(b) Rz(c), the elementary rotations written out (right-handed)."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, c = rng.uniform(-math.pi, math.pi, size=2)
        b = rng.uniform(-1.5, 1.5)
        rotation = _rx(a) @ _ry(b) @ _rz(c)
        np.testing.assert_allclose(intrinsic_xyz_euler(rotation), [a, b, c], atol=1e-9)
    # Gimbal lock: b = +90 deg; the whole remaining rotation goes to a.
    locked = _rx(0.3) @ _ry(math.pi / 2)
    a, b, c = intrinsic_xyz_euler(locked)
    np.testing.assert_allclose(_rx(a) @ _ry(b) @ _rz(c), locked, atol=1e-9)
    assert c == 0.0


def test_joint_state_names_and_a_known_elbow_angle() -> None:
    from _scripted_pipeline import JOINT_NAMES, make_person

    person = make_person('7', phase=1.0)
    body_pose = np.zeros((21, 3), np.float32)
    # body_pose row j is SMPL-X joint j + 1; left_elbow is joint 18 (SMPL-X kinematic order).
    body_pose[17] = (0.0, 0.0, 0.5)  # 0.5 rad about the elbow's z axis only
    person = dataclasses.replace(person, body_pose=body_pose, global_orient=np.zeros(3))
    message = joint_state_message(person, JOINT_NAMES, Header(frame_id='cam'))
    assert len(message.name) == 55 * 3 == len(message.position)
    assert message.name[:3] == ['pelvis_x', 'pelvis_y', 'pelvis_z']
    index = message.name.index('left_elbow_z')
    assert message.position[index] == pytest.approx(0.5)
    assert message.position[index - 2 : index] == pytest.approx([0.0, 0.0])
    assert list(message.velocity) == [] and list(message.effort) == []


def test_wrist_array_is_left_then_right_and_marks_a_missing_side() -> None:
    from _scripted_pipeline import make_person

    person = make_person('7', phase=1.0)
    header = Header(frame_id='cam')
    array = wrist_pose_array({'right': person.right_hand}, header, 'operator')
    assert len(array.poses) == 2
    left, right = array.poses
    assert all(math.isnan(v) for v in (left.position.x, left.position.y, left.position.z))
    assert (left.orientation.x, left.orientation.y, left.orientation.z, left.orientation.w) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )
    expected = conversions.wrist_pose_stamped(person.right_hand, header, 'operator').pose
    assert right == expected
    assert wrist_pose_array({}, header, 'operator') is None


def test_node_publishes_joint_states_and_wrists_for_the_operator(harness_factory) -> None:
    h = harness_factory()
    for topic, kind in (('operator/joint_states', JointState), ('operator/wrists', PoseArray)):
        h.peer.create_subscription(kind, topic, h._recorder(topic), RELIABLE)
    h.start()
    h.send_camera_info()
    stamp = h.first_output()
    assert wait_for(lambda: h.messages('operator/wrists') and h.messages('operator/joint_states'))
    (persons,) = h.with_stamp('persons', stamp)
    states = [m for m in h.messages('operator/joint_states') if m.header.stamp == stamp]
    wrists = [m for m in h.messages('operator/wrists') if m.header.stamp == stamp]
    assert states and wrists
    assert states[0].header.frame_id == persons.header.frame_id
    (right_pose,) = [m for m in h.messages('right_hand/pose') if m.header.stamp == stamp]
    assert wrists[0].poses[1] == right_pose.pose


def test_output_frame_without_tf2_ros_fails_configure_naming_it(harness_factory, capfd) -> None:
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip('tf2_ros is installed: the failure path cannot be shown')
    h = harness_factory(overrides={'output.frame': 'base_link'})
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert "output.frame is 'base_link', which needs tf2_ros" in log
    assert h.options is None, 'fails before loading the models'


def test_detections_output_without_vision_msgs_fails_configure(
    harness_factory, capfd, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, 'vision_msgs', None)
    monkeypatch.setitem(sys.modules, 'vision_msgs.msg', None)
    h = harness_factory(overrides={'output.detections': True})
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert 'output.detections is true but vision_msgs is not installed' in capfd.readouterr().err


def test_tracked_detections_carry_the_track_id_box_and_score(harness_factory) -> None:
    """Detection2D.bbox is centre + size: box (x1, y1, x2, y2) has centre ((x1 + x2) / 2, ...)."""
    vision_msgs = pytest.importorskip('vision_msgs.msg', reason='vision_msgs not built')
    h = harness_factory(overrides={'output.detections': True})
    topic = 'tracked_detections'
    h.peer.create_subscription(vision_msgs.Detection2DArray, topic, h._recorder(topic), RELIABLE)
    h.start()
    h.send_camera_info()
    stamp = h.first_output()
    assert wait_for(lambda: any(m.header.stamp == stamp for m in h.messages(topic)))
    (array,) = [m for m in h.messages(topic) if m.header.stamp == stamp]
    (persons,) = h.with_stamp('persons', stamp)
    assert [d.id for d in array.detections] == [p.id for p in persons.persons]
    detection, person = array.detections[0], persons.persons[0]
    box = person.bbox
    assert detection.bbox.center.position.x == pytest.approx((box.x_min + box.x_max) / 2)
    assert detection.bbox.size_y == pytest.approx(box.y_max - box.y_min)
    assert detection.results[0].hypothesis.class_id == 'person'
    assert detection.results[0].hypothesis.score == pytest.approx(person.confidence)
