"""Audit of host synchronisation: which ops in a forward would make the host wait for a GPU.

A CUDA forward is only graph-capturable, exportable and free of host stalls if it never reads a
device value on the host. :class:`SyncAudit` is a ``TorchDispatchMode`` that sees every aten op
of a forward (on any device, the CPU included, so the audit runs in CI) and records the ones
that synchronise on CUDA or break capture, with the first source line outside torch that caused
each (docs/performance-internals.md, "Sync-free rules"):

- ``scalar read``: ``aten._local_scalar_dense`` (``.item()``, ``int(t)``, ``float(t)``,
  ``bool(t)``, ``if t:``), and ops returning Python values of tensor data (``aten.equal``,
  ``aten.is_nonzero``).
- ``data-dependent shape``: ``nonzero``, ``argwhere``, ``masked_select``, ``unique``,
  ``repeat_interleave`` with tensor repeats and no output size.
- ``boolean-mask indexing``: ``index`` / ``index_put`` with a bool index (a hidden ``nonzero``).
- ``host-checked linalg``: ``aten._linalg_check_errors`` (``torch.linalg.solve``, ``inv``,
  ``cholesky`` ... without ``_ex`` read their info code on the host).
- ``device transfer``: ``_to_copy`` / ``copy_`` between devices.
- ``tensor from Python data``: ``aten.lift_fresh`` (``torch.tensor(...)``,
  ``x.new_tensor(...)`` inside a forward: a host-to-device copy per call on CUDA).

Copies done outside the dispatcher on the CPU (``.tolist()``, ``.numpy()``) are invisible to a
dispatch mode; ``torch.compile(fullgraph=True)`` and ``torch.export`` catch those.
"""

from __future__ import annotations

import collections
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

if TYPE_CHECKING:
    from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
    from hmr_ros.models.dual_path import DualPathModel

__all__ = ['SyncAudit', 'SyncEvent', 'audited_tiny_dual_path']

_aten = torch.ops.aten

_SCALAR_READS = {_aten._local_scalar_dense, _aten.equal, _aten.is_nonzero}
_DYNAMIC_SHAPES = {
    _aten.nonzero,
    _aten.argwhere,
    _aten.masked_select,
    _aten._unique,
    _aten._unique2,
    _aten.unique_dim,
    _aten.unique_consecutive,
}
_INDEXING = {_aten.index, _aten.index_put, _aten.index_put_, _aten._index_put_impl_}
_COPIES = {_aten._to_copy, _aten.copy_}
_FROM_PYTHON = {_aten.lift_fresh, _aten.lift_fresh_copy}
_TORCH_DIR = os.path.dirname(torch.__file__)


@dataclass(frozen=True)
class SyncEvent:
    """One op that synchronises on CUDA.

    Attributes:
        kind: the rule it breaks ('scalar read', 'boolean-mask indexing', ...).
        op: the aten op, e.g. 'aten._local_scalar_dense.default'.
        location: 'file:line' of the innermost frame outside torch that led to it.
    """

    kind: str
    op: str
    location: str


def _devices(tree: Any) -> set[torch.device]:
    leaves, _ = tree_flatten(tree)
    return {leaf.device for leaf in leaves if isinstance(leaf, torch.Tensor)}


def _classify(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    packet = func.overloadpacket
    if packet in _SCALAR_READS:
        return 'scalar read'
    if packet in _DYNAMIC_SHAPES:
        return 'data-dependent shape'
    if packet is _aten.repeat_interleave and func is _aten.repeat_interleave.Tensor:
        if kwargs.get('output_size') is None and (len(args) < 2 or args[1] is None):
            return 'data-dependent shape'
    if packet in _INDEXING:
        indices = args[1] if len(args) > 1 else kwargs.get('indices', ())
        if any(
            isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices
        ):
            return 'boolean-mask indexing'
    if packet is _aten._linalg_check_errors:
        return 'host-checked linalg'
    if packet in _COPIES:
        source = args[1] if packet is _aten.copy_ else args[0]
        target = args[0] if packet is _aten.copy_ else None
        target_device = target.device if target is not None else kwargs.get('device')
        if target_device is not None and torch.device(target_device) != source.device:
            return 'device transfer'
    if packet in _FROM_PYTHON:
        return 'tensor from Python data'
    return None


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-3]):
        if not frame.filename.startswith(_TORCH_DIR) and frame.filename != __file__:
            return f'{_short(frame.filename)}:{frame.lineno}'
    return '<torch>'


def _short(path: str) -> str:
    for marker in ('/site-packages/', '/hmr_ros/', '/test/', '/benchmarks/'):
        if marker in path:
            return path[path.rindex(marker) + 1 :]
    return os.path.basename(path)


class SyncAudit(TorchDispatchMode):
    """Record every op that would synchronise the host with a CUDA device.

    Use as a context manager around a forward; ``events`` lists what was found::

        with torch.no_grad(), SyncAudit() as audit:
            model(images, boxes, batch_index, intrinsics)
        assert not audit.events, audit.summary()

    The ops still run (results are unchanged), so the audit also works on CPU.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: list[SyncEvent] = []

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        kind = _classify(func, args, kwargs)
        if kind is not None:
            self.events.append(SyncEvent(kind, str(func), _caller()))
        return func(*args, **kwargs)

    def counts(self, key: Callable[[SyncEvent], str] = lambda e: e.location) -> dict[str, int]:
        """Events counted by ``key`` (default: source location), most frequent first."""
        return dict(collections.Counter(key(e) for e in self.events).most_common())

    def summary(self) -> str:
        """One line per (kind, location) with its count; empty when no event was recorded."""
        counter = collections.Counter(f'{e.kind}: {e.op} at {e.location}' for e in self.events)
        return '\n'.join(f'{n:4d}  {what}' for what, n in counter.most_common())


def audited_tiny_dual_path(smplx_model: SMPLXBodyModel, seed: int = 0) -> DualPathModel:
    """The model the audit runs on (benchmarks/sync_audit.py and its CI test).

    The tiny dual path (random weights, seeded) with both adapters giving non-zero outputs and
    every hand fused, so that every branch of the forward runs.

    Args:
        smplx_model: the SMPL-X layer (e.g. of the generated stand-in files).
        seed: torch seed of the random weights.
    """
    # Imported here: the audit itself depends on torch only.
    from hmr_ros.models.adapters.body_adapter import BodyAdapter, body_adapter_tiny
    from hmr_ros.models.adapters.hand_adapter import HandAdapter
    from hmr_ros.models.dual_path import DualPathConfig, DualPathModel
    from hmr_ros.models.hand_expert import build_hand_expert
    from hmr_ros.models.whole_body import build_whole_body

    torch.manual_seed(seed)
    whole_body = build_whole_body('smplerx_tiny').eval()
    hand_expert = build_hand_expert('hamer_tiny').eval()
    hand_adapter = HandAdapter(hand_expert.mano_head)
    body_adapter = BodyAdapter(body_adapter_tiny())
    with torch.no_grad():
        # The adapters start as exact no-ops (zero output layers); make them act.
        for branch in hand_adapter.branches:
            branch.output_projection.weight.normal_(std=0.2)
        body_adapter.output_layer.weight.normal_(std=0.3)
    return DualPathModel(
        whole_body,
        hand_expert,
        smplx_model,
        hand_adapter,
        body_adapter,
        DualPathConfig(hand_confidence_threshold=0.0),
    ).eval()
