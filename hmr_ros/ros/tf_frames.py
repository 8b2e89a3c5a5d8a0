"""TF frames of tracked persons (docs/ros-interface.md; REP 155 and REP 120 names).

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
import struct
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
from hmr_ros.geometry.rotations import (
    axis_angle_to_rotmat_np,
    nearest_rotation_np,
    rotmat_to_quaternion_xyzw_np,
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
    REP155_FROM_SMPLX,
    HandFrameConvention,
    hand_wrist_rotation,
    keypoint_wrist_rotation,
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
    local = axis_angle_to_rotmat_np(local_aa)
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
        qx, qy, qz, qw = (float(v) for v in rotmat_to_quaternion_xyzw_np(pose.rotation))
        rotation = transform.transform.rotation
        rotation.x, rotation.y, rotation.z, rotation.w = qx, qy, qz, qw
        message.transforms.append(transform)
    return message


# ---------------------------------------------------------------- fast path: arrays and CDR bytes


class FrameArrays(NamedTuple):
    """Transforms as arrays, in message order (the fast path's :class:`FramePose` list).

    Attributes:
        parents: Parent frame id per transform.
        children: Child frame id per transform.
        translations_m: ``(T, 3)`` float64, metres, in the parent frame.
        quaternions_xyzw: ``(T, 4)`` float64 unit quaternions, ``w >= 0``.
    """

    parents: tuple[str, ...]
    children: tuple[str, ...]
    translations_m: np.ndarray
    quaternions_xyzw: np.ndarray

    @staticmethod
    def empty() -> FrameArrays:
        """No transforms."""
        return FrameArrays((), (), np.zeros((0, 3)), np.zeros((0, 4)))

    @staticmethod
    def concatenate(parts: Sequence[FrameArrays]) -> FrameArrays:
        """All transforms of ``parts``, in order."""
        parts = [part for part in parts if part.parents]
        if not parts:
            return FrameArrays.empty()
        return FrameArrays(
            tuple(name for part in parts for name in part.parents),
            tuple(name for part in parts for name in part.children),
            np.concatenate([part.translations_m for part in parts]),
            np.concatenate([part.quaternions_xyzw for part in parts]),
        )


def _fk_levels() -> list[tuple[np.ndarray, np.ndarray]]:
    """(joints, their parents) per depth in the SMPL-X tree (the root excluded), for batched FK."""
    depth = [0] * len(SMPLX_PARENTS)
    for joint in range(1, len(SMPLX_PARENTS)):
        depth[joint] = depth[SMPLX_PARENTS[joint]] + 1
    levels = []
    for level in range(1, max(depth) + 1):
        joints = [j for j in range(1, len(depth)) if depth[j] == level]
        levels.append((np.array(joints), np.array([SMPLX_PARENTS[j] for j in joints])))
    return levels


_FK_LEVELS = _fk_levels()
# FK runs on the joints reordered by depth, so each level is a contiguous slice written in
# place; _FK_INVERSE restores the SMPL-X order.
_FK_ORDER = np.concatenate([[0], *(joints for joints, _ in _FK_LEVELS)])
_FK_INVERSE = np.argsort(_FK_ORDER)


def _fk_slices() -> list[tuple[int, int, np.ndarray]]:
    """Per level: its slice of the depth-ordered joints and its parents' depth-order rows."""
    slices = []
    start = 1
    for joints, parents in _FK_LEVELS:
        slices.append((start, start + len(joints), _FK_INVERSE[parents]))
        start += len(joints)
    return slices


_FK_SLICES = _fk_slices()


def smplx_global_rotations_batch(persons: Sequence[PersonResult]) -> np.ndarray:
    """:func:`smplx_global_rotations` of several persons at once, one matmul per tree level.

    The root rotations are projected onto the nearest rotation first, so every product is
    orthonormal to float64 precision.

    Returns:
        ``(P, 55, 3, 3)`` float64.

    Raises:
        ValueError: wrong number of pose parameters, or non-finite ones.
    """
    count = len(persons)
    num_joints = len(SMPLX_JOINT_NAMES)
    try:
        parts = [
            np.zeros((count, 1, 3)),
            np.asarray([p.body_pose for p in persons], dtype=np.float64).reshape(count, -1, 3),
            np.asarray([p.jaw_pose for p in persons], dtype=np.float64).reshape(count, 1, 3),
            np.zeros((count, 2, 3)),
            np.asarray([p.left_hand_pose for p in persons], dtype=np.float64).reshape(
                count, -1, 3
            ),
            np.asarray([p.right_hand_pose for p in persons], dtype=np.float64).reshape(
                count, -1, 3
            ),
        ]
        root = np.asarray([p.root_rotation for p in persons], dtype=np.float64).reshape(
            count, 3, 3
        )
    except ValueError as error:
        raise ValueError(
            f'SMPL-X pose parameters of a person have the wrong size: {error}'
        ) from error
    local_aa = np.concatenate(parts, axis=1)
    if local_aa.shape[1] != num_joints:
        raise ValueError(
            f'SMPL-X pose parameters give {local_aa.shape[1]} joint rotations; expected '
            f'{num_joints}'
        )
    if not np.all(np.isfinite(local_aa)):
        raise ValueError('SMPL-X pose parameters are not finite')
    local = axis_angle_to_rotmat_np(local_aa[:, _FK_ORDER])  # depth order
    rotations = np.empty_like(local)
    rotations[:, 0] = nearest_rotation_np(root)
    for start, stop, parents in _FK_SLICES:
        np.matmul(rotations[:, parents], local[:, start:stop], out=rotations[:, start:stop])
    return rotations[:, _FK_INVERSE]


@dataclasses.dataclass(frozen=True)
class _JointPlan:
    """What one (joint names, settings) pair publishes, as index arrays."""

    chosen: tuple[str, ...]
    rows: np.ndarray  # (J,) rows of joints_m
    rotation_source: np.ndarray  # (J,) SMPL-X joint whose global rotation orients the frame
    wrist_slots: dict[str, int]  # side -> position in chosen (absent when not chosen)
    parents: np.ndarray  # (J,) 0 = body frame, k = chosen[k - 1]; every joint finite
    frame_names: tuple[str, ...]  # REP-120 names with prefix, without id


_PLANS: dict[tuple[tuple[str, ...], TfSettings], _JointPlan] = {}


def _joint_plan(joint_names: Sequence[str], settings: TfSettings) -> _JointPlan:
    key = (tuple(joint_names), settings)
    plan = _PLANS.get(key)
    if plan is None:
        chosen = tuple(selected_joints(joint_names, settings.joints))
        index = {name: i for i, name in enumerate(joint_names)}
        source = [SMPLX_JOINT_INDEX.get(_FINGERTIP_PARENT.get(j, j), 0) for j in chosen]
        wrists = {side: chosen.index(w) for side, w in WRIST_JOINTS.items() if w in chosen}
        plan = _JointPlan(
            chosen,
            np.array([index[j] for j in chosen], dtype=np.intp),
            np.array(source, dtype=np.intp),
            wrists,
            _parent_slots(chosen, settings.tree, np.ones(len(chosen), dtype=bool)),
            tuple(f'{settings.prefix}{joint_frame_name(j)}' for j in chosen),
        )
        if len(_PLANS) > 64:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _parent_slots(chosen: Sequence[str], tree: str, present: np.ndarray) -> np.ndarray:
    """Parent of each chosen joint: 0 for the body frame, k + 1 for ``chosen[k]``."""
    slot = {name: k + 1 for k, name in enumerate(chosen) if present[k]}
    parents = np.zeros(len(chosen), dtype=np.intp)
    if tree != 'kinematic':
        return parents
    for k, joint in enumerate(chosen):
        ancestor = _kinematic_parent(joint)
        while ancestor is not None and ancestor not in slot:
            ancestor = _kinematic_parent(ancestor)
        parents[k] = slot.get(ancestor, 0) if ancestor is not None else 0
    return parents


def person_frame_arrays(
    persons: Sequence[PersonResult],
    joint_names: Sequence[str],
    parent_frame: str,
    settings: TfSettings,
) -> FrameArrays:
    """:func:`person_frame_poses` of every person, computed with array operations.

    Same frames, parents and order as the readable builder (a test compares them); the
    rotations are projected onto rotations once, at the inputs (root and wrist), instead of at
    every output, which changes results by about 1e-12.

    Args:
        persons: The persons of one FrameResult.
        joint_names: Names of ``joints_m`` rows (``ModelDescription.joint_names``).
        parent_frame: The image's optical frame.
        settings: Names, joint set, tree and hand convention.

    Returns:
        Per published person, the body frame then its selected joints.
    """
    published = [
        person
        for person in persons
        if person.tracking_state in _PUBLISHED_STATES
        and np.all(np.isfinite(np.asarray(person.root_position_m, dtype=np.float64)))
    ]
    if not published:
        return FrameArrays.empty()
    plan = _joint_plan(joint_names, settings)
    count, num_chosen = len(published), len(plan.chosen)
    smplx_rotations = smplx_global_rotations_batch(published)
    # Camera-frame poses, slot 0 the body frame, slots 1.. the chosen joints.
    positions = np.empty((count, 1 + num_chosen, 3))
    rotations = np.empty((count, 1 + num_chosen, 3, 3))
    wrists = np.empty((count, len(SIDES), 3, 3))
    for p, person in enumerate(published):
        positions[p, 0] = np.reshape(person.root_position_m, 3)
        positions[p, 1:] = np.reshape(person.joints_m, (-1, 3))[plan.rows]
        for s, side in enumerate(SIDES):
            wrists[p, s] = _wrist_rotation(
                person, side, joint_names, smplx_rotations[p], settings.hand_frame_convention
            )
    rotations[:, 0] = smplx_rotations[:, 0] @ REP155_FROM_SMPLX
    rotations[:, 1:] = smplx_rotations[:, plan.rotation_source] @ REP155_FROM_SMPLX
    if plan.wrist_slots:
        wrists = nearest_rotation_np(wrists)
    for s, side in enumerate(SIDES):
        if side in plan.wrist_slots:
            rotations[:, 1 + plan.wrist_slots[side]] = wrists[:, s]
    finite = np.all(np.isfinite(positions[:, 1:]), axis=-1)  # (P, J)
    parents = np.broadcast_to(plan.parents, (count, num_chosen)).copy()
    for incomplete in np.flatnonzero(~np.all(finite, axis=1)).tolist():
        parents[incomplete] = _parent_slots(plan.chosen, settings.tree, finite[incomplete])
    rows = np.arange(count)[:, None]
    parent_rotation = rotations[rows, parents]  # (P, J, 3, 3)
    offset = positions[:, 1:] - positions[rows, parents]
    translations = np.empty((count, 1 + num_chosen, 3))
    relative = np.empty((count, 1 + num_chosen, 3, 3))
    translations[:, 0] = positions[:, 0]
    relative[:, 0] = rotations[:, 0]
    translations[:, 1:] = np.einsum('pjki,pjk->pji', parent_rotation, offset)
    relative[:, 1:] = np.swapaxes(parent_rotation, -1, -2) @ rotations[:, 1:]
    keep = np.concatenate([np.ones((count, 1), dtype=bool), finite], axis=1)
    quaternions = rotmat_to_quaternion_xyzw_np(relative[keep], project=False)
    parent_names: list[str] = []
    child_names: list[str] = []
    for p, person in enumerate(published):
        suffix = f'_{person.track_id}'
        body = f'{settings.prefix}body{suffix}'
        children = [f'{name}{suffix}' for name in plan.frame_names]
        parent_names.append(parent_frame)
        child_names.append(body)
        kept: Iterable[int] = np.flatnonzero(finite[p]).tolist()
        for k in kept:
            parent = int(parents[p, k])
            parent_names.append(body if parent == 0 else children[parent - 1])
            child_names.append(children[k])
    return FrameArrays(tuple(parent_names), tuple(child_names), translations[keep], quaternions)


def operator_frame_arrays(
    hands: dict[str, HandResult],
    parent_frame: str,
    prefix: str,
    frame_names: dict[str, str],
    convention: HandFrameConvention,
) -> FrameArrays:
    """:func:`operator_frame_poses` as arrays (at most two transforms)."""
    poses = operator_frame_poses(hands, parent_frame, prefix, frame_names, convention)
    if not poses:
        return FrameArrays.empty()
    return FrameArrays(
        tuple(pose.parent for pose in poses),
        tuple(pose.child for pose in poses),
        np.stack([pose.translation_m for pose in poses]),
        rotmat_to_quaternion_xyzw_np(np.stack([pose.rotation for pose in poses])),
    )


class _CdrTemplate(NamedTuple):
    """A serialised TFMessage for fixed frame names, with the varying bytes located."""

    data: bytes
    stamp_offsets: np.ndarray  # (T,) byte offset of each header.stamp (int32 sec, uint32 ns)
    value_indices: np.ndarray  # (T * 56,) byte indices of the 7 float64 of each transform


_CDR_LITTLE_ENDIAN_HEADER = b'\x00\x01\x00\x00'  # plain CDR, little endian, no options
_CDR_BODY_START = len(_CDR_LITTLE_ENDIAN_HEADER)
_TRANSFORM_VALUES = 7  # translation x, y, z; rotation x, y, z, w
_FLOAT64_BYTES = 8


def _cdr_template(parents: tuple[str, ...], children: tuple[str, ...]) -> _CdrTemplate:
    """Plain little-endian CDR of ``tf2_msgs/TFMessage`` with zero stamps and values.

    Layout (alignment counted from the end of the 4-byte encapsulation header): uint32 count;
    per transform: header.stamp (int32 sec, uint32 nanosec, 4-aligned), header.frame_id and
    child_frame_id (uint32 length including the NUL, bytes, NUL; 4-aligned), then the
    transform's seven float64 (8-aligned).
    """
    out = bytearray(_CDR_LITTLE_ENDIAN_HEADER)
    out += struct.pack('<I', len(parents))
    stamps = []
    values = []

    def align(size: int) -> None:
        out.extend(b'\x00' * (-(len(out) - _CDR_BODY_START) % size))

    def string(text: str) -> None:
        encoded = text.encode('utf-8') + b'\x00'
        align(4)
        out.extend(struct.pack('<I', len(encoded)))
        out.extend(encoded)

    for parent, child in zip(parents, children, strict=True):
        align(4)
        stamps.append(len(out))
        out.extend(b'\x00' * 8)
        string(parent)
        string(child)
        align(_FLOAT64_BYTES)
        values.append(len(out))
        out.extend(b'\x00' * (_TRANSFORM_VALUES * _FLOAT64_BYTES))
    byte_range = np.arange(_TRANSFORM_VALUES * _FLOAT64_BYTES)
    return _CdrTemplate(
        bytes(out),
        np.array(stamps, dtype=np.intp),
        (np.array(values, dtype=np.intp)[:, None] + byte_range).reshape(-1),
    )


class TfSerializer:
    """Serialised ``/tf`` messages from :class:`FrameArrays`, without message objects.

    The bytes of a TFMessage depend on the frame names only through a fixed layout, so the
    layout is built once per set of names (a few per session: they change when persons come and
    go) and each frame writes its stamp and the seven float64 of every transform into a copy
    with one numpy scatter. Publish the result with ``publisher.publish(data)``: rclpy sends
    ``bytes`` as an already serialised message. :func:`tf_message` is the readable reference; a
    test deserialises these bytes and compares them with it.
    """

    def __init__(self, max_layouts: int = 16) -> None:
        self._templates: dict[tuple[tuple[str, ...], tuple[str, ...]], _CdrTemplate] = {}
        self._max_layouts = max_layouts

    def serialize(self, frames: FrameArrays, stamp: Time) -> bytes:
        """CDR bytes of the TFMessage of ``frames``, every header stamped ``stamp``."""
        key = (frames.parents, frames.children)
        template = self._templates.get(key)
        if template is None:
            template = _cdr_template(*key)
            if len(self._templates) >= self._max_layouts:
                self._templates.pop(next(iter(self._templates)))
            self._templates[key] = template
        if not frames.parents:
            return template.data
        data = bytearray(template.data)
        view = np.frombuffer(data, dtype=np.uint8)
        stamp_bytes = np.frombuffer(struct.pack('<iI', stamp.sec, stamp.nanosec), np.uint8)
        view[template.stamp_offsets[:, None] + np.arange(8)] = stamp_bytes
        values = np.concatenate([frames.translations_m, frames.quaternions_xyzw], axis=1)
        view[template.value_indices] = (
            np.ascontiguousarray(values, dtype='<f8').view(np.uint8).ravel()
        )
        return bytes(data)
