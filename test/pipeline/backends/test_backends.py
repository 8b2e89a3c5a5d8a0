"""Backend registry, person buckets, the eager backend and the TensorRT engine cache (issue 9, 2).

Outside facts used: the issue pads person counts to buckets (1, 2, 4 ... up to
detection.max_persons); a cached engine must be rebuilt (never used, never crash) when its file
is truncated, its record names another key, or it fails to deserialise.
"""

from __future__ import annotations

import json

import pytest
import torch

from hmr_ros.models.dual_path import DualPathConfig
from hmr_ros.pipeline.backends import (
    BackendOptions,
    BackendUnavailableError,
    create_backend,
    resolve_backend_name,
)
from hmr_ros.pipeline.backends.base import pad_to_bucket
from hmr_ros.pipeline.backends.cuda_graph import example_inputs
from hmr_ros.pipeline.backends.tensorrt import EngineCache, EngineKey

CPU = torch.device('cpu')


@pytest.fixture(scope='module')
def tiny_model():
    from hmr_ros.pipeline.runner import _test_asset_model

    return _test_asset_model(DualPathConfig(), CPU)


def test_pad_to_bucket_uses_the_smallest_bucket_holding_the_persons() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 50.0, 90.0], [1.0, 2.0, 3.0, 4.0]])
    padded, index = pad_to_bucket(boxes, torch.tensor([0, 0, 0]), (1, 2, 4))
    assert padded.shape == (4, 4) and index.shape == (4,)
    assert torch.equal(padded[:3], boxes)
    with pytest.raises(ValueError, match='max_persons'):
        pad_to_bucket(boxes, torch.tensor([0, 0, 0]), (1, 2))


def test_unknown_backend_is_refused_with_the_choices(tiny_model) -> None:
    with pytest.raises(ValueError, match='eager'):
        create_backend('tensorrtx', tiny_model, CPU, torch.float32)


@pytest.mark.parametrize('name', ['cuda_graph', 'tensorrt'])
def test_cuda_only_backends_fail_on_the_cpu_with_the_reason(tiny_model, name: str) -> None:
    """No silent fallback: configure fails and says that CUDA is needed."""
    with pytest.raises(BackendUnavailableError, match='CUDA'):
        create_backend(name, tiny_model, CPU, torch.float32)


def test_auto_on_the_cpu_is_eager() -> None:
    assert resolve_backend_name('auto', CPU) == 'eager'
    assert resolve_backend_name('onnxruntime', CPU) == 'onnxruntime'


def test_eager_backend_equals_the_module(tiny_model) -> None:
    backend = create_backend('eager', tiny_model, CPU, torch.float32)
    inputs = example_inputs((240, 320), 2, CPU)
    with torch.inference_mode():
        expected = tiny_model(*inputs)
    output = backend.run(*inputs)
    assert backend.name == 'eager' and not backend.static_shapes
    for name, value in expected._asdict().items():
        assert torch.equal(getattr(output, name), value), name


def _key(**changes: object) -> EngineKey:
    fields: dict[str, object] = dict(
        graph='whole_body',
        model_sha256='ab' * 32,
        adapters='both',
        gpu_name='NVIDIA H200',
        compute_capability='9.0',
        tensorrt_version='10.7.0',
        precision='fp16',
        input_shapes=((1, 3, 512, 384),),
    )
    fields.update(changes)
    return EngineKey(**fields)  # type: ignore[arg-type]


class _FakeTensorRT:
    """Stands in for the TensorRT builder and runtime: engines are bytes naming their key."""

    def __init__(self) -> None:
        self.builds = 0

    def build(self, key: EngineKey) -> bytes:
        self.builds += 1
        return b'ENGINE:' + key.digest.encode()

    @staticmethod
    def load(data: bytes) -> bytes:
        if not data.startswith(b'ENGINE:'):
            raise RuntimeError('not an engine')
        return data


def test_engine_key_changes_with_every_field() -> None:
    base = _key()
    variants = [
        _key(model_sha256='cd' * 32),
        _key(gpu_name='Orin'),
        _key(compute_capability='8.7'),
        _key(tensorrt_version='10.3.0'),
        _key(precision='fp32'),
        _key(input_shapes=((4, 3, 512, 384),)),
        _key(adapters='none'),
        _key(graph='hand_path'),
    ]
    assert len({base.digest, *(key.digest for key in variants)}) == len(variants) + 1


def test_engine_cache_builds_once_then_reuses(tmp_path) -> None:
    fake = _FakeTensorRT()
    cache = EngineCache(tmp_path, fake.build, fake.load)
    key = _key()
    first = cache.get(key)
    second = EngineCache(tmp_path, fake.build, fake.load).get(key)
    assert first == second and fake.builds == 1
    record = json.loads(cache.paths(key)[1].read_text())
    assert record['key']['gpu_name'] == 'NVIDIA H200' and record['build_s'] >= 0
    cache.get(key, rebuild=True)
    assert fake.builds == 2


