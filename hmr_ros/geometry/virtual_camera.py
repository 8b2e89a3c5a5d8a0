"""From a crop's virtual camera to the real camera: metric positions with the real intrinsics.

SMPLer-X places the body in a virtual pinhole camera of its person crop (f = 5000 px on the
256 x 192 ViT image, principal point at the crop centre; docs/model-reference.md, B.5). Its
translation is only meaningful together with that camera: the network sees a crop, not the
camera that took the image. HaMeR's ``cam_crop_to_full`` (geometry/cameras.py) solves the same
problem for a weak-perspective camera; this module does it for any crop camera given as a
matrix, which covers SMPLer-X's full-perspective translation.

1. ``crop_camera_in_image``: the crop is an axis-aligned, scaled cut of the image (affine map
   crop pixels -> image pixels, A), so the virtual camera expressed in image pixels is
   K_v = [A; 0 0 1] K_crop: focal f_v = 5000 box_w / 192 and principal point at the crop
   centre for SMPLer-X (its demo renders with exactly these numbers). No rotation is involved:
   the virtual camera's axes are the real camera's axes.
2. ``virtual_to_real_camera``: a reference point P_v = (X, Y, Z) of the virtual camera (the
   pelvis) is moved to the real camera so that
   a. it projects to the same image pixel: the real ray through (u, v) = pi(K_v P_v);
   b. the image scale around it is the same: a length L at depth Z spans L f_v / Z pixels in
      the virtual camera, so the real depth is Z_r = Z f / f_v (f, f_v the mean focal lengths).
   Then P_r = Z_r K^-1 (u, v, 1). Positions relative to the reference point (the rest of the
   mesh) are kept; only their slight perspective differs between the two cameras.

Rotations need no conversion: both cameras share their axes (OpenCV optical frame, x right,
y down, z forward).
"""

from __future__ import annotations

import torch

__all__ = ['crop_camera_in_image', 'virtual_to_real_camera']


def _check_intrinsics(intrinsics: torch.Tensor, name: str) -> None:
    if intrinsics.dim() < 2 or tuple(intrinsics.shape[-2:]) != (3, 3):
        raise ValueError(f'{name} must have shape (..., 3, 3); got {tuple(intrinsics.shape)}')


def crop_camera_in_image(
    crop_intrinsics: torch.Tensor, crop_to_image: torch.Tensor
) -> torch.Tensor:
    """A crop's camera matrix expressed in pixels of the image the crop was cut from.

    Args:
        crop_intrinsics: (3, 3) or (B, 3, 3) camera matrix in crop pixels (SMPLer-X:
            whole_body.virtual_crop_intrinsics()).
        crop_to_image: (B, 2, 3) affine maps crop pixels -> image pixels
            (geometry.crops.crop_to_image_affine), without flips.

    Returns:
        (B, 3, 3) camera matrices K_v in image pixels.

    Raises:
        ValueError: wrong shapes.
    """
    _check_intrinsics(crop_intrinsics, 'crop_intrinsics')
    if crop_to_image.dim() != 3 or tuple(crop_to_image.shape[-2:]) != (2, 3):
        raise ValueError(f'crop_to_image must be (B, 2, 3); got {tuple(crop_to_image.shape)}')
    corner = crop_to_image[:, :1]  # (B, 1, 3); the bottom row (0, 0, 1) without a host copy
    bottom = torch.cat((torch.zeros_like(corner[..., :2]), torch.ones_like(corner[..., 2:])), -1)
    affine = torch.cat((crop_to_image, bottom), dim=-2)
    return affine @ crop_intrinsics.to(affine)


def virtual_to_real_camera(
    points_virtual: torch.Tensor, virtual_intrinsics: torch.Tensor, intrinsics: torch.Tensor
) -> torch.Tensor:
    """Move reference points from a virtual camera to the real one (module docstring, step 2).

    Args:
        points_virtual: (B, 3) metres in the virtual camera, z > 0.
        virtual_intrinsics: (B, 3, 3) virtual camera in image pixels (crop_camera_in_image).
        intrinsics: (B, 3, 3) real camera matrices K of the same image.

    Returns:
        (B, 3) metres in the real camera optical frame: projects with K to the pixel where the
        virtual camera projects points_virtual, at depth z f / f_v.

    Raises:
        ValueError: wrong shapes.
    """
    if points_virtual.dim() != 2 or points_virtual.shape[-1] != 3:
        raise ValueError(f'points_virtual must be (B, 3); got {tuple(points_virtual.shape)}')
    _check_intrinsics(virtual_intrinsics, 'virtual_intrinsics')
    _check_intrinsics(intrinsics, 'intrinsics')
    depth_v = points_virtual[:, 2:]
    pixel = (virtual_intrinsics @ points_virtual[..., None])[..., 0] / depth_v  # (u, v, 1)
    focal_v = virtual_intrinsics.diagonal(dim1=-2, dim2=-1)[:, :2]
    focal = intrinsics.diagonal(dim1=-2, dim2=-1)[:, :2].to(focal_v)
    depth = depth_v * (focal / focal_v).mean(dim=-1, keepdim=True)
    # solve_ex: no host check of the factorisation (K is invertible: f > 0).
    ray = torch.linalg.solve_ex(intrinsics.to(pixel), pixel[..., None]).result[..., 0]
    return ray * depth
