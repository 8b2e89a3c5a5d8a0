"""Losses of paper eqs. 5-8 against values derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from hmr_ros.geometry.rotations import axis_angle_to_rotmat
from hmr_ros.training.losses import (
    BodyLossWeights,
    BodyPrediction,
    BodyTarget,
    HandLossWeights,
    HandPrediction,
    HandTarget,
    SampleLoss,
    body_adapter_loss,
    centred_vertex_loss,
    hand_adapter_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    masked_mean,
    pose_loss,
    shape_loss,
)


def test_pose_loss_is_zero_for_identical_poses() -> None:
    """theta = theta*: ||0||^2 = 0 and cos = 1, so eq. 6 gives exactly 0."""
    pose = axis_angle_to_rotmat(torch.randn(3, 16, 3))
    loss = pose_loss(pose, pose.clone(), torch.ones(3, 16, dtype=torch.bool))
    assert loss.valid.all()
    torch.testing.assert_close(loss.values, torch.zeros(3), atol=1e-6, rtol=0)


def test_pose_loss_for_opposite_poses() -> None:
    """theta* = -theta: ||2 theta||^2 = 4 ||theta||^2 and cos = -1, so eq. 6 = 4 |theta|^2 + 2."""
    pose = torch.randn(2, 5, 3)
    loss = pose_loss(pose, -pose, torch.ones(2, 5, dtype=torch.bool))
    expected = 4.0 * pose.square().sum(dim=(1, 2)) + 2.0
    torch.testing.assert_close(loss.values, expected)


def test_pose_loss_on_rotation_matrices_depends_on_relative_angle() -> None:
    """One joint off by angle a: ||R - R*||^2 = 4 (1 - cos a); cos of the flattened pose is
    (J - 1 + (1 + 2 cos a) / 3) / J. With J = 2 and a = pi / 2: 4 + (1 - (1 + 1/3) / 2) = 4 + 1/3.
    """
    angle = math.pi / 2
    base = axis_angle_to_rotmat(torch.randn(1, 2, 3))
    turn = axis_angle_to_rotmat(torch.tensor([[0.0, 0.0, angle]]))
    target = base.clone()
    target[:, 0] = turn @ base[:, 0]
    loss = pose_loss(base, target, torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(loss.values, torch.tensor([4.0 + 1.0 / 3.0]))


def test_pose_loss_masks_absent_joints_and_samples() -> None:
    """An absent joint adds nothing even when its target is NaN; a sample without joints is
    not valid; gradients stay finite."""
    pred = torch.randn(2, 3, 3, requires_grad=True)
    target = pred.detach().clone()
    target[0, 2] = float('nan')
    target[1] = float('nan')
    valid = torch.tensor([[True, True, False], [False, False, False]])
    loss = pose_loss(pred, target, valid)
    assert loss.valid.tolist() == [True, False]
    torch.testing.assert_close(loss.values, torch.zeros(2), atol=1e-6, rtol=0)
    masked_mean(loss).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_keypoint_2d_loss_weighs_by_confidence() -> None:
    """Points (1, 1) off in x and y have L1 2; with confidences (1, 0.5, 0) the mean over the
    confident points is (2 * 1 + 4 * 0.5) / 1.5 = 8/3 when the second point is 2 units off."""
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0, 1.0], [2.0, 2.0, 0.5], [float('nan'), 5.0, 0.0]]])
    loss = keypoint_2d_loss(pred, target)
    torch.testing.assert_close(loss.values, torch.tensor([8.0 / 3.0]))
    assert loss.valid.tolist() == [True]


def test_keypoint_3d_loss_is_root_relative() -> None:
    """A translated copy of the prediction has zero error; an absent root invalidates."""
    pred = torch.randn(2, 21, 3)
    target = torch.cat((pred + torch.tensor([0.3, -1.0, 2.0]), torch.ones(2, 21, 1)), dim=-1)
    target[1, 0, 3] = 0.0
    loss = keypoint_3d_loss(pred, target, root_index=0)
    assert loss.valid.tolist() == [True, False]
    torch.testing.assert_close(loss.values, torch.zeros(2), atol=1e-6, rtol=0)


def test_keypoint_3d_loss_value() -> None:
    """Root at the origin in both; the other point off by (0.1, 0.2, -0.2): L1 0.5, mean over
    2 points = 0.25."""
    pred = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
    target = torch.tensor([[[0.0, 0.0, 0.0, 1.0], [1.1, 1.2, 0.8, 1.0]]])
    loss = keypoint_3d_loss(pred, target, root_index=0)
    torch.testing.assert_close(loss.values, torch.tensor([0.25]))


def test_centred_vertex_loss() -> None:
    """Shifting the whole mesh costs nothing; moving one of V vertices by d moves the centroid
    by d / V, so the L1 error is |d| (1 - 1/V) + (V - 1) |d| / V = 2 |d| (V - 1) / V over V."""
    vertices = torch.randn(1, 4, 3)
    shifted = vertices + 5.0
    has = torch.tensor([True])
    torch.testing.assert_close(
        centred_vertex_loss(vertices, shifted, has).values, torch.zeros(1), atol=1e-6, rtol=0
    )
    moved = vertices.clone()
    moved[0, 0, 0] += 0.4
    loss = centred_vertex_loss(vertices, moved, has)
    expected = 2 * 0.4 * 3 / 4 / 4
    torch.testing.assert_close(loss.values, torch.tensor([expected]))


def test_shape_loss_and_masked_mean() -> None:
    """||(1, 2)||^2 = 5 for the valid sample; the absent (NaN) one is left out of the mean."""
    pred = torch.zeros(2, 2)
    target = torch.tensor([[1.0, 2.0], [float('nan'), 0.0]])
    loss = shape_loss(pred, target, torch.tensor([True, False]))
    torch.testing.assert_close(masked_mean(loss), torch.tensor(5.0))


def test_masked_mean_without_valid_samples_is_zero() -> None:
    values = torch.tensor([3.0, 4.0], requires_grad=True)
    mean = masked_mean(SampleLoss(values, torch.tensor([False, False])))
    assert mean.item() == 0.0
    mean.backward()
    assert values.grad is not None and torch.equal(values.grad, torch.zeros(2))


def _hand_pair(batch: int) -> tuple[HandPrediction, HandTarget]:
    pred = HandPrediction(
        keypoints_2d=torch.rand(batch, 21, 2) - 0.5,
        keypoints_3d_m=torch.randn(batch, 21, 3) * 0.05,
        vertices_m=torch.randn(batch, 778, 3) * 0.05,
        pose_rotmat=axis_angle_to_rotmat(torch.randn(batch, 16, 3)),
        betas=torch.randn(batch, 10),
    )
    target = HandTarget(
        keypoints_2d=torch.cat((torch.rand(batch, 21, 2) - 0.5, torch.ones(batch, 21, 1)), -1),
        keypoints_3d_m=torch.cat((torch.randn(batch, 21, 3) * 0.05, torch.ones(batch, 21, 1)), -1),
        vertices_m=torch.randn(batch, 778, 3) * 0.05,
        has_vertices=torch.ones(batch, dtype=torch.bool),
        pose_rotmat=axis_angle_to_rotmat(torch.randn(batch, 16, 3)),
        pose_valid=torch.ones(batch, 16, dtype=torch.bool),
        betas=torch.randn(batch, 10),
        has_betas=torch.ones(batch, dtype=torch.bool),
    )
    return pred, target


def test_hand_adapter_loss_is_the_weighted_sum_of_eq5() -> None:
    pred, target = _hand_pair(3)
    weights = HandLossWeights(keypoints_2d=0.5, keypoints_3d=2.0, vertices=3.0, pose=0.1, betas=7)
    terms = hand_adapter_loss(pred, target, weights)
    expected = (
        0.5 * masked_mean(keypoint_2d_loss(pred.keypoints_2d, target.keypoints_2d))
        + 2.0 * masked_mean(keypoint_3d_loss(pred.keypoints_3d_m, target.keypoints_3d_m, 0))
        + 3.0 * terms.vertices
        + 0.1 * masked_mean(pose_loss(pred.pose_rotmat, target.pose_rotmat, target.pose_valid))
        + 7.0 * terms.betas
    )
    torch.testing.assert_close(terms.total, expected)
    assert all(value.dim() == 0 for value in terms)


def test_hand_adapter_loss_without_labels_is_zero() -> None:
    """Hand-only data without MANO parameters, vertices or keypoints: every term is 0."""
    pred, target = _hand_pair(2)
    nan = float('nan')
    target = target._replace(
        keypoints_2d=torch.full_like(target.keypoints_2d, nan).index_fill(-1, torch.tensor(2), 0),
        keypoints_3d_m=torch.full_like(target.keypoints_3d_m, nan).index_fill(
            -1, torch.tensor(3), 0
        ),
        vertices_m=torch.full_like(target.vertices_m, nan),
        has_vertices=torch.zeros(2, dtype=torch.bool),
        pose_rotmat=torch.full_like(target.pose_rotmat, nan),
        pose_valid=torch.zeros(2, 16, dtype=torch.bool),
        has_betas=torch.zeros(2, dtype=torch.bool),
    )
    terms = hand_adapter_loss(pred, target, HandLossWeights())
    assert all(value.item() == 0.0 for value in terms)


def test_body_adapter_loss_sums_img_and_proj_with_one_weight() -> None:
    """Eq. 8: L_2D = L_img + L_proj, both weighted by lambda_2D."""
    batch = 2
    pred = BodyPrediction(
        keypoints_2d_img=torch.zeros(batch, 25, 2),
        keypoints_2d_proj=torch.zeros(batch, 76, 2),
        keypoints_3d_m=torch.zeros(batch, 76, 3),
        pose_rotmat=axis_angle_to_rotmat(torch.zeros(batch, 22, 3)),
        betas=torch.zeros(batch, 10),
    )
    target = BodyTarget(
        keypoints_2d_img=torch.cat(
            (torch.full((batch, 25, 2), 0.1), torch.ones(batch, 25, 1)), -1
        ),
        keypoints_2d_proj=torch.cat(
            (torch.full((batch, 76, 2), 0.2), torch.ones(batch, 76, 1)), -1
        ),
        keypoints_3d_m=torch.cat((torch.zeros(batch, 76, 3), torch.ones(batch, 76, 1)), -1),
        pose_rotmat=pred.pose_rotmat.clone(),
        pose_valid=torch.ones(batch, 22, dtype=torch.bool),
        betas=torch.zeros(batch, 10),
        has_betas=torch.ones(batch, dtype=torch.bool),
    )
    terms = body_adapter_loss(pred, target, BodyLossWeights(keypoints_2d=2.0))
    torch.testing.assert_close(terms.keypoints_2d_img, torch.tensor(0.2))
    torch.testing.assert_close(terms.keypoints_2d_proj, torch.tensor(0.4))
    torch.testing.assert_close(terms.total, torch.tensor(2.0 * 0.6))


def test_weights_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match='pose'):
        HandLossWeights(pose=-1.0)
    with pytest.raises(ValueError, match='betas'):
        BodyLossWeights(betas=float('nan'))


def test_mismatched_shapes_raise() -> None:
    with pytest.raises(ValueError, match='confidence'):
        keypoint_2d_loss(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match='joint_valid'):
        pose_loss(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), torch.ones(1, 2, dtype=torch.bool))