@pytest.mark.parametrize('damage', ['truncate', 'foreign_record', 'bad_json', 'undeserialisable'])
def test_damaged_or_mismatched_cache_entries_are_rebuilt(tmp_path, damage: str) -> None:
    fake = _FakeTensorRT()
    cache = EngineCache(tmp_path, fake.build, fake.load)
    key = _key()
    cache.get(key)
    engine_path, record_path = cache.paths(key)
    if damage == 'truncate':
        engine_path.write_bytes(engine_path.read_bytes()[:5])
    elif damage == 'foreign_record':
        record = json.loads(record_path.read_text())
        record['key']['tensorrt_version'] = '8.6.1'
        record_path.write_text(json.dumps(record))
    elif damage == 'bad_json':
        record_path.write_text('{not json')
    else:
        # Same bytes recorded and stored, but not an engine this runtime can load.
        data = b'GARBAGE'
        engine_path.write_bytes(data)
        record = json.loads(record_path.read_text())
        import hashlib

        record['engine_sha256'] = hashlib.sha256(data).hexdigest()
        record_path.write_text(json.dumps(record))
    engine = cache.get(key)
    assert fake.builds == 2
    assert engine == b'ENGINE:' + key.digest.encode()
    assert cache.get(key) == engine and fake.builds == 2  # the rebuilt entry is valid again


def test_backend_options_default_caches_live_under_the_user_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    options = BackendOptions()
    assert options.engine_dir == tmp_path / 'hmr_ros' / 'engines'
    assert options.inductor_dir == tmp_path / 'hmr_ros' / 'inductor'
    assert BackendOptions(engine_cache_dir='/x').engine_dir.as_posix() == '/x'


def test_pipeline_reports_its_backend_and_refuses_an_unavailable_one() -> None:
    from hmr_ros.pipeline.protocol import ModelOptions, PipelineOptions
    from hmr_ros.pipeline.runner import PipelineConfigurationError, build_pipeline

    options = PipelineOptions(model=ModelOptions(use_test_assets=True, device='cpu'))
    pipeline = build_pipeline(options)
    assert pipeline.describe().backend == 'eager'  # auto on the CPU
    pipeline.close()
    refused = PipelineOptions(
        model=ModelOptions(use_test_assets=True, device='cpu', backend='cuda_graph')
    )
    with pytest.raises(PipelineConfigurationError, match=r"model\.backend 'cuda_graph'.*CUDA"):
        build_pipeline(refused)
    with pytest.raises(ValueError, match='backend'):
        ModelOptions(backend='torchscript')


def test_engine_dual_path_with_padding_equals_eager(tiny_model) -> None:
    """The engine substitution and bucket padding, with the PyTorch networks as the engines:
    3 persons run in the 4-person bucket. The reference is the eager model on the same padded
    batch (with random weights the hand-root registration is ill-conditioned, reprojection RMS
    ~1e7 px, so comparing across batch sizes would test float rounding, not the engines); the
    real rows keep the real boxes."""
    from hmr_ros.pipeline.backends.engines import engine_dual_path
    from hmr_ros.pipeline.backends.onnx_export import hand_path_spec, whole_body_spec

    def runner(spec):
        return lambda inputs: spec.module(*inputs)

    whole_body = {4: runner(whole_body_spec(tiny_model, 4, torch.float32, CPU))}
    hands = {8: runner(hand_path_spec(tiny_model, 4, torch.float32, CPU))}
    engine_model = engine_dual_path(tiny_model, whole_body, hands)
    assert engine_model.whole_body is not tiny_model.whole_body  # the original is untouched
    inputs = example_inputs((240, 320), 3, CPU)
    inputs[1][:, 0] += torch.tensor([0.0, 15.0, 30.0])
    padded_boxes, padded_index = pad_to_bucket(inputs[1], inputs[2], (4,))
    with torch.inference_mode():
        expected = tiny_model(inputs[0], padded_boxes, padded_index, inputs[3])
        output = engine_model(inputs[0], padded_boxes, padded_index, inputs[3])
    assert output.vertices.shape[0] == 4
    assert torch.equal(output.person_boxes_px[:3], inputs[1])
    for name, value in expected._asdict().items():
        got = getattr(output, name)
        if value.is_floating_point():
            relative = float((got - value).abs().max() / value.abs().max().clamp_min(1e-6))
            assert relative <= 1e-5, (name, relative)
        else:
            assert torch.equal(got, value), name
    with pytest.raises(ValueError, match='bucket'):
        with torch.inference_mode():
            engine_model(*inputs)  # 3 rows: no engine for batch 3


@pytest.mark.slow
def test_onnxruntime_backend_equals_eager(tiny_model, tmp_path) -> None:
    pytest.importorskip('onnxruntime')
    options = BackendOptions(max_persons=2, engine_cache_dir=str(tmp_path))
    backend = create_backend('onnxruntime', tiny_model, CPU, torch.float32, options)
    assert backend.name == 'onnxruntime' and backend.static_shapes
    for persons in (1, 2):
        inputs = example_inputs((240, 320), persons, CPU)
        inputs[1][:, 0] += torch.arange(persons) * 20.0
        with torch.inference_mode():
            expected = tiny_model(*inputs)
        output = backend.run(*inputs)
        for name, value in expected._asdict().items():
            if value.is_floating_point():
                scale = value.abs().max().clamp_min(1e-6)
                relative = float((getattr(output, name) - value).abs().max() / scale)
                assert relative <= 1e-4, (persons, name, relative)
    # A second backend finds the exported graphs in the cache instead of exporting again.
    graphs = sorted((tmp_path / 'onnx').glob('*.onnx'))
    assert len(graphs) == 4
    stamps = [path.stat().st_mtime_ns for path in graphs]
    create_backend('onnxruntime', tiny_model, CPU, torch.float32, options)
    assert [path.stat().st_mtime_ns for path in graphs] == stamps
