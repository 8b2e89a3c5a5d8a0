"""Rotation representations: axis-angle, rotation matrices, the two 6D layouts, mirroring.

The 6D representation (Zhou et al., "On the Continuity of Rotation Representations in Neural
Networks", CVPR 2019) stores two 3-vectors a1, a2; Gram-Schmidt turns them into the first two
columns b1, b2 of a rotation matrix and b3 = b1 x b2 completes it, R = [b1 | b2 | b3].
The two base models disagree on where a1 and a2 sit inside the 6-vector v
(docs/model-reference.md, A.4 and B.6):

- ``'contiguous'`` (HaMeR): a1 = (v0, v1, v2), a2 = (v3, v4, v5).
- ``'interleaved'`` (SMPLer-X, from SPIN): v is a row-major 3x2 matrix, a1 = (v0, v2, v4),
  a2 = (v1, v3, v5).

Mixing them gives plausible but wrong rotations, so every 6D function takes the layout as a
required argument.

Mirroring: a left hand is processed as a flipped (mirrored) right hand. Reflecting the world in
the YZ-plane (x -> -x, M = diag(-1, 1, 1)) turns a rotation R into M R M; the rotation axis is a
pseudo-vector, so its axis-angle (x, y, z) becomes (x, -y, -z).

All torch functions are pure, batched over leading dimensions, and keep the input dtype and
device (they run under autocast and on GPU).

Host twins (suffix ``_np``): the node's per-frame work after the model (smoothing, TF, messages)
runs on small numpy arrays, where a torch call costs more than the arithmetic. These functions are
the one numpy implementation of quaternions and rotation matrices in the project, batched the same
way, in float64, with quaternions in the ROS order ``(x, y, z, w)`` (``geometry_msgs/Quaternion``)
and Hamilton's product (``i j = k``), the convention of ROS, Eigen and tf2.
"""

from typing import Literal, get_args

import numpy as np
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


# ---------------------------------------------------------------------- host (numpy) twins

QUATERNION_SIZE = 4
_SMALL_ANGLE_NP_RAD = 1e-8
"""Below this the numpy twins use series for sin/cos ratios (float64: error ~angle^2 * 1e-16)."""


