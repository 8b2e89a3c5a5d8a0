"""ONNX graphs of the dual path's networks, with static shapes per person bucket.

Three graphs (``hmr-ros export-onnx`` writes them; the ``onnxruntime`` and ``tensorrt`` backends
build on the first two):

- ``whole_body``: the whole-body network, person crops (B, 3, 512, 384) in [0, 1] to every
  stage result (``WholeBodyModel.run_stages``; the final conversions stay in PyTorch).
- ``hand_path``: the hand path, 2B ImageNet-normalised hand crops (and, with the hand adapter,
  the arm guidance) to the hand expert's outputs (``GuidedHandExpert``/``HandExpert``).
- ``dual_path``: the whole ``DualPathModel.forward`` for one image size, where it exports (it
  needs the static, sync-free forward).

The networks hold almost all of the compute (about 790 of 815 GFLOP per person at full size);
crops, fusion and the SMPL-X layer stay in PyTorch on the device for the engine backends, where
their gathers and small solves are cheap and exact. Graphs use the dynamo exporter
(``torch.onnx.export(dynamo=True)``, onnxscript), the one PyTorch maintains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

import hmr_ros
from hmr_ros.models.dual_path import DualPathModel, DualPathOutput
from hmr_ros.models.hand_expert import HandExpertOutput
from hmr_ros.models.whole_body import HandStage, WholeBodyModel, WholeBodyStages

logger = logging.getLogger(__name__)

BODY_CROP_HW = (512, 384)
"""Whole-body network input size (SMPLer-X input_img_shape)."""

WHOLE_BODY_OUTPUTS: tuple[str, ...] = (
    *(name for name in WholeBodyStages._fields if name != 'hands'),
    *(f'hand_{name}' for name in HandStage._fields),
)
"""Output names of the ``whole_body`` graph: WholeBodyStages fields, hand fields prefixed."""

HAND_OUTPUTS: tuple[str, ...] = HandExpertOutput._fields
"""Output names of the ``hand_path`` graph."""

DUAL_PATH_INPUTS = ('images', 'boxes_xyxy', 'batch_index', 'intrinsics')
DUAL_PATH_OUTPUTS: tuple[str, ...] = DualPathOutput._fields


class ExportError(RuntimeError):
    """A graph could not be exported; the message names the graph and the exporter's reason."""


class WholeBodyNetwork(nn.Module):
    """``WholeBodyModel.run_stages`` with a flat tuple output (WHOLE_BODY_OUTPUTS order)."""

    def __init__(self, whole_body: WholeBodyModel) -> None:
        super().__init__()
        self.whole_body = whole_body

    def forward(self, crops: Tensor) -> tuple[Tensor, ...]:
        """Run the wrapped computation (see the class docstring)."""
        return flatten_stages(self.whole_body.run_stages(crops))


def flatten_stages(stages: WholeBodyStages) -> tuple[Tensor, ...]:
    """WholeBodyStages as a flat tuple in WHOLE_BODY_OUTPUTS order."""
    plain = tuple(getattr(stages, name) for name in WholeBodyStages._fields if name != 'hands')
    return (*plain, *stages.hands)


def unflatten_stages(values: tuple[Tensor, ...] | list[Tensor]) -> WholeBodyStages:
    """Inverse of flatten_stages."""
    named = dict(zip(WHOLE_BODY_OUTPUTS, values, strict=True))
    hands = HandStage(*(named[f'hand_{name}'] for name in HandStage._fields))
    return WholeBodyStages(
        **{name: named[name] for name in WholeBodyStages._fields if name != 'hands'},
        hands=hands,
    )


