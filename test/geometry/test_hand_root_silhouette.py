"""CMR's 2D-1D registration on synthetic hands with a known root.

The hands, their 2D keypoints and their silhouettes are built here with numpy, independently of
the code under test: a palm and five fingers as point sets, projected with the pinhole model
u = fx X / Z + cx, rasterised into a mask, then noise and outliers are added.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hmr_ros.geometry.hand_root_silhouette import (
    extent_descriptor,
    fuse_hand_roots,
    register_hand_root_2d1d,
    register_silhouette,
    silhouette_pixels,
)

FX = FY = 600.0
CX, CY = 320.0, 240.0
K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]])
TRUE_ROOT_M = np.array([0.04, 0.06, 0.55])  # the whole hand projects inside the image


def _hand(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(21, 3) joints (wrist first, 4 per finger) and (V, 3) surface points, wrist at 0."""
    joints = [np.zeros(3)]
    points = [rng.uniform([-0.04, -0.09, -0.012], [0.04, 0.0, 0.012], (400, 3))]  # palm
    bases = [(-0.045, -0.03), (-0.03, -0.09), (-0.01, -0.095), (0.01, -0.09), (0.03, -0.08)]
    lengths = [0.06, 0.08, 0.09, 0.085, 0.065]
    angles = [-0.9, -0.15, 0.0, 0.15, 0.3]
    for (bx, by), length, angle in zip(bases, lengths, angles, strict=True):
        direction = np.array([math.sin(angle), -math.cos(angle), 0.1])
        direction /= np.linalg.norm(direction)
        for k in range(1, 5):
            joints.append(np.array([bx, by, 0.0]) + direction * length * k / 4)
        s = rng.uniform(0, length, 120)
        points.append(
            np.array([bx, by, 0.0]) + s[:, None] * direction + rng.normal(0, 0.004, (120, 3))
        )
    return np.array(joints), np.concatenate(points)


def _project(points: np.ndarray) -> np.ndarray:
    camera = points + TRUE_ROOT_M
    return np.stack(
        (FX * camera[:, 0] / camera[:, 2] + CX, FY * camera[:, 1] / camera[:, 2] + CY), 1
    )


def _mask(points_px: np.ndarray, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    mask = np.zeros(shape)
    cols, rows = np.round(points_px).astype(int).T
    assert (
        cols.min() > 0
        and rows.min() > 0
        and cols.max() < shape[1] - 1
        and rows.max() < shape[0] - 1
    )
    for dr in (-1, 0, 1):  # dilate by one pixel so the region has no holes
        for dc in (-1, 0, 1):
            mask[rows + dr, cols + dc] = 1.0
    return mask


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.as_tensor(a, dtype=torch.float64)[None] for a in arrays]


def test_descriptor_of_a_square_by_hand() -> None:
    """Corners (+-1, +-1): along 0 deg the extent is [-1, 1]; along -45 deg,
    (cos, sin) = (1/sqrt2, -1/sqrt2) gives [-sqrt2, sqrt2]; the same for every direction pair
    through the symmetry of the square at 45 degrees."""
    square = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])
    descriptor = extent_descriptor(square)[0].reshape(6, 4)
    assert torch.allclose(descriptor[0], torch.tensor([-1.0, 1.0, -1.0, 1.0]))
    root2 = math.sqrt(2)
    assert torch.allclose(descriptor[3], torch.tensor([-root2, root2, -root2, root2]))
    # -15 deg: max of x cos15 - y sin15 over the corners = cos15 + sin15.
    assert descriptor[1, 1].item() == pytest.approx(
        math.cos(math.pi / 12) + math.sin(math.pi / 12)
    )


