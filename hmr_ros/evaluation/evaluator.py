"""Run a model over converted data sets and average the paper's metrics (HMR-Adapter 4.1).

Two kinds of model, chosen by ``EvalConfig.model``:

- 'dual_path': the whole system (models.dual_path) from its base checkpoints and adapter files,
  one row per adapter setting (the ablation switch: 'none' is the baseline "SMPLer-X + HaMeR",
  'hand', 'body', 'both'). Each sample is one person: its image, its person box and its camera
  (the stored intrinsics; without them fx = fy = max(W, H) and the image centre, as
  ``hmr-ros infer`` assumes). The predicted SMPL-X mesh is compared with the ground-truth mesh
  (stored SMPL-X vertices, else the SMPL-X layer on the stored parameters) by
  ``metrics.whole_body_errors``: 'All' and 'Hands' columns of Tables 1, 4, 5 and 6; samples
  with SMPL ground truth (3DPW's 24 joints, layout 'smpl24') by ``metrics.smpl_body_errors``
  (Table 2).
- 'hand_expert': the hand path alone on hand crops (Table 3, FreiHAND): HaMeR's square crop
  around each ground-truth hand box (2.0 x the box, grown to 3:4, left hands flipped), rows
  'none' (plain hand expert) or 'hand'. With the adapter, a row's ``guidance`` is the
  ground-truth body pose where the sample has one (an oracle: the row is labelled
  ``ORACLE_LABEL``) or zero. The MANO mesh is placed in the camera with ``cam_crop_to_full``
  and the real intrinsics and compared by ``metrics.hand_errors`` with the MANO ground truth,
  or, for whole-body samples (ARCTIC), with the SMPL-X mesh's hands (``SMPLXHandTruth``);
  camera-space ('cs_') metrics need camera-frame ground truth and are left out (NaN, not
  averaged) otherwise.

Metric definitions follow SMPLer-X's evaluation code (``protocols``, docs/evaluation.md) and
need licensed files (``WholeBodyMetricsConfig``): the J14 regressor and the MANO-to-SMPL-X
vertex map. Protocol 'smplerx' stops naming a missing file; 'approximate' falls back to hand
subsets by skinning weight and the 22 SMPL-X body joints, and the result's metadata says so,
since the numbers are then not the paper's protocol.

Results: one ``report.ResultRow`` per row over all data sets, printed with
``report.format_table`` in the layout of ``EvalConfig.table`` and written with
``report.write_json`` (metadata: configuration, weights files with SHA-256, versions, device,
metric sources, oracle rows).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

import numpy as np
import torch
from torch import Tensor

import hmr_ros
from hmr_ros.body_models.joint_names import (
    NUM_BODY_JOINTS,
    NUM_ROOT_JOINTS,
    SIDES,
    SMPLX_JOINT_INDEX,
    Side,
    hand_joint_names,
)
from hmr_ros.body_models.smplx_layers import MANO_NUM_VERTICES, MANOHandModel, SMPLXBodyModel
from hmr_ros.config import config_to_dict
from hmr_ros.datasets.sample import (
    SMPL_LAYOUT,
    Sample,
    keypoint_box_xyxy,
    load_index,
    smplx_params_to_rotmats,
    with_image,
)
from hmr_ros.evaluation.metrics import (
    WholeBodyEvalSpec,
    hand_errors,
    smpl_body_errors,
    whole_body_errors,
)
from hmr_ros.evaluation.protocols import (
    HAND_JOINT_SETS,
    HAND_VERTEX_IDS_FILE_NAME,
    J14_FILE_NAME,
    PW3D_EVAL_JOINTS,
    SMPLX_TO_SMPL_FILE_NAME,
    HandJointSet,
    hand_joint_regressor,
    load_hand_vertex_ids,
    load_regressor_file,
)
from hmr_ros.evaluation.report import (
    MetricAccumulator,
    ResultRow,
    TableLayout,
    get_layout,
    write_json,
)
from hmr_ros.geometry.cameras import assumed_intrinsics, cam_crop_to_full
from hmr_ros.geometry.crops import body_crop_boxes, clip_boxes_xyxy, crop_images, hand_crop_boxes
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, rot6d_to_rotmat
from hmr_ros.models.ablations.body import use_body_variant
from hmr_ros.models.adapters.hand_adapter import NUM_ARM_JOINTS, GuidedHandExpert, arm_guidance
from hmr_ros.models.devices import PRECISION_NAMES, resolve_device, resolve_precision
from hmr_ros.models.dual_path import DualPathConfig, DualPathModel
from hmr_ros.models.dual_path_builder import (
    WeightsInfo,
    build_dual_path,
    load_hand_adapter,
    load_hand_expert,
    load_whole_body,
)
from hmr_ros.models.fusion import DEFAULT_WRIST_SOURCE, WRIST_SOURCES, WristSource
from hmr_ros.models.hand_expert import mirror_left_hands, normalize_hand_crops
from hmr_ros.models.whole_body import WholeBodyModel

__all__ = [
    'HAND_TABLES',
    'WHOLE_BODY_TABLES',
    'EvalConfig',
    'EvalDataset',
    'EvalResult',
    'EvalRow',
    'WholeBodyMetricsConfig',
    'default_intrinsics',
    'evaluate',
    'whole_body_eval_spec',
]

_LOG = logging.getLogger(__name__)

EvalModel = Literal['dual_path', 'hand_expert']
AdapterRequest = Literal['auto', 'none', 'hand', 'body', 'both']
HandGuidance = Literal['ground_truth', 'predicted', 'zero']

ORACLE_LABEL = ' [oracle: ground-truth body pose]'
"""Appended to a hand-crop row whose adapter was guided by the ground-truth body pose: an upper
bound of the real pipeline (which guides with the whole-body model's prediction), reported as
its own row and never mixed with the pipeline's numbers."""

WHOLE_BODY_TABLES: tuple[str, ...] = ('table1', 'table2', 'table4', 'table5', 'table6', 'agora')
"""Layouts of whole-body metrics (model 'dual_path')."""
HAND_TABLES: tuple[str, ...] = ('table3', 'freihand', 'freihand_cs')
"""Layouts of hand metrics (model 'hand_expert')."""

HAND_BOX_RESCALE = 2.0
"""HaMeR's enlargement of a tight hand box before its square crop (geometry.crops)."""
PIXEL_SCALE = 255.0


@dataclass(frozen=True)
class EvalDataset:
    """One converted data set.

    Attributes:
        name: its column group in the table ('ARCTIC', 'EHF', 'FreiHAND', ...).
        index: the ``.npz`` index of its converter.
        image_root: folder of its images ('' = the root stored in the index).
        max_samples: evaluate only the first N samples (0 = all).
    """

    name: str
    index: str
    image_root: str = ''
    max_samples: int = 0

    def __post_init__(self) -> None:
        if not self.name or not self.index or self.max_samples < 0:
            raise ValueError('a data set needs a name, an index and max_samples >= 0')


@dataclass(frozen=True)
class EvalRow:
    """One row of the table: a label and the adapters that run for it.

    Attributes:
        method: the row label ('SMPLer-X-H32 + HaMeR', 'Ours', 'No.6').
        adapters: 'auto' (every adapter loaded), 'none', 'hand', 'body' or 'both'.
        extra: text columns of the layout (Tables 3-4: 'Pre-trained', 'Adapter',
            'Trainable Params.').
        wrist_source: 'hand', 'body' or 'blend' for this row only; '' evaluates the row once
            per ``EvalConfig.wrist_sources`` (model 'dual_path').
        guidance: hand-crop rows (model 'hand_expert') with the hand adapter: 'ground_truth'
            guides it with each sample's ground-truth body pose (an oracle; the row is
            labelled with ORACLE_LABEL), 'predicted' with the pose the whole-body model
            (EvalConfig.whole_body) predicts on the sample's person box, as the real pipeline
            does, 'zero' with no body pose (as for hand-only data). Whole-body rows always use
            the whole-body model's predicted pose.
    """

    method: str
    adapters: AdapterRequest = 'auto'
    extra: dict[str, str] = field(default_factory=dict)
    wrist_source: str = ''
    guidance: HandGuidance = 'ground_truth'

    def __post_init__(self) -> None:
        if self.adapters not in get_args(AdapterRequest):
            raise ValueError(f'adapters must be one of {get_args(AdapterRequest)}')
        if self.wrist_source and self.wrist_source not in WRIST_SOURCES:
            raise ValueError(f"wrist_source must be '' or one of {WRIST_SOURCES}")
        if self.guidance not in get_args(HandGuidance):
            raise ValueError(f'guidance must be one of {get_args(HandGuidance)}')


MetricsProtocol = Literal['smplerx', 'approximate']


@dataclass(frozen=True)
class WholeBodyMetricsConfig:
    """Files and choices that define the whole-body metrics (``evaluation.protocols``).

    Attributes:
        protocol: 'smplerx' (the paper's, as SMPLer-X's evaluation code computes it: needs
            hand_vertex_ids and body_joint_regressor, and fails naming the missing file) or
            'approximate' (runs without the licensed files: hand vertices by skinning weight,
            the 22 SMPL-X body joints; the results say so, and they are not the paper's
            numbers).
        hand_vertex_ids: SMPL-X's ``MANO_SMPLX_vertex_ids.pkl`` (or an ``.npz`` with int
            arrays 'left_hand' and 'right_hand').
        body_joint_regressor: the J14 regressor ``SMPLX_to_J14.pkl`` ((14, 10475); also
            ``.npy``, or ``.npz`` with key 'regressor') for the 'All' PA-MPJPE.
        hand_joints: 'smplerx21' (16 MANO joints and 5 fingertip vertices, the protocol) or
            'mano16'.
        smplx_to_smpl: SMPL-X-to-SMPL transfer matrix ((6890, 10475), ``smplx2smpl.pkl`` or
            ``.npz`` key 'matrix') for 3DPW's PVE; '' leaves PVE out on SMPL ground truth.
    """

    protocol: MetricsProtocol = 'smplerx'
    hand_vertex_ids: str = ''
    body_joint_regressor: str = ''
    hand_joints: HandJointSet = 'smplerx21'
    smplx_to_smpl: str = ''

    def __post_init__(self) -> None:
        if self.protocol not in get_args(MetricsProtocol):
            raise ValueError(f'metrics.protocol must be one of {get_args(MetricsProtocol)}')
        if self.hand_joints not in HAND_JOINT_SETS:
            raise ValueError(f'metrics.hand_joints must be one of {HAND_JOINT_SETS}')


@dataclass(frozen=True)
class EvalConfig:
    """``hmr-ros eval CONFIG``: what to evaluate, on which data, printed how.

    Attributes:
        model: 'dual_path' (whole body) or 'hand_expert' (hand crops).
        hand_expert: HaMeR model file or official checkpoint.
        body_model_dir: folder with SMPLX_NEUTRAL.npz and MANO_{RIGHT,LEFT}.pkl.
        datasets: the converted data sets.
        table: report layout ('table1' ... 'table6', 'agora', 'freihand', 'freihand_cs').
        whole_body: SMPLer-X model file (model 'dual_path').
        hand_adapter: hand adapter file ('' = none).
        body_adapter: body adapter file ('' = none; model 'dual_path').
        body_variant: file of a whole-body ablation variant that adds modules (concatenation,
            moderator, task-token adapter; models/ablations/body.py), loaded on top of
            ``whole_body`` ('' = none; model 'dual_path', without body_adapter).
        rows: table rows (label and adapters each).
        dual_path: dual-path options (hand crop rescale, hand confidence); its ``adapters``
            must stay 'auto', rows choose the adapters, and its ``wrist_source`` is replaced by
            those of ``wrist_sources``.
        wrist_sources: model 'dual_path': every row without its own wrist_source is evaluated
            once per entry; the first keeps the row's label, the others are reported as
            '<label> [wrist: <source>]' right below it (default: the paper's 'body' and the
            IK-style 'hand' of the baseline, so both are reported).
        metrics: whole-body metric files.
        batch_size: samples (dual path) or hand crops per forward pass.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        precision: 'auto' (fp16 on CUDA, fp32 on CPU), 'fp32', 'fp16' or 'bf16'.
        output_json: results file.
    """

    model: EvalModel
    hand_expert: str
    body_model_dir: str
    datasets: tuple[EvalDataset, ...]
    table: str
    whole_body: str = ''
    hand_adapter: str = ''
    body_adapter: str = ''
    body_variant: str = ''
    rows: tuple[EvalRow, ...] = (EvalRow('Ours'),)
    dual_path: DualPathConfig = DualPathConfig()
    wrist_sources: tuple[str, ...] = (DEFAULT_WRIST_SOURCE, 'hand')
    metrics: WholeBodyMetricsConfig = WholeBodyMetricsConfig()
    batch_size: int = 8
    device: str = 'auto'
    precision: Literal['auto', 'fp32', 'fp16', 'bf16'] = 'fp32'
    output_json: str = 'eval_results.json'

    def __post_init__(self) -> None:
        if self.model not in get_args(EvalModel):
            raise ValueError(f'model must be one of {get_args(EvalModel)}; got {self.model!r}')
        get_layout(self.table)
        tables = WHOLE_BODY_TABLES if self.model == 'dual_path' else HAND_TABLES
        if self.table not in tables:
            raise ValueError(
                f'table {self.table!r} is not filled by model {self.model!r}; it fills '
                f'{", ".join(tables)}'
            )
        if not self.datasets or not self.rows:
            raise ValueError('give at least one data set and one row')
        if self.model == 'dual_path' and not self.whole_body:
            raise ValueError("model 'dual_path' needs whole_body (the SMPLer-X model file)")
        predicted = [r.method for r in self.rows if r.guidance == 'predicted']
        if self.model == 'hand_expert' and predicted and not self.whole_body:
            raise ValueError(
                f'rows {predicted} use guidance predicted: set whole_body (the SMPLer-X model '
                'file whose body pose guides the hand adapter)'
            )
        if self.model == 'hand_expert':
            if self.body_adapter:
                raise ValueError("model 'hand_expert' takes no body_adapter")
            bad = [r.method for r in self.rows if r.adapters in ('body', 'both')]
            if bad:
                raise ValueError(
                    f"rows {bad} ask for the body adapter; model 'hand_expert' rows use "
                    "adapters 'auto', 'none' or 'hand'"
                )
        if self.body_variant and (self.model != 'dual_path' or self.body_adapter):
            raise ValueError(
                "body_variant replaces the body adapter of model 'dual_path': give one of them"
            )
        if self.dual_path.adapters != 'auto':
            raise ValueError('leave dual_path.adapters at auto; each row sets its adapters')
        bad_sources = [s for s in self.wrist_sources if s not in WRIST_SOURCES]
        if (
            not self.wrist_sources
            or bad_sources
            or len(set(self.wrist_sources)) != len(self.wrist_sources)
        ):
            raise ValueError(
                f'wrist_sources must list distinct entries of {WRIST_SOURCES}; got '
                f'{self.wrist_sources}'
            )
        if self.batch_size < 1:
            raise ValueError(f'batch_size must be >= 1; got {self.batch_size}')


@dataclass(frozen=True)
class EvalResult:
    """What an evaluation produced.

    Attributes:
        layout: the table layout.
        rows: one ResultRow per configured row.
        metadata: what the JSON file records besides the rows.
        json_path: the written results file.
    """

    layout: TableLayout
    rows: tuple[ResultRow, ...]
    metadata: dict[str, Any]
    json_path: Path


# --- Inputs --------------------------------------------------------------------------------------


def default_intrinsics(image_wh: tuple[int, int]) -> np.ndarray:
    """K of an uncalibrated image (geometry.cameras.assumed_intrinsics), float32 (3, 3)."""
    fx, fy, cx, cy = assumed_intrinsics(*image_wh)
    return np.array(((fx, 0.0, cx), (0.0, fy, cy), (0.0, 0.0, 1.0)), dtype=np.float32)


def wrist_source_rows(config: EvalConfig) -> list[EvalRow]:
    """The dual-path rows as evaluated: each row once per wrist source (EvalConfig docs).

    Returns:
        Rows with wrist_source set, in report order.
    """
    rows = []
    for row in config.rows:
        if row.wrist_source:
            rows.append(row)
            continue
        first, *others = config.wrist_sources
        rows.append(replace(row, wrist_source=first))
        rows.extend(
            replace(row, method=f'{row.method} [wrist: {source}]', wrist_source=source)
            for source in others
        )
    labels = [row.method for row in rows]
    if len(set(labels)) != len(labels):
        raise ValueError(f'row labels must be distinct after adding wrist sources: {labels}')
    return rows


def _load_dataset(dataset: EvalDataset) -> list[Sample]:
    path = Path(dataset.index)
    if not path.is_file():
        raise FileNotFoundError(
            f'data index {path} of {dataset.name} not found; convert the data set first'
        )
    samples = load_index(path, dataset.image_root or None)
    if dataset.max_samples:
        samples = samples[: dataset.max_samples]
    _LOG.info('%s: %d samples from %s', dataset.name, len(samples), path)
    return samples


def _image_tensor(sample: Sample) -> Tensor:
    image = with_image(sample).image
    assert image is not None  # with_image loads it
    return torch.tensor(image, dtype=torch.float32).permute(2, 0, 1) / PIXEL_SCALE


def _person_box(sample: Sample) -> np.ndarray | None:
    if sample.person_box_xyxy is not None:
        return np.asarray(sample.person_box_xyxy)
    if sample.body_keypoints_2d_px is not None:
        return keypoint_box_xyxy(np.asarray(sample.body_keypoints_2d_px))
    return None


def _hand_box(sample: Sample, side: Side) -> np.ndarray | None:
    box = getattr(sample, f'{side}_hand_box_xyxy')
    if box is not None:
        return np.asarray(box)
    keypoints = getattr(sample, f'{side}_hand_keypoints_2d_px')
    return None if keypoints is None else keypoint_box_xyxy(np.asarray(keypoints))


# --- Whole-body metric definitions ---------------------------------------------------------------


def whole_body_eval_spec(
    smplx_model: SMPLXBodyModel, metrics: WholeBodyMetricsConfig
) -> tuple[WholeBodyEvalSpec, dict[str, str]]:
    """Regressors and hand vertex subsets of the whole-body metrics.

    Args:
        smplx_model: the SMPL-X layer (its J_regressor and skinning weights).
        metrics: the protocol and its files.

    Returns:
        (spec, description of the sources for the results' metadata).

    Raises:
        ProtocolFileNotFoundError: protocol 'smplerx' and a file it needs is not given.
    """
    layer = smplx_model.layer
    joint_regressor = layer.J_regressor.detach().float().cpu()  # (55, V)
    num_vertices = joint_regressor.shape[1]
    exact = metrics.protocol == 'smplerx'
    sources: dict[str, str] = {'protocol': metrics.protocol}
    if metrics.body_joint_regressor or exact:
        body = load_regressor_file(
            metrics.body_joint_regressor or J14_FILE_NAME,
            num_vertices,
            J14_FILE_NAME,
            'metrics.body_joint_regressor',
        )
        sources['body_joints'] = (
            f'{Path(metrics.body_joint_regressor).name} ({body.shape[0]} joints)'
        )
    else:
        body = joint_regressor[: NUM_ROOT_JOINTS + NUM_BODY_JOINTS]
        sources['body_joints'] = 'SMPL-X J_regressor, 22 body joints (not the J14 protocol)'
    hand_regressors = {
        side: hand_joint_regressor(joint_regressor, side, metrics.hand_joints) for side in SIDES
    }
    sources['hand_joints'] = (
        '21 per hand: SMPL-X J_regressor wrist and finger joints + fingertip vertices '
        '(SMPLer-X make_hand_regressor)'
        if metrics.hand_joints == 'smplerx21'
        else '16 per hand: SMPL-X J_regressor wrist and finger joints (not the protocol)'
    )
    if metrics.hand_vertex_ids or exact:
        hand_vertices = load_hand_vertex_ids(
            metrics.hand_vertex_ids or HAND_VERTEX_IDS_FILE_NAME, num_vertices
        )
        sources['hand_vertices'] = Path(metrics.hand_vertex_ids).name
    else:
        owner = layer.lbs_weights.detach().cpu().argmax(dim=1)  # (V,) strongest joint
        hand_vertices = {}
        for side in SIDES:
            joints = torch.tensor([SMPLX_JOINT_INDEX[f'{side}_wrist'], *_hand_rows(side)])
            hand_vertices[side] = torch.nonzero(torch.isin(owner, joints)).flatten()
        sources['hand_vertices'] = (
            'skinning-weight subsets (not the MANO_SMPLX_vertex_ids protocol): '
            + ', '.join(f'{side} {len(v)}' for side, v in hand_vertices.items())
        )
    spec = WholeBodyEvalSpec(
        root_regressor=joint_regressor,
        body_joint_regressor=body,
        hand_joint_regressors=hand_regressors,
        hand_vertex_indices=hand_vertices,
    )
    return spec, sources


def _hand_rows(side: Side) -> list[int]:
    return [SMPLX_JOINT_INDEX[name] for name in hand_joint_names(side)]


# --- Whole body ----------------------------------------------------------------------------------


def _groups(samples: Sequence[Sample], size: int) -> Iterator[list[Sample]]:
    """Consecutive samples of equal image size, at most ``size`` per group (one image batch)."""
    group: list[Sample] = []
    for sample in samples:
        if group and (len(group) == size or group[0].image_size_wh != sample.image_size_wh):
            yield group
            group = []
        group.append(sample)
    if group:
        yield group


@torch.no_grad()
def _gt_smplx_vertices(sample: Sample, smplx_model: SMPLXBodyModel) -> Tensor | None:
    if sample.vertices_model == 'smplx' and sample.vertices_cam_m is not None:
        return torch.tensor(sample.vertices_cam_m, dtype=torch.float32)
    if sample.smplx is not None:
        inputs = smplx_params_to_rotmats(sample.smplx)
        like = smplx_model.layer.shapedirs
        inputs = {k: v.to(like) for k, v in inputs.items()}
        return smplx_model(**inputs).vertices[0].cpu()
    return None


def _gt_smpl_joints(sample: Sample) -> tuple[Tensor, Tensor | None] | None:
    """(24, 3) SMPL joints and the (6890, 3) SMPL mesh if stored, of SMPL ground truth."""
    keypoints = sample.body_keypoints_3d_cam_m
    if sample.body_keypoint_layout != SMPL_LAYOUT or keypoints is None:
        return None
    if not (np.asarray(keypoints)[:, 3] > 0).all():
        return None
    mesh = None
    if sample.vertices_model == 'smpl' and sample.vertices_cam_m is not None:
        mesh = torch.tensor(sample.vertices_cam_m, dtype=torch.float32)
    return torch.tensor(np.asarray(keypoints)[:, :3], dtype=torch.float32), mesh


@torch.no_grad()
def _evaluate_whole_body(
    model: DualPathModel,
    samples: Sequence[Sample],
    spec: WholeBodyEvalSpec,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    smplx_to_smpl: Tensor | None = None,
) -> tuple[MetricAccumulator, int]:
    """Metrics of one data set with the model's current adapter setting; (acc, skipped).

    Samples with SMPL-X ground truth get ``metrics.whole_body_errors``; samples with SMPL
    ground truth (3DPW: 24 SMPL joints, layout 'smpl24') get ``metrics.smpl_body_errors``.
    """
    accumulator = MetricAccumulator()
    usable: list[tuple[Sample, Any, np.ndarray]] = []
    for sample in samples:
        box = _person_box(sample)
        gt: Any = _gt_smplx_vertices(sample, model.smplx_model)
        if gt is None:
            gt = _gt_smpl_joints(sample)
        if gt is not None and box is not None:
            usable.append((sample, gt, box))
    skipped = len(samples) - len(usable)
    by_id = {id(s): (gt, box) for s, gt, box in usable}
    for group in _groups([s for s, _, _ in usable], batch_size):
        images = torch.stack([_image_tensor(s) for s in group]).to(device)
        boxes = torch.tensor(np.stack([by_id[id(s)][1] for s in group]), dtype=torch.float32)
        intrinsics = torch.tensor(
            np.stack(
                [
                    s.intrinsics
                    if s.intrinsics is not None
                    else default_intrinsics(s.image_size_wh)
                    for s in group
                ]
            ),
            dtype=torch.float32,
        )
        with _autocast(device, dtype):
            output = model(
                images,
                boxes.to(device),
                torch.arange(len(group), device=device),
                intrinsics.to(device),
            )
        predicted = output.vertices.float().cpu()
        truths = [by_id[id(s)][0] for s in group]
        smplx_rows = [i for i, t in enumerate(truths) if isinstance(t, Tensor)]
        smpl_rows = [i for i, t in enumerate(truths) if not isinstance(t, Tensor)]
        if smplx_rows:
            gt_vertices = torch.stack([truths[i] for i in smplx_rows])
            if gt_vertices.shape[1] != predicted.shape[1]:
                raise ValueError(
                    f'ground-truth meshes have {gt_vertices.shape[1]} vertices, the prediction '
                    f'{predicted.shape[1]}: whole-body tables compare SMPL-X meshes'
                )
            accumulator.update(whole_body_errors(predicted[smplx_rows], gt_vertices, spec))
        if smpl_rows:
            joints = torch.stack([truths[i][0] for i in smpl_rows])
            meshes = [truths[i][1] for i in smpl_rows]
            pred_smpl = gt_smpl = None
            if smplx_to_smpl is not None and all(m is not None for m in meshes):
                gt_smpl = torch.stack(meshes)
                pred_smpl = torch.einsum('sv,bvc->bsc', smplx_to_smpl, predicted[smpl_rows])
            accumulator.update(
                smpl_body_errors(
                    predicted[smpl_rows],
                    joints,
                    spec.root_regressor,
                    PW3D_EVAL_JOINTS,
                    pred_smpl_vertices_m=pred_smpl,
                    gt_smpl_vertices_m=gt_smpl,
                )
            )
    return accumulator, skipped


def _autocast(device: torch.device, dtype: torch.dtype) -> Any:
    enabled = device.type == 'cuda' and dtype != torch.float32
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


# --- Hands ---------------------------------------------------------------------------------------


@dataclass
class _HandItem:
    crop: Tensor  # (3, S, S) normalised
    guidance: Tensor  # (J, 6), J = the adapter's guidance_joints (8: arm group)
    has_body_pose: bool
    is_left: bool
    center: Tensor  # (2,)
    side_px: Tensor  # ()
    intrinsics: Tensor  # (3, 3)
    gt_vertices: Tensor  # (778, 3)
    gt_joints: Tensor  # (21, 3)
    camera_frame: bool  # ground truth in the camera frame (cs_ metrics valid)


@dataclass
class SMPLXHandTruth:
    """Hand ground truth of whole-body samples (ARCTIC hand crops, Tables 3 and 5).

    SMPL-X's hands are MANO hands: the 778 vertices of each hand (MANO_SMPLX_vertex_ids, in
    MANO's vertex order) of the ground-truth SMPL-X mesh, and its 21 hand joints (the protocol's
    regressor, OpenPose order like the MANO layer's joints), in the camera frame.
    """

    smplx_model: SMPLXBodyModel
    spec: WholeBodyEvalSpec

    def __post_init__(self) -> None:
        sizes = {len(ids) for ids in self.spec.hand_vertex_indices.values()}
        if sizes != {MANO_NUM_VERTICES}:
            raise ValueError(
                "hand crops of whole-body samples compare with the SMPL-X mesh's MANO hands: "
                f'set metrics.hand_vertex_ids to {HAND_VERTEX_IDS_FILE_NAME} (778 ids per hand)'
            )

    @torch.no_grad()
    def __call__(self, sample: Sample, side: Side) -> tuple[Tensor, Tensor] | None:
        mesh = _gt_smplx_vertices(sample, self.smplx_model)
        if mesh is None:
            return None
        vertices = mesh[self.spec.hand_vertex_indices[side]]
        joints = self.spec.hand_joint_regressors[side].to(mesh) @ mesh
        return vertices, joints


class PredictedBodyPose:
    """The body pose the whole-body model predicts for a sample's person (guidance 'predicted').

    The person crop is cut as the dual path cuts it (models.dual_path, steps a-b: SMPLer-X's
    box grown to 3:4 and scaled, 512 x 384), and the regressor's initial body pose theta_0 is
    returned (no body adapter: this measures the hand path). Cached per sample, since every
    row of a table uses the same poses.
    """

    def __init__(self, whole_body: WholeBodyModel) -> None:
        self.whole_body = whole_body.eval()
        self.device = next(whole_body.parameters()).device
        self._cache: dict[str, Tensor | None] = {}

    @torch.no_grad()
    def __call__(self, sample: Sample) -> Tensor | None:
        """(1, 22, 3, 3) root and body rotations, or None without a person box."""
        key = f'{sample.dataset}/{sample.sample_id}'
        if key not in self._cache:
            self._cache[key] = self._predict(sample)
        return self._cache[key]

    def _predict(self, sample: Sample) -> Tensor | None:
        box = _person_box(sample)
        if box is None:
            return None
        prep = self.whole_body.config.preprocessing
        image = _image_tensor(sample)[None].to(self.device)
        boxes = torch.tensor(box, dtype=torch.float32, device=self.device)[None]
        centers, sizes = body_crop_boxes(
            clip_boxes_xyxy(boxes, boxes.new_tensor(sample.image_size_wh)),
            prep.crop_scale,
            (prep.crop_aspect_wh, 1.0),
        )
        crops = crop_images(image, centers, sizes, prep.crop_hw_px)
        stages = self.whole_body.run_stages(crops)
        return rot6d_to_rotmat(stages.body_pose_6d.float(), 'interleaved').cpu()


@torch.no_grad()
def _hand_ground_truth(
    sample: Sample,
    side: Side,
    mano: dict[Side, MANOHandModel],
    smplx_truth: SMPLXHandTruth | None = None,
) -> tuple[Tensor, Tensor, bool] | None:
    """(vertices, joints, in camera frame) of one hand, or None without enough labels."""
    stored = sample.vertices_cam_m if sample.vertices_model == f'mano_{side}' else None
    keypoints = getattr(sample, f'{side}_hand_keypoints_3d_cam_m')
    params = getattr(sample, f'{side}_mano')
    if stored is not None and keypoints is not None and (np.asarray(keypoints)[:, 3] > 0).all():
        vertices = torch.tensor(stored, dtype=torch.float32)
        return vertices, torch.tensor(keypoints[:, :3], dtype=torch.float32), True
    if params is None:
        if smplx_truth is None or sample.smplx is None:
            return None
        truth = smplx_truth(sample, side)
        return None if truth is None else (*truth, True)
    layer = mano[side]
    like = layer.layer.shapedirs
    rotmats = axis_angle_to_rotmat(
        torch.from_numpy(
            np.concatenate((params.global_orient_aa[None], params.hand_pose_aa)).astype(np.float32)
        )
    ).to(like)
    output = layer(rotmats[None, :1], rotmats[None, 1:], torch.tensor(params.betas).to(like)[None])
    return output.vertices[0].float().cpu(), output.joints[0].float().cpu(), False


def _hand_items(
    sample: Sample,
    mano: dict[Side, MANOHandModel],
    crop_size: int,
    rescale: float,
    smplx_truth: SMPLXHandTruth | None = None,
    guidance_source: HandGuidance = 'ground_truth',
    predictor: PredictedBodyPose | None = None,
    hand_path: GuidedHandExpert | None = None,
) -> list[_HandItem]:
    items = []
    boxes, sides = [], []
    for side in SIDES:
        box = _hand_box(sample, side)
        truth = _hand_ground_truth(sample, side, mano, smplx_truth)
        if box is None or truth is None:
            continue
        boxes.append(box)
        sides.append((side, truth))
    if not boxes:
        return []
    centers, side_px = hand_crop_boxes(torch.tensor(np.stack(boxes), dtype=torch.float32), rescale)
    is_left = torch.tensor([side == 'left' for side, _ in sides])
    image = _image_tensor(sample)[None] * PIXEL_SCALE
    crops = normalize_hand_crops(
        crop_images(image, centers, side_px, (crop_size, crop_size), flip=is_left)
    )
    intrinsics = torch.tensor(
        sample.intrinsics
        if sample.intrinsics is not None
        else default_intrinsics(sample.image_size_wh),
        dtype=torch.float32,
    )
    body: Tensor | None = None  # (1, 22, 3, 3) root and body rotations
    if guidance_source == 'ground_truth' and sample.smplx is not None:
        body = axis_angle_to_rotmat(
            torch.from_numpy(
                np.concatenate(
                    (sample.smplx.global_orient_aa[None], sample.smplx.body_pose_aa)
                ).astype(np.float32)
            )
        )[None]
    elif guidance_source == 'predicted' and predictor is not None:
        body = predictor(sample)
    # The adapter's own input (the arm group for the paper's adapter; ablations: Table 5).
    guide = arm_guidance if hand_path is None else hand_path.guidance
    joints_in = NUM_ARM_JOINTS if hand_path is None else hand_path.guidance_joints
    for i, (side, (vertices, joints, camera_frame)) in enumerate(sides):
        guidance = guide(body, side)[0] if body is not None else torch.zeros(joints_in, 6)
        items.append(
            _HandItem(
                crop=crops[i],
                guidance=guidance,
                has_body_pose=body is not None,
                is_left=side == 'left',
                center=centers[i],
                side_px=side_px[i],
                intrinsics=intrinsics,
                gt_vertices=vertices,
                gt_joints=joints,
                camera_frame=camera_frame and sample.intrinsics is not None,
            )
        )
    return items


@torch.no_grad()
def _run_hands(
    model: GuidedHandExpert,
    mano_right: MANOHandModel,
    items: Sequence[_HandItem],
    use_adapter: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, Tensor]:
    crops = torch.stack([item.crop for item in items]).to(device)
    is_left = torch.tensor([item.is_left for item in items], device=device)
    with _autocast(device, dtype):
        if use_adapter:
            guidance = torch.stack([item.guidance for item in items]).to(device)
            has_body = torch.tensor([item.has_body_pose for item in items], device=device)
            seen = model(crops, guidance, has_body)
        else:
            seen = model.hand_expert(crops)
    seen = seen._replace(**{k: v.float() for k, v in seen._asdict().items()})
    mesh = mano_right(seen.global_orient, seen.hand_pose, seen.betas)
    mirror = torch.where(is_left, -1.0, 1.0).to(mesh.vertices)[:, None]
    sign = torch.stack((mirror, torch.ones_like(mirror), torch.ones_like(mirror)), dim=-1)
    hands = mirror_left_hands(seen, is_left)
    intrinsics = torch.stack([item.intrinsics for item in items]).to(device)
    transl = cam_crop_to_full(
        hands.cam,
        torch.stack([item.center for item in items]).to(device),
        torch.stack([item.side_px for item in items]).to(device),
        torch.stack((intrinsics[:, 0, 0], intrinsics[:, 1, 1]), dim=-1),
        intrinsics[:, :2, 2],
    )
    vertices = (mesh.vertices * sign + transl[:, None]).cpu()
    joints = (mesh.joints * sign + transl[:, None]).cpu()
    gt_vertices = torch.stack([item.gt_vertices for item in items])
    gt_joints = torch.stack([item.gt_joints for item in items])
    results = hand_errors(vertices, gt_vertices, joints, gt_joints)
    camera = torch.tensor([item.camera_frame for item in items])
    for name, values in results.items():
        if name.startswith('cs_'):
            results[name] = torch.where(camera, values, torch.nan)
    return results


def _evaluate_hands(
    model: GuidedHandExpert,
    mano: dict[Side, MANOHandModel],
    samples: Sequence[Sample],
    use_adapter: bool,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    guidance_source: HandGuidance = 'ground_truth',
    smplx_truth: SMPLXHandTruth | None = None,
    predictor: PredictedBodyPose | None = None,
) -> tuple[MetricAccumulator, int, int]:
    """Metrics of the hands of one data set.

    Returns:
        (acc, samples without a usable hand, hands the adapter saw with a body pose).
    """
    accumulator = MetricAccumulator()
    crop_size = model.hand_expert.config.crop_size_px
    pending: list[_HandItem] = []
    skipped = 0
    guided = 0

    def run(items: list[_HandItem]) -> None:
        nonlocal guided
        accumulator.update(_run_hands(model, mano['right'], items, use_adapter, device, dtype))
        if use_adapter:
            guided += sum(item.has_body_pose for item in items)

    for sample in samples:
        items = _hand_items(
            sample,
            mano,
            crop_size,
            HAND_BOX_RESCALE,
            smplx_truth,
            guidance_source if use_adapter else 'zero',
            predictor,
            model,
        )
        skipped += not items
        pending += items
        while len(pending) >= batch_size:
            run(pending[:batch_size])
            pending = pending[batch_size:]
    if pending:
        run(pending)
    return accumulator, skipped, guided


# --- Entry point ---------------------------------------------------------------------------------


def _weights_metadata(weights: Sequence[WeightsInfo]) -> list[dict[str, Any]]:
    return [
        {
            'model': w.model,
            'variant': w.variant,
            'file': str(w.path),
            'sha256': w.sha256,
            'converted': w.converted,
        }
        for w in weights
    ]


def evaluate(config: EvalConfig) -> EvalResult:
    """Evaluate every row on every data set, write the JSON results and return them.

    Raises:
        FileNotFoundError: a data index is missing.
        CheckpointError: a weights file is unreadable or does not match.
        ValueError: a row asks for an adapter whose file is not given.
    """
    device = resolve_device(config.device)
    dtype = resolve_precision(config.precision, device)
    layout = get_layout(config.table)
    datasets = {dataset.name: _load_dataset(dataset) for dataset in config.datasets}
    missing = sorted({c.dataset for c in layout.columns} - set(datasets))
    if missing:
        _LOG.warning(
            'table %s has columns for %s, which no data set is named', layout.name, missing
        )

    metadata: dict[str, Any] = {
        'config': config_to_dict(config),
        'hmr_ros_version': hmr_ros.__version__,
        'torch_version': torch.__version__,
        'device': str(device),
        'precision': PRECISION_NAMES.get(dtype, str(dtype)),
        'skipped_samples': {},
    }
    accumulators: dict[str, dict[str, MetricAccumulator]] = {}
    labels = {row.method: row.method for row in config.rows}
    if config.model == 'dual_path':
        build = build_dual_path(
            config.whole_body,
            config.hand_expert,
            config.body_model_dir,
            hand_adapter_file=config.hand_adapter or None,
            body_adapter_file=config.body_adapter or None,
            config=config.dual_path,
            device=device,
        )
        model = build.model
        weights_info = list(build.weights)
        if config.body_variant:  # a whole-body ablation variant (models/ablations/body.py)
            weights_info.append(use_body_variant(model, config.body_variant))
        spec, sources = whole_body_eval_spec(model.smplx_model, config.metrics)
        smplx_to_smpl = None
        if config.metrics.smplx_to_smpl:
            smplx_to_smpl = load_regressor_file(
                config.metrics.smplx_to_smpl,
                spec.root_regressor.shape[1],
                SMPLX_TO_SMPL_FILE_NAME,
                'metrics.smplx_to_smpl',
            )
            sources['smpl_vertices'] = Path(config.metrics.smplx_to_smpl).name
        metadata['weights'] = _weights_metadata(weights_info)
        metadata['metric_sources'] = sources
        result_rows = wrist_source_rows(config)
        metadata['wrist_source'] = {row.method: row.wrist_source for row in result_rows}
        for row in result_rows:
            model.set_adapters(row.adapters)
            model.config = replace(model.config, wrist_source=cast(WristSource, row.wrist_source))
            _LOG.info(
                '%s: %s; wrists from %s', row.method, model.mode_description, row.wrist_source
            )
            accumulators[row.method] = {}
            for name, samples in datasets.items():
                acc, skipped = _evaluate_whole_body(
                    model, samples, spec, config.batch_size, device, dtype, smplx_to_smpl
                )
                accumulators[row.method][name] = acc
                metadata['skipped_samples'][name] = skipped
    else:
        hand_expert, hand_info = load_hand_expert(config.hand_expert, device)
        weights = [hand_info]
        adapter = None
        if config.hand_adapter:
            adapter, adapter_info = load_hand_adapter(
                config.hand_adapter, hand_expert, hand_info.variant
            )
            weights.append(adapter_info)
        hand_model = GuidedHandExpert(hand_expert, adapter).eval()
        mano = {
            side: MANOHandModel.from_folder(config.body_model_dir, side).to(device)
            for side in SIDES
        }
        predictor = None
        if any(r.guidance == 'predicted' for r in config.rows):
            whole_body, whole_body_info = load_whole_body(config.whole_body, device)
            weights.append(whole_body_info)
            predictor = PredictedBodyPose(whole_body)
        metadata['weights'] = _weights_metadata(weights)
        smplx_truth = None
        if any(
            s.smplx is not None
            and getattr(s, f'{side}_mano') is None
            and _hand_box(s, side) is not None
            for samples in datasets.values()
            for s in samples
            for side in SIDES
        ):
            # Whole-body samples (ARCTIC): hand ground truth from their SMPL-X meshes.
            smplx_model = SMPLXBodyModel.from_folder(config.body_model_dir).to(device)
            spec, sources = whole_body_eval_spec(smplx_model, config.metrics)
            smplx_truth = SMPLXHandTruth(smplx_model, spec)
            metadata['metric_sources'] = sources
        for row in config.rows:
            use_adapter = row.adapters in ('auto', 'hand') and adapter is not None
            if row.adapters == 'hand' and adapter is None:
                raise ValueError(
                    f'row {row.method!r} asks for the hand adapter; set hand_adapter to its file'
                )
            accumulators[row.method] = {}
            guided_hands = 0
            for name, samples in datasets.items():
                acc, skipped, guided = _evaluate_hands(
                    hand_model,
                    mano,
                    samples,
                    use_adapter,
                    config.batch_size,
                    device,
                    dtype,
                    guidance_source=row.guidance,
                    smplx_truth=smplx_truth,
                    predictor=predictor,
                )
                accumulators[row.method][name] = acc
                metadata['skipped_samples'][name] = skipped
                guided_hands += guided
            if guided_hands and row.guidance == 'ground_truth':
                labels[row.method] = row.method + ORACLE_LABEL
                metadata.setdefault('oracle_rows', {})[labels[row.method]] = (
                    f'{guided_hands} hands guided by the ground-truth body pose'
                )
            elif guided_hands:
                metadata.setdefault('predicted_guidance_rows', {})[row.method] = (
                    f"{guided_hands} hands guided by the whole-body model's body pose"
                )
    for name, skipped in metadata['skipped_samples'].items():
        if skipped:
            _LOG.warning(
                '%s: %d samples without the needed box or ground truth skipped', name, skipped
            )
    reported = wrist_source_rows(config) if config.model == 'dual_path' else config.rows
    rows = tuple(
        ResultRow.from_accumulators(
            labels.get(row.method, row.method), accumulators[row.method], row.extra
        )
        for row in reported
    )
    json_path = write_json(config.output_json, layout, rows, metadata)
    return EvalResult(layout=layout, rows=rows, metadata=metadata, json_path=json_path)
