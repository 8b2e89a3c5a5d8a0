"""Pure message <-> array conversions of hmr_node (no node, no spinning; style guide, section 5).

Inputs: ``sensor_msgs/Image`` and ``CompressedImage`` to RGB arrays through
``hmr_ros.pipeline.frames`` (encoding and row ``step`` honoured, no cv_bridge), ``CameraInfo`` to
:class:`~hmr_ros.pipeline.frames.CameraIntrinsics`, the optional ``vision_msgs/Detection2DArray``
to :class:`~hmr_ros.pipeline.detectors.base.Detections` (read by attribute: vision_msgs is not
imported here, it is optional).

Outputs: one :class:`~hmr_ros.pipeline.results.FrameResult` to ``PersonArray``,
``HandPoseArray`` and the operator's wrist ``PoseStamped``; a
:class:`~hmr_ros.pipeline.results.ModelDescription` to ``ModelInfo`` and ``MeshTopology``.
Array fields are filled with float32 (or the field's integer type) numpy arrays, the fast path of
rosidl's Python conversion; scalars go through ``float()``/``int()``.

Conventions (stated once, here and in ``ModelInfo``):

- Positions are metres in the image's optical frame (x right, y down, z forward).
- Body frames follow REP 155 (x forward out of the body, y to the person's left, z up). SMPL-X's
  canonical axes are x = the subject's left, y = up, z = front, so a body or joint frame is the
  SMPL-X joint's global rotation followed by the fixed axis remap x <- z, y <- x, z <- y
  (:data:`REP155_FROM_SMPLX`).
- Hand frames (``output.hand_frame_convention``), all from the anatomy of a hand held up in front
  of the camera, palm toward it, fingers up (the right thumb is then on the image's right, +x
  optical, the left thumb on the image's left):

  - ``'operator'``: x from the wrist to the middle-finger knuckle (MCP), z the palm normal
    pointing out of the palm (the palmar side) for both hands, y = z cross x. Because the two
    hands mirror each other, y then points toward the little finger on the right hand and
    toward the thumb on the left hand.
  - ``'dex_retargeting'``: exactly the operator frame of dex-retargeting (the
    ``estimate_frame_from_hand_points`` frame of its MediaPipe example followed by
    ``OPERATOR2MANO_RIGHT/LEFT``), so ``HandPose.keypoints_wrist`` equals the ``joint_pos`` that
    dex-retargeting's retargeters take: x the palm normal out of the palm, z from the wrist
    toward the middle knuckle, y = z cross x (toward the thumb on the right hand, toward the
    little finger on the left hand).
  - ``'smplx'``: the SMPL-X wrist joint's global rotation with the same remap as the body
    frames.

  ``HandPose.wrist_pose``, ``left_hand/pose``, ``right_hand/pose`` and the wrist TF frames all use
  the same rotation, and ``HandPose.keypoints_wrist`` is expressed in it.
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Pose, PoseStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from hmr_ros.geometry.rotations import rotmat_to_quaternion_xyzw_np
from hmr_ros.msg import (
    Box2D,
    HandPose,
    HandPoseArray,
    MeshTopology,
    ModelInfo,
    Person,
    PersonArray,
)
from hmr_ros.pipeline.detectors.base import DetectionError, Detections
from hmr_ros.pipeline.frames import CameraIntrinsics, decode_compressed, decode_image
from hmr_ros.pipeline.results import FrameResult, HandResult, ModelDescription, PersonResult
from hmr_ros.pipeline.tracking import TrackState

HandFrameConvention = Literal['operator', 'dex_retargeting', 'smplx']

KEYPOINT_HAND_FRAMES: tuple[str, ...] = ('operator', 'dex_retargeting')
"""Hand frame conventions computed from the hand keypoints (the others come from SMPL-X)."""

NANOSECONDS_PER_SECOND = 1_000_000_000

REP155_FROM_SMPLX = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float64)
"""Columns: the REP-155 body axes (x forward, y left, z up) written in SMPL-X joint axes
(x left, y up, z front). ``R_rep155 = R_smplx @ REP155_FROM_SMPLX`` maps x <- z, y <- x, z <- y."""

MODEL_TYPE = 'smplx'
ROTATION_CONVENTION = 'axis_angle_parent_relative'
HAND_POSE_CONVENTION = 'absolute_flat_hand_mean'
OUTPUT_FRAME_CONVENTION = (
    'positions: metres in the header frame (camera optical frame: x right, y down, z forward); '
    'global_orient and transl place the SMPL-X mesh (canonical axes x = subject left, y = up, '
    'z = front) in that frame; root_pose, body and joint frames: REP 155 (x forward, y left, '
    'z up) = SMPL-X axes remapped x<-z, y<-x, z<-y'
)

# Indices into the 21 OpenPose/MediaPipe hand keypoints (hmr_ros.body_models.joint_names).
HAND_WRIST = 0
HAND_INDEX_MCP = 5
HAND_MIDDLE_MCP = 9
HAND_PINKY_MCP = 17
NUM_HAND_KEYPOINTS = 21
NUM_HAND_POSE_VALUES = 45
_MIN_AXIS_NORM_M = 1e-9  # below this, a hand is degenerate (collapsed keypoints)

DEX_RETARGETING_OPERATOR2MANO: dict[str, np.ndarray] = {
    'right': np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    'left': np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
}
"""dex-retargeting's ``OPERATOR2MANO_RIGHT`` and ``OPERATOR2MANO_LEFT`` (its
``dex_retargeting/constants.py``): they turn its keypoint frame (columns x, normal, z) into the
operator frame its retargeters read."""

_SIDES = {'left': HandPose.LEFT, 'right': HandPose.RIGHT}


# ---------------------------------------------------------------- inputs


def image_to_rgb(message: Image) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into ``(H, W, 3)`` uint8 RGB (``step`` honoured).

    Raises:
        hmr_ros.pipeline.frames.ImageDecodeError: Unsupported encoding, empty image, ``step``
            too small or data too short.
    """
    return decode_image(
        message.data,
        message.width,
        message.height,
        message.step,
        message.encoding,
        bool(message.is_bigendian),
    )


