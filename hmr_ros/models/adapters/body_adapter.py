"""Body adapter of HMR-Adapter: hand features refine the frozen whole-body pose (paper 3.4).

Direction: hand -> body. The whole-body model's HandRoI feature maps of both hands are sampled
at the four MCP joints of each hand (index1, middle1, ring1, pinky1) to give joint tokens F^J;
a small transformer beside the frozen body regressor turns them into an offset of the body pose
(paper eq. 4)::

    F^J        = sample(Conv1x1(hand features), MCP points) (+ token embedding)   (B, 8, 512)
    z          = begin token                                                      (B, 1, 1024)
    z          = 6 x [z + SA''(z); z + CA''(z, F^J); z + FFN(z)]    (pre-norm, as HaMeR's decoder)
    delta      = offset regressor(z)                                              (B, 22, 6)
    theta_hat  = theta_0 (+) delta    (SMPLer-X's interleaved 6D, root first; see 2.)

Design decisions:

1. Sizes (docs/architecture.md): block width 1024, 8 heads x 64, MLP 1024, context 512 (F^J),
   6 blocks; the 1x1 convolution maps the whole-body ViT width C (1280 for ViT-H) to 512.
   The blocks are the shared ``TransformerCrossAttn`` of HaMeR's decoder
   (hmr_ros.models.components.pose_transformer), one component for both paths.
2. Offset space: the offset is added *after* normalisation (``apply_body_pose_offset``): the
   rotation of the refined 6D is that of Gram-Schmidt(theta_0) + delta, re-normalised. Added
   to the regressor's raw, unnormalised 6D instead (paper eq. 4 read literally), the same
   delta would turn the pose by 19.5 to 0.5 degrees depending on the raw vector's norm (x0.3
   to x10), which the adapter cannot see. The refined vector is written back in the raw
   vector's scale, so a zero offset returns theta_0 bitwise and ``WholeBodyModel.assemble(
   stages, apply_body_pose_offset(stages.body_pose_6d, delta))`` keeps every other output.
3. No-op start: the regressor's last linear layer starts at zero, so delta = 0 exactly and the
   untrained adapter reproduces the base model bitwise (tested). Only that layer learns at the
   first step; the rest follows once it is non-zero.
4. The regressor is "FFN" in paper eq. 4: LayerNorm, Linear(1024, 1024), GELU, Linear(1024, 132).
   The LayerNorm is ours: the pre-norm blocks leave the token stream unnormalised.
5. Token identity: the left hand's features are mirrored to look like a right hand (HandRoI),
   and attention treats its keys as a set, so without help the adapter could not tell the left
   index MCP from the right one. A learned embedding per token (8 x 512) is added to F^J;
   ``BodyAdapterConfig(joint_embedding=False)`` leaves it out (the paper does not mention one).
6. The begin token (the paper's "empty beginning token") is one learned vector. With a single
   query token, SA'' reduces to its value and output projections (softmax over one key is 1).
7. Sampling points: feature-map pixels of the 16 x 16 HandRoI maps, x = column, y = row, pixel
   centres at integers (``grid_sample`` with ``align_corners=True``, as SMPLer-X samples hand
   joints), the left hand in its mirrored frame (column j holds the left hand's column 15 - j).
   At run time they are the predicted MCP joints (``mcp_points_hm(stages.hands.joints_hm)``); in
   training the ground-truth 2D MCP keypoints mapped with ``hand_feature_points_from_crop_px``
   to where SMPLer-X's training puts a hand joint (left: 15 - u, its un-flip). Through
   RoIAlign's bin centres such a point reads the image half a bin (box size / 32) right of and
   below itself, on both hands alike (docs/model-notes.md, "Hand joints and MCP sampling points").
8. Wrap, do not rewrite: the adapter holds no base module and never touches the whole-body
   model's weights. ``RefinedWholeBody(whole_body, body_adapter)`` runs the frozen model's
   stages, the adapter, then ``assemble``; it freezes the whole-body model and keeps it in eval
   mode (its BatchNorm statistics would move in train mode).
9. Skipping the adapter (ablation "no body adapter"): ``RefinedWholeBody(whole_body, None)``,
   or pass ``stages.body_pose_6d`` to ``assemble`` unchanged; nothing else changes.

Parameter count at SMPLer-X-H size (C 1280): per block SA'' 2,100,224 + CA'' 1,575,936 + FFN
2,101,248 = 5,777,408, times 6 = 34,664,448; conv 655,872; token embedding 4,096; begin token
1,024; regressor 1,186,948. Total 36,512,388 (the paper's "about 37M in SMPLer-X").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from hmr_ros.geometry.constants import take
from hmr_ros.models.components.pose_transformer import (
    CrossAttention,
    SelfAttention,
    TransformerCrossAttn,
)
from hmr_ros.models.components.roi_align import sample_at_points
from hmr_ros.models.heads.smplx_head import (
    HAND_HEATMAP_DHW,
    HAND_MCP_JOINT_INDICES,
    HAND_SIDES,
    NUM_BODY_ROTATIONS,
    NUM_HAND_POSITION_JOINTS,
    PART_NAMES,
    ROT6D_DIM,
)
from hmr_ros.models.whole_body import WholeBodyModel, WholeBodyOutput, WholeBodyStages

__all__ = [
    'NUM_JOINT_TOKENS',
    'NUM_MCP_JOINTS',
    'OFFSET_ROT6D_LAYOUT',
    'BodyAdapter',
    'BodyAdapterConfig',
    'BodyAdapterOutput',
    'RefinedWholeBody',
    'body_adapter_tiny',
    'apply_body_pose_offset',
    'hand_feature_points_from_crop_px',
    'mcp_points_hm',
]

NUM_MCP_JOINTS = len(HAND_MCP_JOINT_INDICES)
"""MCP joints sampled per hand: index1, middle1, ring1, pinky1 (4)."""

NUM_JOINT_TOKENS = len(HAND_SIDES) * NUM_MCP_JOINTS
"""Rows of F^J: the left hand's four MCP joints, then the right hand's (8)."""

OFFSET_ROT6D_LAYOUT = 'interleaved'
"""Layout of the offset: the whole-body model's (SMPLer-X / SPIN) 6D layout."""

