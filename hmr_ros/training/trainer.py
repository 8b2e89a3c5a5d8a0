"""Two-stage training of the HMR-Adapters with frozen base models (paper 3.5).

Stage "hand adapter" (3.5.1): the frozen hand expert with the hand adapter, conditioned on the
ground-truth body pose of each crop's person (the arm joint group from the SMPL-X pose; left
hands arrive flipped with their whole sample, so the guidance is the mirrored left arm, always
read as a right arm), zero guidance where a data set has no body pose (FreiHAND). Loss eq. 5.

Stage "body adapter" (3.5.2): the frozen whole-body model with the body adapter, whose MCP
features are sampled at the ground-truth 2D hand keypoints. They are mapped from crop pixels into
the HandRoI feature frame through the hand boxes the model predicted (the boxes its features
were cut with; left hand in its mirrored frame), ``body_adapter.hand_feature_points_from_crop_px``;
hands without the four MCP keypoints fall back to the predicted MCP joints. Loss eqs. 7-8.

What the loop guarantees:

1. Only the adapter trains: the base model has ``requires_grad`` False and stays in eval mode
   (GuidedHandExpert / RefinedWholeBody), and only adapter parameters are in the optimiser.
   Checkpoints hold only adapter weights. (A task's ``adapter`` is whatever it trains: the
   ablation variants of training/body_variants.py name parts or all of the base model.)
2. Exact resume: the data order of step s is a function of (seed, s) only (a stream of per-epoch
   permutations), and each item's augmentation of (seed, epoch, item); a checkpoint stores the
   step, the optimiser, scheduler and gradient-scaler states and every RNG state, so a resumed
   run computes the same losses as an uninterrupted one (bit for bit on CPU in fp32).
3. Mixed precision on CUDA: ``torch.autocast`` with bf16 (no scaler) or fp16 (GradScaler); the
   body-model layers and the losses run in fp32. CPU runs in fp32.
4. Checkpoints are ``checkpoints/step_<N>/adapter.safetensors`` (an adapter file,
   checkpoints.adapter_files, loaded strictly) and ``training_state.pt``, plain tensors and
   numbers read back with ``torch.load(weights_only=True)``: no pickled objects.
5. Losses go to ``losses.csv`` always and to TensorBoard when it is installed; a tqdm bar shows
   progress when stderr is a terminal. At the end the adapter file
   ``<adapter>_<base variant>.safetensors`` is written for the dual path
   (models.dual_path_builder.load_hand_adapter / load_body_adapter), or the task's own final
   file (``TrainingTask.final_file_name`` / ``save_final``; the ablations' model files).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm  # type: ignore[import-untyped]

from hmr_ros.body_models.joint_names import (
    OPENPOSE_HAND_JOINT_NAMES,
    SIDES,
    SMPLX_JOINT_INDEX,
    smplx_hand_to_openpose,
)
from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel
from hmr_ros.checkpoints.adapter_files import load_adapter_file, save_adapter_file
from hmr_ros.config import config_to_dict
from hmr_ros.datasets.loader import CropDataset, CropMode, LoaderConfig
from hmr_ros.datasets.sample import KEYPOINT_LAYOUTS, Sample, load_index
from hmr_ros.geometry.cameras import project_points
from hmr_ros.geometry.kinematics import global_rotations
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, rot6d_to_rotmat
from hmr_ros.models.adapters.body_adapter import (
    BodyAdapter,
    BodyAdapterConfig,
    RefinedWholeBody,
    apply_body_pose_offset,
    hand_feature_points_from_crop_px,
    mcp_points_hm,
)
from hmr_ros.models.adapters.hand_adapter import (
    GuidedHandExpert,
    HandAdapter,
    HandAdapterConfig,
)
from hmr_ros.models.devices import resolve_device, resolve_precision
from hmr_ros.models.dual_path_builder import load_hand_expert, load_whole_body
from hmr_ros.models.fusion import BODY_PARENTS
from hmr_ros.models.hand_expert import HandExpert, normalize_hand_crops
from hmr_ros.models.heads.smplx_head import BODY_POSITION_JOINT_NAMES, NUM_HAND_POSE_JOINTS
from hmr_ros.models.whole_body import WholeBodyModel, WholeBodyStages, virtual_crop_intrinsics
from hmr_ros.training.config import (
    BodyAdapterTrainConfig,
    DeformableDecoderTrainConfig,
    HandAdapterTrainConfig,
    Precision,
    TrainConfig,
)
from hmr_ros.training.losses import (
    BodyLossTerms,
    BodyLossWeights,
    BodyPrediction,
    BodyTarget,
    HandLossTerms,
    HandLossWeights,
    HandPrediction,
    HandTarget,
    body_adapter_loss,
    hand_adapter_loss,
)

__all__ = [
    'ADAPTER_FILE_NAME',
    'CHECKPOINTS_DIR',
    'LOSSES_CSV',
    'STATE_FILE_NAME',
    'AdapterTrainer',
    'BodyAdapterTask',
    'HandAdapterTask',
    'KeyedCropDataset',
    'StepBatchSampler',
    'TrainResult',
    'autocast_dtype',
    'body_mcp_points_hm',
    'epoch_order',
    'find_checkpoint',
    'step_items',
    'train_adapter',
    'weighted_step_items',
]

_LOG = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINTS_DIR = 'checkpoints'
ADAPTER_FILE_NAME = 'adapter.safetensors'
STATE_FILE_NAME = 'training_state.pt'
LOSSES_CSV = 'losses.csv'
TENSORBOARD_DIR = 'tensorboard'
CONFIG_FILE_NAME = 'config.yaml'

_ORDER_STREAM = 1
_AUGMENTATION_STREAM = 2
_MIXING_STREAM = 3
"""Tags that keep the data-order and augmentation seeds apart."""

SMPLX_LAYOUT = 'smplx'
"""Body keypoint layout of the training items: the 76 first joints of the SMPL-X layer."""
NUM_LAYOUT_KEYPOINTS = len(KEYPOINT_LAYOUTS[SMPLX_LAYOUT])
MCP_NAMES = ('index1', 'middle1', 'ring1', 'pinky1')
"""The body adapter's MCP order (body_adapter.NUM_MCP_JOINTS rows per hand)."""


