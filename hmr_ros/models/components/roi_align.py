"""Feature sampling: RoIAlign with mmcv semantics and bilinear sampling at points.

SMPLer-X crops hand features with ``mmcv.ops.roi_align(..., aligned=False, pool_mode='avg',
sampling_ratio=0)`` (docs/model-reference.md, B.4 HandRoI) and samples features at joint
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
batched matrix products: no loop over RoIs, bins or samples, and no value read back from the
device (the adaptive grid is enumerated over a static window, see :func:`adaptive_slots`), so it
runs inside CUDA graphs and exports to ONNX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hmr_ros.geometry.constants import scale_last_dim

__all__ = ['adaptive_slots', 'roi_align', 'sample_at_points']

_ROI_COLUMNS = 5  # (batch index, x1, y1, x2, y2)


def _axis_weights(
    start: Tensor,
    length: Tensor,
    grid: Tensor,
    num_slots: int,
    out_size: int,
    in_size: int,
    windowed: bool,
) -> Tensor:
    """Averaged bilinear weights of one axis for every RoI.

    Args:
        start: (K,) RoI start along the axis, feature pixels.
        length: (K,) RoI length along the axis, already at least 1.
        grid: (K,) number of sample points per bin along the axis (>= 1), as float.
        num_slots: Number of sample slots enumerated per bin (a static size).
        out_size: Number of output bins along the axis.
        in_size: Feature map size along the axis.
        windowed: False: slots are the samples 0 .. num_slots - 1 (enough when
            ``grid <= num_slots``). True: slots start at the first sample that can lie in
            ``[-1, in_size]``, so ``num_slots = 2 * in_size + 4`` holds every sample that
            contributes, whatever the grid (see :func:`roi_align`).

    Returns:
        (K, out_size, in_size) weights; row p sums the hat weights of bin p's sample points,
        divided by ``grid[k]``.
    """
    device = start.device
    bin_size = length / out_size  # (K,)
    bins = torch.arange(out_size, device=device, dtype=start.dtype)
    slots = torch.arange(num_slots, device=device, dtype=start.dtype)[None, None, :]
    bin_start = start[:, None] + bins[None, :] * bin_size[:, None]  # (K, out)
    step = bin_size[:, None, None] / grid[:, None, None]
    if windowed:
        # First sample index with position >= -1 (floor: at worst one early, masked below).
        first = torch.floor((-1.0 - bin_start) / step[..., 0] - 0.5).clamp_min(0.0)
        slots = slots + first[..., None]
    # (K, out, G): the same expression order as the reference kernels.
    positions = (
        start[:, None, None]
        + bins[None, :, None] * bin_size[:, None, None]
        + (slots + 0.5) * bin_size[:, None, None] / grid[:, None, None]
    )
    used = slots < grid[:, None, None]
    inside = (positions >= -1.0) & (positions <= float(in_size))
    clamped = torch.clamp(positions, 0.0, float(in_size - 1))
    pixels = torch.arange(in_size, device=device, dtype=start.dtype)
    hat = torch.clamp(1.0 - (clamped[..., None] - pixels).abs(), min=0.0)  # (K, out, G, in)
    hat = hat * (used & inside)[..., None].to(hat.dtype)
    return hat.sum(dim=2) / grid[:, None, None]


def adaptive_slots(in_size: int) -> int:
    """Sample slots per bin that hold every contributing sample of an adaptive grid.

    With ``g = ceil(roi / out) >= 2`` points per bin the spacing ``bin / g`` exceeds 1/2, so at
    most ``2 (in_size + 1) + 1`` samples fall in the contributing range ``[-1, in_size]``; one
    more slot absorbs the rounding of the window start. (``g = 1`` gives one sample per bin.)
    """
    return 2 * in_size + 4


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    max_adaptive_grid: int | None = None,
) -> Tensor:
    """Average RoIAlign with ``aligned=False`` (mmcv ``roi_align`` / torchvision semantics).

    Every shape is static and nothing is read back from the device: with the adaptive grid
    (``sampling_ratio=0``, SMPLer-X's setting) each bin enumerates a fixed window of
    ``adaptive_slots(size)`` sample slots starting at its first sample that can lie in
    ``[-1, size]``; samples past the bin's own grid are masked. That window holds every sample
    that contributes, so the result equals mmcv's for any RoI (large or outside the map).

    Args:
        features: (N, C, H, W) feature maps.
        rois: (K, 5) boxes ``(batch_index, x1, y1, x2, y2)`` in input units; multiplied by
            ``spatial_scale`` to give feature pixels (pixel i covers [i, i + 1), its value sits
            at i).
        output_size: (out_h, out_w) bins per RoI.
        spatial_scale: Factor from RoI units to feature pixels.
        sampling_ratio: Sample points per bin along each axis; 0 means adaptive,
            ``ceil(roi_size / output_size)`` per RoI and axis, as mmcv.
        max_adaptive_grid: With ``sampling_ratio=0``, None (default) is exact as above; an
            integer caps the adaptive grid at that many points per bin (cheaper; differs from
            mmcv only for RoIs that would need more).

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
    roi_w = torch.clamp(x2 - x1, min=1.0)
    roi_h = torch.clamp(y2 - y1, min=1.0)
    windowed = sampling_ratio == 0 and max_adaptive_grid is None
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, float(sampling_ratio))
        grid_w = torch.full_like(roi_w, float(sampling_ratio))
        slots_h = slots_w = sampling_ratio
    else:
        grid_h = torch.ceil(roi_h / out_h)
        grid_w = torch.ceil(roi_w / out_w)
        if max_adaptive_grid is None:
            slots_h, slots_w = adaptive_slots(height), adaptive_slots(width)
        else:
            grid_h = torch.clamp(grid_h, max=float(max_adaptive_grid))
            grid_w = torch.clamp(grid_w, max=float(max_adaptive_grid))
            slots_h = slots_w = max_adaptive_grid

    weights_y = _axis_weights(y1, roi_h, grid_h, slots_h, out_h, height, windowed)
    weights_x = _axis_weights(x1, roi_w, grid_w, slots_w, out_w, width, windowed)

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
    grid = scale_last_dim(points_xy, (2.0 / (width - 1), 2.0 / (height - 1))) - 1.0  # [-1, 1]
    sampled = F.grid_sample(
        features, grid[:, :, None, :].to(features.dtype), mode='bilinear', align_corners=True
    )  # (N, C, P, 1)
    return sampled[..., 0].transpose(1, 2)
