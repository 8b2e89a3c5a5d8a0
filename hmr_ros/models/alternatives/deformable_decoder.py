"""DeforHMR's deformable cross-attention decoder, an SMPL-X body regressor head (docs/deforhmr.md).

DeforHMR (Heo et al., 3DV 2025) decodes a frozen ViT's feature map with learnable parameter
queries. No code or weights are public; this follows the paper's text:

- Queries: one learnable token per pose rotation and one for shape (the paper: 24 SMPL pose
  tokens + 1 shape token, D = 1024). For SMPL-X's body here: 22 pose queries (global orientation
  + 21 body joints; SMPL's two hand joints are SMPL-X's fingers, which the hand path gives) and
  one shape query that also carries SMPLer-X's camera (10 betas + 3), so the rest of the
  pipeline keeps SMPLer-X's camera parameterisation.
- Each layer: multi-head self-attention over the queries, the deformable cross-attention to the
  feature map, a 2-layer feed-forward network, each with a residual (pre-norm, as HMR2.0's
  decoder that DeforHMR extends).
- Deformable cross-attention (query-agnostic, after DAT): a grid of reference points, one per
  feature cell; per group of channels (G groups) an offset network on the *context* (a grouped
  k x k convolution, LayerNorm, GELU, a 1 x 1 convolution to 2 channels) gives raw offsets,
  bounded by ``tanh`` to ``offset_range`` grid cells; the context is sampled bilinearly at
  reference + offset, projected to keys and values shared by every query; the logits get a
  relative-position bias sampled bilinearly, at the same positions, from a learned grid per head
  and query (the queries have no position). Heads are split evenly over groups.
- Iterative error feedback: the estimate starts from given mean parameters and each iteration
  adds the decoder's residuals; the paper uses one round. Every iteration's output is returned
  for deep supervision.

Choices where the paper is silent or approximate (docs/deforhmr.md): the reference points are
cell centres ((i + 0.5) / H * 2 - 1, ``align_corners=False``), so zero offsets sample the feature
map exactly (the paper's equation (1), i / H * 2 - 1, lands half a cell off); the offset bound
is ``offset_range`` cells, 2 / H * offset_range in normalised units; the offset kernel, depth and
FFN width default to DAT's and HMR2.0's values; the current estimate enters each query through
a linear embedding, as HMR2.0 feeds its estimate into its token.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'DeformableBodyDecoder',
    'DeformableBodyOutput',
    'DeformableCrossAttention',
    'DeformableDecoderConfig',
    'reference_points',
]

NUM_BETAS = 10
NUM_CAMERA = 3
ROT6D = 6


@dataclass(frozen=True)
class DeformableDecoderConfig:
    """Sizes of the decoder (defaults: the paper's D = 1024, 8 heads, 4 groups, lambda_o = 2).

    Attributes:
        context_dim: channels of the ViT feature map (1280 for ViT-H).
        feature_hw: (H, W) of the feature map (16 x 12 for a 256 x 192 crop, patch 16).
        dim: query width D.
        depth: decoder layers (not stated in the paper; HMR2.0's 6).
        num_heads: attention heads (paper's Table 3: 8 or 16).
        num_groups: offset groups G (paper: 4 with 8 heads, 8 with 16).
        offset_range: lambda_o, the offset bound in grid cells (paper: 1 or 2).
        offset_kernel: k of the grouped offset convolution (not stated; DAT's last stage uses 3).
        mlp_dim: hidden width of the feed-forward network (HMR2.0's 1024).
        num_pose_queries: rotations regressed (22 for SMPL-X's global + body pose).
        ief_iterations: rounds of iterative error feedback (paper: 1).
    """

    context_dim: int = 1280
    feature_hw: tuple[int, int] = (16, 12)
    dim: int = 1024
    depth: int = 6
    num_heads: int = 8
    num_groups: int = 4
    offset_range: float = 2.0
    offset_kernel: int = 3
    mlp_dim: int = 1024
    num_pose_queries: int = 22
    ief_iterations: int = 1

    def __post_init__(self) -> None:
        if self.num_heads % self.num_groups or self.dim % self.num_heads:
            raise ValueError(
                f'num_heads ({self.num_heads}) must divide into num_groups ({self.num_groups}) '
                f'and dim ({self.dim}) into num_heads'
            )
        if self.context_dim % self.num_groups:
            raise ValueError(
                f'context_dim ({self.context_dim}) must split into {self.num_groups} groups'
            )
        if self.offset_kernel % 2 == 0 or self.depth < 1 or self.ief_iterations < 1:
            raise ValueError('offset_kernel must be odd, depth and ief_iterations >= 1')

    @property
    def num_queries(self) -> int:
        """Pose queries plus the shape (and camera) query."""
        return self.num_pose_queries + 1


def reference_points(height: int, width: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """(H, W, 2) cell centres in ``grid_sample`` coordinates (x, y) in [-1, 1].

    With ``align_corners=False``, x = (j + 0.5) / W * 2 - 1 is the centre of column j.
    """
    y = (torch.arange(height, dtype=dtype) + 0.5) / height * 2 - 1
    x = (torch.arange(width, dtype=dtype) + 0.5) / width * 2 - 1
    grid_y, grid_x = torch.meshgrid(y, x, indexing='ij')
    return torch.stack((grid_x, grid_y), dim=-1)


class _ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (N, C, H, W) map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class DeformableCrossAttention(nn.Module):
    """Query-agnostic deformable cross-attention (module docstring).

    Args:
        dim: query width.
        context_dim: feature-map channels.
        feature_hw: (H, W) of the feature map (the bias grids have this size).
        num_queries: queries (each has its own relative-position bias grid per head).
        num_heads, num_groups, offset_range, offset_kernel: as ``DeformableDecoderConfig``.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        feature_hw: tuple[int, int],
        num_queries: int,
        *,
        num_heads: int,
        num_groups: int,
        offset_range: float,
        offset_kernel: int,
    ) -> None:
        super().__init__()
        self.num_heads, self.num_groups = num_heads, num_groups
        self.head_dim = dim // num_heads
        self.offset_range = offset_range
        self.feature_hw = feature_hw
        group_channels = context_dim // num_groups
        self.offset = nn.Sequential(
            nn.Conv2d(
                group_channels,
                group_channels,
                offset_kernel,
                padding=offset_kernel // 2,
                groups=group_channels,
            ),
            _ChannelLayerNorm(group_channels),
            nn.GELU(),
            nn.Conv2d(group_channels, 2, 1, bias=False),
        )
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(context_dim, dim)
        self.to_v = nn.Linear(context_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.position_bias = nn.Parameter(torch.zeros(num_heads, num_queries, *feature_hw))
        nn.init.trunc_normal_(self.position_bias, std=0.01)
        self.register_buffer(
            'reference', reference_points(*feature_hw), persistent=False
        )  # (H, W, 2)

    reference: Tensor

    def sampling_positions(self, context: Tensor) -> Tensor:
        """(B, C, H, W) context -> (B, G, H, W, 2) sampling positions (x, y) in [-1, 1]."""
        batch, channels, height, width = context.shape
        grouped = context.reshape(
            batch * self.num_groups, channels // self.num_groups, height, width
        )
        raw = self.offset(grouped)  # (B G, 2, H, W): channel 0 = x, 1 = y
        cell = raw.new_tensor([2.0 / width, 2.0 / height]).reshape(1, 2, 1, 1)
        offsets = torch.tanh(raw) * self.offset_range * cell
        positions = self.reference.to(context.dtype) + offsets.permute(0, 2, 3, 1)
        return positions.reshape(batch, self.num_groups, height, width, 2)

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        """(B, Q, dim) queries, (B, C, H, W) context -> (B, Q, dim) attended values."""
        positions = self.sampling_positions(context)
        return self.attend(queries, context, positions)

    def attend(self, queries: Tensor, context: Tensor, positions: Tensor) -> Tensor:
        """The attention for given sampling positions (B, G, H_s, W_s, 2)."""
        batch, channels, _, _ = context.shape
        groups, heads = self.num_groups, self.num_heads
        grid = positions.flatten(0, 1)  # (B G, Hs, Ws, 2)
        sampled = F.grid_sample(
            context.reshape(batch * groups, channels // groups, *context.shape[-2:]),
            grid,
            mode='bilinear',
            align_corners=False,
        )  # (B G, C / G, Hs, Ws)
        samples = sampled.reshape(batch, channels, -1).transpose(1, 2)  # (B, N, C)
        keys = self.to_k(samples).unflatten(-1, (heads, self.head_dim)).transpose(1, 2)
        values = self.to_v(samples).unflatten(-1, (heads, self.head_dim)).transpose(1, 2)
        q = self.to_q(queries).unflatten(-1, (heads, self.head_dim)).transpose(1, 2)
        logits = q @ keys.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, heads, Q, N)
        logits = logits + self.sampled_bias(grid, batch)
        out = torch.softmax(logits, dim=-1) @ values  # (B, heads, Q, head_dim)
        return self.to_out(out.transpose(1, 2).flatten(2))

    def sampled_bias(self, grid: Tensor, batch: int) -> Tensor:
        """Bias grids sampled at the positions: (B G, Hs, Ws, 2) -> (B, heads, Q, N)."""
        heads, groups = self.num_heads, self.num_groups
        per_group = heads // groups
        num_queries = self.position_bias.shape[1]
        table = self.position_bias.reshape(groups, per_group * num_queries, *self.feature_hw)
        table = table[None].expand(batch, -1, -1, -1, -1).flatten(0, 1).to(grid.dtype)
        bias = F.grid_sample(table, grid, mode='bilinear', align_corners=False)
        return bias.reshape(batch, heads, num_queries, -1)


class _DecoderLayer(nn.Module):
    def __init__(self, config: DeformableDecoderConfig) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(config.dim)
        self.self_attention = nn.MultiheadAttention(config.dim, config.num_heads, batch_first=True)
        self.norm_cross = nn.LayerNorm(config.dim)
        self.cross_attention = DeformableCrossAttention(
            config.dim,
            config.context_dim,
            config.feature_hw,
            config.num_queries,
            num_heads=config.num_heads,
            num_groups=config.num_groups,
            offset_range=config.offset_range,
            offset_kernel=config.offset_kernel,
        )
        self.norm_ffn = nn.LayerNorm(config.dim)
        self.ffn = nn.Sequential(
            nn.Linear(config.dim, config.mlp_dim), nn.GELU(), nn.Linear(config.mlp_dim, config.dim)
        )

    def forward(self, tokens: Tensor, context: Tensor) -> Tensor:
        x = self.norm_self(tokens)
        tokens = tokens + self.self_attention(x, x, x, need_weights=False)[0]
        tokens = tokens + self.cross_attention(self.norm_cross(tokens), context)
        return tokens + self.ffn(self.norm_ffn(tokens))


class DeformableBodyOutput(NamedTuple):
    """Body parameters from the deformable decoder (the last iteration, plus all of them).

    Attributes:
        pose_6d: (B, P, 6) global orientation then body joints, in the layout of ``init_pose_6d``.
        betas: (B, 10) shape.
        cam: (B, 3) SMPLer-X's camera parameters (same parameterisation as ``init_cam``).
        pose_6d_iterations, betas_iterations, cam_iterations: per IEF iteration, for
            deep supervision.
    """

    pose_6d: Tensor
    betas: Tensor
    cam: Tensor
    pose_6d_iterations: tuple[Tensor, ...]
    betas_iterations: tuple[Tensor, ...]
    cam_iterations: tuple[Tensor, ...]


class DeformableBodyDecoder(nn.Module):
    """DeforHMR-style regressor: ViT feature map -> SMPL-X body pose, shape and camera.

    Args:
        config: sizes.
        init_pose_6d: (P, 6) starting rotations (mean pose, in the 6D layout the caller uses).
        init_betas: (10,) starting shape.
        init_cam: (3,) starting camera parameters.
    """

    adapter_name = 'deformable_decoder'
    """Model name in the files the trainer writes (checkpoints/adapter_files.py)."""

    init_pose_6d: Tensor
    init_betas: Tensor
    init_cam: Tensor

    def __init__(
        self,
        config: DeformableDecoderConfig,
        init_pose_6d: Tensor,
        init_betas: Tensor,
        init_cam: Tensor,
    ) -> None:
        super().__init__()
        poses = config.num_pose_queries
        if tuple(init_pose_6d.shape) != (poses, ROT6D):
            raise ValueError(f'init_pose_6d must be ({poses}, 6); got {tuple(init_pose_6d.shape)}')
        if tuple(init_betas.shape) != (NUM_BETAS,) or tuple(init_cam.shape) != (NUM_CAMERA,):
            raise ValueError('init_betas must be (10,) and init_cam (3,)')
        self.config = config
        self.query_embedding = nn.Parameter(torch.zeros(config.num_queries, config.dim))
        nn.init.trunc_normal_(self.query_embedding, std=0.02)
        self.pose_input = nn.Linear(ROT6D, config.dim)
        self.shape_input = nn.Linear(NUM_BETAS + NUM_CAMERA, config.dim)
        self.layers = nn.ModuleList(_DecoderLayer(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.pose_head = nn.Linear(config.dim, ROT6D)
        self.shape_head = nn.Linear(config.dim, NUM_BETAS + NUM_CAMERA)
        for head in (self.pose_head, self.shape_head):  # start at the initial estimate
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer('init_pose_6d', init_pose_6d.float().clone())
        self.register_buffer('init_betas', init_betas.float().clone())
        self.register_buffer('init_cam', init_cam.float().clone())

    def file_config(self) -> dict[str, int | float | bool | str]:
        """Sizes that fix the state-dict shapes (written beside the weights)."""
        config = dataclasses.asdict(self.config)
        height, width = config.pop('feature_hw')
        return {**config, 'feature_h': height, 'feature_w': width}

    def forward(self, features: Tensor) -> DeformableBodyOutput:
        """(B, C, H, W) ViT feature map -> DeformableBodyOutput."""
        config = self.config
        if tuple(features.shape[1:]) != (config.context_dim, *config.feature_hw):
            raise ValueError(
                f'features must be (B, {config.context_dim}, {config.feature_hw[0]}, '
                f'{config.feature_hw[1]}); got {tuple(features.shape)}'
            )
        batch = features.shape[0]
        pose = self.init_pose_6d.to(features.dtype).expand(batch, -1, -1)
        shape_cam = (
            torch.cat((self.init_betas, self.init_cam)).to(features.dtype).expand(batch, -1)
        )
        poses, betas, cams = [], [], []
        for _ in range(config.ief_iterations):
            tokens = self.query_embedding.to(features.dtype).expand(batch, -1, -1) + torch.cat(
                (self.pose_input(pose), self.shape_input(shape_cam)[:, None]), dim=1
            )
            for layer in self.layers:
                tokens = layer(tokens, features)
            tokens = self.norm(tokens)
            pose = pose + self.pose_head(tokens[:, : config.num_pose_queries])
            shape_cam = shape_cam + self.shape_head(tokens[:, config.num_pose_queries])
            poses.append(pose)
            betas.append(shape_cam[:, :NUM_BETAS])
            cams.append(shape_cam[:, NUM_BETAS:])
        return DeformableBodyOutput(
            pose_6d=poses[-1],
            betas=betas[-1],
            cam=cams[-1],
            pose_6d_iterations=tuple(poses),
            betas_iterations=tuple(betas),
            cam_iterations=tuple(cams),
        )
