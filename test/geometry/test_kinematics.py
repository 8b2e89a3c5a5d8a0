"""Tests for hmr_ros.geometry.kinematics (forward kinematics of the SMPL-X tree)."""

import math

import pytest
import torch
from smplx.lbs import batch_rigid_transform, blend_shapes, vertices2joints

from hmr_ros.body_models.joint_names import SMPLX_JOINT_INDEX, SMPLX_PARENTS
from hmr_ros.geometry.kinematics import forward_kinematics, global_rotations, local_rotations
from hmr_ros.geometry.rotations import axis_angle_to_rotmat


def _random_rotmats(*shape: int) -> torch.Tensor:
    return axis_angle_to_rotmat(0.6 * torch.randn(*shape, 3, dtype=torch.float64))


def _rest_joints(smplx_body_model, betas, expression):
    """J_regressor applied to the shaped template, as SMPLXLayer computes it inside lbs."""
    layer = smplx_body_model.layer
    directions = torch.cat((layer.shapedirs, layer.expr_dirs), dim=-1)
    shaped = layer.v_template + blend_shapes(torch.cat((betas, expression), dim=-1), directions)
    return vertices2joints(layer.J_regressor, shaped)


def test_matches_smplx_batch_rigid_transform():
    """Global rotations and joints equal smplx's own transforms for a random tree pose."""
    local = _random_rotmats(3, len(SMPLX_PARENTS))
    rest = torch.randn(3, len(SMPLX_PARENTS), 3, dtype=torch.float64)
    parents = torch.tensor(SMPLX_PARENTS)
    posed, transforms = batch_rigid_transform(local, rest, parents, dtype=torch.float64)
    result = forward_kinematics(local, rest, SMPLX_PARENTS)
    torch.testing.assert_close(result.joints, posed)
    torch.testing.assert_close(result.global_rotmats, transforms[..., :3, :3])
    torch.testing.assert_close(global_rotations(local, SMPLX_PARENTS), result.global_rotmats)


def test_matches_the_smplx_layer_joints(smplx_body_model):
    """The 55 kinematic joints of the SMPL-X layer are forward kinematics of its rest joints."""
    batch = 2
    local = _random_rotmats(batch, len(SMPLX_PARENTS)).float()
    betas = 0.5 * torch.randn(batch, 10)
    expression = 0.5 * torch.randn(batch, 10)
    output = smplx_body_model(
        global_orient=local[:, :1],
        body_pose=local[:, 1:22],
        jaw_pose=local[:, 22:23],
        left_hand_pose=local[:, 25:40],
        right_hand_pose=local[:, 40:55],
        betas=betas,
        expression=expression,
        transl=torch.zeros(batch, 3),
    )
    # The layer keeps the eyes at rest.
    local[:, 23:25] = torch.eye(3)
    rest = _rest_joints(smplx_body_model, betas, expression)
    result = forward_kinematics(local, rest, SMPLX_PARENTS)
    torch.testing.assert_close(result.joints, output.joints[:, : len(SMPLX_PARENTS)])


def test_global_and_local_rotations_are_inverse():
    local = _random_rotmats(4, len(SMPLX_PARENTS))
    globals_ = global_rotations(local, SMPLX_PARENTS)
    torch.testing.assert_close(local_rotations(globals_, SMPLX_PARENTS), local)


def test_wrist_global_rotation_is_the_chain_product():
    """G_wrist = R_pelvis R_spine1 R_spine2 R_spine3 R_collar R_shoulder R_elbow R_wrist."""
    local = _random_rotmats(1, 22)
    chain = ('pelvis', 'spine1', 'spine2', 'spine3', 'right_collar', 'right_shoulder')
    chain += ('right_elbow', 'right_wrist')
    expected = torch.eye(3, dtype=torch.float64)
    for name in chain:
        expected = expected @ local[0, SMPLX_JOINT_INDEX[name]]
    result = global_rotations(local, SMPLX_PARENTS[:22])
    torch.testing.assert_close(result[0, SMPLX_JOINT_INDEX['right_wrist']], expected)


def test_a_90_degree_elbow_moves_the_wrist_around_the_elbow():
    """Two-bone chain: elbow at (1, 0, 0), wrist 1 m further along x; a 90 degree elbow turn
    about z puts the wrist at (1, 1, 0)."""
    rest = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    local = torch.eye(3).repeat(3, 1, 1)
    local[1] = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, math.pi / 2]))
    result = forward_kinematics(local, rest, (-1, 0, 1))
    torch.testing.assert_close(result.joints[2], torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(result.global_rotmats[2], local[1])


def test_rest_joints_broadcast_over_the_batch():
    local = _random_rotmats(5, 4)
    rest = torch.randn(4, 3, dtype=torch.float64)
    parents = (-1, 0, 1, 1)
    batched = forward_kinematics(local, rest.expand(5, 4, 3), parents)
    broadcast = forward_kinematics(local, rest, parents)
    torch.testing.assert_close(broadcast.joints, batched.joints)


@pytest.mark.parametrize(
    ('parents', 'message'),
    [((-1, 0), 'one parent index per joint'), ((-1, 2, 0), 'before their children')],
)
def test_rejects_bad_trees(parents, message):
    with pytest.raises(ValueError, match=message):
        global_rotations(torch.eye(3).repeat(3, 1, 1), parents)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match='rest_joints'):
        forward_kinematics(torch.eye(3).repeat(3, 1, 1), torch.zeros(2, 3), (-1, 0, 1))
    with pytest.raises(ValueError, match='local_rotmats'):
        global_rotations(torch.zeros(3, 4, 4), (-1, 0, 1))
