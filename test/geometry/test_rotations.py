"""Tests for hmr_ros.geometry.rotations: 6D layouts, axis-angle, mirroring."""

import math

import pytest
import torch

from hmr_ros.geometry.rotations import (
    ROT6D_LAYOUTS,
    axis_angle_to_rotmat,
    mirror_axis_angle,
    mirror_rotmat,
    quaternion_to_axis_angle,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    rotmat_to_quaternion,
    rotmat_to_rot6d,
)

DTYPE = torch.float64


def random_axis_angle(n: int, seed: int = 0, max_angle: float = math.pi) -> torch.Tensor:
    """Rotation vectors with uniformly random axes and angles in [0, max_angle)."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=DTYPE), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=DTYPE) * max_angle
    return axis * angle


def random_rotmat(n: int, seed: int = 0) -> torch.Tensor:
    """Random proper rotations from QR of Gaussian matrices (det fixed to +1)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=DTYPE))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    q[torch.det(q) < 0, :, 2] *= -1
    return q


def test_random_rotmat_helper_gives_rotations():
    r = random_rotmat(50)
    eye = torch.eye(3, dtype=DTYPE).expand(50, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye)
    torch.testing.assert_close(torch.det(r), torch.ones(50, dtype=DTYPE))


@pytest.mark.parametrize('layout', ROT6D_LAYOUTS)
def test_rot6d_round_trip_matrix(layout):
    """R -> 6D -> R is exact for rotation matrices in both layouts."""
    r = random_rotmat(100, seed=1)
    torch.testing.assert_close(rot6d_to_rotmat(rotmat_to_rot6d(r, layout), layout), r)


@pytest.mark.parametrize('layout', ROT6D_LAYOUTS)
def test_rot6d_arbitrary_vectors_give_rotations_and_are_idempotent(layout):
    """Any non-degenerate 6-vector maps to a proper rotation; re-encoding it is stable."""
    g = torch.Generator().manual_seed(2)
    v = torch.randn(64, 6, generator=g, dtype=DTYPE)
    r = rot6d_to_rotmat(v, layout)
    eye = torch.eye(3, dtype=DTYPE).expand(64, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye)
    torch.testing.assert_close(torch.det(r), torch.ones(64, dtype=DTYPE))
    torch.testing.assert_close(rot6d_to_rotmat(rotmat_to_rot6d(r, layout), layout), r)


def test_rot6d_known_values():
    """Hand-derived: a1 = (0, 1, 0), a2 = (-1, 0, 0) give b3 = a1 x a2 = (0, 0, 1),
    R = [[0, -1, 0], [1, 0, 0], [0, 0, 1]] = Rz(90 deg).
    Contiguous holds them as (0, 1, 0, -1, 0, 0); interleaved as
    (a1_0, a2_0, a1_1, a2_1, a1_2, a2_2) = (0, -1, 1, 0, 0, 0)."""
    rz90 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=DTYPE)
    contiguous = torch.tensor([0.0, 1.0, 0.0, -1.0, 0.0, 0.0], dtype=DTYPE)
    interleaved = torch.tensor([0.0, -1.0, 1.0, 0.0, 0.0, 0.0], dtype=DTYPE)
    torch.testing.assert_close(rot6d_to_rotmat(contiguous, 'contiguous'), rz90)
    torch.testing.assert_close(rot6d_to_rotmat(interleaved, 'interleaved'), rz90)
    torch.testing.assert_close(rotmat_to_rot6d(rz90, 'contiguous'), contiguous)
    torch.testing.assert_close(rotmat_to_rot6d(rz90, 'interleaved'), interleaved)
    identity_contiguous = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=DTYPE)
    torch.testing.assert_close(
        rot6d_to_rotmat(identity_contiguous, 'contiguous'), torch.eye(3, dtype=DTYPE)
    )


def test_layouts_differ_on_same_vector():
    """Decoding a contiguous 6D vector as interleaved gives a different rotation."""
    r = random_rotmat(20, seed=3)
    v = rotmat_to_rot6d(r, 'contiguous')
    wrong = rot6d_to_rotmat(v, 'interleaved')
    per_item_error = (wrong - r).abs().amax(dim=(-1, -2))
    assert bool((per_item_error > 1e-2).all())


def test_rot6d_rejects_unknown_layout_and_shape():
    with pytest.raises(ValueError, match='contiguous'):
        rot6d_to_rotmat(torch.zeros(6), 'hamer')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r'\(\.\.\., 6\)'):
        rot6d_to_rotmat(torch.zeros(2, 5), 'contiguous')


