"""Camera-space hand roots by 2D registration (CMR's 2D step, robust and batched).

CMR (Chen et al., CVPR 2021; docs/seed-models.md) places a root-relative hand in the
camera by finding the translation t that makes its 3D joints project onto 2D keypoints. With
K = (fx, fy, cx, cy) and a joint X = (x, y, z) seen at (u, v), CMR's algebraic error
K (X + t) - (z + t_z) (u, v, 1) is linear in t: two equations per joint,

    fx t_x + (cx - u) t_z = -fx x - (cx - u) z
    fy t_y + (cy - v) t_z = -fy y - (cy - v) z

so its minimiser is a 3-unknown weighted least-squares problem (docs/seed-models.md measured it
equal to CMR's SLSQP to < 1e-6 m, 30x faster). Steps of ``register_hand_root``:

1. Hypotheses: closed-form solutions of random minimal sets of 3 keypoints (RANSAC; the same
   sets for every hand of the batch, drawn from a fixed seed, so results are reproducible).
2. Score each by its inliers: keypoints whose reprojection error is below the threshold.
3. Refit the closed form on the best hypothesis' inliers, then polish with a few Gauss-Newton
   steps on the geometric (pixel) error over those inliers (MobRecon's objective).
4. Clamp t_z to the depth bounds.

CMR's 1D silhouette step and its 2 cm / 6 cm fusion need a hand mask, which no model here
predicts; they are not implemented. Keypoints with zero weight (confidence) are ignored.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    'HandRootRegistration',
    'minimal_sets',
    'register_hand_root',
    'solve_translation_linear',
]

MIN_KEYPOINTS = 3
"""A translation has 3 unknowns; each keypoint gives 2 equations, but 3 keep it well posed."""

_RIDGE_EPS = 10.0
"""Ridge on the normal equations, in machine epsilons of their trace: keeps minimal sets with
zero-weight keypoints solvable (positive definite) and biases t by about that relative amount."""


class HandRootRegistration(NamedTuple):
    """Registered translations.

    Attributes:
        translation: (B, 3) t, metres, camera frame: the root-relative points plus t project
            onto the keypoints.
        rms_px: (B,) reprojection RMS over the inliers, pixels.
        inliers: (B, N) bool, keypoints used in the final fit.
        valid: (B,) bool, at least MIN_KEYPOINTS inliers (otherwise t is the all-keypoint fit).
    """

    translation: torch.Tensor
    rms_px: torch.Tensor
    inliers: torch.Tensor
    valid: torch.Tensor


def _check(points: torch.Tensor, keypoints_px: torch.Tensor, intrinsics: torch.Tensor) -> None:
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f'points must be (B, N, 3); got {tuple(points.shape)}')
    if tuple(keypoints_px.shape) != (*points.shape[:2], 2):
        raise ValueError(
            f'keypoints_px must be (B, N, 2) = {(*points.shape[:2], 2)}; got '
            f'{tuple(keypoints_px.shape)}'
        )
    if tuple(intrinsics.shape) != (points.shape[0], 3, 3):
        raise ValueError(f'intrinsics must be (B, 3, 3); got {tuple(intrinsics.shape)}')


def solve_translation_linear(
    points: torch.Tensor,
    keypoints_px: torch.Tensor,
    intrinsics: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form minimiser of CMR's weighted algebraic error (module docstring).

    Args:
        points: (..., N, 3) root-relative 3D joints, metres, camera-oriented.
        keypoints_px: (..., N, 2) their 2D keypoints (u, v).
        intrinsics: (..., 3, 3) K (no skew).
        weights: (..., N) non-negative weights; None means all 1.

    Returns:
        (..., 3) translation t.
    """
    fx, fy = intrinsics[..., 0, 0, None], intrinsics[..., 1, 1, None]
    cx, cy = intrinsics[..., 0, 2, None], intrinsics[..., 1, 2, None]
    x, y, z = points.unbind(-1)
    du, dv = cx - keypoints_px[..., 0], cy - keypoints_px[..., 1]
    zero = torch.zeros_like(x)
    # Rows (equations) for u and v of every joint: A t = b.
    rows_u = torch.stack((fx.expand_as(x), zero, du), dim=-1)
    rows_v = torch.stack((zero, fy.expand_as(y), dv), dim=-1)
    a = torch.cat((rows_u, rows_v), dim=-2)  # (..., 2N, 3)
    b = torch.cat((-fx * x - du * z, -fy * y - dv * z), dim=-1)  # (..., 2N)
    w = torch.ones_like(x) if weights is None else weights.to(x)
    w = torch.cat((w, w), dim=-1)
    normal = a.transpose(-1, -2) @ (a * w[..., None])
    scale = normal.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None].clamp_min(1.0)
    normal = normal + _ridge(normal.dtype) * scale * torch.eye(3, dtype=a.dtype, device=a.device)
    rhs = (a * (w * b)[..., None]).sum(-2)
    # solve_ex reads no error code back to the host; the ridge keeps the system positive
    # definite, so the factorisation cannot fail.
    return torch.linalg.solve_ex(normal, rhs[..., None]).result[..., 0]


