"""Joint names, kinematic trees and joint maps of SMPL-X and MANO.

Every index list here is derived from names, so a reader can check it against the model papers:

- SMPL-X (Pavlakos et al., CVPR 2019): 55 kinematic joints in the order of the `smplx` package's
  `JOINT_NAMES`, i.e. root, 21 body joints, jaw, two eyes, 15 left-hand and 15 right-hand joints;
  then the joints `smplx` appends (vertex keypoints, facial landmarks, optional face contour).
- MANO (Romero et al., SIGGRAPH Asia 2017): 16 joints (wrist, then index, middle, pinky, ring and
  thumb, three each); HaMeR appends five fingertip vertices and reorders the 21 joints to the
  OpenPose hand order (docs/model-reference.md, A.6), which is also MediaPipe's landmark order.
- ROS frame names follow REP-120's short side prefixes (`l_wrist`, `r_elbow`).

The parents of the body joints are written as names below; the finger chains follow one rule
(first segment on the wrist, each next segment on the previous one). The result equals the
official `kintree_table` of SMPL-X 1.1, which a test checks index by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from smplx.joint_names import JOINT_NAMES as _SMPLX_PACKAGE_JOINT_NAMES

Side = Literal['left', 'right']
SIDES: tuple[Side, Side] = ('left', 'right')

# Fingers in the order SMPL-X and MANO store them (not anatomical order: pinky before ring).
MODEL_FINGER_ORDER = ('index', 'middle', 'pinky', 'ring', 'thumb')
# Fingers in anatomical order, as OpenPose, MediaPipe and the MANO fingertip vertices use them.
ANATOMICAL_FINGER_ORDER = ('thumb', 'index', 'middle', 'ring', 'pinky')
NUM_FINGERS = len(MODEL_FINGER_ORDER)
NUM_SEGMENTS_PER_FINGER = 3

# ---------------------------------------------------------------- SMPL-X kinematic joints
NUM_ROOT_JOINTS = 1
NUM_BODY_JOINTS = 21  # SMPL-X body joints without the root (what `body_pose` rotates)
NUM_FACE_JOINTS = 3  # jaw, left eye, right eye
NUM_HAND_JOINTS = NUM_FINGERS * NUM_SEGMENTS_PER_FINGER  # 15 per hand
NUM_SMPLX_JOINTS = NUM_ROOT_JOINTS + NUM_BODY_JOINTS + NUM_FACE_JOINTS + 2 * NUM_HAND_JOINTS

SMPLX_JOINT_NAMES: tuple[str, ...] = tuple(_SMPLX_PACKAGE_JOINT_NAMES[:NUM_SMPLX_JOINTS])
"""The 55 kinematic joints, in the order of `smplx` (and of the SMPL-X `J_regressor`)."""

BODY_JOINT_NAMES = SMPLX_JOINT_NAMES[NUM_ROOT_JOINTS : NUM_ROOT_JOINTS + NUM_BODY_JOINTS]
"""The 21 joints of `body_pose`, root excluded."""


def hand_joint_names(side: Side) -> tuple[str, ...]:
    """Return the 15 finger joints of one hand in SMPL-X order (`left_index1` ... `left_thumb3`).

    Args:
        side: 'left' or 'right'.

    Returns:
        15 names, the order of `left_hand_pose` / `right_hand_pose`.
    """
    _check_side(side)
    return tuple(
        f'{side}_{finger}{segment}'
        for finger in MODEL_FINGER_ORDER
        for segment in range(1, NUM_SEGMENTS_PER_FINGER + 1)
    )


_BODY_PARENT_NAMES: dict[str, str] = {
    'left_hip': 'pelvis',
    'right_hip': 'pelvis',
    'spine1': 'pelvis',
    'left_knee': 'left_hip',
    'right_knee': 'right_hip',
    'spine2': 'spine1',
    'left_ankle': 'left_knee',
    'right_ankle': 'right_knee',
    'spine3': 'spine2',
    'left_foot': 'left_ankle',
    'right_foot': 'right_ankle',
    'neck': 'spine3',
    'left_collar': 'spine3',
    'right_collar': 'spine3',
    'head': 'neck',
    'left_shoulder': 'left_collar',
    'right_shoulder': 'right_collar',
    'left_elbow': 'left_shoulder',
    'right_elbow': 'right_shoulder',
    'left_wrist': 'left_elbow',
    'right_wrist': 'right_elbow',
    'jaw': 'head',
    'left_eye_smplhf': 'head',
    'right_eye_smplhf': 'head',
}


def _finger_parent_names(root: str, prefix: str) -> dict[str, str]:
    """Parents of finger joints named `{prefix}{finger}{segment}`, hanging from `root`."""
    parents = {}
    for finger in MODEL_FINGER_ORDER:
        previous = root
        for segment in range(1, NUM_SEGMENTS_PER_FINGER + 1):
            name = f'{prefix}{finger}{segment}'
            parents[name] = previous
            previous = name
    return parents


def _parent_indices(names: tuple[str, ...], parent_names: dict[str, str]) -> tuple[int, ...]:
    """Map each joint to its parent's index (-1 for the root); parents must come first."""
    index = {name: i for i, name in enumerate(names)}
    parents = []
    for i, name in enumerate(names):
        parent = parent_names.get(name)
        parent_index = -1 if parent is None else index[parent]
        if parent_index >= i:
            raise ValueError(f'joint {name} comes before its parent {parent}')
        parents.append(parent_index)
    return tuple(parents)


