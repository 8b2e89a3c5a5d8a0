"""Tests for hmr_ros.geometry.hand_root (CMR-style 2D registration of hand roots).

Acceptance criteria from the seed-systems study: a known t is recovered to < 1 mm from
noise-free keypoints; the closed form minimises the algebraic error; with 30 % outliers the
error stays < 30 mm; the t_z bounds hold.
"""

import pytest
import torch

from hmr_ros.geometry.hand_root import register_hand_root, solve_translation_linear

K = torch.tensor([[600.0, 0.0, 320.0], [0.0, 610.0, 240.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _hands(batch=4, joints=21, seed=0):
    """Root-relative hands (root at 0, joints within about 10 cm) and true translations."""
    generator = torch.Generator().manual_seed(seed)
    points = 0.05 * torch.randn(batch, joints, 3, generator=generator, dtype=torch.float64)
    points[:, 0] = 0.0
    translation = torch.stack(
        (
            torch.linspace(-0.2, 0.3, batch, dtype=torch.float64),
            torch.linspace(0.1, -0.1, batch, dtype=torch.float64),
            torch.linspace(0.4, 1.5, batch, dtype=torch.float64),
        ),
        dim=-1,
    )
    return points, translation, generator


def _project(points, intrinsics):
    pixels = points @ intrinsics.transpose(-1, -2)
    return pixels[..., :2] / pixels[..., 2:]


def _algebraic_loss(points, keypoints, intrinsics, translation):
    camera = points + translation[..., None, :]
    residual = camera @ intrinsics.transpose(-1, -2) - camera[..., 2:] * torch.cat(
        (keypoints, torch.ones_like(keypoints[..., :1])), dim=-1
    )
    return residual.square().sum((-1, -2))


def test_noise_free_keypoints_give_the_exact_translation():
    points, truth, _ = _hands()
    intrinsics = K.expand(4, 3, 3)
    keypoints = _project(points + truth[:, None], intrinsics)
    torch.testing.assert_close(solve_translation_linear(points, keypoints, intrinsics), truth)
    result = register_hand_root(points, keypoints, intrinsics)
    assert (result.translation - truth).norm(dim=-1).max() < 1e-3  # < 1 mm
    assert result.valid.all() and result.inliers.all()
    assert result.rms_px.max() < 1e-6


def test_closed_form_minimises_the_algebraic_error():
    """With noisy keypoints no small step of t lowers CMR's algebraic error."""
    points, truth, generator = _hands()
    intrinsics = K.expand(4, 3, 3)
    keypoints = _project(points + truth[:, None], intrinsics)
    keypoints = keypoints + 3.0 * torch.randn(
        keypoints.shape, generator=generator, dtype=torch.float64
    )
    solution = solve_translation_linear(points, keypoints, intrinsics)
    loss = _algebraic_loss(points, keypoints, intrinsics, solution)
    for axis in range(3):
        for step in (-1e-4, 1e-4):
            moved = solution.clone()
            moved[:, axis] += step
            assert (_algebraic_loss(points, keypoints, intrinsics, moved) >= loss).all()


def test_ransac_survives_30_percent_outliers():
    """6 of 21 keypoints moved by 40 px (sigma) and 2 px noise on all: root error < 30 mm and
    the corrupted keypoints are not inliers."""
    points, truth, generator = _hands(batch=8)
    intrinsics = K.expand(8, 3, 3)
    keypoints = _project(points + truth[:, None], intrinsics)
    keypoints = keypoints + 2.0 * torch.randn(
        keypoints.shape, generator=generator, dtype=torch.float64
    )
    corrupted = torch.zeros(8, 21, dtype=torch.bool)
    corrupted[:, 15:] = True
    offsets = 40.0 * torch.randn(8, 6, 2, generator=generator, dtype=torch.float64)
    offsets = offsets + 25.0 * offsets.sign()  # at least 25 px away
    keypoints[:, 15:] += offsets
    result = register_hand_root(points, keypoints, intrinsics)
    assert (result.translation - truth).norm(dim=-1).max() < 0.03
    assert not (result.inliers & corrupted).any()
    plain = solve_translation_linear(points, keypoints, intrinsics)
    assert (plain - truth).norm(dim=-1).max() > (result.translation - truth).norm(dim=-1).max()


def test_zero_confidence_keypoints_are_ignored():
    points, truth, _ = _hands()
    intrinsics = K.expand(4, 3, 3)
    keypoints = _project(points + truth[:, None], intrinsics)
    keypoints[:, :5] += 100.0
    confidence = torch.ones(4, 21, dtype=torch.float64)
    confidence[:, :5] = 0.0
    result = register_hand_root(points, keypoints, intrinsics, confidence)
    assert (result.translation - truth).norm(dim=-1).max() < 1e-3
    assert not result.inliers[:, :5].any()


def test_depth_bounds_hold():
    points, truth, _ = _hands()
    truth[:, 2] = 20.0
    intrinsics = K.expand(4, 3, 3)
    keypoints = _project(points + truth[:, None], intrinsics)
    result = register_hand_root(points, keypoints, intrinsics, depth_bounds_m=(0.05, 10.0))
    assert (result.translation[:, 2] == 10.0).all()


def test_rejects_bad_arguments():
    points, truth, _ = _hands()
    keypoints = _project(points + truth[:, None], K.expand(4, 3, 3))
    with pytest.raises(ValueError, match='keypoints_px'):
        register_hand_root(points, keypoints[:, :3], K.expand(4, 3, 3))
    with pytest.raises(ValueError, match='at least 3'):
        register_hand_root(points[:, :2], keypoints[:, :2], K.expand(4, 3, 3))
    with pytest.raises(ValueError, match='depth_bounds_m'):
        register_hand_root(points, keypoints, K.expand(4, 3, 3), depth_bounds_m=(1.0, 0.5))


def test_precomputed_minimal_sets_give_the_same_registration_without_host_reads():
    """Sets kept by the caller (the dual path's buffer) are the ones the seed draws: the same
    result as drawing them per call; and with them the registration reads nothing back."""
    from hmr_ros.geometry.hand_root import minimal_sets
    from hmr_ros.models.sync_audit import SyncAudit

    points, truth, generator = _hands()
    intrinsics = K.expand(4, 3, 3)
    keypoints = _project(points + truth[:, None], intrinsics)
    keypoints = keypoints + torch.randn(keypoints.shape, generator=generator, dtype=torch.float64)
    keypoints[:, 5] += 40.0  # an outlier for RANSAC to reject
    sets = minimal_sets(points.shape[1], dtype=torch.float64)
    assert sets.shape == (64, points.shape[1])
    assert torch.equal(sets.sum(-1), torch.full((64,), 3.0))  # 3 distinct keypoints per set
    drawn = register_hand_root(points, keypoints, intrinsics)
    threshold = torch.full((4,), 6.0)
    with SyncAudit() as audit:
        kept = register_hand_root(
            points, keypoints, intrinsics, inlier_threshold_px=threshold, sets=sets
        )
    assert not audit.events, audit.summary()
    for a, b in zip(drawn, kept, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='sets must be'):
        register_hand_root(points, keypoints, intrinsics, sets=sets[:10])
