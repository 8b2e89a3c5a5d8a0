"""Tests for hmr_ros.ros.conversions: pure message <-> array functions, no spinning."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

from _scripted_pipeline import (  # noqa: E402
    FACING_CAMERA,
    axis_angle_matrix,
    make_description,
    make_hand,
    make_person,
)
from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from hmr_ros.msg import HandPose, Person  # noqa: E402
from hmr_ros.pipeline.detectors.base import DetectionError  # noqa: E402
from hmr_ros.pipeline.frames import ImageDecodeError, IntrinsicsError  # noqa: E402
from hmr_ros.pipeline.results import FrameResult  # noqa: E402
from hmr_ros.pipeline.tracking import TrackState  # noqa: E402
from hmr_ros.ros import conversions  # noqa: E402


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (x, y, z, w), the textbook formula."""
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


# ---------------------------------------------------------------- rotations


def test_rep155_remap_of_a_person_facing_the_camera() -> None:
    """Facing the camera, the REP-155 body frame has x toward the camera (-z optical), y to the
    person's left (+x optical, the camera's right) and z up (-y optical)."""
    body = conversions.smplx_frame_rotation(FACING_CAMERA)
    np.testing.assert_allclose(body[:, 0], [0, 0, -1])
    np.testing.assert_allclose(body[:, 1], [1, 0, 0])
    np.testing.assert_allclose(body[:, 2], [0, -1, 0])
    assert np.isclose(np.linalg.det(body), 1.0)


# ---------------------------------------------------------------- hand frames


PALM_TOWARD_CAMERA = np.stack([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]], axis=1)
"""make_hand's axes (a fingers, b = c x a, c out of the palm) for a hand held up in front of the
camera, palm toward it, fingers up: a = up = -y optical, c = toward the camera = -z optical,
b = -x optical."""


@pytest.mark.parametrize(('side', 'thumb_x_sign'), [('right', 1.0), ('left', -1.0)])
def test_the_hand_fixture_follows_the_anatomy(side: str, thumb_x_sign: float) -> None:
    """Anatomy: a person facing the camera holds a hand up, palm toward the camera, fingers up;
    the right hand's thumb is then on the image's right (+x optical), the left hand's on the
    image's left, and the fingertips above the wrist (-y optical)."""
    hand = make_hand(side, np.array([0.0, 0.0, 1.0]), PALM_TOWARD_CAMERA)
    thumb_tip, index_mcp, pinky_mcp, middle_tip = hand.keypoints_m[[4, 5, 17, 12]]
    assert np.sign(thumb_tip[0]) == thumb_x_sign
    assert np.sign(index_mcp[0] - pinky_mcp[0]) == thumb_x_sign
    assert middle_tip[1] < -0.1


@pytest.mark.parametrize('side', ['left', 'right'])
def test_operator_frame_recovers_the_rotation_that_placed_the_hand(side: str) -> None:
    """make_hand's axes (a fingers, c out of the palm, b = c x a) are the operator frame's x, z
    and y by definition, so the operator frame of a placed hand is the placing rotation."""
    rotation = axis_angle_matrix([0.4, -0.9, 1.3])
    hand = make_hand(side, np.array([0.2, 0.1, 1.5]), rotation)
    np.testing.assert_allclose(
        conversions.operator_wrist_rotation(hand.keypoints_m, side), rotation, atol=1e-12
    )


def test_operator_palm_normal_points_out_of_the_palm_for_both_hands() -> None:
    """Hands held up in front of a camera, palms toward it, fingers up: the palm normal z must
    point at the camera (-z optical) for both hands, and y = z cross x = -x optical, which is
    toward the little finger of the right hand and toward the thumb of the left hand."""
    fingers_up = np.array([0.0, -1.0, 0.0])  # optical y is down
    # A person facing the camera: their right thumb (palm forward, fingers up) is on the
    # image's right (+x), their left thumb on the image's left (-x).
    for side, thumb_dir in (('right', [1.0, 0.0, 0.0]), ('left', [-1.0, 0.0, 0.0])):
        keypoints = np.zeros((21, 3))
        keypoints[9] = 0.09 * fingers_up
        keypoints[5] = 0.09 * fingers_up + 0.02 * np.asarray(thumb_dir)
        keypoints[17] = 0.08 * fingers_up - 0.03 * np.asarray(thumb_dir)
        frame = conversions.operator_wrist_rotation(keypoints + [0, 0, 1.0], side)
        assert frame is not None
        np.testing.assert_allclose(frame[:, 0], fingers_up, atol=1e-12)
        np.testing.assert_allclose(frame[:, 2], [0, 0, -1], atol=1e-12)
        np.testing.assert_allclose(frame[:, 1], [-1, 0, 0], atol=1e-12)


