"""Persons drawn onto a camera image with numpy and OpenCV: the one overlay of hmr_ros.

Used by ``hmr-ros infer`` (the overlay PNGs) and by the ROS ``debug/image``
(docs/ros-interface.md); it lives in the pipeline layer so both can import it without ROS.

Pure functions, no ROS types: project camera-frame points with the camera's intrinsics
(``hmr_ros.pipeline.frames.CameraIntrinsics``, distortion included), then draw boxes, id labels,
the 2D skeleton and the mesh, as translucent shaded triangles or as a wireframe, onto an RGB
``uint8`` image. ``render_overlay`` copies the image once and draws on the copy; the ``draw_*``
functions draw in place on the array they are given.

Conventions: points are metres in the camera optical frame (x right, y down, z forward); pixels
are (u, v) in the convention of the camera matrix K (ROS CameraInfo and OpenCV): integer
coordinates are pixel centres, so (u, v) = (j, i) is the centre of row i, column j. Mesh faces are
counter-clockwise seen from outside (MeshTopology.msg), which is how back faces are culled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import cv2
import numpy as np

from hmr_ros.pipeline.frames import CameraIntrinsics

MeshStyle = Literal['filled', 'wireframe', 'none']
MESH_STYLES: tuple[MeshStyle, ...] = ('filled', 'wireframe', 'none')

MIN_DEPTH_M = 0.05
"""Points closer to the camera plane than this are not projected (and faces touching them are
not drawn): near zero depth the projection explodes."""

# OpenCV's fixed-point drawing: 4 fractional bits keep sub-pixel vertex positions.
_SHIFT_BITS = 4
_SHIFT_SCALE = float(1 << _SHIFT_BITS)
# Shading: ambient share plus a Lambert term for light coming from the camera.
_AMBIENT = 0.35
_DIFFUSE = 1.0 - _AMBIENT
_JOINT_RADIUS_PX = 3
_LINE_THICKNESS_PX = 2
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.6
_FONT_THICKNESS = 1
_LABEL_PADDING_PX = 3
_LABEL_TEXT_RGB = (255, 255, 255)


class ProjectedPoints(NamedTuple):
    """Pixels of projected points.

    Attributes:
        pixels: (N, 2) float64 (u, v); meaningless where ``in_front`` is false.
        in_front: (N,) bool, depth above MIN_DEPTH_M and every coordinate finite.
    """

    pixels: np.ndarray
    in_front: np.ndarray


class OverlayPerson(NamedTuple):
    """What the overlay draws for one person (from Person.msg, in the image's pixels and frame).

    Attributes:
        label: Text at the box's top-left corner (the track id).
        color_rgb: (r, g, b) 0..255.
        box_px: (4,) x_min, y_min, x_max, y_max; an empty box (x_max <= x_min) is not drawn.
        keypoints_px: (K, 2) 2D joints in image pixels (Person.keypoints_2d), or shape (0, 2):
            then ``joints_cam`` are projected instead.
        joints_cam: (K, 3) metres, camera optical frame, or shape (0, 3).
        vertices_cam: (V, 3) metres, camera optical frame, or shape (0, 3) for no mesh.
    """

    label: str
    color_rgb: tuple[int, int, int]
    box_px: np.ndarray
    keypoints_px: np.ndarray
    joints_cam: np.ndarray
    vertices_cam: np.ndarray


def project_points(points_cam: np.ndarray, intrinsics: CameraIntrinsics) -> ProjectedPoints:
    """Project camera-frame points to pixels, applying the camera's distortion model.

    Without distortion: u = fx * x / z + cx, v = fy * y / z + cy. ``plumb_bob`` and
    ``rational_polynomial`` use OpenCV's ``projectPoints``, ``equidistant`` its fisheye model
    (ROS CameraInfo's models).

    Args:
        points_cam: (N, 3) metres, camera optical frame.
        intrinsics: the camera's intrinsics.

    Returns:
        Pixels and which points are in front of the camera.

    Raises:
        ValueError: points_cam is not (N, 3), or the distortion model is unknown.
    """
    points = np.asarray(points_cam, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f'points_cam must have shape (N, 3), got {points.shape}')
    in_front = np.all(np.isfinite(points), axis=1) & (points[:, 2] > MIN_DEPTH_M)
    pixels = np.zeros((points.shape[0], 2), dtype=np.float64)
    visible = points[in_front]
    if visible.shape[0] == 0:
        return ProjectedPoints(pixels, in_front)
    if not intrinsics.has_distortion:
        pixels[in_front, 0] = intrinsics.fx * visible[:, 0] / visible[:, 2] + intrinsics.cx
        pixels[in_front, 1] = intrinsics.fy * visible[:, 1] / visible[:, 2] + intrinsics.cy
        return ProjectedPoints(pixels, in_front)
    coefficients = np.asarray(intrinsics.distortion, dtype=np.float64)
    zero = np.zeros(3, dtype=np.float64)
    model = intrinsics.distortion_model
    if model in ('plumb_bob', 'rational_polynomial'):
        projected, _ = cv2.projectPoints(
            visible.reshape(-1, 1, 3), zero, zero, intrinsics.k_matrix, coefficients
        )
    elif model == 'equidistant':
        projected, _ = cv2.fisheye.projectPoints(
            visible.reshape(-1, 1, 3), zero, zero, intrinsics.k_matrix, coefficients[:4]
        )
    else:
        raise ValueError(
            f'distortion model {model!r} is not supported; use plumb_bob, rational_polynomial '
            'or equidistant, or feed rectified images'
        )
    pixels[in_front] = projected.reshape(-1, 2)
    return ProjectedPoints(pixels, in_front)


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f'the overlay draws on (H, W, 3) uint8 RGB images, got {image.dtype} {image.shape}'
        )


def _fixed_point(pixels: np.ndarray) -> np.ndarray:
    """Pixel coordinates (u, v) to OpenCV's shifted integer coordinates."""
    return np.round(pixels * _SHIFT_SCALE).astype(np.int32)


def _color(rgb: Sequence[float]) -> tuple[int, int, int]:
    r, g, b = (int(round(c)) for c in rgb)
    return (r, g, b)


def draw_box(
    image: np.ndarray, box_px: np.ndarray, color_rgb: tuple[int, int, int], label: str = ''
) -> None:
    """Draw a box outline and, above its top-left corner, a label on a filled background.

    Args:
        image: (H, W, 3) uint8 RGB, drawn on in place.
        box_px: (4,) x_min, y_min, x_max, y_max; nothing is drawn for an empty or non-finite box.
        color_rgb: (r, g, b) 0..255.
        label: text; none when empty.
    """
    _check_image(image)
    box = np.asarray(box_px, dtype=np.float64).ravel()
    if box.shape[0] != 4 or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        return
    color = _color(color_rgb)
    top_left = (int(round(box[0])), int(round(box[1])))
    bottom_right = (int(round(box[2])), int(round(box[3])))
    cv2.rectangle(image, top_left, bottom_right, color, _LINE_THICKNESS_PX, cv2.LINE_8)
    if label:
        (width, height), baseline = cv2.getTextSize(label, _FONT, _FONT_SCALE, _FONT_THICKNESS)
        x, y = top_left
        y_top = max(0, y - height - baseline - 2 * _LABEL_PADDING_PX)
        cv2.rectangle(
            image,
            (x, y_top),
            (x + width + 2 * _LABEL_PADDING_PX, y_top + height + baseline + 2 * _LABEL_PADDING_PX),
            color,
            cv2.FILLED,
        )
        cv2.putText(
            image,
            label,
            (x + _LABEL_PADDING_PX, y_top + _LABEL_PADDING_PX + height),
            _FONT,
            _FONT_SCALE,
            _LABEL_TEXT_RGB,
            _FONT_THICKNESS,
            cv2.LINE_AA,
        )


def draw_skeleton(
    image: np.ndarray,
    keypoints_px: np.ndarray,
    parents: Sequence[int] | np.ndarray,
    color_rgb: tuple[int, int, int],
    valid: np.ndarray | None = None,
) -> None:
    """Draw joints as dots and bones as lines from each joint to its parent.

    Args:
        image: (H, W, 3) uint8 RGB, drawn on in place.
        keypoints_px: (K, 2) pixels (u, v).
        parents: (K,) parent index per joint, -1 for none (extra joints get no bone).
        color_rgb: (r, g, b) 0..255.
        valid: (K,) which joints to draw; all finite ones when None.
    """
    _check_image(image)
    points = np.asarray(keypoints_px, dtype=np.float64).reshape(-1, 2)
    keep = np.all(np.isfinite(points), axis=1)
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)
    fixed = _fixed_point(np.where(keep[:, None], points, 0.0))
    color = _color(color_rgb)
    parent_index = np.asarray(parents, dtype=np.int64).ravel()[: points.shape[0]]
    for child, parent in enumerate(parent_index.tolist()):
        if 0 <= parent < points.shape[0] and keep[child] and keep[parent]:
            cv2.line(
                image,
                tuple(fixed[parent].tolist()),
                tuple(fixed[child].tolist()),
                color,
                _LINE_THICKNESS_PX,
                cv2.LINE_AA,
                _SHIFT_BITS,
            )
    for index in np.flatnonzero(keep).tolist():
        cv2.circle(
            image,
            tuple(fixed[index].tolist()),
            _JOINT_RADIUS_PX << _SHIFT_BITS,
            color,
            cv2.FILLED,
            cv2.LINE_AA,
            _SHIFT_BITS,
        )


def draw_mesh(
    image: np.ndarray,
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    intrinsics: CameraIntrinsics,
    color_rgb: tuple[int, int, int],
    style: MeshStyle = 'filled',
    alpha: float = 0.6,
) -> None:
    """Draw a mesh's front faces, filled and shaded (blended by ``alpha``) or as a wireframe.

    Steps:
    1. Project the vertices; keep faces whose three corners are in front of the camera.
    2. Cull back faces: with counter-clockwise outward faces, a face is seen from the front when
       its normal points toward the camera (normal . centroid < 0).
    3. filled: paint faces far to near (painter's algorithm), each in the person's colour times
       a Lambert shade for light from the camera, onto a copy; blend the painted pixels into the
       image with ``alpha``. wireframe: outline the front faces in one OpenCV call.

    Pixels are set only inside the projected faces (no anti-aliasing bleeds past them).

    Args:
        image: (H, W, 3) uint8 RGB, drawn on in place.
        vertices_cam: (V, 3) metres, camera optical frame.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        intrinsics: the camera's intrinsics.
        color_rgb: (r, g, b) 0..255.
        style: 'filled', 'wireframe' or 'none'.
        alpha: opacity of the filled mesh, 0..1.

    Raises:
        ValueError: unknown style, alpha outside [0, 1], or faces indexing past the vertices.
    """
    _check_image(image)
    if style not in MESH_STYLES:
        raise ValueError(f'mesh style {style!r} is not valid; choose one of {MESH_STYLES}')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'mesh alpha must be in [0, 1], got {alpha}')
    vertices = np.asarray(vertices_cam, dtype=np.float64).reshape(-1, 3)
    face_index = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if style == 'none' or face_index.shape[0] == 0 or vertices.shape[0] == 0:
        return
    if face_index.min() < 0 or face_index.max() >= vertices.shape[0]:
        raise ValueError(
            f'faces index vertices 0..{vertices.shape[0] - 1}, got {face_index.min()}..'
            f'{face_index.max()}; the vertices do not match the mesh topology'
        )
    projected = project_points(vertices, intrinsics)
    face_index = face_index[np.all(projected.in_front[face_index], axis=1)]
    corners = vertices[face_index]  # (F, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    centroids = corners.mean(axis=1)
    facing = np.einsum('ij,ij->i', normals, centroids)
    front = facing < 0.0
    face_index, normals, centroids = face_index[front], normals[front], centroids[front]
    if face_index.shape[0] == 0:
        return
    triangles = _fixed_point(projected.pixels)[face_index]  # (F, 3, 2)
    color = np.asarray(color_rgb, dtype=np.float64)
    if style == 'wireframe':
        cv2.polylines(image, list(triangles), True, _color(color_rgb), 1, cv2.LINE_8, _SHIFT_BITS)
        return
    # Lambert shade for a light at the camera: cosine between normal and the view ray.
    cosine = -np.einsum('ij,ij->i', normals, centroids) / np.maximum(
        np.linalg.norm(normals, axis=1) * np.linalg.norm(centroids, axis=1), 1e-12
    )
    shades = np.clip(_AMBIENT + _DIFFUSE * cosine, 0.0, 1.0)
    face_colors = np.round(shades[:, None] * color[None, :]).astype(np.int32).tolist()
    painted = image.copy()
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    for face in np.argsort(-centroids[:, 2], kind='stable').tolist():
        cv2.fillConvexPoly(painted, triangles[face], face_colors[face], cv2.LINE_8, _SHIFT_BITS)
        cv2.fillConvexPoly(mask, triangles[face], 255, cv2.LINE_8, _SHIFT_BITS)
    inside = mask.astype(bool)
    blended = image[inside].astype(np.float32) * (1.0 - alpha) + painted[inside] * alpha
    image[inside] = np.round(blended).astype(np.uint8)


