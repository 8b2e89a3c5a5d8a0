"""Crop boxes and batched GPU crops with the base models' pixel conventions.

Both base models cut their inputs with ``cv2.warpAffine`` (INTER_LINEAR, constant border 0)
using an affine map that sends the box centre to pixel (w/2, h/2) of the output, with cv2's
convention that integer coordinates are pixel centres (docs/model-reference.md, A.8 and
B.2). ``crop_images`` reproduces that map with ``torch.nn.functional.grid_sample`` for many
crops of a batch of images at once, so the pipeline can crop on the GPU; the same affine
matrices map keypoints between crop and image pixels.

Boxes:

- HaMeR hand box: the keypoint box scaled by 2.0, grown to aspect 3:4 (w:h), and the crop is
  the square of its longer side: side = max(2 h, 2 w 4/3).
- SMPLer-X body box: ``sanitize_bbox`` (clipped to the image and made 1 px narrower and
  shorter), grown to aspect 0.75 (w/h), then scaled by 1.25 (``process_bbox``).

Left hands: HaMeR flips the whole image (x -> W - 1 - x) and crops around the flipped centre
W - 1 - cx. In original pixels this is the crop whose column u samples x = cx - (u - w/2) sx,
which is what ``flip=True`` produces (it is not the same as flipping the unflipped crop, which
would be off by one output column).
"""

import torch
import torch.nn.functional as F

HAMER_HAND_BOX_RESCALE = 2.0
"""HaMeR demo's rescale factor applied to the hand keypoint box."""

HAMER_HAND_BOX_ASPECT_WH = (192.0, 256.0)
"""HaMeR's MODEL.BBOX_SHAPE (w, h): the hand box is grown to this aspect before squaring."""

SMPLERX_BODY_BOX_ASPECT_WH = (384.0, 512.0)
"""SMPLer-X input_img_shape as (w, h): aspect 0.75."""

SMPLERX_BODY_BOX_SCALE = 1.25
"""SMPLer-X process_bbox enlargement after the aspect correction."""

_OUTSIDE = -4.0
"""A normalised grid coordinate outside [-1, 1] by more than a pixel: samples zeros."""


