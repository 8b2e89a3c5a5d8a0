"""The ``onnxruntime`` backend: the two networks in ONNX Runtime, the rest in PyTorch.

Graphs come from :mod:`hmr_ros.pipeline.backends.onnx_export`, one per (network, person bucket),
exported once into ``model.engine_cache_dir/onnx`` (keyed by the weights, adapters, shapes,
dtype and the torch and hmr_ros versions). The CPU execution provider runs on the CPU; on CUDA
the CUDA execution provider runs on PyTorch's current stream (``user_compute_stream``) with
inputs and outputs bound to device memory, so nothing is copied through the host and no
synchronisation is needed between PyTorch and ONNX Runtime kernels. fp16 on CUDA exports half
graphs; bf16 is not offered (ONNX Runtime lacks bf16 kernels for most of these operators).
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import torch
from torch import Tensor

from hmr_ros.pipeline.backends.base import BackendUnavailableError
from hmr_ros.pipeline.backends.engines import EngineBackend, GraphRunner, export_model_copy
from hmr_ros.pipeline.backends.onnx_export import (
    GraphSpec,
    cached_export,
    graph_key,
    module_digest,
)

logger = logging.getLogger(__name__)

_ORT_TYPES: dict[str, tuple[torch.dtype, type]] = {
    'tensor(float)': (torch.float32, np.float32),
    'tensor(float16)': (torch.float16, np.float16),
    'tensor(double)': (torch.float64, np.float64),
    'tensor(int64)': (torch.int64, np.int64),
    'tensor(int32)': (torch.int32, np.int32),
    'tensor(bool)': (torch.bool, np.bool_),
}


class OrtRunner:
    """One ONNX Runtime session of a static-shape graph, fed and read as torch tensors."""

    def __init__(self, path: str, device: torch.device, input_dtype: torch.dtype) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._device = device
        self._input_dtype = input_dtype
        if device.type == 'cuda':
            index = device.index or 0
            stream = torch.cuda.current_stream(device).cuda_stream
            providers: list[object] = [
                ('CUDAExecutionProvider', {'device_id': index, 'user_compute_stream': str(stream)})
            ]
        else:
            providers = ['CPUExecutionProvider']
        self.session = ort.InferenceSession(path, options, providers=providers)
        self._input_names = [node.name for node in self.session.get_inputs()]
        self._outputs = [
            (node.name, tuple(node.shape), _ORT_TYPES[node.type][0])
            for node in self.session.get_outputs()
        ]

    def __call__(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Run the graph on torch tensors (inputs in graph order)."""
        if len(inputs) != len(self._input_names):
            raise ValueError(f'graph takes {self._input_names}, got {len(inputs)} inputs')
        if self._device.type != 'cuda':
            feeds = {
                name: self._cast(value).numpy()
                for name, value in zip(self._input_names, inputs, strict=True)
            }
            return tuple(torch.from_numpy(out) for out in self.session.run(None, feeds))
        return self._run_bound(inputs)

    def _cast(self, value: Tensor) -> Tensor:
        """Floating inputs in the graph's dtype; integer inputs (image indices) as they are."""
        value = value.detach()
        if value.is_floating_point():
            value = value.to(self._input_dtype)
        return value.contiguous()

    def _run_bound(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """CUDA: inputs and outputs stay in device memory (IOBinding on torch's tensors)."""
        index = self._device.index or 0
        binding = self.session.io_binding()
        keep = []
        for name, value in zip(self._input_names, inputs, strict=True):
            tensor = self._cast(value)
            keep.append(tensor)
            binding.bind_input(
                name,
                'cuda',
                index,
                _numpy_type(tensor.dtype),
                tuple(tensor.shape),
                tensor.data_ptr(),
            )
        outputs = []
        for name, shape, dtype in self._outputs:
            tensor = torch.empty(shape, dtype=dtype, device=self._device)
            outputs.append(tensor)
            binding.bind_output(
                name, 'cuda', index, _numpy_type(dtype), tuple(shape), tensor.data_ptr()
            )
        self.session.run_with_iobinding(binding)
        return tuple(outputs)


def _numpy_type(dtype: torch.dtype) -> type:
    for torch_type, numpy_type in _ORT_TYPES.values():
        if torch_type == dtype:
            return numpy_type
    raise ValueError(f'no ONNX Runtime binding for {dtype}')


class OnnxRuntimeBackend(EngineBackend):
    """The networks as ONNX Runtime sessions, one per (network, person bucket)."""

    name = 'onnxruntime'

    @staticmethod
    def available(device: torch.device) -> str | None:
        """Why ONNX Runtime cannot run on ``device`` (None: it can)."""
        if importlib.util.find_spec('onnxruntime') is None:
            return 'onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)'
        if importlib.util.find_spec('onnxscript') is None:
            return 'the ONNX export needs onnxscript (pip install onnxscript)'
        import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]

        if device.type == 'cuda' and 'CUDAExecutionProvider' not in ort.get_available_providers():
            return (
                'onnxruntime has no CUDAExecutionProvider here (providers: '
                f'{", ".join(ort.get_available_providers())}); install onnxruntime-gpu or set '
                'model.device to cpu'
            )
        return None

    @property
    def graph_dtype(self) -> torch.dtype:
        """Input dtype of the exported graphs."""
        if self.precision == torch.bfloat16:
            raise BackendUnavailableError(
                "onnxruntime runs fp32 or fp16; set model.precision to 'fp16' or 'fp32'"
            )
        return self.precision

    def build_runner(self, spec: GraphSpec) -> GraphRunner:
        """See EngineBackend.build_runner."""
        digest = self.options.model_digest or self._digest()
        key = graph_key(spec, self.model, digest)
        spec = spec._replace(module=export_model_copy(spec.module, self.graph_dtype))
        folder = self.options.engine_dir / 'onnx'
        path = cached_export(spec, key, folder, rebuild=self.options.rebuild_engines)
        try:
            return OrtRunner(str(path), self.device, self.graph_dtype)
        except Exception as error:  # a damaged cached graph: export it again, once
            logger.warning('onnxruntime: cached %s unusable (%s); exporting again', path, error)
            path = cached_export(spec, key, folder, rebuild=True)
            return OrtRunner(str(path), self.device, self.graph_dtype)

    def _digest(self) -> str:
        if not hasattr(self, '_model_digest'):
            self._model_digest = module_digest(self.model)
        return self._model_digest
