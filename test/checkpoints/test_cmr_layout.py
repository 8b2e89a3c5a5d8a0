"""CMR's transform.pkl decoding (without scipy) and checkpoint unwrapping."""

from __future__ import annotations

import copyreg
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.checkpoints.cmr_layout import (
    cmr_state_dict,
    load_cmr_transforms,
    sparse_from_csc_state,
)
from hmr_ros.checkpoints.safe_load import CorruptCheckpointError, UnsafeCheckpointError


def test_csc_state_decodes_by_the_csc_definition() -> None:
    """[[1, 0, 2], [0, 0, 3]] in CSC (column-major): column 0 holds (row 0, 1); column 1 none;
    column 2 holds (row 0, 2), (row 1, 3): indptr [0, 1, 1, 3], indices [0, 0, 1]."""
    state = {
        '_shape': (2, 3),
        'indptr': np.array([0, 1, 1, 3], dtype=np.int32),
        'indices': np.array([0, 0, 1], dtype=np.int32),
        'data': np.array([1.0, 2.0, 3.0]),
    }
    dense = sparse_from_csc_state(state).to_dense()
    assert torch.equal(dense, torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
    # The same matrix in CSR (row-major): row 0 (col 0, 1), (col 2, 2); row 1 (col 2, 3).
    csr = {**state, 'indptr': np.array([0, 2, 3]), 'indices': np.array([0, 2, 2])}
    assert torch.equal(sparse_from_csc_state(csr, csr=True).to_dense(), dense)
    state['indptr'] = np.array([0, 1, 3], dtype=np.int32)  # wrong length for 3 columns
    with pytest.raises(CorruptCheckpointError, match='inconsistent'):
        sparse_from_csc_state(state)


class _FakeCsc:
    """Pickles like scipy's csc_matrix (NEWOBJ of scipy.sparse.csc.csc_matrix + state)."""

    __module__ = 'scipy.sparse.csc'
    __qualname__ = 'csc_matrix'

    def __init__(self, dense: np.ndarray) -> None:
        cols = [np.nonzero(dense[:, c])[0] for c in range(dense.shape[1])]
        self.state = {
            '_shape': dense.shape,
            'maxprint': 50,
            'indices': np.concatenate(cols).astype(np.int32),
            'indptr': np.cumsum([0] + [len(c) for c in cols]).astype(np.int32),
            'data': np.concatenate([dense[r, c] for c, r in enumerate(cols)]),
        }

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        return (copyreg.__newobj__, (_FakeCsc,), self.state)  # type: ignore[attr-defined]


@pytest.fixture
def fake_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes ``scipy.sparse.csc.csc_matrix`` resolvable while *writing* test files."""
    for name in ('scipy', 'scipy.sparse', 'scipy.sparse.csc'):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules['scipy.sparse.csc'].csc_matrix = _FakeCsc  # type: ignore[attr-defined]


def _write_hierarchy(path: Path) -> None:
    fine = np.eye(4)[:, :2] * 0.5 + np.eye(4)[:, 1:3] * 0.5  # (4, 2) interpolation
    down = np.eye(4)[[0, 2]]  # (2, 4) selection
    data = {
        'vertices': [np.zeros((4, 3)), np.zeros((2, 3))],
        'face': [np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32), np.zeros((0, 3), np.uint32)],
        'adj': [_FakeCsc(np.ones((4, 4))), _FakeCsc(np.ones((2, 2)))],
        'down_transform': [_FakeCsc(down)],
        'up_transform': [_FakeCsc(fine)],
    }
    with path.open('wb') as stream:
        pickle.dump(data, stream, protocol=3)


@pytest.mark.usefixtures('fake_scipy')
def test_hierarchy_in_the_official_pickle_layout_loads(tmp_path: Path) -> None:
    path = tmp_path / 'transform.pkl'
    _write_hierarchy(path)
    hierarchy = load_cmr_transforms(path)
    assert [len(v) for v in hierarchy.vertices] == [4, 2]
    assert hierarchy.faces[0].dtype == np.int64
    up = hierarchy.up_transforms[0].to_dense()
    assert up.shape == (4, 2) and torch.allclose(up.sum(1), torch.tensor([0.5, 1.0, 0.5, 0.0]))
    assert torch.equal(hierarchy.down_transforms[0].to_dense(), torch.eye(4)[[0, 2]])


def test_code_in_the_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'transform.pkl'
    path.write_bytes(pickle.dumps({'vertices': os.getcwd}, protocol=3))
    with pytest.raises(UnsafeCheckpointError, match='getcwd'):
        load_cmr_transforms(path)


def test_missing_hierarchy_names_the_file_and_its_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='transform.pkl of SeanChenxy/HandMesh'):
        load_cmr_transforms(tmp_path / 'transform.pkl')


def test_training_checkpoint_is_unwrapped_and_raw_state_kept() -> None:
    weights = {'attention.gamma': torch.zeros(1)}
    wrapped = {'epoch': 37, 'model_state_dict': weights, 'optimizer_state_dict': {}}
    assert cmr_state_dict(wrapped) == weights
    assert cmr_state_dict(weights) == weights
    with pytest.raises(CorruptCheckpointError, match='model_state_dict'):
        cmr_state_dict({'epoch': 3})


@pytest.mark.skipif(
    not os.environ.get('HMR_ROS_CMR_TRANSFORM'),
    reason='set HMR_ROS_CMR_TRANSFORM to the user-supplied template/transform.pkl',
)
def test_published_hand_hierarchy_has_the_published_sizes() -> None:
    """seed-systems.md 3.3 (inspected asset): 778/389/195/98/49 vertices, 1538/761/374/183/86
    faces, one-hot down rows, 3 non-zeros per up row."""
    hierarchy = load_cmr_transforms(os.environ['HMR_ROS_CMR_TRANSFORM'])
    assert [len(v) for v in hierarchy.vertices] == [778, 389, 195, 98, 49]
    assert [len(f) for f in hierarchy.faces] == [1538, 761, 374, 183, 86]
    for down, up in zip(hierarchy.down_transforms, hierarchy.up_transforms, strict=True):
        assert torch.equal(down.values(), torch.ones_like(down.values()))
        assert torch.equal(torch.bincount(down.indices()[0]), torch.ones(down.shape[0]).long())
        assert set(torch.bincount(up.indices()[0]).tolist()) == {3}
