"""FastMETRO's mesh file: safe reading, hash check, mask and upsampling (fastmetro_assets)."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.checkpoints.fastmetro_assets import (
    PUBLISHED_MESH_SHA256,
    MeshAssetHashError,
    SparseMatrix,
    load_fastmetro_mesh_assets,
    read_mesh_npz,
    write_mesh_npz,
    write_stand_in_mesh_npz,
)
from hmr_ros.checkpoints.safe_load import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)


@pytest.fixture(scope='module')
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stand_in_mesh_npz(tmp_path_factory.mktemp('mesh') / 'mesh_downsampling.npz')


def test_sparse_record_matches_the_dense_matrix() -> None:
    # A 3 x 4 matrix written out by hand: entries (0, 1) = 2, (2, 0) = -1, (2, 3) = 0.5.
    matrix = SparseMatrix.from_coo(
        np.array([2, 0, 2]), np.array([0, 1, 3]), np.array([-1.0, 2.0, 0.5]), (3, 4)
    )
    expected = np.array([[0, 2, 0, 0], [0, 0, 0, 0], [-1, 0, 0, 0.5]])
    np.testing.assert_array_equal(matrix.to_dense(), expected)
    # CSC: column pointers count the entries per column (1, 1, 0, 1).
    np.testing.assert_array_equal(matrix.indptr, [0, 1, 2, 2, 3])


def test_round_trip_through_the_released_format(tmp_path: Path) -> None:
    dense = np.array([[0.0, 1.0], [3.0, 0.0], [0.0, 0.25]])
    rows, cols = np.nonzero(dense)
    matrix = SparseMatrix.from_coo(rows, cols, dense[rows, cols], (3, 2))
    path = write_mesh_npz(tmp_path / 'm.npz', {'U': [matrix]})
    (read,) = read_mesh_npz(path, ('U',))['U']
    np.testing.assert_array_equal(read.to_dense(), dense)
    # The member is a protocol-2 pickle naming scipy's class, like the published file.
    raw = zipfile.ZipFile(path).read('U.npy')
    assert b'scipy.sparse.csc\ncsc_matrix' in raw and b'\x80\x02' in raw


def test_a_pickle_naming_other_code_is_refused(tmp_path: Path) -> None:
    array = np.empty(1, dtype=object)
    array[0] = Path('x')  # pathlib is harmless, but not a sparse matrix: must be refused
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(array))
    pickle.dump(array, stream, protocol=2)
    path = tmp_path / 'evil.npz'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('A.npy', stream.getvalue())
        archive.writestr('U.npy', stream.getvalue())
    with pytest.raises(UnsafeCheckpointError, match='pathlib'):
        read_mesh_npz(path, ('A',))


def test_missing_file_names_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match='postech-ami/FastMETRO'):
        load_fastmetro_mesh_assets(tmp_path / 'mesh_downsampling.npz')


def test_hash_must_be_the_published_one(stand_in: Path) -> None:
    with pytest.raises(MeshAssetHashError, match=PUBLISHED_MESH_SHA256):
        load_fastmetro_mesh_assets(stand_in)


def test_wrong_member_or_sizes_are_refused(tmp_path: Path) -> None:
    small = SparseMatrix.from_coo(np.array([0]), np.array([1]), np.array([1.0]), (2, 2))
    path = write_mesh_npz(tmp_path / 'small.npz', {'A': [small] * 3, 'U': [small] * 2})
    with pytest.raises(CorruptCheckpointError, match='6890, 1723, 431'):
        load_fastmetro_mesh_assets(path, expected_sha256=None)
    only_a = write_mesh_npz(tmp_path / 'only_a.npz', {'A': [small]})
    with pytest.raises(CorruptCheckpointError, match='lacks U'):
        load_fastmetro_mesh_assets(only_a, expected_sha256=None)


def test_mask_and_upsampling_from_the_file(stand_in: Path) -> None:
    assets = load_fastmetro_mesh_assets(stand_in, expected_sha256=None)
    content = read_mesh_npz(stand_in, ('A', 'U'))
    adjacency = content['A'][2].to_dense() != 0
    mask = assets.decoder_attention_mask(14)
    assert mask.shape == (445, 445)
    # FastMETRO's mask: joints rows unmasked; vertex rows see every joint; among vertices only
    # the vertex itself and its 1-ring neighbours.
    assert not mask[:14].any() and not mask[14:, :14].any()
    allowed = ~mask[14:, 14:].numpy()
    np.testing.assert_array_equal(allowed, adjacency | np.eye(431, dtype=bool))
    # The gather equals the sparse product U[0] @ X.
    upsampling = content['U'][0].to_dense()
    points = torch.randn(1723, 3, dtype=torch.float64)
    index, weight = assets.fine_from_intermediate()
    gathered = (points[index] * weight[..., None].double()).sum(1)
    np.testing.assert_allclose(gathered.numpy(), upsampling @ points.numpy(), atol=1e-6)
    assert index.shape == (6890, 3)