def test_axis_angle_known_values():
    """(0, 0, pi/2) is Rz(90 deg); (pi, 0, 0) is diag(1, -1, -1)."""
    aa = torch.tensor([[0.0, 0.0, math.pi / 2], [math.pi, 0.0, 0.0]], dtype=DTYPE)
    expected = torch.tensor(
        [
            [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            [[1.0, 0, 0], [0, -1, 0], [0, 0, -1]],
        ],
        dtype=DTYPE,
    )
    torch.testing.assert_close(axis_angle_to_rotmat(aa), expected)


def test_axis_angle_round_trip_generic():
    aa = random_axis_angle(200, seed=4, max_angle=math.pi - 1e-3)
    r = axis_angle_to_rotmat(aa)
    torch.testing.assert_close(rotmat_to_axis_angle(r), aa)


@pytest.mark.parametrize('angle', [0.0, 1e-12, 1e-8, 1e-5, 3e-4, math.pi - 1e-6, math.pi])
def test_axis_angle_round_trip_near_zero_and_pi(angle):
    """No NaN; near pi the sign of the axis is ambiguous, so compare matrices."""
    axes = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 2, 3], [-3, 1, 0.5]], dtype=DTYPE),
        dim=-1,
    )
    aa = axes * angle
    r = axis_angle_to_rotmat(aa)
    back = rotmat_to_axis_angle(r)
    assert torch.isfinite(back).all()
    torch.testing.assert_close(axis_angle_to_rotmat(back), r, atol=1e-9, rtol=0)
    torch.testing.assert_close(back.norm(dim=-1), aa.norm(dim=-1), atol=1e-6, rtol=0)


def test_axis_angle_gradients_finite_at_zero():
    aa = torch.zeros(4, 3, dtype=DTYPE, requires_grad=True)
    r = axis_angle_to_rotmat(aa)
    back = rotmat_to_axis_angle(r)
    (r.sum() + back.sum()).backward()
    assert aa.grad is not None and torch.isfinite(aa.grad).all()


def test_rodrigues_matches_matrix_exponential():
    aa = random_axis_angle(30, seed=5)
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack(
        (
            torch.stack((zero, -z, y), -1),
            torch.stack((z, zero, -x), -1),
            torch.stack((-y, x, zero), -1),
        ),
        dim=-2,
    )
    torch.testing.assert_close(axis_angle_to_rotmat(aa), torch.linalg.matrix_exp(k))


def test_quaternion_has_nonnegative_w_and_unit_norm():
    q = rotmat_to_quaternion(random_rotmat(100, seed=6))
    assert bool((q[:, 0] >= 0).all())
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(100, dtype=DTYPE))
    torch.testing.assert_close(quaternion_to_axis_angle(-q), quaternion_to_axis_angle(q))


def test_mirror_twice_is_identity():
    aa = random_axis_angle(10, seed=7)
    r = random_rotmat(10, seed=7)
    torch.testing.assert_close(mirror_axis_angle(mirror_axis_angle(aa)), aa)
    torch.testing.assert_close(mirror_rotmat(mirror_rotmat(r)), r)


def test_mirror_rotmat_is_reflection_in_yz_plane():
    """mirror_rotmat(R) == M R M with M = diag(-1, 1, 1), and it is still a rotation."""
    r = random_rotmat(25, seed=8)
    m = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=DTYPE))
    torch.testing.assert_close(mirror_rotmat(r), m @ r @ m)
    torch.testing.assert_close(torch.det(mirror_rotmat(r)), torch.ones(25, dtype=DTYPE))


def test_mirror_axis_angle_matches_mirror_rotmat():
    """(x, y, z) -> (x, -y, -z) in axis-angle is the same mirror as M R M on matrices."""
    aa = random_axis_angle(25, seed=9)
    torch.testing.assert_close(
        axis_angle_to_rotmat(mirror_axis_angle(aa)), mirror_rotmat(axis_angle_to_rotmat(aa))
    )


def test_mirror_maps_points_consistently():
    """Mirroring a rotated point equals rotating the mirrored point with the mirrored rotation."""
    r = random_rotmat(5, seed=10)
    p = torch.randn(5, 3, 1, dtype=DTYPE)
    m = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=DTYPE))
    torch.testing.assert_close(m @ (r @ p), mirror_rotmat(r) @ (m @ p))


def test_functions_keep_dtype_and_leading_dims():
    aa = torch.randn(2, 4, 3)
    r = axis_angle_to_rotmat(aa)
    assert r.shape == (2, 4, 3, 3) and r.dtype == torch.float32
    assert rotmat_to_axis_angle(r).shape == (2, 4, 3)
    for layout in ROT6D_LAYOUTS:
        assert rotmat_to_rot6d(r, layout).shape == (2, 4, 6)
        assert rot6d_to_rotmat(rotmat_to_rot6d(r, layout), layout).shape == (2, 4, 3, 3)
