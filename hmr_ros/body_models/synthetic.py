"""Generated stand-ins for the licensed SMPL-X and MANO model files (tests, demos, CI).

The real files (SMPL-X 1.1 `SMPLX_NEUTRAL.npz`, MANO 1.2 `MANO_RIGHT.pkl` / `MANO_LEFT.pkl`, and
HaMeR's `mano_mean_params.npz`) cannot be downloaded here or redistributed. This module writes
files with the same names, keys, array shapes and conventions, filled with deterministic, valid
content:

- Geometry: each kinematic joint owns a closed tube of vertices around its bone (a body-sized
  stick figure in T-pose, metres, y up, x towards the body's left, z forward). Skinning weights
  blend each tube with its parent's joint near the base; each row sums to 1.
- `J_regressor` averages the base ring of each tube, so it regresses exactly the designed joint
  positions from `v_template`; each row sums to 1.
- `kintree_table` holds the official parents (`joint_names.SMPLX_PARENTS` / `MANO_PARENTS`),
  root parent stored as 4294967295 (-1 as unsigned 32-bit), as in the official files.
- Faces are valid, non-degenerate triangles on the tubes, exactly the official counts (the
  last few pad the count with the other diagonal of some tube quads).
- Vertices the `smplx` package and HaMeR read by index (fingertips, toes, heels, nose, eyes,
  ears) sit where their names say.
- Shape, expression and pose blend shapes are small and random; only the first 10 shape and the
  first 10 expression components are non-zero (hmr_ros, HaMeR and SMPLer-X use 10 of each), but
  the arrays keep the official sizes, so `smplx` finds the expression space at component 300.
- Hand poses: a relaxed-curl `hands_mean` shared by SMPL-X and MANO, random orthonormal PCA
  components; left-hand data are the mirror images of the right-hand data, except for one quirk
  kept on purpose: the official `MANO_LEFT.pkl` `shapedirs` equal the right hand's instead of
  being mirrored (the bug HaMeR and `smplx` users patch), so code is tested against it.

Pickles in the official format: the official `.pkl` files are Python 2, protocol-2 pickles whose
`shapedirs` is a chumpy array (class `chumpy.ch.Ch`, the array under 'x' in its pickled state)
and whose `J_regressor` is a `scipy.sparse.csc.csc_matrix` (state: data, indices, indptr,
_shape, maxprint); Python 2 `str` (keys, array bytes) need `encoding='latin1'`. The stand-in
`.pkl` files are written the same way (`_OfficialPickler`: the GLOBAL opcodes name those
classes, strings are Python 2 `str`), without chumpy or scipy, so the loader
(`model_files.read_body_model_file`) is tested on that format; `smplx`'s own `pickle.load`
could not read them, as it cannot read the official files without chumpy.

Known differences from the official files: `vt`, `ft`, `joint2num`, `part2num` and SMPL-X
`hands_coeffs*` are not written (nothing here reads them, and the last three would need pickled
objects inside the `.npz`); the SMPL-X `.npz` is compressed (deflate level 1); the SMPL-X `.pkl`
stand-in keeps float32 arrays (the official file holds float64) to halve its size.

Security: the loader never unpickles with an unrestricted unpickler (`model_files`), and
checkpoints never go through pickle either (`hmr_ros.checkpoints.safe_load`).
"""

from __future__ import annotations

import copyreg
import io
import logging
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hmr_ros.body_models.joint_names import (
    MANO_FINGERTIP_VERTICES,
    MANO_JOINT_NAMES,
    MANO_PARENTS,
    NUM_HAND_JOINTS,
    NUM_SMPLX_CONTOUR_LANDMARKS,
    NUM_SMPLX_LANDMARKS,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
)

_LOG = logging.getLogger(__name__)

# Official sizes (SMPL-X 1.1, MANO 1.2).
SMPLX_NUM_VERTICES = 10475
SMPLX_NUM_FACES = 20908
SMPLX_SHAPE_SPACE_DIM = 300
SMPLX_EXPRESSION_SPACE_DIM = 100
SMPLX_NUM_CONTOUR_ANGLES = 79  # dynamic face contour: one row per degree of yaw in [-39, 39]
MANO_NUM_VERTICES = 778
MANO_NUM_FACES = 1538
MANO_NUM_BETAS = 10
MANO_NUM_HANDS_COEFFS = 1554  # rows of `hands_coeffs` (PCA coefficients of the MANO scans)
HAND_POSE_DIM = 3 * NUM_HAND_JOINTS  # 45 axis-angle values per hand
NUM_USED_COMPONENTS = 10  # non-zero shape / expression components
ROOT_PARENT_UINT32 = 2**32 - 1  # how the official kintree_table stores the root's parent
HAMER_MEAN_POSE_DIM = 6 * (1 + NUM_HAND_JOINTS)  # 96: 16 joints in contiguous 6D

