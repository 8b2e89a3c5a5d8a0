"""Metric tests against cases whose values can be derived by hand."""

import math

import pytest
import torch

from hmr_ros.body_models.joint_names import NUM_SMPLX_JOINTS, SMPLX_JOINT_INDEX
from hmr_ros.evaluation.metrics import (
    AUC_THRESHOLDS_MM,
    WholeBodyEvalSpec,
    auc,
    f_score,
    hand_errors,
    mpjpe_mm,
    pa_mpjpe_mm,
    pa_pve_mm,
    pck_curve,
    pve_mm,
    regress_joints,
    whole_body_errors,
)
from hmr_ros.geometry.rotations import axis_angle_to_rotmat

F64 = torch.float64


def _star_joints(num_joints: int) -> torch.Tensor:
    """A root at (0.1, 0.2, 3.0) and num_joints - 1 unit offsets in the z = const plane."""
    angles = torch.arange(num_joints - 1, dtype=F64) * (2 * math.pi / (num_joints - 1))
    offsets = torch.stack((angles.cos(), angles.sin(), torch.zeros_like(angles)), dim=-1)
    root = torch.tensor([[0.1, 0.2, 3.0]], dtype=F64)
    return torch.cat((root, root + offsets))[None]


def test_similarity_of_ground_truth_has_zero_pa_error_and_known_plain_error() -> None:
    """pred_i = root' + s R (gt_i - root) with R = 60 degrees about z, s = 2.

    Every offset d_i is a unit vector perpendicular to z, so after root alignment
    |s R d - d|^2 = s^2 + 1 - 2 s cos(60 deg) = 4 + 1 - 2 = 3: each non-root joint is off by
    sqrt(3) m and the root by 0, so MPJPE = sqrt(3) (J - 1) / J m; PA-MPJPE = 0.
    """
    gt = _star_joints(5)
    rotation = axis_angle_to_rotmat(torch.tensor([[0.0, 0.0, math.pi / 3]], dtype=F64))
    root = gt[:, :1]
    new_root = torch.tensor([[[-1.0, 0.5, 4.0]]], dtype=F64)
    pred = new_root + 2.0 * (gt - root) @ rotation.transpose(1, 2)

    expected_mm = math.sqrt(3.0) * 4 / 5 * 1000.0
    torch.testing.assert_close(
        mpjpe_mm(pred, gt, root_index=0), torch.tensor([expected_mm], dtype=F64)
    )
    torch.testing.assert_close(pa_mpjpe_mm(pred, gt), torch.zeros(1, dtype=F64), atol=1e-9, rtol=0)
    torch.testing.assert_close(pa_pve_mm(pred, gt), torch.zeros(1, dtype=F64), atol=1e-9, rtol=0)


def test_translation_offset_is_the_plain_error_and_vanishes_after_root_alignment() -> None:
    """pred = gt + t: every point is off by |t| = |(0.03, -0.04, 0)| = 50 mm."""
    gt = torch.randn(3, 7, 3, dtype=F64)
    offset = torch.tensor([0.03, -0.04, 0.0], dtype=F64)
    pred = gt + offset

    torch.testing.assert_close(mpjpe_mm(pred, gt), torch.full((3,), 50.0, dtype=F64))
    torch.testing.assert_close(pve_mm(pred, gt), torch.full((3,), 50.0, dtype=F64))
    zeros = torch.zeros(3, dtype=F64)
    torch.testing.assert_close(mpjpe_mm(pred, gt, root_index=2), zeros)
    torch.testing.assert_close(pve_mm(pred, gt, pred[:, 0], gt[:, 0]), zeros)


def test_weighted_mpjpe_ignores_zero_weight_joints() -> None:
    """Joint 0 is 1 m off with weight 0, joint 1 is 10 mm off with weight 1: 10 mm."""
    gt = torch.zeros(1, 2, 3, dtype=F64)
    pred = gt.clone()
    pred[0, 0, 0] = 1.0
    pred[0, 1, 1] = 0.01
    weights = torch.tensor([[0.0, 1.0]], dtype=F64)
    torch.testing.assert_close(
        mpjpe_mm(pred, gt, weights=weights), torch.tensor([10.0], dtype=F64)
    )


def test_mirrored_prediction_keeps_a_pa_error() -> None:
    """A mirrored (x -> -x) non-planar prediction cannot be rotated onto the ground truth."""
    gt = torch.randn(2, 10, 3, dtype=F64)
    pred = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=F64)
    assert bool((pa_mpjpe_mm(pred, gt) > 10.0).all())


