"""Crop cameras and their conversion to a real camera (HaMeR / SMPLer-X conventions).

Both base models predict a weak-perspective camera (s, tx, ty) for a square crop: a 3D point
X (metres, model frame) lands at normalised crop coordinates s (X_xy + (tx, ty)) in [-1, 1]
(docs/model-reference.md, A.7). Seen through a virtual pinhole camera of focal f_v pixels
on the S-pixel crop (HaMeR: f_v = 5000, S = 256) this is the translation
(tx, ty, 2 f_v / (S s)).

``cam_crop_to_full`` generalises HaMeR's ``cam_crop_to_full`` (which used f = 5000/256 max(W, H)
and the image centre) to real intrinsics. For a crop of side b pixels centred at c in the
image, the crop's weak-perspective projection is u = c + (b/2) s (X + t). Choosing

    tz = 2 f / (b s),          f = (fx + fy) / 2,
    tx' = (cx - px + (b/2) s tx) tz / fx,
    ty' = (cy - py + (b/2) s ty) tz / fy,

makes the pinhole projection of the root, fx tx'/tz + px, land exactly where the crop camera
put it, and the image scale fx/tz match the crop's b s/2. With fx = fy = f and (px, py) the
image centre this is HaMeR's formula. Frames are OpenCV optical: x right, y down, z forward.
"""

import torch

HAMER_FOCAL_LENGTH_PX = 5000.0
"""Virtual focal length of both base models' crop cameras (EXTRA.FOCAL_LENGTH)."""

HAMER_CROP_SIZE_PX = 256
"""Side of HaMeR's square hand crop (MODEL.IMAGE_SIZE)."""

_EPS = 1e-9
"""Added to b s as HaMeR does, so that s = 0 gives a huge but finite depth."""


def weak_perspective_to_translation(
    cam: torch.Tensor,
    focal_px: float | torch.Tensor = HAMER_FOCAL_LENGTH_PX,
    crop_size_px: float | torch.Tensor = HAMER_CROP_SIZE_PX,
) -> torch.Tensor:
    """Translation in the virtual crop camera: (tx, ty, 2 f / (S s)).

    Args:
        cam: (B, 3) weak-perspective camera (s, tx, ty), normalised crop units.
        focal_px: virtual focal length f in pixels (scalar or (B,)).
        crop_size_px: crop side S in pixels (scalar or (B,)).

    Returns:
        (B, 3) translation in metres, crop camera optical frame.
    """
    _check_cam(cam)
    s, tx, ty = cam.unbind(-1)
    tz = 2.0 * focal_px / (crop_size_px * s + _EPS)
    return torch.stack((tx, ty, tz), dim=-1)


def cam_crop_to_full(
    cam: torch.Tensor,
    box_center_px: torch.Tensor,
    box_size_px: torch.Tensor,
    focal_px: torch.Tensor,
    principal_point_px: torch.Tensor,
) -> torch.Tensor:
    """Root translation in the real camera from a crop's weak-perspective camera.

    See the module docstring for the derivation: the root then projects (with the real
    intrinsics) to box_center + (b/2) s (tx, ty), exactly where the crop camera put it.

    Args:
        cam: (B, 3) (s, tx, ty) predicted for the square crop.
        box_center_px: (B, 2) crop centre (cx, cy) in image pixels.
        box_size_px: (B,) crop side b in image pixels.
        focal_px: (B, 2) real focal lengths (fx, fy) in pixels.
        principal_point_px: (B, 2) real principal point (px, py) in pixels.

    Returns:
        (B, 3) translation in metres, camera optical frame.
    """
    _check_cam(cam)
    s, tx, ty = cam.unbind(-1)
    bs = box_size_px * s + _EPS
    fx, fy = focal_px.unbind(-1)
    tz = (fx + fy) / bs
    offset = box_center_px - principal_point_px
    tx_full = (offset[..., 0] + 0.5 * bs * tx) * tz / fx
    ty_full = (offset[..., 1] + 0.5 * bs * ty) * tz / fy
    return torch.stack((tx_full, ty_full, tz), dim=-1)


def project_points(points_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pinhole projection with a camera matrix K.

    Args:
        points_cam: (B, N, 3) points in the camera optical frame, z > 0.
        intrinsics: (B, 3, 3) camera matrices K (fx, skew, px; 0, fy, py; 0, 0, 1).

    Returns:
        (B, N, 2) pixel coordinates (u, v).
    """
    if points_cam.shape[-1] != 3 or intrinsics.shape[-2:] != (3, 3):
        raise ValueError(
            f'expected points_cam (B, N, 3) and intrinsics (B, 3, 3); got '
            f'{tuple(points_cam.shape)} and {tuple(intrinsics.shape)}'
        )
    homogeneous = points_cam @ intrinsics.transpose(-1, -2)
    return homogeneous[..., :2] / homogeneous[..., 2:]


def intrinsics_matrix(focal_px: torch.Tensor, principal_point_px: torch.Tensor) -> torch.Tensor:
    """Camera matrices K from focal lengths and principal points (no skew).

    Args:
        focal_px: (B, 2) (fx, fy).
        principal_point_px: (B, 2) (px, py).

    Returns:
        (B, 3, 3) K.
    """
    fx, fy = focal_px.unbind(-1)
    px, py = principal_point_px.unbind(-1)
    zero = torch.zeros_like(fx)
    one = torch.ones_like(fx)
    rows = (
        torch.stack((fx, zero, px), dim=-1),
        torch.stack((zero, fy, py), dim=-1),
        torch.stack((zero, zero, one), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def hamer_demo_intrinsics(
    image_wh: torch.Tensor,
    focal_length_px: float = HAMER_FOCAL_LENGTH_PX,
    crop_size_px: float = HAMER_CROP_SIZE_PX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The virtual full-image camera of HaMeR's demo, for images without calibration.

    f = focal_length / crop_size * max(W, H) on both axes, principal point (W/2, H/2).

    Args:
        image_wh: (B, 2) image (W, H) in pixels.
        focal_length_px: virtual crop focal length (5000).
        crop_size_px: crop side the focal length refers to (256).

    Returns:
        focal_px (B, 2) and principal_point_px (B, 2).
    """
    f = focal_length_px / crop_size_px * image_wh.amax(dim=-1)
    return torch.stack((f, f), dim=-1), image_wh / 2.0


def _check_cam(cam: torch.Tensor) -> None:
    if cam.shape[-1] != 3:
        raise ValueError(f'cam must be (..., 3) as (s, tx, ty); got {tuple(cam.shape)}')


ASSUMED_FOCAL_PER_MAX_SIDE = 1.0
"""Focal length assumed for an uncalibrated image, in units of its longer side."""


def assumed_intrinsics(width: int, height: int) -> tuple[float, float, float, float]:
    """Pinhole intrinsics for an image without calibration: ``(fx, fy, cx, cy)`` in pixels.

    fx = fy = max(W, H) (a horizontal field of view of about 53 degrees for a landscape image,
    typical of webcams) and the principal point at the image centre ((W - 1) / 2, (H - 1) / 2).
    Metric depth scales with the focal length: callers must say they assumed it.
    """
    focal = ASSUMED_FOCAL_PER_MAX_SIDE * max(width, height)
    return focal, focal, (width - 1) / 2.0, (height - 1) / 2.0