SMPLX_VERTEX_IDS: dict[str, int] = {
    'nose': 9120,
    'reye': 9929,
    'leye': 9448,
    'rear': 616,
    'lear': 6,
    'rthumb': 8079,
    'rindex': 7669,
    'rmiddle': 7794,
    'rring': 7905,
    'rpinky': 8022,
    'lthumb': 5361,
    'lindex': 4933,
    'lmiddle': 5058,
    'lring': 5169,
    'lpinky': 5286,
    'LBigToe': 5770,
    'LSmallToe': 5780,
    'LHeel': 8846,
    'RBigToe': 8463,
    'RSmallToe': 8474,
    'RHeel': 8635,
}
"""SMPL-X vertices `smplx` reads as keypoints (values as in `smplx.vertex_ids['smplx']`)."""

_MIRROR = np.array([-1.0, 1.0, 1.0])  # reflection x -> -x (left <-> right)
_AXIS_ANGLE_MIRROR = np.array([1.0, -1.0, -1.0])  # the same reflection on axis-angle vectors

# Rest pose of the left half of the body as offsets from the parent joint, metres (y up, +x = the
# body's left, z forward); the right half is the mirror image. Rough adult proportions.
_BODY_OFFSETS_M: dict[str, tuple[float, float, float]] = {
    'pelvis': (0.0, -0.35, 0.01),
    'left_hip': (0.06, -0.09, 0.0),
    'spine1': (0.0, 0.11, -0.02),
    'left_knee': (0.04, -0.38, 0.0),
    'spine2': (0.0, 0.13, 0.0),
    'left_ankle': (-0.01, -0.40, -0.04),
    'spine3': (0.0, 0.05, 0.0),
    'left_foot': (0.02, -0.05, 0.12),
    'neck': (0.0, 0.22, -0.03),
    'left_collar': (0.07, 0.12, -0.01),
    'head': (0.0, 0.08, 0.05),
    'left_shoulder': (0.11, 0.04, -0.01),
    'left_elbow': (0.26, 0.0, -0.02),
    'left_wrist': (0.25, 0.0, 0.0),
    'jaw': (0.0, -0.02, 0.03),
    'left_eye_smplhf': (0.03, 0.06, 0.08),
}
# Left hand, palm down, fingers along +x: first segment from the wrist, then two segment lengths.
_FINGER_BASE_M: dict[str, tuple[float, float, float]] = {
    'index': (0.09, 0.005, 0.025),
    'middle': (0.095, 0.005, 0.005),
    'ring': (0.088, 0.0, -0.015),
    'pinky': (0.078, -0.004, -0.032),
    'thumb': (0.025, -0.01, 0.025),
}
_FINGER_DIRECTION: dict[str, tuple[float, float, float]] = {
    'index': (1.0, 0.0, 0.05),
    'middle': (1.0, 0.0, 0.0),
    'ring': (1.0, 0.0, -0.05),
    'pinky': (1.0, 0.0, -0.1),
    'thumb': (0.7, -0.2, 0.6),
}
_FINGER_SEGMENTS_M: dict[str, tuple[float, float]] = {
    'index': (0.035, 0.025),
    'middle': (0.04, 0.027),
    'ring': (0.037, 0.025),
    'pinky': (0.028, 0.02),
    'thumb': (0.035, 0.03),
}
_LEAF_LENGTH_M = {'finger': 0.022, 'foot': 0.08, 'jaw': 0.06, 'eye': 0.012}
_HEAD_TOP_M = (0.0, 0.15, 0.0)  # the head tube goes up from the head joint, not to its children

_RADIUS_M: dict[str, float] = {
    'pelvis': 0.12,
    'spine1': 0.12,
    'spine2': 0.12,
    'spine3': 0.13,  # chest
    'neck': 0.05,
    'head': 0.085,
    'collar': 0.05,
    'shoulder': 0.05,
    'elbow': 0.04,
    'wrist': 0.035,
    'hip': 0.08,
    'knee': 0.055,
    'ankle': 0.04,
    'foot': 0.035,
    'jaw': 0.035,
    'eye': 0.012,
    'thumb': 0.01,
    'finger': 0.008,
}


@dataclass(frozen=True)
class _Skeleton:
    """Rest joints and tube layout of a model (names, parents, positions, bone ends, radii)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    joints: np.ndarray  # (J, 3) metres
    tube_ends: np.ndarray  # (J, 3) metres
    radii: np.ndarray  # (J,) metres


@dataclass(frozen=True)
class _Mesh:
    """A skinned mesh in the layout of the official files (natural vertex order until placed)."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3) int64
    weights: np.ndarray  # (V, J), rows sum to 1
    j_regressor: np.ndarray  # (J, V), rows sum to 1
    group: np.ndarray  # (V,) joint index owning each vertex


