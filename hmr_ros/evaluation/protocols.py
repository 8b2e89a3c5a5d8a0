"""The benchmark protocols of the paper's tables, as the published evaluation code computes them.

HMR-Adapter follows SMPLer-X (section 4.1: "consistent with prior studies [3, 22, 24]"), whose
evaluation code (`caizhongang/SMPLer-X`: `data/EHF/EHF.py` and `data/humandata.py`
`HumanDataset.evaluate`, used by ARCTIC; `common/utils/human_models.py`) defines:

- 'All' PVE: every SMPL-X vertex after aligning the pelvis of the SMPL-X `J_regressor`;
  PA-PVE after a similarity (Procrustes) fit on all vertices.
- 'All' PA-MPJPE: the 14 LSP joints of the licensed regressor `SMPLX_to_J14.pkl` (ExPose's file,
  loaded by SMPLer-X as `smpl_x.j14_regressor`), Procrustes-aligned.
- 'Hands' PVE / PA-PVE: the 778 SMPL-X vertices of each MANO hand (`MANO_SMPLX_vertex_ids.pkl`,
  from the SMPL-X website), PVE aligned at that wrist of the `J_regressor`, left and right
  averaged.
- 'Hands' PA-MPJPE: 21 joints per hand, SMPLer-X's `make_hand_regressor`: the wrist and the 15
  finger joints of the SMPL-X `J_regressor` plus one fingertip vertex per finger
  (`SMPLX_FINGERTIP_VERTICES`, the same vertex ids as `smplx.vertex_ids['smplx']`), in OpenPose
  order (wrist, thumb 1-3, thumb tip, index ..., pinky tip).

3DPW (Table 2; SMPLer-X `data/PW3D/PW3D.py`): the ground truth is an SMPL body. Joints: the
first 24 joints of SMPL's regressor on the ground truth and the SMPL-X `J_regressor` on the
prediction, of which the 14 `PW3D_EVAL_JOINTS` (hips, knees, ankles, neck, head, shoulders,
elbows, wrists); MPJPE after moving the prediction's pelvis onto the ground-truth pelvis
joint, PA-MPJPE after Procrustes on the 14 joints. PVE (which SMPLer-X's script does not
compute but the paper reports) needs the prediction on the SMPL topology: the SMPL-X-to-SMPL
deformation-transfer matrix of the SMPL-X repository (`smplx2smpl.pkl` / `.npz`, key 'matrix').

Files the protocols need are licensed, so the user supplies them; the loaders here fail with
the file's name and where it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch

from hmr_ros.body_models.joint_names import (
    SIDES,
    SMPLX_JOINT_INDEX,
    Side,
    smplx_hand_to_openpose,
)
from hmr_ros.datasets.safe_pickle import load_numpy_pickle

__all__ = [
    'HAND_JOINT_SETS',
    'J14_FILE_NAME',
    'PW3D_EVAL_JOINTS',
    'SMPLX_FINGERTIP_VERTICES',
    'HandJointSet',
    'ProtocolFileNotFoundError',
    'hand_joint_regressor',
    'load_hand_vertex_ids',
    'load_regressor_file',
]

HandJointSet = Literal['smplerx21', 'mano16']
HAND_JOINT_SETS: tuple[str, ...] = get_args(HandJointSet)
"""'smplerx21': SMPLer-X's 21 hand joints (16 MANO joints + 5 fingertip vertices), the paper's
protocol; 'mano16': the wrist and 15 finger joints only."""

SMPLX_FINGERTIP_VERTICES: dict[Side, dict[str, int]] = {
    'left': {'thumb': 5361, 'index': 4933, 'middle': 5058, 'ring': 5169, 'pinky': 5286},
    'right': {'thumb': 8079, 'index': 7669, 'middle': 7794, 'ring': 7905, 'pinky': 8022},
}
"""SMPL-X fingertip vertices of the 21-joint hand regressor (SMPLer-X
`common/utils/human_models.py: make_hand_regressor`; OSX has the same function)."""

J14_FILE_NAME = 'SMPLX_to_J14.pkl'
HAND_VERTEX_IDS_FILE_NAME = 'MANO_SMPLX_vertex_ids.pkl'
SMPLX_TO_SMPL_FILE_NAME = 'smplx2smpl.pkl'

PROTOCOL_FILE_SOURCES: dict[str, str] = {
    J14_FILE_NAME: 'the 14-joint LSP regressor of ExPose/SMPLer-X (ExPose data download, '
    'expose.is.tue.mpg.de; SMPLer-X expects it in common/utils/human_model_files/smplx/)',
    HAND_VERTEX_IDS_FILE_NAME: 'the SMPL-X website (smpl-x.is.tue.mpg.de, "MANO and FLAME '
    'vertex indices")',
    SMPLX_TO_SMPL_FILE_NAME: "the SMPL-X repository's model transfer data "
    '(vchoutas/smplx, transfer_model; smpl-x.is.tue.mpg.de downloads)',
}

PW3D_EVAL_JOINTS: tuple[int, ...] = (1, 2, 4, 5, 7, 8, 12, 15, 16, 17, 18, 19, 20, 21)
"""Rows of the SMPL / SMPL-X kinematic joints scored on 3DPW (SMPLer-X `PW3D.evaluate`'s
joint_mapper: left/right hip, knee, ankle, neck, head, shoulders, elbows, wrists)."""


class ProtocolFileNotFoundError(FileNotFoundError):
    """A licensed file a benchmark protocol needs is not where the configuration says."""


def _missing(path: Path, name: str, field: str) -> ProtocolFileNotFoundError:
    source = PROTOCOL_FILE_SOURCES.get(name, 'the benchmark authors')
    return ProtocolFileNotFoundError(
        f'{path}: the protocol needs {name} ({source}); set {field} to its path, or set '
        "metrics.protocol to 'approximate' to run without it (numbers are then not the paper's)"
    )


def load_regressor_file(
    path: str | Path, num_vertices: int, name: str = J14_FILE_NAME, field: str = ''
) -> torch.Tensor:
    """A (J, V) joint regressor from a `.pkl` (numpy pickle), `.npy` or `.npz` ('regressor').

    Args:
        path: the file.
        num_vertices: V the regressor must have (10,475 for SMPL-X).
        name: the protocol file it stands for (for the error message).
        field: the configuration key that names it (for the error message).

    Raises:
        ProtocolFileNotFoundError: no such file.
        ValueError: not a 2-D array with num_vertices columns.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, name, field or 'the regressor path')
    if path.suffix == '.pkl':
        data = load_numpy_pickle(path)
        if isinstance(data, Mapping):
            data = data.get('regressor', data.get('matrix'))
    elif path.suffix == '.npz':
        with np.load(path, allow_pickle=False) as archive:
            key = next((k for k in ('regressor', 'matrix') if k in archive.files), None)
            if key is None:
                raise ValueError(f'{path} has no "regressor" or "matrix" array')
            data = archive[key]
    else:
        data = np.load(path, allow_pickle=False)
    array = np.asarray(data, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != num_vertices:
        raise ValueError(f'{path}: a regressor must be (J, {num_vertices}); got {array.shape}')
    return torch.from_numpy(array)


def load_hand_vertex_ids(
    path: str | Path, num_vertices: int, field: str = 'metrics.hand_vertex_ids'
) -> dict[Side, torch.Tensor]:
    """Each hand's SMPL-X vertex ids from `MANO_SMPLX_vertex_ids.pkl` or an `.npz`.

    Both hold 'left_hand' and 'right_hand' (778 int ids each).

    Raises:
        ProtocolFileNotFoundError: no such file.
        ValueError: keys missing or ids out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, HAND_VERTEX_IDS_FILE_NAME, field)
    if path.suffix == '.pkl':
        data = load_numpy_pickle(path)
        table = {key: np.asarray(data[key]) for key in data} if isinstance(data, Mapping) else {}
    else:
        with np.load(path, allow_pickle=False) as archive:
            table = {key: np.asarray(archive[key]) for key in archive.files}
    ids = {}
    for side in SIDES:
        key = f'{side}_hand'
        if key not in table:
            raise ValueError(f'{path} has no {key!r} vertex ids (has {sorted(table)})')
        values = table[key].astype(np.int64).reshape(-1)
        if values.min() < 0 or values.max() >= num_vertices:
            raise ValueError(f'{path}: {key} ids must lie in [0, {num_vertices})')
        ids[side] = torch.from_numpy(values)
    return ids


def hand_joint_regressor(
    joint_regressor: torch.Tensor, side: Side, joint_set: HandJointSet = 'smplerx21'
) -> torch.Tensor:
    """The hand-joint regressor of one side (rows in OpenPose order).

    Args:
        joint_regressor: (55, V) SMPL-X `J_regressor`.
        side: 'left' or 'right'.
        joint_set: 'smplerx21' (wrist, 15 finger joints and 5 fingertip vertices, SMPLer-X's
            protocol) or 'mano16' (no fingertips).

    Returns:
        (21, V) or (16, V) dense float regressor.
    """
    if joint_set not in HAND_JOINT_SETS:
        raise ValueError(f'hand joint set must be one of {HAND_JOINT_SETS}; got {joint_set!r}')
    dense = joint_regressor.to_dense() if joint_regressor.is_sparse else joint_regressor
    dense = dense.float()
    rows = []
    for name in smplx_hand_to_openpose(side):
        finger = name.removeprefix(f'{side}_')
        if finger in SMPLX_FINGERTIP_VERTICES[side]:
            if joint_set == 'mano16':
                continue
            row = torch.zeros(dense.shape[1], dtype=dense.dtype)
            row[SMPLX_FINGERTIP_VERTICES[side][finger]] = 1.0
            rows.append(row)
        else:
            rows.append(dense[SMPLX_JOINT_INDEX[name]])
    return torch.stack(rows)
