"""The paper's protocol definitions, checked against SMPLer-X's published evaluation code.

Outside facts used here:
- SMPLer-X `common/utils/human_models.py: make_hand_regressor` builds each hand's 21 joints as
  J_regressor rows [20, 37, 38, 39] + vertex 5361 + rows [25, 26, 27] + vertex 4933 + rows
  [28, 29, 30] + vertex 5058 + rows [34, 35, 36] + vertex 5169 + rows [31, 32, 33] + vertex 5286
  (left) and [21, 52, 53, 54] + 8079, [40, 41, 42] + 7669, [43, 44, 45] + 7794, [49, 50, 51] +
  7905, [46, 47, 48] + 8022 (right).
- The `smplx` package's `vertex_ids['smplx']` names the same fingertip vertices.
- SMPLer-X `data/PW3D/PW3D.py` scores SMPL joints [1, 2, 4, 5, 7, 8, 12, 15, 16, 17, 18, 19,
  20, 21] after moving the prediction's pelvis onto the ground truth's.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from smplx.vertex_ids import vertex_ids as smplx_vertex_ids

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.datasets.safe_pickle import UnsafePickleError
from hmr_ros.evaluation.metrics import pa_mpjpe_mm, smpl_body_errors
from hmr_ros.evaluation.protocols import (
    PW3D_EVAL_JOINTS,
    SMPLX_FINGERTIP_VERTICES,
    ProtocolFileNotFoundError,
    hand_joint_regressor,
    load_hand_vertex_ids,
    load_regressor_file,
)

SMPLERX_HAND_ROWS = {
    'left': [20, 37, 38, 39, -5361, 25, 26, 27, -4933, 28, 29, 30, -5058, 34, 35, 36, -5169]
    + [31, 32, 33, -5286],
    'right': [21, 52, 53, 54, -8079, 40, 41, 42, -7669, 43, 44, 45, -7794, 49, 50, 51, -7905]
    + [46, 47, 48, -8022],
}
"""SMPLer-X's regressor rows per hand; a negative entry -v is the one-hot row of vertex v."""


@pytest.mark.parametrize('side', ['left', 'right'])
def test_hand_regressor_is_smplerx_make_hand_regressor(
    smplx_body_model: SMPLXBodyModel, side: str
) -> None:
    j_regressor = smplx_body_model.layer.J_regressor.detach().float()
    regressor = hand_joint_regressor(j_regressor, side)  # type: ignore[arg-type]
    assert regressor.shape == (21, j_regressor.shape[1])
    for row, source in zip(regressor, SMPLERX_HAND_ROWS[side], strict=True):
        if source < 0:
            expected = torch.zeros_like(row)
            expected[-source] = 1.0
        else:
            expected = j_regressor[source]
        assert torch.equal(row, expected)
    assert hand_joint_regressor(j_regressor, side, 'mano16').shape[0] == 16  # type: ignore[arg-type]


def test_fingertips_agree_with_the_smplx_package() -> None:
    tips = smplx_vertex_ids['smplx']
    for side, prefix in (('left', 'l'), ('right', 'r')):
        for finger, vertex in SMPLX_FINGERTIP_VERTICES[side].items():  # type: ignore[index]
            assert tips[f'{prefix}{finger}'] == vertex


def test_fingertip_joints_change_the_hand_pa_mpjpe(smplx_body_model: SMPLXBodyModel) -> None:
    """Moving only a fingertip vertex is seen by the 21-joint protocol, not by 16 joints."""
    j_regressor = smplx_body_model.layer.J_regressor.detach().float()
    gt = smplx_body_model(**smplx_body_model.neutral_inputs(1)).vertices.detach()
    pred = gt.clone()
    pred[0, SMPLX_FINGERTIP_VERTICES['right']['index']] += torch.tensor((0.02, 0.0, 0.0))
    errors = {}
    for joint_set in ('smplerx21', 'mano16'):
        regressor = hand_joint_regressor(j_regressor, 'right', joint_set)
        errors[joint_set] = pa_mpjpe_mm((regressor @ pred[0])[None], (regressor @ gt[0])[None])
    assert errors['mano16'].item() < 1e-3
    assert errors['smplerx21'].item() > 0.1


