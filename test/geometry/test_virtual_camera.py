"""Tests for hmr_ros.geometry.virtual_camera (crop camera -> real camera)."""

import pytest
import torch

from hmr_ros.geometry.cameras import (
    cam_crop_to_full,
    intrinsics_matrix,
    project_points,
    weak_perspective_to_translation,
)
from hmr_ros.geometry.crops import crop_to_image_affine
from hmr_ros.geometry.virtual_camera import crop_camera_in_image, virtual_to_real_camera

# SMPLer-X's virtual camera in 512 x 384 crop pixels: f = 5000 * 2, principal point (192, 256).
SMPLERX_CROP_K = torch.tensor(
    [[10000.0, 0.0, 192.0], [0.0, 10000.0, 256.0], [0.0, 0.0, 1.0]], dtype=torch.float64
)
REAL_K = torch.tensor(
    [[[900.0, 0.0, 630.0], [0.0, 880.0, 350.0], [0.0, 0.0, 1.0]]], dtype=torch.float64
)


def _person_crop(center=(400.0, 300.0), width=300.0):
    centers = torch.tensor([center], dtype=torch.float64)
    sizes = torch.tensor([[width, width / 0.75]], dtype=torch.float64)
    return crop_to_image_affine(centers, sizes, (512, 384))


def test_smplerx_camera_in_image_pixels():
    """f_v = 10000 * 300 / 384 = 7812.5 px (= 5000 / 192 * box width, SMPLer-X's demo) and
    the principal point is the box centre (400, 300)."""
    k_v = crop_camera_in_image(SMPLERX_CROP_K, _person_crop())
    expected = torch.tensor([[[7812.5, 0.0, 400.0], [0.0, 7812.5, 300.0], [0.0, 0.0, 1.0]]])
    torch.testing.assert_close(k_v, expected.double())


def test_point_on_the_virtual_axis_lands_on_the_box_centre_at_scaled_depth():
    """(0, 0, 40 m) in the virtual camera projects to the box centre; with f = (900 + 880) / 2
    = 890 px the real depth is 40 * 890 / 7812.5 = 4.5568 m."""
    k_v = crop_camera_in_image(SMPLERX_CROP_K, _person_crop())
    point = torch.tensor([[0.0, 0.0, 40.0]], dtype=torch.float64)
    real = virtual_to_real_camera(point, k_v, REAL_K)
    torch.testing.assert_close(real[0, 2], torch.tensor(40.0 * 890.0 / 7812.5).double())
    pixel = project_points(real[:, None], REAL_K)[0, 0]
    torch.testing.assert_close(pixel, torch.tensor([400.0, 300.0], dtype=torch.float64))


def test_any_point_keeps_its_pixel_and_image_scale():
    """An off-axis point projects to the same pixel in both cameras, and a 10 cm offset around
    it spans the same number of pixels (up to the perspective change of the offset itself)."""
    k_v = crop_camera_in_image(SMPLERX_CROP_K, _person_crop((250.0, 420.0), 180.0))
    point = torch.tensor([[0.3, -0.2, 35.0]], dtype=torch.float64)
    real = virtual_to_real_camera(point, k_v, REAL_K)
    torch.testing.assert_close(
        project_points(real[:, None], REAL_K), project_points(point[:, None], k_v)
    )
    offset = torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)
    span_v = project_points((point + offset)[:, None], k_v) - project_points(point[:, None], k_v)
    span = project_points((real + offset)[:, None], REAL_K) - project_points(real[:, None], REAL_K)
    ratio = (REAL_K[0, 0, 0] / REAL_K[0, 1, 1]).item()  # fx != fy: the scale uses their mean
    torch.testing.assert_close(span[..., 0], span_v[..., 0] * 2 * ratio / (1 + ratio))


def test_equals_hamer_cam_crop_to_full_for_a_weak_perspective_crop():
    """HaMeR's crop camera (f = 5000, principal point (128, 128) on the 256 crop) placed by a
    square box reproduces geometry.cameras.cam_crop_to_full."""
    cam = torch.tensor([[0.9, 0.05, -0.1], [1.3, -0.2, 0.15]], dtype=torch.float64)
    centers = torch.tensor([[500.0, 200.0], [120.0, 600.0]], dtype=torch.float64)
    sides = torch.tensor([180.0, 90.0], dtype=torch.float64)
    crop_k = intrinsics_matrix(
        torch.full((1, 2), 5000.0, dtype=torch.float64),
        torch.full((1, 2), 128.0, dtype=torch.float64),
    )[0]
    k_v = crop_camera_in_image(crop_k, crop_to_image_affine(centers, sides, (256, 256)))
    real = virtual_to_real_camera(
        weak_perspective_to_translation(cam), k_v, REAL_K.expand(2, 3, 3)
    )
    focal = REAL_K[0, :2, :2].diagonal().expand(2, 2)
    expected = cam_crop_to_full(cam, centers, sides, focal, REAL_K[0, :2, 2].expand(2, 2))
    torch.testing.assert_close(real, expected)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match='crop_to_image'):
        crop_camera_in_image(SMPLERX_CROP_K, torch.zeros(2, 3))
    with pytest.raises(ValueError, match='points_virtual'):
        virtual_to_real_camera(torch.zeros(3), torch.eye(3)[None], REAL_K)
