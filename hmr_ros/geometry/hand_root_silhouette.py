"""CMR's full adaptive 2D-1D hand-root registration, batched in torch (docs/cmr.md).

CMR (Chen et al., CVPR 2021; the official ``utils/vis.py::registration``) places a wrist-relative
hand mesh in the camera in three steps. This module adds the parts that
``geometry/hand_root.py`` (the robust 2D step) leaves out:

1. Confidence: keypoints whose heatmap peak is <= 0.1 are dropped; the others count equally
   (CMR does not weight by confidence beyond that cut).
2. 2D step: ``register_hand_root`` on the kept keypoints (closed form + RANSAC + Gauss-Newton,
   a more robust version of CMR's SLSQP trimming loop).
3. 1D step, when the model predicts a silhouette: every 2D point set is described by its
   minimum and maximum extent along 12 directions, 6 orthogonal pairs at (0, 90), (-15, 75),
   (-30, 60), (-45, 45), (-60, 30), (-75, 15) degrees: 24 numbers, divided by the crop size. t is
   chosen so that the descriptor of the projected mesh matches that of the silhouette, in the
   least-squares sense. CMR minimises it with SciPy's SLSQP from t = (0, 0, 0.6); here a
   scaled-orthographic closed form starts a fixed number of Levenberg-Marquardt steps (the
   descriptor is piecewise linear in the projected points: each entry's Jacobian is that of its
   extreme vertex), all in tensors: no host synchronisation, no data-dependent loop.
4. Fusion by the disagreement d = |t_2D - t_1D|: d <= 2 cm keeps t_2D, d > 6 cm takes t_1D (the
   2D cues are judged broken), and in between the two are blended linearly.

The silhouette is used as the set of its pixels above 0.3 (CMR thresholds the mask at 0.3 and
takes the external contour: the extremes along any direction are the same for one connected
region; pixels of stray regions count here, where CMR keeps only its first contour).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from hmr_ros.geometry.hand_root import register_hand_root

__all__ = [
    'CMR_CONFIDENCE_THRESHOLD',
    'CMR_SILHOUETTE_THRESHOLD',
    'HandRootFusion',
    'SilhouetteRegistration',
    'extent_descriptor',
    'fuse_hand_roots',
    'register_hand_root_2d1d',
    'register_silhouette',
    'silhouette_pixels',
]

CMR_CONFIDENCE_THRESHOLD = 0.1
"""Keypoints with heatmap peaks at or below it are dropped (CMR)."""
CMR_SILHOUETTE_THRESHOLD = 0.3
"""Silhouette probability above which a pixel belongs to the hand (CMR)."""
DIRECTION_PAIRS_DEG = ((0, 90), (-15, 75), (-30, 60), (-45, 45), (-60, 30), (-75, 15))
"""CMR's 6 orthogonal direction pairs of the 1D descriptor."""
DESCRIPTOR_SIZE = 4 * len(DIRECTION_PAIRS_DEG)
FUSION_NEAR_M = 0.02
"""Below this 2D/1D disagreement the 2D result is kept."""
FUSION_FAR_M = 0.06
"""Above it the 1D result is taken; in between they are blended linearly."""
CMR_INITIAL_DEPTH_M = 0.6


def _directions(dtype: torch.dtype, device: torch.device) -> Tensor:
    """(12, 2) unit vectors, ordered pair by pair (a, b)."""
    # Built on the device from arange (no host-to-device copy per call): pair k is
    # (-15 k, 90 - 15 k) degrees, as DIRECTION_PAIRS_DEG.
    step = torch.arange(len(DIRECTION_PAIRS_DEG), dtype=torch.float64, device=device)
    degrees = torch.stack((-15.0 * step, 90.0 - 15.0 * step), dim=-1).reshape(-1)
    radians = degrees * (math.pi / 180.0)
    return torch.stack((torch.cos(radians), torch.sin(radians)), dim=-1).to(dtype)