def test_f_score_on_hand_made_point_sets() -> None:
    """gt = {(0,0,0), (10,0,0)} mm; pred = {(0,0,0), (0,12,0), (10,3,0)} mm.

    Nearest gt of each pred: 0, 12, 3 mm; nearest pred of each gt: 0, 3 mm.
    At 5 mm: precision 2/3, recall 1, F = 2 (2/3) / (5/3) = 0.8.
    At 15 mm: precision 1, recall 1, F = 1.
    """
    gt = torch.tensor([[[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]]], dtype=F64) / 1000.0
    pred = (
        torch.tensor([[[0.0, 0.0, 0.0], [0.0, 12.0, 0.0], [10.0, 3.0, 0.0]]], dtype=F64) / 1000.0
    )

    at_5 = f_score(pred, gt, 5.0)
    torch.testing.assert_close(at_5.precision, torch.tensor([2 / 3], dtype=F64))
    torch.testing.assert_close(at_5.recall, torch.tensor([1.0], dtype=F64))
    torch.testing.assert_close(at_5.f_score, torch.tensor([0.8], dtype=F64))
    torch.testing.assert_close(f_score(pred, gt, 15.0).f_score, torch.tensor([1.0], dtype=F64))


def test_f_score_is_zero_when_nothing_matches() -> None:
    gt = torch.zeros(1, 3, 3, dtype=F64)
    pred = torch.ones(1, 4, 3, dtype=F64)
    torch.testing.assert_close(f_score(pred, gt, 15.0).f_score, torch.zeros(1, dtype=F64))


def test_auc_on_a_three_point_grid() -> None:
    """Thresholds (0, 10, 20) mm, one error of 5 mm: PCK = (0, 1, 1).

    Trapezoids: 10 (0 + 1) / 2 + 10 (1 + 1) / 2 = 15; divided by the 20 mm range: 0.75.
    """
    errors = torch.tensor([[5.0]], dtype=F64)
    torch.testing.assert_close(
        pck_curve(errors, (0.0, 10.0, 20.0)), torch.tensor([[0.0, 1.0, 1.0]], dtype=F64)
    )
    torch.testing.assert_close(auc(errors, (0.0, 10.0, 20.0)), torch.tensor([0.75], dtype=F64))


def test_auc_over_freihand_thresholds() -> None:
    """Errors 0, 25 and 100 mm on 0..50 mm in 100 steps.

    0 mm is correct at every threshold (AUC 1); 100 mm never (0); 25 mm lies half-way between
    grid points 49 and 50 (t_k = 50 k / 99), where the trapezoid puts the step, so its area is
    50 - 25 = 25 and its AUC 0.5. The mean over points is (1 + 0.5 + 0) / 3 = 0.5.
    """
    assert len(AUC_THRESHOLDS_MM) == 100
    assert AUC_THRESHOLDS_MM[0] == 0.0 and AUC_THRESHOLDS_MM[-1] == 50.0
    errors = torch.tensor([[0.0, 25.0, 100.0]], dtype=F64)
    torch.testing.assert_close(auc(errors), torch.tensor([0.5], dtype=F64))


def test_regress_joints_accepts_dense_and_sparse_regressors() -> None:
    vertices = torch.randn(2, 6, 3, dtype=F64)
    regressor = torch.zeros(2, 6, dtype=F64)
    regressor[0, :2] = 0.5
    regressor[1, 5] = 1.0
    expected = torch.stack(((vertices[:, 0] + vertices[:, 1]) / 2, vertices[:, 5]), dim=1)
    torch.testing.assert_close(regress_joints(vertices, regressor), expected)
    torch.testing.assert_close(regress_joints(vertices, regressor.to_sparse()), expected)
    with pytest.raises(ValueError, match='regressor must have shape'):
        regress_joints(vertices, torch.zeros(2, 5))


def _grid_points(count: int) -> torch.Tensor:
    """count points 0.1 m apart along x (so nearest neighbours are 100 mm away)."""
    x = torch.arange(count, dtype=F64) * 0.1
    return torch.stack((x, torch.zeros_like(x), torch.full_like(x, 0.5)), dim=-1)[None]