def test_j14_pickle_is_read_without_running_code(tmp_path: Path) -> None:
    """ExPose/SMPLer-X's SMPLX_to_J14.pkl is a Python 2 pickle of a (14, 10475) array."""
    path = tmp_path / 'SMPLX_to_J14.pkl'
    expected = np.random.default_rng(0).random((14, 10475))
    with path.open('wb') as file:
        pickle.dump(expected, file, protocol=2)
    loaded = load_regressor_file(path, 10475)
    assert torch.allclose(loaded, torch.from_numpy(expected).float())
    with pytest.raises(ValueError, match=r'\(J, 6890\)'):
        load_regressor_file(path, 6890)
    with pytest.raises(ProtocolFileNotFoundError, match='SMPLX_to_J14.pkl.*ExPose'):
        load_regressor_file(tmp_path / 'missing.pkl', 10475)

    class Exploit:
        def __reduce__(self) -> tuple:
            return (print, ('this must never run',))

    with path.open('wb') as file:
        pickle.dump(Exploit(), file)
    with pytest.raises(UnsafePickleError, match='builtins.print'):
        load_regressor_file(path, 10475)


def test_hand_vertex_ids_pickle(tmp_path: Path) -> None:
    """MANO_SMPLX_vertex_ids.pkl: a dict with 'left_hand' and 'right_hand' id arrays."""
    path = tmp_path / 'MANO_SMPLX_vertex_ids.pkl'
    table = {'left_hand': np.arange(778), 'right_hand': np.arange(778) + 5000}
    with path.open('wb') as file:
        pickle.dump(table, file, protocol=2)
    ids = load_hand_vertex_ids(path, 10475)
    assert ids['right'].tolist() == list(range(5000, 5778))
    with pytest.raises(ValueError, match='ids must lie'):
        load_hand_vertex_ids(path, 5500)


def test_3dpw_body_errors_by_hand() -> None:
    """Joints are the vertices themselves (identity regressor), so errors follow by hand."""
    rng = np.random.default_rng(1)
    joints = torch.from_numpy(rng.normal(size=(1, 55, 3))).float()
    regressor = torch.eye(55)
    gt = joints[:, :24].clone() + torch.tensor((0.3, -0.2, 4.0))  # another translation
    pred = joints.clone()
    errors = smpl_body_errors(pred, gt, regressor, PW3D_EVAL_JOINTS)
    assert errors['mpjpe_all_mm'].item() == pytest.approx(0.0, abs=1e-3)
    assert 'pve_all_mm' not in errors
    # Moving one scored joint (left_hip, row 1) by 14 mm: 14 mm / 14 scored joints = 1 mm.
    pred[0, 1, 0] += 0.014
    assert smpl_body_errors(pred, gt, regressor, PW3D_EVAL_JOINTS)['mpjpe_all_mm'].item() == (
        pytest.approx(1.0, abs=1e-3)
    )
    # Moving an unscored joint (spine1, row 3) changes nothing; the pelvis moves everything.
    pred = joints.clone()
    pred[0, 3] += 0.5
    assert smpl_body_errors(pred, gt, regressor, PW3D_EVAL_JOINTS)['mpjpe_all_mm'].item() == (
        pytest.approx(0.0, abs=1e-3)
    )
    pred = joints.clone()
    pred[0, 0, 2] += 0.01
    assert smpl_body_errors(pred, gt, regressor, PW3D_EVAL_JOINTS)['mpjpe_all_mm'].item() == (
        pytest.approx(10.0, abs=1e-3)
    )
    # A scaled and rotated prediction keeps PA-MPJPE at zero.
    scaled = joints.clone() * 1.2
    pa = smpl_body_errors(scaled, gt, regressor, PW3D_EVAL_JOINTS)['pa_mpjpe_all_mm']
    assert pa.item() == pytest.approx(0.0, abs=1e-2)
