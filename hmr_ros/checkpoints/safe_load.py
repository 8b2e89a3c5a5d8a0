"""Safe reading of PyTorch checkpoint files and strict, fully reported state-dict loading.

Official HaMeR and SMPLer-X weights are ``torch.save`` pickles (docs/model-reference.md, A.1 and
B.7). Unpickling can run arbitrary code, so nothing here ever uses an unrestricted unpickler:

1. ``torch.load(..., weights_only=True)`` is tried first. It reads any file made only of tensors
   and plain containers (SMPLer-X ``.pth.tar`` files, our own stand-ins).
2. Lightning checkpoints such as HaMeR's ``hamer.ckpt`` also pickle the training configuration
   (a yacs ``CfgNode`` or an omegaconf ``DictConfig``) under ``hyper_parameters``, which
   ``weights_only`` rejects. Those files are read again with a restricted unpickler: it resolves
   only the globals listed in this module (tensor rebuild functions, plain containers, numpy
   arrays, dtypes) and replaces the listed configuration classes by inert stand-ins that are turned
   into plain ``dict``/``list`` values after loading. Any other global raises
   ``UnsafeCheckpointError`` before it can be called.

Strict loading follows timm's ``load_state_dict`` (docs/development.md): keys and shapes are
checked before anything is copied, with explicit allow-lists for keys expected to be missing or
unexpected, and every problem is reported at once in ``CheckpointMismatchError``.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import fnmatch
import importlib
import logging
import os
import pickle
import types
import zipfile
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

__all__ = [
    'CheckpointError',
    'CheckpointMismatchError',
    'CheckpointNotFoundError',
    'CorruptCheckpointError',
    'UnsafeCheckpointError',
    'check_state_dict',
    'load_state_dict_strict',
    'load_torch_file',
    'state_dict_shapes',
]

_LOGGER = logging.getLogger(__name__)

# The page that explains where checkpoints come from and how to convert them.
README_CHECKPOINTS_SECTION = 'docs/licences.md'
# How many keys a mismatch message lists per category before summarising the rest.
MAX_LISTED_KEYS = 20

Shape = tuple[int, ...]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class CheckpointError(Exception):
    """Base class of every checkpoint problem raised by hmr_ros."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist or is not a file."""


class CorruptCheckpointError(CheckpointError, ValueError):
    """The file exists but cannot be read as a checkpoint (truncated, wrong format, damaged)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file asks the unpickler for a global that is not on the allow-list.

    Attributes:
        global_name: the fully qualified name the file asked for, e.g. ``'posix.system'``.
    """

    def __init__(self, global_name: str, path: str | os.PathLike[str] | None = None) -> None:
        self.global_name = global_name
        where = f' {os.fspath(path)}' if path is not None else ''
        super().__init__(
            f'Refusing to load checkpoint{where}: it references the Python global '
            f"'{global_name}', which is not a tensor, a plain container or a known configuration "
            'class, and unpickling it could run code. Only load files from a source you trust; '
            'if this is a genuine checkpoint, convert it on a trusted machine with '
            f'`hmr-ros convert-checkpoint` (see {README_CHECKPOINTS_SECTION}).'
        )


class CheckpointMismatchError(CheckpointError, ValueError):
    """A state dict does not match the model it is loaded into.

    Attributes:
        missing: keys the model expects that the state dict lacks (sorted).
        unexpected: keys in the state dict that the model does not have (sorted).
        mismatched: ``(key, expected_shape, found_shape)`` for keys present in both with different
            shapes (sorted by key).
    """

    def __init__(
        self,
        missing: Iterable[str] = (),
        unexpected: Iterable[str] = (),
        mismatched: Iterable[tuple[str, Shape, Shape]] = (),
        *,
        context: str = '',
    ) -> None:
        self.missing: list[str] = sorted(missing)
        self.unexpected: list[str] = sorted(unexpected)
        self.mismatched: list[tuple[str, Shape, Shape]] = sorted(mismatched)
        self.context = context
        super().__init__(self._format())

    def _format(self) -> str:
        head = self.context or 'State dict does not match the model'
        counts = (
            f'{len(self.missing)} missing, {len(self.unexpected)} unexpected, '
            f'{len(self.mismatched)} with a different shape'
        )
        lines = [f'{head}: {counts}.']
        lines += _listed('missing', self.missing)
        lines += _listed('unexpected', self.unexpected)
        lines += _listed(
            'shape mismatch (key: expected -> found)',
            [f'{key}: {list(exp)} -> {list(found)}' for key, exp, found in self.mismatched],
        )
        lines.append(
            'Check that the file is the checkpoint of this model and variant (hmr-ros '
            'convert-checkpoint detects both), or convert it again; see '
            f'{README_CHECKPOINTS_SECTION}.'
        )
        return '\n'.join(lines)


