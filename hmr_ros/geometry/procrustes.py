"""Procrustes alignment: the similarity transform that best maps one point set onto another.

The PA- metrics of the paper (PA-MPJPE, PA-PVE; HMR-Adapter section 4.1, after Gower 1975)
align a prediction to the ground truth with a rotation, a uniform scale and a translation before
measuring the error. The least-squares solution is Umeyama's ("Least-squares estimation of
transformation parameters between two point patterns", TPAMI 1991): for source points x_i and
target points y_i with weights w_i (summing to 1), minimise sum_i w_i |s R x_i + t - y_i|^2 over
s > 0, R in SO(3), t:

1. Centre both sets on their weighted means mu_x, mu_y: x'_i = x_i - mu_x, y'_i = y_i - mu_y.
2. Cross-covariance Sigma = sum_i w_i y'_i x'_i^T (3 x 3) and its SVD Sigma = U D V^T.
3. R = U S V^T with S = diag(1, 1, sign(det U det V)). Without S the solution may be a
   reflection (det R = -1) when that fits better, e.g. a mirrored prediction; the metric must
   not forgive mirroring, so R is always a proper rotation.
4. s = trace(D S) / sigma_x^2 with sigma_x^2 = sum_i w_i |x'_i|^2.
5. t = mu_y - s R mu_x.

The solve runs in float64 (the SVD of a nearly degenerate covariance is sensitive) and returns
the input dtype. Functions are pure and batched over a leading dimension.
"""

from typing import NamedTuple

import torch

_EPS = 1e-12
"""Guards the division by the source variance (a set collapsed to one point)."""


class SimilarityTransform(NamedTuple):
    """y = scale R x + translation, one transform per batch element.

    Attributes:
        scale: (B,) uniform scale, > 0 unless the source collapses to a point.
        rotation: (B, 3, 3) proper rotation (det = +1).
        translation: (B, 3) in the target's units.
    """

    scale: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor


def _check_point_sets(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.dim() != 3 or source.shape[-1] != 3 or source.shape != target.shape:
        raise ValueError(
            'source and target must both have shape (B, N, 3); got '
            f'{tuple(source.shape)} and {tuple(target.shape)}'
        )


def fit_similarity(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> SimilarityTransform:
    """Least-squares similarity transform from source to target (Umeyama, no reflections).

    Args:
        source: (B, N, 3) points to move (e.g. the prediction).
        target: (B, N, 3) points to reach (e.g. the ground truth).
        weights: (B, N) non-negative point weights (e.g. keypoint confidence); None weighs all
            points equally. Each row must have a positive sum.

    Returns:
        SimilarityTransform with scale (B,), rotation (B, 3, 3), translation (B, 3).

    Raises:
        ValueError: shapes differ, or a weight row sums to zero.
    """
    _check_point_sets(source, target)
    x = source.to(torch.float64)
    y = target.to(torch.float64)
    if weights is None:
        w = x.new_full(x.shape[:2], 1.0 / x.shape[1])
    else:
        if weights.shape != source.shape[:2]:
            raise ValueError(
                f'weights must have shape {tuple(source.shape[:2])}; got {tuple(weights.shape)}'
            )
        w = weights.to(torch.float64)
        total = w.sum(dim=1, keepdim=True)
        if bool((total <= 0).any()):
            raise ValueError('every weight row must have a positive sum; drop empty samples')
        w = w / total
    w3 = w[..., None]
    # 1. Centre on the weighted means.
    mu_x = (w3 * x).sum(dim=1)
    mu_y = (w3 * y).sum(dim=1)
    xc = x - mu_x[:, None]
    yc = y - mu_y[:, None]
    # 2. Cross-covariance Sigma = sum w y' x'^T and its SVD.
    sigma = (w3 * yc).transpose(1, 2) @ xc
    u, d, vh = torch.linalg.svd(sigma)
    # 3. Force det R = +1.
    sign = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    s_diag = torch.stack((torch.ones_like(sign), torch.ones_like(sign), sign), dim=-1)
    rotation = u @ torch.diag_embed(s_diag) @ vh
    # 4. Scale from the singular values and the source variance.
    var_x = (w * (xc**2).sum(dim=-1)).sum(dim=1)
    scale = (d * s_diag).sum(dim=-1) / var_x.clamp_min(_EPS)
    # 5. Translation.
    translation = mu_y - scale[:, None] * (rotation @ mu_x[..., None])[..., 0]
    dtype = source.dtype
    return SimilarityTransform(scale.to(dtype), rotation.to(dtype), translation.to(dtype))


def apply_similarity(points: torch.Tensor, transform: SimilarityTransform) -> torch.Tensor:
    """Apply y = s R x + t to (B, N, 3) points; returns (B, N, 3)."""
    rotated = points @ transform.rotation.transpose(1, 2).to(points.dtype)
    scale = transform.scale.to(points.dtype)[:, None, None]
    return scale * rotated + transform.translation.to(points.dtype)[:, None]


def procrustes_align(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Move source onto target with the best similarity transform (see `fit_similarity`).

    Args:
        source: (B, N, 3).
        target: (B, N, 3).
        weights: (B, N) or None.

    Returns:
        (B, N, 3) aligned source, in the target's frame and units.
    """
    return apply_similarity(source, fit_similarity(source, target, weights))
