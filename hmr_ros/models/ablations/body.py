"""The whole-body ablation variants of the paper's Tables 4 and 6 (docs/evaluation.md).

Table 4 fine-tunes SMPLer-X-H32 on ARCTIC in six ways; Table 6 injects the hand joint features
into SMPLer-X in three ways (trained on Human3.6M, RICH and BEDLAM, evaluated on EHF). No.6 of
Table 4 and the last row of Table 6 are the body adapter itself (adapters/body_adapter.py); the
others are built here:

====================================  =========================================  ===========
variant                               what trains                                trainable
====================================  =========================================  ===========
smplerx_full_finetune (T4 No.1)       the whole model from the checkpoint        661,827,096
smplerx_from_scratch (T4 No.2)        the whole model from a fresh init          661,827,096
smplerx_head_finetune (T4 No.3)       every module after the ViT (neck + head)    30,875,416
smplerx_concatenation (T4 No.4) and   neck + head, and the body regressor's       31,419,256
body_concatenation (T6)               weights for the 8 concatenated MCP tokens
body_weighted_sum (T6)                neck + head and a PIXIE moderator           31,927,067
smplerx_adapter_task_tokens (T4 No.5) the body adapter fed the 25 body tokens     36,521,092
====================================  =========================================  ===========

(counts at SMPLer-X-H32 size; the paper prints 662M, 662M, 31M, 31M, -, 37M.)

Decisions where the paper is silent (each checked against the cited official code):

1. "Head" (No.3): SMPLer-X's own code splits the model after the ViT into a neck (``box_net``,
   ``hand_roi_net``) and a head (the position nets and the body, hand and face regressors);
   only the two together reach the paper's 31M (30.9M; the head alone is 4.9M, the body
   regressor 2.4M). ``HEAD_MODULE_NAMES`` lists them.
2. Train/eval mode: what trains is in train mode (BatchNorm uses batch statistics, stochastic
   depth of the ViT is active for the full and from-scratch runs, rate 0.55 for ViT-H as in
   SMPLer-X's config); frozen parts stay in eval mode, as in SMPLer-X's trainer
   (``model.train()`` over the trained modules).
3. From scratch (No.2): SMPLer-X's ``random_init`` path: the ViT keeps its construction init
   (ViTPose's: truncated normal std 0.02 for linears, positional embedding and task tokens,
   LayerNorm 1 / 0, PyTorch's default for the patch convolution), the modules after it get
   SMPLer-X's ``init_weights`` (Conv2d and ConvTranspose2d weights N(0, 0.001), Linear
   N(0, 0.01), biases 0, BatchNorm 1 / 0, running statistics reset). The checkpoint file only
   fixes the architecture.
4. Concatenation (No.4 and Table 6, one model; the paper: "follows [24]"): Hand4Whole's body
   rotation net reads 25 body joint features and 4 + 4 hand MCP joint features, each
   ``joint_feature_dim`` features plus the joint's 3 coordinates, through one linear layer per
   output. Here the MCP features are the hand regressor's own projection of the HandRoI maps
   (``hand_regressor.hand_conv``, fine-tuned with the head) sampled at the MCP points, plus
   (x, y, z) in hand-heatmap cells; the root and body linear layers are widened by
   8 x 515 inputs. The widening is held as two bias-free layers (``mcp_root_pose``,
   ``mcp_body_pose``) added to the original ones, which is the same linear map as one layer
   over the concatenated input; they start at zero, so the untrained model is SMPLer-X.
   With it the count is 31.4M, the paper's 31M. Table 6's "Concatenation" is the same model
   trained on Table 6's data: the paper describes both as the MCP joints' image features
   concatenated with the body regressor's input.
5. Weighted sum (Table 6; "following [8]", PIXIE's moderator ``TempSoftmaxFusion``): per hand,
   an MLP (2 x 512 -> 1024 -> ReLU -> 2) reads the body regressor's feature of the wrist joint
   and the hand feature (the mean of its four MCP joint features, the hand regressor's
   projection as in 4.), a learned temperature scales its two outputs before a softmax, and the
   fused feature ``w_body * f_wrist + w_hand * f_hand`` replaces the wrist's row of the body
   regressor's input. Both hands share one moderator (the left hand is mirrored to look like a
   right hand, as PIXIE's crops). PIXIE's default init (PyTorch's), temperature 1.
6. Task tokens (No.5): the body adapter unchanged (``BodyAdapter.decode``), its 1x1 projection
   applied to the 25 body-pose task tokens (B, 25, C) instead of the MCP features, and 25 token
   embeddings instead of 8.
7. MCP points: as for the body adapter (training: the ground-truth MCP keypoints mapped into
   the HandRoI frame, ``training.trainer.body_mcp_points_hm``; at run time the predicted MCP
   joints, ``body_adapter.mcp_points_hm``); the depth coordinate is always the predicted one.

Files: the weight-only variants (No.1-3) write an ordinary whole-body model file (card model
'smplerx'), which every loader of the project reads as ``whole_body:``. The others write an
adapter-style file (checkpoints/adapter_files.py) of the module that trained, the neck and
head included; ``load_body_variant`` loads it on top of the base whole-body model and returns
the dual path's body model (``BodyVariantWholeBody``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from hmr_ros.checkpoints.adapter_files import load_adapter_file, read_adapter_file
from hmr_ros.checkpoints.project_format import sha256_file
from hmr_ros.checkpoints.smplerx_layout import SMPLERX_MODULE_NAMES
from hmr_ros.geometry.constants import take
from hmr_ros.models.adapters.body_adapter import (
    NUM_JOINT_TOKENS,
    OFFSET_ROT6D_LAYOUT,
    BodyAdapter,
    BodyAdapterConfig,
    BodyAdapterOutput,
    RefinedWholeBody,
    apply_body_pose_offset,
    mcp_points_hm,
)
from hmr_ros.models.components.roi_align import sample_at_points
from hmr_ros.models.dual_path import DualPathModel
from hmr_ros.models.dual_path_builder import WeightsInfo
from hmr_ros.models.heads.smplx_head import (
    BODY_POSITION_JOINT_NAMES,
    HAND_MCP_JOINT_INDICES,
    HAND_SIDES,
    NUM_BODY_POSE_JOINTS,
    ROT6D_DIM,
)
from hmr_ros.models.whole_body import (
    BODY_POSE_TOKENS,
    WholeBodyConfig,
    WholeBodyModel,
    WholeBodyOutput,
    WholeBodyStages,
)

__all__ = [
    'BODY_ABLATION_VARIANTS',
    'HEAD_MODULE_NAMES',
    'MODULE_VARIANTS',
    'WEIGHT_ONLY_VARIANTS',
    'BodyVariantWholeBody',
    'FineTunedWholeBody',
    'MCPConcatenation',
    'MCPModerator',
    'TaskTokenBodyAdapter',
    'WholeBodyParts',
    'load_body_variant',
    'mcp_joint_features',
    'reset_to_scratch',
    'smplerx_init_weights',
    'use_body_variant',
]

ENCODER_MODULE_NAME = 'encoder'
HEAD_MODULE_NAMES: tuple[str, ...] = tuple(
    name for name in SMPLERX_MODULE_NAMES if name != ENCODER_MODULE_NAME
)
"""Every WholeBodyModel module after the ViT: SMPLer-X's neck (box_net, hand_roi_net) and head
(the rest); 30,875,416 parameters at H32 size, the paper's "31M" (module docstring, 1.)."""