def test_hand_errors_for_exact_and_shifted_predictions() -> None:
    """An exact prediction scores perfectly; a 25 mm shift is only seen in camera space.

    Camera-space J-AUC of a 25 mm error is 0.5 (see test_auc_over_freihand_thresholds).

    Points are 100 mm apart, so a 25 mm shift leaves every point 25 mm from its own match
    and 75 mm from the next: no camera-space F-score match at 5 or 15 mm.
    """
    gt_vertices = _grid_points(12)
    gt_joints = _grid_points(5) + 0.01
    exact = hand_errors(gt_vertices, gt_vertices, gt_joints, gt_joints)
    one = torch.ones(1, dtype=F64)
    for name in ('cs_j_auc', 'cs_v_auc', 'pa_f_score_5mm', 'pa_f_score_15mm', 'cs_f_score_5mm'):
        torch.testing.assert_close(exact[name], one)
    # After the float64 fit, errors are ~1e-13 mm rather than 0: they miss the 0 mm threshold,
    # which costs at most half of the first trapezoid, 0.5 / 99.
    for name in ('pa_j_auc', 'pa_v_auc'):
        torch.testing.assert_close(exact[name], one, atol=0.5 / 99 + 1e-12, rtol=0)

    shift = torch.tensor([0.0, 0.025, 0.0], dtype=F64)
    shifted = hand_errors(gt_vertices + shift, gt_vertices, gt_joints + shift, gt_joints)
    zero = torch.zeros(1, dtype=F64)
    for name in ('mpjpe_mm', 'pve_mm', 'pa_mpjpe_mm', 'pa_pve_mm'):
        torch.testing.assert_close(shifted[name], zero, atol=1e-9, rtol=0)
    torch.testing.assert_close(shifted['cs_mpjpe_mm'], torch.tensor([25.0], dtype=F64))
    torch.testing.assert_close(shifted['cs_j_auc'], torch.tensor([0.5], dtype=F64))
    torch.testing.assert_close(shifted['cs_f_score_15mm'], zero)
    torch.testing.assert_close(shifted['pa_f_score_5mm'], torch.ones(1, dtype=F64))


def _toy_whole_body_spec(num_vertices: int) -> WholeBodyEvalSpec:
    """Vertices 0-3: left hand, 4-7: right hand, the rest: body.

    The root regressor's rows average body vertices only, so moving a hand does not move the
    pelvis or the wrists.
    """
    root_regressor = torch.zeros(NUM_SMPLX_JOINTS, num_vertices, dtype=F64)
    for row in range(NUM_SMPLX_JOINTS):
        root_regressor[row, 8 + row % (num_vertices - 8)] = 1.0
    body = torch.zeros(4, num_vertices, dtype=F64)
    body[:, 8:12] = torch.eye(4, dtype=F64)
    hand_regressor = {
        'left': torch.eye(num_vertices, dtype=F64)[:4],
        'right': torch.eye(num_vertices, dtype=F64)[4:8],
    }
    return WholeBodyEvalSpec(
        root_regressor=root_regressor,
        body_joint_regressor=body,
        hand_joint_regressors=hand_regressor,
        hand_vertex_indices={'left': torch.arange(4), 'right': torch.arange(4, 8)},
    )


def test_whole_body_errors_align_pelvis_and_wrists_and_average_hands() -> None:
    """Shift the whole mesh by t and the left hand by a further d = 20 mm along y.

    Pelvis alignment removes t; the left-hand vertices stay d off: PVE(all) = 4 d / V.
    Wrist alignment of the left hand leaves d: PVE(left) = 20, PVE(right) = 0, Hands = 10 mm.
    Each hand's PA fit removes the pure translation: PA-PVE(hands) = 0.
    """
    num_vertices = 20
    spec = _toy_whole_body_spec(num_vertices)
    gt = torch.randn(2, num_vertices, 3, dtype=F64)
    pred = gt + torch.tensor([0.3, -0.1, 0.2], dtype=F64)
    pred[:, :4, 1] += 0.02

    errors = whole_body_errors(pred, gt, spec)

    def full(value: float) -> torch.Tensor:
        return torch.full((2,), value, dtype=F64)

    torch.testing.assert_close(errors['pve_all_mm'], full(20.0 * 4 / num_vertices))
    torch.testing.assert_close(errors['pve_left_hand_mm'], full(20.0))
    torch.testing.assert_close(errors['pve_right_hand_mm'], full(0.0))
    torch.testing.assert_close(errors['pve_hands_mm'], full(10.0))
    torch.testing.assert_close(errors['mpjpe_hands_mm'], full(10.0))
    torch.testing.assert_close(errors['pa_pve_hands_mm'], full(0.0), atol=1e-9, rtol=0)
    torch.testing.assert_close(errors['mpjpe_all_mm'], full(0.0), atol=1e-9, rtol=0)
    torch.testing.assert_close(errors['pa_mpjpe_all_mm'], full(0.0), atol=1e-9, rtol=0)


def test_whole_body_spec_defaults_are_smplx_joints_and_need_both_hands() -> None:
    spec = _toy_whole_body_spec(12)
    assert spec.pelvis_index == SMPLX_JOINT_INDEX['pelvis'] == 0
    assert spec.wrist_indices == (20, 21)
    with pytest.raises(ValueError, match='hand tables'):
        WholeBodyEvalSpec(
            root_regressor=spec.root_regressor,
            body_joint_regressor=spec.body_joint_regressor,
            hand_joint_regressors={'left': spec.hand_joint_regressors['left']},
            hand_vertex_indices=spec.hand_vertex_indices,
        )