def render_overlay(
    image_rgb: np.ndarray,
    persons: Sequence[OverlayPerson],
    joint_parents: Sequence[int] | np.ndarray,
    faces: np.ndarray,
    intrinsics: CameraIntrinsics | None,
    mesh_style: MeshStyle = 'filled',
    mesh_alpha: float = 0.6,
) -> np.ndarray:
    """Draw every person onto a copy of the image: mesh first, then skeleton, box and label.

    Args:
        image_rgb: (H, W, 3) uint8 RGB source image (not modified).
        persons: what to draw per person.
        joint_parents: (K,) parent index per joint (ModelInfo.joint_parents).
        faces: (F, 3) mesh faces (MeshTopology), or shape (0, 3).
        intrinsics: the image's camera; None when the persons' 3D frame is not this camera's
            (then only 2D data is drawn: boxes and ``keypoints_px``).
        mesh_style: 'filled', 'wireframe' or 'none'.
        mesh_alpha: opacity of the filled mesh.

    Returns:
        A new (H, W, 3) uint8 RGB image.
    """
    _check_image(image_rgb)
    canvas = np.array(image_rgb, dtype=np.uint8, copy=True, order='C')
    if intrinsics is not None:
        for person in persons:
            if person.vertices_cam.shape[0]:
                draw_mesh(
                    canvas,
                    person.vertices_cam,
                    faces,
                    intrinsics,
                    person.color_rgb,
                    mesh_style,
                    mesh_alpha,
                )
    for person in persons:
        if person.keypoints_px.shape[0]:
            draw_skeleton(canvas, person.keypoints_px, joint_parents, person.color_rgb)
        elif intrinsics is not None and person.joints_cam.shape[0]:
            projected = project_points(person.joints_cam, intrinsics)
            draw_skeleton(
                canvas, projected.pixels, joint_parents, person.color_rgb, projected.in_front
            )
        draw_box(canvas, person.box_px, person.color_rgb, person.label)
    return canvas
