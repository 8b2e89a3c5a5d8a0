"""FastMETRO's mesh file ``mesh_downsampling.npz``: read safely, check its hash, turn into tensors.

The released FastMETRO weights are tied to the vertex selection and order of this file
(GraphCMR's SMPL decimation, shipped in FastMETRO's ``src/modeling/data/``): the 431 vertex
tokens, the learnable 431 -> 1723 layer and the fixed 1723 -> 6890 upsampling all index its
vertices. The file embeds the SMPL template mesh, so hmr_ros does not ship it: the user copies
it from the FastMETRO repository into the body-model folder (docs/seed-models.md). Its SHA-256
is checked against the published one (PUBLISHED_MESH_SHA256); regenerating the hierarchy from
an SMPL file gives another vertex order, which the released weights cannot use (they would
need retraining), so regeneration is not offered.

Format (as released; a Python 2 pickle inside an npz): keys ``A``, ``U``, ``D`` (object arrays
of ``scipy.sparse.csc_matrix``: adjacency per level 6890/1723/431, upsampling 6890x1723 and
1723x431 with 3 non-zeros per row, selection matrices), ``F`` (faces per level) and ``M``
(pickled ``psbody.mesh`` objects). Reading it with ``np.load(allow_pickle=True)`` would run
whatever the pickle names; here the ``.npy`` members are parsed with a restricted unpickler
that resolves only numpy's array reconstruction and maps scipy's sparse classes to an inert
record of (data, indices, indptr, shape). ``M`` is never read. Neither scipy nor psbody is
needed.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from hmr_ros.checkpoints.safe_load import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)

__all__ = [
    'MESH_FILE_NAME',
    'PUBLISHED_MESH_SHA256',
    'FastMetroMeshAssets',
    'MeshAssetHashError',
    'SparseMatrix',
    'load_fastmetro_mesh_assets',
    'read_mesh_npz',
    'write_mesh_npz',
    'write_stand_in_mesh_npz',
]

MESH_FILE_NAME = 'mesh_downsampling.npz'
PUBLISHED_MESH_SHA256 = '5683b656d9acd7f1558db832527beb0cc6b3b45388cf41a7979dab52e2c57477'
"""SHA-256 of ``src/modeling/data/mesh_downsampling.npz`` in postech-ami/FastMETRO @ c5ae206
(1,720,359 bytes; computed from the repository's blob)."""
FASTMETRO_REPOSITORY = 'https://github.com/postech-ami/FastMETRO (src/modeling/data/)'
MESH_LEVEL_SIZES = (6890, 1723, 431)
"""Vertices per level of the published file: SMPL, then decimated 4x twice."""

_SPARSE_CLASSES = frozenset(
    {
        ('scipy.sparse.csc', 'csc_matrix'),
        ('scipy.sparse._csc', 'csc_matrix'),
        ('scipy.sparse.csr', 'csr_matrix'),
        ('scipy.sparse._csr', 'csr_matrix'),
    }
)


class MeshAssetHashError(CorruptCheckpointError):
    """The mesh file is not the published one (its SHA-256 differs)."""


class SparseMatrix:
    """Inert record of a pickled scipy CSC/CSR matrix: arrays only, no behaviour from the file.

    Attributes:
        format: 'csc' or 'csr'.
        data, indices, indptr: the compressed arrays.
        shape: (rows, columns).
    """

    def __init__(self, fmt: str = 'csc') -> None:
        self.format = fmt
        self.data = np.zeros(0)
        self.indices = np.zeros(0, dtype=np.int64)
        self.indptr = np.zeros(1, dtype=np.int64)
        self.shape: tuple[int, int] = (0, 0)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Takes the arrays of scipy's pickled ``__dict__`` and nothing else."""
        self.data = np.asarray(state['data'])
        self.indices = np.asarray(state['indices'], dtype=np.int64)
        self.indptr = np.asarray(state['indptr'], dtype=np.int64)
        shape = state['_shape'] if '_shape' in state else state['shape']
        self.shape = (int(shape[0]), int(shape[1]))

    @classmethod
    def from_coo(
        cls, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]
    ) -> SparseMatrix:
        """A CSC record of the entries (row, column, value) of a (rows, columns) matrix."""
        order = np.lexsort((rows, cols))
        matrix = cls('csc')
        matrix.indices = np.asarray(rows, dtype=np.int64)[order]
        matrix.data = np.asarray(values, dtype=np.float64)[order]
        counts = np.bincount(np.asarray(cols)[order], minlength=shape[1])
        matrix.indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        matrix.shape = (int(shape[0]), int(shape[1]))
        return matrix

    def to_dense(self) -> np.ndarray:
        """The (rows, columns) float64 matrix."""
        rows, cols, values = self.to_coo()
        dense = np.zeros(self.shape)
        np.add.at(dense, (rows, cols), values)
        return dense

    def to_coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column, value) of every stored entry, sorted by row then column."""
        major = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        rows, cols = (self.indices, major) if self.format == 'csc' else (major, self.indices)
        order = np.lexsort((cols, rows))
        return rows[order], cols[order], np.asarray(self.data, dtype=np.float64)[order]


def _sparse_class(fmt: str) -> type[SparseMatrix]:
    """A SparseMatrix subclass for one format (NEWOBJ creates it without arguments)."""
    return type(f'{fmt}_matrix', (SparseMatrix,), {'format': fmt})


_SPARSE_STAND_INS = {'csc': _sparse_class('csc'), 'csr': _sparse_class('csr')}
_NUMPY_CORE_MODULES = ('numpy.core.multiarray', 'numpy._core.multiarray')
_NUMPY_GLOBALS = {
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
}


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """What protocol-2 pickles call to rebuild bytes (``_codecs.encode(s, 'latin1')``) only."""
    if encoding not in ('latin1', 'latin-1'):
        raise UnsafeCheckpointError(f'_codecs.encode with encoding {encoding!r}')
    return text.encode('latin1')


def _numpy_reconstruct() -> Any:
    core = getattr(np, '_core', None) or np.core  # numpy 2 renamed numpy.core
    return core.multiarray._reconstruct


class _MeshUnpickler(pickle._Unpickler):
    """Pure-Python unpickler: numpy arrays and inert sparse records only; BUILD checked."""

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(module, name)]
        if name == '_reconstruct' and module in (
            'numpy.core.multiarray',
            'numpy._core.multiarray',
        ):
            return _numpy_reconstruct()
        if (module, name) in _SPARSE_CLASSES:
            return _SPARSE_STAND_INS[name[:3]]
        if (module, name) == ('_codecs', 'encode'):  # Python 3 protocol-2 bytes
            return _latin1_bytes
        raise UnsafeCheckpointError(f'{module}.{name}')

    def _load_build_checked(self) -> None:
        inst = self.stack[-2]  # type: ignore[attr-defined]
        if not isinstance(inst, (np.ndarray, np.dtype, SparseMatrix)):
            raise UnsafeCheckpointError(f'BUILD on {type(inst).__module__}.{type(inst).__name__}')
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    dispatch[pickle.BUILD[0]] = _load_build_checked


def _read_npy(raw: bytes, name: str) -> Any:
    """One ``.npy`` member: plain arrays directly, object arrays through the restricted pickle."""
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(stream)
    else:
        header = np.lib.format.read_array_header_2_0(stream)
    shape, _, dtype = header
    if dtype != np.dtype(object):
        stream.seek(0)
        return np.lib.format.read_array(stream, allow_pickle=False)
    # Python 2 pickles hold array bytes as str: latin-1 maps them back byte for byte.
    array = _MeshUnpickler(stream, encoding='latin1').load()
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise CorruptCheckpointError(f'{name}: expected an object array of shape {shape}')
    return list(array.ravel())


def read_mesh_npz(path: str | Path, keys: tuple[str, ...] = ('A', 'U', 'D')) -> dict[str, Any]:
    """The listed members of a GraphCMR/FastMETRO mesh npz, read without running its pickles.

    Args:
        path: the npz file.
        keys: members to read (``M``, the pickled psbody meshes, is never needed).

    Returns:
        key -> list of SparseMatrix (or arrays) per level.

    Raises:
        CheckpointNotFoundError: no such file.
        CorruptCheckpointError: not an npz, or a member is missing or malformed.
        UnsafeCheckpointError: a pickle names anything beyond numpy arrays and sparse matrices.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f'FastMETRO mesh file {path} not found: copy {MESH_FILE_NAME} from '
            f'{FASTMETRO_REPOSITORY} into the body-model folder (hmr_ros cannot download it; '
            'it embeds the SMPL template, see docs/seed-models.md)'
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix('.npy'): name for name in archive.namelist()}
            missing = [key for key in keys if key not in members]
            if missing:
                raise CorruptCheckpointError(
                    f'{path} lacks {", ".join(missing)}; found {", ".join(sorted(members))}'
                )
            return {key: _read_npy(archive.read(members[key]), key) for key in keys}
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError, pickle.UnpicklingError) as error:
        if isinstance(error, (CorruptCheckpointError, UnsafeCheckpointError)):
            raise
        raise CorruptCheckpointError(f'{path} is not a readable mesh npz: {error}') from error


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FastMetroMeshAssets:
    """What FastMETRO needs from the mesh file, as tensors.

    Attributes:
        coarse_adjacency: (431, 431) bool 1-ring adjacency of the coarse mesh, no self-loops.
        upsample_index: (6890, K) long, intermediate vertices of each fine vertex.
        upsample_weight: (6890, K) float32 weights (the published U[0] rows; K = 3).
        sha256: of the file read.
    """

    coarse_adjacency: Tensor
    upsample_index: Tensor
    upsample_weight: Tensor
    sha256: str

    def decoder_attention_mask(self, num_joints: int) -> Tensor:
        """FastMETRO's (J + V, J + V) decoder mask, True = blocked.

        Vertex rows see every joint, themselves and their 1-ring; joint rows see everything.
        """
        num_vertices = self.coarse_adjacency.shape[0]
        size = num_joints + num_vertices
        mask = torch.zeros(size, size, dtype=torch.bool)
        allowed = self.coarse_adjacency | torch.eye(num_vertices, dtype=torch.bool)
        mask[num_joints:, num_joints:] = ~allowed
        return mask

    def fine_from_intermediate(self) -> tuple[Tensor, Tensor]:
        """(upsample_index, upsample_weight): fine = sum_k weight[:, k] * coarse[index[:, k]]."""
        return self.upsample_index, self.upsample_weight


