"""Tests for hmr_ros.ros.tf_frames: frame names, selection, orientations and tree composition."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

from _scripted_pipeline import (  # noqa: E402
    FACING_CAMERA,
    JOINT_NAMES,
    axis_angle_matrix,
    make_person,
)
from builtin_interfaces.msg import Time  # noqa: E402
from test_conversions import quaternion_matrix  # noqa: E402

from hmr_ros.body_models.joint_names import SMPLX_JOINT_INDEX  # noqa: E402
from hmr_ros.pipeline.tracking import TrackState  # noqa: E402
from hmr_ros.ros import conversions, tf_frames  # noqa: E402
from hmr_ros.ros.tf_frames import FramePose, TfSettings  # noqa: E402

CAMERA = 'camera_color_optical_frame'
TIPS = ('thumb', 'index', 'middle', 'ring', 'pinky')


def camera_poses(poses: list[FramePose]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Compose every frame up to CAMERA: p_cam = R_parent p + t_parent, R_cam = R_parent R."""
    by_child = {pose.child: pose for pose in poses}
    resolved: dict[str, tuple[np.ndarray, np.ndarray]] = {CAMERA: (np.zeros(3), np.eye(3))}

    def resolve(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in resolved:
            pose = by_child[name]
            parent_position, parent_rotation = resolve(pose.parent)
            resolved[name] = (
                parent_rotation @ pose.translation_m + parent_position,
                parent_rotation @ pose.rotation,
            )
        return resolved[name]

    return {pose.child: resolve(pose.child) for pose in poses}


def test_frame_names_follow_rep120() -> None:
    assert tf_frames.joint_frame_name('left_index') == 'l_index_tip'
    assert tf_frames.joint_frame_name('right_pinky_tip') == 'r_pinky_tip'
    assert tf_frames.joint_frame_name('left_eye_smplhf') == 'l_eye'
    assert tf_frames.joint_frame_name('right_index1') == 'r_index1'
    assert tf_frames.joint_frame_name('head') == 'head'


def test_joint_sets() -> None:
    """minimal = head + 2 wrists + 10 tips = 13; hands adds 2 x 15 finger joints = 43; full =
    every reported joint but the pelvis (the body frame itself) = 55 + 10 - 1 = 64."""
    assert len(tf_frames.selected_joints(JOINT_NAMES, 'minimal')) == 13
    assert len(tf_frames.selected_joints(JOINT_NAMES, 'hands')) == 43
    full = tf_frames.selected_joints(JOINT_NAMES, 'full')
    assert len(full) == 64 and 'pelvis' not in full
    with pytest.raises(ValueError, match='tf.joints'):
        tf_frames.selected_joints(JOINT_NAMES, 'most')


def test_forward_kinematics_of_zero_pose_and_of_one_elbow() -> None:
    """Zero local rotations: every joint has the root's rotation. Bending only the left elbow
    by E: the left wrist and fingers get root @ E, the right arm stays at root."""
    person = make_person()
    zero = dataclasses.replace(
        person,
        body_pose=np.zeros((21, 3)),
        jaw_pose=np.zeros(3),
        left_hand_pose=np.zeros((15, 3)),
        right_hand_pose=np.zeros((15, 3)),
    )
    rotations = tf_frames.smplx_global_rotations(zero)
    np.testing.assert_allclose(rotations, np.broadcast_to(zero.root_rotation, (55, 3, 3)))
    elbow = np.zeros((21, 3))
    elbow[SMPLX_JOINT_INDEX['left_elbow'] - 1] = [0.0, 0.0, 1.2]
    bent = tf_frames.smplx_global_rotations(dataclasses.replace(zero, body_pose=elbow))
    expected = zero.root_rotation @ axis_angle_matrix([0.0, 0.0, 1.2])
    for joint in ('left_wrist', 'left_index3'):
        np.testing.assert_allclose(bent[SMPLX_JOINT_INDEX[joint]], expected, atol=1e-12)
    np.testing.assert_allclose(bent[SMPLX_JOINT_INDEX['right_wrist']], zero.root_rotation)


@pytest.mark.parametrize(
    ('joints', 'tree'), [('minimal', 'flat'), ('hands', 'kinematic'), ('full', 'kinematic')]
)
def test_frames_compose_to_the_published_joint_positions(joints: str, tree: str) -> None:
    """Chaining each frame's transforms up to the camera gives exactly the person's joints."""
    person = make_person('7')
    settings = TfSettings(joints=joints, tree=tree)
    poses = tf_frames.person_frame_poses(person, JOINT_NAMES, CAMERA, settings)
    composed = camera_poses(poses)
    np.testing.assert_allclose(composed['body_7'][0], person.root_position_m, atol=1e-12)
    for joint in tf_frames.selected_joints(JOINT_NAMES, joints):
        frame = f'{tf_frames.joint_frame_name(joint)}_7'
        np.testing.assert_allclose(
            composed[frame][0], person.joints_m[JOINT_NAMES.index(joint)], atol=1e-9
        )
    for pose in poses:
        np.testing.assert_allclose(pose.rotation @ pose.rotation.T, np.eye(3), atol=1e-9)


def test_flat_tree_parents_and_kinematic_tree_parents() -> None:
    person = make_person('7')
    flat = tf_frames.person_frame_poses(person, JOINT_NAMES, CAMERA, TfSettings())
    assert flat[0] == flat[0]._replace(parent=CAMERA, child='body_7')
    assert {pose.parent for pose in flat[1:]} == {'body_7'}
    assert {pose.child for pose in flat} == {
        'body_7',
        'head_7',
        'l_wrist_7',
        'r_wrist_7',
        *(f'{side}_{tip}_tip_7' for side in 'lr' for tip in TIPS),
    }
    kinematic = tf_frames.person_frame_poses(
        person, JOINT_NAMES, CAMERA, TfSettings(joints='hands', tree='kinematic')
    )
    parents = {pose.child: pose.parent for pose in kinematic}
    assert parents['l_index1_7'] == 'l_wrist_7'
    assert parents['l_index2_7'] == 'l_index1_7'
    assert parents['l_index_tip_7'] == 'l_index3_7'
    assert parents['l_wrist_7'] == 'body_7'  # the elbow is not published: nearest ancestor


def test_orientations_body_rep155_wrists_by_hand_convention() -> None:
    """body_<id> = root rotation remapped; wrists = the HandPose wrist orientation (operator:
    the rotation make_hand used; smplx: the hand's wrist rotation remapped)."""
    person = make_person('7')
    for convention in ('operator', 'smplx'):
        settings = TfSettings(hand_frame_convention=convention)
        composed = camera_poses(
            tf_frames.person_frame_poses(person, JOINT_NAMES, CAMERA, settings)
        )
        np.testing.assert_allclose(
            composed['body_7'][1], conversions.smplx_frame_rotation(person.root_rotation)
        )
        np.testing.assert_allclose(
            composed['l_wrist_7'][1],
            conversions.hand_wrist_rotation(person.left_hand, convention),
            atol=1e-9,
        )
    np.testing.assert_allclose(
        camera_poses(tf_frames.person_frame_poses(person, JOINT_NAMES, CAMERA, TfSettings()))[
            'r_wrist_7'
        ][1],
        person.right_hand.wrist_rotation,
        atol=1e-9,
    )


def test_invalid_hand_wrist_falls_back_to_the_body() -> None:
    """With an invalid hand and 'smplx', the wrist frame is the body's forward kinematics."""
    person = make_person('7', hands_valid=False)
    composed = camera_poses(
        tf_frames.person_frame_poses(
            person, JOINT_NAMES, CAMERA, TfSettings(hand_frame_convention='smplx')
        )
    )
    fk = tf_frames.smplx_global_rotations(person)[SMPLX_JOINT_INDEX['left_wrist']]
    np.testing.assert_allclose(
        composed['l_wrist_7'][1], conversions.smplx_frame_rotation(fk), atol=1e-9
    )


def test_only_tracked_and_predicted_persons_get_frames() -> None:
    for state, expected in (
        (TrackState.TRACKED, True),
        (TrackState.PREDICTED, True),
        (TrackState.TENTATIVE, False),
        (TrackState.LOST, False),
    ):
        poses = tf_frames.person_frame_poses(
            make_person('7', state=state), JOINT_NAMES, CAMERA, TfSettings()
        )
        assert bool(poses) == expected, state


def test_prefix_and_operator_aliases() -> None:
    person = make_person('12')
    poses = tf_frames.person_frame_poses(person, JOINT_NAMES, CAMERA, TfSettings(prefix='front_'))
    assert poses[0].child == 'front_body_12'
    assert all(pose.child.startswith('front_') for pose in poses)
    aliases = tf_frames.operator_frame_poses(
        {'left': person.left_hand},
        CAMERA,
        'front_',
        {'left': 'op_l', 'right': 'op_r'},
        'operator',
    )
    [alias] = aliases
    assert (alias.parent, alias.child) == (CAMERA, 'front_op_l')
    np.testing.assert_allclose(alias.translation_m, person.left_hand.wrist_position_m)


def test_tf_message_stamps_and_rotations() -> None:
    stamp = Time(sec=5, nanosec=7)
    rotation = FACING_CAMERA @ axis_angle_matrix([0.1, 0.2, 0.3])
    message = tf_frames.tf_message(
        [FramePose(CAMERA, 'body_1', np.array([1.0, 2.0, 3.0]), rotation)], stamp
    )
    [transform] = message.transforms
    assert transform.header.stamp == stamp
    assert (transform.header.frame_id, transform.child_frame_id) == (CAMERA, 'body_1')
    q = transform.transform.rotation
    np.testing.assert_allclose(quaternion_matrix([q.x, q.y, q.z, q.w]), rotation, atol=1e-9)
    assert transform.transform.translation.z == 3.0


# ---------------------------------------------------------------- fast path


def frame_mix() -> list:
    """Four persons: tracked, predicted with one non-finite joint and float32 (nearly
    orthonormal) rotations, invalid hands, and a LOST one (no frames)."""
    coasting = make_person('3', state=TrackState.PREDICTED)
    joints = coasting.joints_m.copy()
    joints[JOINT_NAMES.index('left_index2')] = np.nan
    noisy = coasting.root_rotation.astype(np.float32)  # orthonormal to about 1e-7 only
    left = dataclasses.replace(
        coasting.left_hand, wrist_rotation=coasting.left_hand.wrist_rotation.astype(np.float32)
    )
    coasting = dataclasses.replace(coasting, joints_m=joints, root_rotation=noisy, left_hand=left)
    return [
        make_person('7'),
        coasting,
        make_person('12', hands_valid=False, phase=0.7),
        make_person('5', state=TrackState.LOST),
    ]


@pytest.mark.parametrize('joints', ['minimal', 'hands', 'full'])
@pytest.mark.parametrize('tree', ['flat', 'kinematic'])
@pytest.mark.parametrize('convention', ['operator', 'smplx'])
def test_serialised_tf_equals_the_readable_builders_message(
    joints: str, tree: str, convention: str
) -> None:
    """CDR bytes from the array path deserialise to the per-object reference's TFMessage.

    Within 1e-6: the reference projects each output rotation onto a rotation, the fast path
    projects its float32 inputs once (a float32 rotation is orthonormal to about 1e-7).
    """
    from rclpy.serialization import deserialize_message
    from tf2_msgs.msg import TFMessage

    persons = frame_mix()
    settings = TfSettings(prefix='p_', joints=joints, tree=tree, hand_frame_convention=convention)
    names = {'left': 'op_l', 'right': 'op_r'}
    hands = {'left': persons[0].left_hand, 'right': persons[0].right_hand}
    stamp = Time(sec=1_700_000_123, nanosec=456_789_012)
    poses = [
        pose
        for person in persons
        for pose in tf_frames.person_frame_poses(person, JOINT_NAMES, CAMERA, settings)
    ]
    poses += tf_frames.operator_frame_poses(hands, CAMERA, 'p_', names, convention)
    expected = tf_frames.tf_message(poses, stamp)
    arrays = tf_frames.FrameArrays.concatenate(
        [
            tf_frames.person_frame_arrays(persons, JOINT_NAMES, CAMERA, settings),
            tf_frames.operator_frame_arrays(hands, CAMERA, 'p_', names, convention),
        ]
    )
    serializer = tf_frames.TfSerializer()
    data = serializer.serialize(arrays, stamp)
    assert isinstance(data, bytes)
    actual = deserialize_message(data, TFMessage)
    assert len(actual.transforms) == len(expected.transforms) > 3
    assert 'p_l_index2_3' not in {t.child_frame_id for t in actual.transforms}
    for got, want in zip(actual.transforms, expected.transforms, strict=True):
        assert got.header.stamp == want.header.stamp == stamp
        assert (got.header.frame_id, got.child_frame_id) == (
            want.header.frame_id,
            want.child_frame_id,
        )
        t, u = got.transform, want.transform
        np.testing.assert_allclose(
            [t.translation.x, t.translation.y, t.translation.z],
            [u.translation.x, u.translation.y, u.translation.z],
            atol=1e-6,
        )
        np.testing.assert_allclose(
            [t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w],
            [u.rotation.x, u.rotation.y, u.rotation.z, u.rotation.w],
            atol=1e-6,
        )
    # The cached layout serves the next frame with a new stamp.
    later = Time(sec=1_700_000_124, nanosec=1)
    again = deserialize_message(serializer.serialize(arrays, later), TFMessage)
    assert {t.header.stamp.sec for t in again.transforms} == {later.sec}


def test_serialised_tf_of_nothing_is_an_empty_message() -> None:
    from rclpy.serialization import deserialize_message
    from tf2_msgs.msg import TFMessage

    empty = tf_frames.person_frame_arrays(
        [make_person('5', state=TrackState.LOST)], JOINT_NAMES, CAMERA, TfSettings()
    )
    data = tf_frames.TfSerializer().serialize(empty, Time(sec=1))
    assert deserialize_message(data, TFMessage).transforms == []


def test_batched_forward_kinematics_equals_the_per_joint_loop() -> None:
    persons = [make_person('7'), make_person('12', phase=1.0)]
    batch = tf_frames.smplx_global_rotations_batch(persons)
    for person, rotations in zip(persons, batch, strict=True):
        np.testing.assert_allclose(rotations, tf_frames.smplx_global_rotations(person), atol=1e-12)