INIT_STD = 0.02
"""Std of the truncated-normal begin token and token embedding at initialisation."""


@dataclass(frozen=True)
class BodyAdapterConfig:
    """Sizes of the body adapter (defaults: the paper's, for SMPLer-X-H).

    Attributes:
        in_channels: channels C of the HandRoI feature maps (the whole-body ViT width).
        feature_dim: width of the joint tokens F^J after the 1x1 convolution (512).
        dim: token width of the parallel transformer (1024).
        depth: transformer blocks (6).
        heads: attention heads (8).
        dim_head: width per head (64).
        mlp_dim: hidden width of each block's feed-forward (1024).
        regressor_dim: hidden width of the offset regressor (1024).
        joint_embedding: add a learned embedding per joint token (module docstring, point 5).
        dropout: dropout inside the blocks.
    """

    in_channels: int = 1280
    feature_dim: int = 512
    dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    regressor_dim: int = 1024
    joint_embedding: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            'in_channels',
            'feature_dim',
            'dim',
            'depth',
            'heads',
            'dim_head',
            'mlp_dim',
            'regressor_dim',
        ):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f'BodyAdapterConfig.{name} must be positive, got {getattr(self, name)}'
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'BodyAdapterConfig.dropout must be in [0, 1), got {self.dropout}')


def body_adapter_tiny(in_channels: int = 32) -> BodyAdapterConfig:
    """Test-only sizes for the tiny whole-body model (C 32); same structure."""
    return BodyAdapterConfig(
        in_channels=in_channels,
        feature_dim=16,
        dim=32,
        depth=2,
        heads=2,
        dim_head=16,
        mlp_dim=32,
        regressor_dim=32,
    )


