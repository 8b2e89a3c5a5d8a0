"""Inference backends of the dual path: one module per backend, registered here.

``model.backend`` names one of :data:`BACKEND_NAMES`:

- ``eager``: the PyTorch module (backends/eager.py).
- ``cuda_graph``: one captured CUDA graph per person bucket (backends/cuda_graph.py).
- ``compile``: ``torch.compile`` with inductor (backends/compiled.py).
- ``onnxruntime``: the networks in ONNX Runtime (backends/onnxruntime.py).
- ``tensorrt``: the networks as TensorRT engines (backends/tensorrt.py).
- ``auto``: the first available of :data:`AUTO_ORDER` for the device, logged.

A backend that cannot run here fails :func:`create_backend` with the reason; nothing falls back
silently to another backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from hmr_ros.models.dual_path import DualPathModel
from hmr_ros.pipeline.backends.base import (
    BackendOptions,
    BackendUnavailableError,
    InferenceBackend,
)
from hmr_ros.pipeline.protocol import BACKEND_CHOICES

logger = logging.getLogger(__name__)

BACKEND_NAMES: tuple[str, ...] = BACKEND_CHOICES
"""Values of ``model.backend``."""

AUTO_ORDER: dict[str, tuple[str, ...]] = {
    'cuda': ('tensorrt', 'cuda_graph', 'eager'),
    'cpu': ('eager',),
}
"""What ``auto`` tries, best first, per device type.

On CUDA, TensorRT is fastest where installed, then the captured graph (no launch overhead);
``compile`` is left out of ``auto`` because its first compilation takes minutes. On the CPU,
eager keeps the outputs bit-identical to the reference implementation.
"""

__all__ = [
    'AUTO_ORDER',
    'BACKEND_NAMES',
    'BackendOptions',
    'BackendUnavailableError',
    'InferenceBackend',
    'backend_class',
    'backend_unavailable_reason',
    'create_backend',
]


def backend_class(name: str) -> type[InferenceBackend]:
    """The class of a concrete backend (imports its module only)."""
    if name == 'eager':
        from hmr_ros.pipeline.backends.eager import EagerBackend

        return EagerBackend
    if name == 'cuda_graph':
        from hmr_ros.pipeline.backends.cuda_graph import CudaGraphBackend

        return CudaGraphBackend
    if name == 'compile':
        from hmr_ros.pipeline.backends.compiled import CompileBackend

        return CompileBackend
    if name == 'onnxruntime':
        from hmr_ros.pipeline.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend
    if name == 'tensorrt':
        from hmr_ros.pipeline.backends.tensorrt import TensorRTBackend

        return TensorRTBackend
    raise ValueError(f'unknown backend {name!r}; choose one of {", ".join(BACKEND_NAMES)}')


def backend_unavailable_reason(name: str, device: torch.device) -> str | None:
    """Why a concrete backend cannot run on ``device`` here (None: it can)."""
    available: Callable[[torch.device], str | None] = backend_class(name).available  # type: ignore[attr-defined]
    return available(device)


def resolve_backend_name(name: str, device: torch.device) -> str:
    """``auto`` -> the best available backend for ``device`` (logged); others unchanged."""
    if name != 'auto':
        return name
    reasons: list[str] = []
    for candidate in AUTO_ORDER.get(device.type, ('eager',)):
        reason = backend_unavailable_reason(candidate, device)
        if reason is None:
            logger.info(
                'model.backend auto: %s on %s%s',
                candidate,
                device,
                f' ({"; ".join(reasons)})' if reasons else '',
            )
            return candidate
        reasons.append(f'not {candidate}: {reason}')
    raise BackendUnavailableError(f'no backend available on {device}: {"; ".join(reasons)}')


def create_backend(
    name: str,
    model: DualPathModel,
    device: torch.device,
    precision: torch.dtype,
    options: BackendOptions | None = None,
    image_hw: tuple[int, int] | None = None,
) -> InferenceBackend:
    """Build and prepare a backend (engines, compilation or capture happen here).

    Args:
        name: one of BACKEND_NAMES.
        model: the dual path in eval mode on ``device``.
        device: where it runs.
        precision: compute dtype (fp32 on the CPU).
        options: caches, buckets and rebuild flag (None: the defaults).
        image_hw: camera image size if known; graph capture and compilation then happen now,
            else on the first frame of each new size.

    Raises:
        BackendUnavailableError: the backend cannot run here; the message says why (missing
            package, no CUDA, a capture or export failure).
        ValueError: an unknown name.
    """
    if name not in BACKEND_NAMES:
        raise ValueError(
            f'model.backend {name!r} is not valid; choose one of {", ".join(BACKEND_NAMES)}'
        )
    if name != 'auto':
        return _build_backend(name, model, device, precision, options, image_hw)
    # auto: the first candidate that builds and prepares (capture included), each refusal
    # logged; an explicit name never falls back.
    failures: list[str] = []
    for candidate in AUTO_ORDER.get(device.type, ('eager',)):
        try:
            backend = _build_backend(candidate, model, device, precision, options, image_hw)
        except BackendUnavailableError as error:
            failures.append(str(error))
            logger.warning('model.backend auto: %s; trying the next backend', error)
            continue
        logger.info('model.backend auto chose %s on %s', candidate, device)
        return backend
    raise BackendUnavailableError(f'no backend available on {device}: {"; ".join(failures)}')


def _build_backend(
    name: str,
    model: DualPathModel,
    device: torch.device,
    precision: torch.dtype,
    options: BackendOptions | None,
    image_hw: tuple[int, int] | None,
) -> InferenceBackend:
    reason = backend_unavailable_reason(name, device)
    if reason is not None:
        raise BackendUnavailableError(f'model.backend {name!r} cannot run: {reason}')
    backend = backend_class(name)(model, device, precision, options or BackendOptions())
    try:
        backend.prepare(image_hw)
    except BackendUnavailableError:
        raise
    except Exception as error:
        raise BackendUnavailableError(
            f'model.backend {name!r} failed to prepare: {type(error).__name__}: {error}'
        ) from error
    logger.info('inference backend: %s', backend.describe())
    return backend