def compressed_image_to_rgb(message: CompressedImage) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG) into ``(H, W, 3)`` uint8 RGB.

    Raises:
        hmr_ros.pipeline.frames.ImageDecodeError: Empty or undecodable data, depth streams.
    """
    return decode_compressed(message.data, message.format)


def camera_info_to_intrinsics(
    message: CameraInfo, *, rectified: bool, image_width: int, image_height: int
) -> CameraIntrinsics:
    """Intrinsics of an image from its ``camera_info``.

    Args:
        message: The camera_info of the stream.
        rectified: Use ``P`` (rectified images); otherwise ``K`` and the distortion ``D``.
        image_width: Width of the image these intrinsics are for, pixels.
        image_height: Height, pixels.

    Returns:
        Intrinsics with the image's size.

    Raises:
        hmr_ros.pipeline.frames.IntrinsicsError: Non-finite or all-zero matrices, skew, or a
            camera_info size that differs from the image's (the message says which).
    """
    from hmr_ros.pipeline.frames import IntrinsicsError

    info_size = (int(message.width), int(message.height))
    if info_size != (0, 0) and info_size != (image_width, image_height):
        raise IntrinsicsError(
            f'camera_info is for {info_size[0]}x{info_size[1]} images but the image is '
            f'{image_width}x{image_height}; publish the camera_info that matches the image '
            '(image_proc resize scales it too)'
        )
    if rectified:
        return CameraIntrinsics.from_p_matrix(message.p, image_width, image_height)
    return CameraIntrinsics.from_k_matrix(
        message.k, image_width, image_height, message.distortion_model, message.d
    )


def detection2d_array_to_detections(message: Any, class_id: str = '') -> Detections:
    """Person boxes of a ``vision_msgs/Detection2DArray`` (``detection.source: external``).

    Each ``Detection2D``'s box is ``bbox.center`` (a ``Pose2D``: ``center.position.x/y`` in
    vision_msgs 4.x, Humble and later; ``center.x/y`` before) and ``bbox.size_x/size_y`` in
    pixels. Its score is the best hypothesis' ``results[i].hypothesis.score`` (``results[i].score``
    in the older layout), 1.0 when it has no results.

    Args:
        message: The array (any object with that layout).
        class_id: When non-empty, keep only detections whose best hypothesis has this
            ``class_id`` (``id`` in the older layout); detections without results are then
            dropped, their class being unknown.

    Raises:
        DetectionError: A box with a non-positive or non-finite size or centre; the message
            gives its index.
    """
    boxes: list[tuple[float, float, float, float]] = []
    scores: list[float] = []
    for index, detection in enumerate(message.detections):
        best_class, score = _best_hypothesis(detection.results)
        if class_id and best_class != class_id:
            continue
        bbox = detection.bbox
        center = getattr(bbox.center, 'position', bbox.center)
        x, y = float(center.x), float(center.y)
        width, height = float(bbox.size_x), float(bbox.size_y)
        if not (all(map(math.isfinite, (x, y, width, height))) and width > 0 and height > 0):
            raise DetectionError(
                f'detections[{index}] has box centre ({x}, {y}) and size {width} x {height}; '
                'the detector must publish finite centres and positive sizes in pixels'
            )
        boxes.append((x - width / 2, y - height / 2, x + width / 2, y + height / 2))
        scores.append(score)
    if not boxes:
        return Detections.empty()
    return Detections(np.array(boxes, np.float32), np.array(scores, np.float32))


def _best_hypothesis(results: Any) -> tuple[str | None, float]:
    """(class id, score) of the highest-scoring hypothesis; (None, 1.0) without results."""
    best_class: str | None = None
    best_score = -math.inf
    for result in results:
        hypothesis = getattr(result, 'hypothesis', result)
        score = float(hypothesis.score)
        if score > best_score:
            best_score = score
            best_class = str(getattr(hypothesis, 'class_id', getattr(hypothesis, 'id', '')))
    if best_class is None:
        return None, 1.0
    return best_class, best_score


def stamp_to_seconds(stamp: Time) -> float:
    """``builtin_interfaces/Time`` to seconds."""
    return stamp.sec + stamp.nanosec / NANOSECONDS_PER_SECOND


def stamp_to_nanoseconds(stamp: Time) -> int:
    """``builtin_interfaces/Time`` to integer nanoseconds (exact)."""
    return stamp.sec * NANOSECONDS_PER_SECOND + stamp.nanosec


def seconds_to_duration(seconds: float) -> Duration:
    """Non-negative seconds to ``builtin_interfaces/Duration`` (negative values become 0)."""
    nanoseconds = max(0, round(seconds * NANOSECONDS_PER_SECOND))
    sec, nanosec = divmod(nanoseconds, NANOSECONDS_PER_SECOND)
    return Duration(sec=int(sec), nanosec=int(nanosec))


# ---------------------------------------------------------------- rotations


def operator_wrist_rotation(keypoints_m: np.ndarray, side: str) -> np.ndarray | None:
    """The 'operator' hand frame from 21 hand keypoints (see the module docstring).

    Steps:
        1. x = unit(middle MCP - wrist).
        2. across = index MCP - little-finger MCP (points toward the thumb side of the palm).
        3. z = unit(across cross x) for the right hand, unit(x cross across) for the left: the
           palm normal, out of the palm for both hands. Right hand held up, palm toward the
           camera, fingers up: x is up (-y optical), the thumb is on the image's right, so
           across is +x optical and across cross x = +x cross -y = -z optical, toward the
           camera, out of the palm. The left hand's thumb is on the image's left (across is
           -x optical), hence the swapped product.
        4. y = z cross x.

    Args:
        keypoints_m: ``(21, 3)`` OpenPose/MediaPipe order, any frame.
        side: 'left' or 'right'.

    Returns:
        ``(3, 3)`` columns x, y, z in the keypoints' frame, or None when the keypoints are
        collapsed or non-finite.
    """
    points = _hand_points(keypoints_m)
    if points is None:
        return None
    forward = points[HAND_MIDDLE_MCP] - points[HAND_WRIST]
    across = points[HAND_INDEX_MCP] - points[HAND_PINKY_MCP]
    forward_norm = np.linalg.norm(forward)
    if forward_norm < _MIN_AXIS_NORM_M:
        return None
    x_axis = forward / forward_norm
    normal = np.cross(across, x_axis) if side == 'right' else np.cross(x_axis, across)
    normal_norm = np.linalg.norm(normal)
    if normal_norm < _MIN_AXIS_NORM_M:
        return None
    z_axis = normal / normal_norm
    y_axis = np.cross(z_axis, x_axis)
    return np.stack([x_axis, y_axis, z_axis], axis=1)


def dex_retargeting_wrist_rotation(keypoints_m: np.ndarray, side: str) -> np.ndarray | None:
    """dex-retargeting's operator frame from 21 hand keypoints (see the module docstring).

    dex-retargeting builds a frame from the wrist, index MCP and middle MCP: the normal of the
    plane through them; x = the wrist minus the middle MCP with its normal component removed;
    z = x cross normal, with normal and z flipped together when z points away from the index
    MCP (seen from the middle MCP); columns (x, normal, z). Its retargeters read
    ``(keypoints - wrist) @ frame @ OPERATOR2MANO``, so the operator frame's axes in the
    keypoints' frame are ``frame @ OPERATOR2MANO`` (:data:`DEX_RETARGETING_OPERATOR2MANO`).
    dex-retargeting fits the plane by SVD; three points lie on their plane exactly, so its
    normal is the cross product of two edges up to the sign, which the flip rule fixes anyway.

    Args:
        keypoints_m: ``(21, 3)`` OpenPose/MediaPipe order, any frame.
        side: 'left' or 'right'.

    Returns:
        ``(3, 3)`` columns x, y, z in the keypoints' frame, or None when the three points are
        collinear, collapsed or non-finite.
    """
    points = _hand_points(keypoints_m)
    if points is None:
        return None
    wrist, index, middle = points[HAND_WRIST], points[HAND_INDEX_MCP], points[HAND_MIDDLE_MCP]
    normal = np.cross(index - wrist, middle - wrist)
    normal_norm = np.linalg.norm(normal)
    if normal_norm < _MIN_AXIS_NORM_M**2:
        return None
    normal /= normal_norm
    to_wrist = wrist - middle
    x_axis = to_wrist - np.dot(to_wrist, normal) * normal
    x_axis /= np.linalg.norm(x_axis)
    z_axis = np.cross(x_axis, normal)
    if np.dot(z_axis, index - middle) < 0.0:
        normal, z_axis = -normal, -z_axis
    frame = np.stack([x_axis, normal, z_axis], axis=1)
    return frame @ DEX_RETARGETING_OPERATOR2MANO[side]


def keypoint_wrist_rotation(
    keypoints_m: np.ndarray, side: str, convention: HandFrameConvention
) -> np.ndarray | None:
    """The frame of a keypoint convention (:data:`KEYPOINT_HAND_FRAMES`); None if degenerate."""
    if convention == 'dex_retargeting':
        return dex_retargeting_wrist_rotation(keypoints_m, side)
    if convention == 'operator':
        return operator_wrist_rotation(keypoints_m, side)
    raise ValueError(f'{convention!r} is not a keypoint hand frame ({KEYPOINT_HAND_FRAMES})')


def _hand_points(keypoints_m: np.ndarray) -> np.ndarray | None:
    """``(21, 3)`` float64 keypoints, or None when the shape is wrong or a value non-finite."""
    points = np.asarray(keypoints_m, dtype=np.float64)
    if points.shape != (NUM_HAND_KEYPOINTS, 3) or not np.all(np.isfinite(points)):
        return None
    return points


def smplx_frame_rotation(smplx_rotation: np.ndarray) -> np.ndarray:
    """An SMPL-X joint's global rotation with the REP-155 axis remap (x <- z, y <- x, z <- y)."""
    return np.asarray(smplx_rotation, dtype=np.float64) @ REP155_FROM_SMPLX