def _ridge(dtype: torch.dtype) -> float:
    return _RIDGE_EPS * torch.finfo(dtype).eps


def _project(points: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """(..., N, 3) camera points -> (..., N, 2) pixels, depth clamped away from zero."""
    z = points[..., 2:].clamp_min(1e-6)
    fx, fy = intrinsics[..., 0, 0, None], intrinsics[..., 1, 1, None]
    cx, cy = intrinsics[..., 0, 2, None], intrinsics[..., 1, 2, None]
    u = fx * points[..., 0] / z[..., 0] + cx
    v = fy * points[..., 1] / z[..., 0] + cy
    return torch.stack((u, v), dim=-1)


def _gauss_newton(
    points: torch.Tensor,
    keypoints_px: torch.Tensor,
    intrinsics: torch.Tensor,
    weights: torch.Tensor,
    translation: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """A few Gauss-Newton steps on the weighted pixel error over t (batched)."""
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    for _ in range(steps):
        camera = points + translation[:, None]
        z = camera[..., 2].clamp_min(1e-6)
        residual = _project(camera, intrinsics) - keypoints_px  # (B, N, 2)
        zero = torch.zeros_like(z)
        jac_u = torch.stack((fx / z, zero, -fx * camera[..., 0] / z**2), dim=-1)
        jac_v = torch.stack((zero, fy / z, -fy * camera[..., 1] / z**2), dim=-1)
        jac = torch.cat((jac_u, jac_v), dim=-2)  # (B, 2N, 3)
        res = torch.cat((residual[..., 0], residual[..., 1]), dim=-1)  # (B, 2N)
        w = torch.cat((weights, weights), dim=-1)
        normal = jac.transpose(-1, -2) @ (jac * w[..., None])
        scale = normal.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None].clamp_min(1e-12)
        normal = normal + _ridge(normal.dtype) * scale * torch.eye(
            3, dtype=jac.dtype, device=jac.device
        )
        gradient = (jac * (w * res)[..., None]).sum(-2)
        step = torch.linalg.solve_ex(normal, gradient[..., None]).result[..., 0]
        translation = translation - step
    return translation


def minimal_sets(
    num_keypoints: int, num_hypotheses: int = 64, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """RANSAC's minimal sets of register_hand_root: 3 distinct keypoints per hypothesis.

    Drawn on the CPU from ``seed``, the same for every call; a caller that registers every
    frame computes them once and keeps them on its device (a module buffer), so the forward
    creates no generator and copies nothing from the host.

    Args:
        num_keypoints: N keypoints per hand.
        num_hypotheses: H minimal sets.
        seed: seed of the draw.
        dtype: dtype of the mask.

    Returns:
        (H, N) mask, 1 on the 3 keypoints of each set.
    """
    generator = torch.Generator().manual_seed(seed)
    sets = torch.rand(num_hypotheses, num_keypoints, generator=generator).argsort(dim=-1)
    mask = torch.zeros(num_hypotheses, num_keypoints, dtype=dtype)
    return mask.scatter_(1, sets[:, :MIN_KEYPOINTS], 1.0)


def register_hand_root(
    points: torch.Tensor,
    keypoints_px: torch.Tensor,
    intrinsics: torch.Tensor,
    confidence: torch.Tensor | None = None,
    *,
    inlier_threshold_px: float | torch.Tensor = 6.0,
    depth_bounds_m: tuple[float, float] = (0.05, 10.0),
    num_hypotheses: int = 64,
    gauss_newton_steps: int = 3,
    seed: int = 0,
    sets: torch.Tensor | None = None,
) -> HandRootRegistration:
    """Robust translation of root-relative hands onto their 2D keypoints (module docstring).

    Args:
        points: (B, N, 3) root-relative 3D joints (metres, camera-oriented; the root at 0).
        keypoints_px: (B, N, 2) 2D keypoints in image pixels, an independent estimate (not
            the projection of ``points`` by the same model).
        intrinsics: (B, 3, 3) K of the image (no skew).
        confidence: (B, N) keypoint weights in [0, 1]; zero ignores a keypoint.
        inlier_threshold_px: reprojection error (pixels) below which a keypoint is an inlier;
            scalar or (B,) (e.g. scaled with the hand's size in the image).
        depth_bounds_m: (min, max) allowed t_z.
        num_hypotheses: RANSAC minimal sets.
        gauss_newton_steps: polishing steps on the pixel error.
        seed: seed of the minimal sets.
        sets: (num_hypotheses, N) precomputed ``minimal_sets(N, num_hypotheses, seed)`` on the
            points' device; None draws them here (a host-to-device copy per call).

    Returns:
        HandRootRegistration.

    Raises:
        ValueError: wrong shapes, fewer than 3 keypoints, or bad bounds.
    """
    _check(points, keypoints_px, intrinsics)
    batch, num = points.shape[:2]
    if num < MIN_KEYPOINTS:
        raise ValueError(f'need at least {MIN_KEYPOINTS} keypoints; got {num}')
    if not 0 < depth_bounds_m[0] < depth_bounds_m[1]:
        raise ValueError(f'depth_bounds_m must be 0 < min < max; got {depth_bounds_m}')
    dtype, device = points.dtype, points.device
    weight = (
        torch.ones(batch, num, dtype=dtype, device=device)
        if confidence is None
        else confidence.to(dtype).clamp_min(0.0)
    )
    if isinstance(inlier_threshold_px, torch.Tensor):
        threshold = inlier_threshold_px.to(dtype=dtype, device=device).expand(batch)
    else:
        threshold = torch.full((batch,), inlier_threshold_px, dtype=dtype, device=device)

    # 1. Hypotheses from minimal sets (3 distinct keypoints each, shared across the batch).
    if sets is None:
        sets = minimal_sets(num, num_hypotheses, seed, dtype)
    elif tuple(sets.shape) != (num_hypotheses, num):
        raise ValueError(
            f'sets must be (num_hypotheses, N) = {(num_hypotheses, num)}; got {tuple(sets.shape)}'
        )
    hypothesis_weight = sets.to(device=device, dtype=dtype)[None] * weight[:, None]  # (B, H, N)
    hypotheses = solve_translation_linear(
        points[:, None].expand(-1, num_hypotheses, -1, -1),
        keypoints_px[:, None].expand(-1, num_hypotheses, -1, -1),
        intrinsics[:, None].expand(-1, num_hypotheses, -1, -1),
        hypothesis_weight,
    )  # (B, H, 3)

    # 2. Inliers of each hypothesis; best = most inliers, then lowest inlier error.
    projected = _project(points[:, None] + hypotheses[:, :, None], intrinsics[:, None])
    error = (projected - keypoints_px[:, None]).norm(dim=-1)  # (B, H, N)
    error = torch.where(hypotheses[..., 2:] > 0, error, torch.full_like(error, torch.inf))
    is_inlier = (error < threshold[:, None, None]) & (weight[:, None] > 0)
    count = is_inlier.sum(-1)
    spread = torch.where(is_inlier, error, torch.zeros_like(error)).sum(-1)
    score = count.to(dtype) - spread / (spread.amax(-1, keepdim=True) + 1.0)
    best = score.argmax(dim=-1)
    inliers = is_inlier[torch.arange(batch, device=device), best]  # (B, N)
    valid = inliers.sum(-1) >= MIN_KEYPOINTS
    inliers = torch.where(valid[:, None], inliers, weight > 0)

    # 3. Closed-form refit on the inliers, Gauss-Newton on the pixel error.
    final_weight = weight * inliers.to(dtype)
    translation = solve_translation_linear(points, keypoints_px, intrinsics, final_weight)
    translation = _gauss_newton(
        points, keypoints_px, intrinsics, final_weight, translation, gauss_newton_steps
    )

    # 4. Depth bounds.
    low, high = depth_bounds_m
    translation = torch.cat((translation[:, :2], translation[:, 2:].clamp(low, high)), dim=-1)
    residual = (_project(points + translation[:, None], intrinsics) - keypoints_px).norm(dim=-1)
    used = final_weight > 0
    rms = ((residual.square() * used).sum(-1) / used.sum(-1).clamp_min(1)).sqrt()
    return HandRootRegistration(translation=translation, rms_px=rms, inliers=inliers, valid=valid)