_SMPLX_PARENT_NAMES = {
    **_BODY_PARENT_NAMES,
    **_finger_parent_names('left_wrist', 'left_'),
    **_finger_parent_names('right_wrist', 'right_'),
}
SMPLX_PARENTS: tuple[int, ...] = _parent_indices(SMPLX_JOINT_NAMES, _SMPLX_PARENT_NAMES)
"""Parent index of each of the 55 joints; -1 for the pelvis (row 0 of `kintree_table`)."""

SMPLX_JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}

# ---------------------------------------------------------------- joints smplx appends
SMPLX_VERTEX_KEYPOINT_NAMES: tuple[str, ...] = tuple(
    _SMPLX_PACKAGE_JOINT_NAMES[NUM_SMPLX_JOINTS : NUM_SMPLX_JOINTS + 21]
)
"""21 keypoints `smplx` picks from mesh vertices: 5 face, 6 feet, 10 fingertips (left first)."""
NUM_SMPLX_LANDMARKS = 51  # static facial landmarks (`lmk_faces_idx`)
NUM_SMPLX_CONTOUR_LANDMARKS = 17  # dynamic face contour (`dynamic_lmk_faces_idx`, per yaw angle)
_LANDMARKS_START = NUM_SMPLX_JOINTS + len(SMPLX_VERTEX_KEYPOINT_NAMES)
SMPLX_LANDMARK_NAMES: tuple[str, ...] = tuple(
    _SMPLX_PACKAGE_JOINT_NAMES[_LANDMARKS_START : _LANDMARKS_START + NUM_SMPLX_LANDMARKS]
)
SMPLX_CONTOUR_NAMES: tuple[str, ...] = tuple(
    _SMPLX_PACKAGE_JOINT_NAMES[
        _LANDMARKS_START + NUM_SMPLX_LANDMARKS : _LANDMARKS_START
        + NUM_SMPLX_LANDMARKS
        + NUM_SMPLX_CONTOUR_LANDMARKS
    ]
)


def smplx_output_joint_names(use_face_contour: bool) -> tuple[str, ...]:
    """Names of the joints `smplx.SMPLXLayer` returns, in its output order.

    The order is: 55 kinematic joints, 21 vertex keypoints, 51 facial landmarks, then (only with
    `use_face_contour`) 17 face-contour landmarks: 127 or 144 joints.

    Args:
        use_face_contour: whether the layer was built with `use_face_contour=True`.

    Returns:
        One name per output joint.
    """
    names = SMPLX_JOINT_NAMES + SMPLX_VERTEX_KEYPOINT_NAMES + SMPLX_LANDMARK_NAMES
    return names + SMPLX_CONTOUR_NAMES if use_face_contour else names