def test_fusion_thresholds_are_cmrs() -> None:
    """d = 1 cm keeps t_2D; d = 4 cm blends halfway ((4 - 2) / (6 - 2)); d = 10 cm takes t_1D."""
    t2 = torch.tensor([[0.0, 0.0, 0.5]] * 3)
    t1 = torch.tensor([[0.0, 0.0, 0.51], [0.0, 0.0, 0.54], [0.0, 0.0, 0.6]])
    fused, distance, blend = fuse_hand_roots(t2, t1, torch.ones(3, dtype=torch.bool))
    assert torch.allclose(distance, torch.tensor([0.01, 0.04, 0.1]))
    assert torch.allclose(blend, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(fused[:, 2], torch.tensor([0.5, 0.52, 0.6]))
    fused, _, blend = fuse_hand_roots(t2, t1, torch.zeros(3, dtype=torch.bool))
    assert torch.equal(fused, t2) and torch.equal(blend, torch.zeros(3))


def test_silhouette_step_recovers_the_root() -> None:
    rng = np.random.default_rng(0)
    _, surface = _hand(rng)
    mask = _mask(_project(surface))
    pixels, valid = silhouette_pixels(torch.as_tensor(mask)[None])
    vertices, k = _tensors(surface, K)
    result = register_silhouette(vertices, pixels.double(), valid, k, 224.0)
    error_mm = 1000 * np.linalg.norm(result.translation[0].numpy() - TRUE_ROOT_M)
    assert bool(result.valid[0]) and error_mm < 10.0


def test_full_registration_with_six_corrupted_joints() -> None:
    """6 of 21 joints moved by 40 px, 1 px noise elsewhere; 3 of the corrupted ones also have
    confidence 0.05 (dropped by CMR's 0.1 cut). The fused root is within 15 mm."""
    rng = np.random.default_rng(1)
    joints, surface = _hand(rng)
    keypoints = _project(joints) + rng.normal(0, 1.0, (21, 2))
    corrupted = rng.choice(np.arange(1, 21), 6, replace=False)
    offsets = rng.normal(size=(6, 2))
    keypoints[corrupted] += 40.0 * offsets / np.linalg.norm(offsets, axis=1, keepdims=True)
    confidence = np.full(21, 0.9)
    confidence[corrupted[:3]] = 0.05
    pixels, valid = silhouette_pixels(torch.as_tensor(_mask(_project(surface)))[None])
    j, kp, k, conf, verts = _tensors(joints, keypoints, K, confidence, surface)
    result = register_hand_root_2d1d(
        j, kp, k, conf, vertices=verts, silhouette_px=pixels.double(), silhouette_valid=valid
    )
    error_mm = 1000 * np.linalg.norm(result.translation[0].numpy() - TRUE_ROOT_M)
    assert bool(result.valid[0]) and error_mm < 15.0
    assert 0.0 <= result.blend.item() <= 1.0


def test_broken_keypoints_are_overruled_by_the_silhouette() -> None:
    """All keypoints shifted 90 px, a consistent but wrong 2D pose: t_2D moves by 8 cm at
    0.55 m, d > 6 cm, so CMR's fusion takes t_1D, which the silhouette still places right."""
    rng = np.random.default_rng(2)
    joints, surface = _hand(rng)
    keypoints = _project(joints * 1.0) + np.array([90.0, 0.0])
    pixels, valid = silhouette_pixels(torch.as_tensor(_mask(_project(surface)))[None])
    j, kp, k, verts = _tensors(joints, keypoints, K, surface)
    result = register_hand_root_2d1d(
        j, kp, k, torch.ones(1, 21, dtype=torch.float64), vertices=verts,
        silhouette_px=pixels.double(), silhouette_valid=valid,
    )  # fmt: skip
    assert result.disagreement_m.item() > 0.06 and result.blend.item() == 1.0
    assert 1000 * np.linalg.norm(result.translation[0].numpy() - TRUE_ROOT_M) < 10.0


def test_without_silhouette_the_2d_result_stands() -> None:
    rng = np.random.default_rng(3)
    joints, _ = _hand(rng)
    j, kp, k = _tensors(joints, _project(joints), K)
    result = register_hand_root_2d1d(j, kp, k, torch.ones(1, 21, dtype=torch.float64))
    assert torch.equal(result.translation, result.translation_2d)
    assert 1000 * np.linalg.norm(result.translation[0].numpy() - TRUE_ROOT_M) < 1.0