def boxes_xyxy_to_center_size(boxes_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split corner boxes into centres and sizes.

    Args:
        boxes_xyxy: (N, 4) (x1, y1, x2, y2) pixels.

    Returns:
        centers_px (N, 2) and sizes_px (N, 2) as (w, h) = (x2 - x1, y2 - y1).
    """
    _check_last_dim(boxes_xyxy, 4, 'boxes_xyxy')
    top_left, bottom_right = boxes_xyxy[..., :2], boxes_xyxy[..., 2:]
    return (top_left + bottom_right) / 2.0, bottom_right - top_left


def center_size_to_boxes_xyxy(centers_px: torch.Tensor, sizes_px: torch.Tensor) -> torch.Tensor:
    """Corner boxes (N, 4) from centres (N, 2) and sizes (N, 2) (w, h)."""
    half = sizes_px / 2.0
    return torch.cat((centers_px - half, centers_px + half), dim=-1)


def expand_to_aspect_ratio(sizes_px: torch.Tensor, aspect_wh: tuple[float, float]) -> torch.Tensor:
    """Grow the short side of each box so that w / h equals the target aspect.

    Args:
        sizes_px: (N, 2) box sizes (w, h).
        aspect_wh: target (w, h); only the ratio matters.

    Returns:
        (N, 2) sizes with one side unchanged and the other grown (never shrunk).
    """
    _check_last_dim(sizes_px, 2, 'sizes_px')
    ratio = aspect_wh[0] / aspect_wh[1]
    w, h = sizes_px.unbind(-1)
    return torch.stack((torch.maximum(w, h * ratio), torch.maximum(h, w / ratio)), dim=-1)


def clip_boxes_xyxy(boxes_xyxy: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """Clip corner boxes to the image, [0, W - 1] x [0, H - 1].

    Args:
        boxes_xyxy: (N, 4).
        image_wh: (2,) or (N, 2) image (W, H).

    Returns:
        (N, 4) clipped boxes.
    """
    _check_last_dim(boxes_xyxy, 4, 'boxes_xyxy')
    upper = (image_wh - 1).to(boxes_xyxy.dtype)
    upper = torch.cat((upper, upper), dim=-1).expand_as(boxes_xyxy)
    return torch.minimum(boxes_xyxy.clamp_min(0.0), upper)


def hand_crop_boxes(
    boxes_xyxy: torch.Tensor, rescale: float = HAMER_HAND_BOX_RESCALE
) -> tuple[torch.Tensor, torch.Tensor]:
    """HaMeR's square hand crop around a hand (keypoint) box.

    side = max of expand_to_aspect_ratio(rescale (w, h), 3:4) = max(2 h, 2 w 4/3) for 2.0.

    Args:
        boxes_xyxy: (N, 4) hand boxes in image pixels.
        rescale: enlargement of the box (HaMeR demo 2.0).

    Returns:
        centers_px (N, 2) and side_px (N,) of the square crop, image pixels.
    """
    centers, sizes = boxes_xyxy_to_center_size(boxes_xyxy)
    expanded = expand_to_aspect_ratio(sizes * rescale, HAMER_HAND_BOX_ASPECT_WH)
    return centers, expanded.amax(dim=-1)


def sanitize_person_boxes(boxes_xyxy: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """SMPLer-X's ``sanitize_bbox`` on corner boxes (the official code works on x, y, w, h).

    With w = x2 - x1 and h = y2 - y1 of the input box, the official formula is
    ``x1' = max(0, x1)``, ``x2' = min(W - 1, x1' + max(0, w - 1))`` (y likewise): the box
    starts inside the image, is 1 px narrower and shorter than given, and keeps its width when
    its left edge was clipped (x2' follows x1', not the input x2), cut at the last pixel. The
    official code drops a box whose result is empty; here it stays, with zero width or height
    (static shapes), for the caller to reject.

    Args:
        boxes_xyxy: (N, 4) person boxes (x1, y1, x2, y2), image pixels.
        image_wh: (2,) or (N, 2) image (W, H).

    Returns:
        (N, 4) sanitised corner boxes.
    """
    _check_last_dim(boxes_xyxy, 4, 'boxes_xyxy')
    last_px = (image_wh - 1).to(boxes_xyxy.dtype).expand(boxes_xyxy.shape[:-1] + (2,))
    top_left = boxes_xyxy[..., :2].clamp_min(0.0)
    sizes = (boxes_xyxy[..., 2:] - boxes_xyxy[..., :2] - 1.0).clamp_min(0.0)
    return torch.cat((top_left, torch.minimum(top_left + sizes, last_px)), dim=-1)


def body_crop_boxes(
    boxes_xyxy: torch.Tensor,
    scale: float = SMPLERX_BODY_BOX_SCALE,
    aspect_wh: tuple[float, float] = SMPLERX_BODY_BOX_ASPECT_WH,
    image_wh: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPLer-X's person crop (``process_bbox``): sanitise, grow to aspect 0.75, scale by 1.25.

    Args:
        boxes_xyxy: (N, 4) person boxes in image pixels.
        scale: enlargement after the aspect correction.
        aspect_wh: crop aspect (w, h).
        image_wh: (2,) or (N, 2) image (W, H): the boxes go through sanitize_person_boxes
            first, as in the official code. None takes the boxes as they are (already
            sanitised, or a box that is not a detector's).

    Returns:
        centers_px (N, 2) and sizes_px (N, 2) (w, h), image pixels.
    """
    if image_wh is not None:
        boxes_xyxy = sanitize_person_boxes(boxes_xyxy, image_wh)
    centers, sizes = boxes_xyxy_to_center_size(boxes_xyxy)
    return centers, expand_to_aspect_ratio(sizes, aspect_wh) * scale


def crop_to_image_affine(
    centers_px: torch.Tensor,
    sizes_px: torch.Tensor,
    out_hw: tuple[int, int],
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Affine maps from crop pixels to image pixels (cv2 pixel-centre convention).

    x = cx + f (u - w/2) bw / w,  y = cy + (v - h/2) bh / h,  f = -1 for flipped crops.

    Args:
        centers_px: (N, 2) box centres (cx, cy) in image pixels (original, unflipped image).
        sizes_px: (N, 2) box sizes (bw, bh) in image pixels, or (N,) for square boxes.
        out_hw: crop (h, w) in pixels.
        flip: (N,) bool, True for horizontally flipped crops (HaMeR left hands).

    Returns:
        (N, 2, 3) matrices A with [x, y] = A [u, v, 1].
    """
    _check_last_dim(centers_px, 2, 'centers_px')
    sizes = sizes_px[..., None].expand(*sizes_px.shape, 2) if sizes_px.dim() == 1 else sizes_px
    h, w = out_hw
    sx = sizes[..., 0] / w
    sy = sizes[..., 1] / h
    if flip is not None:
        sx = torch.where(flip.to(torch.bool), -sx, sx)
    zero = torch.zeros_like(sx)
    rows = (
        torch.stack((sx, zero, centers_px[..., 0] - sx * (w / 2.0)), dim=-1),
        torch.stack((zero, sy, centers_px[..., 1] - sy * (h / 2.0)), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def invert_affine(affine: torch.Tensor) -> torch.Tensor:
    """Inverse of (N, 2, 3) affine maps [A | t]: [A^-1 | -A^-1 t]."""
    linear_inv = torch.linalg.inv_ex(affine[..., :2]).inverse  # no host check of the info
    return torch.cat((linear_inv, -(linear_inv @ affine[..., 2:])), dim=-1)


def image_to_crop_affine(
    centers_px: torch.Tensor,
    sizes_px: torch.Tensor,
    out_hw: tuple[int, int],
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Affine maps from image pixels to crop pixels; inverse of crop_to_image_affine.

    Returns:
        (N, 2, 3) matrices B with [u, v] = B [x, y, 1] (the matrix cv2.warpAffine takes).
    """
    return invert_affine(crop_to_image_affine(centers_px, sizes_px, out_hw, flip))


def apply_affine(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Map points with per-crop affine matrices.

    Args:
        points: (N, K, 2) pixel coordinates.
        affine: (N, 2, 3).

    Returns:
        (N, K, 2) mapped coordinates.
    """
    return points @ affine[..., :2].transpose(-1, -2) + affine[..., None, :, 2]


def crop_images(
    images: torch.Tensor,
    centers_px: torch.Tensor,
    sizes_px: torch.Tensor,
    out_hw: tuple[int, int],
    batch_index: torch.Tensor | None = None,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cut N crops out of B images with bilinear sampling and zero border, on any device.

    Matches ``cv2.warpAffine(image, image_to_crop_affine(...), (w, h), INTER_LINEAR,
    BORDER_CONSTANT, 0)`` up to cv2's 1/32-pixel interpolation-weight quantisation.

    The crops of each image are sampled with one ``grid_sample`` call over a grid that stacks
    them along the height, so the images are never copied per crop. Nothing is read back from
    the device; with B > 1 every image samples a grid for every crop (zeros where the crop is
    not its own), which keeps the shapes static.

    Sampling coordinates are float32 (or float64 for float64 images): half-precision grid
    coordinates would be off by up to half a pixel on HD images. Half-precision images are
    sampled in float32 and the result is returned in their dtype; integer images (uint8)
    return float32 crops with values in the input range.

    Args:
        images: (B, C, H, W) images.
        centers_px: (N, 2) box centres (cx, cy) in image pixels.
        sizes_px: (N, 2) box sizes (w, h) in image pixels, or (N,) for square boxes.
        out_hw: crop (h, w) in pixels.
        batch_index: (N,) long, the image of each crop; None means all from image 0.
        flip: (N,) bool, True to flip horizontally (HaMeR left hands); None means no flips.

    Returns:
        (N, C, h, w) crops.
    """
    if images.dim() != 4:
        raise ValueError(f'images must be (B, C, H, W); got {tuple(images.shape)}')
    n = centers_px.shape[0]
    b, c, height, width = images.shape
    out_h, out_w = out_hw
    if images.is_floating_point():
        coord_dtype = torch.promote_types(images.dtype, torch.float32)
        out_dtype = images.dtype
    else:
        coord_dtype = out_dtype = torch.float32
    if n == 0:
        return images.new_zeros((0, c, out_h, out_w), dtype=out_dtype)
    device = images.device
    affine = crop_to_image_affine(
        centers_px.to(device, coord_dtype), sizes_px.to(device, coord_dtype), out_hw, flip
    )
    # Crop pixel centres (u, v) -> image pixels (x, y) -> grid_sample's [-1, 1] (corners).
    v, u = torch.meshgrid(
        torch.arange(out_h, device=device, dtype=coord_dtype),
        torch.arange(out_w, device=device, dtype=coord_dtype),
        indexing='ij',
    )
    crop_pixels = torch.stack((u, v), dim=-1).reshape(1, -1, 2).expand(n, -1, -1)
    image_pixels = apply_affine(crop_pixels, affine)
    # Python-number scales (no tensor built from Python data inside a forward).
    grid = torch.stack(
        (
            (image_pixels[..., 0] + 0.5) * (2.0 / width) - 1.0,
            (image_pixels[..., 1] + 0.5) * (2.0 / height) - 1.0,
        ),
        dim=-1,
    ).reshape(n, out_h, out_w, 2)
    source = images.to(coord_dtype)

    if b == 1 or batch_index is None:
        # All crops from image 0: stack them along the height, (1, N*h, w, 2).
        stacked = F.grid_sample(
            source[:1], grid.reshape(1, n * out_h, out_w, 2), align_corners=False
        )
        crops = stacked.reshape(c, n, out_h, out_w).transpose(0, 1)
        return crops.to(out_dtype).contiguous()

    # Crop k sits in slot k of its own image's grid and the other images sample outside
    # (zeros): static shapes, nothing read back, at the cost of B grid_samples per crop.
    batch_index = batch_index.to(device=device, dtype=torch.long)
    slot = torch.arange(n, device=device)
    grids = torch.full((b, n, out_h, out_w, 2), _OUTSIDE, device=device, dtype=coord_dtype)
    grids[batch_index, slot] = grid
    stacked = F.grid_sample(source, grids.reshape(b, n * out_h, out_w, 2), align_corners=False)
    crops = stacked.reshape(b, c, n, out_h, out_w)[batch_index, :, slot]
    return crops.to(out_dtype).contiguous()


def _check_last_dim(tensor: torch.Tensor, size: int, name: str) -> None:
    if tensor.dim() == 0 or tensor.shape[-1] != size:
        raise ValueError(f'{name} must have shape (..., {size}); got {tuple(tensor.shape)}')


ANTIALIAS_TRIGGER = 1.1
"""Downscale ratio d above which HaMeR blurs before cropping (reference A.8, step 4)."""
GAUSSIAN_TRUNCATE = 4.0
"""Kernel radius in sigmas: int(4 sigma + 0.5), as scipy/skimage's gaussian filters."""


def antialias_sigmas(crop_sides_px: torch.Tensor, out_side_px: int) -> torch.Tensor:
    """HaMeR's blur before a downscaling crop: sigma = (d - 1) / 2 where d = side / out / 2.

    HaMeR (reference A.8, step 4) blurs when d > 1.1, i.e. when a crop is shrunk more than
    2.2 times; the blur removes the aliasing that bilinear sampling would otherwise keep.

    Args:
        crop_sides_px: (N,) square crop sides in image pixels.
        out_side_px: crop output side (256 for HaMeR).

    Returns:
        (N,) sigmas in image pixels; 0 where no blur is due.
    """
    ratio = crop_sides_px / out_side_px / 2.0
    return torch.where(ratio > ANTIALIAS_TRIGGER, (ratio - 1.0) / 2.0, torch.zeros_like(ratio))


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with edge replication (skimage.filters.gaussian's 'nearest').

    Args:
        images: (B, C, H, W) float images.
        sigma: standard deviation in pixels, > 0.

    Returns:
        (B, C, H, W) blurred images, same dtype.
    """
    if sigma <= 0:
        raise ValueError(f'sigma must be positive; got {sigma}')
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(images.dtype)
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode='replicate')
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    blurred = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(blurred, vertical, groups=channels)


def _blurred_bilinear_weights(
    positions_px: torch.Tensor, sigmas_px: torch.Tensor, in_size: int
) -> torch.Tensor:
    """Weights of one axis of "Gaussian blur with edge replication, then bilinear sampling".

    Row k of the result holds, for output sample k at image coordinate ``positions_px[k]``,
    the weight of every source pixel: the bilinear hat on the two neighbouring pixels of the
    *blurred* image (zero outside the image, cv2's constant border), each of which is a
    Gaussian-weighted sum of source pixels with the radius and edge replication of
    gaussian_blur. A source pixel past the border is the edge pixel, so the edge column collects
    the kernel's tail: 1 minus the kernel mass that lands inside (the kernel radius is far below
    half the image size, so only the nearer edge has a tail).

    Args:
        positions_px: (N, K) sample coordinates along the axis, image pixels.
        sigmas_px: (N,) blur sigmas, image pixels; 0 for no blur.
        in_size: image size along the axis.

    Returns:
        (N, K, in_size) weights.
    """
    dtype = positions_px.dtype
    blurred = sigmas_px > 0
    sigma = torch.where(blurred, sigmas_px, torch.ones_like(sigmas_px))[:, None, None, None]
    radius = torch.where(
        blurred, torch.floor(GAUSSIAN_TRUNCATE * sigmas_px + 0.5), torch.zeros_like(sigmas_px)
    )[:, None, None, None]
    low = torch.floor(positions_px)
    frac = positions_px - low
    neighbours = low[..., None] + torch.arange(2, device=low.device, dtype=dtype)  # (N, K, 2)
    hat = torch.stack((1.0 - frac, frac), dim=-1)
    hat = hat * ((neighbours >= 0) & (neighbours <= in_size - 1)).to(dtype)
    # Kernel mass: the taps |t| <= radius (radius < in_size, a static range covers them).
    taps = torch.arange(-(in_size - 1), in_size, device=low.device, dtype=dtype)
    unnormalised = torch.exp(-0.5 * (taps / sigma[:, 0, 0]) ** 2)  # (N, 2 in - 1)
    norm = (unnormalised * (taps.abs() <= radius[:, 0, 0]).to(dtype)).sum(-1)  # (N,)
    pixels = torch.arange(in_size, device=low.device, dtype=dtype)
    offsets = neighbours[..., None] - pixels  # (N, K, 2, in): tap t = j - i
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2) * (offsets.abs() <= radius).to(dtype)
    kernel = kernel / norm[:, None, None, None]
    # Edge replication: pixel 0 takes every tap landing at or left of it, the last pixel every
    # tap at or right of it; only the edge in the neighbour's half can have such a tail.
    inside_right = kernel[..., 1:].sum(-1)
    inside_left = kernel[..., :-1].sum(-1)
    left_half = neighbours <= (in_size - 1) / 2.0
    first = torch.where(left_half, 1.0 - inside_right, kernel[..., 0])
    last = torch.where(left_half, kernel[..., -1], 1.0 - inside_left)
    kernel = torch.cat((first[..., None], kernel[..., 1:-1], last[..., None]), dim=-1)
    return (hat[..., None] * kernel).sum(dim=-2)


def crop_images_antialiased(
    images: torch.Tensor,
    centers_px: torch.Tensor,
    sides_px: torch.Tensor,
    out_side_px: int,
    batch_index: torch.Tensor | None = None,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Square crops as crop_images, blurred first where they shrink a lot (HaMeR's anti-alias).

    HaMeR blurs the whole image with sigma antialias_sigmas(side) before each such crop and
    then warps it. An axis-aligned crop of a separably blurred image is separable, so each crop
    here is ``W_y I W_x^T``: two small weight matrices per crop (blur and bilinear sampling of
    one axis, :func:`_blurred_bilinear_weights`) applied to the image with two batched matrix
    products, for all crops at once. No loop over crops, no blurred copy of the image, no value
    read back from the device: shapes are static. Crops that need no blur come from
    crop_images unchanged.

    Cost: about ``2 * 3 * H * W * out_side_px`` multiply-adds per crop (the first product),
    whether or not it needs the blur (static shapes); set DualPathConfig.hand_antialias False
    to skip it.

    Args:
        images: (B, C, H, W) float images.
        centers_px: (N, 2) crop centres, image pixels.
        sides_px: (N,) square crop sides, image pixels.
        out_side_px: output side.
        batch_index: (N,) image of each crop (None: image 0).
        flip: (N,) bool, flip horizontally (None: no flips).

    Returns:
        (N, C, out_side_px, out_side_px) crops.
    """
    out_hw = (out_side_px, out_side_px)
    plain = crop_images(images, centers_px, sides_px, out_hw, batch_index, flip)
    num_crops = centers_px.shape[0]
    if num_crops == 0:
        return plain
    batch, channels, height, width = images.shape
    device, dtype = images.device, torch.promote_types(images.dtype, torch.float32)
    sides = sides_px.to(device, dtype)
    affine = crop_to_image_affine(centers_px.to(device, dtype), sides, out_hw, flip)
    steps = torch.arange(out_side_px, device=device, dtype=dtype)
    x_px = affine[:, 0, :1] * steps + affine[:, 0, 2:]  # (N, out): the affine is axis-aligned
    y_px = affine[:, 1, 1:2] * steps + affine[:, 1, 2:]
    sigmas = antialias_sigmas(sides, out_side_px)
    weights_x = _blurred_bilinear_weights(x_px, sigmas, width)  # (N, out, W)
    weights_y = _blurred_bilinear_weights(y_px, sigmas, height)  # (N, out, H)
    # Columns first, every crop from every image in one product: (B, C*H, W) @ (W, N*out).
    source = images.to(dtype).reshape(batch, channels * height, width)
    columns = source @ weights_x.reshape(num_crops * out_side_px, width).T
    columns = columns.reshape(batch, channels, height, num_crops, out_side_px)
    if batch_index is None:
        index = torch.zeros(num_crops, dtype=torch.long, device=device)
    else:
        index = batch_index.to(device=device, dtype=torch.long)
    own = columns.permute(0, 3, 1, 2, 4)[index, torch.arange(num_crops, device=device)]
    blurred = weights_y[:, None] @ own  # (N, 1, out, H) @ (N, C, H, out)
    use_blur = (sigmas > 0)[:, None, None, None]
    return torch.where(use_blur, blurred.to(plain.dtype), plain)