class _RecentWristRotations:
    """The wrist rotations of the last few hands asked for, by object identity.

    The node needs each hand's rotation up to three times per frame (messages, TF, wrist
    poses); results are frozen dataclasses, so a rotation computed for one HandResult object
    stays valid for it. Entries hold the hand itself, so an id is never reused while cached.
    """

    def __init__(self, capacity: int = 32) -> None:
        self._capacity = capacity
        self._entries: dict[tuple[int, str], tuple[HandResult, np.ndarray]] = {}

    def get(self, hand: HandResult, convention: str) -> np.ndarray | None:
        entry = self._entries.get((id(hand), convention))
        return entry[1] if entry is not None and entry[0] is hand else None

    def put(self, hand: HandResult, convention: str, rotation: np.ndarray) -> None:
        if len(self._entries) >= self._capacity:
            self._entries.pop(next(iter(self._entries)))
        rotation.setflags(write=False)
        self._entries[(id(hand), convention)] = (hand, rotation)


_RECENT_WRIST_ROTATIONS = _RecentWristRotations()


def hand_wrist_rotation(hand: HandResult, convention: HandFrameConvention) -> np.ndarray:
    """Wrist orientation of a hand in the camera frame, in the named convention.

    The keypoint conventions fall back to 'smplx' when the keypoints are degenerate; a
    non-finite rotation becomes the identity (an invalid hand's poses are to be ignored anyway).
    The result is read-only and remembered for the hand object (:class:`_RecentWristRotations`).
    """
    cached = _RECENT_WRIST_ROTATIONS.get(hand, convention)
    if cached is not None:
        return cached
    rotation: np.ndarray | None = None
    if convention in KEYPOINT_HAND_FRAMES:
        rotation = keypoint_wrist_rotation(hand.keypoints_m, hand.side, convention)
    if rotation is None:
        smplx = np.asarray(hand.wrist_rotation, dtype=np.float64)
        if smplx.shape != (3, 3) or not np.all(np.isfinite(smplx)):
            rotation = np.eye(3)
        else:
            rotation = smplx_frame_rotation(smplx)
    rotation = np.array(rotation, dtype=np.float64)
    _RECENT_WRIST_ROTATIONS.put(hand, convention, rotation)
    return rotation


