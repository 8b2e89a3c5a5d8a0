"""CMR's released files: checkpoint layout and the mesh hierarchy ``transform.pkl`` (docs/cmr.md).

Checkpoints (SeanChenxy/HandMesh, ``cmr/main.py``): ``torch.save`` of either a raw state dict
or a dict ``{epoch, model_state_dict, optimizer_state_dict, scheduler_state_dict}``; the official
code takes ``model_state_dict`` when present and loads it with ``strict=True``, without a
``module.`` prefix. The keys are the attribute names of the official ``CMR_SG``/``CMR_PG``
classes, which ``hmr_ros.models.alternatives.cmr`` keeps; ``backbone2.fc`` is saved although
stage 2 never calls it (it is a module of the model), so it is part of the layout.

``template/transform.pkl`` is a latin-1 pickle of a dict with per-level lists ``vertices``
(float64 arrays), ``face`` (uint32 arrays), ``adj``, ``down_transform`` and ``up_transform``
(``scipy.sparse.csc_matrix``). It is MANO-derived, so the user supplies it. scipy is not a
dependency here: the file is read with the body-model files' restricted reader
(``body_models.model_files.read_body_model_pickle``: numpy arrays and scipy sparse matrices only,
the matrices rebuilt from their pickled CSC arrays), and nothing in the file is executed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from hmr_ros.body_models.model_files import (
    BodyModelFileError,
    UnsafeBodyModelFileError,
    read_body_model_pickle,
)
from hmr_ros.checkpoints.safe_load import CorruptCheckpointError, check_state_dict

__all__ = [
    'CMR_CHECKPOINT_WRAPPER_KEY',
    'CmrMeshHierarchy',
    'check_cmr_state_dict',
    'cmr_state_dict',
    'cmr_state_dict_from_official',
    'detect_cmr_variant',
    'is_official_cmr_checkpoint',
    'load_cmr_transforms',
    'official_cmr_checkpoint',
]

# Keys only CMR's classes have: the first decoder Linear and the final uv + mask head.
_SIGNATURE_KEYS = ('de_layers.0.weight', 'uvm_head.conv.weight')
_SG_KEY = 'mask_head.conv.weight'
_PG_KEY = 'uv_prior_head.conv.weight'
_RESNET50_KEY = 'backbone1.layer1.0.conv3.weight'  # bottlenecks have a third conv

CMR_CHECKPOINT_WRAPPER_KEY = 'model_state_dict'
"""Key of the weights in a training checkpoint (the official loader's test)."""


class CmrMeshHierarchy(NamedTuple):
    """CMR's mesh levels, finest first (hand: 778, 389, 195, 98, 49 vertices).

    Attributes:
        vertices: per level (V_l, 3) float64 template positions.
        faces: per level (F_l, 3) int64 vertex indices.
        down_transforms: per step l -> l+1, (V_{l+1}, V_l) sparse selection matrix.
        up_transforms: per step l+1 -> l, (V_l, V_{l+1}) sparse interpolation matrix.
    """

    vertices: list[np.ndarray]
    faces: list[np.ndarray]
    down_transforms: list[torch.Tensor]
    up_transforms: list[torch.Tensor]


def _matrix(value: Any, what: str) -> torch.Tensor:
    """A 2D numpy matrix (the reader's dense form of a sparse one) as a torch sparse matrix."""
    if not isinstance(value, np.ndarray) or value.ndim != 2:
        raise CorruptCheckpointError(f'{what} is {type(value).__name__}, not a matrix')
    return torch.from_numpy(value).float().to_sparse().coalesce()


def load_cmr_transforms(path: str | os.PathLike[str]) -> CmrMeshHierarchy:
    """Reads CMR's ``transform.pkl`` without scipy and without executing code from it.

    Raises:
        FileNotFoundError: the file is missing (it is MANO-derived: the user supplies it).
        UnsafeBodyModelFileError: the pickle names a global outside the allow-list.
        CorruptCheckpointError: the content is not CMR's hierarchy layout.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f'CMR mesh hierarchy not found: {file}. It is template/transform.pkl of '
            'SeanChenxy/HandMesh (MANO-derived, not shipped); see docs/cmr.md.'
        )
    try:
        loaded = read_body_model_pickle(file.read_bytes(), file)
    except UnsafeBodyModelFileError:
        raise
    except BodyModelFileError as error:
        raise CorruptCheckpointError(f'cannot read {file}: {error}') from error
    keys = ('vertices', 'face', 'down_transform', 'up_transform')
    if not isinstance(loaded, Mapping) or any(k not in loaded for k in keys):
        found = sorted(loaded) if isinstance(loaded, Mapping) else type(loaded).__name__
        raise CorruptCheckpointError(f'{file}: expected a dict with {keys}; found {found}')
    vertices = [np.asarray(v, dtype=np.float64) for v in loaded['vertices']]
    faces = [np.asarray(f).astype(np.int64) for f in loaded['face']]
    down = [
        _matrix(m, f'{file} down_transform[{i}]') for i, m in enumerate(loaded['down_transform'])
    ]
    up = [_matrix(m, f'{file} up_transform[{i}]') for i, m in enumerate(loaded['up_transform'])]
    levels = len(vertices)
    if not (len(faces) == levels and len(down) == len(up) == levels - 1):
        raise CorruptCheckpointError(
            f'{file}: {levels} vertex levels, {len(faces)} face levels, {len(down)} down and '
            f'{len(up)} up transforms (expected L, L, L-1, L-1)'
        )
    for level in range(levels - 1):
        fine, coarse = len(vertices[level]), len(vertices[level + 1])
        if tuple(down[level].shape) != (coarse, fine) or tuple(up[level].shape) != (fine, coarse):
            raise CorruptCheckpointError(
                f'{file}: level {level}: down {tuple(down[level].shape)} and up '
                f'{tuple(up[level].shape)} do not match {fine} -> {coarse} vertices'
            )
    return CmrMeshHierarchy(vertices, faces, down, up)


def cmr_state_dict(loaded: Any) -> dict[str, torch.Tensor]:
    """The weights of a loaded CMR file: ``model_state_dict`` when present, else the dict itself.

    Raises:
        CorruptCheckpointError: the object holds no tensors by name.
    """
    if isinstance(loaded, Mapping) and isinstance(loaded.get(CMR_CHECKPOINT_WRAPPER_KEY), Mapping):
        loaded = loaded[CMR_CHECKPOINT_WRAPPER_KEY]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise CorruptCheckpointError(
            "not a CMR checkpoint: expected a state dict or a dict with 'model_state_dict'"
        )
    return dict(loaded)


def check_cmr_state_dict(
    expected: Mapping[str, Any], state_dict: Mapping[str, Any], *, name: str = 'CMR'
) -> None:
    """Strict key/shape check of a CMR state dict against a model's ``state_dict_shapes``.

    The official loader is strict, so nothing is allowed missing or unexpected except
    BatchNorm's ``num_batches_tracked`` (absent from files written by old PyTorch versions).
    """
    check_state_dict(
        expected,
        state_dict,
        allowed_missing=('*.num_batches_tracked',),
        context=f'checkpoint does not match {name}',
    )


def _weights(ckpt: Any) -> Mapping[str, Any] | None:
    if not isinstance(ckpt, Mapping):
        return None
    inner = ckpt.get(CMR_CHECKPOINT_WRAPPER_KEY)
    return inner if isinstance(inner, Mapping) else ckpt


def is_official_cmr_checkpoint(ckpt: Any) -> bool:
    """Whether a loaded file is a CMR checkpoint (raw or wrapped); never raises."""
    weights = _weights(ckpt)
    return weights is not None and all(key in weights for key in _SIGNATURE_KEYS)


def cmr_state_dict_from_official(ckpt: Any) -> dict[str, torch.Tensor]:
    """Our state dict of an official CMR file: the same keys (the port keeps the names)."""
    return cmr_state_dict(ckpt)


def detect_cmr_variant(state_dict: Mapping[str, Any]) -> str:
    """'cmr_{sg,pg}_{r18,r50}' from the prior head and the encoder's block type.

    Raises:
        KeyError: neither CMR-SG's mask head nor CMR-PG's pose-prior head is present.
    """
    if _SG_KEY in state_dict:
        kind = 'sg'
    elif _PG_KEY in state_dict:
        kind = 'pg'
    else:
        raise KeyError(f'neither {_SG_KEY} (CMR-SG) nor {_PG_KEY} (CMR-PG) is in the file')
    return f'cmr_{kind}_{"r50" if _RESNET50_KEY in state_dict else "r18"}'


def official_cmr_checkpoint(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A training checkpoint in the official layout (``cmr/main.py`` saves this dict)."""
    return {
        'epoch': 0,
        CMR_CHECKPOINT_WRAPPER_KEY: dict(state_dict),
        'optimizer_state_dict': {},
        'scheduler_state_dict': {},
    }
