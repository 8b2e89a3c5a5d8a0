"""Rotation representations: axis-angle, rotation matrices, the two 6D layouts, mirroring.

The 6D representation (Zhou et al., "On the Continuity of Rotation Representations in Neural
Networks", CVPR 2019) stores two 3-vectors a1, a2; Gram-Schmidt turns them into the first two
columns b1, b2 of a rotation matrix and b3 = b1 x b2 completes it, R = [b1 | b2 | b3].
The two base models disagree on where a1 and a2 sit inside the 6-vector v
(hamer-smplerx-reference.md, A.4 and B.6):

- ``'contiguous'`` (HaMeR): a1 = (v0, v1, v2), a2 = (v3, v4, v5).
- ``'interleaved'`` (SMPLer-X, from SPIN): v is a row-major 3x2 matrix, a1 = (v0, v2, v4),
  a2 = (v1, v3, v5).

Mixing them gives plausible but wrong rotations, so every 6D function takes the layout as a
required argument.

Mirroring: a left hand is processed as a flipped (mirrored) right hand. Reflecting the world in
the YZ-plane (x -> -x, M = diag(-1, 1, 1)) turns a rotation R into M R M; the rotation axis is a
pseudo-vector, so its axis-angle (x, y, z) becomes (x, -y, -z).

All functions are pure, batched over leading dimensions, and keep the input dtype and device
(they run under autocast and on GPU).
"""

from typing import Literal, get_args

import torch
import torch.nn.functional as F

Rot6dLayout = Literal['contiguous', 'interleaved']
"""Where the two 3-vectors sit in a 6D rotation: HaMeR 'contiguous', SMPLer-X 'interleaved'."""

ROT6D_LAYOUTS: tuple[str, ...] = get_args(Rot6dLayout)

_SMALL_ANGLE_RAD = 1e-4
"""Below this angle the Taylor series replaces sin/cos ratios (their error is ~angle^4)."""


def _check_layout(layout: str) -> None:
    if layout not in ROT6D_LAYOUTS:
        raise ValueError(
            f'unknown 6D rotation layout {layout!r}; use one of {ROT6D_LAYOUTS} '
            "('contiguous' for HaMeR, 'interleaved' for SMPLer-X)"
        )


