"""The ``tensorrt`` backend: TensorRT engines of the two networks, the rest in PyTorch.

Engines are built from the project's ONNX export (onnx_export.py, fp32 graphs) with the TensorRT
Python API, fp16 enabled for fp16/bf16 precision (TensorRT picks fp16 kernels where they are
faster and keeps fp32 where needed), one per (network, person bucket). ``torch2trt`` is accepted
as the converter where it is importable and the ONNX parser fails on a graph.

Engines are cached in ``model.engine_cache_dir`` (default ``~/.cache/hmr_ros/engines``), one
``.engine`` file and one ``.json`` record per key. The key holds everything an engine depends
on: the weights' SHA-256 (the checkpoint files' hashes, or the state dict's), graph, adapters,
GPU name and compute capability, TensorRT version, precision and input shapes. An entry is used
only when its record matches the key and the engine file's own SHA-256 matches the record; any
mismatch, a damaged file or a failed deserialisation rebuilds the engine (logged), it never
stops the node. ``model.rebuild_engines`` forces a rebuild. A build logs progress and duration.

TensorRT is not installable on the development machines nor on the lent GPU machine, so the
engine build and execution here have run only where ``tensorrt`` is importable (tests skip
elsewhere); the cache logic is tested on the CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hmr_ros.pipeline.backends.engines import EngineBackend, GraphRunner
from hmr_ros.pipeline.backends.onnx_export import (
    GraphSpec,
    cached_export,
    graph_key,
    module_digest,
)

logger = logging.getLogger(__name__)

WORKSPACE_BYTES = 4 << 30
"""Builder workspace limit (4 GiB: enough for ViT-H tactics, fits a 16 GB Orin)."""


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Everything a TensorRT engine depends on; its digest names the cache entry."""

    graph: str
    model_sha256: str
    adapters: str
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    precision: str
    input_shapes: tuple[tuple[int, ...], ...]

    @property
    def digest(self) -> str:
        """First 24 hex digits of the SHA-256 of every field."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def record(self) -> dict[str, Any]:
        """The key as JSON-ready fields (lists for the shapes)."""
        fields = dataclasses.asdict(self)
        fields['input_shapes'] = [list(shape) for shape in self.input_shapes]
        return fields


class EngineCache:
    """Engine files under one folder, validated against their key before use.

    Args:
        folder: the cache folder (created when missing).
        build: serialises a new engine for a key (the TensorRT builder; tests pass another).
        load: deserialises engine bytes, raising on a damaged or incompatible engine.
    """

    def __init__(
        self,
        folder: Path,
        build: Callable[[EngineKey], bytes],
        load: Callable[[bytes], Any],
    ) -> None:
        self.folder = folder
        self._build = build
        self._load = load

    def paths(self, key: EngineKey) -> tuple[Path, Path]:
        """(engine file, JSON record) of a key."""
        stem = f'{key.graph}-{key.digest}'
        return self.folder / f'{stem}.engine', self.folder / f'{stem}.json'

    def get(self, key: EngineKey, *, rebuild: bool = False) -> Any:
        """The deserialised engine of ``key``: the cached one if valid, else a fresh build."""
        if not rebuild:
            cached = self._load_valid(key)
            if cached is not None:
                return cached
        return self._rebuild(key)

    def _load_valid(self, key: EngineKey) -> Any:
        engine_path, record_path = self.paths(key)
        if not engine_path.is_file() and not record_path.is_file():
            return None
        problem = self._check(key, engine_path, record_path)
        if problem is None:
            try:
                return self._load(engine_path.read_bytes())
            except Exception as error:  # deserialisation of a foreign/damaged engine
                problem = f'it does not deserialise ({type(error).__name__}: {error})'
        logger.warning(
            'tensorrt: cached engine %s is unusable: %s; rebuilding', engine_path, problem
        )
        return None

    @staticmethod
    def _check(key: EngineKey, engine_path: Path, record_path: Path) -> str | None:
        """Why a cache entry cannot be used (None: it can)."""
        if not engine_path.is_file() or not record_path.is_file():
            return 'the engine or its record is missing'
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError) as error:
            return f'its record is not JSON ({error})'
        if not isinstance(record, dict) or record.get('key') != key.record():
            return 'its record was made for another model, GPU, TensorRT version or shape'
        actual = hashlib.sha256(engine_path.read_bytes()).hexdigest()
        if record.get('engine_sha256') != actual:
            return 'the engine file does not match its recorded SHA-256 (truncated or altered)'
        return None

    def _rebuild(self, key: EngineKey) -> Any:
        self.folder.mkdir(parents=True, exist_ok=True)
        engine_path, record_path = self.paths(key)
        logger.info(
            'tensorrt: building %s engine for %s (%s)', key.graph, key.input_shapes, key.precision
        )
        started = time.perf_counter()
        data = self._build(key)
        duration_s = time.perf_counter() - started
        logger.info(
            'tensorrt: %s engine built in %.1f s (%d MB)', key.graph, duration_s, len(data) >> 20
        )
        record = {
            'key': key.record(),
            'engine_sha256': hashlib.sha256(data).hexdigest(),
            'build_s': round(duration_s, 2),
        }
        _atomic_write(engine_path, data)
        _atomic_write(record_path, (json.dumps(record, indent=1) + '\n').encode())
        return self._load(data)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename: readers never see a partial file."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix='.tmp')
    with os.fdopen(handle, 'wb') as file:
        file.write(data)
    Path(tmp).replace(path)


def gpu_identity(device: torch.device) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of a CUDA device."""
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f'{major}.{minor}'