WEIGHT_ONLY_VARIANTS: dict[str, tuple[str, ...]] = {
    'smplerx_full_finetune': (ENCODER_MODULE_NAME, *HEAD_MODULE_NAMES),
    'smplerx_from_scratch': (ENCODER_MODULE_NAME, *HEAD_MODULE_NAMES),
    'smplerx_head_finetune': HEAD_MODULE_NAMES,
}
"""Variants that only change the whole-body model's weights -> the modules they train."""

MODULE_VARIANTS: dict[str, str] = {
    'smplerx_concatenation': 'body_concatenation',
    'body_concatenation': 'body_concatenation',
    'body_weighted_sum': 'body_weighted_sum',
    'smplerx_adapter_task_tokens': 'body_adapter_task_tokens',
}
"""Variants that add modules -> the ``adapter_name`` of the module (and of its file)."""

BODY_ABLATION_VARIANTS: tuple[str, ...] = (*WEIGHT_ONLY_VARIANTS, *MODULE_VARIANTS)
"""Every whole-body ablation variant built here (training/config.py BodyVariant names)."""

MODERATOR_HIDDEN = 1024
"""Hidden width of the moderator MLP (PIXIE's TempSoftmaxFusion channels [2C, 1024, 2])."""

_WRIST_ROWS = tuple(BODY_POSITION_JOINT_NAMES.index(f'{side}_wrist') for side in HAND_SIDES)
"""Rows of the left and right wrist among the body regressor's 25 joint features."""


