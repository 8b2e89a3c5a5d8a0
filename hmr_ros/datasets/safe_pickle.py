"""Read the pickled arrays some data sets and protocol files ship, without running their code.

Several files the paper's data and protocols need are Python pickles of plain numpy data:
SMPLer-X's `SMPLX_to_J14.pkl` (the J14 regressor), SMPL-X's `MANO_SMPLX_vertex_ids.pkl`, the
3DPW `sequenceFiles/*/*.pkl` and the object members (`smplx`, `meta`) of SMPLer-X's HumanData
`.npz` files. `pickle.load` on them could execute anything the file asks for, so they are read
with an unpickler that resolves only the few globals numpy data needs (array and scalar
reconstruction, dtypes, and `_codecs.encode`, which Python 2 pickles use for byte strings).
Anything else raises `UnsafePickleError` naming the global. The allow-list is narrower than the
checkpoint loader's (`checkpoints.safe_load`), which must also admit torch storages.
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# numpy 2 moved numpy.core to numpy._core; pickles name either.
_MULTIARRAY = importlib.import_module(
    'numpy._core.multiarray' if hasattr(np, '_core') else 'numpy.core.multiarray'
)
_NUMERIC = importlib.import_module(
    'numpy._core.numeric' if hasattr(np, '_core') else 'numpy.core.numeric'
)

__all__ = ['UnsafePickleError', 'load_numpy_pickle', 'load_npz_member']


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global outside the numpy-data allow-list."""


def _numpy_global(module: str, name: str) -> Any:
    if module in ('numpy.core.multiarray', 'numpy._core.multiarray') and name in (
        '_reconstruct',
        'scalar',
    ):
        return getattr(_MULTIARRAY, name)
    if module in ('numpy.core.numeric', 'numpy._core.numeric') and name == '_frombuffer':
        return getattr(_NUMERIC, name)  # protocol-5 arrays: frombuffer(bytes, dtype, shape)
    if module == 'numpy' and name in ('ndarray', 'dtype'):
        return getattr(np, name)
    if module == '_codecs' and name == 'encode':
        return codecs.encode
    return None


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _numpy_global(module, name)
        if found is None:
            raise UnsafePickleError(
                f'the pickle asks for {module}.{name}, which numpy data never needs; the file is '
                'not what it claims to be (refused, nothing was run)'
            )
        return found


def _load(file: BinaryIO, source: str) -> Any:
    try:
        return _NumpyUnpickler(file, encoding='latin1').load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f'{source} is not a readable pickle of numpy data: {error}') from None


def load_numpy_pickle(path: str | Path) -> Any:
    """The object of a pickle of numpy arrays, dicts, lists, strings and numbers.

    Args:
        path: the .pkl file (Python 2 pickles are read with latin1, as their authors load them).

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the file asks for anything but numpy data.
        ValueError: not a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found')
    with path.open('rb') as file:
        return _load(file, str(path))


def load_npz_member(path: str | Path, key: str) -> np.ndarray:
    """One array of an `.npz`, object arrays included (read with the numpy-only unpickler).

    `np.load(allow_pickle=False)` refuses object members such as HumanData's 'smplx' dict; this
    reads the member's `.npy` header and unpickles its payload with the restricted unpickler.

    Raises:
        KeyError: the archive has no such member.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        member = f'{key}.npy'
        if member not in archive.namelist():
            raise KeyError(f'{path} has no {key!r} (has {", ".join(_keys(archive))})')
        data = archive.read(member)
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    if not dtype.hasobject:
        with np.load(path, allow_pickle=False) as archive_arrays:
            return np.asarray(archive_arrays[key])
    array = _load(stream, f'{path}:{key}')
    if not isinstance(array, np.ndarray):
        raise ValueError(f'{path}:{key} holds {type(array).__name__}, not an array')
    del shape, fortran
    return array


def _keys(archive: zipfile.ZipFile) -> list[str]:
    return [name.removesuffix('.npy') for name in archive.namelist()]
