"""Device and precision names from parameters and configs."""

import pytest
import torch

from hmr_ros.models.devices import DeviceUnavailableError, resolve_device, resolve_precision


def test_auto_precision_depends_on_the_device() -> None:
    assert resolve_precision('auto', torch.device('cpu')) == torch.float32
    assert resolve_precision('auto', torch.device('cuda'), torch.bfloat16) == torch.bfloat16
    assert resolve_precision('fp16', torch.device('cuda')) == torch.float16
    assert resolve_precision('bf16', torch.device('cpu')) == torch.float32  # CPU falls back
    with pytest.raises(ValueError, match='fp8'):
        resolve_precision('fp8', torch.device('cpu'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-GPU message')
def test_missing_cuda_names_the_setting() -> None:
    with pytest.raises(DeviceUnavailableError, match="run.device is 'cuda:1'"):
        resolve_device('cuda:1', 'run.device')
    assert resolve_device('cpu') == torch.device('cpu')