class HandPathNetwork(nn.Module):
    """The hand path with a flat output (HAND_OUTPUTS order).

    Args:
        model: the dual path whose hand path is exported.
        guided: True exports the adapter-guided path (inputs crops, arm_pose_6d); False the
            plain hand expert (input crops), what the dual path runs without the hand adapter.
    """

    def __init__(self, model: DualPathModel, guided: bool) -> None:
        super().__init__()
        self.hand_path = model.hand_path
        self.guided = guided

    def forward(self, crops: Tensor, arm_pose_6d: Tensor | None = None) -> tuple[Tensor, ...]:
        """Run the wrapped computation (see the class docstring)."""
        if self.guided:
            return tuple(self.hand_path(crops, arm_pose_6d))
        return tuple(self.hand_path.hand_expert(crops))


class DualPathNetwork(nn.Module):
    """``DualPathModel.forward`` with a flat tuple output (DUAL_PATH_OUTPUTS order)."""

    def __init__(self, model: DualPathModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, images: Tensor, boxes_xyxy: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> tuple[Tensor, ...]:
        """Run the wrapped computation (see the class docstring)."""
        return tuple(self.model(images, boxes_xyxy, batch_index, intrinsics))


class GraphSpec(NamedTuple):
    """One exported graph: what it computes and its static input shapes.

    Attributes:
        name: 'whole_body', 'hand_path' or 'dual_path'.
        module: the flat-output module that is exported.
        inputs: example inputs (their shapes and dtypes are the graph's).
        input_names: ONNX input names.
        output_names: ONNX output names.
    """

    name: str
    module: nn.Module
    inputs: tuple[Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def hand_path_guided(model: DualPathModel) -> bool:
    """Whether the dual path runs the hand adapter (the guided graph) in its current mode."""
    return model.adapters in ('hand', 'both')


def smplerx_whole_body(model: DualPathModel) -> WholeBodyModel:
    """The dual path's SMPLer-X whole-body network, which the exported graphs are built for.

    Raises:
        BackendUnavailableError: the body model is another registered one (FastMETRO): its
            stages have another layout; run it with eager, cuda_graph or compile.
    """
    from hmr_ros.pipeline.backends.base import BackendUnavailableError

    if not isinstance(model.whole_body, WholeBodyModel):
        raise BackendUnavailableError(
            f'the ONNX and TensorRT graphs are exported for the SMPLer-X whole-body model, not '
            f'{model.whole_body.config.name}; use model.backend eager, cuda_graph or compile'
        )
    return model.whole_body


def whole_body_spec(
    model: DualPathModel, persons: int, dtype: torch.dtype, device: torch.device
) -> GraphSpec:
    """The ``whole_body`` graph for ``persons`` crops."""
    whole_body = smplerx_whole_body(model)
    crops = torch.rand(persons, 3, *BODY_CROP_HW, device=device, dtype=dtype)
    return GraphSpec(
        'whole_body', WholeBodyNetwork(whole_body), (crops,), ('crops',), WHOLE_BODY_OUTPUTS
    )


def hand_path_spec(
    model: DualPathModel, persons: int, dtype: torch.dtype, device: torch.device
) -> GraphSpec:
    """The ``hand_path`` graph for the 2 * ``persons`` hand crops of ``persons`` persons."""
    side = model.hand_path.hand_expert.config.crop_size_px
    hands = 2 * persons
    crops = torch.randn(hands, 3, side, side, device=device, dtype=dtype)
    guided = hand_path_guided(model)
    network = HandPathNetwork(model, guided)
    if not guided:
        return GraphSpec('hand_path', network, (crops,), ('crops',), HAND_OUTPUTS)
    joints = model.hand_path.guidance_joints  # 8 (arm group) for the paper's adapter
    arm = _arm_guidance_example(hands, dtype, device, joints)
    return GraphSpec('hand_path', network, (crops, arm), ('crops', 'arm_pose_6d'), HAND_OUTPUTS)


def _arm_guidance_example(
    hands: int, dtype: torch.dtype, device: torch.device, joints: int = 8
) -> Tensor:
    """(hands, joints, 6) contiguous 6D of identity rotations (first two columns of I)."""
    identity_6d = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], device=device, dtype=dtype)
    return identity_6d.expand(hands, joints, 6).clone()