def _rows_as_gather(matrix: SparseMatrix, name: str) -> tuple[Tensor, Tensor]:
    """A sparse (N, M) matrix with at most K entries per row as (N, K) index and weight."""
    rows, cols, values = matrix.to_coo()
    counts = np.bincount(rows, minlength=matrix.shape[0])
    width = int(counts.max()) if counts.size else 0
    if width == 0 or (counts == 0).any():
        raise CorruptCheckpointError(f'{name}: every row needs at least one entry')
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    index = np.zeros((matrix.shape[0], width), dtype=np.int64)
    weight = np.zeros((matrix.shape[0], width), dtype=np.float32)
    index[rows, slot] = cols
    weight[rows, slot] = values
    return torch.from_numpy(index), torch.from_numpy(weight)


def load_fastmetro_mesh_assets(
    path: str | Path, expected_sha256: str | None = PUBLISHED_MESH_SHA256
) -> FastMetroMeshAssets:
    """Read the mesh file, check its hash and shapes, and build FastMETRO's mask and upsampling.

    Args:
        path: ``mesh_downsampling.npz``.
        expected_sha256: the published hash; None skips the check (stand-in files in tests).

    Raises:
        MeshAssetHashError: the file is not the published one.
        CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError: see read_mesh_npz.
    """
    path = Path(path)
    if not path.is_file():
        read_mesh_npz(path)  # raises the not-found message
    digest = _sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise MeshAssetHashError(
            f'{path} has SHA-256 {digest}, not the published {expected_sha256}: the released '
            'FastMETRO weights are tied to the vertex order of the published file; copy '
            f'{MESH_FILE_NAME} unchanged from {FASTMETRO_REPOSITORY}'
        )
    content = read_mesh_npz(path, ('A', 'U'))
    adjacency, upsampling = content['A'], content['U']
    sizes = tuple(matrix.shape[0] for matrix in adjacency)
    if sizes != MESH_LEVEL_SIZES or upsampling[0].shape != MESH_LEVEL_SIZES[:2]:
        raise CorruptCheckpointError(
            f'{path}: levels {sizes} and U[0] {upsampling[0].shape}; FastMETRO needs levels '
            f'{MESH_LEVEL_SIZES} and U[0] {MESH_LEVEL_SIZES[:2]}'
        )
    coarse = torch.from_numpy(adjacency[2].to_dense() != 0)
    index, weight = _rows_as_gather(upsampling[0], 'U[0]')
    return FastMetroMeshAssets(coarse, index, weight, digest)


