"""Evaluation configuration and whole-body metric definitions (the runs are in test/cli)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.evaluation.evaluator import (
    EvalConfig,
    EvalDataset,
    EvalRow,
    WholeBodyMetricsConfig,
    default_intrinsics,
    whole_body_eval_spec,
)
from hmr_ros.evaluation.metrics import whole_body_errors
from hmr_ros.evaluation.protocols import ProtocolFileNotFoundError


def test_default_spec_uses_the_layer_regressor_and_skinning_subsets(
    smplx_body_model: SMPLXBodyModel,
) -> None:
    spec, sources = whole_body_eval_spec(
        smplx_body_model, WholeBodyMetricsConfig(protocol='approximate', hand_joints='mano16')
    )
    vertices = smplx_body_model.layer.v_template.shape[0]
    assert spec.root_regressor.shape == (55, vertices)
    assert spec.body_joint_regressor.shape == (22, vertices)
    left, right = spec.hand_vertex_indices['left'], spec.hand_vertex_indices['right']
    assert len(left) > 0 and len(right) > 0
    assert not set(left.tolist()) & set(right.tolist())
    assert spec.hand_joint_regressors['left'].shape == (16, vertices)
    assert 'not the MANO_SMPLX_vertex_ids protocol' in sources['hand_vertices']
    mesh = torch.randn(2, vertices, 3)
    errors = whole_body_errors(mesh, mesh.clone(), spec)
    assert all(torch.allclose(v, torch.zeros(2), atol=1e-3) for v in errors.values())


def test_spec_reads_protocol_files(smplx_body_model: SMPLXBodyModel, tmp_path: Path) -> None:
    vertices = smplx_body_model.layer.v_template.shape[0]
    ids = tmp_path / 'ids.npz'
    np.savez(ids, left_hand=np.arange(0, 778), right_hand=np.arange(1000, 1778))
    regressor = tmp_path / 'regressor.npy'
    np.save(regressor, np.full((14, vertices), 1.0 / vertices, dtype=np.float32))
    spec, sources = whole_body_eval_spec(
        smplx_body_model,
        WholeBodyMetricsConfig(hand_vertex_ids=str(ids), body_joint_regressor=str(regressor)),
    )
    assert spec.hand_vertex_indices['right'].tolist() == list(range(1000, 1778))
    assert spec.body_joint_regressor.shape == (14, vertices)
    assert spec.hand_joint_regressors['right'].shape == (21, vertices)
    assert sources['body_joints'] == 'regressor.npy (14 joints)'
    assert sources['hand_vertices'] == 'ids.npz'
    assert sources['protocol'] == 'smplerx'


def test_paper_protocol_names_each_missing_licensed_file(
    smplx_body_model: SMPLXBodyModel, tmp_path: Path
) -> None:
    """The paper's protocol cannot silently fall back: each absent file is named."""
    with pytest.raises(ProtocolFileNotFoundError, match='SMPLX_to_J14.pkl'):
        whole_body_eval_spec(smplx_body_model, WholeBodyMetricsConfig())
    regressor = tmp_path / 'SMPLX_to_J14.pkl'
    vertices = smplx_body_model.layer.v_template.shape[0]
    with regressor.open('wb') as file:
        pickle.dump(np.zeros((14, vertices)), file, protocol=2)
    with pytest.raises(ProtocolFileNotFoundError, match='MANO_SMPLX_vertex_ids.pkl'):
        whole_body_eval_spec(
            smplx_body_model, WholeBodyMetricsConfig(body_joint_regressor=str(regressor))
        )


def test_default_intrinsics() -> None:
    """640 x 480: f = 640, principal point (319.5, 239.5) (integer pixel centres)."""
    k = default_intrinsics((640, 480))
    assert k.tolist() == [[640.0, 0.0, 319.5], [0.0, 640.0, 239.5], [0.0, 0.0, 1.0]]


def _config(**changes: object) -> EvalConfig:
    values: dict = {
        'model': 'dual_path',
        'hand_expert': 'h',
        'whole_body': 'w',
        'body_model_dir': 'b',
        'datasets': (EvalDataset('EHF', 'ehf.npz'),),
        'table': 'table1',
    }
    values.update(changes)
    return EvalConfig(**values)


def test_config_validation() -> None:
    assert _config().rows == (EvalRow('Ours'),)
    with pytest.raises(ValueError, match='needs whole_body'):
        _config(whole_body='')
    with pytest.raises(ValueError, match="not filled by model 'dual_path'"):
        _config(table='freihand')
    with pytest.raises(ValueError, match='ask for the body adapter'):
        _config(model='hand_expert', table='table3', rows=(EvalRow('x', 'both'),))
    with pytest.raises(KeyError, match='unknown table layout'):
        _config(table='table9')
    with pytest.raises(ValueError, match='wrist_sources'):
        _config(wrist_sources=('body', 'body'))
    with pytest.raises(ValueError, match='wrist_source'):
        EvalRow('x', wrist_source='elbow')
