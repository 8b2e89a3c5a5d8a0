"""Find the licensed SMPL-X and MANO model files in the user's body-model folder.

hmr_ros never downloads these files: users register on the SMPL-X and MANO websites, accept the
licences and put the files in one folder (docs/licences.md). This module maps that
folder to file paths and, when something is missing, raises an error that names the expected
file, every place searched and where to get it.

Accepted layouts (the first match wins):

    folder/SMPLX_NEUTRAL.npz         folder/MANO_RIGHT.pkl      folder/MANO_LEFT.pkl
    folder/smplx/SMPLX_NEUTRAL.npz   folder/mano/MANO_RIGHT.pkl  (the `smplx.create` layout)

SMPL-X files may be `.npz` (preferred) or `.pkl`. MANO files are pickles.

Reading them (`read_body_model_file`, docs/body-model-files.md): the official `.pkl` files are
Python 2 pickles holding chumpy arrays (`chumpy.ch.Ch`, the array in its state's `x`) and a
`scipy.sparse` CSC `J_regressor`; chumpy does not import on numpy >= 1.24 and neither package is
a dependency. A restricted unpickler reads them without importing either: an allow-list of
globals (numpy array reconstruction, a few builtins, and inert stand-ins for the chumpy and
scipy classes) is all a file may name, so loading never runs code from it, and the stand-ins
become plain numpy arrays. `.npz` files are read with `allow_pickle=False`; their pickled object
members (`joint2num`, `part2num` in SMPL-X 1.1) are skipped, nothing reads them.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import importlib
import io
import pickle
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hmr_ros.body_models.joint_names import Side

README_SECTION = 'docs/licences.md (the files you must get, and where they go)'
SMPLX_WEBSITE = 'https://smpl-x.is.tue.mpg.de'
MANO_WEBSITE = 'https://mano.is.tue.mpg.de'
SMPLX_GENDERS = ('neutral', 'male', 'female')
SMPLX_EXTENSIONS = ('npz', 'pkl')  # in order of preference
SMPLX_SUBFOLDER = 'smplx'
MANO_SUBFOLDER = 'mano'


class BodyModelFileNotFoundError(FileNotFoundError):
    """A body-model file is missing; the message says which, where we looked and how to get it.

    Attributes:
        expected: the missing file names (alternatives for one file, or several files).
        searched: the folders searched, in order.
    """

    def __init__(self, expected: Sequence[str], searched: Sequence[Path], message: str) -> None:
        super().__init__(message)
        self.expected = tuple(expected)
        self.searched = tuple(searched)

    @classmethod
    def for_file(
        cls, names: Sequence[str], searched: Sequence[Path], website: str
    ) -> BodyModelFileNotFoundError:
        """Error for one file that may have any of `names` (e.g. SMPLX_NEUTRAL.npz or .pkl)."""
        alternatives = ' or '.join(names)
        folders = ', '.join(str(folder) for folder in searched)
        return cls(
            names,
            searched,
            f'Body model file {alternatives} not found (searched: {folders}). hmr_ros cannot '
            f'download it: register at {website}, accept the licence, download the model and '
            f'copy {names[0]} into the body-model folder. See {README_SECTION}.',
        )

    @classmethod
    def combine(cls, errors: Sequence[BodyModelFileNotFoundError]) -> BodyModelFileNotFoundError:
        """One error listing several missing files, each with its own instructions."""
        expected = [name for error in errors for name in error.expected]
        searched = list(dict.fromkeys(folder for error in errors for folder in error.searched))
        lines = '\n'.join(f'- {error}' for error in errors)
        return cls(expected, searched, f'{len(errors)} body model files are missing:\n{lines}')


def _search_folders(folder: str | Path, subfolder: str) -> tuple[Path, ...]:
    root = Path(folder).expanduser()
    return (root, root / subfolder)


def _find(file_names: Sequence[str], folders: Sequence[Path], website: str) -> Path:
    for candidate_folder in folders:
        for name in file_names:
            path = candidate_folder / name
            if path.is_file():
                return path
    raise BodyModelFileNotFoundError.for_file(file_names, folders, website)


def smplx_file_names(gender: str = 'neutral') -> tuple[str, ...]:
    """Accepted SMPL-X file names for a gender, preferred first: SMPLX_NEUTRAL.npz, ...pkl."""
    if gender.lower() not in SMPLX_GENDERS:
        raise ValueError(f'gender must be one of {", ".join(SMPLX_GENDERS)}; got {gender!r}')
    return tuple(f'SMPLX_{gender.upper()}.{ext}' for ext in SMPLX_EXTENSIONS)


def mano_file_name(side: Side) -> str:
    """MANO file name of one hand: MANO_RIGHT.pkl or MANO_LEFT.pkl."""
    if side not in ('left', 'right'):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return f'MANO_{side.upper()}.pkl'


def find_smplx_file(folder: str | Path, gender: str = 'neutral') -> Path:
    """Return the SMPL-X model file of `gender` in the body-model folder.

    Args:
        folder: the configured body-model folder (`~` is expanded).
        gender: 'neutral' (what SMPLer-X and hmr_ros use), 'male' or 'female'.

    Returns:
        Path of SMPLX_{GENDER}.npz, or SMPLX_{GENDER}.pkl when there is no .npz.

    Raises:
        BodyModelFileNotFoundError: no such file in `folder` or `folder/smplx`.
        ValueError: unknown gender.
    """
    names = smplx_file_names(gender)
    return _find(names, _search_folders(folder, SMPLX_SUBFOLDER), SMPLX_WEBSITE)


def find_mano_file(folder: str | Path, side: Side = 'right') -> Path:
    """Return MANO_RIGHT.pkl or MANO_LEFT.pkl in the body-model folder.

    Args:
        folder: the configured body-model folder (`~` is expanded).
        side: 'right' (what HaMeR uses) or 'left'.

    Returns:
        Path of the file.

    Raises:
        BodyModelFileNotFoundError: no such file in `folder` or `folder/mano`.
        ValueError: unknown side.
    """
    name = mano_file_name(side)
    return _find((name,), _search_folders(folder, MANO_SUBFOLDER), MANO_WEBSITE)


@dataclass(frozen=True)
class BodyModelFiles:
    """Paths of the model files hmr_ros needs.

    Attributes:
        smplx: SMPL-X model (SMPLX_NEUTRAL.npz by default).
        mano_right: MANO_RIGHT.pkl.
        mano_left: MANO_LEFT.pkl.
    """

    smplx: Path
    mano_right: Path
    mano_left: Path

    @classmethod
    def from_folder(cls, folder: str | Path, gender: str = 'neutral') -> BodyModelFiles:
        """Find all files in one folder.

        Raises:
            BodyModelFileNotFoundError: one or more files are missing; the message lists all of
                them, so one look at the error is enough to fix the folder.
        """
        found: dict[str, Path] = {}
        missing: list[BodyModelFileNotFoundError] = []
        lookups = (
            ('smplx', lambda: find_smplx_file(folder, gender)),
            ('mano_right', lambda: find_mano_file(folder, 'right')),
            ('mano_left', lambda: find_mano_file(folder, 'left')),
        )
        for key, lookup in lookups:
            try:
                found[key] = lookup()
            except BodyModelFileNotFoundError as error:
                missing.append(error)
        if len(missing) == 1:
            raise missing[0]
        if missing:
            raise BodyModelFileNotFoundError.combine(missing)
        return cls(**found)


# --------------------------------------------------------------------------------------------
# Reading the files without chumpy, scipy or an unrestricted unpickler
# --------------------------------------------------------------------------------------------
# hmr_ros.checkpoints.safe_load has a restricted unpickler for checkpoints, but body_models sits
# below checkpoints in the layers and its allow-list (torch, training configs) is not this one;
# this is the small, separate list the body-model formats need.

CHUMPY_GLOBALS: frozenset[str] = frozenset({'chumpy.ch.Ch'})
"""chumpy classes of the official files: the plain array node; its state's 'x' is the array."""
SPARSE_GLOBALS: frozenset[str] = frozenset(
    f'scipy.sparse.{module}.{fmt}_{kind}'
    for module, fmt in (('csc', 'csc'), ('_csc', 'csc'), ('csr', 'csr'), ('_csr', 'csr'))
    for kind in ('matrix', 'array')
)
"""scipy sparse classes: older pickles name scipy.sparse.csc, scipy >= 1.8 scipy.sparse._csc."""


