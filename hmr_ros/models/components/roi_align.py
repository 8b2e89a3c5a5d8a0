"""Feature sampling: RoIAlign with mmcv semantics and bilinear sampling at points.

SMPLer-X crops hand features with ``mmcv.ops.roi_align(..., aligned=False, pool_mode='avg',
sampling_ratio=0)`` (hamer-smplerx-reference.md, B.4 HandRoI) and samples features at joint
positions with ``F.grid_sample(..., align_corners=True)``. Both are re-implemented here in plain
PyTorch, without torchvision or mmcv, so the model imports anywhere and exports to ONNX.

RoIAlign semantics (mmcv and torchvision agree for ``aligned=False``), per RoI k and output bin
(p, q) of an ``out_h x out_w`` grid:

1. ``x1, y1, x2, y2`` are scaled by ``spatial_scale``; the RoI size is
   ``max(x2 - x1, 1)`` by ``max(y2 - y1, 1)`` (the legacy ``aligned=False`` rule), the bin size is
   the RoI size divided by the output size.
2. Each bin is sampled on a ``g_h x g_w`` grid of points at the centres of equal sub-bins:
   ``y = y1 + p * bin_h + (i + 0.5) * bin_h / g_h``, ``i = 0 .. g_h - 1``, where
   ``g_h = sampling_ratio`` if it is positive, else ``ceil(roi_h / out_h)`` (adaptive, per RoI).
3. Each point is read by bilinear interpolation: a coordinate outside ``[-1, size]`` contributes
   zero; otherwise it is clamped to ``[0, size - 1]`` and the two neighbouring pixels are weighted
   by the hat function ``max(0, 1 - |coordinate - pixel|)``.
4. The bin value is the sum over its points divided by ``g_h * g_w``.

Both the validity test and the hat weights act on x and y separately, and the count is a product,
so the whole operation factorises: ``out[k, c] = W_y[k] @ F[b_k, c] @ W_x[k]^T`` with
``W_y[k]`` of shape (out_h, H) holding the averaged interpolation weights of every bin's sample
rows. :func:`roi_align` builds these small matrices for all RoIs at once and applies them with two
batched matrix products: no loop over RoIs, bins or samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['roi_align', 'sample_at_points']

_ROI_COLUMNS = 5  # (batch index, x1, y1, x2, y2)


def _axis_weights(
    start: Tensor,
    length: Tensor,
    grid: Tensor,
    max_grid: int,
    out_size: int,
    in_size: int,
) -> Tensor:
    """Averaged bilinear weights of one axis for every RoI.

    Args:
        start: (K,) RoI start along the axis, feature pixels.
        length: (K,) RoI length along the axis, already at least 1.
        grid: (K,) number of sample points per bin along the axis (>= 1), as float.
        max_grid: Number of sample slots to enumerate; slots at or past ``grid[k]`` are masked.
        out_size: Number of output bins along the axis.
        in_size: Feature map size along the axis.

    Returns:
        (K, out_size, in_size) weights; row p sums the hat weights of bin p's sample points,
        divided by ``grid[k]``.
    """
    device = start.device
    bin_size = length / out_size  # (K,)
    bins = torch.arange(out_size, device=device, dtype=start.dtype)
    slots = torch.arange(max_grid, device=device, dtype=start.dtype)
    # (K, out, G): the same expression order as the reference kernels.
    positions = (
        start[:, None, None]
        + bins[None, :, None] * bin_size[:, None, None]
        + (slots[None, None, :] + 0.5) * bin_size[:, None, None] / grid[:, None, None]
    )
    used = slots[None, None, :] < grid[:, None, None]
    inside = (positions >= -1.0) & (positions <= in_size)
    clamped = positions.clamp(0.0, in_size - 1)
    pixels = torch.arange(in_size, device=device, dtype=start.dtype)
    hat = (1.0 - (clamped[..., None] - pixels).abs()).clamp_min(0.0)  # (K, out, G, in)
    hat = hat * (used & inside)[..., None].to(hat.dtype)
    return hat.sum(dim=2) / grid[:, None, None]


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    max_adaptive_grid: int | None = None,
) -> Tensor:
    """Average RoIAlign with ``aligned=False`` (mmcv ``roi_align`` / torchvision semantics).

    Args:
        features: (N, C, H, W) feature maps.
        rois: (K, 5) boxes ``(batch_index, x1, y1, x2, y2)`` in input units; multiplied by
            ``spatial_scale`` to give feature pixels (pixel i covers [i, i + 1), its value sits
            at i).
        output_size: (out_h, out_w) bins per RoI.
        spatial_scale: Factor from RoI units to feature pixels.
        sampling_ratio: Sample points per bin along each axis; 0 means adaptive,
            ``ceil(roi_size / output_size)`` per RoI and axis, as mmcv.
        max_adaptive_grid: With ``sampling_ratio=0``, the largest adaptive grid enumerated.
            ``None`` (default) reads the largest grid among the RoIs from the data (one
            device-to-host copy, exact for any RoI). An integer keeps every shape static, for
            tracing, CUDA graphs and export; RoIs that would need more points per bin are then
            sampled with this many, which differs from mmcv only for such large RoIs.

    Returns:
        (K, C, out_h, out_w) pooled features, in the dtype of ``features``.

    Raises:
        ValueError: If the shapes or options are invalid; the message says what is expected.
    """
    if features.dim() != 4:
        raise ValueError(f'features must be (N, C, H, W); got shape {tuple(features.shape)}')
    if rois.dim() != 2 or rois.shape[1] != _ROI_COLUMNS:
        raise ValueError(
            f'rois must be (K, 5) rows of (batch_index, x1, y1, x2, y2); got {tuple(rois.shape)}'
        )
    out_h, out_w = output_size
    if out_h < 1 or out_w < 1:
        raise ValueError(f'output_size must be positive; got {output_size}')
    if sampling_ratio < 0:
        raise ValueError(f'sampling_ratio must be >= 0 (0 = adaptive); got {sampling_ratio}')
    if max_adaptive_grid is not None and max_adaptive_grid < 1:
        raise ValueError(f'max_adaptive_grid must be None or >= 1; got {max_adaptive_grid}')
    height, width = features.shape[-2:]

    # Geometry in float32 even under autocast: positions feed floor-like hat functions.
    boxes = rois[:, 1:].float() * spatial_scale
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    roi_w = (x2 - x1).clamp_min(1.0)
    roi_h = (y2 - y1).clamp_min(1.0)
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, float(sampling_ratio))
        grid_w = torch.full_like(roi_w, float(sampling_ratio))
        max_grid_h = max_grid_w = sampling_ratio
    else:
        grid_h = torch.ceil(roi_h / out_h)
        grid_w = torch.ceil(roi_w / out_w)
        if max_adaptive_grid is None:
            if rois.shape[0] == 0:
                max_grid_h = max_grid_w = 1
            else:
                max_grid_h = int(grid_h.max())
                max_grid_w = int(grid_w.max())
        else:
            grid_h = grid_h.clamp_max(float(max_adaptive_grid))
            grid_w = grid_w.clamp_max(float(max_adaptive_grid))
            max_grid_h = max_grid_w = max_adaptive_grid

    weights_y = _axis_weights(y1, roi_h, grid_h, max_grid_h, out_h, height)  # (K, out_h, H)
    weights_x = _axis_weights(x1, roi_w, grid_w, max_grid_w, out_w, width)  # (K, out_w, W)

    batch_index = rois[:, 0].long()
    roi_features = features[batch_index]  # (K, C, H, W)
    dtype = roi_features.dtype
    # (K, C, H, W) @ (K, 1, W, out_w) -> (K, C, H, out_w); then (K, 1, out_h, H) @ that.
    pooled = roi_features @ weights_x.to(dtype).transpose(1, 2)[:, None]
    return weights_y.to(dtype)[:, None] @ pooled


def sample_at_points(features: Tensor, points_xy: Tensor) -> Tensor:
    """Bilinear feature sampling at points given in feature-pixel coordinates.

    The SMPLer-X convention (``sample_joint_features``): pixel centres at integer coordinates,
    ``grid_sample`` with ``align_corners=True`` and zero padding, so x = 0 reads column 0 and
    x = W - 1 reads the last column exactly.

    Args:
        features: (N, C, H, W) feature maps.
        points_xy: (N, P, 2) points (x, y) in pixels of ``features``.

    Returns:
        (N, P, C) sampled features, in the dtype of ``features``.
    """
    height, width = features.shape[-2:]
    scale = points_xy.new_tensor([2.0 / (width - 1), 2.0 / (height - 1)])
    grid = points_xy * scale - 1.0  # (N, P, 2) in [-1, 1]
    sampled = F.grid_sample(
        features, grid[:, :, None, :].to(features.dtype), mode='bilinear', align_corners=True
    )  # (N, C, P, 1)
    return sampled[..., 0].transpose(1, 2)
