"""Backends on a CUDA device against eager on the same device (issue 9, item 2).

These need a GPU (marked ``gpu``, skipped without CUDA); the TensorRT ones also need the
``tensorrt`` package and skip where it is not importable. The reference is the eager module on
the same inputs and device: a captured graph or an engine must compute what the module computes
(fp32: to float32 rounding; engines: to the 1e-4 relative tolerance of the ONNX check).
"""

from __future__ import annotations

import pytest
import torch

from hmr_ros.models.dual_path import DualPathConfig
from hmr_ros.pipeline.backends import BackendOptions, create_backend
from hmr_ros.pipeline.backends.cuda_graph import example_inputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA'),
]

CUDA = torch.device('cuda:0')
FIELDS = ('vertices', 'joints', 'transl', 'body_pose', 'hand_finger_pose', 'hand_keypoints')


@pytest.fixture(scope='module')
def cuda_model():
    from hmr_ros.pipeline.runner import _test_asset_model

    return _test_asset_model(DualPathConfig(hand_antialias=False), CUDA)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))


def _compare(cuda_model, backend_name: str, persons: int, tolerance: float, tmp_path) -> None:
    options = BackendOptions(
        max_persons=4, engine_cache_dir=str(tmp_path / 'e'), compile_cache_dir=str(tmp_path / 'c')
    )
    backend = create_backend(
        backend_name, cuda_model, CUDA, torch.float32, options, image_hw=(480, 640)
    )
    inputs = example_inputs((480, 640), persons, CUDA)
    inputs[1][:, 0] += torch.arange(persons, device=CUDA) * 7.0  # distinct boxes
    with torch.inference_mode():
        expected = cuda_model(*inputs)
    output = backend.run(*inputs)
    for name in FIELDS:
        got = getattr(output, name)[:persons]
        assert _relative(got, getattr(expected, name)) < tolerance, (backend_name, name)


@pytest.mark.parametrize('persons', [1, 3])
def test_cuda_graph_replay_equals_eager(cuda_model, persons: int, tmp_path) -> None:
    """3 persons replay the 4-person graph: padding rows must not change the real ones."""
    _compare(cuda_model, 'cuda_graph', persons, 1e-5, tmp_path)


def test_cuda_graph_replays_new_inputs_not_the_captured_ones(cuda_model, tmp_path) -> None:
    backend = create_backend('cuda_graph', cuda_model, CUDA, torch.float32, image_hw=(480, 640))
    first = example_inputs((480, 640), 1, CUDA)
    second = example_inputs((480, 640), 1, CUDA)
    second[1][:, :2] += 40.0
    a = backend.run(*first).transl.clone()
    b = backend.run(*second).transl.clone()
    assert not torch.allclose(a, b)


def test_compile_equals_eager(cuda_model, tmp_path) -> None:
    _compare(cuda_model, 'compile', 2, 1e-4, tmp_path)


def test_onnxruntime_cuda_equals_eager(cuda_model, tmp_path) -> None:
    ort = pytest.importorskip('onnxruntime')
    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('onnxruntime has no CUDA execution provider here')
    _compare(cuda_model, 'onnxruntime', 2, 1e-4, tmp_path)


def test_tensorrt_equals_eager_and_reuses_its_cache(cuda_model, tmp_path) -> None:
    pytest.importorskip('tensorrt')
    _compare(cuda_model, 'tensorrt', 2, 1e-3, tmp_path)
    engines = sorted((tmp_path / 'e' / 'tensorrt').glob('*.engine'))
    assert engines, 'no engine was cached'
    stamps = [path.stat().st_mtime_ns for path in engines]
    _compare(cuda_model, 'tensorrt', 2, 1e-3, tmp_path)
    assert [path.stat().st_mtime_ns for path in engines] == stamps  # loaded, not rebuilt


def test_staging_ring_reuses_slots_and_keeps_values() -> None:
    """Prefetch through reused pinned slots: each upload is its own image, and the number of
    slots stays bounded (capacity + 2) however many frames pass."""
    import numpy as np

    from hmr_ros.pipeline.runner import FrameUploader, HostStaging

    uploader = FrameUploader(CUDA, capacity=2)
    rng = np.random.default_rng(0)
    for _ in range(12):
        image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        uploader.prefetch(image)
        tensor = uploader.upload(image)
        expected = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        torch.testing.assert_close(tensor.cpu(), expected)
    assert uploader.prefetch_hits + uploader.prefetch_skipped == 12
    assert len(uploader._slots) <= 4  # noqa: SLF001 - the bound is the point of the test
    flat = torch.arange(12.0, device=CUDA).reshape(3, 4)
    np.testing.assert_array_equal(HostStaging(CUDA).to_host(flat), flat.cpu().numpy())
