"""Write pandas DataFrame pickles the way pandas does, without pandas (for the AGORA tests).

pandas is not a dependency, so the tests stand in for it: small classes registered under
pandas' own module names make `pickle` emit the globals and structure pandas writes. The
structure is pandas' (its `BlockManager.__getstate__` / `__reduce__` and `Index.__reduce__`,
checked against pickles written by pandas 1.5.3 and 2.2.3):

- 'legacy' (pandas < 1.4, what AGORA's 2021 files were written with): DataFrame by NEWOBJ with
  state {'_mgr': manager, '_typ': 'dataframe', '_metadata': [], 'attrs': {}, ...}; the
  BlockManager by NEWOBJ with the state tuple (axes, block values, block items,
  {'0.14.1': {'axes': axes, 'blocks': [{'values': v, 'mgr_locs': slice or int array}]}}).
- 'blocks' (pandas >= 1.4): BlockManager(blocks, axes) with each block
  pandas._libs.internals._unpickle_block(values, placement, ndim).
- Indexes: pandas.core.indexes.base._new_Index(Index, {'data': array, 'name': None}); the row
  index _new_Index(RangeIndex, {'name': None, 'start': 0, 'stop': n, 'step': 1}).

Blocks group columns by dtype, values shaped (columns in the block, rows), as pandas does:
float columns in one float64 block, everything else in one object block.
"""

from __future__ import annotations

import copyreg
import pickle
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_MODULES = (
    'pandas',
    'pandas.core',
    'pandas.core.frame',
    'pandas.core.internals',
    'pandas.core.internals.managers',
    'pandas._libs',
    'pandas._libs.internals',
    'pandas.core.indexes',
    'pandas.core.indexes.base',
    'pandas.core.indexes.range',
)


def _define(module: types.ModuleType, name: str, value: Any) -> Any:
    value.__module__ = module.__name__
    value.__qualname__ = name
    value.__name__ = name
    setattr(module, name, value)
    return value


@contextmanager
def _fake_pandas() -> Iterator[dict[str, types.ModuleType]]:
    if 'pandas' in sys.modules:
        raise RuntimeError('real pandas is imported; use it instead of the stand-in')
    modules = {name: types.ModuleType(name) for name in _MODULES}
    sys.modules.update(modules)
    try:
        yield modules
    finally:
        for name in _MODULES:
            sys.modules.pop(name, None)


def _index_classes(modules: dict[str, types.ModuleType]) -> tuple[Any, Any, Any]:
    base = modules['pandas.core.indexes.base']

    def _new_index(cls: Any, attributes: Any) -> None:  # never called when writing
        raise NotImplementedError

    new_index = _define(base, '_new_Index', _new_index)
    index_cls = _define(base, 'Index', type('Index', (), {}))
    range_cls = _define(modules['pandas.core.indexes.range'], 'RangeIndex', type('R', (), {}))
    return new_index, index_cls, range_cls


class _Reduced:
    """An object that pickles as `function(*args)`, then BUILD with state if given."""

    def __init__(self, function: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.reduced = (function, args) if state is None else (function, args, state)

    def __reduce__(self) -> tuple[Any, ...]:
        return self.reduced


def _new_object(cls: type, state: Any) -> Any:
    """An instance of cls that pickles as NEWOBJ(cls) then BUILD(state), as pandas objects do."""
    instance: Any = object.__new__(cls)
    instance.reduced = (copyreg.__newobj__, (cls,), state)  # type: ignore[attr-defined]
    return instance


def write_dataframe_pickle(
    path: Path, columns: dict[str, Sequence[Any]], layout: str = 'legacy', protocol: int = 4
) -> None:
    """Pickle a table of columns as pandas would pickle DataFrame(columns).

    Args:
        path: file to write.
        columns: name -> one value per row (a column of floats becomes a float64 block).
        layout: 'legacy' (pandas < 1.4) or 'blocks' (pandas >= 1.4).
        protocol: pickle protocol.
    """
    names = list(columns)
    rows = len(next(iter(columns.values())))
    floats = [i for i, n in enumerate(names) if all(isinstance(v, float) for v in columns[n])]
    objects = [i for i in range(len(names)) if i not in floats]
    with _fake_pandas() as modules:
        new_index, index_cls, range_cls = _index_classes(modules)
        reducing = {'__reduce__': lambda self: self.reduced}
        frame_cls = _define(modules['pandas.core.frame'], 'DataFrame', type('F', (), reducing))
        manager_cls = _define(
            modules['pandas.core.internals.managers'], 'BlockManager', type('M', (), reducing)
        )

        def _unpickle_block(values: Any, placement: Any, ndim: int) -> None:
            raise NotImplementedError

        unpickle_block = _define(
            modules['pandas._libs.internals'], '_unpickle_block', _unpickle_block
        )
        column_index = _Reduced(
            new_index, (index_cls, {'data': np.array(names, dtype=object), 'name': None})
        )
        row_index = _Reduced(
            new_index, (range_cls, {'name': None, 'start': 0, 'stop': rows, 'step': 1})
        )
        axes = [column_index, row_index]
        blocks = []
        for members, dtype in ((floats, np.float64), (objects, object)):
            if not members:
                continue
            values = np.empty((len(members), rows), dtype=dtype)
            for k, i in enumerate(members):
                for r, value in enumerate(columns[names[i]]):
                    values[k, r] = value
            is_run = members == list(range(members[0], members[-1] + 1))
            placement = (
                slice(members[0], members[-1] + 1, 1) if is_run else np.array(members, np.int64)
            )
            blocks.append((values, placement))
        if layout == 'legacy':
            state = (
                axes,
                [v for v, _ in blocks],
                [np.array([names[i] for i in range(len(names))], dtype=object)],
                {
                    '0.14.1': {
                        'axes': axes,
                        'blocks': [{'values': v, 'mgr_locs': p} for v, p in blocks],
                    }
                },
            )
            manager: Any = _new_object(manager_cls, state)
        elif layout == 'blocks':
            manager = _Reduced(
                manager_cls,
                (tuple(_Reduced(unpickle_block, (v, p, 2)) for v, p in blocks), axes),
            )
        else:
            raise ValueError(layout)
        frame_state = {
            '_mgr': manager,
            '_typ': 'dataframe',
            '_metadata': [],
            'attrs': {},
            '_flags': {'allows_duplicate_labels': True},
        }
        frame = _new_object(frame_cls, frame_state)
        path.write_bytes(pickle.dumps(frame, protocol=protocol))