class BodyAdapterOutput(NamedTuple):
    """Body adapter outputs.

    Attributes:
        delta_body_pose_6d: (B, 22, 6) offset to add to ``WholeBodyStages.body_pose_6d``
            (interleaved 6D, root first); zero for an untrained adapter.
        joint_features: (B, 8, feature_dim) F^J before the token embedding: left index1,
            middle1, ring1, pinky1, then the right hand's.
    """

    delta_body_pose_6d: Tensor
    joint_features: Tensor


def apply_body_pose_offset(body_pose_6d: Tensor, delta_6d: Tensor) -> Tensor:
    """Refine raw interleaved 6D rotations by an offset added after Gram-Schmidt.

    With the raw columns a1 = v[0::2], a2 = v[1::2] and their Gram-Schmidt frame b1 = a1/|a1|,
    b2 = (a2 - alpha b1) / beta (alpha = b1.a2, beta = |a2 - alpha b1|), the result's columns
    are a1' = a1 + |a1| d1 and a2' = a2 + alpha (b1' - b1) + beta d2 with b1' = a1'/|a1'|.
    Gram-Schmidt of (a1', a2') is exactly Gram-Schmidt of (b1 + d1, b2 + d2): the offset acts
    on the normalised rotation, whatever the raw vector's norm or the non-orthogonal part of
    a2, and the offset is re-normalised with it. A zero offset gives back the raw vector
    bitwise (|a1| * 0 = 0 and b1' = b1), so a zero-initialised adapter is an exact no-op.

    Args:
        body_pose_6d: (..., 6) raw interleaved 6D from the body regressor.
        delta_6d: (..., 6) interleaved offset (the body adapter's output).

    Returns:
        (..., 6) refined interleaved 6D (in the raw vector's scale); its rotation is
        rot6d_to_rotmat(rotmat_to_rot6d(rot6d_to_rotmat(raw)) + delta).
    """
    delta = delta_6d.to(body_pose_6d.dtype)
    # Contiguous columns: b1 and b1' then come from the same kernel on equal memory layouts,
    # so a zero offset gives b1' == b1 bitwise (strided and contiguous norms may round apart).
    a1, a2 = body_pose_6d[..., 0::2].contiguous(), body_pose_6d[..., 1::2].contiguous()
    d1, d2 = delta[..., 0::2].contiguous(), delta[..., 1::2].contiguous()
    a1_norm = torch.linalg.vector_norm(a1, dim=-1, keepdim=True)
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    alpha = (b1 * a2).sum(-1, keepdim=True)
    beta = torch.linalg.vector_norm(a2 - alpha * b1, dim=-1, keepdim=True)
    refined_a1 = a1 + a1_norm * d1
    refined_b1 = torch.nn.functional.normalize(refined_a1, dim=-1)
    refined_a2 = a2 + alpha * (refined_b1 - b1) + beta * d2
    return torch.stack((refined_a1, refined_a2), dim=-1).flatten(-2)


def mcp_points_hm(hand_joints_hm: Tensor) -> Tensor:
    """The predicted MCP joints as sampling points (run time, paper 3.4).

    Args:
        hand_joints_hm: (B, 2, 20, 3) ``WholeBodyStages.hands.joints_hm`` (x, y, z) in hand
            heatmap cells, left hand mirrored.

    Returns:
        (B, 2, 4, 2) (x, y) of index1, middle1, ring1, pinky1, detached (SMPLer-X also samples
        at detached joints), in the feature-map pixels ``BodyAdapter`` takes.
    """
    if hand_joints_hm.dim() != 4 or hand_joints_hm.shape[-2] != NUM_HAND_POSITION_JOINTS:
        raise ValueError(
            f'hand_joints_hm must be (B, 2, {NUM_HAND_POSITION_JOINTS}, 3) '
            f'(WholeBodyStages.hands.joints_hm); got {tuple(hand_joints_hm.shape)}'
        )
    return take(hand_joints_hm.detach(), HAND_MCP_JOINT_INDICES, -2)[..., :2]


