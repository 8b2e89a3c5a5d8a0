"""Lens distortion: rectify raw images once, where the image meets the (pinhole) models.

Every geometric step of the dual path assumes a pinhole camera K: the person and hand crops,
the metric translation from the real intrinsics, the projection of the joints and the
hand-root registration. With ``input.rectified: false`` the image is the camera's raw image
and its ``camera_info`` states a distortion D. Rather than undistorting each of those steps,
the image itself is rectified on the model's device, before anything reads it:

- ``initUndistortRectifyMap(K, D, R = I, K)`` is computed once per camera (cached while K, D
  and the size stay the same) and applied with ``grid_sample`` (bilinear, zeros outside, pixel
  centres at integers as cv2), so the rectified image has the same K and size as the raw one
  and the models see the pinhole camera they assume. The person and hand crops are bilinear
  resamplings anyway; the extra one costs one full-image pass on the device.
- Person boxes given in raw pixels (detector plugins run on the raw image, external boxes come
  with it) are mapped into the rectified image (``undistortPoints`` along their edges).
- Published pixel outputs go back to the raw image the user sent: 2D keypoints are the 3D
  joints projected with K *and* D (``projectPoints``), boxes are mapped along their edges.
  3D outputs need nothing: R = I keeps the camera frame.

Supported ``distortion_model`` values (REP 104 names): ``plumb_bob`` and
``rational_polynomial`` (cv2's standard model, D = k1 k2 p1 p2 [k3 [k4 k5 k6]] in the same
order) and ``equidistant`` (cv2.fisheye, D = k1 k2 k3 k4). Any other model with a non-zero D,
or a D of the wrong length, is used without rectification and warned about once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from hmr_ros.pipeline.frames import CameraIntrinsics

__all__ = [
    'DISTORTION_COEFFICIENT_COUNTS',
    'Rectification',
    'Rectifier',
]

_LOG = logging.getLogger(__name__)

DISTORTION_COEFFICIENT_COUNTS: dict[str, tuple[int, ...]] = {
    'plumb_bob': (4, 5, 8),
    'rational_polynomial': (8,),
    'equidistant': (4,),
}
"""Supported distortion models and the D lengths accepted for each."""

EDGE_SAMPLES = 16
"""Points per box edge mapped between raw and rectified pixels (boxes bend under distortion)."""


@dataclass
class Rectification:
    """The rectifying map of one camera (K, D, image size) and its point mappings.

    Attributes:
        k: (3, 3) camera matrix, also the rectified image's.
        d: distortion coefficients in the model's order.
        fisheye: True for the equidistant model (cv2.fisheye).
        map_xy_px: (H, W, 2) float32: the raw-image pixel (x, y) each rectified pixel samples.
    """

    k: np.ndarray
    d: np.ndarray
    fisheye: bool
    map_xy_px: np.ndarray
    _grids: dict[tuple[str, torch.dtype], torch.Tensor] = field(default_factory=dict)

    @classmethod
    def build(cls, intrinsics: CameraIntrinsics) -> Rectification:
        """Compute the map for supported, non-zero distortion (Rectifier checks both)."""
        k = intrinsics.k_matrix.astype(np.float64)
        d = np.asarray(intrinsics.distortion, dtype=np.float64)
        size = (intrinsics.width, intrinsics.height)
        fisheye = intrinsics.distortion_model == 'equidistant'
        if fisheye:
            map_x, map_y = cv2.fisheye.initUndistortRectifyMap(
                k, d, np.eye(3), k, size, cv2.CV_32FC1
            )
        else:
            map_x, map_y = cv2.initUndistortRectifyMap(k, d, None, k, size, cv2.CV_32FC1)
        return cls(k=k, d=d, fisheye=fisheye, map_xy_px=np.stack((map_x, map_y), axis=-1))

    def rectify(self, images: torch.Tensor) -> torch.Tensor:
        """Rectify (N, 3, H, W) raw images on their device; same size, same K."""
        key = (str(images.device), images.dtype)
        grid = self._grids.get(key)
        if grid is None:
            height, width = self.map_xy_px.shape[:2]
            scale = np.array([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], np.float32)
            normalised = self.map_xy_px * scale - 1.0  # align_corners=True: centres at -1, 1
            grid = torch.from_numpy(normalised).to(device=images.device, dtype=images.dtype)
            self._grids = {key: grid}  # one device and dtype at a time
        batch_grid = grid[None].expand(images.shape[0], -1, -1, -1)
        return F.grid_sample(
            images, batch_grid, mode='bilinear', padding_mode='zeros', align_corners=True
        )

    def undistort_points(self, points_px: np.ndarray) -> np.ndarray:
        """Raw-image pixels (..., 2) -> the rectified image's pixels (cv2.undistortPoints)."""
        points = np.asarray(points_px, np.float64).reshape(-1, 1, 2)
        if len(points) == 0:
            return np.asarray(points_px, np.float64).copy()
        if self.fisheye:
            out = cv2.fisheye.undistortPoints(points, self.k, self.d, P=self.k)
        else:
            out = cv2.undistortPoints(points, self.k, self.d, P=self.k)
        return out.reshape(np.shape(points_px))

    def distort_points(self, points_px: np.ndarray) -> np.ndarray:
        """Rectified-image pixels (..., 2) -> raw-image pixels (cv2.projectPoints with D)."""
        shape = np.shape(points_px)
        points = np.asarray(points_px, np.float64).reshape(-1, 2)
        if len(points) == 0:
            return points.reshape(shape)
        normalised = (points - self.k[:2, 2]) / np.diag(self.k)[:2]
        rays = np.concatenate((normalised, np.ones((len(points), 1))), axis=1)[:, None]
        zero = np.zeros(3)
        if self.fisheye:
            out, _ = cv2.fisheye.projectPoints(rays, zero, zero, self.k, self.d)
        else:
            out, _ = cv2.projectPoints(rays, zero, zero, self.k, self.d)
        return out.reshape(shape)

    def undistort_boxes(self, boxes_px: np.ndarray) -> np.ndarray:
        """Raw-image boxes (N, 4) -> the rectified boxes enclosing their mapped edges."""
        return _map_boxes(boxes_px, self.undistort_points)

    def distort_boxes(self, boxes_px: np.ndarray) -> np.ndarray:
        """Rectified-image boxes (..., 4) -> the raw boxes enclosing their mapped edges."""
        return _map_boxes(boxes_px, self.distort_points)


