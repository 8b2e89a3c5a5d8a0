"""Where and in which precision the models run: one resolver for inference and training.

The device names and precisions users write in parameters and configs ('auto', 'cpu',
'cuda:1', 'fp16', ...) become torch devices and autocast dtypes here, with errors that name the
setting to change.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

PRECISION_DTYPES: dict[str, torch.dtype] = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16,
}
PRECISION_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in PRECISION_DTYPES.items()}


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine; the message names the setting."""


def resolve_device(requested: str, setting: str = 'device') -> torch.device:
    """'auto' -> the first CUDA device if there is one, else the CPU (with a warning).

    Args:
        requested: 'auto', 'cpu', 'cuda' or 'cuda:<index>'.
        setting: the parameter or config key the value came from, for the error message.

    Raises:
        DeviceUnavailableError: a CUDA device asked for where torch sees none.
    """
    if requested == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda:0')
        logger.warning('no CUDA device: running on the CPU, far below camera rate at full size')
        return torch.device('cpu')
    device = torch.device(requested)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"{setting} is '{requested}' but torch sees no CUDA device (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda}); set {setting} to 'cpu' "
            "or 'auto', or install the CUDA build of torch"
        )
    return device


def resolve_precision(
    requested: str, device: torch.device, auto_cuda: torch.dtype = torch.float16
) -> torch.dtype:
    """The compute dtype: 'auto' is ``auto_cuda`` on CUDA and fp32 on the CPU.

    Half precision is for CUDA: asked for on the CPU it falls back to fp32 with a warning (CPU
    autocast is slow for these models and not what a GPU run would compute).

    Args:
        requested: 'auto', 'fp32', 'fp16' or 'bf16'.
        device: where the model runs.
        auto_cuda: the dtype 'auto' means on CUDA (inference: fp16; training: bf16 where the
            GPU supports it).
    """
    if requested == 'auto':
        return auto_cuda if device.type == 'cuda' else torch.float32
    if requested not in PRECISION_DTYPES:
        raise ValueError(
            f'precision {requested!r} is not one of auto, {", ".join(PRECISION_DTYPES)}'
        )
    dtype = PRECISION_DTYPES[requested]
    if device.type != 'cuda' and dtype != torch.float32:
        logger.warning('precision %s is for CUDA; the %s runs fp32', requested, device.type)
        return torch.float32
    return dtype