def _extremes(points_px: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Min/max of the valid points along the 12 directions, with the arg-extreme indices."""
    directions = _directions(points_px.dtype, points_px.device)
    along = points_px @ directions.T  # (B, N, 12)
    inf = torch.full_like(along, torch.inf)
    low, low_index = torch.where(valid[..., None], along, inf).min(dim=1)
    high, high_index = torch.where(valid[..., None], along, -inf).max(dim=1)
    return low, high, low_index, high_index


def _interleave(low: Tensor, high: Tensor) -> Tensor:
    """(B, 12) minima and maxima -> (B, 24): per pair (a, b): min_a, max_a, min_b, max_b."""
    return torch.stack((low, high), dim=-1).flatten(-2)


def extent_descriptor(points_px: Tensor, valid: Tensor | None = None) -> Tensor:
    """CMR's 1D descriptor of 2D point sets (module docstring, step 3), in pixels.

    Args:
        points_px: (B, N, 2) points.
        valid: (B, N) bool, points to use; None uses all. A set without valid points gives inf.

    Returns:
        (B, 24): per direction pair (a, b), the min and max along a, then along b.
    """
    if valid is None:
        valid = torch.ones(points_px.shape[:2], dtype=torch.bool, device=points_px.device)
    low, high, _, _ = _extremes(points_px, valid)
    return _interleave(low, high)


def silhouette_pixels(
    silhouette: Tensor, threshold: float = CMR_SILHOUETTE_THRESHOLD
) -> tuple[Tensor, Tensor]:
    """Pixel centres of a predicted mask and which of them are hand.

    Args:
        silhouette: (B, H, W) probabilities.
        threshold: pixels strictly above it are hand.

    Returns:
        points_px: (B, H * W, 2) (u, v) pixel centres in the mask's own pixels (integers: CMR's
        contour points are pixel indices); scale them to the crop and map them to the image.
        valid: (B, H * W) bool.
    """
    batch, height, width = silhouette.shape
    v, u = torch.meshgrid(
        torch.arange(height, dtype=silhouette.dtype, device=silhouette.device),
        torch.arange(width, dtype=silhouette.dtype, device=silhouette.device),
        indexing='ij',
    )
    points = torch.stack((u, v), dim=-1).reshape(1, -1, 2).expand(batch, -1, -1)
    return points, (silhouette > threshold).reshape(batch, -1)


def _project(points: Tensor, intrinsics: Tensor) -> tuple[Tensor, Tensor]:
    """(B, V, 3) camera points -> pixels (B, V, 2) and the Jacobian d(u, v)/dt (B, V, 2, 3)."""
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
    x, y = points[..., 0], points[..., 1]
    z = points[..., 2].clamp_min(1e-6)
    pixels = torch.stack((fx * x / z + cx, fy * y / z + cy), dim=-1)
    zero = torch.zeros_like(z)
    row_u = torch.stack((fx / z, zero, -fx * x / z**2), dim=-1)
    row_v = torch.stack((zero, fy / z, -fy * y / z**2), dim=-1)
    return pixels, torch.stack((row_u, row_v), dim=-2)


class SilhouetteRegistration(NamedTuple):
    """Result of the 1D step.

    Attributes:
        translation: (B, 3) t_1D, metres, camera frame.
        cost: (B,) mean squared descriptor difference at t_1D (descriptor in crop sizes).
        valid: (B,) bool: the silhouette had hand pixels and the result is finite.
    """

    translation: Tensor
    cost: Tensor
    valid: Tensor


def register_silhouette(
    vertices: Tensor,
    silhouette_px: Tensor,
    silhouette_valid: Tensor,
    intrinsics: Tensor,
    size_px: float | Tensor,
    *,
    depth_bounds_m: tuple[float, float] = (0.05, 10.0),
    iterations: int = 30,
) -> SilhouetteRegistration:
    """CMR's 1D step (module docstring, step 3).

    Args:
        vertices: (B, V, 3) wrist-relative mesh, metres, camera-oriented.
        silhouette_px: (B, M, 2) silhouette pixels in image pixels (``silhouette_pixels``
            mapped through the crop).
        silhouette_valid: (B, M) bool, which of them are hand.
        intrinsics: (B, 3, 3) K of the image.
        size_px: crop side in image pixels (the descriptor's normaliser), scalar or (B,).
        depth_bounds_m: (min, max) t_z.
        iterations: Levenberg-Marquardt steps (fixed).

    Returns:
        SilhouetteRegistration.
    """
    batch = vertices.shape[0]
    dtype, device = vertices.dtype, vertices.device
    size = (
        size_px.to(dtype=dtype, device=device).expand(batch)
        if isinstance(size_px, Tensor)
        else vertices.new_full((batch,), float(size_px))
    )[:, None]
    target = extent_descriptor(silhouette_px, silhouette_valid) / size  # (B, 24)
    has_pixels = silhouette_valid.any(dim=1)
    target = torch.where(has_pixels[:, None], target, torch.zeros_like(target))
    directions = _directions(dtype, device)  # (12, 2)
    all_vertices = torch.ones(vertices.shape[:2], dtype=torch.bool, device=device)
    low_depth, high_depth = depth_bounds_m

    # Scaled-orthographic start: spans give the depth, centres the lateral offset.
    fx, fy = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
    focal = (fx * fy).sqrt()
    flat = extent_descriptor(vertices[..., :2], all_vertices).reshape(batch, 12, 2)  # metres
    pixels = (target * size).reshape(batch, 12, 2)
    span_m = (flat[..., 1] - flat[..., 0]).mean(-1)
    span_px = (pixels[..., 1] - pixels[..., 0]).mean(-1).clamp_min(1.0)
    depth = (focal * span_m / span_px).clamp(low_depth, high_depth)
    # Directions 0 and 1 are the image axes (0 and 90 degrees): their mid-extents are (u, v).
    centre_px, centre_m = pixels.mean(-1)[:, :2], flat.mean(-1)[:, :2]
    principal = intrinsics[:, :2, 2]
    lateral = (centre_px - principal) * depth[:, None] / torch.stack((fx, fy), -1) - centre_m
    translation = torch.cat((lateral, depth[:, None]), dim=-1)
    translation = torch.where(
        has_pixels[:, None],
        translation,
        torch.cat(
            (
                translation.new_zeros(batch, 2),
                translation.new_full((batch, 1), CMR_INITIAL_DEPTH_M),
            ),
            dim=-1,
        ),
    )

    def residual_and_jacobian(t: Tensor) -> tuple[Tensor, Tensor]:
        projected, jac = _project(vertices + t[:, None], intrinsics)
        low, high, low_index, high_index = _extremes(projected, all_vertices)
        residual = _interleave(low, high) / size - target  # (B, 24)
        index = torch.stack((low_index, high_index), dim=-1).flatten(-2)  # (B, 24)
        jac_at = jac.gather(1, index[..., None, None].expand(-1, -1, 2, 3))  # (B, 24, 2, 3)
        per_entry = directions.repeat_interleave(2, dim=0)  # (24, 2): each direction twice
        return residual, torch.einsum('kc,bkcj->bkj', per_entry, jac_at) / size[..., None]

    damping = torch.full((batch,), 1e-3, dtype=dtype, device=device)
    eye = torch.eye(3, dtype=dtype, device=device)
    residual, jacobian = residual_and_jacobian(translation)
    cost = residual.square().mean(-1)
    for _ in range(iterations):
        normal = jacobian.transpose(1, 2) @ jacobian
        scale = normal.diagonal(dim1=1, dim2=2)
        system = normal + damping[:, None, None] * torch.diag_embed(scale) + 1e-12 * eye
        step = torch.linalg.solve(system, (jacobian.transpose(1, 2) @ residual[..., None]))[..., 0]
        candidate = translation - step
        candidate = torch.cat(
            (candidate[:, :2], candidate[:, 2:].clamp(low_depth, high_depth)), -1
        )
        new_residual, new_jacobian = residual_and_jacobian(candidate)
        new_cost = new_residual.square().mean(-1)
        better = new_cost < cost
        translation = torch.where(better[:, None], candidate, translation)
        residual = torch.where(better[:, None], new_residual, residual)
        jacobian = torch.where(better[:, None, None], new_jacobian, jacobian)
        cost = torch.where(better, new_cost, cost)
        damping = torch.where(better, damping * 0.3, damping * 4.0).clamp(1e-9, 1e9)
    valid = has_pixels & torch.isfinite(translation).all(-1) & torch.isfinite(cost)
    return SilhouetteRegistration(translation=translation, cost=cost, valid=valid)


class HandRootFusion(NamedTuple):
    """Result of the full 2D-1D registration.

    Attributes:
        translation: (B, 3) fused t, metres, camera frame.
        translation_2d: (B, 3) t_2D.
        translation_1d: (B, 3) t_1D (t_2D where there is no silhouette).
        disagreement_m: (B,) d = |t_2D - t_1D| (0 without silhouette).
        blend: (B,) weight of t_1D in the fusion, in [0, 1].
        rms_px: (B,) reprojection RMS of the 2D step over its inliers.
        valid: (B,) bool, the 2D step had enough inliers or the 1D step succeeded.
    """

    translation: Tensor
    translation_2d: Tensor
    translation_1d: Tensor
    disagreement_m: Tensor
    blend: Tensor
    rms_px: Tensor
    valid: Tensor


def fuse_hand_roots(
    translation_2d: Tensor, translation_1d: Tensor, valid_1d: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """CMR's adaptive fusion (module docstring, step 4).

    Returns:
        (B, 3) fused t, (B,) disagreement d in metres, (B,) blend weight of t_1D.
    """
    distance = (translation_2d - translation_1d).norm(dim=-1)
    blend = ((distance - FUSION_NEAR_M) / (FUSION_FAR_M - FUSION_NEAR_M)).clamp(0.0, 1.0)
    blend = torch.where(valid_1d, blend, torch.zeros_like(blend))
    fused = translation_2d + blend[:, None] * (translation_1d - translation_2d)
    return fused, torch.where(valid_1d, distance, torch.zeros_like(distance)), blend


def register_hand_root_2d1d(
    joints: Tensor,
    keypoints_px: Tensor,
    intrinsics: Tensor,
    confidence: Tensor,
    *,
    vertices: Tensor | None = None,
    silhouette_px: Tensor | None = None,
    silhouette_valid: Tensor | None = None,
    size_px: float | Tensor = 224.0,
    inlier_threshold_px: float | Tensor = 6.0,
    depth_bounds_m: tuple[float, float] = (0.05, 10.0),
    confidence_threshold: float = CMR_CONFIDENCE_THRESHOLD,
) -> HandRootFusion:
    """CMR's full registration (module docstring): 2D step, then 1D step and fusion.

    Args:
        joints: (B, 21, 3) wrist-relative joints, metres, camera-oriented.
        keypoints_px: (B, 21, 2) predicted 2D keypoints, image pixels.
        intrinsics: (B, 3, 3) K of the image.
        confidence: (B, 21) heatmap peaks; <= ``confidence_threshold`` drops a keypoint.
        vertices: (B, V, 3) wrist-relative mesh for the 1D step (same frame as ``joints``).
        silhouette_px: (B, M, 2) silhouette pixels in image pixels; None skips the 1D step.
        silhouette_valid: (B, M) bool, which of them are hand.
        size_px: crop side in image pixels (descriptor normaliser).
        inlier_threshold_px: RANSAC inlier threshold of the 2D step.
        depth_bounds_m: (min, max) t_z of both steps.
        confidence_threshold: CMR's cut.

    Returns:
        HandRootFusion.
    """
    kept = (confidence > confidence_threshold).to(joints.dtype)
    planar = register_hand_root(
        joints,
        keypoints_px,
        intrinsics,
        kept,
        inlier_threshold_px=inlier_threshold_px,
        depth_bounds_m=depth_bounds_m,
    )
    translation_2d = planar.translation
    if vertices is None or silhouette_px is None or silhouette_valid is None:
        zero = torch.zeros_like(planar.rms_px)
        return HandRootFusion(
            translation_2d, translation_2d, translation_2d, zero, zero, planar.rms_px, planar.valid
        )
    silhouette = register_silhouette(
        vertices,
        silhouette_px,
        silhouette_valid,
        intrinsics,
        size_px,
        depth_bounds_m=depth_bounds_m,
    )
    # Without enough 2D keypoints the 1D result stands alone (CMR: 2D failure, 1D kept).
    use_1d = silhouette.valid
    fused, distance, blend = fuse_hand_roots(translation_2d, silhouette.translation, use_1d)
    only_1d = use_1d & ~planar.valid
    fused = torch.where(only_1d[:, None], silhouette.translation, fused)
    blend = torch.where(only_1d, torch.ones_like(blend), blend)
    translation_1d = torch.where(use_1d[:, None], silhouette.translation, translation_2d)
    return HandRootFusion(
        translation=fused,
        translation_2d=translation_2d,
        translation_1d=translation_1d,
        disagreement_m=distance,
        blend=blend,
        rms_px=planar.rms_px,
        valid=planar.valid | silhouette.valid,
    )