def keypoints_in_wrist_frame(
    keypoints_m: np.ndarray, wrist_position_m: np.ndarray, wrist_rotation: np.ndarray
) -> np.ndarray:
    """Keypoints relative to the wrist, expressed in the wrist frame: ``R^T (p - wrist)``.

    Args:
        keypoints_m: ``(N, 3)`` camera frame.
        wrist_position_m: ``(3,)`` camera frame.
        wrist_rotation: ``(3, 3)`` wrist axes in the camera frame (columns).

    Returns:
        ``(N, 3)`` float64.
    """
    offsets = np.asarray(keypoints_m, dtype=np.float64) - np.asarray(wrist_position_m)
    return offsets @ np.asarray(wrist_rotation, dtype=np.float64)


# ---------------------------------------------------------------- outputs


def make_header(stamp: Time, frame_id: str) -> Header:
    """A header with the source image's stamp (never now()) and the output frame."""
    return Header(stamp=stamp, frame_id=frame_id)


def pose_message(position_m: np.ndarray, rotation: np.ndarray) -> Pose:
    """``geometry_msgs/Pose`` from a position and a rotation matrix (columns = axes)."""
    pose = Pose()
    x, y, z = (float(v) for v in np.asarray(position_m, dtype=np.float64).reshape(3))
    pose.position.x, pose.position.y, pose.position.z = x, y, z
    qx, qy, qz, qw = (float(v) for v in rotmat_to_quaternion_xyzw_np(rotation))
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = qx, qy, qz, qw
    return pose