# ---------------------------------------------------------------- groups used by the adapters


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")


def kinematic_chain(joint: str) -> tuple[str, ...]:
    """Return the SMPL-X joints from the root down to `joint`, found by walking the parents.

    Args:
        joint: a name from `SMPLX_JOINT_NAMES`.

    Returns:
        Names from 'pelvis' to `joint` inclusive.

    Raises:
        KeyError: `joint` is not an SMPL-X kinematic joint.
    """
    if joint not in SMPLX_JOINT_INDEX:
        raise KeyError(f'{joint!r} is not an SMPL-X joint; known: {", ".join(SMPLX_JOINT_NAMES)}')
    chain = []
    index = SMPLX_JOINT_INDEX[joint]
    while index != -1:
        chain.append(SMPLX_JOINT_NAMES[index])
        index = SMPLX_PARENTS[index]
    return tuple(reversed(chain))


def arm_chain(side: Side) -> tuple[str, ...]:
    """Return the body guidance joints of one arm (paper 3.3): root down to that wrist.

    For both sides this is pelvis, spine1, spine2, spine3, collar, shoulder, elbow, wrist.

    Args:
        side: 'left' or 'right'.

    Returns:
        8 SMPL-X joint names, root first.
    """
    _check_side(side)
    return kinematic_chain(f'{side}_wrist')


def arm_chain_indices(side: Side) -> tuple[int, ...]:
    """Indices into the 55 SMPL-X joints of `arm_chain(side)` (pelvis = 0, body joints 1..21)."""
    return tuple(SMPLX_JOINT_INDEX[name] for name in arm_chain(side))


MCP_FINGERS = ('index', 'middle', 'ring', 'pinky')
"""Fingers whose metacarpophalangeal (first) joint the body adapter samples (paper 3.4)."""


def mcp_joint_names(side: Side) -> tuple[str, ...]:
    """Return the four MCP joints of one hand: `{side}_index1`, middle1, ring1, pinky1."""
    _check_side(side)
    return tuple(f'{side}_{finger}1' for finger in MCP_FINGERS)


# ---------------------------------------------------------------- MANO and hand keypoint orders
MANO_JOINT_NAMES: tuple[str, ...] = ('wrist',) + tuple(
    f'{finger}{segment}'
    for finger in MODEL_FINGER_ORDER
    for segment in range(1, NUM_SEGMENTS_PER_FINGER + 1)
)
"""The 16 MANO joints in native (`J_regressor`) order."""
NUM_MANO_JOINTS = len(MANO_JOINT_NAMES)
MANO_PARENTS: tuple[int, ...] = _parent_indices(
    MANO_JOINT_NAMES, _finger_parent_names('wrist', '')
)

MANO_FINGERTIP_VERTICES: dict[str, int] = {
    'thumb': 744,
    'index': 320,
    'middle': 443,
    'ring': 554,
    'pinky': 671,
}
"""MANO vertices used as fingertips (as in `smplx.vertex_ids['mano']`), anatomical order."""

MANO_JOINT_NAMES_WITH_TIPS: tuple[str, ...] = MANO_JOINT_NAMES + tuple(
    f'{finger}_tip' for finger in MANO_FINGERTIP_VERTICES
)
"""21 hand joints as MANO produces them once the fingertip vertices are appended."""

OPENPOSE_HAND_JOINT_NAMES: tuple[str, ...] = ('wrist',) + tuple(
    name
    for finger in ANATOMICAL_FINGER_ORDER
    for name in (*(f'{finger}{s}' for s in range(1, NUM_SEGMENTS_PER_FINGER + 1)), f'{finger}_tip')
)
"""21 hand keypoints in OpenPose order (wrist, then thumb..pinky base to tip)."""
NUM_HAND_KEYPOINTS = len(OPENPOSE_HAND_JOINT_NAMES)

