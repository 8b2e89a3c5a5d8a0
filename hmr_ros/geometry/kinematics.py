"""Forward kinematics of a kinematic tree: local joint rotations -> global rotations and joints.

SMPL-X (and MANO) pose a skeleton by rotating each joint relative to its parent (`smplx/lbs.py`,
``batch_rigid_transform``). For joint j with parent p(j), local rotation R_j and rest position
J_j (the root has no parent):

    G_root = R_root,                       x_root = J_root
    G_j = G_p(j) R_j,                      x_j = x_p(j) + G_p(j) (J_j - J_p(j))

G_j is the global rotation of joint j: it maps the joint's rest-pose frame into the frame the
root rotation is expressed in (the camera frame for SMPL-X's ``global_orient``). The inverse
relation, R_j = G_p(j)^T G_j, turns a global rotation of one joint (for example a hand's global
orientation from the hand expert) into the local rotation the body model takes.

The tree is given as a parent index per joint (-1 for roots), parents before children, as
``hmr_ros.body_models.joint_names.SMPLX_PARENTS``. All functions are batched over leading
dimensions, keep dtype and device, and are differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = [
    'KinematicsOutput',
    'forward_kinematics',
    'global_rotations',
    'local_rotations',
]


class KinematicsOutput(NamedTuple):
    """Posed skeleton.

    Attributes:
        global_rotmats: (..., J, 3, 3) global rotation of every joint.
        joints: (..., J, 3) posed joint positions, in the units and frame of the rest joints
            (the root keeps its rest position; add a translation afterwards).
    """

    global_rotmats: torch.Tensor
    joints: torch.Tensor


def _check_tree(parents: Sequence[int], num_joints: int) -> None:
    if len(parents) != num_joints:
        raise ValueError(
            f'parents has {len(parents)} entries but the rotations have {num_joints} joints; '
            'pass one parent index per joint (-1 for roots)'
        )
    for joint, parent in enumerate(parents):
        if parent >= joint or parent < -1:
            raise ValueError(
                f'joint {joint} has parent {parent}; parents must come before their children '
                '(-1 for roots), as in SMPLX_PARENTS'
            )


def _check_rotmats(rotmats: torch.Tensor, name: str) -> None:
    if rotmats.dim() < 3 or tuple(rotmats.shape[-2:]) != (3, 3):
        raise ValueError(f'{name} must have shape (..., J, 3, 3); got {tuple(rotmats.shape)}')


def global_rotations(local_rotmats: torch.Tensor, parents: Sequence[int]) -> torch.Tensor:
    """Global rotation of every joint, G_j = G_p(j) R_j (no joint positions needed).

    Args:
        local_rotmats: (..., J, 3, 3) local rotations; a root's local rotation is its global one.
        parents: J parent indices, -1 for roots, parents first.

    Returns:
        (..., J, 3, 3) global rotations.

    Raises:
        ValueError: wrong shapes or a parent after its child.
    """
    _check_rotmats(local_rotmats, 'local_rotmats')
    _check_tree(parents, local_rotmats.shape[-3])
    globals_: list[torch.Tensor] = []
    for joint, parent in enumerate(parents):
        local = local_rotmats[..., joint, :, :]
        globals_.append(local if parent < 0 else globals_[parent] @ local)
    return torch.stack(globals_, dim=-3)


def local_rotations(global_rotmats: torch.Tensor, parents: Sequence[int]) -> torch.Tensor:
    """Local rotations from global ones, R_j = G_p(j)^T G_j; inverse of global_rotations.

    Args:
        global_rotmats: (..., J, 3, 3) global rotations (orthonormal).
        parents: J parent indices, -1 for roots, parents first.

    Returns:
        (..., J, 3, 3) local rotations.
    """
    _check_rotmats(global_rotmats, 'global_rotmats')
    _check_tree(parents, global_rotmats.shape[-3])
    locals_ = [
        global_rotmats[..., joint, :, :]
        if parent < 0
        else global_rotmats[..., parent, :, :].transpose(-1, -2) @ global_rotmats[..., joint, :, :]
        for joint, parent in enumerate(parents)
    ]
    return torch.stack(locals_, dim=-3)


def forward_kinematics(
    local_rotmats: torch.Tensor, rest_joints: torch.Tensor, parents: Sequence[int]
) -> KinematicsOutput:
    """Pose a skeleton: global rotations and joint positions (``smplx.lbs.batch_rigid_transform``).

    Args:
        local_rotmats: (..., J, 3, 3) local rotations (root: global orientation).
        rest_joints: (..., J, 3) rest-pose joint positions (SMPL-X: J_regressor applied to the
            shaped template), broadcastable against the rotations' leading dimensions.
        parents: J parent indices, -1 for roots, parents first.

    Returns:
        KinematicsOutput(global_rotmats (..., J, 3, 3), joints (..., J, 3)).

    Raises:
        ValueError: wrong shapes or a parent after its child.
    """
    _check_rotmats(local_rotmats, 'local_rotmats')
    num_joints = local_rotmats.shape[-3]
    if rest_joints.dim() < 2 or tuple(rest_joints.shape[-2:]) != (num_joints, 3):
        raise ValueError(
            f'rest_joints must have shape (..., {num_joints}, 3) to match the rotations; got '
            f'{tuple(rest_joints.shape)}'
        )
    _check_tree(parents, num_joints)
    lead = torch.broadcast_shapes(local_rotmats.shape[:-3], rest_joints.shape[:-2])
    local_rotmats = local_rotmats.expand(*lead, num_joints, 3, 3)
    rest_joints = rest_joints.expand(*lead, num_joints, 3)
    rotations: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    for joint, parent in enumerate(parents):
        local = local_rotmats[..., joint, :, :]
        rest = rest_joints[..., joint, :]
        if parent < 0:
            rotations.append(local)
            positions.append(rest)
            continue
        bone = rest - rest_joints[..., parent, :]
        rotations.append(rotations[parent] @ local)
        positions.append(positions[parent] + (rotations[parent] @ bone[..., None])[..., 0])
    return KinematicsOutput(
        global_rotmats=torch.stack(rotations, dim=-3), joints=torch.stack(positions, dim=-2)
    )
