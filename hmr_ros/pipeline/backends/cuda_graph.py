"""The ``cuda_graph`` backend: one CUDA graph per person bucket, replayed per frame.

At preparation (configure time, at the camera's image size where known, else at
CONFIGURE_IMAGE_HW; again on the first frame of a new size, logged) every bucket's forward is
warmed up on a side stream and captured into a :class:`torch.cuda.CUDAGraph` whose inputs are
static device buffers; all buckets share one memory pool. Per frame the boxes are padded to
their bucket, copied into that bucket's buffers and the graph is replayed: one launch, no
Python between the kernels, no host synchronisation.

The returned tensors are the graph's static outputs: they hold this frame's values until the next
replay, so the caller copies them out (``PipelineRunner`` does, in one device-to-host copy)
before running the next frame.

Capture needs a forward that never synchronises with the host (the sync-free dual path); a
forward that does fails capture, and that failure fails configure with CUDA's reason.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import torch
from torch import Tensor

from hmr_ros.models.dual_path import DualPathOutput
from hmr_ros.pipeline.backends.base import (
    BackendUnavailableError,
    InferenceBackend,
    autocast_for,
    pad_to_bucket,
)

logger = logging.getLogger(__name__)

CONFIGURE_IMAGE_HW = (480, 640)
"""Image size captured at configure when the camera's is not known yet: capture problems then
show at configure; the first frame of another size captures again (logged)."""

WARMUP_RUNS = 3
"""Eager runs on a side stream before capture (cuBLAS handles, autotuning, allocator)."""


@dataclasses.dataclass
class _CapturedGraph:
    """One bucket's graph and the static buffers it reads and writes."""

    graph: torch.cuda.CUDAGraph
    images: Tensor
    boxes_xyxy: Tensor
    batch_index: Tensor
    intrinsics: Tensor
    output: DualPathOutput


def example_inputs(
    image_hw: tuple[int, int], persons: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Plausible inputs for warm-up, capture and export: a mid-grey image, centred boxes.

    Returns:
        images (1, 3, H, W), boxes (P, 4), batch_index (P,), intrinsics (1, 3, 3) with a focal
        length of the image's longer side and the principal point at the centre.
    """
    height, width = image_hw
    images = torch.full((1, 3, height, width), 0.5, device=device)
    box = torch.tensor([width * 0.25, height * 0.1, width * 0.75, height * 0.9], device=device)
    boxes = box.expand(persons, 4).clone()
    batch_index = torch.zeros(persons, dtype=torch.long, device=device)
    focal = float(max(height, width))
    intrinsics = torch.tensor(
        [[[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]]], device=device
    )
    return images, boxes, batch_index, intrinsics


class CudaGraphBackend(InferenceBackend):
    """Captured CUDA graphs of the whole dual path, one per person bucket."""

    name = 'cuda_graph'
    static_shapes = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._graphs: dict[int, _CapturedGraph] = {}
        self._image_hw: tuple[int, int] | None = None
        self._pool: Any = None

    @staticmethod
    def available(device: torch.device) -> str | None:
        """Why the backend cannot run on ``device`` (None: it can)."""
        if device.type != 'cuda':
            return f'cuda_graph needs a CUDA device; model.device is {device}'
        if not torch.cuda.is_available():
            return 'cuda_graph needs CUDA; torch sees no CUDA device'
        return None

    def prepare(self, image_hw: tuple[int, int] | None = None) -> None:
        """See InferenceBackend.prepare."""
        if image_hw is None:
            image_hw = self._image_hw or CONFIGURE_IMAGE_HW
        if image_hw == self._image_hw:
            return
        started = time.perf_counter()
        logger.info('cuda_graph: capturing buckets %s for %dx%d images', self.buckets, *image_hw)
        self._graphs.clear()
        self._pool = torch.cuda.graph_pool_handle()
        for bucket in self.buckets:
            self._graphs[bucket] = self._capture(image_hw, bucket)
        self._image_hw = image_hw
        logger.info('cuda_graph: captured in %.1f s', time.perf_counter() - started)

    def _forward(self, graph_inputs: tuple[Tensor, Tensor, Tensor, Tensor]) -> DualPathOutput:
        # cache_enabled=False: autocast's weight-cast cache must not outlive a capture.
        autocast = (
            torch.autocast('cuda', dtype=self.precision, cache_enabled=False)
            if self.precision != torch.float32
            else autocast_for(self.device, self.precision)
        )
        with torch.inference_mode(), autocast:
            return self.model(*graph_inputs)

    def _capture(self, image_hw: tuple[int, int], bucket: int) -> _CapturedGraph:
        inputs = example_inputs(image_hw, bucket, self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self._forward(inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self._pool):
                output = self._forward(inputs)
        except RuntimeError as error:
            raise BackendUnavailableError(
                f'cuda_graph: capturing the dual path for {bucket} person(s) failed: {error}. '
                "The forward must not synchronise with the host; choose model.backend 'eager' "
                "or 'compile'"
            ) from error
        return _CapturedGraph(graph, *inputs, output=output)

    def run(
        self, images: Tensor, boxes_xyxy: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> DualPathOutput:
        """See InferenceBackend.run."""
        image_hw = (int(images.shape[-2]), int(images.shape[-1]))
        if image_hw != self._image_hw:
            self.prepare(image_hw)
        if images.shape[0] != 1:
            raise ValueError(f'cuda_graph runs one image per frame, got {images.shape[0]}')
        boxes, index = pad_to_bucket(boxes_xyxy, batch_index, self.buckets)
        captured = self._graphs[boxes.shape[0]]
        captured.images.copy_(images, non_blocking=True)
        captured.boxes_xyxy.copy_(boxes, non_blocking=True)
        captured.batch_index.copy_(index, non_blocking=True)
        captured.intrinsics.copy_(intrinsics, non_blocking=True)
        captured.graph.replay()
        return captured.output

    def describe(self) -> str:
        """See InferenceBackend.describe."""
        return f'cuda_graph (buckets {", ".join(map(str, self.buckets))})'

    def close(self) -> None:
        """See InferenceBackend.close."""
        self._graphs.clear()
        self._image_hw = None
