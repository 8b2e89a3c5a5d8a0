"""Lens distortion: rectified images, raw <-> rectified points and boxes, and the pipeline.

Outside references: the distortion models as OpenCV documents them (calib3d "Camera
Calibration and 3D Reconstruction" and the fisheye module), written out below with numpy, and
cv2.undistortPoints / cv2.projectPoints themselves. For a normalised point (x, y), r^2 = x^2 +
y^2:

- plumb_bob / rational_polynomial, D = (k1, k2, p1, p2, k3, k4, k5, k6):
  x' = x (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6) + 2 p1 x y
  + p2 (r^2 + 2 x^2), and y' likewise with p1 (r^2 + 2 y^2) + 2 p2 x y;
- equidistant, D = (k1, k2, k3, k4): theta = atan(r),
  theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8), (x', y') = theta_d /
  r (x, y).

Pixels: u = fx x' + cx, v = fy y' + cy.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import cv2
import numpy as np
import pytest
import torch

from hmr_ros.pipeline.frames import CameraIntrinsics
from hmr_ros.pipeline.protocol import Frame, ModelOptions, PipelineOptions, RuntimeSettings
from hmr_ros.pipeline.rectification import Rectifier
from hmr_ros.pipeline.runner import PipelineRunner, build_pipeline

WIDTH, HEIGHT = 320, 240
FX, FY, CX, CY = 260.0, 250.0, 159.5, 119.5
CASES = {
    'plumb_bob': (-0.28, 0.09, 0.0012, -0.0007, -0.015),
    'rational_polynomial': (0.42, -0.08, 0.0015, 0.0011, 0.004, 0.71, -0.05, 0.012),
    'equidistant': (0.05, -0.02, 0.004, -0.001),
}


def _intrinsics(model: str, d: tuple[float, ...]) -> CameraIntrinsics:
    return CameraIntrinsics(FX, FY, CX, CY, WIDTH, HEIGHT, distortion_model=model, distortion=d)


def _distort_reference(points_px: np.ndarray, model: str, d: tuple[float, ...]) -> np.ndarray:
    """The documented models (module docstring), from rectified pixels to raw pixels."""
    x = (points_px[:, 0] - CX) / FX
    y = (points_px[:, 1] - CY) / FY
    r2 = x * x + y * y
    if model == 'equidistant':
        r = np.sqrt(r2)
        theta = np.arctan(r)
        k1, k2, k3, k4 = d
        theta_d = theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)
        scale = np.where(r > 0, theta_d / np.maximum(r, 1e-12), 1.0)
        xd, yd = scale * x, scale * y
    else:
        k1, k2, p1, p2, k3, k4, k5, k6 = (tuple(d) + (0.0,) * 8)[:8]
        radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack((FX * xd + CX, FY * yd + CY), axis=-1)


POINTS = np.array([[20.0, 15.0], [300.0, 30.0], [159.5, 119.5], [60.0, 210.0], [290.0, 220.0]])


@pytest.mark.parametrize('model', list(CASES))
def test_points_follow_the_documented_model_and_cv2(model: str) -> None:
    d = CASES[model]
    rectification = Rectifier().for_intrinsics(_intrinsics(model, d))
    assert rectification is not None
    raw = rectification.distort_points(POINTS)
    np.testing.assert_allclose(raw, _distort_reference(POINTS, model, d), atol=1e-6)
    back = rectification.undistort_points(raw)
    np.testing.assert_allclose(back, POINTS, atol=1e-2)  # cv2's iterative inverse
    if model != 'equidistant':
        k = _intrinsics(model, d).k_matrix
        expected = cv2.undistortPoints(raw.reshape(-1, 1, 2), k, np.array(d), P=k).reshape(-1, 2)
        np.testing.assert_allclose(back, expected, atol=1e-9)


@pytest.mark.parametrize('model', list(CASES))
def test_rectified_image_puts_raw_dots_at_their_pinhole_pixels(model: str) -> None:
    """A Gaussian dot drawn in the raw image at distort(q) lands at q after rectification
    (intensity-weighted centroid within 0.25 px)."""
    d = CASES[model]
    targets = np.array([[40.0, 40.0], [270.0, 60.0], [160.0, 120.0], [70.0, 190.0]])
    raw_centres = _distort_reference(targets, model, d)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    raw = np.zeros((HEIGHT, WIDTH))
    for cx, cy in raw_centres:
        raw += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 1.5**2))
    image = torch.from_numpy(np.repeat(raw[None, None], 3, axis=1)).float()
    rectification = Rectifier().for_intrinsics(_intrinsics(model, d))
    assert rectification is not None
    rectified = rectification.rectify(image)[0, 0].numpy().astype(np.float64)
    assert rectified.shape == (HEIGHT, WIDTH)
    for tx, ty in targets:
        window = (slice(int(ty) - 6, int(ty) + 7), slice(int(tx) - 6, int(tx) + 7))
        weights = rectified[window]
        centre = (
            (weights * xs[window]).sum() / weights.sum(),
            (weights * ys[window]).sum() / weights.sum(),
        )
        assert centre == pytest.approx((tx, ty), abs=0.25)


def test_boxes_enclose_their_mapped_edges() -> None:
    d = CASES['plumb_bob']
    rectification = Rectifier().for_intrinsics(_intrinsics('plumb_bob', d))
    assert rectification is not None
    box = np.array([[30.0, 20.0, 200.0, 180.0]])
    raw = rectification.distort_boxes(box)[0]
    t = np.linspace(0, 1, 50)
    edge = np.concatenate(
        (
            np.stack((30 + 170 * t, np.full_like(t, 20.0)), -1),
            np.stack((30 + 170 * t, np.full_like(t, 180.0)), -1),
            np.stack((np.full_like(t, 30.0), 20 + 160 * t), -1),
            np.stack((np.full_like(t, 200.0), 20 + 160 * t), -1),
        )
    )
    mapped = _distort_reference(edge, 'plumb_bob', d)
    np.testing.assert_allclose(raw[:2], mapped.min(axis=0), atol=0.1)
    np.testing.assert_allclose(raw[2:], mapped.max(axis=0), atol=0.1)
    # Back: the raw box's corners lie outside the curved image of the edges, so the mapped
    # box encloses the original one (it cannot shrink below it).
    back = rectification.undistort_boxes(raw[None])[0]
    assert (back[:2] <= box[0, :2] + 1e-3).all() and (back[2:] >= box[0, 2:] - 1e-3).all()


def test_no_distortion_or_unsupported_model(caplog: pytest.LogCaptureFixture) -> None:
    rectifier = Rectifier()
    assert rectifier.for_intrinsics(_intrinsics('plumb_bob', (0.0,) * 5)) is None
    assert rectifier.for_intrinsics(_intrinsics('', ())) is None
    with caplog.at_level(logging.WARNING, logger='hmr_ros.pipeline.rectification'):
        for _ in range(3):
            assert rectifier.for_intrinsics(_intrinsics('fov', (0.9,))) is None
            assert rectifier.for_intrinsics(_intrinsics('plumb_bob', (0.1, 0.2, 0.3))) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per model and length
    assert "'fov'" in warnings[0] and 'input.rectified' in warnings[0]


def test_map_is_cached_per_camera() -> None:
    rectifier = Rectifier()
    first = rectifier.for_intrinsics(_intrinsics('plumb_bob', CASES['plumb_bob']))
    assert rectifier.for_intrinsics(_intrinsics('plumb_bob', CASES['plumb_bob'])) is first
    other = rectifier.for_intrinsics(_intrinsics('plumb_bob', (-0.1, 0.0, 0.0, 0.0, 0.0)))
    assert other is not first


@pytest.fixture(scope='module')
def stand_in_pipeline() -> PipelineRunner:
    # The random stand-ins score presence near 0: admit the front-end's person (threshold 0).
    return build_pipeline(
        PipelineOptions(
            model=ModelOptions(use_test_assets=True),
            settings=RuntimeSettings(person_threshold=0.0),
        )
    )


@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial'])
def test_pipeline_publishes_raw_image_keypoints_of_its_3d_joints(
    stand_in_pipeline: PipelineRunner, model: str
) -> None:
    """With D non-zero, the published 2D keypoints are the published 3D joints projected
    through K and D (first frame: smoothing passes values through), and they differ from the
    pinhole projection; the 3D joints differ from a run that ignores D (the model saw the
    rectified image)."""
    rng = np.random.default_rng(0)
    image = (rng.random((HEIGHT, WIDTH, 3)) * 255).astype(np.uint8)
    intrinsics = _intrinsics(model, CASES[model])
    stand_in_pipeline.reset_tracking()
    frame = Frame(image, intrinsics, 10.0, 'camera', time.monotonic())
    person = stand_in_pipeline.process(frame).persons[0]
    joints = np.asarray(person.joints_m, np.float64)
    k = intrinsics.k_matrix
    pinhole = joints @ k.T
    pinhole = pinhole[:, :2] / pinhole[:, 2:]
    expected = _distort_reference(pinhole, model, CASES[model])
    np.testing.assert_allclose(person.keypoints_2d_px, expected, atol=1e-2)
    assert np.abs(expected - pinhole).max() > 1.0
    stand_in_pipeline.reset_tracking()
    ignored = dataclasses.replace(intrinsics, distortion_model='', distortion=())
    plain = stand_in_pipeline.process(dataclasses.replace(frame, intrinsics=ignored)).persons[0]
    assert not np.allclose(plain.joints_m, person.joints_m, atol=1e-4)
