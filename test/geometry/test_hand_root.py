"""Tests for hmr_ros.geometry.hand_root (CMR-style 2D registration of hand roots).

Acceptance criteria from the seed-systems study: a known t is recovered to < 1 mm from
noise-free keypoints; the closed form minimises the algebraic error; with 30 % outliers the
error stays < 30 mm; the t_z bounds hold. And with 2D keypoints that are not the projection of
the registered 3D joints (a detector's noisy, outlier-laden view of the true hand, a hand model's
3D joints with errors of their own), RANSAC keeps exactly the good keypoints and the root is the
pixel-error optimum over them, within a few per cent of the depth from the truth.
"""

import math

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


# --- Independent 2D observations -----------------------------------------------------------------

# A camera unlike K above: fx != fy, principal point off the image centre (640 x 480).
K_OBSERVED = torch.tensor(
    [[615.0, 0.0, 331.5], [0.0, 598.0, 247.25], [0.0, 0.0, 1.0]], dtype=torch.float64
)


def _skeleton_m() -> torch.Tensor:
    """(21, 3) a flat hand in its own frame, metres: wrist at 0, then 4 joints per finger (thumb
    first), fingers along -y, 16 cm long and 11 cm wide. Its side does not matter here."""
    bases = ((-0.035, -0.025), (-0.025, -0.09), (-0.005, -0.095), (0.015, -0.09), (0.032, -0.08))
    lengths = (0.065, 0.075, 0.085, 0.08, 0.06)
    angles = (-0.8, -0.12, 0.0, 0.12, 0.25)  # spread of the fingers, radians
    joints = [torch.zeros(3, dtype=torch.float64)]
    for (bx, by), length, angle in zip(bases, lengths, angles, strict=True):
        base = torch.tensor((bx, by, 0.0), dtype=torch.float64)
        direction = torch.tensor((math.sin(angle), -math.cos(angle), 0.0), dtype=torch.float64)
        joints += [base + direction * length * k / 4 for k in range(4)]
    return torch.stack(joints)


def _rotation(yaw: float, pitch: float, roll: float) -> torch.Tensor:
    """R = Rz(roll) Ry(yaw) Rx(pitch), written out element by element."""
    cx, sx, cy, sy, cz, sz = (f(a) for a in (pitch, yaw, roll) for f in (math.cos, math.sin))
    rx = torch.tensor(((1, 0, 0), (0, cx, -sx), (0, sx, cx)), dtype=torch.float64)
    ry = torch.tensor(((cy, 0, sy), (0, 1, 0), (-sy, 0, cy)), dtype=torch.float64)
    rz = torch.tensor(((cz, -sz, 0), (sz, cz, 0), (0, 0, 1)), dtype=torch.float64)
    return rz @ ry @ rx


def _observed_scene(num_hands: int = 12, seed: int = 21, shape_error_m: float = 0.002):
    """Hands at known poses and roots, seen by K_OBSERVED with a keypoint detector's errors.

    Returns the registration's inputs and the truth:
        estimate: (B, 21, 3) what a hand model predicts: the true root-relative joints plus
            ``shape_error_m`` (std) of per-joint 3D error, so the 2D points are *not* its
            projection;
        keypoints: (B, 21, 2) the projection of the true joints, 1.5 px noise on all, 5
            outliers per hand moved 30 to 80 px in random directions (never the wrist);
        truth: (B, 3) the true root (wrist) in the camera, metres; outliers: (B, 21) bool.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)

    skeleton = _skeleton_m()
    angles = uniform(-0.9, 0.9, num_hands, 3)
    rotations = torch.stack([_rotation(*a.tolist()) for a in angles])
    relative = skeleton @ rotations.transpose(-1, -2)  # (B, 21, 3), wrist at 0
    truth = torch.stack(
        (
            uniform(-0.15, 0.15, num_hands),
            uniform(-0.1, 0.1, num_hands),
            uniform(0.4, 0.9, num_hands),
        ),
        dim=-1,
    )
    camera = relative + truth[:, None]
    pixels = camera @ K_OBSERVED.T
    keypoints = pixels[..., :2] / pixels[..., 2:]
    keypoints = keypoints + 1.5 * torch.randn(
        keypoints.shape, generator=generator, dtype=torch.float64
    )
    outliers = torch.zeros(num_hands, 21, dtype=torch.bool)
    for hand in range(num_hands):
        rows = 1 + torch.randperm(20, generator=generator)[:5]
        outliers[hand, rows] = True
        direction = uniform(0.0, 2 * math.pi, 5)
        distance = uniform(30.0, 80.0, 5)
        keypoints[hand, rows] += distance[:, None] * torch.stack(
            (direction.cos(), direction.sin()), dim=-1
        )
    estimate = relative + shape_error_m * torch.randn(
        relative.shape, generator=generator, dtype=torch.float64
    )
    estimate[:, 0] = 0.0  # root-relative: the wrist at the origin
    return estimate, keypoints, truth, outliers


def _pixel_error_optimum(
    points: torch.Tensor, keypoints: torch.Tensor, keep: torch.Tensor, start: torch.Tensor
) -> torch.Tensor:
    """(B, 3) the translation minimising the squared pixel error over the kept keypoints,
    found by plain L-BFGS from ``start`` (no code of the module under test)."""
    translation = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [translation], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-16,
        line_search_fn='strong_wolfe',
    )  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        pixels = (points + translation[:, None]) @ K_OBSERVED.T
        error = (pixels[..., :2] / pixels[..., 2:] - keypoints).square().sum(-1)
        loss = (error * keep).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return translation.detach()


def test_root_from_independent_noisy_keypoints_with_outliers():
    """A detector's 2D keypoints of the true hand (1.5 px noise, 5 of 21 off by 30-80 px) and a
    hand model's root-relative 3D joints with 2 mm error of their own, 12 hands at 0.4-0.9 m
    turned up to 0.9 rad about each axis, a camera with fx != fy:

    - RANSAC keeps exactly the 16 good keypoints of every hand (threshold 10 px: the good
      ones are off by the noise plus the 3D error, at most ~3 px at 0.4 m; outliers by >= 30);
    - the registered root is the pixel-error optimum over those keypoints (found here by plain
      L-BFGS) to 0.5 mm;
    - it lies within 5 % of the depth from the true wrist (mean under 10 mm): the noise alone
      limits depth to a few per cent for a hand 150 px across, more when it is foreshortened.

    Without RANSAC (the closed form on all keypoints) the outliers pull the root by more than
    10 cm on average."""
    estimate, keypoints, truth, outliers = _observed_scene()
    intrinsics = K_OBSERVED.expand(len(truth), 3, 3)
    result = register_hand_root(estimate, keypoints, intrinsics, inlier_threshold_px=10.0)
    assert result.valid.all()
    assert torch.equal(result.inliers, ~outliers)

    optimum = _pixel_error_optimum(estimate, keypoints, (~outliers).double(), truth)
    assert 1000 * (result.translation - optimum).norm(dim=-1).max() < 0.5

    error_m = (result.translation - truth).norm(dim=-1)
    assert (error_m / truth[:, 2]).max() < 0.05 and 1000 * error_m.mean() < 10.0, error_m

    plain = solve_translation_linear(estimate, keypoints, intrinsics)
    assert (plain - truth).norm(dim=-1).mean() > 0.1
