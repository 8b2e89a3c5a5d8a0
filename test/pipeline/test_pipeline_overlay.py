"""The overlay (hmr_ros/pipeline/overlay.py): projection and drawing, pure numpy/OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hmr_ros.pipeline.frames import CameraIntrinsics
from hmr_ros.pipeline.overlay import (
    MIN_DEPTH_M,
    OverlayPerson,
    draw_box,
    draw_mesh,
    draw_skeleton,
    project_points,
    render_overlay,
)

WIDTH, HEIGHT = 640, 480
CAMERA = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=WIDTH, height=HEIGHT)
RED = (255, 0, 0)
NO_3D = np.zeros((0, 3))
NO_2D = np.zeros((0, 2))


def _image(value: int = 40) -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), value, dtype=np.uint8)


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(N, 2) (row, column) of every pixel that changed."""
    return np.argwhere(np.any(before != after, axis=2))


def test_known_point_lands_on_the_expected_pixel() -> None:
    """(0.5, -0.24, 2) m: u = 500 * 0.25 + 320 = 445, v = 500 * -0.12 + 240 = 180."""
    projected = project_points(np.array([[0.5, -0.24, 2.0]]), CAMERA)
    assert projected.pixels[0] == pytest.approx([445.0, 180.0])
    assert projected.in_front.tolist() == [True]


def test_points_behind_or_at_the_camera_or_nan_are_not_in_front() -> None:
    points = np.array([[0, 0, -1.0], [0, 0, MIN_DEPTH_M / 2], [np.nan, 0, 2], [0, 0, 1.0]])
    assert project_points(points, CAMERA).in_front.tolist() == [False, False, False, True]


def test_plumb_bob_distortion_matches_the_formula() -> None:
    """k1 = 0.1 only: x' = x / z, r^2 = x'^2 + y'^2, u = fx * x' * (1 + k1 r^2) + cx."""
    camera = CameraIntrinsics(
        500.0, 500.0, 320.0, 240.0, WIDTH, HEIGHT, 'plumb_bob', (0.1, 0.0, 0.0, 0.0, 0.0)
    )
    x, y = 0.3, -0.2
    r2 = x * x + y * y
    expected = (500 * x * (1 + 0.1 * r2) + 320, 500 * y * (1 + 0.1 * r2) + 240)
    projected = project_points(np.array([[x * 2, y * 2, 2.0]]), camera)
    assert projected.pixels[0] == pytest.approx(expected)


def test_unknown_distortion_model_is_refused_with_the_fix() -> None:
    camera = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, WIDTH, HEIGHT, 'weird', (0.1,))
    with pytest.raises(ValueError, match='rectified'):
        project_points(np.array([[0.0, 0.0, 2.0]]), camera)


def test_projected_joint_is_drawn_at_its_pixel_and_nowhere_far() -> None:
    """One joint at pixel (445, 180): its dot covers that pixel and stays within 4 px of it."""
    image = _image()
    person = OverlayPerson('a', RED, np.zeros(4), NO_2D, np.array([[0.5, -0.24, 2.0]]), NO_3D)
    out = render_overlay(image, [person], [-1], np.zeros((0, 3), int), CAMERA)
    assert tuple(out[180, 445]) == RED
    changed = _changed(image, out)
    assert np.abs(changed - [180, 445]).max() <= 4
    assert np.array_equal(image, _image())  # the source image is untouched


def test_skeleton_draws_bones_between_parent_and_child() -> None:
    image = _image()
    before = image.copy()
    keypoints = np.array([[100.0, 100.0], [200.0, 100.0]])
    draw_skeleton(image, keypoints, [-1, 0], RED)
    assert tuple(image[100, 150]) == RED  # middle of the bone
    rows = _changed(before, image)[:, 0]
    assert rows.min() >= 100 - 4 and rows.max() <= 100 + 4