# --- Device and precision -----------------------------------------------------------------------


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a precision on a device; None means plain fp32.

    'auto' is bf16 on CUDA devices that support it, fp16 on other CUDA devices; CPU is always
    fp32 (see hmr_ros.models.devices.resolve_precision).
    """
    auto_cuda = torch.bfloat16
    if device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        auto_cuda = torch.float16
    dtype = resolve_precision(precision, device, auto_cuda=auto_cuda)
    return None if dtype == torch.float32 else dtype


# --- Data order: a pure function of (seed, step) ------------------------------------------------


def _mixed_seed(*values: int) -> int:
    """A 63-bit seed from several integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def epoch_order(num_items: int, seed: int, epoch: int) -> Tensor:
    """The permutation of items in one epoch.

    Returns:
        (num_items,) int64.
    """
    generator = torch.Generator().manual_seed(_mixed_seed(seed, _ORDER_STREAM, epoch))
    return torch.randperm(num_items, generator=generator)


def step_items(step: int, batch_size: int, num_items: int, seed: int) -> list[tuple[int, int]]:
    """(epoch, item) keys of the batch of a step (0-based), from the stream of epoch orders.

    The stream concatenates epoch_order(0), epoch_order(1), ...; step s takes its positions
    [s B, (s + 1) B). A batch may span two epochs (and data sets smaller than a batch repeat),
    no item is ever dropped.
    """
    keys: list[tuple[int, int]] = []
    start = step * batch_size
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, num_items)
        if not keys or keys[-1][0] != epoch:
            order = epoch_order(num_items, seed, epoch)
        keys.append((epoch, int(order[offset])))
    return keys


def weighted_step_items(
    step: int,
    batch_size: int,
    groups: Sequence[Sequence[int]],
    weights: Sequence[float],
    seed: int,
) -> list[tuple[int, int]]:
    """(step, item) keys of a batch mixed from several data sets (``data.weights``).

    Each slot picks data set d with probability weights[d] / sum(weights) among the sets that
    have items, then one of d's items uniformly; the draw depends only on (seed, step), so a
    resumed run sees the same batches.

    Args:
        step: 0-based step.
        batch_size: items per batch.
        groups: item indices of each data set.
        weights: one weight per group.
        seed: run seed.
    """
    probabilities = torch.tensor(
        [float(w) if len(g) else 0.0 for g, w in zip(groups, weights, strict=True)],
        dtype=torch.float64,
    )
    if not probabilities.sum() > 0:
        raise ValueError('data.weights give no weight to any data set with items')
    generator = torch.Generator().manual_seed(_mixed_seed(seed, _MIXING_STREAM, step))
    chosen = torch.multinomial(probabilities, batch_size, replacement=True, generator=generator)
    picks = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    keys = []
    for group, pick in zip(chosen.tolist(), picks.tolist(), strict=True):
        items = groups[group]
        keys.append((step, int(items[min(int(pick * len(items)), len(items) - 1)])))
    return keys


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (epoch, item) keys for steps [start_step, stop_step).

    Without groups, epochs over all items (step_items); with groups and weights, batches mixed
    by data set (weighted_step_items).
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        start_step: int,
        stop_step: int,
        groups: Sequence[Sequence[int]] = (),
        weights: Sequence[float] = (),
    ) -> None:
        if num_items < 1:
            raise ValueError('no training items')
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.stop_step = stop_step
        self.groups = [list(g) for g in groups]
        self.weights = list(weights)

    def __len__(self) -> int:
        return max(self.stop_step - self.start_step, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.stop_step):
            if self.weights:
                yield weighted_step_items(
                    step, self.batch_size, self.groups, self.weights, self.seed
                )
            else:
                yield step_items(step, self.batch_size, self.num_items, self.seed)


class KeyedCropDataset(CropDataset):
    """CropDataset indexed by (epoch, item), with the augmentation drawn from (seed, epoch, item).

    CropDataset draws augmentation from its own generator in the training process and from
    torch's RNG in DataLoader workers; both are seeded here from the key before the item is
    made, so an item's pixels never depend on what was loaded before it (or in which worker).
    """

    def __getitem__(self, key: Any) -> Any:
        epoch, item = key
        seed = _mixed_seed(self.config.seed, _AUGMENTATION_STREAM, epoch, item)
        self._rng.manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return super().__getitem__(item)


def load_samples(indexes: Sequence[str], image_roots: Sequence[str] = ()) -> list[Sample]:
    """Samples of every index file, concatenated (``load_sample_groups`` keeps them apart)."""
    return [sample for group in load_sample_groups(indexes, image_roots) for sample in group]


def load_sample_groups(
    indexes: Sequence[str], image_roots: Sequence[str] = ()
) -> list[list[Sample]]:
    """The samples of each index file.

    Raises:
        FileNotFoundError: an index is missing.
    """
    groups: list[list[Sample]] = []
    roots: Sequence[str] = image_roots or [''] * len(indexes)
    for index, root in zip(indexes, roots, strict=True):
        path = Path(index)
        if not path.is_file():
            raise FileNotFoundError(
                f'data index {path} not found; convert the data set first (the converters '
                'in hmr_ros.datasets write these .npz indexes)'
            )
        loaded = load_index(path, root or None)
        _LOG.info('data: %d samples from %s', len(loaded), path)
        groups.append(loaded)
    return groups