# dex-retargeting's published definition (example/vector_retargeting/single_hand_detector.py,
# estimate_frame_from_hand_points, and dex_retargeting/constants.py OPERATOR2MANO_RIGHT/LEFT),
# written here from that description with an SVD plane fit as it does, independently of the
# cross-product form in conversions.py.
OPERATOR2MANO = {
    'right': np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=np.float64),
    'left': np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=np.float64),
}


def dex_frame_from_definition(keypoints: np.ndarray) -> np.ndarray:
    """Columns (x, normal, z): normal of the best plane through wrist, index MCP, middle MCP
    (SVD of the centred points, last right-singular vector); x = wrist - middle MCP made
    orthogonal to it; z = x cross normal; both flipped when z . (index - middle MCP) < 0."""
    three = keypoints[[0, 5, 9]]
    x_vector = three[0] - three[2]
    centred = three - three.mean(axis=0)
    normal = np.linalg.svd(centred)[2][2]
    x = x_vector - (x_vector @ normal) * normal
    x /= np.linalg.norm(x)
    z = np.cross(x, normal)
    if z @ (centred[1] - centred[2]) < 0:
        normal, z = -normal, -z
    return np.stack([x, normal, z], axis=1)


@pytest.mark.parametrize('side', ['left', 'right'])
def test_dex_retargeting_frame_matches_the_published_definition(side: str) -> None:
    """Same 21 points: our rotation is dex-retargeting's frame @ OPERATOR2MANO, and
    keypoints_wrist is exactly its retargeting input (p - wrist) @ frame @ OPERATOR2MANO."""
    rng = np.random.default_rng(5)
    rotation = axis_angle_matrix([0.7, 0.3, -1.1])
    hand = make_hand(side, np.array([0.1, -0.2, 0.9]), rotation)
    keypoints = hand.keypoints_m + rng.normal(scale=0.004, size=(21, 3))  # not a flat hand
    hand = dataclasses.replace(hand, keypoints_m=keypoints)
    expected = dex_frame_from_definition(keypoints - keypoints[0]) @ OPERATOR2MANO[side]
    ours = conversions.dex_retargeting_wrist_rotation(keypoints, side)
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    assert np.isclose(np.linalg.det(ours), 1.0)
    joint_pos = (
        (keypoints - keypoints[0])
        @ dex_frame_from_definition(keypoints - keypoints[0])
        @ OPERATOR2MANO[side]
    )
    wrist_hand = dataclasses.replace(hand, wrist_position_m=keypoints[0])
    person = make_person()
    message = conversions.hand_pose_message(wrist_hand, person, 'dex_retargeting')
    np.testing.assert_allclose(
        np.asarray(message.keypoints_wrist).reshape(21, 3), joint_pos, atol=1e-6
    )