# --- Stand-ins in the released format (tests, hmr-ros make-test-assets) ------------------------


def write_mesh_npz(path: str | Path, levels: dict[str, list[SparseMatrix]]) -> Path:
    """Write sparse matrices as a released-style npz: object arrays of pickled ``csc_matrix``.

    The pickles name ``scipy.sparse.csc.csc_matrix`` with scipy's ``__dict__`` state (``data``,
    ``indices`` and ``indptr`` as int32, ``_shape``, ``maxprint``), protocol 2, as the
    published file; a class of that name exists in ``sys.modules`` only while writing (scipy
    is not needed).

    Args:
        path: file to write.
        levels: key ('A', 'U', 'D') -> matrices per level (SparseMatrix.from_coo).

    Returns:
        The path written.
    """
    import sys
    import types

    class csc_matrix:  # noqa: N801 - the pickled class name
        def __init__(self, matrix: SparseMatrix) -> None:
            csc = SparseMatrix.from_coo(*matrix.to_coo(), matrix.shape)
            self.data = csc.data
            self.indices = csc.indices.astype(np.int32)
            self.indptr = csc.indptr.astype(np.int32)
            self._shape = csc.shape
            self.maxprint = 50

    names = ('scipy', 'scipy.sparse', 'scipy.sparse.csc')
    saved = {name: sys.modules.get(name) for name in names}
    module = types.ModuleType('scipy.sparse.csc')
    csc_matrix.__module__ = 'scipy.sparse.csc'
    csc_matrix.__qualname__ = 'csc_matrix'
    module.csc_matrix = csc_matrix  # type: ignore[attr-defined]
    for name in names[:2]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules['scipy.sparse.csc'] = module
    try:
        buffers = {}
        for key, matrices in levels.items():
            array = np.empty(len(matrices), dtype=object)
            for i, matrix in enumerate(matrices):
                array[i] = csc_matrix(matrix)
            stream = io.BytesIO()
            # numpy pickles object arrays with protocol 4; the released file is protocol 2.
            header = np.lib.format.header_data_from_array_1_0(array)
            np.lib.format.write_array_header_1_0(stream, header)
            pickle.dump(array, stream, protocol=2)
            buffers[key] = stream.getvalue()
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    path = Path(path)
    with zipfile.ZipFile(path, 'w') as archive:
        for key, raw in buffers.items():
            archive.writestr(f'{key}.npy', raw)
    return path


