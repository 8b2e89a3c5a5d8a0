"""Tests of the Umeyama similarity solve: known transforms, reflections, weights, batches."""

import math

import pytest
import torch

from hmr_ros.geometry.procrustes import apply_similarity, fit_similarity, procrustes_align
from hmr_ros.geometry.rotations import axis_angle_to_rotmat


def _random_points(batch: int, n: int) -> torch.Tensor:
    return torch.randn(batch, n, 3, dtype=torch.float64)


def test_recovers_a_known_similarity_transform() -> None:
    """y = s R x + t is fitted exactly: s, R, t come back and the residual is zero."""
    x = _random_points(4, 30)
    rotation = axis_angle_to_rotmat(torch.randn(4, 3, dtype=torch.float64))
    scale = torch.tensor([0.5, 1.0, 2.0, 3.5], dtype=torch.float64)
    translation = torch.randn(4, 3, dtype=torch.float64)
    y = scale[:, None, None] * x @ rotation.transpose(1, 2) + translation[:, None]

    fitted = fit_similarity(x, y)

    torch.testing.assert_close(fitted.scale, scale)
    torch.testing.assert_close(fitted.rotation, rotation)
    torch.testing.assert_close(fitted.translation, translation)
    torch.testing.assert_close(apply_similarity(x, fitted), y)


def test_mirrored_planar_set_is_matched_by_a_proper_rotation() -> None:
    """Points in the plane z = 0 mirrored by x -> -x equal the original rotated by pi about y.

    R_y(pi) = diag(-1, 1, -1) sends (x, y, 0) to (-x, y, 0): a proper rotation (det +1) matches
    the mirrored set exactly, so the fit must find it with zero residual and unit scale.
    """
    x = _random_points(1, 12)
    x[..., 2] = 0.0
    y = x * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)

    fitted = fit_similarity(x, y)

    torch.testing.assert_close(
        fitted.rotation[0], torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
    )
    torch.testing.assert_close(apply_similarity(x, fitted), y)


def test_mirrored_3d_set_is_not_forgiven() -> None:
    """A mirrored non-planar set cannot be reached by a rotation: det R = +1, residual > 0.

    An unconstrained orthogonal fit would return the reflection diag(-1, 1, 1) with zero error.
    """
    x = _random_points(3, 20)
    y = x * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)

    fitted = fit_similarity(x, y)
    residual = (apply_similarity(x, fitted) - y).norm(dim=-1).mean(dim=-1)

    torch.testing.assert_close(
        torch.linalg.det(fitted.rotation), torch.ones(3, dtype=torch.float64)
    )
    assert bool((residual > 0.1).all())


def test_weights_ignore_outliers() -> None:
    """Zero-weight points do not influence the fit: a corrupted point with weight 0 is ignored."""
    x = _random_points(1, 10)
    rotation = axis_angle_to_rotmat(torch.tensor([[0.0, 0.0, math.pi / 3]], dtype=torch.float64))
    y = x @ rotation.transpose(1, 2)
    y_corrupted = y.clone()
    y_corrupted[0, 0] += 10.0
    weights = torch.ones(1, 10, dtype=torch.float64)
    weights[0, 0] = 0.0

    fitted = fit_similarity(x, y_corrupted, weights)

    torch.testing.assert_close(fitted.rotation, rotation)
    torch.testing.assert_close(fitted.scale, torch.ones(1, dtype=torch.float64))


def test_float32_inputs_keep_their_dtype() -> None:
    x = torch.randn(2, 8, 3)
    aligned = procrustes_align(x, 2.0 * x + 1.0)
    assert aligned.dtype == torch.float32
    torch.testing.assert_close(aligned, 2.0 * x + 1.0, atol=1e-5, rtol=1e-5)


def test_rejects_bad_shapes_and_empty_weights() -> None:
    with pytest.raises(ValueError, match=r'\(B, N, 3\)'):
        fit_similarity(torch.zeros(2, 5, 3), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match='positive sum'):
        fit_similarity(torch.randn(1, 4, 3), torch.randn(1, 4, 3), torch.zeros(1, 4))