def hand_feature_points_from_crop_px(points_crop_px: Tensor, hand_boxes_crop_px: Tensor) -> Tensor:
    """Map 2D hand points from person-crop pixels into HandRoI feature pixels (training, 3.5.2).

    Inverse of the mapping ``WholeBodyModel.assemble`` uses for ``hand_joints_crop_px``
    (SMPLer-X's: box corner + cell * box size / 16): u = (x - x1) * 16 / (x2 - x1),
    v = (y - y1) * 16 / (y2 - y1), SMPLer-X's training target; for the left hand u -> 15 - u,
    where SMPLer-X trains the mirrored map's joint (it restores the left x as 15 - x).
    Use the boxes the model cropped the features with (``WholeBodyOutput.hand_boxes_crop_px``),
    not the ground-truth boxes.

    Args:
        points_crop_px: (B, 2, P, 2) (x, y) in 512 x 384 person-crop pixels, sides (left,
            right), e.g. the ground-truth MCP keypoints.
        hand_boxes_crop_px: (B, 2, 4) (x1, y1, x2, y2) hand boxes in crop pixels, (left, right).

    Returns:
        (B, 2, P, 2) points in the feature-map pixels ``BodyAdapter`` samples at.
    """
    if points_crop_px.dim() != 4 or points_crop_px.shape[1] != len(HAND_SIDES):
        raise ValueError(
            f'points_crop_px must be (B, 2, P, 2), sides {HAND_SIDES}; '
            f'got {tuple(points_crop_px.shape)}'
        )
    if tuple(hand_boxes_crop_px.shape[1:]) != (len(HAND_SIDES), 4):
        raise ValueError(
            f'hand_boxes_crop_px must be (B, 2, 4) (x1, y1, x2, y2); '
            f'got {tuple(hand_boxes_crop_px.shape)}'
        )
    corner = hand_boxes_crop_px[:, :, None, :2]
    size = hand_boxes_crop_px[:, :, None, 2:] - corner
    cells = points_crop_px.new_tensor((HAND_HEATMAP_DHW[2], HAND_HEATMAP_DHW[1]))
    uv = (points_crop_px - corner) * cells / size
    is_left = torch.arange(len(HAND_SIDES), device=uv.device) == HAND_SIDES.index('left')
    last_column = HAND_HEATMAP_DHW[2] - 1
    u = torch.where(is_left[None, :, None], last_column - uv[..., 0], uv[..., 0])
    return torch.stack((u, uv[..., 1]), dim=-1)


