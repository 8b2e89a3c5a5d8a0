"""Small constant tensors inside a forward without a host-to-device copy.

``torch.tensor(values, device=cuda)`` and ``x.new_tensor(values)`` copy Python data from the
host on every call: a synchronising copy on CUDA, and an operation CUDA graph capture refuses
(docs/performance-internals.md, "Sync-free rules"). Modules keep their constants as registered
buffers; stateless functions (geometry) use these helpers, which build the same values with
fill kernels or pick elements with Python-integer indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ['constant_like', 'divide_last_dim', 'scale_last_dim', 'take']


def constant_like(
    values: Sequence[float] | Sequence[int],
    like: torch.Tensor,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A 1-D tensor of ``values`` on ``like``'s device, built by fill kernels (no host copy).

    Args:
        values: the numbers (a short sequence: one fill kernel each).
        like: tensor giving device and, unless ``dtype`` is given, dtype.
        dtype: dtype of the result.

    Returns:
        (len(values),) tensor equal to ``like.new_tensor(values, dtype=dtype)``.
    """
    dtype = like.dtype if dtype is None else dtype
    return torch.stack([torch.full((), v, dtype=dtype, device=like.device) for v in values])


def scale_last_dim(tensor: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """``tensor * tensor.new_tensor(factors)`` over the last dimension, with Python scalars.

    The products are the same floating-point operations (each factor is rounded to the
    tensor's dtype), so results are bit-identical.

    Args:
        tensor: (..., K).
        factors: K numbers.

    Returns:
        (..., K) scaled tensor.
    """
    if tensor.shape[-1] != len(factors):
        raise ValueError(
            f'tensor has {tensor.shape[-1]} components in its last dimension but '
            f'{len(factors)} factors were given'
        )
    return torch.stack([tensor[..., i] * f for i, f in enumerate(factors)], dim=-1)


def divide_last_dim(tensor: torch.Tensor, divisors: Sequence[float]) -> torch.Tensor:
    """``tensor / tensor.new_tensor(divisors)`` over the last dimension, with Python scalars.

    Bit-identical to the tensor division (each divisor is rounded to the tensor's dtype).

    Args:
        tensor: (..., K).
        divisors: K non-zero numbers.

    Returns:
        (..., K) divided tensor.
    """
    if tensor.shape[-1] != len(divisors):
        raise ValueError(
            f'tensor has {tensor.shape[-1]} components in its last dimension but '
            f'{len(divisors)} divisors were given'
        )
    return torch.stack([tensor[..., i] / d for i, d in enumerate(divisors)], dim=-1)


def take(tensor: torch.Tensor, indices: Sequence[int], dim: int) -> torch.Tensor:
    """``tensor.index_select(dim, tensor.new_tensor(indices))`` with Python-integer indices.

    Args:
        tensor: any tensor.
        indices: positions along ``dim``.
        dim: the dimension to select from.

    Returns:
        The selected slices stacked along ``dim``.
    """
    dim = dim % tensor.dim()
    return torch.stack([tensor.select(dim, i) for i in indices], dim=dim)
