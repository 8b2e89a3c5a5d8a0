"""The dual path with its two networks run by an engine (ONNX Runtime, TensorRT).

:func:`engine_dual_path` returns a shallow copy of a :class:`DualPathModel` whose whole-body
network and hand path are replaced by proxies that call one engine per person bucket; the
orchestration between them (crops, body adapter, fusion, SMPL-X layer, registration) is the
model's own ``forward``, in PyTorch on the same device, so engine backends compute exactly what
the eager model computes around the networks. The original model is not modified.
"""

from __future__ import annotations

import abc
import copy
import logging
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from hmr_ros.models.adapters.hand_adapter import GuidedHandExpert
from hmr_ros.models.dual_path import DualPathModel, DualPathOutput
from hmr_ros.models.hand_expert import HandExpertConfig, HandExpertOutput
from hmr_ros.models.whole_body import (
    WholeBodyConfig,
    WholeBodyModel,
    WholeBodyOutput,
    WholeBodyStages,
)
from hmr_ros.pipeline.backends.base import (
    InferenceBackend,
    autocast_for,
    pad_to_bucket,
)
from hmr_ros.pipeline.backends.onnx_export import (
    GraphSpec,
    hand_path_guided,
    hand_path_spec,
    smplerx_whole_body,
    unflatten_stages,
    whole_body_spec,
)

logger = logging.getLogger(__name__)

GraphRunner = Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]
"""Runs one static-shape graph: inputs in the graph's order, outputs in its order."""


def _runner_for(runners: dict[int, GraphRunner], batch: int, graph: str) -> GraphRunner:
    if batch not in runners:
        raise ValueError(
            f'no {graph} engine for batch {batch}; engines exist for {sorted(runners)} '
            '(boxes must be padded to a person bucket)'
        )
    return runners[batch]


class WholeBodyEngine(nn.Module):
    """Stands in for ``DualPathModel.whole_body``: ``run_stages`` by engine, the rest eager."""

    def __init__(self, whole_body: WholeBodyModel, runners: dict[int, GraphRunner]) -> None:
        super().__init__()
        self.network = whole_body
        self.runners = runners

    @property
    def config(self) -> WholeBodyConfig:
        """The wrapped network's configuration."""
        return self.network.config

    def run_stages(self, crops: Tensor) -> WholeBodyStages:
        """WholeBodyModel.run_stages by engine."""
        runner = _runner_for(self.runners, crops.shape[0], 'whole_body')
        return unflatten_stages(runner((crops,)))

    def assemble(self, stages: WholeBodyStages, body_pose_6d: Tensor) -> WholeBodyOutput:
        """WholeBodyModel.assemble, eager."""
        return self.network.assemble(stages, body_pose_6d)


class HandExpertEngine(nn.Module):
    """Stands in for ``hand_path.hand_expert`` (the unguided hand expert) by engine."""

    def __init__(self, config: HandExpertConfig, runners: dict[int, GraphRunner]) -> None:
        super().__init__()
        self.config = config
        self.runners = runners

    def forward(self, crops: Tensor) -> HandExpertOutput:
        """Run the wrapped computation (see the class docstring)."""
        runner = _runner_for(self.runners, crops.shape[0], 'hand_path')
        return HandExpertOutput(*runner((crops,)))


class HandPathEngine(nn.Module):
    """Stands in for ``DualPathModel.hand_path`` (the guided hand path) by engine."""

    def __init__(
        self,
        hand_path: GuidedHandExpert,
        guided_runners: dict[int, GraphRunner],
        plain_runners: dict[int, GraphRunner],
    ) -> None:
        super().__init__()
        self.hand_adapter = hand_path.hand_adapter
        self.hand_expert = HandExpertEngine(hand_path.hand_expert.config, plain_runners)
        self.runners = guided_runners

    def forward(
        self, crops: Tensor, arm_pose_6d: Tensor, has_body_pose: Tensor | None = None
    ) -> HandExpertOutput:
        """Run the wrapped computation (see the class docstring)."""
        if has_body_pose is not None:
            raise ValueError('the hand path engine is exported without has_body_pose')
        runner = _runner_for(self.runners, crops.shape[0], 'hand_path (guided)')
        return HandExpertOutput(*runner((crops, arm_pose_6d)))


def engine_dual_path(
    model: DualPathModel,
    whole_body_runners: dict[int, GraphRunner],
    hand_runners: dict[int, GraphRunner],
) -> DualPathModel:
    """A copy of ``model`` whose networks run by engine (keys: batch sizes of each graph).

    ``hand_runners`` serve the guided hand path when the model runs the hand adapter, else the
    plain hand expert (see onnx_export.hand_path_guided).
    """
    clone = copy.copy(model)
    clone._modules = dict(model._modules)  # noqa: SLF001 - the copy must not share submodules
    guided = hand_path_guided(model)
    clone._modules['whole_body'] = WholeBodyEngine(smplerx_whole_body(model), whole_body_runners)
    clone._modules['hand_path'] = HandPathEngine(
        model.hand_path, hand_runners if guided else {}, {} if guided else hand_runners
    )
    return clone


class EngineBackend(InferenceBackend):
    """Base of the engine backends: one whole-body and one hand engine per person bucket."""

    static_shapes = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._engine_model: DualPathModel | None = None

    @property
    def graph_dtype(self) -> torch.dtype:
        """Input dtype of the exported graphs."""
        return torch.float32

    @abc.abstractmethod
    def build_runner(self, spec: GraphSpec) -> GraphRunner:
        """Export/build/load the engine of one graph and return its runner."""

    def prepare(self, image_hw: tuple[int, int] | None = None) -> None:
        """See InferenceBackend.prepare."""
        if self._engine_model is not None:
            return
        started = time.perf_counter()
        whole_body: dict[int, GraphRunner] = {}
        hands: dict[int, GraphRunner] = {}
        for bucket in self.buckets:
            whole_body[bucket] = self.build_runner(
                whole_body_spec(self.model, bucket, self.graph_dtype, self.device)
            )
            hands[2 * bucket] = self.build_runner(
                hand_path_spec(self.model, bucket, self.graph_dtype, self.device)
            )
        self._engine_model = engine_dual_path(self.model, whole_body, hands)
        logger.info(
            '%s: engines for buckets %s ready in %.1f s',
            self.name,
            self.buckets,
            time.perf_counter() - started,
        )

    def run(
        self, images: Tensor, boxes_xyxy: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> DualPathOutput:
        """See InferenceBackend.run."""
        if self._engine_model is None:
            self.prepare()
        assert self._engine_model is not None
        boxes, index = pad_to_bucket(boxes_xyxy, batch_index, self.buckets)
        with torch.inference_mode(), autocast_for(self.device, self.precision):
            return self._engine_model(images, boxes, index, intrinsics)

    def describe(self) -> str:
        """See InferenceBackend.describe."""
        return f'{self.name} (buckets {", ".join(map(str, self.buckets))})'

    def close(self) -> None:
        """See InferenceBackend.close."""
        self._engine_model = None


def export_model_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``module`` itself for fp32, else a copy cast to ``dtype`` (export of half graphs)."""
    if dtype == torch.float32:
        return module
    return copy.deepcopy(module).to(dtype)