def _normalized(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _radius(name: str) -> float:
    """Tube radius of a joint from its name (side and segment number ignored)."""
    base = name.removeprefix('left_').removeprefix('right_')
    if base in _RADIUS_M:
        return _RADIUS_M[base]
    base = base.rstrip('123')
    if base.startswith('eye'):
        return _RADIUS_M['eye']
    if base in _FINGER_BASE_M:
        return _RADIUS_M['thumb' if base == 'thumb' else 'finger']
    raise KeyError(f'no radius for joint {name}')


def _left_hand_offsets(prefix: str) -> dict[str, np.ndarray]:
    """Offsets from parent of the 15 finger joints of a left hand named `{prefix}{finger}{k}`."""
    offsets = {}
    for finger, base in _FINGER_BASE_M.items():
        direction = _normalized(np.array(_FINGER_DIRECTION[finger]))
        lengths = _FINGER_SEGMENTS_M[finger]
        offsets[f'{prefix}{finger}1'] = np.array(base)
        offsets[f'{prefix}{finger}2'] = direction * lengths[0]
        offsets[f'{prefix}{finger}3'] = direction * lengths[1]
    return offsets


def _tube_end(
    names: tuple[str, ...], parents: tuple[int, ...], joints: np.ndarray, j: int
) -> np.ndarray:
    """Where the tube of joint `j` ends: its main child, or a short extension for leaves."""
    name = names[j]
    children = [c for c, p in enumerate(parents) if p == j]
    preferred = {'pelvis': 'spine1', 'spine3': 'neck'}
    if name in preferred:
        return joints[names.index(preferred[name])]
    if name.endswith('wrist'):
        return joints[names.index(name.replace('wrist', 'middle1'))]
    if name == 'head':
        return joints[j] + np.array(_HEAD_TOP_M)
    if len(children) == 1:
        return joints[children[0]]
    direction = _normalized(joints[j] - joints[parents[j]])
    if name.endswith('foot'):
        length = _LEAF_LENGTH_M['foot']
    elif name == 'jaw':
        length = _LEAF_LENGTH_M['jaw']
        direction = _normalized(np.array([0.0, -0.4, 1.0]))
    elif 'eye' in name:
        length = _LEAF_LENGTH_M['eye']
        direction = np.array([0.0, 0.0, 1.0])
    else:
        length = _LEAF_LENGTH_M['finger']
    return joints[j] + direction * length


def _skeleton(
    names: tuple[str, ...], parents: tuple[int, ...], offsets: dict[str, np.ndarray]
) -> _Skeleton:
    joints = np.zeros((len(names), 3))
    for j, name in enumerate(names):
        parent = joints[parents[j]] if parents[j] >= 0 else np.zeros(3)
        joints[j] = parent + offsets[name]
    ends = np.stack([_tube_end(names, parents, joints, j) for j in range(len(names))])
    radii = np.array([_radius(n) for n in names])
    return _Skeleton(names, parents, joints, ends, radii)


def _smplx_skeleton() -> _Skeleton:
    offsets: dict[str, np.ndarray] = {}
    for name, body_offset in _BODY_OFFSETS_M.items():
        offsets[name] = np.array(body_offset)
        if name.startswith('left_'):
            offsets['right_' + name[len('left_') :]] = np.array(body_offset) * _MIRROR
    for name, hand_offset in _left_hand_offsets('left_').items():
        offsets[name] = hand_offset
        offsets['right_' + name[len('left_') :]] = hand_offset * _MIRROR
    return _skeleton(SMPLX_JOINT_NAMES, SMPLX_PARENTS, offsets)


def _mano_right_skeleton() -> _Skeleton:
    """MANO right hand: the SMPL-X right hand, wrist at the origin."""
    offsets = {name: offset * _MIRROR for name, offset in _left_hand_offsets('').items()}
    offsets['wrist'] = np.zeros(3)
    return _skeleton(MANO_JOINT_NAMES, MANO_PARENTS, offsets)


def _ring_layout(skeleton: _Skeleton, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments per ring and rings per tube so the tubes plus two caps each use `num_vertices`.

    Returns:
        (segments (J,), rings (J,)); sum(segments * rings) + 2 J <= num_vertices, short by fewer
        than min(segments) vertices.
    """
    lengths = np.linalg.norm(skeleton.tube_ends - skeleton.joints, axis=1)
    budget = num_vertices - 2 * len(lengths)
    area = 2 * np.pi * skeleton.radii * lengths
    spacing = np.sqrt(area.sum() / budget)
    segments = np.maximum(5, np.round(2 * np.pi * skeleton.radii / spacing)).astype(int)
    rings = np.maximum(2, np.floor(lengths / spacing) + 1).astype(int)
    target = area / area.sum() * budget
    while (segments * rings).sum() > budget:
        fill = np.where(rings > 2, segments * rings / target, -np.inf)
        rings[int(np.argmax(fill))] -= 1
    while True:
        left = budget - (segments * rings).sum()
        fits = segments <= left
        if not fits.any():
            return segments, rings
        fill = np.where(fits, segments * rings / target, np.inf)
        rings[int(np.argmin(fill))] += 1


def _build_mesh(
    skeleton: _Skeleton, num_vertices: int, num_faces: int, rng: np.random.Generator
) -> _Mesh:
    """Tube mesh around the bones with caps; pads faces to `num_faces` (see module docstring)."""
    segments, rings = _ring_layout(skeleton, num_vertices)
    num_joints = len(skeleton.names)
    vertices: list[np.ndarray] = []
    group: list[np.ndarray] = []
    along: list[np.ndarray] = []  # position along the bone, 0 at the joint, 1 at the tube end
    faces: list[np.ndarray] = []
    spare_faces: list[np.ndarray] = []  # the other diagonal of every quad, used as padding
    base_rings: list[np.ndarray] = []
    last_rings: list[np.ndarray] = []
    start = 0
    for j in range(num_joints):
        s, r = int(segments[j]), int(rings[j])
        p, e, radius = skeleton.joints[j], skeleton.tube_ends[j], skeleton.radii[j]
        d = _normalized(e - p)
        helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = _normalized(np.cross(d, helper))
        w = np.cross(d, u)
        t = np.linspace(0.0, 1.0, r)
        angle = 2 * np.pi * np.arange(s) / s
        circle = np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * w  # (s, 3)
        taper = 1.0 - 0.15 * t  # tubes narrow a little towards their end
        ring_points = (p + t[:, None] * (e - p))[:, None, :] + (
            radius * taper[:, None, None] * circle[None]
        )
        # Jitter all but the base ring, which J_regressor averages (its mean must stay exact).
        ring_points[1:] += rng.normal(scale=0.05 * radius, size=ring_points[1:].shape)
        caps = np.stack([p - 0.3 * radius * d, e + 0.3 * radius * d])
        vertices += [ring_points.reshape(-1, 3), caps]
        group.append(np.full(r * s + 2, j))
        along += [np.repeat(t, s), np.array([0.0, 1.0])]

        index = start + np.arange(r * s).reshape(r, s)
        a, b = index[:-1], np.roll(index, -1, axis=1)[:-1]
        c, dd = np.roll(index, -1, axis=1)[1:], index[1:]
        faces.append(np.stack([a, b, c], -1).reshape(-1, 3))
        faces.append(np.stack([a, c, dd], -1).reshape(-1, 3))
        spare_faces.append(np.stack([a, b, dd], -1).reshape(-1, 3))
        cap_start, cap_end = start + r * s, start + r * s + 1
        ring0, ring_last = index[0], index[-1]
        faces.append(np.stack([np.full(s, cap_start), np.roll(ring0, -1), ring0], -1))
        faces.append(np.stack([np.full(s, cap_end), ring_last, np.roll(ring_last, -1)], -1))
        base_rings.append(ring0)
        last_rings.append(ring_last)
        start += r * s + 2

    # Vertices the ring layout could not use become small bumps on the biggest tube's end.
    leftover = num_vertices - start
    host = int(np.argmax(segments * rings))
    host_ring = last_rings[host]
    for k in range(leftover):
        i0, i1, i2 = (host_ring[(2 * k + n) % len(host_ring)] for n in range(3))
        vertices.append(skeleton.tube_ends[host][None] + rng.normal(scale=0.01, size=(1, 3)))
        group.append(np.array([host]))
        along.append(np.array([1.0]))
        faces.append(np.array([[start + k, i0, i1], [start + k, i1, i2]]))

    face_array = np.concatenate(faces)
    padding = num_faces - len(face_array)
    if padding < 0:
        raise RuntimeError(f'tube mesh has {len(face_array)} faces, more than {num_faces}')
    face_array = np.concatenate([face_array, np.concatenate(spare_faces)[:padding]])

    vertex_array = np.concatenate(vertices)
    group_array = np.concatenate(group)
    along_array = np.concatenate(along)
    weights = np.zeros((num_vertices, num_joints))
    parents = np.array(skeleton.parents)
    parent_share = np.where(parents[group_array] >= 0, 0.5 * (1.0 - along_array) ** 2, 0.0)
    weights[np.arange(num_vertices), group_array] = 1.0 - parent_share
    has_parent = parents[group_array] >= 0
    weights[np.arange(num_vertices)[has_parent], parents[group_array][has_parent]] += parent_share[
        has_parent
    ]
    j_regressor = np.zeros((num_joints, num_vertices))
    for j, ring0 in enumerate(base_rings):
        j_regressor[j, ring0] = 1.0 / len(ring0)
    return _Mesh(vertex_array, face_array.astype(np.int64), weights, j_regressor, group_array)


def _place_vertices(mesh: _Mesh, targets: dict[int, tuple[int, np.ndarray]]) -> _Mesh:
    """Reorder vertices so official index k holds the vertex of joint g's tube nearest a point.

    Args:
        mesh: mesh in natural (tube by tube) order.
        targets: official vertex index -> (owning joint index, target point (3,)).

    Returns:
        The same mesh with vertices permuted and faces, weights and J_regressor remapped.
    """
    num_vertices = len(mesh.vertices)
    order = np.full(num_vertices, -1)
    taken = np.zeros(num_vertices, dtype=bool)
    for official_index, (joint, point) in targets.items():
        candidates = np.flatnonzero((mesh.group == joint) & ~taken)
        distances = np.linalg.norm(mesh.vertices[candidates] - point, axis=1)
        chosen = candidates[int(np.argmin(distances))]
        order[official_index] = chosen
        taken[chosen] = True
    order[order < 0] = np.flatnonzero(~taken)
    inverse = np.empty(num_vertices, dtype=np.int64)
    inverse[order] = np.arange(num_vertices)
    return _Mesh(
        vertices=mesh.vertices[order],
        faces=inverse[mesh.faces],
        weights=mesh.weights[order],
        j_regressor=mesh.j_regressor[:, order],
        group=mesh.group[order],
    )


def _shape_directions(
    mesh: _Mesh, num_components: int, rng: np.random.Generator, used: int = NUM_USED_COMPONENTS
) -> np.ndarray:
    """(V, 3, num_components): an overall-size direction, then smooth per-bone displacements."""
    num_vertices = len(mesh.vertices)
    directions = np.zeros((num_vertices, 3, num_components))
    directions[:, :, 0] = 0.03 * (mesh.vertices - mesh.vertices.mean(axis=0))
    num_joints = mesh.weights.shape[1]
    per_joint = rng.normal(scale=0.01, size=(num_joints, 3, used - 1))
    # Skinning weights blend the per-bone displacements, so neighbouring tubes move together.
    smooth = mesh.weights @ per_joint.reshape(num_joints, -1)
    noise = rng.normal(scale=0.001, size=(num_vertices, 3, used - 1))
    directions[:, :, 1:used] = smooth.reshape(num_vertices, 3, used - 1) + noise
    return directions


def _expression_directions(
    mesh: _Mesh, face_joints: list[int], rng: np.random.Generator
) -> np.ndarray:
    """(V, 3, 100) expression blend shapes, non-zero on the head and jaw only."""
    num_vertices = len(mesh.vertices)
    directions = np.zeros((num_vertices, 3, SMPLX_EXPRESSION_SPACE_DIM))
    on_face = np.isin(mesh.group, face_joints)
    directions[on_face, :, :NUM_USED_COMPONENTS] = rng.normal(
        scale=0.003, size=(int(on_face.sum()), 3, NUM_USED_COMPONENTS)
    )
    return directions


def _pose_directions(mesh: _Mesh, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 9 (J - 1)) float32 pose correctives: a vertex reacts to the joints that skin it."""
    num_vertices, num_joints = mesh.weights.shape
    reacts = np.repeat(mesh.weights[:, 1:] > 0, 9, axis=1)  # (V, 9 (J - 1))
    vertex, feature = np.nonzero(reacts)
    directions = np.zeros((num_vertices, 3, 9 * (num_joints - 1)), dtype=np.float32)
    noise = rng.standard_normal(size=(len(vertex), 3), dtype=np.float32)
    directions[vertex, :, feature] = noise * np.float32(0.002)
    return directions


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an `.npz` (zip of `.npy` files) with fast deflate (np.savez_compressed: 4x slower)."""
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for key, value in arrays.items():
            with archive.open(f'{key}.npy', 'w', force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


def _axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, (..., 3) -> (..., 3, 3)."""
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    axis = axis_angle / np.maximum(angle, 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    cross = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    sin, cos = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + sin * cross + (1 - cos) * cross @ cross


def _right_hands_mean(rng: np.random.Generator) -> np.ndarray:
    """(45,) relaxed curl of a right hand, axis-angle per joint in SMPL-X/MANO finger order.

    The synthetic right hand lies palm down (-y) with fingers along -x, so flexing a finger
    towards the palm is a positive rotation about +z.
    """
    flexion = np.tile([0.25, 0.3, 0.2], 5)
    flexion[-3:] *= 0.5  # the thumb (last in model order) curls less
    mean = np.zeros((NUM_HAND_JOINTS, 3))
    mean[:, 2] = flexion
    mean += rng.normal(scale=0.05, size=mean.shape)
    return mean.reshape(-1)


def _mirror_hand_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror axis-angle hand poses (..., 45) between left and right: (x, y, z) -> (x, -y, -z)."""
    return (pose.reshape(*pose.shape[:-1], -1, 3) * _AXIS_ANGLE_MIRROR).reshape(pose.shape)


def _pca_components(rng: np.random.Generator) -> np.ndarray:
    """(45, 45) orthonormal rows, the layout of `hands_components`."""
    q, r = np.linalg.qr(rng.normal(size=(HAND_POSE_DIM, HAND_POSE_DIM)))
    return (q * np.sign(np.diag(r))).T


def _mirror_pose_directions(posedirs: np.ndarray) -> np.ndarray:
    """Pose correctives of the mirrored model.

    Mirroring is M = diag(-1, 1, 1). A mirrored joint rotation is M R M, so the pose feature
    (R - I)[a, b] changes sign by m_a m_b, and a vertex offset component c by m_c; the left-hand
    basis is therefore m_c m_a m_b times the right-hand basis (posedirs is (V, 3, 9 K), feature
    9 k + 3 a + b).
    """
    m = _MIRROR
    sign_feature = np.tile((m[:, None] * m[None, :]).reshape(-1), posedirs.shape[-1] // 9)
    return posedirs * m[None, :, None] * sign_feature[None, None, :]


def _kintree_table(parents: tuple[int, ...]) -> np.ndarray:
    """(2, J) int64: official parents (root parent as 4294967295), then the joint ids."""
    row = [ROOT_PARENT_UINT32 if p < 0 else p for p in parents]
    return np.array([row, list(range(len(parents)))], dtype=np.int64)


def _gender_suffix(gender: str) -> str:
    if gender.lower() not in ('neutral', 'male', 'female'):
        raise ValueError(f"gender must be 'neutral', 'male' or 'female', got {gender!r}")
    return gender.upper()


def write_smplx_model(
    folder: str | Path, gender: str = 'neutral', *, seed: int = 0, ext: str = 'npz'
) -> Path:
    """Write a stand-in `SMPLX_{GENDER}.npz` (or `.pkl`) with the keys and shapes of SMPL-X 1.1.

    Keys: v_template (10475, 3), f (20908, 3), shapedirs (10475, 3, 400) = 300 shape + 100
    expression, posedirs (10475, 3, 486), J_regressor (55, 10475), kintree_table (2, 55),
    weights (10475, 55), hands_componentsl/r (45, 45), hands_meanl/r (45,), lmk_faces_idx (51,),
    lmk_bary_coords (51, 3), dynamic_lmk_faces_idx (79, 17), dynamic_lmk_bary_coords (79, 17, 3).
    Floats are float32 (about 13 MB compressed; written in about a second). With ext='pkl' the
    same content goes into the official pickle format (write_official_pickle: chumpy
    shapedirs, sparse J_regressor; about 120 MB).

    Args:
        folder: output folder, created if missing.
        gender: 'neutral', 'male' or 'female' (only the file name changes).
        seed: random seed; the same seed gives the same file content.
        ext: 'npz' or 'pkl'.

    Returns:
        Path of the written file.
    """
    if ext not in ('npz', 'pkl'):
        raise ValueError(f"ext must be 'npz' or 'pkl', got {ext!r}")
    path = Path(folder) / f'SMPLX_{_gender_suffix(gender)}.{ext}'
    path.parent.mkdir(parents=True, exist_ok=True)
    skeleton = _smplx_skeleton()
    rng = np.random.default_rng([seed, 0])
    mesh = _build_mesh(skeleton, SMPLX_NUM_VERTICES, SMPLX_NUM_FACES, rng)
    mesh = _place_vertices(mesh, _smplx_vertex_targets(skeleton))

    index = {name: j for j, name in enumerate(skeleton.names)}
    face_joints = [index['head'], index['jaw']]
    shapedirs = np.concatenate(
        [
            _shape_directions(mesh, SMPLX_SHAPE_SPACE_DIM, rng),
            _expression_directions(mesh, face_joints, rng),
        ],
        axis=2,
    )
    face_owner = mesh.group[mesh.faces[:, 0]]
    face_ids = np.flatnonzero(np.isin(face_owner, face_joints))
    num_static, num_contour = NUM_SMPLX_LANDMARKS, NUM_SMPLX_CONTOUR_LANDMARKS

    hands_rng = np.random.default_rng([seed, 1])
    right_mean = _right_hands_mean(hands_rng)
    right_components = _pca_components(hands_rng)
    arrays = {
        'v_template': mesh.vertices,
        'f': mesh.faces.astype(np.uint32),
        'shapedirs': shapedirs,
        'posedirs': _pose_directions(mesh, rng),
        'J_regressor': mesh.j_regressor,
        'kintree_table': _kintree_table(skeleton.parents),
        'weights': mesh.weights,
        'hands_componentsr': right_components,
        'hands_componentsl': _mirror_hand_pose(right_components),
        'hands_meanr': right_mean,
        'hands_meanl': _mirror_hand_pose(right_mean),
        'lmk_faces_idx': rng.choice(face_ids, size=num_static).astype(np.int64),
        'lmk_bary_coords': rng.dirichlet(np.ones(3), size=num_static),
        'dynamic_lmk_faces_idx': rng.choice(
            face_ids, size=(SMPLX_NUM_CONTOUR_ANGLES, num_contour)
        ).astype(np.int64),
        'dynamic_lmk_bary_coords': rng.dirichlet(
            np.ones(3), size=(SMPLX_NUM_CONTOUR_ANGLES, num_contour)
        ),
    }
    arrays_f32: dict[str, Any] = {
        key: value.astype(np.float32) if value.dtype.kind == 'f' else value
        for key, value in arrays.items()
    }
    if ext == 'pkl':
        write_official_pickle(path, arrays_f32)
    else:
        _save_npz(path, arrays_f32)
    _LOG.debug('wrote synthetic SMPL-X model %s', path)
    return path


def _smplx_vertex_targets(skeleton: _Skeleton) -> dict[int, tuple[int, np.ndarray]]:
    """Where the SMPL-X keypoint vertices (`SMPLX_VERTEX_IDS`) go: owning joint and point."""
    index = {name: j for j, name in enumerate(skeleton.names)}
    joints, ends = skeleton.joints, skeleton.tube_ends
    head = joints[index['head']]
    targets: dict[int, tuple[int, np.ndarray]] = {
        SMPLX_VERTEX_IDS['nose']: (index['head'], head + np.array([0.0, 0.05, 0.09])),
        SMPLX_VERTEX_IDS['lear']: (index['head'], head + np.array([0.09, 0.05, 0.0])),
        SMPLX_VERTEX_IDS['rear']: (index['head'], head + np.array([-0.09, 0.05, 0.0])),
    }
    for side, short, sign in (('left', 'l', 1.0), ('right', 'r', -1.0)):
        eye = index[f'{side}_eye_smplhf']
        targets[SMPLX_VERTEX_IDS[f'{short}eye']] = (eye, ends[eye])
        for finger in MANO_FINGERTIP_VERTICES:
            tip = index[f'{side}_{finger}3']
            targets[SMPLX_VERTEX_IDS[f'{short}{finger}']] = (tip, ends[tip])
        foot, ankle = index[f'{side}_foot'], index[f'{side}_ankle']
        big, small, heel = (f'{short.upper()}{part}' for part in ('BigToe', 'SmallToe', 'Heel'))
        targets[SMPLX_VERTEX_IDS[big]] = (foot, ends[foot] + np.array([-0.02 * sign, 0.0, 0.0]))
        targets[SMPLX_VERTEX_IDS[small]] = (foot, ends[foot] + np.array([0.03 * sign, 0.0, -0.01]))
        targets[SMPLX_VERTEX_IDS[heel]] = (ankle, joints[ankle] + np.array([0.0, -0.05, -0.06]))
    return targets


def _mano_right_data(seed: int) -> dict[str, object]:
    skeleton = _mano_right_skeleton()
    rng = np.random.default_rng([seed, 2])
    mesh = _build_mesh(skeleton, MANO_NUM_VERTICES, MANO_NUM_FACES, rng)
    tips = {
        vertex: (
            MANO_JOINT_NAMES.index(f'{finger}3'),
            skeleton.tube_ends[MANO_JOINT_NAMES.index(f'{finger}3')],
        )
        for finger, vertex in MANO_FINGERTIP_VERTICES.items()
    }
    mesh = _place_vertices(mesh, tips)
    hands_rng = np.random.default_rng([seed, 1])  # same stream as SMPL-X: same hands_mean
    hands_mean = _right_hands_mean(hands_rng)
    hands_components = _pca_components(hands_rng)
    return {
        'v_template': mesh.vertices,
        'f': mesh.faces.astype(np.uint32),
        'shapedirs': _shape_directions(mesh, MANO_NUM_BETAS, rng),
        'posedirs': _pose_directions(mesh, rng).astype(np.float64),
        'J_regressor': mesh.j_regressor,
        'J': mesh.j_regressor @ mesh.vertices,
        'kintree_table': _kintree_table(skeleton.parents),
        'weights': mesh.weights,
        'hands_components': hands_components,
        'hands_mean': hands_mean,
        'hands_coeffs': rng.normal(scale=0.5, size=(MANO_NUM_HANDS_COEFFS, HAND_POSE_DIM)),
        'bs_style': 'lbs',
        'bs_type': 'lrotmin',
    }


def _mano_left_data(right: dict[str, object]) -> dict[str, object]:
    """Mirror image of the right hand, keeping the official left `shapedirs` quirk."""
    left = dict(right)
    vertices = np.asarray(right['v_template']) * _MIRROR
    faces = np.asarray(right['f'])
    left['v_template'] = vertices
    left['f'] = faces[:, ::-1].copy()  # mirroring flips the winding; flip it back
    left['J'] = np.asarray(right['J_regressor']) @ vertices
    left['posedirs'] = _mirror_pose_directions(np.asarray(right['posedirs']))
    left['hands_components'] = _mirror_hand_pose(np.asarray(right['hands_components']))
    left['hands_mean'] = _mirror_hand_pose(np.asarray(right['hands_mean']))
    left['hands_coeffs'] = np.asarray(right['hands_coeffs']).copy()
    # Official quirk: MANO_LEFT.pkl's shapedirs equal the right hand's (x not negated).
    left['shapedirs'] = np.asarray(right['shapedirs']).copy()
    return left


class _OfficialObject:
    """An object to pickle under an official class name (chumpy, scipy) that is not importable.

    Pickled as NEWOBJ of that class with ``state`` for BUILD, as Python 2 pickled new-style
    objects at protocol 2; `_OfficialPickler` writes the GLOBAL opcode naming the class.
    """

    official_global: ClassVar[str] = ''

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
        return (copyreg.__newobj__, (type(self),), self.state)  # type: ignore[attr-defined]


class _ChumpyArray(_OfficialObject):
    """`chumpy.ch.Ch` holding an array: its __dict__ less _parents and _cache (Ch.__getstate__)."""

    official_global = 'chumpy.ch.Ch'

    def __init__(self, array: np.ndarray) -> None:
        super().__init__(
            {
                '_dirty_vars': {'x'},
                '_itr': None,
                '_make_dense': False,
                '_make_sparse': False,
                '_depends_on_deps': {},
                'x': np.asarray(array),
            }
        )


class _CscMatrix(_OfficialObject):
    """`scipy.sparse.csc.csc_matrix` (pre-1.8 module path): its __dict__ as pickled."""

    official_global = 'scipy.sparse.csc.csc_matrix'

    def __init__(self, dense: np.ndarray) -> None:
        dense = np.asarray(dense)
        column, row = np.nonzero(dense.T)  # column-major order, rows sorted in each column
        per_column = np.bincount(column, minlength=dense.shape[1])
        super().__init__(
            {
                '_shape': (int(dense.shape[0]), int(dense.shape[1])),
                'maxprint': 50,
                'indices': row.astype(np.int32),
                'indptr': np.concatenate(([0], np.cumsum(per_column))).astype(np.int32),
                'data': dense[row, column],
            }
        )


_PurePythonPickler: Any = pickle._Pickler


class _OfficialPickler(_PurePythonPickler):
    """Protocol-2 pickler writing what Python 2 wrote.

    `str` and `bytes` become Python 2 `str` (SHORT_BINSTRING / BINSTRING), numpy is named under
    `numpy.core`, and the stand-in classes under their official names. The pure-Python pickler
    is used because its opcode table can be extended.
    """

    dispatch = dict(_PurePythonPickler.dispatch)

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj.encode('latin1') if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes((len(data),)) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, type) and issubclass(obj, _OfficialObject):
            module, name = obj.official_global.rsplit('.', 1)
        else:
            module = getattr(obj, '__module__', '')
            if not module.startswith('numpy._core'):
                super().save_global(obj, name)
                return
            module = module.replace('numpy._core', 'numpy.core', 1)
            name = name or obj.__qualname__
        self.write(pickle.GLOBAL + f'{module}\n{name}\n'.encode('ascii'))
        self.memoize(obj)


def write_official_pickle(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` in the format of the official SMPL-X / MANO `.pkl` files.

    `shapedirs` becomes a chumpy array, `J_regressor` a scipy CSC matrix, strings Python 2
    `str` (module docstring).

    Args:
        path: output file.
        data: name -> numpy array or string.

    Returns:
        `path` as a Path.
    """
    path = Path(path)
    official: dict[str, Any] = dict(data)
    if 'shapedirs' in official:
        official['shapedirs'] = _ChumpyArray(official['shapedirs'])
    if 'J_regressor' in official:
        official['J_regressor'] = _CscMatrix(official['J_regressor'])
    buffer = io.BytesIO()
    _OfficialPickler(buffer, protocol=2).dump(official)
    path.write_bytes(buffer.getvalue())
    return path


def write_mano_models(folder: str | Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Write stand-in `MANO_RIGHT.pkl` and `MANO_LEFT.pkl` with the keys and shapes of MANO 1.2.

    Keys: v_template (778, 3), f (1538, 3), shapedirs (778, 3, 10) as a chumpy array, posedirs
    (778, 3, 135), J_regressor (16, 778) as a scipy CSC matrix, J (16, 3), kintree_table (2, 16),
    weights (778, 16), hands_components (45, 45), hands_mean (45,), hands_coeffs (1554, 45),
    bs_style, bs_type. float64, in the official files' pickle format (write_official_pickle).

    Args:
        folder: output folder, created if missing.
        seed: random seed; the same seed gives the same file content.

    Returns:
        (right path, left path).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    right = _mano_right_data(seed)
    paths = []
    for name, data in (('MANO_RIGHT.pkl', right), ('MANO_LEFT.pkl', _mano_left_data(right))):
        paths.append(write_official_pickle(folder / name, data))
    _LOG.debug('wrote synthetic MANO models in %s', folder)
    return paths[0], paths[1]


def write_mano_mean_params(path: str | Path, *, seed: int = 0) -> Path:
    """Write a stand-in for HaMeR's `mano_mean_params.npz` (the head's initial parameters).

    Keys: pose (96,) = 16 rotations (global orientation, then 15 finger joints) in HaMeR's
    contiguous 6D layout (first column of the matrix, then the second); shape (10,); cam (3,)
    = (s, tx, ty) with s > 0. The finger rotations are the relaxed curl of `hands_mean`, the global
    orientation a small rotation; float32.

    Args:
        path: output file (folder created if missing).
        seed: random seed; the same seed gives the same content.

    Returns:
        `path` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 3])
    hands_mean = _right_hands_mean(np.random.default_rng([seed, 1])).reshape(-1, 3)
    axis_angle = np.concatenate([rng.normal(scale=0.1, size=(1, 3)), hands_mean])
    rotations = _axis_angle_to_matrix(axis_angle)
    pose_6d = np.concatenate([rotations[:, :, 0], rotations[:, :, 1]], axis=-1).reshape(-1)
    cam = np.array([0.9, 0.0, 0.0]) + rng.normal(scale=0.02, size=3)
    np.savez(
        path,
        pose=pose_6d.astype(np.float32),
        shape=rng.normal(scale=0.3, size=MANO_NUM_BETAS).astype(np.float32),
        cam=cam.astype(np.float32),
    )
    return path


def write_body_model_files(folder: str | Path, *, seed: int = 0) -> Path:
    """Write every stand-in into one folder.

    The folder gets SMPLX_NEUTRAL.npz, MANO_RIGHT.pkl, MANO_LEFT.pkl and mano_mean_params.npz.

    Args:
        folder: output folder, created if missing.
        seed: random seed shared by all files.

    Returns:
        `folder` as a Path.
    """
    folder = Path(folder)
    write_smplx_model(folder, seed=seed)
    write_mano_models(folder, seed=seed)
    write_mano_mean_params(folder / 'mano_mean_params.npz', seed=seed)
    return folder
