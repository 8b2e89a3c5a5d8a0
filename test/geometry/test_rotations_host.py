"""Tests for the numpy twins in hmr_ros.geometry.rotations (quaternions in ROS (x, y, z, w) order).

Expected values come from hand derivations stated in each test: a rotation by angle t about the
unit axis n is the quaternion (sin(t/2) n, cos(t/2)); Hamilton's rules i j = k, j i = -k;
Shepperd's method picks its branch by the largest of 4w^2, 4x^2, 4y^2, 4z^2.
"""

import math

import numpy as np
import pytest
import torch

from hmr_ros.geometry.rotations import (
    axis_angle_to_rotmat,
    axis_angle_to_rotmat_np,
    nearest_rotation_np,
    quaternion_xyzw_conjugate_np,
    quaternion_xyzw_exp_np,
    quaternion_xyzw_log_np,
    quaternion_xyzw_multiply_np,
    quaternion_xyzw_to_rotmat_np,
    rotmat_to_quaternion,
    rotmat_to_quaternion_xyzw_np,
)

HALF = math.sqrt(0.5)
QUARTER_TURN_Z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
"""90 degrees about z: x -> y, y -> -x (columns are the images of the axes)."""
HALF_TURN_X = np.diag([1.0, -1.0, -1.0])
CYCLIC = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""120 degrees about (1, 1, 1)/sqrt(3): x -> y -> z -> x; quaternion (1/2, 1/2, 1/2, 1/2)."""


def rodrigues(vector: np.ndarray) -> np.ndarray:
    """R = I + sin(t) K + (1 - cos t) K^2 for the unit axis k = v / t (written for the test)."""
    angle = float(np.linalg.norm(vector))
    if angle == 0.0:
        return np.eye(3)
    k = vector / angle
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def axis_angle_quaternion(axis: np.ndarray, angle: float) -> np.ndarray:
    """(sin(t/2) n, cos(t/2)) for the unit axis n."""
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    return np.concatenate([math.sin(angle / 2) * axis, [math.cos(angle / 2)]])


def random_axes_angles(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(count, 3))
    return axes / np.linalg.norm(axes, axis=1, keepdims=True), rng.uniform(0, np.pi, count)


@pytest.mark.parametrize(
    ('matrix', 'expected'),
    [
        (np.eye(3), [0.0, 0.0, 0.0, 1.0]),
        (QUARTER_TURN_Z, [0.0, 0.0, HALF, HALF]),
        (HALF_TURN_X, [1.0, 0.0, 0.0, 0.0]),  # w = 0: Shepperd's x branch
        (CYCLIC, [0.5, 0.5, 0.5, 0.5]),
    ],
)
def test_quaternions_of_known_rotations(matrix: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(rotmat_to_quaternion_xyzw_np(matrix), expected, atol=1e-12)
    np.testing.assert_allclose(quaternion_xyzw_to_rotmat_np(expected), matrix, atol=1e-12)


def test_quaternion_of_random_rotations_and_near_half_turns_is_the_half_angle_formula() -> None:
    """q(R(n, t)) = (sin(t/2) n, cos(t/2)), w >= 0, including t within 1e-6 rad of pi."""
    axes, angles = random_axes_angles(200, seed=0)
    angles[150:] = np.pi - np.random.default_rng(1).uniform(0, 1e-6, 50)
    matrices = np.stack([rodrigues(a * t) for a, t in zip(axes, angles, strict=True)])
    expected = np.stack([axis_angle_quaternion(a, t) for a, t in zip(axes, angles, strict=True)])
    quaternions = rotmat_to_quaternion_xyzw_np(matrices)
    assert quaternions.shape == (200, 4)
    assert np.all(quaternions[:, 3] >= 0.0)
    np.testing.assert_allclose(quaternions, expected, atol=1e-9)
    np.testing.assert_allclose(quaternion_xyzw_to_rotmat_np(quaternions), matrices, atol=1e-9)
    unprojected = rotmat_to_quaternion_xyzw_np(matrices, project=False)
    np.testing.assert_allclose(unprojected, expected, atol=1e-9)


def test_numpy_twins_agree_with_the_torch_functions() -> None:
    """Same conventions as the model-side torch code (which orders quaternions (w, x, y, z))."""
    axes, angles = random_axes_angles(100, seed=2)
    vectors = axes * angles[:, None]
    matrices = axis_angle_to_rotmat_np(vectors)
    np.testing.assert_allclose(
        matrices, axis_angle_to_rotmat(torch.from_numpy(vectors)).numpy(), atol=1e-12
    )
    wxyz = rotmat_to_quaternion(torch.from_numpy(matrices)).numpy()
    np.testing.assert_allclose(
        rotmat_to_quaternion_xyzw_np(matrices), np.roll(wxyz, -1, axis=-1), atol=1e-12
    )


def test_rodrigues_matches_the_unit_axis_formula_and_is_exact_at_zero() -> None:
    vectors = np.random.default_rng(3).normal(size=(20, 3))
    expected = np.stack([rodrigues(v) for v in vectors])
    np.testing.assert_allclose(axis_angle_to_rotmat_np(vectors), expected, atol=1e-12)
    np.testing.assert_array_equal(axis_angle_to_rotmat_np(np.zeros(3)), np.eye(3))


def test_nearest_rotation_projects_noisy_float32_and_reflections() -> None:
    """A float32 rotation with 1e-4 noise comes back orthonormal and within the noise."""
    rotation = rodrigues(np.array([0.3, -1.2, 0.7]))
    noisy = (rotation + 1e-4 * np.random.default_rng(4).normal(size=(3, 3))).astype(np.float32)
    projected = nearest_rotation_np(noisy)
    np.testing.assert_allclose(projected @ projected.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(projected, rotation, atol=5e-4)
    assert abs(np.linalg.norm(rotmat_to_quaternion_xyzw_np(noisy)) - 1.0) < 1e-12
    assert np.linalg.det(nearest_rotation_np(np.diag([1.0, 1.0, -1.0]))) == pytest.approx(1.0)
    # A batch mixing an exact rotation (returned as is), the noisy one and a reflection.
    mixed = nearest_rotation_np(np.stack([rotation, noisy, np.diag([1.0, 1.0, -1.0])]))
    np.testing.assert_array_equal(mixed[0], rotation)
    np.testing.assert_allclose(mixed[1], projected, atol=1e-15)
    np.testing.assert_allclose(np.linalg.det(mixed), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match='non-finite'):
        rotmat_to_quaternion_xyzw_np(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match=r'\(\.\.\., 3, 3\)'):
        rotmat_to_quaternion_xyzw_np(np.eye(4))


def test_hamilton_product_rules_and_composition() -> None:
    """i j = k and j i = -k; q(A) q(B) = q(A B) (B applied first); q q* = 1."""
    i, j, k = np.eye(4)[:3]
    np.testing.assert_array_equal(quaternion_xyzw_multiply_np(i, j), k)
    np.testing.assert_array_equal(quaternion_xyzw_multiply_np(j, i), -k)
    a = rodrigues(np.array([0.4, 0.1, -0.9]))
    b = rodrigues(np.array([-1.1, 0.5, 0.2]))
    product = quaternion_xyzw_multiply_np(
        rotmat_to_quaternion_xyzw_np(a), rotmat_to_quaternion_xyzw_np(b)
    )
    np.testing.assert_allclose(quaternion_xyzw_to_rotmat_np(product), a @ b, atol=1e-12)
    q = rotmat_to_quaternion_xyzw_np(a)
    np.testing.assert_allclose(
        quaternion_xyzw_multiply_np(q, quaternion_xyzw_conjugate_np(q)), [0, 0, 0, 1], atol=1e-15
    )


def test_log_and_exp_of_a_quarter_turn_and_near_zero() -> None:
    """log(90 deg about z) = (0, 0, pi/2); exp inverts log; tiny angles use the series."""
    np.testing.assert_allclose(
        quaternion_xyzw_log_np(np.array([0.0, 0.0, HALF, HALF])), [0, 0, math.pi / 2], atol=1e-15
    )
    np.testing.assert_allclose(
        quaternion_xyzw_exp_np(np.array([0.0, 0.0, math.pi / 2])), [0, 0, HALF, HALF], atol=1e-15
    )
    axes, angles = random_axes_angles(50, seed=5)
    vectors = axes * angles[:, None]
    vectors[:5] *= 1e-10  # series branch
    np.testing.assert_allclose(
        quaternion_xyzw_log_np(quaternion_xyzw_exp_np(vectors)), vectors, atol=1e-14
    )
    np.testing.assert_array_equal(quaternion_xyzw_exp_np(np.zeros(3)), [0, 0, 0, 1])