class BodyAdapter(nn.Module):
    """HMR-Adapter for the whole-body model: hand features refine the body pose (paper 3.4).

    Holds only its own parameters: ``feature_proj`` (1x1 conv C -> 512), ``joint_embedding``
    (1, 8, 512) if configured, ``begin_token`` (1, 1, dim), ``transformer.layers.{i}`` (SA'',
    CA'', FFN), ``offset_regressor`` (its last layer, ``offset_regressor.3``, zero-initialised).

    Attributes:
        adapter_name: model family written in adapter files ('body_adapter').
        config: BodyAdapterConfig.
    """

    adapter_name: ClassVar[str] = 'body_adapter'
    joint_embedding: nn.Parameter | None

    def __init__(self, config: BodyAdapterConfig = BodyAdapterConfig()) -> None:
        super().__init__()
        c = config
        self.config = config
        self.feature_proj = nn.Conv2d(c.in_channels, c.feature_dim, kernel_size=1)
        if c.joint_embedding:
            self.joint_embedding = nn.Parameter(torch.empty(1, NUM_JOINT_TOKENS, c.feature_dim))
            nn.init.trunc_normal_(self.joint_embedding, std=INIT_STD)
        else:
            self.register_parameter('joint_embedding', None)
        self.begin_token = nn.Parameter(torch.empty(1, 1, c.dim))
        nn.init.trunc_normal_(self.begin_token, std=INIT_STD)
        self.transformer = TransformerCrossAttn(
            c.dim, c.depth, c.feature_dim, c.heads, c.dim_head, c.mlp_dim, c.dropout
        )
        self.offset_regressor = nn.Sequential(
            nn.LayerNorm(c.dim),
            nn.Linear(c.dim, c.regressor_dim),
            nn.GELU(),
            nn.Linear(c.regressor_dim, NUM_BODY_ROTATIONS * ROT6D_DIM),
        )
        nn.init.zeros_(self.output_layer.weight)
        nn.init.zeros_(self.output_layer.bias)

    @property
    def output_layer(self) -> nn.Linear:
        """The regressor's last linear layer (zero at initialisation)."""
        layer = self.offset_regressor[-1]
        if not isinstance(layer, nn.Linear):  # pragma: no cover - fixed structure
            raise TypeError('offset_regressor must end with a Linear layer')
        return layer

    def file_config(self) -> dict[str, int | float | bool | str]:
        """Everything that fixes this adapter's state-dict shapes, for the adapter file's card."""
        return {
            **asdict(self.config),
            'joint_tokens': NUM_JOINT_TOKENS,
            'offset_rot6d_layout': OFFSET_ROT6D_LAYOUT,
        }

    def set_fused_attention(self, enabled: bool) -> None:
        """Switch the blocks' attention between the fused and the reference path."""
        for module in self.transformer.modules():
            if isinstance(module, (SelfAttention, CrossAttention)):
                module.fused = enabled

    def joint_features(self, hand_features: Tensor, points_hm: Tensor) -> Tensor:
        """F^J: 1x1 conv on the hand maps, then bilinear samples at the points.

        Args:
            hand_features: (B, 2, C, H, W) HandRoI maps (``WholeBodyStages.hands.features``),
                sides (left, right), left mirrored.
            points_hm: (B, 2, 4, 2) (x, y) MCP points in feature pixels (module docstring,
                point 7): ``mcp_points_hm`` or ``hand_feature_points_from_crop_px``.

        Returns:
            (B, 8, feature_dim), left hand's four points first.
        """
        batch, sides = hand_features.shape[:2]
        if (
            hand_features.dim() != 5
            or sides != len(HAND_SIDES)
            or hand_features.shape[2] != self.config.in_channels
        ):
            raise ValueError(
                f'hand_features must be (B, 2, {self.config.in_channels}, H, W) HandRoI maps '
                f'(WholeBodyStages.hands.features); got {tuple(hand_features.shape)}'
            )
        if tuple(points_hm.shape) != (batch, sides, NUM_MCP_JOINTS, 2):
            raise ValueError(
                f'points_hm must be ({batch}, {sides}, {NUM_MCP_JOINTS}, 2) (x, y) in feature '
                f'pixels (see mcp_points_hm); got {tuple(points_hm.shape)}'
            )
        reduced = self.feature_proj(hand_features.flatten(0, 1))  # (2B, D, H, W)
        sampled = sample_at_points(reduced, points_hm.flatten(0, 1))  # (2B, 4, D)
        return sampled.reshape(batch, NUM_JOINT_TOKENS, -1)

    def forward(self, hand_features: Tensor, points_hm: Tensor) -> BodyAdapterOutput:
        """Body pose offset from the hand features (paper eq. 4).

        Args:
            hand_features: (B, 2, C, 16, 16) HandRoI maps, left mirrored.
            points_hm: (B, 2, 4, 2) MCP points in feature pixels (see joint_features).

        Returns:
            BodyAdapterOutput; refine with ``apply_body_pose_offset(stages.body_pose_6d,
            output.delta_body_pose_6d)``.
        """
        return self.decode(self.joint_features(hand_features, points_hm))

    def decode(self, features: Tensor) -> BodyAdapterOutput:
        """Body pose offset from context tokens (eq. 4 after F^J is formed).

        Args:
            features: (B, T, feature_dim) context tokens: F^J (T = 8), or another input of
                the same width (the task-token ablation, models/ablations/body.py, T = 25).

        Returns:
            BodyAdapterOutput with ``joint_features`` = ``features``.
        """
        context = features
        if self.joint_embedding is not None:
            context = context + self.joint_embedding
        tokens = self.begin_token.expand(features.shape[0], -1, -1).to(context.dtype)
        tokens = self.transformer(tokens, context)
        delta = self.offset_regressor(tokens[:, 0])
        return BodyAdapterOutput(
            delta_body_pose_6d=delta.reshape(-1, NUM_BODY_ROTATIONS, ROT6D_DIM),
            joint_features=features,
        )