MEDIAPIPE_HAND_LANDMARK_NAMES: tuple[str, ...] = ('WRIST',) + tuple(
    f'{finger}_{part}'
    for finger, parts in (
        ('THUMB', ('CMC', 'MCP', 'IP', 'TIP')),
        ('INDEX_FINGER', ('MCP', 'PIP', 'DIP', 'TIP')),
        ('MIDDLE_FINGER', ('MCP', 'PIP', 'DIP', 'TIP')),
        ('RING_FINGER', ('MCP', 'PIP', 'DIP', 'TIP')),
        ('PINKY', ('MCP', 'PIP', 'DIP', 'TIP')),
    )
    for part in parts
)
"""MediaPipe Hands landmark names; same order as `OPENPOSE_HAND_JOINT_NAMES`, one to one."""

MANO_TO_OPENPOSE: tuple[int, ...] = tuple(
    MANO_JOINT_NAMES_WITH_TIPS.index(name) for name in OPENPOSE_HAND_JOINT_NAMES
)
"""openpose_joints = mano_joints_with_tips[:, MANO_TO_OPENPOSE] (HaMeR's `joint_map`)."""
OPENPOSE_TO_MANO: tuple[int, ...] = tuple(
    OPENPOSE_HAND_JOINT_NAMES.index(name) for name in MANO_JOINT_NAMES_WITH_TIPS
)
"""mano_joints_with_tips = openpose_joints[:, OPENPOSE_TO_MANO] (inverse of MANO_TO_OPENPOSE)."""


def smplx_hand_to_openpose(side: Side) -> tuple[str, ...]:
    """SMPL-X output joint names of one hand in OpenPose order (wrist, thumb1..., pinky tip).

    Fingertips are the `smplx` vertex keypoints (`left_thumb` ... `right_pinky`).

    Args:
        side: 'left' or 'right'.

    Returns:
        21 names found in `smplx_output_joint_names(...)`.
    """
    _check_side(side)
    names = []
    for name in OPENPOSE_HAND_JOINT_NAMES:
        if name.endswith('_tip'):
            names.append(f'{side}_{name[: -len("_tip")]}')
        else:
            names.append(f'{side}_{name}')
    return tuple(names)


# ---------------------------------------------------------------- mirror images (horizontal flip)

_SIDE_PREFIXES = (('left_', 'right_'), ('right_', 'left_'))


def mirror_name(name: str) -> str:
    """The name of the mirror-image point: 'left_elbow' <-> 'right_elbow'; others unchanged."""
    for prefix, other in _SIDE_PREFIXES:
        if name.startswith(prefix):
            return other + name[len(prefix) :]
    return name


def flip_permutation(names: Sequence[str]) -> tuple[int, ...]:
    """Index map for a horizontal flip: flipped[i] = original[perm[i]].

    Args:
        names: point names of one layout; every left/right name needs its partner.

    Returns:
        perm with names[perm[i]] == mirror_name(names[i]).
    """
    index = {name: i for i, name in enumerate(names)}
    try:
        return tuple(index[mirror_name(name)] for name in names)
    except KeyError as error:
        raise ValueError(f'layout has no mirror partner for {error.args[0]!r}') from None


BODY_POSE_FLIP_PERMUTATION: tuple[int, ...] = flip_permutation(BODY_JOINT_NAMES)
"""flip_permutation of the 21 `body_pose` joints."""


# ---------------------------------------------------------------- ROS frame names (REP-120 style)


def ros_frame_name(joint: str) -> str:
    """Short ROS frame name of an SMPL-X joint: `left_wrist` -> `l_wrist` (REP-120 prefixes).

    The SMPL-X eye joints lose their `_smplhf` suffix (`left_eye_smplhf` -> `l_eye`).

    Args:
        joint: an SMPL-X joint name.

    Returns:
        The frame name, without any namespace or person prefix.
    """
    name = joint.removesuffix('_smplhf')
    for side, short in (('left_', 'l_'), ('right_', 'r_')):
        if name.startswith(side):
            return short + name[len(side) :]
    return name


SMPLX_ROS_FRAME_NAMES: tuple[str, ...] = tuple(ros_frame_name(n) for n in SMPLX_JOINT_NAMES)
