"""SMPL mesh joints -> SMPL-X body pose by swing IK (hmr_ros.body_models.smpl_mapping)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.body_models.model_files import BodyModelFileNotFoundError
from hmr_ros.body_models.smpl_mapping import (
    SHARED_PARENTS,
    SMPL_JOINT_NAMES,
    load_smpl_joint_regressor,
    rotation_between,
    swing_ik,
)
from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.geometry.rotations import axis_angle_to_rotmat


def test_smpl_joints_and_tree_are_smpls() -> None:
    # SMPL's 24 joints and its kintree_table parents (SMPL model files, as listed by SMPLify
    # and smplx's SMPL class); the first 22 must be SMPL-X's joints with the same parents.
    smpl_names = (
        'pelvis left_hip right_hip spine1 left_knee right_knee spine2 left_ankle right_ankle '
        'spine3 left_foot right_foot neck left_collar right_collar head left_shoulder '
        'right_shoulder left_elbow right_elbow left_wrist right_wrist left_hand right_hand'
    ).split()
    smpl_parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    assert SMPL_JOINT_NAMES == tuple(smpl_names)
    assert SHARED_PARENTS == tuple(smpl_parents)


def test_rotation_between_is_the_smallest_rotation() -> None:
    x, y = torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 2.0, 0]])
    # A quarter turn about +z takes +x to +y (right-hand rule).
    expected = torch.tensor([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])
    torch.testing.assert_close(rotation_between(x, y), expected, atol=1e-6, rtol=0)
    opposite = rotation_between(x, -x)
    torch.testing.assert_close((opposite @ x[..., None])[..., 0], -x, atol=1e-6, rtol=0)
    assert torch.linalg.det(opposite).item() == pytest.approx(1.0)


def _pose(model: SMPLXBodyModel, body_local: torch.Tensor) -> torch.Tensor:
    """Joints 0..21 of the SMPL-X layer posed with local rotations (B, 22, 3, 3)."""
    batch = body_local.shape[0]
    eye = torch.eye(3).expand(batch, 15, 3, 3)
    out = model(
        global_orient=body_local[:, :1],
        body_pose=body_local[:, 1:],
        left_hand_pose=eye,
        right_hand_pose=eye,
        jaw_pose=torch.eye(3).expand(batch, 1, 3, 3),
        betas=torch.zeros(batch, model.num_betas),
        expression=torch.zeros(batch, model.num_expression_coeffs),
        transl=torch.zeros(batch, 3),
    )
    return out.joints[:, :22]


def test_joints_of_a_known_pose_are_recovered(smplx_body_model: SMPLXBodyModel) -> None:
    # smplx's forward kinematics of random poses (up to 0.8 rad per joint) gives the targets;
    # the IK's pose, run through smplx again, must put every joint back where it was.
    generator = torch.Generator().manual_seed(3)
    axis_angle = (torch.rand(4, 22, 3, generator=generator) - 0.5) * 1.6
    targets = _pose(smplx_body_model, axis_angle_to_rotmat(axis_angle))
    rest = _pose(smplx_body_model, torch.eye(3).expand(1, 22, 3, 3))[0]
    recovered = swing_ik(targets, rest)
    error_m = (_pose(smplx_body_model, recovered) - targets).norm(dim=-1)
    assert error_m.max().item() < 1e-4
    rotations = recovered.reshape(-1, 3, 3)
    torch.testing.assert_close(
        rotations @ rotations.transpose(1, 2), torch.eye(3).expand_as(rotations), atol=1e-5, rtol=0
    )


def test_a_pure_swing_is_recovered_exactly(smplx_body_model: SMPLXBodyModel) -> None:
    # Bending the left elbow 1 rad about an axis perpendicular to the forearm is a pure swing:
    # the smallest rotation onto the new forearm direction is that rotation itself.
    rest = _pose(smplx_body_model, torch.eye(3).expand(1, 22, 3, 3))[0]
    elbow = SMPL_JOINT_NAMES.index('left_elbow')
    wrist = SMPL_JOINT_NAMES.index('left_wrist')
    forearm = rest[wrist] - rest[elbow]
    axis = torch.linalg.cross(forearm, torch.tensor([0.0, 0.0, 1.0]))
    axis = axis / axis.norm()
    local = torch.eye(3).repeat(1, 22, 1, 1)
    local[0, elbow] = axis_angle_to_rotmat(axis * 1.0)
    recovered = swing_ik(_pose(smplx_body_model, local), rest)
    torch.testing.assert_close(recovered, local, atol=1e-5, rtol=0)
    angle = math.acos((torch.diagonal(recovered[0, elbow]).sum().item() - 1) / 2)
    assert angle == pytest.approx(1.0, abs=1e-5)


def test_joint_regressor_file(tmp_path: Path) -> None:
    with pytest.raises(BodyModelFileNotFoundError, match='SMPL_NEUTRAL.npz'):
        load_smpl_joint_regressor(tmp_path)
    regressor = np.random.default_rng(0).random((24, 6890)).astype(np.float32)
    np.savez(tmp_path / 'SMPL_NEUTRAL.npz', J_regressor=regressor)
    torch.testing.assert_close(load_smpl_joint_regressor(tmp_path), torch.from_numpy(regressor))
    np.savez(tmp_path / 'SMPL_NEUTRAL.npz', J_regressor=regressor[:17])
    with pytest.raises(ValueError, match='24, 6890'):
        load_smpl_joint_regressor(tmp_path)