class RefinedWholeBody(nn.Module):
    """The whole-body path of HMR-Adapter: frozen whole-body model + body adapter (paper 3.4).

    The constructor freezes the whole-body model (``requires_grad_(False)``) and ``train()``
    keeps it in eval mode. Submodules ``whole_body`` and ``body_adapter`` (None: plain
    whole-body model).
    """

    def __init__(self, whole_body: WholeBodyModel, body_adapter: BodyAdapter | None) -> None:
        super().__init__()
        if body_adapter is not None:
            width = whole_body.config.encoder.embed_dim
            if body_adapter.config.in_channels != width:
                raise ValueError(
                    f'body adapter in_channels {body_adapter.config.in_channels} must equal the '
                    f'whole-body width {width}; build BodyAdapterConfig(in_channels={width})'
                )
        self.whole_body = whole_body.requires_grad_(False).eval()
        self.body_adapter = body_adapter

    def train(self, mode: bool = True) -> RefinedWholeBody:
        """Set training mode on the adapter only; the frozen whole-body model stays in eval."""
        super().train(mode)
        self.whole_body.eval()
        return self

    def hand_boxes_crop_px(self, stages: WholeBodyStages) -> Tensor:
        """(B, 2, 4) (left, right) hand boxes in crop pixels, as ``assemble`` reports them."""
        prep = self.whole_body.config.preprocessing
        crop_h, crop_w = prep.crop_hw_px
        vit_h, vit_w = prep.vit_hw_px
        sides = [PART_NAMES.index(f'{side}_hand') for side in HAND_SIDES]
        boxes = stages.part_boxes_vit_px[:, sides].float()
        return boxes * boxes.new_tensor((crop_w / vit_w, crop_h / vit_h)).repeat(2)

    def refine(
        self, stages: WholeBodyStages, mcp_points_crop_px: Tensor | None = None
    ) -> WholeBodyOutput:
        """Refine the body pose of computed stages and assemble the outputs.

        Args:
            stages: ``whole_body.run_stages(crops)``.
            mcp_points_crop_px: (B, 2, 4, 2) ground-truth MCP keypoints (x, y) in crop pixels,
                sides (left, right), fingers index, middle, ring, pinky (training, paper
                3.5.2); None samples at the predicted MCP joints.

        Returns:
            WholeBodyOutput with the refined ``global_orient``, ``body_pose`` and
            ``body_pose_6d``; every other field as the plain model's.
        """
        body_pose_6d = stages.body_pose_6d
        if self.body_adapter is not None:
            if mcp_points_crop_px is None:
                points = mcp_points_hm(stages.hands.joints_hm)
            else:
                points = hand_feature_points_from_crop_px(
                    mcp_points_crop_px, self.hand_boxes_crop_px(stages)
                )
            delta = self.body_adapter(stages.hands.features, points).delta_body_pose_6d
            body_pose_6d = apply_body_pose_offset(body_pose_6d, delta)
        return self.whole_body.assemble(stages, body_pose_6d)

    def forward(self, crops: Tensor, mcp_points_crop_px: Tensor | None = None) -> WholeBodyOutput:
        """Whole-body prediction with the refined body pose.

        Args:
            crops: (B, 3, 512, 384) RGB in [0, 1] (WholeBodyModel.forward).
            mcp_points_crop_px: (B, 2, 4, 2) or None (see refine).

        Returns:
            WholeBodyOutput.
        """
        return self.refine(self.whole_body.run_stages(crops), mcp_points_crop_px)
