"""SMPL mesh -> SMPL-X body pose: joints from the SMPL mesh, then swing IK on the shared tree.

FastMETRO predicts an SMPL-topology mesh (6890 vertices), not SMPL-X parameters; the dual path
needs SMPL-X ``global_orient`` + 21 ``body_pose`` rotations (docs/seed-models.md, 'SMPL to
SMPL-X'). SMPL and SMPL-X share the first 22 joints of their kinematic trees (pelvis ... both
wrists, same names, order and parents), so the mapping is:

1. SMPL joints = SMPL ``J_regressor`` (24 x 6890, from the user's SMPL model file) applied to
   the mesh; joints 22-23 (SMPL's hand joints) are dropped, fingers come from the hand path.
2. Analytic swing IK over the 22 joints, in tree order, on the SMPL-X rest skeleton: a joint
   with one child gets the smallest rotation turning its rest bone (carried by the parent's
   global rotation) onto the target bone direction; a joint with several children (pelvis,
   spine3) gets the rotation best aligning all its bone directions (Kabsch/SVD); leaves (feet,
   head, wrists) keep their parent's orientation (local identity; the wrists are replaced by
   the hand path's).

No iterations, so it is deterministic, batched and exportable. Bone directions are matched
exactly; bone lengths are the SMPL-X rest skeleton's. What joints cannot tell: the twist of a
limb about its own bone (upper arm, forearm, thigh, shin) is set to the minimal (swing-only)
rotation, and the body shape is not transferred (SMPL and SMPL-X shape spaces differ; betas
stay 0 unless fitted elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hmr_ros.body_models.joint_names import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from hmr_ros.body_models.model_files import BodyModelFileNotFoundError
from hmr_ros.geometry.kinematics import local_rotations
from hmr_ros.geometry.rotations import axis_angle_to_rotmat

__all__ = [
    'NUM_SHARED_JOINTS',
    'SHARED_PARENTS',
    'SMPL_FILE_NAMES',
    'SMPL_JOINT_NAMES',
    'SMPL_NUM_VERTICES',
    'load_smpl_joint_regressor',
    'rotation_between',
    'swing_ik',
]

SMPL_NUM_VERTICES = 6890
SMPL_NUM_JOINTS = 24
NUM_SHARED_JOINTS = 22
"""SMPL and SMPL-X share joints 0..21 (pelvis ... right_wrist) and their parents."""
SMPL_JOINT_NAMES: tuple[str, ...] = (
    *SMPLX_JOINT_NAMES[:NUM_SHARED_JOINTS],
    'left_hand',
    'right_hand',
)
"""SMPL's 24 joints (SMPL paper, Fig. 2 / smplx.joint_names.SMPL_JOINT_NAMES)."""
SHARED_PARENTS: tuple[int, ...] = SMPLX_PARENTS[:NUM_SHARED_JOINTS]
SMPL_FILE_NAMES = ('SMPL_NEUTRAL.npz', 'smpl/SMPL_NEUTRAL.npz')
SMPL_WEBSITE = 'https://smpl.is.tue.mpg.de'
_EPS = 1e-8


def _children(parents: tuple[int, ...]) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in parents]
    for joint, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(joint)
    return children


def rotation_between(source: Tensor, target: Tensor) -> Tensor:
    """Smallest rotation turning direction ``source`` onto ``target`` (axis source x target).

    Args:
        source: (..., 3) vectors (any non-zero length).
        target: (..., 3).

    Returns:
        (..., 3, 3); for opposite directions a half turn about an axis perpendicular to source.
    """
    a = source / source.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b = target / target.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    cross = torch.linalg.cross(a, b, dim=-1)
    sin = cross.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    # Opposite vectors: any axis perpendicular to a (a x e_x, or a x e_y when a is along e_x).
    helper = torch.zeros_like(a)
    helper[..., 0] = 1.0
    along_x = a[..., :1].abs() > 0.9
    helper = torch.where(along_x, torch.roll(helper, 1, dims=-1), helper)
    fallback = torch.linalg.cross(a, helper, dim=-1)
    axis = torch.where(sin > 1e-6, cross, fallback)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return axis_angle_to_rotmat(axis * torch.atan2(sin, cos))