def _triangle(z: float = 2.0, front: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A triangle at depth z; edges e1 = +y, e2 = +x give normal e1 x e2 = -z: facing us."""
    vertices = np.array([[0.0, 0.0, z], [0.0, 0.2 * z, z], [0.2 * z, 0.0, z]])
    faces = np.array([[0, 1, 2]] if front else [[0, 2, 1]])
    return vertices, faces


def _inside_triangle(pixels_rc: np.ndarray, corners_uv: np.ndarray, tolerance_px: float) -> bool:
    contour = corners_uv.astype(np.float32).reshape(-1, 1, 2)
    return all(
        cv2.pointPolygonTest(contour, (float(c), float(r)), True) >= -tolerance_px
        for r, c in pixels_rc
    )


@pytest.mark.parametrize('style', ['filled', 'wireframe'])
def test_mesh_changes_pixels_only_inside_the_projected_triangle(style: str) -> None:
    """Corners project to (320, 240), (320, 340), (420, 240): a 100 px right triangle."""
    vertices, faces = _triangle()
    image = _image()
    before = image.copy()
    draw_mesh(image, vertices, faces, CAMERA, RED, style, alpha=1.0)
    changed = _changed(before, image)
    corners = project_points(vertices, CAMERA).pixels
    assert corners.tolist() == [[320, 240], [320, 340], [420, 240]]
    assert len(changed) > (250 if style == 'wireframe' else 4000)
    assert _inside_triangle(changed, corners, tolerance_px=1.0)


def test_filled_mesh_is_shaded_and_blended() -> None:
    """Frontal face at the image centre: cosine 1 at the centre, so shade ~ 1 and, with
    alpha 0.5, a pixel becomes about (40 + 255) / 2 = 147 in red, 40 / 2 = 20 in green."""
    vertices = np.array([[-0.1, -0.1, 2.0], [-0.1, 0.1, 2.0], [0.1, -0.1, 2.0]])
    image = _image()
    draw_mesh(image, vertices, np.array([[0, 1, 2]]), CAMERA, RED, 'filled', alpha=0.5)
    r, g, _ = image[230, 310].tolist()
    assert r == pytest.approx(147, abs=2)
    assert g == 20


def test_back_faces_and_zero_alpha_draw_nothing() -> None:
    vertices, faces = _triangle(front=False)
    image = _image()
    draw_mesh(image, vertices, faces, CAMERA, RED, 'filled', alpha=1.0)
    vertices, faces = _triangle()
    draw_mesh(image, vertices, faces, CAMERA, RED, 'filled', alpha=0.0)
    draw_mesh(image, vertices, faces, CAMERA, RED, 'none', alpha=1.0)
    assert np.array_equal(image, _image())


def test_nearer_face_hides_the_farther_one() -> None:
    """Both faces cover pixel (330, 250); the near one is frontal (shade 1.0 -> 255 red), the
    far one is tilted 60 degrees (shade at most 0.35 + 0.65 * 0.5 = 0.675 -> 172)."""
    near = np.array([[0.0, 0.0, 1.0], [0.0, 0.2, 1.0], [0.2, 0.0, 1.0]])
    tilt = np.deg2rad(60.0)
    # Far face in a plane through (0, 0, 3) whose normal is tilted 60 degrees about y.
    e1 = np.array([0.0, 1.0, 0.0])
    e2 = np.array([np.cos(tilt), 0.0, np.sin(tilt)])
    far = np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0] + 0.6 * e1, [0.0, 0.0, 3.0] + 0.6 * e2])
    far -= [0.1, 0.1, 0.0]
    vertices = np.concatenate([far, near])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    for order in (faces, faces[::-1]):
        image = _image(0)
        draw_mesh(image, vertices, order, CAMERA, RED, 'filled', alpha=1.0)
        assert image[250, 330, 0] >= 250


def test_mesh_with_bad_indices_is_refused() -> None:
    vertices, _ = _triangle()
    with pytest.raises(ValueError, match='topology'):
        draw_mesh(_image(), vertices, np.array([[0, 1, 3]]), CAMERA, RED)


def test_box_outline_and_label() -> None:
    image = _image()
    before = image.copy()
    draw_box(image, np.array([100.0, 120.0, 200.0, 300.0]), RED, 'id 7')
    assert tuple(image[200, 100]) == RED  # left edge
    assert tuple(image[200, 150]) == tuple(before[200, 150])  # inside stays
    changed = _changed(before, image)
    # Label above the top edge; everything else within the outline's thickness.
    assert changed[:, 0].min() < 120
    assert changed[:, 1].min() >= 99 and changed[:, 0].max() <= 301


def test_empty_box_is_not_drawn() -> None:
    image = _image()
    draw_box(image, np.array([10.0, 10.0, 10.0, 50.0]), RED, 'x')
    assert np.array_equal(image, _image())


def test_without_intrinsics_only_2d_data_is_drawn() -> None:
    """Persons in another frame than the camera: the mesh is skipped, keypoints_2d are drawn."""
    vertices, faces = _triangle()
    person = OverlayPerson(
        '1', RED, np.array([0.0, 0.0, -1.0, -1.0]), np.array([[50.0, 60.0]]), NO_3D, vertices
    )
    image = _image()
    out = render_overlay(image, [person], [-1], faces, None)
    changed = _changed(image, out)
    assert tuple(out[60, 50]) == RED
    assert np.abs(changed - [60, 50]).max() <= 4


def test_overlay_refuses_non_rgb8_images() -> None:
    with pytest.raises(ValueError, match='uint8 RGB'):
        render_overlay(np.zeros((4, 4), np.uint8), [], [], np.zeros((0, 3), int), CAMERA)