def _box(box_px: np.ndarray) -> Box2D:
    x_min, y_min, x_max, y_max = (float(v) for v in np.asarray(box_px).reshape(4))
    return Box2D(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max)


def _float32(values: np.ndarray, size: int | None = None) -> np.ndarray:
    """A flat float32 copy, checked against a fixed message array size."""
    flat = np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(-1))
    if size is not None and flat.size != size:
        raise ValueError(f'expected {size} values for a fixed-size message array, got {flat.size}')
    return flat


def _finite_position(position_m: np.ndarray) -> np.ndarray:
    position = np.asarray(position_m, dtype=np.float64).reshape(3)
    return position if np.all(np.isfinite(position)) else np.zeros(3)


def hand_pose_message(
    hand: HandResult, person: PersonResult, convention: HandFrameConvention
) -> HandPose:
    """``HandPose`` of one hand of one person (``valid`` copied from the pipeline)."""
    message = HandPose()
    message.person_id = person.track_id
    message.side = _SIDES[hand.side]
    message.valid = bool(hand.valid)
    message.confidence = float(hand.confidence)
    message.tracking_state = int(person.tracking_state)
    message.bbox = _box(hand.box_px)
    rotation = hand_wrist_rotation(hand, convention)
    wrist = _finite_position(hand.wrist_position_m)
    message.wrist_pose = pose_message(wrist, rotation)
    message.keypoints = _float32(hand.keypoints_m, 3 * NUM_HAND_KEYPOINTS)
    message.keypoints_wrist = _float32(
        keypoints_in_wrist_frame(hand.keypoints_m, wrist, rotation), 3 * NUM_HAND_KEYPOINTS
    )
    message.finger_pose = _float32(hand.finger_pose_aa, NUM_HAND_POSE_VALUES)
    message.keypoint_confidence = _float32(hand.keypoint_confidence)
    return message


def person_message(person: PersonResult, convention: HandFrameConvention) -> Person:
    """``Person`` of one tracked person (``vertices`` as the pipeline filled them)."""
    message = Person()
    message.id = person.track_id
    message.tracking_state = int(person.tracking_state)
    message.track_age = int(person.track_age)
    message.confidence = float(person.confidence)
    message.bbox = _box(person.box_px)
    message.root_pose = pose_message(
        _finite_position(person.root_position_m), _safe_body_rotation(person.root_rotation)
    )
    vx, vy, vz = (float(v) for v in np.asarray(person.root_velocity_mps).reshape(3))
    message.root_velocity.x, message.root_velocity.y, message.root_velocity.z = vx, vy, vz
    message.global_orient = _float32(person.global_orient, 3)
    message.body_pose = _float32(person.body_pose, 63)
    message.left_hand_pose = _float32(person.left_hand_pose, NUM_HAND_POSE_VALUES)
    message.right_hand_pose = _float32(person.right_hand_pose, NUM_HAND_POSE_VALUES)
    message.jaw_pose = _float32(person.jaw_pose, 3)
    message.betas = _float32(person.betas)
    message.expression = _float32(person.expression)
    message.transl = _float32(person.transl, 3)
    message.joints = _float32(person.joints_m)
    message.keypoints_2d = _float32(person.keypoints_2d_px)
    # One score per joint locates both the 3D joint and its projection (the same heatmap).
    message.joint_confidence = _float32(person.joint_confidence)
    message.keypoints_2d_confidence = message.joint_confidence
    message.vertices = _float32(person.vertices_m)
    message.left_hand = hand_pose_message(person.left_hand, person, convention)
    message.right_hand = hand_pose_message(person.right_hand, person, convention)
    return message