def _listed(title: str, items: Sequence[str]) -> list[str]:
    """Formats one category of a mismatch report, listing at most ``MAX_LISTED_KEYS`` items."""
    if not items:
        return []
    lines = [f'  {title} ({len(items)}):']
    lines += [f'    {item}' for item in items[:MAX_LISTED_KEYS]]
    if len(items) > MAX_LISTED_KEYS:
        lines.append(f'    ... and {len(items) - MAX_LISTED_KEYS} more')
    return lines


# --------------------------------------------------------------------------------------------
# Restricted unpickler
# --------------------------------------------------------------------------------------------

# Globals a checkpoint may reference, resolved as module attribute lookups of these exact names.
# Storage classes never reach this list: torch's own unpickler wrapper resolves any name containing
# 'Storage' through its dtype table before calling find_class.
_TORCH_GLOBALS: frozenset[str] = frozenset(
    {
        'torch._utils._rebuild_tensor',
        'torch._utils._rebuild_tensor_v2',
        'torch._utils._rebuild_tensor_v3',
        'torch._utils._rebuild_parameter',
        'torch._utils._rebuild_parameter_with_state',
        'torch._utils._rebuild_device_tensor_from_numpy',
        'torch._utils._rebuild_device_tensor_from_cpu_tensor',
        'torch._utils._rebuild_meta_tensor_no_storage',
        'torch._tensor._rebuild_from_type_v2',
        'torch.serialization._get_layout',
        'torch.Size',
        'torch.Tensor',
        'torch.device',
        'torch.nn.parameter.Parameter',
    }
)
_BUILTIN_GLOBALS: dict[str, object] = {
    'builtins.dict': dict,
    'builtins.list': list,
    'builtins.tuple': tuple,
    'builtins.set': set,
    'builtins.frozenset': frozenset,
    'builtins.bytearray': bytearray,
    'builtins.complex': complex,
    'builtins.slice': slice,
    'builtins.int': int,
    'builtins.float': float,
    'builtins.bool': bool,
    'builtins.str': str,
    'builtins.bytes': bytes,
    'collections.OrderedDict': OrderedDict,
    'collections.defaultdict': defaultdict,
    'collections.Counter': Counter,
    # Protocol-2 pickles write bytes as _codecs.encode(str, 'latin1').
    '_codecs.encode': codecs.encode,
}
# numpy arrays and scalars (Lightning may store metrics as numpy values); numpy 2 renamed
# numpy.core to numpy._core, and files written by either version name their own.
_NUMPY_GLOBALS: frozenset[str] = frozenset(
    {
        'numpy.ndarray',
        'numpy.dtype',
        'numpy.core.multiarray._reconstruct',
        'numpy.core.multiarray.scalar',
        'numpy._core.multiarray._reconstruct',
        'numpy._core.multiarray.scalar',
    }
)
# Configuration classes that training frameworks pickle beside the weights. They are never
# imported: each name maps to an inert stand-in whose content is converted to plain values.
CONFIG_GLOBALS: frozenset[str] = frozenset(
    {
        'yacs.config.CfgNode',
        'omegaconf.dictconfig.DictConfig',
        'omegaconf.listconfig.ListConfig',
        'omegaconf.base.Metadata',
        'omegaconf.base.ContainerMetadata',
        'omegaconf.nodes.AnyNode',
        'omegaconf.nodes.StringNode',
        'omegaconf.nodes.IntegerNode',
        'omegaconf.nodes.FloatNode',
        'omegaconf.nodes.BooleanNode',
        'omegaconf.nodes.BytesNode',
        'omegaconf.nodes.PathNode',
        'omegaconf.nodes.ValueNode',
        'typing.Any',
        'argparse.Namespace',
        'pytorch_lightning.utilities.parsing.AttributeDict',
        'lightning_fabric.utilities.data.AttributeDict',
        'lightning.fabric.utilities.data.AttributeDict',
    }
)