def write_stand_in_mesh_npz(path: str | Path, *, seed: int = 0) -> Path:
    """A random stand-in of the published file: same format and sizes, no SMPL geometry.

    Level 2 adjacency is a ring (each coarse vertex joined to its two neighbours) plus random
    chords; U[0] gives every fine vertex 3 random intermediate vertices with random weights
    summing to about 1. Results computed with it are meaningless (tests only).
    """
    rng = np.random.default_rng(seed)
    fine, intermediate, coarse = MESH_LEVEL_SIZES

    def symmetric_graph(size: int, chords: int) -> SparseMatrix:
        first = np.concatenate((np.arange(size), rng.integers(0, size, chords)))
        second = np.concatenate(((np.arange(size) + 1) % size, rng.integers(0, size, chords)))
        keep = first != second
        pairs = np.unique(np.sort(np.stack((first[keep], second[keep]), 1), axis=1), axis=0)
        rows = np.concatenate((pairs[:, 0], pairs[:, 1]))
        cols = np.concatenate((pairs[:, 1], pairs[:, 0]))
        return SparseMatrix.from_coo(rows, cols, np.ones(len(rows)), (size, size))

    def upsampling(rows: int, cols: int) -> SparseMatrix:
        targets = np.stack([rng.choice(cols, 3, replace=False) for _ in range(rows)])
        weights = rng.dirichlet(np.ones(3), rows) * rng.uniform(0.95, 1.05, (rows, 1))
        return SparseMatrix.from_coo(
            np.repeat(np.arange(rows), 3), targets.ravel(), weights.ravel(), (rows, cols)
        )

    return write_mesh_npz(
        path,
        {
            'A': [symmetric_graph(n, n // 4) for n in MESH_LEVEL_SIZES],
            'U': [upsampling(fine, intermediate), upsampling(intermediate, coarse)],
        },
    )