def _safe_body_rotation(smplx_rotation: np.ndarray) -> np.ndarray:
    rotation = np.asarray(smplx_rotation, dtype=np.float64)
    if rotation.shape != (3, 3) or not np.all(np.isfinite(rotation)):
        return np.eye(3)
    return smplx_frame_rotation(rotation)


def person_array_message(
    result: FrameResult,
    header: Header,
    frame_index: int,
    processing_time_s: float,
    convention: HandFrameConvention,
) -> PersonArray:
    """``PersonArray`` of one image: every person the pipeline reported, atomically."""
    message = PersonArray()
    message.header = header
    message.frame_index = int(frame_index)
    message.processing_time = seconds_to_duration(processing_time_s)
    message.persons = [person_message(person, convention) for person in result.persons]
    return message


def hand_is_usable(person: PersonResult, hand: HandResult, min_confidence: float) -> bool:
    """Whether a hand may drive teleop outputs: valid, confident, its person not LOST.

    docs/ros-interface.md: below ``safety.min_hand_confidence`` a hand is not published as a
    pose, in ``hands`` or as an operator frame (no stale repeats).
    """
    return (
        bool(hand.valid)
        and float(hand.confidence) >= min_confidence
        and person.tracking_state != TrackState.LOST
        and bool(np.all(np.isfinite(np.asarray(hand.wrist_position_m))))
    )


def hand_pose_array_message(
    result: FrameResult,
    header: Header,
    frame_index: int,
    convention: HandFrameConvention,
    min_confidence: float,
) -> HandPoseArray:
    """``HandPoseArray`` of one image: every usable hand, both sides, all persons."""
    message = HandPoseArray()
    message.header = header
    message.frame_index = int(frame_index)
    message.hands = [
        hand_pose_message(hand, person, convention)
        for person in result.persons
        for hand in (person.left_hand, person.right_hand)
        if hand_is_usable(person, hand, min_confidence)
    ]
    return message


def operator_hands(
    result: FrameResult,
    operator_id: str | None,
    min_confidence: float,
    min_person_score: float = 0.0,
) -> dict[str, HandResult]:
    """The operator's usable hands by side ('left', 'right'); empty without an operator.

    Only a ``TRACKED`` operator (observed in this image, not coasting) whose presence score
    (``confidence``) is at least ``min_person_score`` (``detection.person_threshold``) drives the
    teleop outputs; its hands must pass :func:`hand_is_usable`.
    """
    if operator_id is None:
        return {}
    for person in result.persons:
        if person.track_id != operator_id:
            continue
        if person.tracking_state != TrackState.TRACKED or person.confidence < min_person_score:
            return {}
        return {
            hand.side: hand
            for hand in (person.left_hand, person.right_hand)
            if hand_is_usable(person, hand, min_confidence)
        }
    return {}


def wrist_pose_stamped(
    hand: HandResult, header: Header, convention: HandFrameConvention
) -> PoseStamped:
    """``left_hand/pose`` / ``right_hand/pose``: the wrist pose, as in ``HandPose.wrist_pose``."""
    message = PoseStamped()
    message.header = header
    message.pose = pose_message(
        _finite_position(hand.wrist_position_m), hand_wrist_rotation(hand, convention)
    )
    return message


def empty_person_array(header: Header, frame_index: int = 0) -> PersonArray:
    """What deactivation publishes so consumers and RViz clear (ZED's empty message).

    Args:
        header: The last published image's header (PersonArray.msg: a source image's stamp).
        frame_index: That image's frame_index (no new frame was processed).
    """
    return PersonArray(header=header, frame_index=int(frame_index))


def empty_hand_pose_array(header: Header, frame_index: int = 0) -> HandPoseArray:
    """The hands counterpart of :func:`empty_person_array`."""
    return HandPoseArray(header=header, frame_index=int(frame_index))


# ---------------------------------------------------------------- outputs, fast path


