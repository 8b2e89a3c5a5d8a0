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

from hmr_ros.body_models.model_files import UnsafeBodyModelFileError
from hmr_ros.checkpoints.cmr_layout import cmr_state_dict, load_cmr_transforms
from hmr_ros.checkpoints.safe_load import CorruptCheckpointError


class _FakeCsc:
    """Pickles like scipy's csc_matrix (NEWOBJ of scipy.sparse.csc.csc_matrix + state)."""

    __module__ = 'scipy.sparse.csc'
    __qualname__ = 'csc_matrix'

    def __init__(self, shape: tuple[int, int], indptr: list[int], indices: list[int],
                 data: list[float]) -> None:  # fmt: skip
        self.state = {
            '_shape': shape,
            'maxprint': 50,
            'indices': np.array(indices, dtype=np.int32),
            'indptr': np.array(indptr, dtype=np.int32),
            'data': np.array(data),
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
    """Level 0: 4 vertices, level 1: 2. CSC (column-major) by hand:
    up = [[1, 0], [0.5, 0.5], [0, 1], [0, 0]]: column 0 holds rows 0, 1; column 1 rows 1, 2.
    down = [[1, 0, 0, 0], [0, 0, 1, 0]]: columns 0 and 2 hold one entry each."""
    up = _FakeCsc((4, 2), [0, 2, 4], [0, 1, 1, 2], [1.0, 0.5, 0.5, 1.0])
    down = _FakeCsc((2, 4), [0, 1, 1, 2, 2], [0, 1], [1.0, 1.0])
    data = {
        'vertices': [np.zeros((4, 3)), np.zeros((2, 3))],
        'face': [np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32), np.zeros((0, 3), np.uint32)],
        'adj': [_FakeCsc((2, 2), [0, 1, 2], [1, 0], [1.0, 1.0])],
        'down_transform': [down],
        'up_transform': [up],
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
    assert torch.equal(up, torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 0.0]]))
    assert torch.equal(hierarchy.down_transforms[0].to_dense(), torch.eye(4)[[0, 2]])


def test_code_in_the_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'transform.pkl'
    path.write_bytes(pickle.dumps({'vertices': os.getcwd}, protocol=3))
    with pytest.raises(UnsafeBodyModelFileError, match='getcwd'):
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
    """Seed-systems study of the official assets: 778/389/195/98/49 vertices, 1538/761/374/183/86
    faces, one-hot down rows, 3 stored entries per up row (some of them exactly 0: 1 to 3 weights
    are non-zero, the COMA generator's edge and vertex cases)."""
    hierarchy = load_cmr_transforms(os.environ['HMR_ROS_CMR_TRANSFORM'])
    assert [len(v) for v in hierarchy.vertices] == [778, 389, 195, 98, 49]
    assert [len(f) for f in hierarchy.faces] == [1538, 761, 374, 183, 86]
    for down, up in zip(hierarchy.down_transforms, hierarchy.up_transforms, strict=True):
        assert torch.equal(down.values(), torch.ones_like(down.values()))
        assert torch.equal(torch.bincount(down.indices()[0]), torch.ones(down.shape[0]).long())
        assert set(torch.bincount(up.indices()[0], minlength=up.shape[0]).tolist()) <= {1, 2, 3}
