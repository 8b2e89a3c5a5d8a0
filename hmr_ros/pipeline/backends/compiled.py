"""The ``compile`` backend: ``torch.compile`` with the inductor compiler, static person buckets.

The dual path is compiled once with ``dynamic=False``; boxes are padded to person buckets, so
there is one specialisation per (bucket, image size), compiled on first use (or at preparation
when the image size is known). Inductor's cache lives in ``model.compile_cache_dir`` (set as
``TORCHINDUCTOR_CACHE_DIR`` before the first compilation), so a restart reuses earlier kernels.
Graph breaks are allowed (``fullgraph=False``): the compiled program is correct either way, and
the sync-free forward has none.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable

import torch
from torch import Tensor

from hmr_ros.models.dual_path import DualPathOutput
from hmr_ros.pipeline.backends.base import (
    InferenceBackend,
    autocast_for,
    pad_to_bucket,
)
from hmr_ros.pipeline.backends.cuda_graph import example_inputs

logger = logging.getLogger(__name__)


class CompileBackend(InferenceBackend):
    """``torch.compile(model, backend='inductor', dynamic=False)`` on padded buckets."""

    name = 'compile'
    static_shapes = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        cache = self.options.inductor_dir
        cache.mkdir(parents=True, exist_ok=True)
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = str(cache)
        logger.info('compile: inductor cache in %s', cache)
        self._compiled: Callable[..., DualPathOutput] = torch.compile(
            self.model, backend='inductor', dynamic=False, fullgraph=False
        )
        self._prepared: set[tuple[int, int]] = set()

    @staticmethod
    def available(device: torch.device) -> str | None:
        """Why inductor cannot compile for ``device`` (None: it can)."""
        if device.type == 'cuda':
            if importlib.util.find_spec('triton') is None:
                return 'compile on CUDA needs triton (pip install triton, or the torch wheel)'
            return None
        if not any(shutil.which(name) for name in ('c++', 'g++', 'clang++')):
            return 'compile on the CPU needs a C++ compiler (g++ or clang++) on PATH'
        return None

    def prepare(self, image_hw: tuple[int, int] | None = None) -> None:
        """See InferenceBackend.prepare."""
        if image_hw is None or image_hw in self._prepared:
            return
        started = time.perf_counter()
        for bucket in self.buckets:
            self._call(*example_inputs(image_hw, bucket, self.device))
        self._prepared.add(image_hw)
        logger.info(
            'compile: buckets %s for %dx%d compiled in %.1f s',
            self.buckets,
            *image_hw,
            time.perf_counter() - started,
        )

    def _call(
        self, images: Tensor, boxes: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> DualPathOutput:
        with torch.inference_mode(), autocast_for(self.device, self.precision):
            return self._compiled(images, boxes, batch_index, intrinsics)

    def run(
        self, images: Tensor, boxes_xyxy: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> DualPathOutput:
        """See InferenceBackend.run."""
        boxes, index = pad_to_bucket(boxes_xyxy, batch_index, self.buckets)
        return self._call(images, boxes, index, intrinsics)