def float32_sequence(values: np.ndarray) -> array.array:
    """An ``array.array('f')`` for an unbounded ``float32[]`` field, filled in one conversion.

    rosidl's setter copies an ``array.array`` of type code ``'f'`` with one memcpy and rclpy
    publishes it with another (buffer protocol); a numpy array or a list would be converted
    element by element in Python (2 ms for one SMPL-X mesh).
    """
    flat = np.asarray(values).reshape(-1)
    sequence = array.array('f', bytes(4 * flat.size))
    if flat.size:
        np.frombuffer(sequence, dtype=np.float32)[:] = flat
    return sequence


def _stacked_float32(persons: Sequence[Any], field: str, size: int) -> np.ndarray:
    """``(P, size)`` float32 of one fixed-size field of every person, in one conversion."""
    try:
        return np.asarray([getattr(p, field) for p in persons], dtype=np.float32).reshape(
            len(persons), size
        )
    except ValueError as error:
        raise ValueError(
            f'expected {size} values of {field} per person for a fixed-size message array: {error}'
        ) from error


def _fill_pose(pose: Pose, position: list[float], quaternion_xyzw: list[float]) -> None:
    """Write into a message's own Pose (no new objects)."""
    point, orientation = pose.position, pose.orientation
    point.x, point.y, point.z = position
    orientation.x, orientation.y, orientation.z, orientation.w = quaternion_xyzw


def _fill_box(box: Box2D, box_px: np.ndarray) -> None:
    box.x_min, box.y_min, box.x_max, box.y_max = np.reshape(box_px, 4).astype(float).tolist()


def frame_messages(
    result: FrameResult,
    header: Header,
    frame_index: int,
    processing_time_s: float,
    convention: HandFrameConvention,
    min_confidence: float,
) -> tuple[PersonArray, HandPoseArray]:
    """``PersonArray`` and ``HandPoseArray`` of one image, filled from contiguous arrays.

    Same content as :func:`person_array_message` and :func:`hand_pose_array_message` (the
    readable references; a test compares them), computed once for both: every hand's wrist
    rotation, every quaternion in one call, every fixed-size field of all persons in one float32
    conversion, and the ``float32[]`` fields (joints, vertices ...) as ``array.array`` filled
    by numpy (:func:`float32_sequence`). The HandPose objects of usable hands are shared by both
    messages.
    """
    persons = result.persons
    people = PersonArray()
    people.header = header
    people.frame_index = int(frame_index)
    people.processing_time = seconds_to_duration(processing_time_s)
    hands_message = HandPoseArray()
    hands_message.header = header
    hands_message.frame_index = int(frame_index)
    if not persons:
        return people, hands_message
    count = len(persons)
    hands = [hand for person in persons for hand in (person.left_hand, person.right_hand)]
    owners = [person for person in persons for _ in range(2)]
    wrist_rotations = np.stack([hand_wrist_rotation(hand, convention) for hand in hands])
    wrists = np.stack([_finite_position(hand.wrist_position_m) for hand in hands])
    keypoints = _stacked_float32(hands, 'keypoints_m', 3 * NUM_HAND_KEYPOINTS)
    offsets = keypoints.reshape(2 * count, NUM_HAND_KEYPOINTS, 3) - wrists[:, None]
    keypoints_wrist = np.einsum('hkj,hji->hki', offsets, wrist_rotations).astype(np.float32)
    finger_pose = _stacked_float32(hands, 'finger_pose_aa', NUM_HAND_POSE_VALUES)
    body_rotations = np.stack([_safe_body_rotation(p.root_rotation) for p in persons])
    quaternions = rotmat_to_quaternion_xyzw_np(
        np.concatenate([body_rotations, wrist_rotations])
    ).tolist()
    wrist_list = wrists.tolist()
    fixed = {
        field: _stacked_float32(persons, field, size)
        for field, size in (
            ('global_orient', 3),
            ('body_pose', 63),
            ('left_hand_pose', NUM_HAND_POSE_VALUES),
            ('right_hand_pose', NUM_HAND_POSE_VALUES),
            ('jaw_pose', 3),
            ('transl', 3),
        )
    }
    roots = [_finite_position(p.root_position_m).tolist() for p in persons]
    person_messages = []
    hand_messages = []
    for index, person in enumerate(persons):
        entry = Person()
        entry.id = person.track_id
        entry.tracking_state = int(person.tracking_state)
        entry.track_age = int(person.track_age)
        entry.confidence = float(person.confidence)
        _fill_box(entry.bbox, person.box_px)
        _fill_pose(entry.root_pose, roots[index], quaternions[index])
        velocity = entry.root_velocity
        velocity.x, velocity.y, velocity.z = np.reshape(person.root_velocity_mps, 3).tolist()
        entry.global_orient = fixed['global_orient'][index]
        entry.body_pose = fixed['body_pose'][index]
        entry.left_hand_pose = fixed['left_hand_pose'][index]
        entry.right_hand_pose = fixed['right_hand_pose'][index]
        entry.jaw_pose = fixed['jaw_pose'][index]
        entry.transl = fixed['transl'][index]
        entry.betas = float32_sequence(person.betas)
        entry.expression = float32_sequence(person.expression)
        entry.joints = float32_sequence(person.joints_m)
        entry.keypoints_2d = float32_sequence(person.keypoints_2d_px)
        entry.joint_confidence = float32_sequence(person.joint_confidence)
        entry.keypoints_2d_confidence = entry.joint_confidence  # the same heatmap scores
        entry.vertices = float32_sequence(person.vertices_m)  # one conversion, no Python floats
        for h, message in ((2 * index, entry.left_hand), (2 * index + 1, entry.right_hand)):
            hand = hands[h]
            message.person_id = person.track_id
            message.side = _SIDES[hand.side]
            message.valid = bool(hand.valid)
            message.confidence = float(hand.confidence)
            message.tracking_state = int(person.tracking_state)
            _fill_box(message.bbox, hand.box_px)
            _fill_pose(message.wrist_pose, wrist_list[h], quaternions[count + h])
            message.keypoints = keypoints[h]
            message.keypoints_wrist = keypoints_wrist[h].reshape(-1)
            message.finger_pose = finger_pose[h]
            message.keypoint_confidence = float32_sequence(hand.keypoint_confidence)
            hand_messages.append(message)
        person_messages.append(entry)
    people.persons = person_messages
    hands_message.hands = [
        message
        for message, hand, person in zip(hand_messages, hands, owners, strict=True)
        if hand_is_usable(person, hand, min_confidence)
    ]
    return people, hands_message


