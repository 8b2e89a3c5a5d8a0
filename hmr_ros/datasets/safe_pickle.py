"""Read the pickled arrays some data sets and protocol files ship, without running their code.

Several files the paper's data and protocols need are Python pickles of plain numpy data:
SMPLer-X's `SMPLX_to_J14.pkl` (the J14 regressor), SMPL-X's `MANO_SMPLX_vertex_ids.pkl`, the
3DPW `sequenceFiles/*/*.pkl` and the object members (`smplx`, `meta`) of SMPLer-X's HumanData
`.npz` files. `pickle.load` on them could execute anything the file asks for, so they are read
with an unpickler that resolves only the few globals numpy data needs (array and scalar
reconstruction, dtypes, and `_codecs.encode`, which Python 2 pickles use for byte strings).
Anything else raises `UnsafePickleError` naming the global. The allow-list is narrower than the
checkpoint loader's (`checkpoints.safe_load`), which must also admit torch storages.

AGORA ships its annotations as pickled pandas DataFrames. `load_dataframe_pickle` reads them
without pandas and without running pandas code: the few pandas globals a DataFrame pickle names
(the frame, its BlockManager, the blocks, the indexes) resolve to inert records here, which
only keep the arguments and state the pickle hands them; the columns are then put together
from those records. Both layouts pandas has written are understood: the BlockManager state
tuple with its '0.14.1' dict (pandas < 1.4) and `BlockManager(blocks, axes)` over
`_unpickle_block(values, placement, ndim)` (pandas >= 1.4).
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

__all__ = ['UnsafePickleError', 'load_dataframe_pickle', 'load_npz_member', 'load_numpy_pickle']


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


def _load(file: BinaryIO, source: str, unpickler: type[_NumpyUnpickler] = _NumpyUnpickler) -> Any:
    try:
        return unpickler(file, encoding='latin1').load()
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


# --- pandas DataFrames, read without pandas ------------------------------------------------------


class _Inert:
    """Base of the stand-ins: keeps what the pickle gives it, runs nothing."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _FrameRecord(_Inert):
    """pandas.core.frame.DataFrame; its state holds the manager ('_mgr'; '_data' before 1.1)."""


class _ManagerRecord(_Inert):
    """pandas BlockManager: args (blocks, axes) from pandas >= 1.4, else the state tuple."""


class _BlockRecord:
    """pandas._libs.internals._unpickle_block(values, placement, ndim)."""

    def __init__(self, values: Any, placement: Any, ndim: Any = 2) -> None:
        self.values = values
        self.placement = placement


class _IndexKind:
    """An Index class the pickle names; only passed to _new_Index."""

    def __init__(self, name: str) -> None:
        self.name = name


class _IndexRecord:
    """pandas.core.indexes.base._new_Index(cls, attributes)."""

    def __init__(self, kind: Any, attributes: Any) -> None:
        if not isinstance(kind, _IndexKind) or not isinstance(attributes, dict):
            raise UnsafePickleError('a pandas index in this pickle is not a plain Index')
        self.kind = kind.name
        self.attributes = attributes

    def labels(self) -> list[Any]:
        if self.kind == 'RangeIndex':
            start, stop, step = (
                self.attributes.get(k, d) for k, d in (('start', 0), ('stop', 0), ('step', 1))
            )
            return list(range(int(start), int(stop), int(step)))
        return list(np.asarray(self.attributes['data']).tolist())


_INDEX_KINDS = {
    ('pandas.core.indexes.base', 'Index'),
    ('pandas.core.indexes.range', 'RangeIndex'),
    ('pandas.core.indexes.numeric', 'Int64Index'),
    ('pandas.core.indexes.numeric', 'UInt64Index'),
    ('pandas.core.indexes.numeric', 'Float64Index'),
}
_PANDAS_RECORDS: dict[tuple[str, str], Any] = {
    ('pandas.core.frame', 'DataFrame'): _FrameRecord,
    ('pandas.core.internals.managers', 'BlockManager'): _ManagerRecord,
    ('pandas._libs.internals', '_unpickle_block'): _BlockRecord,
    ('pandas.core.internals.blocks', '_unpickle_block'): _BlockRecord,
    ('pandas.core.indexes.base', '_new_Index'): _IndexRecord,
    ('builtins', 'slice'): slice,
    ('__builtin__', 'slice'): slice,
}


class _DataFrameUnpickler(_NumpyUnpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _INDEX_KINDS:
            return _IndexKind(name)
        record = _PANDAS_RECORDS.get((module, name))
        return record if record is not None else super().find_class(module, name)


def _placement_rows(placement: Any, count: int) -> list[int]:
    if isinstance(placement, slice):
        return list(range(count))[placement]
    return [int(i) for i in np.asarray(placement).reshape(-1)]


def _frame_columns(frame: Any, source: str) -> dict[str, list[Any]]:
    state = frame.state if isinstance(frame, _FrameRecord) else None
    manager = None
    if isinstance(state, dict):
        manager = state.get('_mgr', state.get('_data'))
    if not isinstance(manager, _ManagerRecord):
        raise ValueError(f'{source} does not hold a pandas DataFrame')
    if isinstance(manager.state, tuple) and len(manager.state) >= 4:  # pandas < 1.4
        legacy = manager.state[3]['0.14.1']
        axes = legacy['axes']
        blocks = [(b['values'], b['mgr_locs']) for b in legacy['blocks']]
    elif len(manager.args) == 2:  # pandas >= 1.4
        block_records, axes = manager.args
        blocks = [(b.values, b.placement) for b in block_records]
    else:
        raise ValueError(f'{source}: unknown pandas BlockManager layout')
    if len(axes) != 2 or not all(isinstance(axis, _IndexRecord) for axis in axes):
        raise ValueError(f'{source}: a DataFrame needs a column and a row index')
    names = axes[0].labels()
    count = len(axes[1].labels())
    columns: dict[int, list[Any]] = {}
    for values, placement in blocks:
        array = np.asarray(values)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        for position, column in zip(_placement_rows(placement, len(names)), array, strict=True):
            if len(column) != count:
                raise ValueError(
                    f'{source}: column {names[position]!r} has {len(column)} rows, not {count}'
                )
            columns[position] = list(column)
    if sorted(columns) != list(range(len(names))):
        raise ValueError(f'{source}: the blocks do not cover every column')
    return {str(names[i]): columns[i] for i in range(len(names))}


def load_dataframe_pickle(path: str | Path) -> dict[str, list[Any]]:
    """The columns of a pickled pandas DataFrame (AGORA's annotations), without pandas.

    Only the DataFrame machinery (frame, BlockManager, blocks, Index / RangeIndex /
    Int64Index) and numpy data are admitted; they become inert records and no pandas or other
    code runs. Cells keep their Python or numpy values (a list per person, an array, a string).

    Args:
        path: the .pkl file (`DataFrame.to_pickle` or `pickle.dump` of a DataFrame).

    Returns:
        Column name -> one value per row, in the frame's column and row order.

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the file asks for anything else (extension arrays, categoricals,
            timestamps and all code are refused; nothing was run).
        ValueError: not a pickled DataFrame.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found')
    with path.open('rb') as file:
        frame = _load(file, str(path), _DataFrameUnpickler)
    try:
        return _frame_columns(frame, str(path))
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f'{path} is not a readable pandas DataFrame pickle: {error!r}') from None