class BodyModelFileError(ValueError):
    """A body-model file cannot be read; the message names the file and what is wrong."""


class UnsafeBodyModelFileError(BodyModelFileError, pickle.UnpicklingError):
    """The pickle names a global, or builds an object, outside the allow-list; nothing ran."""


class _PickledStandIn:
    """Inert stand-in for a class of the official files: keeps the pickled state, runs nothing."""

    source_global: ClassVar[str] = ''

    def __init__(self, *args: object) -> None:  # copyreg._reconstructor path (protocols 0, 1)
        self.state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError(f'inert stand-in for {self.source_global} cannot be pickled')


class _ChumpyArray(_PickledStandIn):
    """`chumpy.ch.Ch`: state is its __dict__ (less _parents and _cache) with the array in 'x'."""

    def to_numpy(self, path: Path) -> np.ndarray:
        state = self.state
        if not isinstance(state, dict) or 'x' not in state:
            raise BodyModelFileError(
                f'{path}: a {self.source_global} object without its array (state keys: '
                f'{sorted(state) if isinstance(state, dict) else type(state).__name__})'
            )
        value = _to_numpy(state['x'], path)
        if not isinstance(value, np.ndarray):
            value = np.asarray(value, dtype=np.float64)
        return value


class _SparseMatrix(_PickledStandIn):
    """scipy CSC/CSR matrix: state holds data, indices, indptr, _shape (or shape), maxprint."""

    def to_numpy(self, path: Path) -> np.ndarray:
        state: dict[str, Any] = self.state if isinstance(self.state, dict) else {}
        try:
            data = np.asarray(state['data'])
            indices = np.asarray(state['indices'], dtype=np.int64)
            indptr = np.asarray(state['indptr'], dtype=np.int64)
            rows, cols = (int(n) for n in state.get('_shape', state.get('shape', ())))
        except (KeyError, TypeError, ValueError) as error:
            raise BodyModelFileError(
                f'{path}: {self.source_global} without data/indices/indptr/_shape '
                f'(state keys: {sorted(state)})'
            ) from error
        compressed_columns = self.source_global.rsplit('.', 1)[-1].startswith('csc')
        outer = cols if compressed_columns else rows
        if (
            indptr.shape != (outer + 1,)
            or indices.shape != data.shape
            or indptr[-1] != len(data)
            or np.any(np.diff(indptr) < 0)
            or (indices.size and (indices.min() < 0 or indices.max() >= (rows + cols - outer)))
        ):
            raise BodyModelFileError(
                f'{path}: inconsistent {self.source_global} of shape {rows}x{cols}'
            )
        dense = np.zeros((rows, cols), dtype=data.dtype)
        outer_index = np.repeat(np.arange(outer), np.diff(indptr))
        if compressed_columns:
            np.add.at(dense, (indices, outer_index), data)  # duplicates sum, as scipy does
        else:
            np.add.at(dense, (outer_index, indices), data)
        return dense