@pytest.mark.parametrize(('side', 'thumb_side_y'), [('right', 1.0), ('left', -1.0)])
def test_dex_retargeting_frame_of_a_hand_held_up(side: str, thumb_side_y: float) -> None:
    """Palm toward the camera, fingers up (anatomy above). Worked through dex-retargeting's
    definition by hand for the right hand: x_vec = wrist - middle = +y optical, z toward the
    index = +x optical (thumb side), normal = z cross x = +z optical; frame @ OPERATOR2MANO_RIGHT
    has columns -normal, z, -x_vec: x out of the palm (-z optical), y toward the thumb (+x
    optical), z toward the fingers (-y optical). The left hand mirrors it: y toward the little
    finger, again +x optical."""
    hand = make_hand(side, np.array([0.0, 0.0, 1.0]), PALM_TOWARD_CAMERA)
    frame = conversions.dex_retargeting_wrist_rotation(hand.keypoints_m, side)
    assert frame is not None
    np.testing.assert_allclose(frame[:, 0], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(frame[:, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(frame[:, 2], [0, -1, 0], atol=1e-12)
    thumb_tip = hand.keypoints_m[4] - hand.keypoints_m[0]
    assert np.sign(thumb_tip @ frame[:, 1]) == thumb_side_y


def test_operator_frame_is_none_for_collapsed_keypoints_and_falls_back_to_smplx() -> None:
    hand = make_hand('left', np.zeros(3), np.eye(3))
    collapsed = np.zeros((21, 3))
    assert conversions.operator_wrist_rotation(collapsed, 'left') is None
    degenerate = dataclasses.replace(hand, keypoints_m=collapsed)
    np.testing.assert_allclose(
        conversions.hand_wrist_rotation(degenerate, 'operator'),
        conversions.smplx_frame_rotation(np.eye(3)),
    )


def test_keypoints_in_wrist_frame_undo_the_hand_placement() -> None:
    """keypoints_wrist = R^T (p - wrist): the flat hand of make_hand in its own axes."""
    rotation = axis_angle_matrix([1.0, 0.2, -0.3])
    wrist = np.array([0.3, -0.1, 1.2])
    hand = make_hand('right', wrist, rotation)
    local = conversions.keypoints_in_wrist_frame(hand.keypoints_m, wrist, rotation)
    np.testing.assert_allclose(local[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(local[9], [0.09, 0.0, 0.0], atol=1e-12)  # middle MCP
    np.testing.assert_allclose(local[:, 2], 0.0, atol=1e-12)  # a flat hand


# ---------------------------------------------------------------- output messages


def stamp() -> Time:
    return Time(sec=1_700_000_000, nanosec=123_456_789)


def test_person_array_message_carries_every_field_as_float32() -> None:
    person = make_person('7', with_vertices=True)
    result = FrameResult(stamp_s=1.0, frame_id='cam', frame_index=3, persons=(person,))
    header = conversions.make_header(stamp(), 'cam_optical')
    message = conversions.person_array_message(result, header, 41, 0.0125, 'operator')
    assert message.header.stamp == stamp()
    assert message.header.frame_id == 'cam_optical'
    assert message.frame_index == 41
    assert (message.processing_time.sec, message.processing_time.nanosec) == (0, 12_500_000)
    [out] = message.persons
    assert out.id == '7' and out.tracking_state == Person.TRACKED and out.track_age == 5
    np.testing.assert_allclose(out.joints, person.joints_m.ravel().astype(np.float32))
    assert out.joints.typecode == 'f'  # unbounded float32[] fields are array('f')
    assert out.body_pose.dtype == np.float32  # fixed-size ones are numpy float32
    np.testing.assert_allclose(out.body_pose, person.body_pose.ravel().astype(np.float32))
    np.testing.assert_allclose(out.vertices, person.vertices_m.ravel().astype(np.float32))
    np.testing.assert_allclose(out.betas, person.betas.astype(np.float32))
    assert (out.bbox.x_min, out.bbox.y_max) == (100.0, 460.0)
    root = out.root_pose
    np.testing.assert_allclose(
        [root.position.x, root.position.y, root.position.z], person.root_position_m
    )
    q = np.array([root.orientation.x, root.orientation.y, root.orientation.z, root.orientation.w])
    np.testing.assert_allclose(
        quaternion_matrix(q), conversions.smplx_frame_rotation(person.root_rotation), atol=1e-9
    )
    assert out.left_hand.side == HandPose.LEFT and out.right_hand.side == HandPose.RIGHT
    assert out.left_hand.person_id == '7' and out.left_hand.valid


def test_hand_pose_message_wrist_pose_and_keypoints_wrist_agree() -> None:
    """keypoints_wrist rotated back by wrist_pose and shifted by its position give keypoints."""
    person = make_person('3')
    message = conversions.hand_pose_message(person.right_hand, person, 'operator')
    pose = message.wrist_pose
    rotation = quaternion_matrix(
        [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    )
    position = np.array([pose.position.x, pose.position.y, pose.position.z])
    rebuilt = message.keypoints_wrist.reshape(21, 3) @ rotation.T + position
    np.testing.assert_allclose(rebuilt, message.keypoints.reshape(21, 3), atol=1e-5)
    np.testing.assert_allclose(position, person.right_hand.wrist_position_m, atol=1e-12)
    np.testing.assert_allclose(
        message.finger_pose, person.right_hand.finger_pose_aa.ravel(), atol=1e-7
    )
    smplx = conversions.hand_pose_message(person.right_hand, person, 'smplx').wrist_pose
    q = [smplx.orientation.x, smplx.orientation.y, smplx.orientation.z, smplx.orientation.w]
    np.testing.assert_allclose(
        quaternion_matrix(q),
        conversions.smplx_frame_rotation(person.right_hand.wrist_rotation),
        atol=1e-9,
    )


def test_hands_array_keeps_only_usable_hands() -> None:
    """Valid and confident hands of non-LOST persons: 2 of 2 + 0 (low confidence) + 0
    (invalid) + 0 (LOST)."""
    persons = (
        make_person('1'),
        make_person('2', hand_confidence=0.4),
        make_person('3', hands_valid=False),
        make_person('4', state=TrackState.LOST),
    )
    result = FrameResult(stamp_s=1.0, frame_id='cam', frame_index=1, persons=persons)
    message = conversions.hand_pose_array_message(
        result, conversions.make_header(stamp(), 'cam'), 9, 'operator', 0.5
    )
    assert [(h.person_id, h.side) for h in message.hands] == [
        ('1', HandPose.LEFT),
        ('1', HandPose.RIGHT),
    ]
    assert message.frame_index == 9
    assert conversions.operator_hands(result, '2', 0.5) == {}
    assert set(conversions.operator_hands(result, '1', 0.5)) == {'left', 'right'}
    assert conversions.operator_hands(result, None, 0.5) == {}


def test_only_a_tracked_operator_whose_score_passes_drives_the_wrists() -> None:
    """Operator outputs need a TRACKED person (observed in this image) with a presence score at
    or above detection.person_threshold; a coasting (PREDICTED) operator publishes nothing."""
    tracked = make_person('1')  # confidence 0.95
    coasting = make_person('2', state=TrackState.PREDICTED)
    result = FrameResult(stamp_s=1.0, frame_id='cam', frame_index=1, persons=(tracked, coasting))
    assert set(conversions.operator_hands(result, '1', 0.5, 0.95)) == {'left', 'right'}
    assert conversions.operator_hands(result, '1', 0.5, 0.96) == {}
    assert conversions.operator_hands(result, '2', 0.5, 0.0) == {}


def test_person_message_carries_the_joint_confidences() -> None:
    scores = np.linspace(0.0, 1.0, 65)
    person = dataclasses.replace(make_person('3'), joint_confidence=scores)
    message = conversions.person_message(person, 'operator')
    np.testing.assert_allclose(message.joint_confidence, scores, atol=1e-7)
    np.testing.assert_allclose(message.keypoints_2d_confidence, scores, atol=1e-7)
    np.testing.assert_allclose(message.root_velocity.x, 0.1)


def test_wrist_pose_stamped_equals_the_hand_pose_wrist() -> None:
    person = make_person('5')
    header = conversions.make_header(stamp(), 'cam')
    pose = conversions.wrist_pose_stamped(person.left_hand, header, 'operator')
    hand = conversions.hand_pose_message(person.left_hand, person, 'operator')
    assert pose.header.stamp == stamp()
    assert pose.pose == hand.wrist_pose


def test_model_info_and_mesh_topology() -> None:
    description = make_description()
    header = conversions.make_header(stamp(), 'cam')
    info = conversions.model_info_message(description, header, 'smplx')
    assert list(info.joint_names) == list(description.joint_names)
    assert list(info.joint_parents) == list(description.joint_parents)
    assert info.hand_frame_convention == 'smplx'
    assert info.num_vertices == 5 and info.num_faces == 3
    assert (info.body_input_width, info.body_input_height) == (384, 512)
    assert info.synthetic_weights
    mesh = conversions.mesh_topology_message(description, header)
    assert list(mesh.faces) == description.faces.ravel().tolist()
    assert list(mesh.right_hand_vertex_ids) == [3, 4]


# ---------------------------------------------------------------- input messages


def test_image_to_rgb_honours_step_and_bgr_order() -> None:
    """A 2x3 bgr8 image with 5 padding bytes per row decodes to the RGB pixels."""
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 10
    rows = np.concatenate([rgb[..., ::-1].reshape(2, 9), np.full((2, 5), 255, np.uint8)], axis=1)
    message = Image(height=2, width=3, encoding='bgr8', step=14, data=rows.tobytes())
    np.testing.assert_array_equal(conversions.image_to_rgb(message), rgb)
    message.step = 8
    with pytest.raises(ImageDecodeError, match='step'):
        conversions.image_to_rgb(message)
    with pytest.raises(ImageDecodeError, match='unsupported image encoding'):
        conversions.image_to_rgb(Image(height=2, width=3, encoding='32FC1', step=12, data=b''))


def test_compressed_image_to_rgb() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (255, 0, 0)
    ok, png = cv2.imencode('.png', rgb[..., ::-1])
    assert ok
    message = CompressedImage(format='png', data=png.tobytes())
    np.testing.assert_array_equal(conversions.compressed_image_to_rgb(message), rgb)


def camera_info(width: int = 640, height: int = 480) -> CameraInfo:
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    info.k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    info.p = [450.0, 0.0, 300.0, 0.0, 0.0, 455.0, 230.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    return info


def test_camera_info_to_intrinsics_uses_k_or_p() -> None:
    raw = conversions.camera_info_to_intrinsics(
        camera_info(), rectified=False, image_width=640, image_height=480
    )
    assert (raw.fx, raw.fy, raw.cx, raw.cy) == (500.0, 510.0, 320.0, 240.0)
    assert raw.distortion == (0.1, -0.05, 0.0, 0.0, 0.0)
    rectified = conversions.camera_info_to_intrinsics(
        camera_info(), rectified=True, image_width=640, image_height=480
    )
    assert (rectified.fx, rectified.cy) == (450.0, 230.0) and not rectified.has_distortion


def test_camera_info_errors_name_the_problem() -> None:
    with pytest.raises(IntrinsicsError, match='640x480 images but the image is 320x240'):
        conversions.camera_info_to_intrinsics(
            camera_info(), rectified=False, image_width=320, image_height=240
        )
    nan_info = camera_info()
    nan_info.k[0] = float('nan')
    with pytest.raises(IntrinsicsError, match='non-finite'):
        conversions.camera_info_to_intrinsics(
            nan_info, rectified=False, image_width=640, image_height=480
        )
    unsized = camera_info(0, 0)  # some drivers leave the size 0: the image's size is used
    assert (
        conversions.camera_info_to_intrinsics(
            unsized, rectified=False, image_width=64, image_height=48
        ).width
        == 64
    )


def test_stamp_and_duration_helpers_are_exact() -> None:
    assert conversions.stamp_to_nanoseconds(stamp()) == 1_700_000_000_123_456_789
    duration = conversions.seconds_to_duration(2.5)
    assert (duration.sec, duration.nanosec) == (2, 500_000_000)
    assert conversions.seconds_to_duration(-1.0).sec == 0


def detection_2d(cx: float, cy: float, w: float, h: float, hypotheses=(), *, new: bool = True):
    """A duck-typed vision_msgs Detection2D: 4.x layout (center.position, results[i].hypothesis)
    when new, else the older one (center.x, results[i].id/score)."""
    if new:
        center = SimpleNamespace(position=SimpleNamespace(x=cx, y=cy), theta=0.0)
        results = [
            SimpleNamespace(hypothesis=SimpleNamespace(class_id=c, score=s), pose=None)
            for c, s in hypotheses
        ]
    else:
        center = SimpleNamespace(x=cx, y=cy, theta=0.0)
        results = [SimpleNamespace(id=c, score=s) for c, s in hypotheses]
    bbox = SimpleNamespace(center=center, size_x=w, size_y=h)
    return SimpleNamespace(bbox=bbox, results=results, id='')


@pytest.mark.parametrize('new', [True, False], ids=['vision_msgs_4', 'older'])
def test_detection2d_array_to_detections_boxes_scores_and_class_filter(new: bool) -> None:
    message = SimpleNamespace(
        header=None,
        detections=[
            detection_2d(100.0, 200.0, 40.0, 120.0, [('car', 0.3), ('person', 0.8)], new=new),
            detection_2d(300.0, 50.0, 20.0, 10.0, [('dog', 0.7)], new=new),
            detection_2d(10.0, 20.0, 4.0, 6.0, (), new=new),
        ],
    )
    everything = conversions.detection2d_array_to_detections(message)
    # centre +- half size: (100 +- 20, 200 +- 60), (300 +- 10, 50 +- 5), (10 +- 2, 20 +- 3)
    np.testing.assert_allclose(
        everything.boxes_px,
        [[80, 140, 120, 260], [290, 45, 310, 55], [8, 17, 12, 23]],
    )
    np.testing.assert_allclose(everything.scores, [0.8, 0.7, 1.0])  # best hypothesis; none: 1
    persons = conversions.detection2d_array_to_detections(message, 'person')
    np.testing.assert_allclose(persons.boxes_px, [[80, 140, 120, 260]])
    np.testing.assert_allclose(persons.scores, [0.8])
    assert len(conversions.detection2d_array_to_detections(message, 'car')) == 0  # not the best
    empty = conversions.detection2d_array_to_detections(SimpleNamespace(detections=[]))
    assert empty.boxes_px.shape == (0, 4)


def test_detection2d_array_with_a_degenerate_box_names_it() -> None:
    message = SimpleNamespace(
        detections=[
            detection_2d(100.0, 200.0, 40.0, 120.0),
            detection_2d(5.0, 5.0, 0.0, 10.0),
        ]
    )
    with pytest.raises(DetectionError, match=r'detections\[1\].*positive sizes'):
        conversions.detection2d_array_to_detections(message)