def _best_rotation(rest: Tensor, target: Tensor) -> Tensor:
    """Kabsch: rotation R minimising sum_i |R rest_i - target_i|^2 over unit directions.

    rest (C, 3), target (B, C, 3) -> (B, 3, 3).
    """
    rest = rest / rest.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    target = target / target.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    covariance = target.transpose(-1, -2) @ rest.expand_as(target)  # sum target_i rest_i^T
    u, _, vh = torch.linalg.svd(covariance)
    sign = torch.sign(torch.linalg.det(u @ vh))
    fix = torch.ones_like(u[..., 0])
    fix[..., 2] = sign
    return u @ torch.diag_embed(fix) @ vh


def swing_ik(target_joints: Tensor, rest_joints: Tensor) -> Tensor:
    """Local rotations of the 22 shared joints that point every bone at the targets.

    Args:
        target_joints: (B, 22, 3) joint positions (SMPL joints 0..21 of a mesh, any frame).
        rest_joints: (22, 3) or (B, 22, 3) SMPL-X rest joints (J_regressor of the template,
            shaped by the betas used afterwards).

    Returns:
        (B, 22, 3, 3) local rotations, root first: [:, 0] is ``global_orient`` in the targets'
        frame, [:, 1:] the SMPL-X ``body_pose``.

    Raises:
        ValueError: wrong shapes.
    """
    if target_joints.dim() != 3 or tuple(target_joints.shape[1:]) != (NUM_SHARED_JOINTS, 3):
        raise ValueError(f'target_joints must be (B, 22, 3); got {tuple(target_joints.shape)}')
    batch = target_joints.shape[0]
    rest = rest_joints.to(target_joints).expand(batch, NUM_SHARED_JOINTS, 3)
    children = _children(SHARED_PARENTS)
    identity = torch.eye(3, dtype=target_joints.dtype, device=target_joints.device)
    global_rotmats: list[Tensor] = []
    for joint, parent in enumerate(SHARED_PARENTS):
        parent_rotmat = identity.expand(batch, 3, 3) if parent < 0 else global_rotmats[parent]
        kids = children[joint]
        if not kids:
            global_rotmats.append(parent_rotmat)
            continue
        rest_bones = rest[:, kids] - rest[:, joint : joint + 1]  # (B, C, 3)
        target_bones = target_joints[:, kids] - target_joints[:, joint : joint + 1]
        if len(kids) == 1:
            carried = (parent_rotmat @ rest_bones[:, 0, :, None])[..., 0]
            swing = rotation_between(carried, target_bones[:, 0])
            global_rotmats.append(swing @ parent_rotmat)
        else:
            global_rotmats.append(_best_rotation(rest_bones[0], target_bones))
    return local_rotations(torch.stack(global_rotmats, dim=1), SHARED_PARENTS)


def load_smpl_joint_regressor(folder: str | Path) -> Tensor:
    """SMPL's (24, 6890) joint regressor from the user's ``SMPL_NEUTRAL.npz``.

    Read with ``allow_pickle=False``: the file must store ``J_regressor`` as a plain array
    (smplx's npz conversion does; a pickled scipy matrix is refused with a message).

    Raises:
        BodyModelFileNotFoundError: no SMPL file in the folder.
        ValueError: the file has no plain (24, 6890) ``J_regressor``.
    """
    folder = Path(folder)
    candidates = [folder / name for name in SMPL_FILE_NAMES]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise BodyModelFileNotFoundError.for_file(
            list(SMPL_FILE_NAMES), [folder, folder / 'smpl'], SMPL_WEBSITE
        )
    try:
        with np.load(path, allow_pickle=False) as content:
            regressor = np.asarray(content['J_regressor'], dtype=np.float32)
    except (KeyError, ValueError) as error:
        raise ValueError(
            f'{path} has no plain J_regressor array ({error}); convert the SMPL model to npz '
            'with dense arrays (docs/seed-models.md)'
        ) from error
    if regressor.shape != (SMPL_NUM_JOINTS, SMPL_NUM_VERTICES):
        raise ValueError(f'{path}: J_regressor has shape {regressor.shape}, SMPL needs (24, 6890)')
    return torch.from_numpy(regressor)