def _stand_in_classes() -> dict[str, type[_PickledStandIn]]:
    classes: dict[str, type[_PickledStandIn]] = {}
    for name in sorted(CHUMPY_GLOBALS | SPARSE_GLOBALS):
        base = _ChumpyArray if name in CHUMPY_GLOBALS else _SparseMatrix
        classes[name] = type(name.rsplit('.', 1)[-1], (base,), {'source_global': name})
    return classes


_STAND_INS = _stand_in_classes()


def _safe_reconstructor(cls: object, base: object, state: object) -> object:
    """`copyreg._reconstructor` (protocols 0 and 1) limited to the stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, _PickledStandIn)) or base is not object:
        raise UnsafeBodyModelFileError(f'copyreg._reconstructor({cls!r}, {base!r}) is not allowed')
    return cls()


_MULTIARRAY = importlib.import_module(
    'numpy._core.multiarray' if hasattr(np, '_core') else 'numpy.core.multiarray'
)
_ALLOWED_GLOBALS: dict[str, object] = {
    'numpy.ndarray': np.ndarray,
    'numpy.dtype': np.dtype,
    # numpy 2 renamed numpy.core to numpy._core; files name the one that wrote them.
    **{
        f'{core}.multiarray.{name}': getattr(_MULTIARRAY, name)
        for core in ('numpy.core', 'numpy._core')
        for name in ('_reconstruct', 'scalar')
    },
    'builtins.set': set,
    'builtins.frozenset': frozenset,
    'builtins.list': list,
    'builtins.dict': dict,
    'builtins.tuple': tuple,
    'builtins.object': object,
    '_codecs.encode': codecs.encode,  # protocol-2 bytes written by Python 3
    'copyreg._reconstructor': _safe_reconstructor,
    **_STAND_INS,
}


class _BodyModelUnpickler(pickle._Unpickler):
    """Pure-Python unpickler (its opcode table can be checked) with an allow-list of globals.

    BUILD (attribute update / __setstate__) is allowed only on numpy arrays, dtypes and the
    stand-ins, so a file cannot set attributes on the allowed functions and classes.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names: __builtin__.set
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f'{module}.{name}'
        if full not in _ALLOWED_GLOBALS:
            raise UnsafeBodyModelFileError(f'the file names {full}, which is not allowed')
        return _ALLOWED_GLOBALS[full]

    def _load_build_checked(self) -> None:
        inst = self.stack[-2]  # type: ignore[attr-defined]
        if not isinstance(inst, (np.ndarray, np.dtype, _PickledStandIn)):
            raise UnsafeBodyModelFileError(
                f'the file builds a {type(inst).__module__}.{type(inst).__name__}, which is '
                'not allowed'
            )
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    dispatch[pickle.BUILD[0]] = _load_build_checked