def _check_last_dims(tensor: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if tensor.dim() < len(shape) or tuple(tensor.shape[tensor.dim() - len(shape) :]) != shape:
        expected = ', '.join(map(str, shape))
        raise ValueError(f'{name} must have shape (..., {expected}); got {tuple(tensor.shape)}')


def skew_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices [v]x with [v]x w = v x w.

    Args:
        vectors: (..., 3).

    Returns:
        (..., 3, 3) skew-symmetric matrices.
    """
    _check_last_dims(vectors, (3,), 'vectors')
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (
        torch.stack((zero, -z, y), dim=-1),
        torch.stack((z, zero, -x), dim=-1),
        torch.stack((-y, x, zero), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def axis_angle_to_rotmat(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, R = I + A [w]x + B [w]x^2 with A = sin(t)/t, B = (1 - cos t)/t^2.

    Written with the unnormalised vector w (angle t = |w|) so that the zero rotation needs no
    division; near t = 0 the ratios use their Taylor series (A = 1 - t^2/6, B = 1/2 - t^2/24),
    which keeps values and gradients finite.

    Args:
        axis_angle: (..., 3) rotation vectors, angle in radians = norm.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    _check_last_dims(axis_angle, (3,), 'axis_angle')
    angle_sq = (axis_angle * axis_angle).sum(-1)
    small = angle_sq < _SMALL_ANGLE_RAD**2
    # Replace tiny angles by 1 before sqrt/divide so that the unused branch stays finite
    # (torch.where propagates NaN gradients from the unselected branch otherwise).
    safe_sq = torch.where(small, torch.ones_like(angle_sq), angle_sq)
    safe_angle = safe_sq.sqrt()
    sin_ratio = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(safe_angle) / safe_angle)
    cos_ratio = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(safe_angle)) / safe_sq)
    k = skew_matrix(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sin_ratio[..., None, None] * k + cos_ratio[..., None, None] * (k @ k)


def _positive_w(quat: torch.Tensor) -> torch.Tensor:
    """Pick the quaternion sign with w >= 0 (q and -q are the same rotation)."""
    w = quat[..., :1]
    return quat * torch.where(w < 0, -torch.ones_like(w), torch.ones_like(w))


def rotmat_to_quaternion(rotmat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) with w >= 0 from rotation matrices.

    Steps:
        1. The four squares 4w^2, 4x^2, 4y^2, 4z^2 follow from the diagonal; the largest is
           at least 1 (they sum to 4), so dividing by its root is always well conditioned.
        2. Each candidate row [4ww, 4wx, 4wy, 4wz] (and the x, y, z analogues from the
           off-diagonal sums and differences) divided by 2 sqrt(its square) is +-q.
        3. Pick the best-conditioned candidate, renormalise, make w >= 0.

    Args:
        rotmat: (..., 3, 3) rotation matrices (small non-orthogonality is tolerated).

    Returns:
        (..., 4) quaternions (w, x, y, z), w >= 0.
    """
    _check_last_dims(rotmat, (3, 3), 'rotmat')
    r = rotmat
    r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    r20, r21, r22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    squares = torch.stack(
        (
            1.0 + r00 + r11 + r22,
            1.0 + r00 - r11 - r22,
            1.0 - r00 + r11 - r22,
            1.0 - r00 - r11 + r22,
        ),
        dim=-1,
    )
    candidates = torch.stack(
        (
            torch.stack((squares[..., 0], r21 - r12, r02 - r20, r10 - r01), dim=-1),
            torch.stack((r21 - r12, squares[..., 1], r01 + r10, r02 + r20), dim=-1),
            torch.stack((r02 - r20, r01 + r10, squares[..., 2], r12 + r21), dim=-1),
            torch.stack((r10 - r01, r02 + r20, r12 + r21, squares[..., 3]), dim=-1),
        ),
        dim=-2,
    )
    best = squares.argmax(dim=-1, keepdim=True)
    best_row = torch.gather(candidates, -2, best[..., None].expand(*best.shape[:-1], 1, 4))
    best_square = torch.gather(squares, -1, best)
    quat = best_row.squeeze(-2) / (2.0 * best_square.sqrt())
    quat = F.normalize(quat, dim=-1)
    return _positive_w(quat)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Axis-angle from unit quaternions (w, x, y, z); the angle lies in [0, pi].

    Uses angle = 2 atan2(|v|, w), stable at both ends; for |v| -> 0 the ratio angle/|v|
    tends to 2/w.

    Args:
        quat: (..., 4) unit quaternions (w, x, y, z).

    Returns:
        (..., 3) rotation vectors.
    """
    _check_last_dims(quat, (4,), 'quat')
    quat = _positive_w(quat)
    w, v = quat[..., 0], quat[..., 1:]
    norm_sq = (v * v).sum(-1)
    small = norm_sq < _SMALL_ANGLE_RAD**2
    safe_norm = torch.where(small, torch.ones_like(norm_sq), norm_sq).sqrt()
    # Series 2 atan(n/w)/n = (2/w)(1 - n^2/(3 w^2)); w is ~1 there, clamped only for safety.
    w_safe = w.clamp_min(0.5)
    ratio = torch.where(
        small,
        2.0 / w_safe * (1.0 - norm_sq / (3.0 * w_safe * w_safe)),
        2.0 * torch.atan2(safe_norm, w) / safe_norm,
    )
    return v * ratio[..., None]


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """Axis-angle from rotation matrices, robust near 0 and pi (goes through a quaternion).

    At exactly pi the sign of the axis is arbitrary (both describe the same rotation).

    Args:
        rotmat: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) rotation vectors, angle in [0, pi].
    """
    return quaternion_to_axis_angle(rotmat_to_quaternion(rotmat))


def rot6d_to_rotmat(rot6d: torch.Tensor, layout: Rot6dLayout) -> torch.Tensor:
    """Rotation matrices from 6D vectors by Gram-Schmidt, R = [b1 | b2 | b3] as columns.

    b1 = a1/|a1|, b2 = normalise(a2 - (b1.a2) b1), b3 = b1 x b2.

    Args:
        rot6d: (..., 6) network outputs.
        layout: 'contiguous' (HaMeR: a1 = v[0:3], a2 = v[3:6]) or 'interleaved'
            (SMPLer-X/SPIN: a1 = v[0::2], a2 = v[1::2]).

    Returns:
        (..., 3, 3) rotation matrices.

    Raises:
        ValueError: unknown layout or wrong last dimension.
    """
    _check_layout(layout)
    _check_last_dims(rot6d, (6,), 'rot6d')
    if layout == 'contiguous':
        a1, a2 = rot6d[..., 0:3], rot6d[..., 3:6]
    else:
        a1, a2 = rot6d[..., 0::2], rot6d[..., 1::2]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_rot6d(rotmat: torch.Tensor, layout: Rot6dLayout) -> torch.Tensor:
    """6D vectors holding the first two columns of R in the given layout.

    Args:
        rotmat: (..., 3, 3) rotation matrices.
        layout: 'contiguous' (HaMeR) or 'interleaved' (SMPLer-X); see rot6d_to_rotmat.

    Returns:
        (..., 6) vectors; rot6d_to_rotmat(rotmat_to_rot6d(R, l), l) == R.

    Raises:
        ValueError: unknown layout or wrong shape.
    """
    _check_layout(layout)
    _check_last_dims(rotmat, (3, 3), 'rotmat')
    columns = rotmat[..., :, :2]  # (..., 3, 2): rows (r_i0, r_i1)
    if layout == 'contiguous':
        return columns.transpose(-1, -2).reshape(*rotmat.shape[:-2], 6)
    return columns.reshape(*rotmat.shape[:-2], 6)


def mirror_axis_angle(axis_angle: torch.Tensor) -> torch.Tensor:
    """Mirror rotations in the YZ-plane: (x, y, z) -> (x, -y, -z) (left <-> right hand).

    Args:
        axis_angle: (..., 3).

    Returns:
        (..., 3) mirrored rotation vectors; applying twice gives the input.
    """
    _check_last_dims(axis_angle, (3,), 'axis_angle')
    # Negation is exact: the same values as a multiplication by (1, -1, -1), no constant.
    return torch.cat((axis_angle[..., :1], -axis_angle[..., 1:]), dim=-1)


def mirror_rotmat(rotmat: torch.Tensor) -> torch.Tensor:
    """Mirror rotation matrices in the YZ-plane: R -> M R M with M = diag(-1, 1, 1).

    Entry (i, j) changes sign when exactly one of i, j is the x axis; equivalent to
    mirror_axis_angle on the matrix's axis-angle.

    Args:
        rotmat: (..., 3, 3).

    Returns:
        (..., 3, 3) mirrored rotation matrices.
    """
    _check_last_dims(rotmat, (3, 3), 'rotmat')
    rows = torch.cat((-rotmat[..., :1, :], rotmat[..., 1:, :]), dim=-2)  # M R
    return torch.cat((-rows[..., :1], rows[..., 1:]), dim=-1)  # (M R) M
