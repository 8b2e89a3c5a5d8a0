"""TF frames of tracked persons (ros-interface.md 5.5; REP 155 and REP 120 names).

For each ``TRACKED`` or ``PREDICTED`` person with tracker id ``<id>``:

- ``{prefix}body_<id>``: the pelvis, parented to the image's optical frame, oriented as REP 155
  (x forward out of the body, y left, z up): the SMPL-X root rotation remapped x <- z, y <- x,
  z <- y.
- ``{prefix}<joint>_<id>`` for the joints named by ``tf.joints``, with REP-120 short names
  (``head``, ``l_wrist``, ``r_index2``, ``l_thumb_tip``): ``minimal`` = head, both wrists and the
  ten fingertips; ``hands`` adds every finger joint; ``full`` is every joint the model reports.
  Positions are the person's ``joints`` (so a frame equals the joint in ``persons``); orientations
  are the SMPL-X global joint rotations (forward kinematics of the pose parameters from the root
  rotation) with the same remap, except the wrists, which take the hand frame convention of
  ``HandPose.wrist_pose``; fingertips take their last finger segment's orientation.
- Parent: ``body_<id>`` for every joint (``tf.tree = flat``, one hop per lookup) or the nearest
  published kinematic ancestor (``kinematic``).
- Operator aliases ``{prefix}{operator.left_wrist_frame}`` / ``right``: the selected operator's
  usable wrists, parented to the optical frame, equal to ``left_hand/pose`` / ``right_hand/pose``.

TF cannot delete frames: a departed person's frames age out of listeners' buffers; ``persons``
is the authority on who is present.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped
from tf2_msgs.msg import TFMessage

from hmr_ros.body_models.joint_names import (
    ANATOMICAL_FINGER_ORDER,
    MODEL_FINGER_ORDER,
    NUM_SEGMENTS_PER_FINGER,
    SIDES,
    SMPLX_JOINT_INDEX,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
    ros_frame_name,
)
from hmr_ros.pipeline.results import HandResult, PersonResult
from hmr_ros.pipeline.tracking import TrackState
from hmr_ros.ros.conversions import (
    HAND_INDEX_MCP,
    HAND_MIDDLE_MCP,
    HAND_PINKY_MCP,
    HAND_WRIST,
    KEYPOINT_HAND_FRAMES,
    NUM_HAND_KEYPOINTS,
    HandFrameConvention,
    axis_angle_to_rotation_matrix,
    hand_wrist_rotation,
    keypoint_wrist_rotation,
    rotation_matrix_to_quaternion,
    smplx_frame_rotation,
)

ROOT_JOINT = SMPLX_JOINT_NAMES[0]  # 'pelvis': the body_<id> frame itself
WRIST_JOINTS = {'left': 'left_wrist', 'right': 'right_wrist'}
_SIDE_PREFIX = {'left': 'l', 'right': 'r'}
_PUBLISHED_STATES = (TrackState.TRACKED, TrackState.PREDICTED)

# Fingertips as the smplx package names them (vertex keypoints 'left_thumb' ...) and as
# '<side>_<finger>_tip'; both map to the frame '<l|r>_<finger>_tip'.


def _fingertip_frames() -> dict[str, str]:
    frames = {}
    for side in SIDES:
        for finger in ANATOMICAL_FINGER_ORDER:
            frame = f'{_SIDE_PREFIX[side]}_{finger}_tip'
            frames[f'{side}_{finger}'] = frame
            frames[f'{side}_{finger}_tip'] = frame
    return frames


FINGERTIP_FRAMES: dict[str, str] = _fingertip_frames()
_FINGERTIP_PARENT = {
    name: f'{name.split("_")[0]}_{name.split("_")[1]}{NUM_SEGMENTS_PER_FINGER}'
    for name in FINGERTIP_FRAMES
}
_FINGER_JOINTS = frozenset(
    f'{side}_{finger}{segment}'
    for side in SIDES
    for finger in MODEL_FINGER_ORDER
    for segment in range(1, NUM_SEGMENTS_PER_FINGER + 1)
)
MINIMAL_JOINTS = frozenset({'head', *WRIST_JOINTS.values(), *FINGERTIP_FRAMES})
"""``tf.joints = minimal``: head, wrists, fingertips (body_<id> is always published)."""


def joint_frame_name(joint: str) -> str:
    """REP-120-style frame name without prefix or id (``left_index`` -> ``l_index_tip``)."""
    return FINGERTIP_FRAMES.get(joint) or ros_frame_name(joint)


@dataclasses.dataclass(frozen=True)
class TfSettings:
    """How person frames are named and linked.

    Attributes:
        prefix: Prepended to every frame name (``tf.prefix``).
        joints: 'minimal', 'hands' or 'full' (``tf.joints``).
        tree: 'flat' or 'kinematic' (``tf.tree``).
        hand_frame_convention: 'operator', 'dex_retargeting' or 'smplx'
            (``output.hand_frame_convention``).
    """

    prefix: str = ''
    joints: str = 'minimal'
    tree: str = 'flat'
    hand_frame_convention: HandFrameConvention = 'operator'


class FramePose(NamedTuple):
    """One transform: ``child``'s origin and axes expressed in ``parent``.

    Attributes:
        parent: Parent frame id.
        child: Child frame id.
        translation_m: ``(3,)`` metres.
        rotation: ``(3, 3)`` child axes in the parent frame (columns).
    """

    parent: str
    child: str
    translation_m: np.ndarray
    rotation: np.ndarray


def selected_joints(joint_names: Sequence[str], joint_set: str) -> list[str]:
    """Joints of ``joint_names`` published for ``tf.joints``, in model order (pelvis excluded)."""
    chosen: set[str] | frozenset[str]
    if joint_set == 'full':
        chosen = set(joint_names)
    elif joint_set == 'hands':
        chosen = MINIMAL_JOINTS | _FINGER_JOINTS
    elif joint_set == 'minimal':
        chosen = MINIMAL_JOINTS
    else:
        raise ValueError(f'tf.joints {joint_set!r} is not valid; choose minimal, hands or full')
    return [name for name in joint_names if name in chosen and name != ROOT_JOINT]


def smplx_global_rotations(person: PersonResult) -> np.ndarray:
    """Global rotations of the 55 SMPL-X joints in the camera frame (SMPL-X joint axes).

    Forward kinematics ``R_j = R_parent(j) @ R_local(j)`` from the root rotation, with the local
    rotations of ``body_pose`` (joints 1-21), ``jaw_pose`` (22), identity eyes (23, 24) and the
    absolute hand poses (25-39 left, 40-54 right), the order of ``SMPLX_JOINT_NAMES``.

    Returns:
        ``(55, 3, 3)`` float64.
    """
    local_aa = np.concatenate(
        [
            np.zeros((1, 3)),
            np.asarray(person.body_pose, dtype=np.float64).reshape(-1, 3),
            np.asarray(person.jaw_pose, dtype=np.float64).reshape(1, 3),
            np.zeros((2, 3)),
            np.asarray(person.left_hand_pose, dtype=np.float64).reshape(-1, 3),
            np.asarray(person.right_hand_pose, dtype=np.float64).reshape(-1, 3),
        ]
    )
    if local_aa.shape != (len(SMPLX_JOINT_NAMES), 3) or not np.all(np.isfinite(local_aa)):
        raise ValueError(
            f'SMPL-X pose parameters give {local_aa.shape[0]} joint rotations (or non-finite '
            f'values); expected {len(SMPLX_JOINT_NAMES)} finite ones'
        )
    local = axis_angle_to_rotation_matrix(local_aa)
    global_rotations = np.empty_like(local)
    global_rotations[0] = np.asarray(person.root_rotation, dtype=np.float64)
    for joint in range(1, len(SMPLX_JOINT_NAMES)):
        global_rotations[joint] = global_rotations[SMPLX_PARENTS[joint]] @ local[joint]
    return global_rotations


def _wrist_rotation(
    person: PersonResult,
    side: str,
    joint_names: Sequence[str],
    smplx_rotations: np.ndarray,
    convention: HandFrameConvention,
) -> np.ndarray:
    """Wrist frame orientation: the hand's (as HandPose) when valid, else from the body."""
    hand: HandResult = person.left_hand if side == 'left' else person.right_hand
    if hand.valid:
        return hand_wrist_rotation(hand, convention)
    if convention in KEYPOINT_HAND_FRAMES:
        index = {name: i for i, name in enumerate(joint_names)}
        names = [WRIST_JOINTS[side]] + [f'{side}_{f}1' for f in ('index', 'middle', 'pinky')]
        if all(name in index for name in names):
            # Only the wrist and three knuckles define the frame; other rows stay zero.
            keypoints = np.zeros((NUM_HAND_KEYPOINTS, 3))
            joints = np.asarray(person.joints_m, dtype=np.float64).reshape(-1, 3)
            for slot, name in zip(
                (HAND_WRIST, HAND_INDEX_MCP, HAND_MIDDLE_MCP, HAND_PINKY_MCP), names, strict=True
            ):
                keypoints[slot] = joints[index[name]]
            rotation = keypoint_wrist_rotation(keypoints, side, convention)
            if rotation is not None:
                return rotation
    return smplx_frame_rotation(smplx_rotations[SMPLX_JOINT_INDEX[WRIST_JOINTS[side]]])