class TrtRunner:
    """Executes one engine on PyTorch's current stream with torch tensors as I/O."""

    def __init__(self, engine: Any, device: torch.device) -> None:
        import tensorrt as trt  # type: ignore[import-not-found,unused-ignore]

        self._engine = engine
        self._context = engine.create_execution_context()
        self._device = device
        self._inputs: list[str] = []
        self._outputs: list[tuple[str, tuple[int, ...], torch.dtype]] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = _TORCH_DTYPES[str(engine.get_tensor_dtype(name))]
            shape = tuple(engine.get_tensor_shape(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._inputs.append(name)
            else:
                self._outputs.append((name, shape, dtype))
        self._input_dtypes = [
            _TORCH_DTYPES[str(engine.get_tensor_dtype(name))] for name in self._inputs
        ]

    def __call__(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Run the graph on torch tensors (inputs in graph order)."""
        keep = []
        for name, value, dtype in zip(self._inputs, inputs, self._input_dtypes, strict=True):
            tensor = value.detach().to(dtype).contiguous()
            keep.append(tensor)
            self._context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for name, shape, dtype in self._outputs:
            tensor = torch.empty(shape, dtype=dtype, device=self._device)
            outputs.append(tensor)
            self._context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream(self._device).cuda_stream
        if not self._context.execute_async_v3(stream):
            raise RuntimeError('TensorRT execute_async_v3 failed (see the TensorRT log)')
        return tuple(outputs)


_TORCH_DTYPES = {
    'DataType.FLOAT': torch.float32,
    'DataType.HALF': torch.float16,
    'DataType.BF16': torch.bfloat16,
    'DataType.INT64': torch.int64,
    'DataType.INT32': torch.int32,
    'DataType.BOOL': torch.bool,
}


def build_engine_from_onnx(onnx_path: Path, fp16: bool) -> bytes:
    """Serialise a TensorRT engine from an ONNX file (static shapes), fp16 if asked.

    Raises:
        RuntimeError: the parser or the builder failed; the message has TensorRT's errors.
    """
    import tensorrt as trt  # type: ignore[import-not-found,unused-ignore]

    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    # Explicit batch is the only mode from TensorRT 10 on; 8.x (JetPack 6.0) needs the flag.
    flags = 0
    if int(trt.__version__.split('.')[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f'TensorRT cannot parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    monitor = _progress_monitor(trt, onnx_path.stem)
    if monitor is not None:
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT could not build an engine from {onnx_path} (see its log)')
    return bytes(serialized)


def _progress_monitor(trt: Any, name: str) -> Any:
    """A builder progress monitor logging the top-level build phases (TensorRT >= 10)."""
    if not hasattr(trt, 'IProgressMonitor'):
        return None

    class _Progress(trt.IProgressMonitor):  # type: ignore[misc,name-defined,unused-ignore]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                logger.info('tensorrt: %s: %s (%d steps)', name, phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            pass

    return _Progress()


class TensorRTBackend(EngineBackend):
    """TensorRT engines of the networks, one per (network, person bucket), cached on disk."""

    name = 'tensorrt'

    @staticmethod
    def available(device: torch.device) -> str | None:
        """Why TensorRT cannot run on ``device`` (None: it can)."""
        if device.type != 'cuda':
            return f'tensorrt needs a CUDA device; model.device is {device}'
        if importlib.util.find_spec('tensorrt') is None:
            return (
                'tensorrt is not importable (install the TensorRT Python package; on Jetson it '
                "comes with JetPack as python3-libnvinfer); choose 'cuda_graph' or 'compile'"
            )
        return None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._cache = EngineCache(self.options.engine_dir / 'tensorrt', self._build, self._load)
        self._pending: dict[str, GraphSpec] = {}

    @property
    def precision_name(self) -> str:
        """The engine precision: fp16 for fp16 and bf16 requests, else fp32."""
        return 'fp16' if self.precision in (torch.float16, torch.bfloat16) else 'fp32'

    def engine_key(self, spec: GraphSpec) -> EngineKey:
        """The cache key of one graph's engine on this backend's GPU."""
        import tensorrt as trt  # type: ignore[import-not-found,unused-ignore]

        gpu, capability = gpu_identity(self.device)
        return EngineKey(
            graph=spec.name,
            model_sha256=self.options.model_digest or module_digest(self.model),
            adapters=self.model.adapters,
            gpu_name=gpu,
            compute_capability=capability,
            tensorrt_version=trt.__version__,
            precision=self.precision_name,
            input_shapes=tuple(tuple(t.shape) for t in spec.inputs),
        )

    def build_runner(self, spec: GraphSpec) -> GraphRunner:
        """See EngineBackend.build_runner."""
        key = self.engine_key(spec)
        self._pending[key.digest] = spec
        engine = self._cache.get(key, rebuild=self.options.rebuild_engines)
        return TrtRunner(engine, self.device)

    def _build(self, key: EngineKey) -> bytes:
        spec = self._pending[key.digest]
        onnx_key = graph_key(spec, self.model, key.model_sha256)
        onnx_path = cached_export(spec, onnx_key, self.options.engine_dir / 'onnx')
        try:
            return build_engine_from_onnx(onnx_path, fp16=key.precision == 'fp16')
        except RuntimeError as error:
            if importlib.util.find_spec('torch2trt') is None:
                raise
            logger.warning('tensorrt: ONNX parser failed (%s); converting with torch2trt', error)
            return _torch2trt_engine(spec, fp16=key.precision == 'fp16')

    def _load(self, data: bytes) -> Any:
        import tensorrt as trt  # type: ignore[import-not-found,unused-ignore]

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise RuntimeError('TensorRT could not deserialise the engine')
        return engine


def _torch2trt_engine(spec: GraphSpec, fp16: bool) -> bytes:
    """torch2trt's conversion of a graph's module, serialised (the converter of the design)."""
    from torch2trt import torch2trt  # type: ignore[import-not-found,unused-ignore]

    converted = torch2trt(spec.module, list(spec.inputs), fp16_mode=fp16)
    return bytes(converted.engine.serialize())
