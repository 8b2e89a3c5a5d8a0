"""Tests for hmr_ros.geometry.cameras: crop camera, crop-to-full with real intrinsics."""

import pytest
import torch

from hmr_ros.geometry.cameras import (
    HAMER_CROP_SIZE_PX,
    HAMER_FOCAL_LENGTH_PX,
    cam_crop_to_full,
    hamer_demo_intrinsics,
    intrinsics_matrix,
    project_points,
    weak_perspective_to_translation,
)

DTYPE = torch.float64


def test_weak_perspective_to_translation_hand_computed():
    """s = 0.5: tz = 2 * 5000 / (256 * 0.5) = 78.125 m; tx, ty pass through."""
    cam = torch.tensor([[0.5, 0.1, -0.2], [2.0, 0.0, 0.0]], dtype=DTYPE)
    t = weak_perspective_to_translation(cam, HAMER_FOCAL_LENGTH_PX, HAMER_CROP_SIZE_PX)
    expected = torch.tensor([[0.1, -0.2, 78.125], [0.0, 0.0, 19.53125]], dtype=DTYPE)
    torch.testing.assert_close(t, expected)


def test_crop_translation_projects_like_weak_perspective():
    """In the virtual crop camera (f = 5000, centre 128) a point X lands at
    128 + 128 s (X + t), the weak-perspective crop projection, when X is small against tz."""
    cam = torch.tensor([[0.8, 0.05, -0.03]], dtype=DTYPE)
    t = weak_perspective_to_translation(cam)
    k = intrinsics_matrix(
        torch.tensor([[5000.0, 5000.0]], dtype=DTYPE), torch.tensor([[128.0, 128.0]], dtype=DTYPE)
    )
    root = project_points(t[:, None, :], k)
    expected = 128.0 + 128.0 * 0.8 * torch.tensor([[[0.05, -0.03]]], dtype=DTYPE)
    torch.testing.assert_close(root, expected)


def test_cam_crop_to_full_matches_hamer_formula_with_demo_intrinsics():
    """With f = 5000/256 max(W, H) and principal point (W/2, H/2) the general formula equals
    HaMeR's: tz = 2f/(b s), tx' = 2 (cx - W/2)/(b s) + tx, ty' = 2 (cy - H/2)/(b s) + ty."""
    cam = torch.tensor([[0.9, 0.02, -0.05], [1.3, -0.1, 0.07]], dtype=DTYPE)
    center = torch.tensor([[400.0, 150.0], [50.0, 600.0]], dtype=DTYPE)
    size = torch.tensor([120.0, 300.0], dtype=DTYPE)
    image_wh = torch.tensor([[640.0, 480.0], [1280.0, 720.0]], dtype=DTYPE)
    focal, principal = hamer_demo_intrinsics(image_wh)
    torch.testing.assert_close(
        focal[:, 0], 5000.0 / 256.0 * torch.tensor([640.0, 1280.0], dtype=DTYPE)
    )
    got = cam_crop_to_full(cam, center, size, focal, principal)
    bs = size * cam[:, 0] + 1e-9
    f = focal[:, 0]
    expected = torch.stack(
        (
            2 * (center[:, 0] - image_wh[:, 0] / 2) / bs + cam[:, 1],
            2 * (center[:, 1] - image_wh[:, 1] / 2) / bs + cam[:, 2],
            2 * f / bs,
        ),
        dim=-1,
    )
    torch.testing.assert_close(got, expected)


def test_cam_crop_to_full_projects_to_box_offset_with_real_intrinsics():
    """Hand computation with fx = 900, fy = 910, principal point (330, 250), box centre
    (500, 200), side b = 160, cam (s, tx, ty) = (0.75, 0.1, -0.2):
    the root must project to (cx + b s tx / 2, cy + b s ty / 2) = (506, 188), and the depth
    is tz = (fx + fy) / (b s) = 1810 / 120 = 15.0833... m."""
    cam = torch.tensor([[0.75, 0.1, -0.2]], dtype=DTYPE)
    center = torch.tensor([[500.0, 200.0]], dtype=DTYPE)
    size = torch.tensor([160.0], dtype=DTYPE)
    focal = torch.tensor([[900.0, 910.0]], dtype=DTYPE)
    principal = torch.tensor([[330.0, 250.0]], dtype=DTYPE)
    t = cam_crop_to_full(cam, center, size, focal, principal)
    torch.testing.assert_close(t[0, 2], torch.tensor(1810.0 / 120.0, dtype=DTYPE))
    uv = project_points(t[:, None, :], intrinsics_matrix(focal, principal))
    torch.testing.assert_close(uv, torch.tensor([[[506.0, 188.0]]], dtype=DTYPE))


def test_cam_crop_to_full_scale_matches_crop_scale():
    """A 1 cm offset from the root spans b s / 2 * 0.01 pixels in the image (crop scale)."""
    cam = torch.tensor([[0.6, 0.0, 0.0]], dtype=DTYPE)
    center = torch.tensor([[320.0, 240.0]], dtype=DTYPE)
    size = torch.tensor([200.0], dtype=DTYPE)
    focal = torch.tensor([[600.0, 600.0]], dtype=DTYPE)
    principal = torch.tensor([[320.0, 240.0]], dtype=DTYPE)
    t = cam_crop_to_full(cam, center, size, focal, principal)
    pts = t[:, None, :] + torch.tensor([[[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]]], dtype=DTYPE)
    uv = project_points(pts, intrinsics_matrix(focal, principal))
    torch.testing.assert_close(uv[0, 1, 0] - uv[0, 0, 0], torch.tensor(0.6, dtype=DTYPE))


def test_project_points_hand_computed_with_skew():
    """K = [[500, 2, 320], [0, 510, 240], [0, 0, 1]], X = (0.2, -0.1, 2):
    u = (500 * 0.2 + 2 * -0.1) / 2 + 320 = 369.9, v = 510 * -0.1 / 2 + 240 = 214.5."""
    k = torch.tensor([[[500.0, 2.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]]], dtype=DTYPE)
    uv = project_points(torch.tensor([[[0.2, -0.1, 2.0]]], dtype=DTYPE), k)
    torch.testing.assert_close(uv, torch.tensor([[[369.9, 214.5]]], dtype=DTYPE))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match='s, tx, ty'):
        weak_perspective_to_translation(torch.zeros(2, 2))
    with pytest.raises(ValueError, match='intrinsics'):
        project_points(torch.zeros(1, 4, 3), torch.zeros(1, 4, 4))