def _joint_rotation(
    joint: str, smplx_rotations: np.ndarray, wrist_rotations: dict[str, np.ndarray]
) -> np.ndarray:
    for side, wrist in WRIST_JOINTS.items():
        if joint == wrist:
            return wrist_rotations[side]
    source = _FINGERTIP_PARENT.get(joint, joint)
    index = SMPLX_JOINT_INDEX.get(source, 0)
    return smplx_frame_rotation(smplx_rotations[index])


def _kinematic_parent(joint: str) -> str | None:
    """SMPL-X parent of a joint (fingertips hang from their last segment); None for the root."""
    if joint in _FINGERTIP_PARENT:
        return _FINGERTIP_PARENT[joint]
    index = SMPLX_JOINT_INDEX.get(joint)
    if index is None or SMPLX_PARENTS[index] < 0:
        return None
    return SMPLX_JOINT_NAMES[SMPLX_PARENTS[index]]


def person_frame_poses(
    person: PersonResult, joint_names: Sequence[str], parent_frame: str, settings: TfSettings
) -> list[FramePose]:
    """The body root and the selected joint frames of one person (see the module docstring).

    Args:
        person: One person of a FrameResult.
        joint_names: Names of ``person.joints_m`` rows (``ModelDescription.joint_names``).
        parent_frame: The image's optical frame.
        settings: Names, joint set, tree and hand convention.

    Returns:
        The root first, then each selected joint; empty when the person is not ``TRACKED`` or
        ``PREDICTED`` or its root is not finite.
    """
    if person.tracking_state not in _PUBLISHED_STATES:
        return []
    root_position = np.asarray(person.root_position_m, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(root_position)):
        return []
    smplx_rotations = smplx_global_rotations(person)
    suffix = f'_{person.track_id}'
    root_frame = f'{settings.prefix}body{suffix}'
    root_rotation = smplx_frame_rotation(smplx_rotations[0])
    poses = [FramePose(parent_frame, root_frame, root_position, root_rotation)]

    joints_m = np.asarray(person.joints_m, dtype=np.float64).reshape(-1, 3)
    index = {name: i for i, name in enumerate(joint_names)}
    wrist_rotations: dict[str, np.ndarray] = {
        side: _wrist_rotation(
            person, side, joint_names, smplx_rotations, settings.hand_frame_convention
        )
        for side in SIDES
    }
    chosen = selected_joints(joint_names, settings.joints)
    chosen_set = set(chosen)
    camera_poses = {ROOT_JOINT: (root_position, root_rotation)}
    for joint in chosen:
        position = joints_m[index[joint]]
        if np.all(np.isfinite(position)):
            camera_poses[joint] = (
                position,
                _joint_rotation(joint, smplx_rotations, wrist_rotations),
            )
    for joint in chosen:
        if joint not in camera_poses:
            continue
        parent = ROOT_JOINT
        if settings.tree == 'kinematic':
            ancestor = _kinematic_parent(joint)
            while ancestor is not None and not (
                ancestor in chosen_set and ancestor in camera_poses
            ):
                ancestor = _kinematic_parent(ancestor)
            parent = ancestor if ancestor is not None else ROOT_JOINT
        parent_position, parent_rotation = camera_poses[parent]
        position, rotation = camera_poses[joint]
        parent_name = root_frame if parent == ROOT_JOINT else _frame(parent, settings, suffix)
        poses.append(
            FramePose(
                parent_name,
                _frame(joint, settings, suffix),
                parent_rotation.T @ (position - parent_position),
                parent_rotation.T @ rotation,
            )
        )
    return poses