def _map_boxes(boxes_px: np.ndarray, mapping: object) -> np.ndarray:
    boxes = np.asarray(boxes_px, np.float64)
    flat = boxes.reshape(-1, 4)
    if len(flat) == 0:
        return boxes.astype(np.float32)
    t = np.linspace(0.0, 1.0, EDGE_SAMPLES)
    x1, y1, x2, y2 = (flat[:, i : i + 1] for i in range(4))
    xs = x1 + (x2 - x1) * t
    ys = y1 + (y2 - y1) * t
    edges = np.concatenate(
        (
            np.stack((xs, np.broadcast_to(y1, xs.shape)), -1),
            np.stack((xs, np.broadcast_to(y2, xs.shape)), -1),
            np.stack((np.broadcast_to(x1, ys.shape), ys), -1),
            np.stack((np.broadcast_to(x2, ys.shape), ys), -1),
        ),
        axis=1,
    )  # (N, 4 * EDGE_SAMPLES, 2)
    mapped = mapping(edges)  # type: ignore[operator]
    out = np.concatenate((mapped.min(axis=1), mapped.max(axis=1)), axis=-1)
    return out.reshape(boxes.shape).astype(np.float32)


class Rectifier:
    """Per-camera rectification with one cached map; warns once about what it cannot apply."""

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._rectification: Rectification | None = None
        self._warned: set[tuple[str, int]] = set()

    def for_intrinsics(self, intrinsics: CameraIntrinsics) -> Rectification | None:
        """The rectification of a frame's camera, or None when its image is already pinhole.

        None for an all-zero D (including ``input.rectified: true``, which uses P and no D) and
        for a model or D length this module does not support (then a warning, once per model
        and length, says the distortion is ignored).
        """
        if not intrinsics.has_distortion:
            return None
        model = intrinsics.distortion_model
        count = len(intrinsics.distortion)
        if count not in DISTORTION_COEFFICIENT_COUNTS.get(model, ()):
            if (model, count) not in self._warned:
                self._warned.add((model, count))
                supported = ', '.join(
                    f'{name} ({"/".join(map(str, counts))} coefficients)'
                    for name, counts in DISTORTION_COEFFICIENT_COUNTS.items()
                )
                _LOG.warning(
                    'camera_info has a non-zero distortion D (model %r, %d coefficients) that '
                    'hmr_ros cannot apply: the image is used as if it were undistorted, so '
                    'crops, 2D keypoints and metric positions are off towards the image '
                    'edges. Supported: %s; or rectify upstream (image_proc) and set '
                    'input.rectified: true.',
                    model,
                    count,
                    supported,
                )
            return None
        key = (
            model,
            intrinsics.distortion,
            intrinsics.width,
            intrinsics.height,
            tuple(intrinsics.k_matrix.ravel().tolist()),
        )
        if key != self._key or self._rectification is None:
            self._rectification = Rectification.build(intrinsics)
            self._key = key
        return self._rectification
