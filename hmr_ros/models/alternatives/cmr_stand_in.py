"""Generated stand-ins for CMR's mesh hierarchy (tests and ``model.use_test_assets`` only).

CMR's ``template/transform.pkl`` is MANO-derived and user-supplied (docs/cmr.md). The official
one was made by quadric-error decimation of the MANO template (psbody-mesh's
``generate_transform_matrices``, factor 2 per level), which needs psbody-mesh (C++, Boost, not
installable here). The stand-in keeps what the model's code depends on and nothing else:

- level 0 is the given 778-vertex MANO template with its faces (the stand-in MANO's, or the
  user's), so its spirals are the real OpenMesh-order spirals of that mesh;
- each coarser level keeps every other vertex of the level above (389, 195, 98, 49 vertices,
  the published sizes), triangulated as a strip, not a decimated surface;
- down-sampling selects the kept vertices; up-sampling gives every fine vertex inverse-distance
  weights to its 3 nearest coarse vertices (the official matrices are barycentric weights in
  the nearest coarse triangle: 3 per row too).

Weights trained on the published hierarchy do not work on this one; random weights do.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hmr_ros.body_models.synthetic import _CscMatrix, _OfficialPickler
from hmr_ros.checkpoints.cmr_layout import CmrMeshHierarchy
from hmr_ros.models.alternatives.cmr import CMR_HAND_LEVELS

if TYPE_CHECKING:
    from hmr_ros.models.alternatives.cmr_hand import CmrHandExpert

__all__ = ['stand_in_cmr_hand', 'stand_in_cmr_hierarchy', 'write_cmr_transform_file']


def _strip_faces(num_vertices: int) -> np.ndarray:
    """Triangle strip over vertices 0..n-1, consistently oriented."""
    faces = [
        (i, i + 1, i + 2) if i % 2 == 0 else (i + 1, i, i + 2) for i in range(num_vertices - 2)
    ]
    return np.asarray(faces, dtype=np.int64)


def _up_matrix(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """(V_fine, V_coarse) inverse-distance weights to the 3 nearest coarse vertices, rows sum 1."""
    distance = np.linalg.norm(fine[:, None] - coarse[None], axis=-1)
    nearest = np.argsort(distance, axis=1, kind='stable')[:, :3]
    weights = 1.0 / (np.take_along_axis(distance, nearest, axis=1) + 1e-6)
    weights /= weights.sum(axis=1, keepdims=True)
    matrix = np.zeros((len(fine), len(coarse)))
    np.put_along_axis(matrix, nearest, weights, axis=1)
    return matrix


def stand_in_cmr_hierarchy(vertices: np.ndarray, faces: np.ndarray) -> CmrMeshHierarchy:
    """A hierarchy of the published sizes over a 778-vertex MANO template (module docstring).

    Args:
        vertices: (778, 3) template vertices, metres.
        faces: (F, 3) its triangles.

    Returns:
        CmrMeshHierarchy, finest first (778, 389, 195, 98, 49).

    Raises:
        ValueError: the template does not have 778 vertices.
    """
    if vertices.shape != (CMR_HAND_LEVELS[0], 3):
        raise ValueError(f'need a (778, 3) MANO template; got {vertices.shape}')
    level_vertices = [np.asarray(vertices, dtype=np.float64)]
    level_faces = [np.asarray(faces, dtype=np.int64)]
    down: list[torch.Tensor] = []
    up: list[torch.Tensor] = []
    for size in CMR_HAND_LEVELS[1:]:
        fine = level_vertices[-1]
        kept = np.arange(0, len(fine), 2)[:size]
        coarse = fine[kept]
        selection = np.zeros((size, len(fine)))
        selection[np.arange(size), kept] = 1.0
        down.append(torch.from_numpy(selection).float().to_sparse().coalesce())
        up.append(torch.from_numpy(_up_matrix(fine, coarse)).float().to_sparse().coalesce())
        level_vertices.append(coarse)
        level_faces.append(_strip_faces(size))
    return CmrMeshHierarchy(level_vertices, level_faces, down, up)


def write_cmr_transform_file(path: str | Path, hierarchy: CmrMeshHierarchy) -> Path:
    """Write a hierarchy in the layout of the official ``transform.pkl``.

    A latin-1 protocol-2 pickle of a dict with ``vertices``, ``face``, ``down_transform`` and
    ``up_transform``, the matrices as ``scipy.sparse`` CSC objects (written without scipy, as
    the body-model stand-ins are).
    """
    path = Path(path)

    def csc(matrix: torch.Tensor) -> Any:
        return _CscMatrix(matrix.to_dense().double().numpy())

    data = {
        'vertices': list(hierarchy.vertices),
        'face': [f.astype(np.int64) for f in hierarchy.faces],
        'down_transform': [csc(m) for m in hierarchy.down_transforms],
        'up_transform': [csc(m) for m in hierarchy.up_transforms],
    }
    buffer = io.BytesIO()
    _OfficialPickler(buffer, protocol=2).dump(data)
    path.write_bytes(buffer.getvalue())
    return path


def stand_in_cmr_hand(variant: str, mano_right_file: str | Path) -> CmrHandExpert:
    """A CMR hand model with random weights over the stand-in hierarchy of a MANO file.

    For ``model.use_test_assets`` and tests: the outputs are meaningless.

    Args:
        variant: a CMR variant ('cmr_sg_r18', ...).
        mano_right_file: MANO_RIGHT.pkl (the template of level 0 and the MANO fit's layer).

    Raises:
        ValueError: unknown variant.
    """
    from hmr_ros.body_models.model_files import read_body_model_file
    from hmr_ros.body_models.smplx_layers import MANOHandModel
    from hmr_ros.models.alternatives.cmr import cmr_from_hierarchy
    from hmr_ros.models.alternatives.cmr_hand import CmrHandExpert as Expert

    mano = read_body_model_file(Path(mano_right_file))
    hierarchy = stand_in_cmr_hierarchy(np.asarray(mano['v_template']), np.asarray(mano['f']))
    cmr = cmr_from_hierarchy(variant, hierarchy)
    return Expert(cmr, MANOHandModel(mano_right_file, side='right')).eval()