# --- Tasks: what is trained and how its loss is computed ---------------------------------------


class TrainingTask(Protocol):
    """One adapter stage: its frozen model, its adapter and its loss.

    ``final_file_name`` and ``save_final`` say what ``fit`` writes at the end: the adapter file
    (AdapterFileOutput, the default), or for the weight-only ablations a whole model file
    (training/hand_variants.py, training/body_variants.py).
    """

    @property
    def adapter_name(self) -> str:
        """'hand_adapter' or 'body_adapter'."""
        ...

    @property
    def crop_mode(self) -> CropMode:
        """Which crops the loader makes."""
        ...

    @property
    def base_variant(self) -> str:
        """Variant of the loaded base model."""
        ...

    @property
    def adapter(self) -> nn.Module:
        """The trained module (the only parameters in the optimiser)."""
        ...

    @property
    def model(self) -> nn.Module:
        """Frozen base model wrapped with the adapter."""
        ...

    @property
    def crop_hw(self) -> tuple[int, int]:
        """Crop (height, width) the base model takes."""
        ...

    def loss(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> Any:
        """Loss terms (a NamedTuple with ``total``) of one batch on the model's device."""
        ...

    @property
    def final_file_name(self) -> str:
        """Name of the file ``fit`` writes in the run folder at the end."""
        ...

    def save_final(self, path: Path, *, source_file: str = '') -> Path:
        """Write the trained result to ``path`` (``source_file``: the checkpoint it is)."""
        ...


class AdapterFileOutput:
    """The final file of an adapter training: the adapter file the dual path loads.

    ``<adapter>_<base variant>.safetensors`` (checkpoints.adapter_files); tasks whose result
    is another kind of file (the weight-only ablations: a hand-expert model file) override
    both members.
    """

    adapter_name: str
    base_variant: str
    adapter: nn.Module

    @property
    def final_file_name(self) -> str:
        """``<adapter>_<base variant>.safetensors``."""
        return f'{self.adapter_name}_{self.base_variant}.safetensors'

    def save_final(self, path: Path, *, source_file: str = '') -> Path:
        """Write the adapter file (``save_adapter_file``)."""
        return save_adapter_file(path, self.adapter, self.base_variant, source_file=source_file)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _no_autocast(device: torch.device) -> AbstractContextManager[Any]:
    return torch.autocast(device.type, enabled=False)


def _normalised(points_px: Tensor, crop_hw: tuple[int, int]) -> Tensor:
    """Crop pixels (..., 2) -> pixel / crop size - 0.5 (HaMeR's keypoint normalisation)."""
    size = points_px.new_tensor((crop_hw[1], crop_hw[0]))
    return points_px / size - 0.5


def _normalised_keypoints(keypoints: Tensor, crop_hw: tuple[int, int]) -> Tensor:
    """(..., 3) crop-pixel keypoints with confidence -> normalised coordinates, same confidence."""
    return torch.cat((_normalised(keypoints[..., :2], crop_hw), keypoints[..., 2:]), dim=-1)


class HandAdapterTask(AdapterFileOutput):
    """Hand adapter on the frozen hand expert (paper 3.5.1); see the module docstring.

    Args:
        hand_expert: the base model (frozen here, kept in eval mode).
        base_variant: its registered variant (written into the adapter files).
        mano: right-hand MANO layer on the same device.
        adapter_config: hand adapter options.
        weights: lambda of eq. 5.
    """

    adapter_name = HandAdapter.adapter_name
    crop_mode: CropMode = 'hand'

    def __init__(
        self,
        hand_expert: HandExpert,
        base_variant: str,
        mano: MANOHandModel,
        adapter_config: HandAdapterConfig,
        weights: HandLossWeights,
    ) -> None:
        self.base_variant = base_variant
        self.adapter = HandAdapter(hand_expert.mano_head, adapter_config)
        self.model = GuidedHandExpert(hand_expert, self.adapter)
        self.mano = mano
        self.weights = weights
        self.crop_size_px = hand_expert.config.crop_size_px
        self.device = hand_expert.mano_head.decpose.weight.device

    @classmethod
    def from_config(cls, config: HandAdapterTrainConfig, device: torch.device) -> HandAdapterTask:
        """Load the hand expert file and the MANO layer of a training configuration."""
        hand_expert, info = load_hand_expert(config.hand_expert, device)
        mano = MANOHandModel.from_folder(config.body_model_dir, side='right').to(device)
        return cls(hand_expert, info.variant, mano, config.adapter, config.loss)

    @property
    def crop_hw(self) -> tuple[int, int]:
        """Crop (height, width) the hand expert takes."""
        return self.crop_size_px, self.crop_size_px

    def predict(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> HandPrediction:
        """Guided hand expert + MANO on a batch of (right-looking) hand crops."""
        body_aa = torch.cat(
            (batch['smplx_global_orient_aa'][:, None], batch['smplx_body_pose_aa']), dim=1
        )
        # Items are right hands (left hands come flipped with their whole sample), so the
        # guidance is that sample's right arm: for a left hand, its mirrored left arm (or the
        # adapter's other input: training/hand_variants.py).
        guidance = self.model.guidance_from_axis_angle(body_aa, 'right')
        crops = normalize_hand_crops(batch['image'] * 255.0)
        with _autocast(self.device, dtype):
            output = self.model(crops, guidance, batch['has_smplx'])
        with _no_autocast(self.device):
            output = output._replace(
                **{k: v.float() for k, v in output._asdict().items() if v.is_floating_point()}
            )
            mesh = self.model.hand_expert.mano_outputs(output, self.mano)
        return HandPrediction(
            keypoints_2d=_normalised(mesh.keypoints_crop_px, self.crop_hw),
            keypoints_3d_m=mesh.joints,
            vertices_m=mesh.vertices,
            pose_rotmat=torch.cat((output.global_orient, output.hand_pose), dim=1),
            betas=output.betas,
        )

    @torch.no_grad()
    def target(self, batch: Mapping[str, Tensor]) -> HandTarget:
        """Ground truth of the batch in the right-hand convention.

        Pose: MANO parameters where present, else from SMPL-X (fingers, and the wrist's global
        rotation by forward kinematics as the hand's global orientation: SMPL-X's hands are MANO
        hands). Mesh and 3D joints: the MANO mesh of the MANO parameters, else the stored mesh
        and 3D keypoints. Shape: MANO betas only (SMPL-X betas are another shape space).
        """
        has_mano = batch['has_mano']
        has_smplx = batch['has_smplx']
        mano_pose = axis_angle_to_rotmat(
            torch.cat((batch['mano_global_orient_aa'][:, None], batch['mano_hand_pose_aa']), 1)
        )
        body_aa = torch.cat(
            (batch['smplx_global_orient_aa'][:, None], batch['smplx_body_pose_aa']), dim=1
        )
        wrist = global_rotations(axis_angle_to_rotmat(body_aa), BODY_PARENTS)[
            :, SMPLX_JOINT_INDEX['right_wrist']
        ]
        smplx_pose = torch.cat(
            (wrist[:, None], axis_angle_to_rotmat(batch['smplx_right_hand_pose_aa'])), dim=1
        )
        pose = torch.where(has_mano[:, None, None, None], mano_pose, smplx_pose)
        mano_mesh = self.mano(mano_pose[:, :1], mano_pose[:, 1:], batch['mano_betas'])
        vertices = torch.where(has_mano[:, None, None], mano_mesh.vertices, batch['vertices'])
        stored_3d = batch['hand_keypoints_3d']
        mano_3d = torch.cat((mano_mesh.joints, torch.ones_like(mano_mesh.joints[..., :1])), -1)
        use_mano_3d = has_mano & ~(stored_3d[..., 3] > 0).any(dim=-1)
        return HandTarget(
            keypoints_2d=_normalised_keypoints(batch['hand_keypoints_2d'], self.crop_hw),
            keypoints_3d_m=torch.where(use_mano_3d[:, None, None], mano_3d, stored_3d),
            vertices_m=vertices,
            has_vertices=has_mano | batch['has_vertices'],
            pose_rotmat=pose,
            pose_valid=(has_mano | has_smplx)[:, None].expand(-1, pose.shape[1]),
            betas=batch['mano_betas'],
            has_betas=has_mano,
        )

    def loss(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> HandLossTerms:
        """Eq. 5 of one batch."""
        return hand_adapter_loss(self.predict(batch, dtype), self.target(batch), self.weights)


def _name_index(names: Sequence[str]) -> Tensor:
    layout = {name: i for i, name in enumerate(KEYPOINT_LAYOUTS[SMPLX_LAYOUT])}
    return torch.tensor([layout[name] for name in names])


_BODY_POSITION_INDEX = _name_index(BODY_POSITION_JOINT_NAMES)
"""Rows of the whole-body model's 25 position joints in the 'smplx' layout."""
_HAND_LAYOUT_INDEX = torch.stack([_name_index(smplx_hand_to_openpose(side)) for side in SIDES])
"""(2, 21): rows of each hand's OpenPose-ordered keypoints in the 'smplx' layout."""
_MCP_OPENPOSE_INDEX = torch.tensor([OPENPOSE_HAND_JOINT_NAMES.index(n) for n in MCP_NAMES])


def _with_hand_keypoints(body: Tensor, hands: Tensor) -> Tensor:
    """'smplx'-layout keypoints (B, 76, C) completed with hand keypoints (B, 2, 21, C).

    A hand keypoint fills its row where the body keypoints lack it (confidence 0).
    """
    rows = _HAND_LAYOUT_INDEX.to(body.device)
    current = body[:, rows]  # (B, 2, 21, C)
    filled = torch.where(current[..., -1:] > 0, current, hands)
    out = body.clone()
    out[:, rows.reshape(-1)] = filled.flatten(1, 2)
    return out


def body_mcp_points_hm(
    refined: RefinedWholeBody, stages: WholeBodyStages, hand_keypoints_2d: Tensor
) -> tuple[Tensor, Tensor]:
    """Sampling points of the body adapter in training (paper 3.5.2).

    Ground-truth MCP keypoints (index1, middle1, ring1, pinky1) mapped from crop pixels into the
    HandRoI feature frame through the predicted hand boxes (left hand mirrored); a hand missing
    any of the four keypoints uses the predicted MCP joints instead.

    Args:
        refined: the frozen whole-body model with its body adapter.
        stages: ``refined.whole_body.run_stages(crops)``.
        hand_keypoints_2d: (B, 2, 21, 3) crop pixels and confidence, OpenPose order, sides
            (left, right).

    Returns:
        points (B, 2, 4, 2) feature pixels and used_gt (B, 2) bool.
    """
    mcp = hand_keypoints_2d[:, :, _MCP_OPENPOSE_INDEX.to(hand_keypoints_2d.device)]
    used_gt = (mcp[..., 2] > 0).all(dim=-1)
    gt_points = hand_feature_points_from_crop_px(
        mcp[..., :2].float(), refined.hand_boxes_crop_px(stages)
    )
    predicted = mcp_points_hm(stages.hands.joints_hm).float()
    gt_points = torch.where(used_gt[..., None, None], gt_points, predicted)
    return gt_points, used_gt


class BodyAdapterTask(AdapterFileOutput):
    """Body adapter on the frozen whole-body model (paper 3.5.2); see the module docstring.

    Args:
        whole_body: the base model (frozen here, kept in eval mode).
        base_variant: its registered variant (written into the adapter files).
        smplx: SMPL-X layer on the same device.
        adapter_config: body adapter sizes; ``in_channels`` is set to the whole-body width.
        weights: lambda of eqs. 7 and 8.
    """

    adapter_name = BodyAdapter.adapter_name
    crop_mode: CropMode = 'body'

    def __init__(
        self,
        whole_body: WholeBodyModel,
        base_variant: str,
        smplx: SMPLXBodyModel,
        adapter_config: BodyAdapterConfig,
        weights: BodyLossWeights,
    ) -> None:
        self.base_variant = base_variant
        self.device = next(whole_body.parameters()).device
        width = whole_body.config.encoder.embed_dim
        if adapter_config.in_channels != width:
            _LOG.info('body adapter in_channels -> %d (the whole-body width)', width)
        adapter_config = dataclasses.replace(adapter_config, in_channels=width)
        self.adapter = BodyAdapter(adapter_config).to(self.device)
        self.model = RefinedWholeBody(whole_body, self.adapter)
        self.smplx = smplx
        self.weights = weights
        self.crop_hw = whole_body.config.preprocessing.crop_hw_px
        self.intrinsics = virtual_crop_intrinsics(self.crop_hw).to(self.device)

    @classmethod
    def from_config(cls, config: BodyAdapterTrainConfig, device: torch.device) -> BodyAdapterTask:
        """Load the whole-body file and the SMPL-X layer of a training configuration."""
        whole_body, info = load_whole_body(config.whole_body, device)
        smplx = SMPLXBodyModel.from_folder(config.body_model_dir).to(device)
        return cls(whole_body, info.variant, smplx, config.adapter, config.loss)

    def _smplx_joints(
        self,
        rotmats: Tensor,
        hands: Tensor,
        jaw: Tensor,
        betas: Tensor,
        expression: Tensor,
        transl: Tensor,
    ) -> Tensor:
        """First 76 SMPL-X joints ('smplx' layout).

        Args:
            rotmats: (B, 22, 3, 3) root and body rotations.
            hands: (B, 2, 15, 3, 3) absolute finger rotations (left, right).
            jaw: (B, 1, 3, 3).
            betas: (B, 10).
            expression: (B, 10).
            transl: (B, 3).

        Returns:
            (B, 76, 3) metres.
        """
        with _no_autocast(self.device):
            output = self.smplx(
                global_orient=rotmats[:, :1],
                body_pose=rotmats[:, 1:],
                left_hand_pose=hands[:, SIDES.index('left')],
                right_hand_pose=hands[:, SIDES.index('right')],
                jaw_pose=jaw,
                betas=betas,
                expression=expression,
                transl=transl,
            )
        return output.joints[:, :NUM_LAYOUT_KEYPOINTS]

    def predict(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> BodyPrediction:
        """Refined whole-body prediction of a batch of person crops."""
        whole_body = self.model.whole_body
        with torch.no_grad(), _autocast(self.device, dtype):
            stages = whole_body.run_stages(batch['image'])
        points, _ = body_mcp_points_hm(self.model, stages, batch['hand_keypoints_2d'])
        with _autocast(self.device, dtype):
            delta = self.adapter(stages.hands.features, points).delta_body_pose_6d
        refined_6d = apply_body_pose_offset(stages.body_pose_6d.float(), delta.float())
        return self.prediction_from(stages, refined_6d)

    def prediction_from(self, stages: WholeBodyStages, body_pose_6d: Tensor) -> BodyPrediction:
        """Keypoints, pose and shape of SMPL-X body rotations on top of whole-body stages.

        Args:
            stages: the frozen whole-body model's stages (betas and camera are used as given).
            body_pose_6d: (B, 22, 6) interleaved root + body rotations to supervise.
        """
        whole_body = self.model.whole_body
        refined_6d = body_pose_6d
        with _no_autocast(self.device):
            output = whole_body.assemble(stages, refined_6d)
            rotmats = rot6d_to_rotmat(refined_6d, 'interleaved')
            batch_size = rotmats.shape[0]
            hands = torch.stack(
                [
                    self.smplx.add_hands_mean(getattr(output, f'{side}_hand_pose'), side)
                    for side in SIDES
                ],
                dim=1,
            ).reshape(batch_size, len(SIDES), NUM_HAND_POSE_JOINTS, 3)
            joints = self._smplx_joints(
                rotmats,
                axis_angle_to_rotmat(hands),
                axis_angle_to_rotmat(output.jaw_pose)[:, None],
                output.betas,
                output.expression,
                output.cam_translation,
            )
            projected = project_points(joints, self.intrinsics.expand(batch_size, 3, 3))
        return BodyPrediction(
            keypoints_2d_img=_normalised(output.body_joints_crop_px, self.crop_hw),
            keypoints_2d_proj=_normalised(projected, self.crop_hw),
            keypoints_3d_m=joints,
            pose_rotmat=rotmats,
            betas=output.betas,
        )

    @torch.no_grad()
    def target(self, batch: Mapping[str, Tensor]) -> BodyTarget:
        """Ground truth of the batch.

        2D keypoints of the 'smplx' layout completed with the hand keypoints; 3D joints of the
        SMPL-X parameters where present, else the stored 3D keypoints.
        """
        has_smplx = batch['has_smplx']
        keypoints_2d = _normalised_keypoints(
            _with_hand_keypoints(batch['body_keypoints_2d'], batch['hand_keypoints_2d']),
            self.crop_hw,
        )
        stored_3d = _with_hand_keypoints(batch['body_keypoints_3d'], batch['hand_keypoints_3d'])
        body_aa = torch.cat(
            (batch['smplx_global_orient_aa'][:, None], batch['smplx_body_pose_aa']), dim=1
        )
        rotmats = axis_angle_to_rotmat(body_aa)
        hands = axis_angle_to_rotmat(
            torch.stack(
                [batch['smplx_left_hand_pose_aa'], batch['smplx_right_hand_pose_aa']], dim=1
            )
        )
        joints = self._smplx_joints(
            rotmats,
            hands,
            axis_angle_to_rotmat(batch['smplx_jaw_pose_aa'])[:, None],
            batch['smplx_betas'],
            batch['smplx_expression'],
            batch['smplx_transl_m'],
        )
        smplx_3d = torch.cat((joints, torch.ones_like(joints[..., :1])), dim=-1)
        return BodyTarget(
            keypoints_2d_img=keypoints_2d[:, _BODY_POSITION_INDEX.to(keypoints_2d.device)],
            keypoints_2d_proj=keypoints_2d,
            keypoints_3d_m=torch.where(has_smplx[:, None, None], smplx_3d, stored_3d),
            pose_rotmat=rotmats,
            pose_valid=has_smplx[:, None].expand(-1, rotmats.shape[1]),
            betas=batch['smplx_betas'],
            has_betas=has_smplx,
        )

    def loss(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> BodyLossTerms:
        """Eqs. 7 and 8 of one batch."""
        return body_adapter_loss(self.predict(batch, dtype), self.target(batch), self.weights)


# --- Checkpoints --------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    """Every RNG state as plain tensors and numbers (loadable with weights_only=True)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        'numpy': {
            'name': str(name),
            'keys': torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            'position': int(position),
            'has_gauss': int(has_gauss),
            'cached_gaussian': float(cached),
        },
        'python': {'version': version, 'state': list(python_state), 'gauss_next': gauss_next},
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    numpy_state = state['numpy']
    np.random.set_state(
        (
            numpy_state['name'],
            numpy_state['keys'].numpy().astype(np.uint32),
            numpy_state['position'],
            numpy_state['has_gauss'],
            numpy_state['cached_gaussian'],
        )
    )
    python_state = state['python']
    random.setstate(
        (python_state['version'], tuple(python_state['state']), python_state['gauss_next'])
    )


def _atomic_torch_save(obj: Any, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(handle)
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS_DIR / f'step_{step:08d}'


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder to resume from: the folder itself, or a run's newest checkpoint.

    Raises:
        FileNotFoundError: no checkpoint there.
    """
    path = Path(path)
    if (path / STATE_FILE_NAME).is_file():
        return path
    candidates = sorted((path / CHECKPOINTS_DIR).glob('step_*'))
    candidates = [c for c in candidates if (c / STATE_FILE_NAME).is_file()]
    if not candidates:
        raise FileNotFoundError(
            f'no checkpoint at {path}: expected a checkpoints/step_<N> folder holding '
            f'{STATE_FILE_NAME} and {ADAPTER_FILE_NAME}, or a run folder containing them'
        )
    return candidates[-1]


# --- Logging ------------------------------------------------------------------------------------


class LossLog:
    """Loss curves: CSV always, TensorBoard event files when TensorBoard is installed.

    Args:
        run_dir: the run folder.
        columns: CSV columns after 'step'.
        resume_step: on resume, rows after this step (written past the checkpoint by the
            interrupted run) are dropped so the file equals an uninterrupted run's.
        tensorboard: try to write TensorBoard files.
    """

    def __init__(
        self, run_dir: Path, columns: Sequence[str], resume_step: int, tensorboard: bool
    ) -> None:
        self.path = run_dir / LOSSES_CSV
        self.columns = ['step', *columns]
        kept: list[dict[str, str]] = []
        if resume_step > 0 and self.path.is_file():
            with self.path.open(newline='') as file:
                kept = [row for row in csv.DictReader(file) if int(row['step']) <= resume_step]
        with self.path.open('w', newline='') as file:
            writer = csv.DictWriter(file, self.columns)
            writer.writeheader()
            writer.writerows(kept)
        self.writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                _LOG.info(
                    'TensorBoard not installed (pip install tensorboard); losses go to %s only',
                    self.path,
                )
            else:
                self.writer = SummaryWriter(
                    str(run_dir / TENSORBOARD_DIR), purge_step=resume_step + 1
                )

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """Append one row (and TensorBoard scalars)."""
        with self.path.open('a', newline='') as file:
            csv.DictWriter(file, self.columns).writerow({'step': step, **values})
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f'train/{name}', value, step)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            self.writer.close()


# --- The loop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What a training call did.

    Attributes:
        run_dir: the output folder.
        start_step: steps already done when the call started (0, or the resumed step).
        steps: the final step.
        records: one dict per step run in this call: 'step', 'lr', 'grad_norm', 'total' and
            every loss term (floats; the loss values are the float32 losses exactly).
        adapter_file: the final file (TrainingTask.save_final): the adapter file for the dual
            path, or for the weight-only ablations the hand-expert model file.
        base_variant: the base model variant the adapter belongs to.
    """

    run_dir: Path
    start_step: int
    steps: int
    records: tuple[dict[str, float], ...]
    adapter_file: Path
    base_variant: str


def _lr_factor(
    config_steps: int, warmup: int, schedule: str, min_ratio: float
) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == 'constant':
            return 1.0
        progress = min((step - warmup) / max(config_steps - warmup, 1), 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _adapter_parameters(adapter: nn.Module) -> list[nn.Parameter]:
    return [p for p in adapter.parameters() if p.requires_grad]


class AdapterTrainer:
    """Trains one adapter from a HandAdapterTrainConfig or BodyAdapterTrainConfig.

    Building it loads the base model and builds the adapter (seeded with run.seed); ``fit``
    trains, checkpoints and writes the final adapter file.

    Args:
        config: the training configuration.
        task_factory: builds the task (tests may pass their own); None picks by config type.
    """

    def __init__(
        self,
        config: TrainConfig,
        task_factory: Callable[[TrainConfig, torch.device], TrainingTask] | None = None,
    ) -> None:
        # The DeforHMR decoder config has no ablation variants; the adapters' may name one.
        variant = getattr(config, 'variant', 'hmr_adapter')
        if task_factory is None and variant != 'hmr_adapter':
            # The paper's ablations (Tables 3-6): each variant's task builds its own model.
            from hmr_ros.training.body_variants import BODY_VARIANT_TASKS  # (cycle)
            from hmr_ros.training.hand_variants import HAND_VARIANT_TASKS  # (cycle)

            variant_tasks = {**HAND_VARIANT_TASKS, **BODY_VARIANT_TASKS}
            if variant not in variant_tasks:
                raise ValueError(
                    f'unknown variant {variant!r}; known: hmr_adapter, {", ".join(variant_tasks)}'
                )
            task_factory = variant_tasks[variant]  # type: ignore[assignment]
        self.config = config
        self.device = resolve_device(config.run.device, 'run.device')
        self.dtype = autocast_dtype(config.run.precision, self.device)
        if config.run.deterministic:
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(config.run.seed)
        if task_factory is None and isinstance(config, DeformableDecoderTrainConfig):
            from hmr_ros.training.deformable_task import DeformableDecoderTask  # (cycle)

            task_factory = DeformableDecoderTask.from_config  # type: ignore[assignment]
        if task_factory is None:
            self.task: TrainingTask = (
                HandAdapterTask.from_config(config, self.device)
                if isinstance(config, HandAdapterTrainConfig)
                else BodyAdapterTask.from_config(config, self.device)  # type: ignore[arg-type]
            )
        else:
            self.task = task_factory(config, self.device)
        self.run_dir = Path(config.output.dir)
        params = _adapter_parameters(self.task.adapter)
        frozen = [p for p in self.task.model.parameters() if p.requires_grad]
        if {id(p) for p in frozen} != {id(p) for p in params}:
            raise RuntimeError('only adapter parameters may require gradients in adapter training')
        opt = config.optimizer
        self.optimizer = torch.optim.AdamW(
            params, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            _lr_factor(config.run.steps, opt.warmup_steps, opt.schedule, opt.min_lr_ratio),
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.step = 0
        self.num_items = 0
        self.item_groups: list[list[int]] = []
        _LOG.info(
            '%s on %s (%s): %d trainable parameters; base %s frozen',
            self.task.adapter_name,
            self.device,
            'fp32' if self.dtype is None else str(self.dtype).removeprefix('torch.'),
            sum(p.numel() for p in params),
            self.task.base_variant,
        )

    # Checkpoints -------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write the current state to checkpoints/step_<N>/ and prune old checkpoints."""
        folder = _checkpoint_dir(self.run_dir, self.step)
        folder.mkdir(parents=True, exist_ok=True)
        save_adapter_file(
            folder / ADAPTER_FILE_NAME,
            self.task.adapter,
            self.task.base_variant,
            source_file=f'step_{self.step:08d}',
        )
        state = {
            'format_version': CHECKPOINT_FORMAT_VERSION,
            'adapter': self.task.adapter_name,
            'base_variant': self.task.base_variant,
            'step': self.step,
            'seed': self.config.run.seed,
            'batch_size': self.config.run.batch_size,
            'num_items': self.num_items,
            'data_weights': [float(w) for w in self.config.data.weights],
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'scaler': self.scaler.state_dict(),
            'rng': _rng_state(),
        }
        _atomic_torch_save(state, folder / STATE_FILE_NAME)
        keep = self.config.output.keep_checkpoints
        if keep:
            folders = sorted((self.run_dir / CHECKPOINTS_DIR).glob('step_*'))
            for old in folders[:-keep]:
                shutil.rmtree(old)
        return folder

    def load_checkpoint(self, path: str | Path) -> int:
        """Restore adapter, optimiser, scheduler, scaler, RNGs and step from a checkpoint.

        Args:
            path: a checkpoint folder or a run folder (its newest checkpoint).

        Returns:
            The restored step.

        Raises:
            ValueError: the checkpoint belongs to another adapter, base model, seed, batch size
                or data set size (its data order would differ).
        """
        folder = find_checkpoint(path)
        state = torch.load(folder / STATE_FILE_NAME, map_location='cpu', weights_only=True)
        if state.get('format_version') != CHECKPOINT_FORMAT_VERSION:
            raise ValueError(
                f'{folder}: unsupported checkpoint format {state.get("format_version")!r}'
            )
        expected = {
            'adapter': self.task.adapter_name,
            'base_variant': self.task.base_variant,
            'seed': self.config.run.seed,
            'batch_size': self.config.run.batch_size,
            'num_items': self.num_items,
            'data_weights': [float(w) for w in self.config.data.weights],
        }
        differences = [
            f'{key}: checkpoint {state.get(key)!r}, run {value!r}'
            for key, value in expected.items()
            if state.get(key) != value
        ]
        if differences:
            raise ValueError(
                f'cannot resume from {folder}; it was written by a different run '
                f'({"; ".join(differences)}). Resume with the configuration and data of that run.'
            )
        load_adapter_file(
            folder / ADAPTER_FILE_NAME, self.task.adapter, self.task.base_variant, self.device
        )
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        self.scaler.load_state_dict(state['scaler'])
        _set_rng_state(state['rng'])
        self.step = int(state['step'])
        _LOG.info('resumed from %s at step %d', folder, self.step)
        return self.step

    # Training ----------------------------------------------------------------------------------

    def _dataset(self) -> KeyedCropDataset:
        data = self.config.data
        groups = load_sample_groups(data.indexes, data.image_roots)
        samples = [sample for group in groups for sample in group]
        starts = np.cumsum([0] + [len(group) for group in groups])
        loader_config = LoaderConfig(
            mode=self.task.crop_mode,
            crop_hw=self.task.crop_hw,
            body_keypoint_layout=SMPLX_LAYOUT,
            augmentation=data.augmentation,
            batch_size=self.config.run.batch_size,
            num_workers=data.num_workers,
            seed=self.config.run.seed,
        )
        dataset = KeyedCropDataset(samples, loader_config)
        # Items of each index file, for data-set mixing (data.weights).
        owner = np.searchsorted(starts, [index for index, _ in dataset.items], side='right') - 1
        self.item_groups = [np.flatnonzero(owner == g).tolist() for g in range(len(groups))]
        for path, items in zip(data.indexes, self.item_groups, strict=True):
            _LOG.info('%s: %d %s crops', path, len(items), self.task.crop_mode)
        return dataset

    def _batches(self, dataset: KeyedCropDataset, start: int) -> Iterator[dict[str, Tensor]]:
        sampler = StepBatchSampler(
            len(dataset),
            self.config.run.batch_size,
            self.config.run.seed,
            start,
            self.config.run.steps,
            groups=self.item_groups,
            weights=self.config.data.weights,
        )
        workers = self.config.data.num_workers
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == 'cuda',
            persistent_workers=False,
        )
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """One optimiser step on a batch already on the device; returns its log record."""
        terms = self.task.loss(batch, self.dtype)
        total = terms.total
        if not torch.isfinite(total) and not self.scaler.is_enabled():
            raise FloatingPointError(
                f'loss is {total.item()} at step {self.step + 1}; lower optimizer.lr or check '
                'the data (losses.csv has the terms so far)'
            )
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for group in self.optimizer.param_groups for p in group['params']]
        clip = self.config.optimizer.grad_clip_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else math.inf)
        lr = self.optimizer.param_groups[0]['lr']
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        record = {'lr': float(lr), 'grad_norm': float(grad_norm)}
        record.update({name: float(value.detach()) for name, value in terms._asdict().items()})
        return record

    def fit(self, resume: str | Path | None = None) -> TrainResult:
        """Train to run.steps, checkpointing and logging on the way.

        Args:
            resume: checkpoint folder or run folder to continue from; None starts fresh (the
                output folder must not hold checkpoints yet).

        Returns:
            TrainResult.

        Raises:
            FileExistsError: a fresh run in a folder that already has checkpoints.
        """
        config = self.config
        dataset = self._dataset()
        self.num_items = len(dataset)
        if resume is not None:
            self.load_checkpoint(resume)
        elif any((self.run_dir / CHECKPOINTS_DIR).glob('step_*')):
            raise FileExistsError(
                f'{self.run_dir} already holds checkpoints; pass --resume {self.run_dir} to '
                'continue that run, or choose another output.dir'
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / CONFIG_FILE_NAME).write_text(
            yaml.safe_dump(config_to_dict(config), sort_keys=False)
        )
        start = self.step
        _LOG.info(
            '%s: %d items, steps %d -> %d, batch %d',
            self.task.adapter_name,
            len(dataset),
            start,
            config.run.steps,
            config.run.batch_size,
        )
        log: LossLog | None = None
        records: list[dict[str, float]] = []
        show_bar = config.output.progress_bar and sys.stderr.isatty()
        bar = tqdm(total=config.run.steps, initial=start, disable=not show_bar, unit='step')
        started = time.monotonic()
        self.task.model.train()  # the adapter only: the wrappers keep the base model in eval
        try:
            for batch in self._batches(dataset, start):
                record = self.train_step(batch)
                records.append({'step': float(self.step), **record})
                if log is None:
                    log = LossLog(self.run_dir, list(record), start, config.output.tensorboard)
                if self.step % config.output.log_every == 0 or self.step == config.run.steps:
                    log.write(self.step, record)
                bar.update(1)
                bar.set_postfix(loss=f'{record["total"]:.4g}', refresh=False)
                every = config.output.checkpoint_every
                if (every and self.step % every == 0) or self.step == config.run.steps:
                    self.save_checkpoint()
        finally:
            bar.close()
            if log is not None:
                log.close()
        adapter_file = self.task.save_final(
            self.run_dir / self.task.final_file_name, source_file=f'step_{self.step:08d}'
        )
        elapsed = time.monotonic() - started
        _LOG.info(
            'trained %d steps in %.1f s; adapter file %s', self.step - start, elapsed, adapter_file
        )
        return TrainResult(
            run_dir=self.run_dir,
            start_step=start,
            steps=self.step,
            records=tuple(records),
            adapter_file=adapter_file,
            base_variant=self.task.base_variant,
        )


def train_adapter(config: TrainConfig, resume: str | Path | None = None) -> TrainResult:
    """Build the trainer for a hand or body adapter configuration and run it."""
    return AdapterTrainer(config).fit(resume)