def _frame(joint: str, settings: TfSettings, suffix: str) -> str:
    return f'{settings.prefix}{joint_frame_name(joint)}{suffix}'


def operator_frame_poses(
    hands: dict[str, HandResult],
    parent_frame: str,
    prefix: str,
    frame_names: dict[str, str],
    convention: HandFrameConvention,
) -> list[FramePose]:
    """Operator wrist aliases, equal to ``left_hand/pose`` and ``right_hand/pose``.

    Args:
        hands: The operator's usable hands by side (conversions.operator_hands).
        parent_frame: The image's optical frame.
        prefix: ``tf.prefix``.
        frame_names: Alias name by side (``operator.left_wrist_frame`` ...).
        convention: The hand frame convention.
    """
    return [
        FramePose(
            parent_frame,
            f'{prefix}{frame_names[side]}',
            np.asarray(hand.wrist_position_m, dtype=np.float64).reshape(3),
            hand_wrist_rotation(hand, convention),
        )
        for side, hand in sorted(hands.items())
    ]


def tf_message(poses: Iterable[FramePose], stamp: Time) -> TFMessage:
    """``tf2_msgs/TFMessage`` of frame poses, all with the source image's stamp."""
    message = TFMessage()
    for pose in poses:
        transform = TransformStamped()
        transform.header.stamp = stamp
        transform.header.frame_id = pose.parent
        transform.child_frame_id = pose.child
        x, y, z = (float(v) for v in pose.translation_m)
        transform.transform.translation.x = x
        transform.transform.translation.y = y
        transform.transform.translation.z = z
        qx, qy, qz, qw = (float(v) for v in rotation_matrix_to_quaternion(pose.rotation))
        rotation = transform.transform.rotation
        rotation.x, rotation.y, rotation.z, rotation.w = qx, qy, qz, qw
        message.transforms.append(transform)
    return message