class _InertConfig(dict[str, Any]):
    """Stand-in for a pickled configuration object; stores what the pickle gives it, runs nothing.

    It is a ``dict`` so that dict subclasses (yacs ``CfgNode``, ``AttributeDict``) receive their
    items through the normal SETITEMS opcode. Construction arguments and ``__setstate__`` state are
    kept for ``_to_plain``. Subclasses set ``source_global``.
    """

    source_global = ''

    def __new__(cls, *args: object, **kwargs: object) -> _InertConfig:
        return super().__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()
        self.__dict__['pickle_args'] = args

    def __setstate__(self, state: object) -> None:
        self.__dict__['pickle_state'] = state

    def __reduce__(self) -> tuple[Any, ...]:  # never re-pickle a stand-in as the real class
        raise TypeError(f'inert stand-in for {self.source_global} cannot be pickled')


def _make_inert_classes() -> dict[str, type[_InertConfig]]:
    classes = {}
    for name in sorted(CONFIG_GLOBALS):
        short = name.rsplit('.', 1)[-1]
        classes[name] = type(f'Inert{short}', (_InertConfig,), {'source_global': name})
    return classes


_INERT_CLASSES: dict[str, type[_InertConfig]] = _make_inert_classes()


def _safe_reconstructor(cls: object, base: object, state: object) -> object:
    """Protocol 0/1 object reconstruction (``copyreg._reconstructor``) limited to stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, _InertConfig)) or base not in (dict, object):
        raise UnsafeCheckpointError(f'copyreg._reconstructor({cls!r}, {base!r})')
    obj = cls()
    if isinstance(state, Mapping):
        obj.update(state)
    return obj


def _resolve_allowed(module: str, name: str) -> object | None:
    """Returns the object for an allowed global, or None when it is not allowed."""
    full = f'{module}.{name}'
    if full in _INERT_CLASSES:
        return _INERT_CLASSES[full]
    if full in _BUILTIN_GLOBALS:
        return _BUILTIN_GLOBALS[full]
    if full == 'copyreg._reconstructor':
        return _safe_reconstructor
    if full in _TORCH_GLOBALS or full in _NUMPY_GLOBALS:
        if module == 'numpy.core.multiarray':
            module = 'numpy._core.multiarray' if hasattr(np, '_core') else module
        target: object = importlib.import_module(module)
        for part in name.split('.'):
            target = getattr(target, part)
        return target
    if module == 'torch' and isinstance(getattr(torch, name, None), (torch.dtype, torch.layout)):
        return getattr(torch, name)  # dtypes (torch.float32) and layouts are plain values
    return None


def _build_allowed(inst: object) -> bool:
    """Whether the BUILD opcode (``__setstate__``/attribute update) may touch ``inst``.

    Restricting BUILD to data objects stops a file from setting attributes on the allowed
    functions and classes themselves.
    """
    return isinstance(inst, (OrderedDict, torch.Tensor, np.ndarray, np.dtype, _InertConfig))


class _RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler whose globals and BUILD targets are allow-listed.

    The pure-Python implementation is used (instead of the C one) because its opcode table can be
    replaced: BUILD is checked before it runs. Only the small pickle part of a checkpoint goes
    through it; tensor data is read by torch directly.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles name Python 2 modules (__builtin__.long); map them like pickle does.
        if self.proto < 3 and self.fix_imports:  # type: ignore[attr-defined]
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        resolved = _resolve_allowed(module, name)
        if resolved is None:
            raise UnsafeCheckpointError(f'{module}.{name}')
        return resolved

    def _load_build_checked(self) -> None:
        inst = self.stack[-2]  # type: ignore[attr-defined]
        if not _build_allowed(inst):
            raise UnsafeCheckpointError(f'BUILD on {type(inst).__module__}.{type(inst).__name__}')
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    dispatch[pickle.BUILD[0]] = _load_build_checked


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


# What torch.load(pickle_module=...) uses: Unpickler, load and __name__.
_RESTRICTED_PICKLE = types.ModuleType('hmr_ros_restricted_pickle')
_RESTRICTED_PICKLE.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
_RESTRICTED_PICKLE.load = _restricted_load  # type: ignore[attr-defined]


def _to_plain(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """Replaces inert configuration stand-ins by plain ``dict``/``list``/scalar values.

    Containers are updated in place (so an ``OrderedDict`` state dict keeps its type); tensors and
    arrays are returned untouched.
    """
    if memo is None:
        memo = {}
    if isinstance(obj, (torch.Tensor, np.ndarray, str, bytes, int, float, type(None))):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _InertConfig):
        memo[key] = None  # cycles through a stand-in resolve to None
        plain = _inert_to_plain(obj, memo)
        memo[key] = plain
        return plain
    memo[key] = obj
    if isinstance(obj, dict):
        for k, value in list(obj.items()):
            new = _to_plain(value, memo)
            if new is not value:
                obj[k] = new
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            new = _to_plain(value, memo)
            if new is not value:
                obj[i] = new
    elif isinstance(obj, tuple):
        items = tuple(_to_plain(value, memo) for value in obj)
        if any(a is not b for a, b in zip(items, obj, strict=True)):
            obj = type(obj)(*items) if hasattr(obj, '_fields') else type(obj)(items)
            memo[key] = obj
    elif isinstance(obj, (set, frozenset)):
        obj = type(obj)(_to_plain(value, memo) for value in obj)
        memo[key] = obj
    return obj


def _inert_to_plain(obj: _InertConfig, memo: dict[int, Any]) -> Any:
    """Plain value of one stand-in, following the pickled layout of its original class.

    - omegaconf ``DictConfig``/``ListConfig`` keep their content in ``_content`` (a dict or list of
      nodes, or a string for missing/interpolated values); value nodes keep theirs in ``_val``.
      Metadata and parent links are dropped.
    - dict-like classes (yacs ``CfgNode``, ``AttributeDict``) pickle their items as dict items;
      their bookkeeping attributes (``__immutable__`` ...) are dropped.
    - other classes (``argparse.Namespace``) become a dict of their non-dunder attributes.
    """
    name = obj.source_global
    state = obj.__dict__.get('pickle_state')
    state_map: Mapping[str, Any] = state if isinstance(state, Mapping) else {}
    if name.startswith('omegaconf.') and name.endswith(('DictConfig', 'ListConfig')):
        content = state_map.get('_content')
        if isinstance(content, Mapping):
            return {k: _to_plain(v, memo) for k, v in content.items()}
        if isinstance(content, (list, tuple)):
            return [_to_plain(v, memo) for v in content]
        return content
    if name.startswith('omegaconf.nodes.'):
        return _to_plain(state_map.get('_val'), memo)
    if name.startswith('omegaconf.base.') or name == 'typing.Any':
        return None  # type annotations and metadata carry no configuration values
    if len(obj):
        return {k: _to_plain(v, memo) for k, v in obj.items()}
    return {
        k: _to_plain(v, memo)
        for k, v in state_map.items()
        if not (isinstance(k, str) and k.startswith('__'))
    }


# --------------------------------------------------------------------------------------------
# Loading files
# --------------------------------------------------------------------------------------------


def load_torch_file(path: str | os.PathLike[str], *, hint: str = '', mmap: bool = False) -> Any:
    """Reads a ``torch.save`` file without ever executing code from it.

    Args:
        path: checkpoint file (``.ckpt``, ``.pth``, ``.pth.tar``, zip or legacy format).
        hint: what to change when the file is missing, e.g. ``"set the ROS parameter
            model.checkpoint_path"``; appended to the error message.
        mmap: memory-map zip-format files instead of reading them (ignored for the legacy
            format), so a multi-gigabyte checkpoint is not held in memory while it is converted.
            The tensors then read the file lazily: the file must not be truncated or rewritten
            while they are in use (the process would crash with SIGBUS).

    Returns:
        The unpickled object, tensors on the CPU. Pickled configuration objects (yacs
        ``CfgNode``, omegaconf ``DictConfig``) come back as plain ``dict``/``list`` values.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist or is not a file.
        UnsafeCheckpointError: the file references a global outside the allow-list.
        CorruptCheckpointError: the file is truncated or not a PyTorch checkpoint.
    """
    file = Path(path)
    fix = hint or f'pass the path of the downloaded checkpoint (see {README_CHECKPOINTS_SECTION})'
    if not file.exists():
        raise CheckpointNotFoundError(f'Checkpoint file not found: {file}; {fix}.')
    if not file.is_file():
        raise CheckpointNotFoundError(f'Checkpoint path is not a file: {file}; {fix}.')
    use_mmap = mmap and zipfile.is_zipfile(file)
    try:
        return torch.load(file, map_location='cpu', weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as error:
        first_error: Exception = error
    except Exception as error:  # any failure to parse the container is a damaged file
        raise _corrupt(file, error) from error
    _LOGGER.debug('weights_only load of %s refused (%s); retrying restricted', file, first_error)
    try:
        loaded = torch.load(
            file,
            map_location='cpu',
            weights_only=False,
            pickle_module=_RESTRICTED_PICKLE,
            mmap=use_mmap,
        )
    except CheckpointError as error:
        if isinstance(error, UnsafeCheckpointError):
            raise UnsafeCheckpointError(error.global_name, file) from None
        raise
    except Exception as error:
        raise _corrupt(file, error) from error
    return _to_plain(loaded)


def _corrupt(file: Path, error: BaseException) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f'Cannot read checkpoint {file} ({type(error).__name__}: {error}). The file is damaged, '
        'truncated or not a PyTorch checkpoint; download it again and compare its size or '
        f'checksum with the source (see {README_CHECKPOINTS_SECTION}).'
    )


# --------------------------------------------------------------------------------------------
# Strict state-dict checks
# --------------------------------------------------------------------------------------------


def state_dict_shapes(state: Mapping[str, Any] | nn.Module) -> dict[str, Shape]:
    """Shapes of every entry of a state dict (or of ``module.state_dict()``), works on 'meta'."""
    if isinstance(state, nn.Module):
        state = state.state_dict()
    return {key: _shape_of(value) for key, value in state.items()}


def _shape_of(value: Any) -> Shape:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return tuple(int(n) for n in value.shape)
    return tuple(int(n) for n in value)  # already a shape (torch.Size, tuple, list)


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def check_state_dict(
    expected: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    *,
    allowed_missing: Iterable[str] = (),
    allowed_unexpected: Iterable[str] = (),
    context: str = '',
) -> None:
    """Checks keys and shapes of ``state_dict`` against ``expected`` without loading anything.

    Args:
        expected: key -> shape (tuple, ``torch.Size``) or tensor, e.g. ``state_dict_shapes(model)``
            of a model built on the 'meta' device.
        state_dict: key -> tensor (or shape) to check.
        allowed_missing: exact keys or ``fnmatch`` patterns (``'discriminator.*'``) that may be
            absent from ``state_dict``.
        allowed_unexpected: keys or patterns that may appear in ``state_dict`` without being
            expected; they are ignored.
        context: first words of the error message, e.g. ``'hamer.ckpt does not match HandExpert'``.

    Raises:
        CheckpointMismatchError: listing every missing, unexpected and wrongly shaped key.
    """
    allowed_missing = tuple(allowed_missing)
    allowed_unexpected = tuple(allowed_unexpected)
    missing = [k for k in expected if k not in state_dict and not _matches(k, allowed_missing)]
    unexpected = [
        k for k in state_dict if k not in expected and not _matches(k, allowed_unexpected)
    ]
    mismatched = []
    for key, value in state_dict.items():
        if key in expected:
            want, found = _shape_of(expected[key]), _shape_of(value)
            if want != found:
                mismatched.append((key, want, found))
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(missing, unexpected, mismatched, context=context)


def load_state_dict_strict(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    allowed_missing: Iterable[str] = (),
    allowed_unexpected: Iterable[str] = (),
    context: str = '',
) -> None:
    """Loads ``state_dict`` into ``module`` after checking every key and shape.

    Nothing is copied unless the check passes. Keys matching ``allowed_unexpected`` are dropped;
    parameters matching ``allowed_missing`` keep their current values. A module whose tensors are
    on the 'meta' device receives the given tensors themselves (``assign=True``), which
    materialises it without a second copy.

    Args:
        module: model to fill.
        state_dict: key -> tensor.
        allowed_missing: keys or ``fnmatch`` patterns the state dict may lack.
        allowed_unexpected: keys or patterns the state dict may carry beyond the model's.
        context: first words of the error message.

    Raises:
        CheckpointMismatchError: listing every missing, unexpected and wrongly shaped key.
    """
    allowed_unexpected = tuple(allowed_unexpected)
    expected = state_dict_shapes(module)
    check_state_dict(
        expected,
        state_dict,
        allowed_missing=allowed_missing,
        allowed_unexpected=allowed_unexpected,
        context=context,
    )
    kept = {k: v for k, v in state_dict.items() if k in expected}
    on_meta = any(t.is_meta for t in _module_tensors(module))
    module.load_state_dict(kept, strict=False, assign=on_meta)


def _module_tensors(module: nn.Module) -> Iterable[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()