# --- Weight-only variants -----------------------------------------------------------------------


def smplerx_init_weights(module: nn.Module) -> None:
    """SMPLer-X's ``init_weights`` applied to every submodule (module docstring, 3.).

    Conv2d: weight N(0, 0.001), bias 0; ConvTranspose2d: weight N(0, 0.001) (no bias);
    BatchNorm2d: weight 1, bias 0, running statistics reset; Linear: weight N(0, 0.01), bias 0.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


def reset_to_scratch(whole_body: WholeBodyModel) -> WholeBodyModel:
    """Fresh weights for training from scratch (module docstring, 3.), in place.

    Draws from torch's global generator (seed it first: the trainer seeds run.seed).
    """
    with torch.no_grad():
        whole_body.encoder.reset_parameters()
        whole_body.encoder.patch_embed.proj.reset_parameters()
        for name in HEAD_MODULE_NAMES:
            smplerx_init_weights(getattr(whole_body, name))
    return whole_body


class WholeBodyParts(nn.Module):
    """The trained modules of a whole-body model, as one module (its state dict, its file).

    Holds the whole-body model's own submodules (shared, not copied) in ``parts``; the
    trainer's checkpoints are adapter files of it (checkpoints/adapter_files.py).

    Args:
        whole_body: the model being trained.
        names: its submodules that train (WEIGHT_ONLY_VARIANTS).
        variant: the ablation variant, written as the file's ``model``.
    """

    def __init__(self, whole_body: WholeBodyModel, names: Sequence[str], variant: str) -> None:
        super().__init__()
        self.adapter_name = variant
        self.names = tuple(names)
        self.parts = nn.ModuleDict({name: getattr(whole_body, name) for name in self.names})

    def file_config(self) -> dict[str, int | float | bool | str]:
        """The trained modules (the base variant fixes their shapes)."""
        return {'trained_modules': ','.join(self.names)}


class FineTunedWholeBody(nn.Module):
    """A whole-body model whose named modules train while the rest stays frozen in eval mode.

    Args:
        whole_body: the model (its parameters outside ``parts`` get ``requires_grad`` False).
        parts: the modules that train (module docstring, 2.: they follow train()).
    """

    def __init__(self, whole_body: WholeBodyModel, parts: WholeBodyParts) -> None:
        super().__init__()
        self.whole_body = whole_body.requires_grad_(False).eval()
        self.parts = parts.requires_grad_(True)

    def train(self, mode: bool = True) -> FineTunedWholeBody:
        """Train mode on the trained modules only."""
        super().train(mode)
        self.whole_body.eval()
        self.parts.train(mode)
        return self

    def forward(self, crops: Tensor) -> WholeBodyOutput:
        """The whole-body prediction (WholeBodyModel.forward)."""
        return self.whole_body(crops)


# --- Modules added to the whole-body model ------------------------------------------------------


def mcp_joint_features(
    whole_body: WholeBodyModel, stages: WholeBodyStages, points_hm: Tensor
) -> Tensor:
    """Hand4Whole-style MCP joint features: image features and coordinates of 8 joints.

    The HandRoI maps projected by the hand regressor's ``hand_conv`` (joint_feature_dim
    channels, as the hand regressor reads them), sampled at the points, with (x, y) of the
    points and the predicted depth z of each MCP joint appended (detached).

    Args:
        whole_body: the model whose ``hand_regressor`` projects the features.
        stages: its stages.
        points_hm: (B, 2, 4, 2) (x, y) MCP points in HandRoI feature pixels, sides (left,
            right), left mirrored (body_adapter.mcp_points_hm or the training points).

    Returns:
        (B, 8, joint_feature_dim + 3): left index1, middle1, ring1, pinky1, then the right's.
    """
    features = stages.hands.features
    batch, sides = features.shape[:2]
    projected = whole_body.hand_regressor.hand_conv(features.flatten(0, 1))
    sampled = sample_at_points(projected, points_hm.flatten(0, 1).to(projected.dtype))
    depth = take(stages.hands.joints_hm, HAND_MCP_JOINT_INDICES, -2)[..., 2:]
    coords = torch.cat((points_hm, depth.to(points_hm.dtype)), dim=-1).detach()
    coords = coords.flatten(0, 1).to(sampled.dtype)
    return torch.cat((sampled, coords), dim=-1).reshape(batch, sides * points_hm.shape[2], -1)


class _HeadVariant(nn.Module):
    """Common part of the variants that fine-tune the neck and head: they are held here."""

    adapter_name: ClassVar[str]

    def __init__(self, whole_body: WholeBodyModel) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({name: getattr(whole_body, name) for name in HEAD_MODULE_NAMES})
        self.joint_feature_dim = whole_body.config.heads.joint_feature_dim

    def _config(self) -> dict[str, int | float | bool | str]:
        return {
            'trained_modules': ','.join(HEAD_MODULE_NAMES),
            'joint_feature_dim': self.joint_feature_dim,
            'mcp_tokens': NUM_JOINT_TOKENS,
        }


class MCPConcatenation(_HeadVariant):
    """Table 4 No.4 / Table 6 "Concatenation" (module docstring, 4.).

    The MCP joint features are concatenated with the body regressor's input. Parameters: the
    neck and head (``heads.*``, shared with the whole-body model) and
    ``mcp_root_pose`` (6 x 8 * (jd + 3)), ``mcp_body_pose`` (126 x 8 * (jd + 3)), zero at init.
    """

    adapter_name: ClassVar[str] = 'body_concatenation'

    def __init__(self, whole_body: WholeBodyModel) -> None:
        super().__init__(whole_body)
        flat_dim = NUM_JOINT_TOKENS * (self.joint_feature_dim + 3)
        self.mcp_root_pose = nn.Linear(flat_dim, ROT6D_DIM, bias=False)
        self.mcp_body_pose = nn.Linear(flat_dim, NUM_BODY_POSE_JOINTS * ROT6D_DIM, bias=False)
        nn.init.zeros_(self.mcp_root_pose.weight)
        nn.init.zeros_(self.mcp_body_pose.weight)

    def file_config(self) -> dict[str, int | float | bool | str]:
        """Sizes that fix the state-dict shapes."""
        return {**self._config(), 'injection': 'concatenation'}

    def body_pose_6d(
        self, whole_body: WholeBodyModel, stages: WholeBodyStages, points_hm: Tensor
    ) -> Tensor:
        """(B, 22, 6) root + body 6D of the widened regressor.

        The original columns' result is ``stages.body_pose_6d`` (the fine-tuned regressor ran
        in ``run_stages``); the MCP columns add theirs.
        """
        flat = mcp_joint_features(whole_body, stages, points_hm).flatten(1)
        extra = torch.cat(
            (
                self.mcp_root_pose(flat).reshape(-1, 1, ROT6D_DIM),
                self.mcp_body_pose(flat).reshape(-1, NUM_BODY_POSE_JOINTS, ROT6D_DIM),
            ),
            dim=1,
        )
        return stages.body_pose_6d + extra.to(stages.body_pose_6d.dtype)


class MCPModerator(_HeadVariant):
    """Table 6 "Weighted sum" (module docstring, 5.).

    A PIXIE moderator fuses each hand's feature into its wrist's body feature. Parameters:
    the neck and head (``heads.*``), ``moderator`` (Linear(2 jd, 1024), ReLU,
    Linear(1024, 2)) and ``temperature`` (1,).
    """

    adapter_name: ClassVar[str] = 'body_weighted_sum'

    def __init__(self, whole_body: WholeBodyModel) -> None:
        super().__init__(whole_body)
        jd = self.joint_feature_dim
        self.moderator = nn.Sequential(
            nn.Linear(2 * jd, MODERATOR_HIDDEN), nn.ReLU(), nn.Linear(MODERATOR_HIDDEN, 2)
        )
        self.temperature = nn.Parameter(torch.ones(1))

    def file_config(self) -> dict[str, int | float | bool | str]:
        """Sizes that fix the state-dict shapes."""
        return {
            **self._config(),
            'injection': 'weighted_sum',
            'moderator_hidden': MODERATOR_HIDDEN,
        }

    def weights(self, body_feature: Tensor, hand_feature: Tensor) -> Tensor:
        """(N, 2) moderator weights (w_body, w_hand), summing to 1, of (N, jd) features."""
        logits = self.moderator(torch.cat((body_feature, hand_feature), dim=-1))
        return torch.softmax(logits * self.temperature, dim=-1)

    def body_pose_6d(
        self, whole_body: WholeBodyModel, stages: WholeBodyStages, points_hm: Tensor
    ) -> Tensor:
        """(B, 22, 6) root + body 6D with the fused wrist features."""
        regressor = whole_body.body_regressor
        joint_features = regressor.body_conv(stages.task_tokens[:, BODY_POSE_TOKENS])
        mcp = mcp_joint_features(whole_body, stages, points_hm)[..., : self.joint_feature_dim]
        hand = mcp.reshape(mcp.shape[0], len(HAND_SIDES), -1, mcp.shape[-1]).mean(dim=2)
        wrist = joint_features[:, list(_WRIST_ROWS)]  # (B, 2, jd), (left, right)
        w = self.weights(wrist.flatten(0, 1), hand.flatten(0, 1).to(wrist.dtype))
        w = w.reshape(*wrist.shape[:2], 2).to(wrist.dtype)
        fused = w[..., :1] * wrist + w[..., 1:] * hand.to(wrist.dtype)
        rows = torch.tensor(_WRIST_ROWS, device=joint_features.device)
        joint_features = joint_features.index_copy(1, rows, fused)
        return regressor.pose_from_joint_features(joint_features, stages.body_joints_hm)


class TaskTokenBodyAdapter(BodyAdapter):
    """Table 4 No.5: the body adapter fed the 25 body-pose task tokens (module docstring, 6.).

    The same module as BodyAdapter (its 1x1 projection, blocks and zero-initialised regressor),
    with 25 token embeddings; ``forward`` takes the tokens instead of hand maps and points.
    """

    adapter_name: ClassVar[str] = 'body_adapter_task_tokens'

    def __init__(self, config: BodyAdapterConfig | None = None) -> None:
        config = config or BodyAdapterConfig()
        super().__init__(config)
        if config.joint_embedding:
            self.joint_embedding = nn.Parameter(
                torch.empty(1, len(BODY_POSITION_JOINT_NAMES), config.feature_dim)
            )
            nn.init.trunc_normal_(self.joint_embedding, std=0.02)

    def file_config(self) -> dict[str, int | float | bool | str]:
        """Everything that fixes the state-dict shapes."""
        return {
            **asdict(self.config),
            'context': 'body_pose_task_tokens',
            'joint_tokens': len(BODY_POSITION_JOINT_NAMES),
            'offset_rot6d_layout': OFFSET_ROT6D_LAYOUT,
        }

    def forward(self, pose_tokens: Tensor) -> BodyAdapterOutput:  # type: ignore[override]
        """Body pose offset from (B, 25, C) body-pose task tokens."""
        if pose_tokens.dim() != 3 or pose_tokens.shape[-1] != self.config.in_channels:
            raise ValueError(
                f'pose_tokens must be (B, 25, {self.config.in_channels}) task tokens; got '
                f'{tuple(pose_tokens.shape)}'
            )
        projected = self.feature_proj(pose_tokens.transpose(1, 2)[..., None])  # (B, D, 25, 1)
        return self.decode(projected[..., 0].transpose(1, 2))

    def body_pose_6d(
        self, whole_body: WholeBodyModel, stages: WholeBodyStages, points_hm: Tensor
    ) -> Tensor:
        """(B, 22, 6) refined root + body 6D (the MCP points are not used)."""
        delta = self(stages.task_tokens[:, BODY_POSE_TOKENS]).delta_body_pose_6d
        return apply_body_pose_offset(stages.body_pose_6d, delta)


class BodyVariant(Protocol):
    """What BodyVariantWholeBody asks of a variant module."""

    adapter_name: str

    def body_pose_6d(
        self, whole_body: WholeBodyModel, stages: WholeBodyStages, points_hm: Tensor
    ) -> Tensor:
        """(B, 22, 6) interleaved root + body rotations of the variant."""
        ...


VARIANT_MODULES: dict[str, type[nn.Module]] = {
    MCPConcatenation.adapter_name: MCPConcatenation,
    MCPModerator.adapter_name: MCPModerator,
    TaskTokenBodyAdapter.adapter_name: TaskTokenBodyAdapter,
}
"""Module class of each added-module variant file (``adapter_name``)."""


class BodyVariantWholeBody(RefinedWholeBody):
    """The whole-body model with an added-module variant: the dual path's body model.

    Freezes the whole-body model (eval mode); the variant module's parameters train, and the
    neck and head it holds follow train() (module docstring, 2.). ``run_stages`` returns the
    stages with the variant's ``body_pose_6d``, so the dual path (models/body_path.py) runs it
    as any body model, without a body adapter.

    Args:
        whole_body: the base model.
        variant: MCPConcatenation, MCPModerator or TaskTokenBodyAdapter built on it.
    """

    def __init__(self, whole_body: WholeBodyModel, variant: nn.Module) -> None:
        super().__init__(whole_body, None)
        self.variant = variant.requires_grad_(True)

    @property
    def config(self) -> WholeBodyConfig:
        """The base model's config."""
        return self.whole_body.config

    def train(self, mode: bool = True) -> BodyVariantWholeBody:
        """Train mode on the variant's modules; the ViT stays in eval."""
        super().train(mode)
        self.variant.train(mode)
        return self

    def variant_body_pose_6d(self, stages: WholeBodyStages, points_hm: Tensor | None) -> Tensor:
        """(B, 22, 6) of the variant; points None samples at the predicted MCP joints."""
        if points_hm is None:
            points_hm = mcp_points_hm(stages.hands.joints_hm)
        variant: BodyVariant = self.variant  # type: ignore[assignment]
        return variant.body_pose_6d(self.whole_body, stages, points_hm)

    def run_stages(self, crops: Tensor) -> WholeBodyStages:
        """The base stages with the variant's body pose (run time: predicted MCP joints)."""
        stages = self.whole_body.run_stages(crops)
        return stages._replace(body_pose_6d=self.variant_body_pose_6d(stages, None))

    def assemble(self, stages: WholeBodyStages, body_pose_6d: Tensor) -> WholeBodyOutput:
        """WholeBodyModel.assemble."""
        return self.whole_body.assemble(stages, body_pose_6d)

    def forward(self, crops: Tensor, mcp_points_crop_px: Tensor | None = None) -> WholeBodyOutput:
        """Whole-body prediction of the variant (predicted MCP joints)."""
        stages = self.run_stages(crops)
        return self.assemble(stages, stages.body_pose_6d)