# ---------------------------------------------------------------- static information


def num_mesh_vertices(faces: np.ndarray) -> int:
    """Vertices referenced by a face array (every SMPL-X and MANO vertex is in some face)."""
    faces = np.asarray(faces)
    return int(faces.max()) + 1 if faces.size else 0


def model_info_message(
    description: ModelDescription, header: Header, hand_frame_convention: HandFrameConvention
) -> ModelInfo:
    """``ModelInfo``: the model and every convention the output messages use."""
    message = ModelInfo()
    message.header = header
    message.model_type = MODEL_TYPE
    message.model_version = description.model_version
    message.adapters = description.adapters
    message.checkpoint_files = list(description.checkpoint_files)
    message.checkpoint_sha256 = list(description.checkpoint_sha256)
    message.synthetic_weights = bool(description.synthetic_weights)
    message.weights_note = description.weights_note
    message.backend = description.backend
    message.precision = description.precision
    message.device = description.device
    message.gender = description.gender
    message.num_betas = int(description.num_betas)
    message.num_expression = int(description.num_expression)
    message.joint_names = list(description.joint_names)
    message.joint_parents = np.asarray(description.joint_parents, dtype=np.int16)
    message.hand_keypoint_names = list(description.hand_keypoint_names)
    message.rotation_convention = ROTATION_CONVENTION
    message.hand_pose_convention = HAND_POSE_CONVENTION
    message.hand_frame_convention = hand_frame_convention
    message.output_frame_convention = OUTPUT_FRAME_CONVENTION
    message.num_vertices = num_mesh_vertices(description.faces)
    message.num_faces = int(np.asarray(description.faces).shape[0])
    height, width = description.body_input_hw
    message.body_input_width = int(width)
    message.body_input_height = int(height)
    message.hand_input_size = int(description.hand_input_size)
    return message


def mesh_topology_message(description: ModelDescription, header: Header) -> MeshTopology:
    """``MeshTopology``: SMPL-X faces and hand vertex ids, sent once (transient-local)."""
    message = MeshTopology()
    message.header = header
    message.model_type = MODEL_TYPE
    message.num_vertices = num_mesh_vertices(description.faces)
    message.faces = np.ascontiguousarray(np.asarray(description.faces, dtype=np.uint32).ravel())
    message.left_hand_vertex_ids = np.asarray(description.left_hand_vertex_ids, dtype=np.uint32)
    message.right_hand_vertex_ids = np.asarray(description.right_hand_vertex_ids, dtype=np.uint32)
    return message


def is_finite_number(value: float) -> bool:
    """Whether ``value`` is a finite float (used on header stamps and ages)."""
    return math.isfinite(value)