def axis_angle_to_rotmat_np(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula in numpy, as :func:`axis_angle_to_rotmat`; exact at zero angle.

    Args:
        axis_angle: ``(..., 3)`` rotation vectors, radians.

    Returns:
        ``(..., 3, 3)`` float64 rotation matrices.
    """
    vectors = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(vectors, axis=-1)[..., None, None]
    skew = np.zeros(vectors.shape[:-1] + (3, 3), dtype=np.float64)
    skew[..., 0, 1], skew[..., 0, 2] = -vectors[..., 2], vectors[..., 1]
    skew[..., 1, 0], skew[..., 1, 2] = vectors[..., 2], -vectors[..., 0]
    skew[..., 2, 0], skew[..., 2, 1] = -vectors[..., 1], vectors[..., 0]
    small = angle < _SMALL_ANGLE_NP_RAD
    safe = np.where(small, 1.0, angle)
    # sin(t)/t and (1 - cos t)/t^2 with their series limits 1 and 1/2 at t = 0.
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / (safe * safe))
    return np.eye(3) + a * skew + b * (skew @ skew)


_ORTHONORMAL_TOLERANCE = 1e-12
"""Largest entry of ``R^T R - I`` for which a matrix counts as a rotation already."""


def nearest_rotation_np(rotmat: np.ndarray) -> np.ndarray:
    """The proper rotation nearest to each matrix (Frobenius norm), by SVD: ``U diag(1,1,d) V^T``.

    Network outputs in float32 are only nearly orthonormal; projecting them first makes every
    later quaternion exact for the rotation actually meant.

    Args:
        rotmat: ``(..., 3, 3)``, finite.

    Returns:
        ``(..., 3, 3)`` float64, orthonormal with determinant +1.

    Raises:
        ValueError: wrong shape or non-finite entries.
    """
    matrices = np.asarray(rotmat, dtype=np.float64)
    if matrices.shape[-2:] != (3, 3):
        raise ValueError(f'rotation matrices must be (..., 3, 3), got {matrices.shape}')
    if not np.all(np.isfinite(matrices)):
        raise ValueError('rotation matrix has non-finite entries')
    flat = matrices.reshape(-1, 3, 3)
    # Rotations already orthonormal to float64 precision (built from cross products or
    # quaternions in float64) are their own projection: skip their SVD.
    gram_error = np.abs(np.swapaxes(flat, -1, -2) @ flat - np.eye(3)).reshape(-1, 9).max(-1)
    project = ~((gram_error < _ORTHONORMAL_TOLERANCE) & (np.linalg.det(flat) > 0.0))
    if not project.any():
        return flat.copy().reshape(matrices.shape)
    if project.all():
        return _svd_rotation(flat).reshape(matrices.shape)
    result = flat.copy()
    result[project] = _svd_rotation(flat[project])
    return result.reshape(matrices.shape)


def _svd_rotation(matrices: np.ndarray) -> np.ndarray:
    """``U diag(1, 1, det(U V^T)) V^T`` of ``(N, 3, 3)`` matrices."""
    u, _, vt = np.linalg.svd(matrices)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    u[..., :, 2] *= np.where(sign == 0.0, 1.0, sign)[..., None]
    return u @ vt


def _quaternion_outer_from_rotmat() -> tuple[np.ndarray, np.ndarray]:
    """``(9, 16)`` map and ``(16,)`` offset from a flat rotation matrix to ``4 q q^T`` (xyzw).

    The diagonal: ``4x^2 = 1 + r00 - r11 - r22``, ``4y^2 = 1 - r00 + r11 - r22``,
    ``4z^2 = 1 - r00 - r11 + r22``, ``4w^2 = 1 + r00 + r11 + r22``; off the diagonal:
    ``4xy = r01 + r10``, ``4xz = r02 + r20``, ``4yz = r12 + r21``, ``4xw = r21 - r12``,
    ``4yw = r02 - r20``, ``4zw = r10 - r01`` (Shepperd's method).
    """
    terms = {
        (0, 0): {(0, 0): 1, (1, 1): -1, (2, 2): -1},
        (1, 1): {(0, 0): -1, (1, 1): 1, (2, 2): -1},
        (2, 2): {(0, 0): -1, (1, 1): -1, (2, 2): 1},
        (3, 3): {(0, 0): 1, (1, 1): 1, (2, 2): 1},
        (0, 1): {(0, 1): 1, (1, 0): 1},
        (0, 2): {(0, 2): 1, (2, 0): 1},
        (1, 2): {(1, 2): 1, (2, 1): 1},
        (0, 3): {(2, 1): 1, (1, 2): -1},
        (1, 3): {(0, 2): 1, (2, 0): -1},
        (2, 3): {(1, 0): 1, (0, 1): -1},
    }
    matrix = np.zeros((9, 16))
    offset = np.zeros(16)
    for (i, j), entries in terms.items():
        for (row, column), sign in entries.items():
            matrix[3 * row + column, 4 * i + j] = matrix[3 * row + column, 4 * j + i] = sign
        if i == j:
            offset[4 * i + j] = 1.0
    return matrix, offset


_ROTMAT_TO_QUATERNION_OUTER, _QUATERNION_OUTER_OFFSET = _quaternion_outer_from_rotmat()


def rotmat_to_quaternion_xyzw_np(rotmat: np.ndarray, *, project: bool = True) -> np.ndarray:
    """Unit quaternions ``(x, y, z, w)`` with ``w >= 0`` of rotation matrices (Shepperd's method).

    Steps:
        1. Optionally project onto the nearest rotation (:func:`nearest_rotation_np`).
        2. ``4 q q^T`` is linear in the matrix entries (one matrix product): its diagonal holds
           ``4x^2, 4y^2, 4z^2, 4w^2`` (``1 + tr`` for ``w``, ``1 + r00 - r11 - r22`` for ``x``
           ...), its other entries the off-diagonal sums and differences.
        3. The row of the largest diagonal value is ``4 q_k q``; that value is at least 1, so
           no square root of a near-zero number decides the result (stable near 180 degrees).
           Normalise it, pick the sign with ``w >= 0``.

    Args:
        rotmat: ``(..., 3, 3)`` rotation matrices.
        project: Project first. Pass False only for matrices that are orthonormal to float64
            precision already (products of projected rotations and Rodrigues matrices).

    Returns:
        ``(..., 4)`` float64.

    Raises:
        ValueError: wrong shape or non-finite entries.
    """
    if project:
        r = nearest_rotation_np(rotmat)
    else:
        r = np.asarray(rotmat, dtype=np.float64)
        if r.shape[-2:] != (3, 3):
            raise ValueError(f'rotation matrices must be (..., 3, 3), got {r.shape}')
    batch = r.shape[:-2]
    outer = r.reshape(-1, 9) @ _ROTMAT_TO_QUATERNION_OUTER + _QUATERNION_OUTER_OFFSET
    outer = outer.reshape(-1, 4, 4)
    best = np.argmax(outer[:, [0, 1, 2, 3], [0, 1, 2, 3]], axis=-1)
    quaternion = outer[np.arange(outer.shape[0]), best]
    quaternion /= np.sqrt(np.sum(quaternion * quaternion, axis=-1, keepdims=True))
    quaternion *= np.where(quaternion[:, 3:] < 0.0, -1.0, 1.0)
    return quaternion.reshape(*batch, QUATERNION_SIZE)


def _rotmat_from_quaternion_outer() -> np.ndarray:
    """``(16, 9)`` map from ``q q^T`` (xyzw, unit q) to the flat rotation matrix.

    ``R = (w^2 - |v|^2) I + 2 v v^T + 2 w [v]x``; with ``x^2 + y^2 + z^2 + w^2 = 1`` every entry
    is a quadratic form of q, e.g. ``r00 = x^2 - y^2 - z^2 + w^2``, ``r01 = 2 (xy - zw)``.
    """
    x, y, z, w = range(4)
    entries = {
        (0, 0): {(x, x): 1, (y, y): -1, (z, z): -1, (w, w): 1},
        (1, 1): {(x, x): -1, (y, y): 1, (z, z): -1, (w, w): 1},
        (2, 2): {(x, x): -1, (y, y): -1, (z, z): 1, (w, w): 1},
        (0, 1): {(x, y): 2, (z, w): -2},
        (1, 0): {(x, y): 2, (z, w): 2},
        (0, 2): {(x, z): 2, (y, w): 2},
        (2, 0): {(x, z): 2, (y, w): -2},
        (1, 2): {(y, z): 2, (x, w): -2},
        (2, 1): {(y, z): 2, (x, w): 2},
    }
    matrix = np.zeros((16, 9))
    for (row, column), terms in entries.items():
        for (i, j), weight in terms.items():
            matrix[4 * i + j, 3 * row + column] = weight
    return matrix


_QUATERNION_OUTER_TO_ROTMAT = _rotmat_from_quaternion_outer()


def quaternion_xyzw_to_rotmat_np(quaternion_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions ``(x, y, z, w)`` (normalised first).

    ``R = (w^2 - |v|^2) I + 2 v v^T + 2 w [v]x`` for the unit quaternion ``(v, w)``, computed
    as one matrix product of ``q q^T``.

    Args:
        quaternion_xyzw: ``(..., 4)``, non-zero.

    Returns:
        ``(..., 3, 3)`` float64.
    """
    q = np.asarray(quaternion_xyzw, dtype=np.float64)
    batch = q.shape[:-1]
    q = q.reshape(-1, 4)
    q = q / np.sqrt(np.sum(q * q, axis=-1, keepdims=True))
    outer = (q[:, :, None] * q[:, None, :]).reshape(-1, 16)
    return (outer @ _QUATERNION_OUTER_TO_ROTMAT).reshape(*batch, 3, 3)


def quaternion_xyzw_conjugate_np(quaternion_xyzw: np.ndarray) -> np.ndarray:
    """``(-x, -y, -z, w)``: the inverse rotation of unit quaternions ``(..., 4)``."""
    return np.asarray(quaternion_xyzw) * np.array([-1.0, -1.0, -1.0, 1.0])


def _hamilton_product_tensor() -> np.ndarray:
    """``(16, 4)`` map from ``a b^T`` (xyzw) to the Hamilton product ``a b``.

    ``ab = (a_w b_v + b_w a_v + a_v x b_v, a_w b_w - a_v . b_v)``, so ``i j = k``, ``j i = -k``.
    """
    x, y, z, w = range(4)
    terms = {
        x: {(w, x): 1, (x, w): 1, (y, z): 1, (z, y): -1},
        y: {(w, y): 1, (y, w): 1, (z, x): 1, (x, z): -1},
        z: {(w, z): 1, (z, w): 1, (x, y): 1, (y, x): -1},
        w: {(w, w): 1, (x, x): -1, (y, y): -1, (z, z): -1},
    }
    matrix = np.zeros((16, 4))
    for component, entries in terms.items():
        for (i, j), sign in entries.items():
            matrix[4 * i + j, component] = sign
    return matrix


_HAMILTON_PRODUCT = _hamilton_product_tensor()


def quaternion_xyzw_multiply_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a b`` of ``(..., 4)`` quaternions ``(x, y, z, w)``: b first, then a.

    Computed as one matrix product of the outer product ``a b^T`` (16 terms) with the product's
    sign table.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    batch = a.shape[:-1]
    outer = (a.reshape(-1, 4)[:, :, None] * b.reshape(-1, 4)[:, None, :]).reshape(-1, 16)
    return (outer @ _HAMILTON_PRODUCT).reshape(*batch, QUATERNION_SIZE)


def quaternion_xyzw_log_np(quaternion_xyzw: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)``, radians, of unit quaternions ``(x, y, z, w)``, ``w >= 0``.

    ``angle = 2 atan2(|v|, w)``, stable at both ends; ``angle / |v| -> 2 / w`` as ``|v| -> 0``.
    """
    q = np.asarray(quaternion_xyzw, dtype=np.float64)
    vec, w = q[..., :3], q[..., 3]
    sin_half = np.sqrt(np.sum(vec * vec, axis=-1))
    angle = 2.0 * np.arctan2(sin_half, w)
    small = sin_half < _SMALL_ANGLE_NP_RAD
    scale = np.where(small, 2.0 / np.maximum(w, 0.5), angle / np.where(small, 1.0, sin_half))
    return vec * scale[..., None]


def quaternion_xyzw_exp_np(rotation_vector: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` ``(x, y, z, w)`` of rotation vectors ``(..., 3)``, radians.

    ``(sin(t/2) r/t, cos(t/2))`` with ``t = |r|``; ``sin(t/2)/t -> 1/2 - t^2/48`` near 0.
    """
    r = np.asarray(rotation_vector, dtype=np.float64)
    angle = np.sqrt(np.sum(r * r, axis=-1))
    small = angle < _SMALL_ANGLE_NP_RAD
    scale = np.where(
        small, 0.5 - angle**2 / 48.0, np.sin(0.5 * angle) / np.where(small, 1.0, angle)
    )
    return np.concatenate([r * scale[..., None], np.cos(0.5 * angle)[..., None]], axis=-1)