def build_variant_module(
    name: str, whole_body: WholeBodyModel, adapter_config: BodyAdapterConfig | None = None
) -> nn.Module:
    """A fresh variant module of ``adapter_name`` ``name`` on a whole-body model.

    Args:
        name: 'body_concatenation', 'body_weighted_sum' or 'body_adapter_task_tokens'.
        whole_body: the base model (on the device the module should live on).
        adapter_config: the task-token adapter's sizes (in_channels follows the model).
    """
    device = next(whole_body.parameters()).device
    if name == TaskTokenBodyAdapter.adapter_name:
        config = adapter_config or BodyAdapterConfig()
        width = whole_body.config.encoder.embed_dim
        config = BodyAdapterConfig(**{**asdict(config), 'in_channels': width})
        return TaskTokenBodyAdapter(config).to(device)
    if name not in VARIANT_MODULES:
        raise ValueError(f'unknown body variant module {name!r}; known: {sorted(VARIANT_MODULES)}')
    return VARIANT_MODULES[name](whole_body).to(device)


def load_body_variant(
    path: str | os.PathLike[str], whole_body: WholeBodyModel, base_variant: str
) -> tuple[BodyVariantWholeBody, WeightsInfo]:
    """An added-module variant's file on top of a loaded whole-body model (strict, no pickle).

    The file's neck and head replace the model's (they are the variant's trained weights).

    Args:
        path: the file ``hmr-ros train`` wrote (checkpoints/adapter_files.py format).
        whole_body: the base model the variant was trained on.
        base_variant: its registered variant (checked against the file's card).

    Returns:
        (BodyVariantWholeBody in eval mode, WeightsInfo).

    Raises:
        AdapterFileMismatchError: another module, base variant or size.
        CheckpointError: unreadable or mis-shaped file.
    """
    path = Path(path)
    file = read_adapter_file(path)
    adapter_config = None
    if file.card.model == TaskTokenBodyAdapter.adapter_name:
        names = {f.name for f in fields(BodyAdapterConfig)}
        adapter_config = BodyAdapterConfig(**{k: v for k, v in file.config.items() if k in names})  # type: ignore[arg-type]
    if file.card.model not in VARIANT_MODULES:
        raise ValueError(
            f'{path} holds {file.card.model!r}, not a whole-body ablation variant '
            f'({", ".join(sorted(VARIANT_MODULES))})'
        )
    variant = build_variant_module(file.card.model, whole_body, adapter_config)
    device = next(whole_body.parameters()).device
    load_adapter_file(path, variant, base_variant, device=device)
    info = WeightsInfo(path, file.card.model, base_variant, False, sha256_file(path))
    model = BodyVariantWholeBody(whole_body, variant)
    return model.requires_grad_(False).eval(), info


def use_body_variant(model: DualPathModel, path: str | os.PathLike[str]) -> WeightsInfo:
    """Put an added-module variant's file in place of a dual path's body model (evaluation).

    Args:
        model: a dual path built on SMPLer-X, without a body adapter.
        path: the variant's file.

    Returns:
        WeightsInfo of the file.

    Raises:
        ValueError: the dual path's body model is not SMPLer-X, or it holds a body adapter.
    """
    whole_body = model.whole_body
    if not isinstance(whole_body, WholeBodyModel) or model.body_adapter is not None:
        raise ValueError(
            f'{path}: a whole-body ablation variant runs on SMPLer-X without a body adapter'
        )
    variant, info = load_body_variant(path, whole_body, whole_body.config.name)
    model.whole_body = variant
    return info