def dual_path_spec(
    model: DualPathModel, persons: int, image_hw: tuple[int, int], device: torch.device
) -> GraphSpec:
    """The whole ``dual_path`` graph for one image size and ``persons`` boxes (fp32 inputs)."""
    from hmr_ros.pipeline.backends.cuda_graph import example_inputs

    inputs = example_inputs(image_hw, persons, device)
    return GraphSpec(
        'dual_path', DualPathNetwork(model), inputs, DUAL_PATH_INPUTS, DUAL_PATH_OUTPUTS
    )


def export_graph(spec: GraphSpec, path: Path) -> Path:
    """Write one graph to ``path`` (weights in ``path`` + '.data' when large).

    Raises:
        ExportError: the exporter failed; the message has its first line.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info('exporting %s (inputs %s) to %s', spec.name, _shapes(spec.inputs), path)
    quiet = [logging.getLogger(name) for name in ('onnx_ir', 'onnxscript')]
    levels = [log.level for log in quiet]
    for log in quiet:  # their INFO lines list every deduplicated initializer
        log.setLevel(logging.WARNING)
    try:
        with torch.no_grad():
            # torch.export first, once, non-strict: the ONNX exporter would otherwise retry a
            # failing graph with other strategies (minutes on ViT-H) and print it whole.
            program = torch.export.export(spec.module.eval(), spec.inputs, strict=False)
            torch.onnx.export(
                program,
                spec.inputs,
                str(path),
                input_names=list(spec.input_names),
                output_names=list(spec.output_names),
                dynamo=True,
                external_data=True,
                verbose=False,
                custom_translation_table=onnx_translations(),
            )
    except Exception as error:  # the exporter raises many kinds; all mean "not exportable"
        reason = _export_reason(error)
        raise ExportError(
            f'ONNX export of {spec.name} failed: {type(error).__name__}: {reason}'
        ) from error
    finally:
        for log, level in zip(quiet, levels, strict=True):
            log.setLevel(level)
    return path


def onnx_translations() -> dict[Any, Callable[..., Any]]:
    """ONNX translations of the two ATen ops of the dual path that ONNX (Runtime) lacks.

    - ``aten._linalg_solve_ex`` (ONNX has no linear solve): the dual path solves only 3 x 3
      systems (the hand-root registration's normal equations, the camera matrix), so the
      translation is Cramer's rule on the system scaled by its largest entry (the scaling keeps
      the determinant of badly scaled normal equations in float range; it does not change the
      solution). ``info`` is always 0, as the ridge-regularised systems never fail.
    - ``aten.where.self`` on booleans: ONNX Runtime's CPU provider has no boolean ``Where``;
      it becomes ``(c and x) or (not c and y)``; every other ``where`` stays ``Where``.
    """
    from onnx import TensorProto
    from onnxscript import opset18

    op: Any = opset18  # onnxscript's typed signatures do not fit traced values

    def element(matrix: Any, row: int, column: int) -> Any:
        picked = op.Gather(matrix, op.Constant(value_int=row), axis=-2)
        return op.Gather(picked, op.Constant(value_int=column), axis=-1)

    def solve_ex(a: Any, b: Any, left: bool = True, check_errors: bool = False) -> Any:
        shape = getattr(a, 'shape', None)
        if not left or (shape is not None and tuple(shape)[-2:] != (3, 3)):
            raise ExportError('the ONNX translation of linalg.solve_ex handles 3 x 3 systems')
        scale = op.ReduceMax(op.Abs(a), op.Constant(value_ints=[-2, -1]), keepdims=1)
        a, b = op.Div(a, scale), op.Div(b, scale)
        m = [[element(a, i, j) for j in range(3)] for i in range(3)]

        def minor(r0: int, r1: int, c0: int, c1: int) -> Any:
            return op.Sub(op.Mul(m[r0][c0], m[r1][c1]), op.Mul(m[r0][c1], m[r1][c0]))

        # Adjugate (transposed cofactors), row by row.
        adjugate = [
            [minor(1, 2, 1, 2), minor(0, 2, 2, 1), minor(0, 1, 1, 2)],
            [minor(1, 2, 2, 0), minor(0, 2, 0, 2), minor(0, 1, 2, 0)],
            [minor(1, 2, 0, 1), minor(0, 2, 1, 0), minor(0, 1, 0, 1)],
        ]
        det = op.Add(
            op.Add(op.Mul(m[0][0], adjugate[0][0]), op.Mul(m[0][1], adjugate[1][0])),
            op.Mul(m[0][2], adjugate[2][0]),
        )
        last = op.Constant(value_ints=[-1])
        rows = [op.Concat(*(op.Unsqueeze(v, last) for v in row), axis=-1) for row in adjugate]
        inverse = op.Concat(
            *(op.Unsqueeze(row, op.Constant(value_ints=[-2])) for row in rows), axis=-2
        )
        inverse = op.Div(inverse, op.Unsqueeze(det, op.Constant(value_ints=[-1, -2])))
        info = op.Cast(op.Mul(det, op.Constant(value_float=0.0)), to=TensorProto.INT32)
        return op.MatMul(inverse, b), info

    def where(condition: Any, x: Any, y: Any) -> Any:
        boolean = TensorProto.BOOL  # onnx_ir's DataType is an IntEnum of the same codes
        if getattr(x, 'dtype', None) == boolean and getattr(y, 'dtype', None) == boolean:
            return op.Or(op.And(condition, x), op.And(op.Not(condition), y))
        return op.Where(condition, x, y)

    return {
        torch.ops.aten._linalg_solve_ex.default: solve_ex,
        torch.ops.aten.where.self: where,
    }


def _export_reason(error: Exception) -> str:
    """The informative line of an exporter error (its exception summary's first entry)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if 'Exception summary' in lines:
        after = lines[lines.index('Exception summary') + 1 :]
        if after:
            return f'{lines[0]} {after[0]}'[:400]
    return lines[0][:400]


def _shapes(tensors: tuple[Tensor, ...]) -> str:
    return ', '.join(f'{tuple(t.shape)} {str(t.dtype).removeprefix("torch.")}' for t in tensors)


def module_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, dtypes, bytes).

    Identifies random or in-memory weights (test assets, the bench) where no checkpoint file
    hash exists. Reads every tensor to the host once.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f'{name}:{tuple(tensor.shape)}:{tensor.dtype};'.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class GraphKey:
    """What an exported graph depends on; its digest names the cached file."""

    graph: str
    model_digest: str
    adapters: str
    input_shapes: tuple[tuple[int, ...], ...]
    dtype: str
    torch_version: str = torch.__version__
    hmr_ros_version: str = hmr_ros.__version__

    @property
    def digest(self) -> str:
        """First 20 hex digits of the SHA-256 of every field."""
        return hashlib.sha256(repr(dataclasses.astuple(self)).encode()).hexdigest()[:20]


def graph_key(spec: GraphSpec, model: DualPathModel, model_digest: str) -> GraphKey:
    """The cache key of an exported graph of ``model``."""
    return GraphKey(
        graph=spec.name,
        model_digest=model_digest,
        adapters=model.adapters,
        input_shapes=tuple(tuple(t.shape) for t in spec.inputs),
        dtype=str(spec.inputs[0].dtype).removeprefix('torch.'),
    )


def cached_export(spec: GraphSpec, key: GraphKey, folder: Path, *, rebuild: bool = False) -> Path:
    """The graph's ONNX file in ``folder``, exported when absent, incomplete or ``rebuild``.

    A marker file written after a complete export tells a finished graph from one an
    interrupted export left behind (the graph names its weights file, so it is not renamed).
    """
    path = folder / f'{spec.name}-{key.digest}.onnx'
    marker = path.with_name(path.name + '.complete')
    if rebuild or not (path.is_file() and marker.is_file()):
        marker.unlink(missing_ok=True)
        export_graph(spec, path)
        marker.write_text(repr(key) + '\n')
    return path