def _to_numpy(value: Any, path: Path) -> Any:
    """Replace stand-ins by numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(value, (_ChumpyArray, _SparseMatrix)):
        return value.to_numpy(path)
    if isinstance(value, _PickledStandIn):  # pragma: no cover - every stand-in is one of the two
        raise BodyModelFileError(f'{path}: cannot convert {value.source_global}')
    if isinstance(value, dict):
        return {key: _to_numpy(item, path) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(item, path) for item in value)
    return value


def read_body_model_pickle(data: bytes, path: Path) -> dict[str, Any]:
    """Read an official (or stand-in) SMPL-X / MANO pickle held in memory.

    Args:
        data: the file's bytes.
        path: the file, for messages.

    Returns:
        The file's dict with chumpy arrays and sparse matrices as numpy arrays.

    Raises:
        UnsafeBodyModelFileError: the pickle names a global outside the allow-list (nothing
            from it was constructed or run).
        BodyModelFileError: not a pickle of a dict, or broken content.
    """
    try:
        # latin1: Python 2 `str` holds the arrays' raw bytes (what numpy expects back).
        loaded = _BodyModelUnpickler(io.BytesIO(data), encoding='latin1').load()
    except UnsafeBodyModelFileError as error:
        raise UnsafeBodyModelFileError(
            f'{path}: refused to load: {error}. Body-model pickles may hold only numpy arrays, '
            'chumpy arrays and scipy sparse matrices; use the files from the SMPL-X / MANO '
            'websites'
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise BodyModelFileError(f'{path}: not a readable body-model pickle ({error})') from error
    if not isinstance(loaded, dict):
        raise BodyModelFileError(f'{path}: expected a pickled dict, got {type(loaded).__name__}')
    return {str(key): _to_numpy(value, path) for key, value in loaded.items()}


def read_body_model_file(path: str | Path) -> dict[str, Any]:
    """Read an SMPL-X or MANO model file into plain values, never running code from it.

    `.pkl`: the restricted unpickler above (official files: chumpy arrays and a scipy sparse
    `J_regressor` become numpy arrays). `.npz`: numpy with `allow_pickle=False`; object members
    (pickled dicts such as SMPL-X 1.1's `joint2num`) are skipped.

    Args:
        path: the model file.

    Returns:
        Name -> numpy array (strings such as MANO's `bs_style` and pickled dicts stay as they
        are).

    Raises:
        FileNotFoundError: no such file.
        BodyModelFileError: unknown extension or unreadable content (UnsafeBodyModelFileError
            for a pickle outside the allow-list).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'body-model file {path} not found')
    suffix = path.suffix.lower()
    if suffix == '.pkl':
        return read_body_model_pickle(path.read_bytes(), path)
    if suffix == '.npz':
        arrays: dict[str, Any] = {}
        try:
            with np.load(path, allow_pickle=False) as npz:
                for key in npz.files:
                    try:
                        arrays[key] = npz[key]
                    except ValueError:  # an object array: needs pickle, which we never use
                        continue
        except (OSError, zipfile.BadZipFile, ValueError) as error:
            raise BodyModelFileError(f'{path}: not a readable .npz ({error})') from error
        return arrays
    raise BodyModelFileError(f'{path}: body-model files are .pkl or .npz, not {path.suffix!r}')


def numeric_arrays(model: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The numeric array members of a read model file (what the body-model layers use)."""
    return {
        key: value
        for key, value in model.items()
        if isinstance(value, np.ndarray) and value.dtype.kind in 'biuf'
    }
