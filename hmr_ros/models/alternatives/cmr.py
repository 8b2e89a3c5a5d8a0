"""CMR (Chen et al., CVPR 2021): 2D cues, then a spiral mesh decoder (docs/cmr.md).

A right-hand crop of 224 x 224 pixels, normalised to [-1, 1] (mean 0.5, std 0.5 on [0, 1]
pixels, not ImageNet statistics), goes through three stacked ResNet encoders:

- stage 1 (ResNet stem + 4 stages) and a U-Net-like decoder: a silhouette prior (CMR-SG) or 21
  heatmaps (CMR-PG) at 112 x 112;
- stage 2 (a reduce block on the 112 x 112 stem features + that prior, then ResNet stages 1-4):
  21 joint heatmaps;
- stage 3 (a reduce block on the stage-2 reduced features (SG) or the stem features (PG), the
  heatmaps and 10 sub-pose maps, sums of the heatmap pairs of the five fingertips): the ResNet
  ``fc`` output, a 1000-d latent, and a decoder of 21 heatmaps + 1 silhouette (the final 2D cues
  used by the registration);
- a gated self-attention over the 1000 latent scalars, then the spiral mesh decoder
  (49 -> 98 -> 195 -> 389 -> 778 vertices).

The mesh comes out wrist-relative in the crop camera's orientation, divided by 0.2 m; the model
multiplies by ``MESH_STD_M``. Attribute names are those of the official ``CMR_SG``/``CMR_PG``
classes (SeanChenxy/HandMesh ``cmr/models``), so the released state dicts load strictly. The
spiral indices and up-sampling matrices come from the user's ``transform.pkl``
(``hmr_ros.checkpoints.cmr_layout``) through ``spiral_indices``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmr_ros.checkpoints.cmr_layout import CmrMeshHierarchy
from hmr_ros.models.alternatives.spiral_conv import (
    SpiralMeshDecoder,
    decode_mesh,
    set_decoder_hierarchy,
)
from hmr_ros.models.alternatives.spiral_indices import spiral_indices
from hmr_ros.models.backbones.resnet import ResNet, resnet18, resnet50

__all__ = [
    'CMR_FINGERTIP_PAIRS',
    'CMR_INPUT_SIZE_PX',
    'CmrConfig',
    'CmrModel',
    'CmrOutput',
    'CMR_HAND_LEVELS',
    'CMR_VARIANTS',
    'build_cmr',
    'cmr_from_hierarchy',
    'cmr_spirals',
]

CMR_INPUT_SIZE_PX = 224
CMR_MAP_SIZE_PX = CMR_INPUT_SIZE_PX // 2
"""The 2D cues are predicted at half the input resolution."""
NUM_KEYPOINTS = 21
MESH_STD_M = 0.2
"""CMR trains on wrist-relative vertices divided by 0.2 m."""
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
SPIRAL_LENGTH = 27
DECODER_CHANNELS = (64, 128, 256, 512)
"""Spiral decoder widths, finest level first (official ``out_channels``)."""
STEM_FEATURE_CHANNELS = 64
REDUCE_HIDDEN_CHANNELS = 128
LATENT_SIZE = 1000
"""The ResNet ``fc`` width that CMR keeps as its 3D latent."""

_FINGERTIPS = (4, 8, 12, 16, 20)
CMR_FINGERTIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (a, b) for i, a in enumerate(_FINGERTIPS) for b in _FINGERTIPS[i + 1 :]
)
"""Sub-poses of stage 3: every pair of fingertips (MPII hand order: 4 thumb ... 20 little)."""

Variant = Literal['sg', 'pg']
Backbone = Literal['resnet18', 'resnet50']


@dataclass(frozen=True)
class CmrConfig:
    """Which CMR.

    Attributes:
        variant: 'sg' (silhouette prior, then pose) or 'pg' (pose prior, then pose).
        backbone: 'resnet18' or 'resnet50' (each of the three encoders).
    """

    variant: Variant = 'sg'
    backbone: Backbone = 'resnet18'

    def __post_init__(self) -> None:
        if self.variant not in ('sg', 'pg'):
            raise ValueError(f"variant must be 'sg' or 'pg'; got {self.variant!r}")
        if self.backbone not in ('resnet18', 'resnet50'):
            raise ValueError(f"backbone must be 'resnet18' or 'resnet50'; got {self.backbone!r}")


CMR_VARIANTS: dict[str, CmrConfig] = {
    'cmr_sg_r18': CmrConfig('sg', 'resnet18'),
    'cmr_pg_r18': CmrConfig('pg', 'resnet18'),
    'cmr_sg_r50': CmrConfig('sg', 'resnet50'),
    'cmr_pg_r50': CmrConfig('pg', 'resnet50'),
}
"""Registered CMR hand variants (FreiHAND-trained, 21 joints; released files: SG/PG-R18)."""

CMR_HAND_LEVELS = (778, 389, 195, 98, 49)
"""Vertices per level of the published hand hierarchy, finest first."""
UP_TRANSFORM_NONZEROS = 3
"""Non-zeros per row of the published up-sampling matrices (inspected asset)."""


class CmrOutput(NamedTuple):
    """CMR's predictions for a batch of right-hand crops.

    Attributes:
        vertices_m: (B, 778, 3) wrist-relative MANO-topology mesh, metres, crop-camera axes.
        mesh_levels_m: per level (B, V_l, 3), finest first (778, 389, 195, 98), metres.
        heatmaps: (B, 21, 112, 112) final joint heatmaps in [0, 1].
        silhouette: (B, 112, 112) final hand mask probability.
        keypoints_crop_px: (B, 21, 2) heatmap argmax scaled to the 224-px crop, as the official
            ``map2uv`` (cell index times 2).
        keypoint_confidence: (B, 21) heatmap peak values.
        prior: (B, 1 or 21, 112, 112) stage-1 prior (silhouette for SG, heatmaps for PG).
        heatmaps_stage2: (B, 21, 112, 112) stage-2 heatmaps.
    """

    vertices_m: Tensor
    mesh_levels_m: tuple[Tensor, ...]
    heatmaps: Tensor
    silhouette: Tensor
    keypoints_crop_px: Tensor
    keypoint_confidence: Tensor
    prior: Tensor
    heatmaps_stage2: Tensor


class ConvBlock(nn.Module):
    """Conv (+ BatchNorm) (+ ReLU), the official ``ConvBlock`` names ``conv``/``norm``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int = 3, *, relu: bool, norm: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        self.norm = nn.BatchNorm2d(out_channels) if norm else None
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return torch.relu(x) if self.relu else x


def _reduce(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        ConvBlock(in_channels, in_channels, relu=True, norm=True),
        ConvBlock(in_channels, REDUCE_HIDDEN_CHANNELS, relu=True, norm=True),
        ConvBlock(REDUCE_HIDDEN_CHANNELS, STEM_FEATURE_CHANNELS, 1, relu=False, norm=True),
    )


class _Encoder(nn.Module):
    """One ResNet encoder: stem (stage 1) or reduce block (stages 2, 3), four stages, fc.

    Returns the 112 x 112 input features and the stage outputs, deepest first.
    """

    def __init__(self, backbone: ResNet, reduce_in: int | None, keep_fc: bool) -> None:
        super().__init__()
        self.has_stem = reduce_in is None
        if reduce_in is None:
            self.conv1, self.bn1, self.relu = backbone.conv1, backbone.bn1, backbone.relu
        else:
            self.reduce = _reduce(reduce_in)
        self.maxpool = backbone.maxpool
        self.layer1, self.layer2 = backbone.layer1, backbone.layer2
        self.layer3, self.layer4 = backbone.layer3, backbone.layer4
        if keep_fc:
            self.avgpool, self.fc = backbone.avgpool, backbone.fc

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        x0 = self.relu(self.bn1(self.conv1(x))) if self.has_stem else self.reduce(x)
        x1 = self.layer1(self.maxpool(x0))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return x0, [x4, x3, x2, x1]

    def latent(self, x4: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x4), 1))


def _map_decoder(stage_channels: Sequence[int]) -> nn.ModuleList:
    """Four x2 bilinear upsampling steps with skip concatenation (deepest first)."""
    c1, c2, c3, c4 = stage_channels
    return nn.ModuleList(
        [
            ConvBlock(c4 + c3, c3, relu=True, norm=True),
            ConvBlock(c3 + c2, c2, relu=True, norm=True),
            ConvBlock(c2 + c1, c1, relu=True, norm=True),
            ConvBlock(c1, c1, relu=True, norm=True),
        ]
    )


def _decode_map(layers: nn.ModuleList, head: nn.Module, features: list[Tensor]) -> Tensor:
    x = features[0]
    for i, layer in enumerate(layers):
        x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
        if i < len(features) - 1:
            x = torch.cat((x, features[i + 1]), dim=1)
        x = layer(x)
    return torch.sigmoid(head(x))


class SelfAttention(nn.Module):
    """CMR's gated attention over the latent's scalars (a 1000 x 1000 map, gamma starts at 0)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.query_conv = nn.Linear(size, size)
        self.key_conv = nn.Linear(size, size)
        self.value_conv = nn.Linear(size, size)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        """(B, D) -> (B, D)."""
        energy = self.query_conv(x)[:, :, None] * self.key_conv(x)[:, None, :]  # (B, D, D)
        attention = torch.softmax(energy, dim=-1)
        out = (attention @ self.value_conv(x)[:, :, None])[..., 0]
        return self.gamma * out + x


def heatmap_argmax(heatmaps: Tensor, size_px: int) -> tuple[Tensor, Tensor]:
    """Official ``map2uv``: (B, J, H, W) -> ((B, J, 2) u, v = cell index * size / map, peaks)."""
    batch, joints, height, width = heatmaps.shape
    peak, flat = heatmaps.flatten(2).max(dim=-1)
    v = torch.div(flat, width, rounding_mode='floor')
    u = flat - v * width
    uv = torch.stack(
        (u.to(heatmaps.dtype) * (size_px / width), v.to(heatmaps.dtype) * (size_px / height)), -1
    )
    return uv, peak


class CmrModel(nn.Module):
    """CMR-SG or CMR-PG (module docstring).

    Args:
        config: variant and backbone.
        spirals: (V_l, 27) spiral indices per level, finest first (778, 389, 195, 98).
        up_transforms: sparse (V_l, V_{l+1}) matrices, finest first.
    """

    def __init__(
        self, config: CmrConfig, spirals: Sequence[Tensor], up_transforms: Sequence[Tensor]
    ) -> None:
        super().__init__()
        self.config = config
        make = resnet18 if config.backbone == 'resnet18' else resnet50
        backbones = [make(LATENT_SIZE) for _ in range(3)]
        channels = backbones[0].stage_channels
        prior_channels = 1 if config.variant == 'sg' else NUM_KEYPOINTS
        self.backbone1 = _Encoder(backbones[0], None, keep_fc=False)
        self.backbone2 = _Encoder(backbones[1], STEM_FEATURE_CHANNELS + prior_channels, True)
        stage3_in = STEM_FEATURE_CHANNELS + NUM_KEYPOINTS + len(CMR_FINGERTIP_PAIRS)
        self.backbone3 = _Encoder(backbones[2], stage3_in, keep_fc=True)
        prior_layers = _map_decoder(channels)
        prior_head = ConvBlock(channels[0], prior_channels, relu=False, norm=False)
        if config.variant == 'sg':
            self.mask_delayer, self.mask_head = prior_layers, prior_head
        else:
            self.uv_prior_delayer, self.uv_prior_head = prior_layers, prior_head
        self.uv_delayer = _map_decoder(channels)
        self.uv_head = ConvBlock(channels[0], NUM_KEYPOINTS, relu=False, norm=False)
        self.uvm_delayer = _map_decoder(channels)
        self.uvm_head = ConvBlock(channels[0], NUM_KEYPOINTS + 1, relu=False, norm=False)
        self.attention = SelfAttention(LATENT_SIZE)
        # The official model holds the decoder's ``de_layers`` and ``heads`` itself.
        decoder = SpiralMeshDecoder(LATENT_SIZE, DECODER_CHANNELS, spirals, up_transforms)
        self.de_layers, self.heads = decoder.de_layers, decoder.heads
        self.upsamples = decoder.upsamples
        self.register_buffer('pixel_mean', torch.full((1, 3, 1, 1), PIXEL_MEAN), persistent=False)
        self.register_buffer('pixel_std', torch.full((1, 3, 1, 1), PIXEL_STD), persistent=False)
        self.hierarchy_loaded = True

    pixel_mean: Tensor
    pixel_std: Tensor

    def set_mesh_hierarchy(
        self, spirals: Sequence[Tensor], up_transforms: Sequence[Tensor]
    ) -> None:
        """Installs the spiral indices and up-sampling matrices (they are not in checkpoints).

        Args:
            spirals: (V_l, 27) per level, finest first (``cmr_spirals`` of the user's
                ``transform.pkl``).
            up_transforms: sparse (V_l, V_{l+1}) per level, finest first.

        Raises:
            ValueError: sizes differ from the model's levels.
        """
        set_decoder_hierarchy(self.de_layers, self.heads, self.upsamples, spirals, up_transforms)
        self.hierarchy_loaded = True

    def _prior(self, features: list[Tensor]) -> Tensor:
        if self.config.variant == 'sg':
            return _decode_map(self.mask_delayer, self.mask_head, features)
        return _decode_map(self.uv_prior_delayer, self.uv_prior_head, features)

    def forward(self, images: Tensor) -> CmrOutput:
        """(B, 3, 224, 224) RGB right-hand crops in [0, 1] -> CmrOutput.

        Raises:
            RuntimeError: built by ``build_cmr`` without the mesh hierarchy.
        """
        if not self.hierarchy_loaded:
            raise RuntimeError(
                'CMR needs its mesh hierarchy (template/transform.pkl of SeanChenxy/HandMesh, '
                'MANO-derived, supplied by the user): load it with load_cmr_transforms and call '
                'set_mesh_hierarchy(cmr_spirals(...), up_transforms) (docs/cmr.md)'
            )
        x = (images - self.pixel_mean) / self.pixel_std
        stem, features1 = self.backbone1(x)
        prior = self._prior(features1)
        reduced2, features2 = self.backbone2(torch.cat((stem, prior), dim=1))
        heatmaps2 = _decode_map(self.uv_delayer, self.uv_head, features2)
        # a + b, not [:, [a, b]].sum(): the same values without a list index (a host copy).
        pairs = [heatmaps2[:, a : a + 1] + heatmaps2[:, b : b + 1] for a, b in CMR_FINGERTIP_PAIRS]
        base = reduced2 if self.config.variant == 'sg' else stem
        _, features3 = self.backbone3(torch.cat([base, heatmaps2, *pairs], dim=1))
        latent = self.backbone3.latent(features3[0])
        final = _decode_map(self.uvm_delayer, self.uvm_head, features3)
        levels = decode_mesh(self.attention(latent), self.de_layers, self.heads, self.upsamples)
        levels_m = tuple(level * MESH_STD_M for level in levels)
        heatmaps = final[:, :NUM_KEYPOINTS]
        uv, peak = heatmap_argmax(heatmaps, images.shape[-1])
        return CmrOutput(
            vertices_m=levels_m[0],
            mesh_levels_m=levels_m,
            heatmaps=heatmaps,
            silhouette=final[:, NUM_KEYPOINTS],
            keypoints_crop_px=uv,
            keypoint_confidence=peak,
            prior=prior,
            heatmaps_stage2=heatmaps2,
        )


def cmr_spirals(
    vertices: Sequence[np.ndarray], faces: Sequence[np.ndarray], length: int = SPIRAL_LENGTH
) -> list[Tensor]:
    """Spiral indices of every level but the coarsest, as the official ``spiral_tramsform``."""
    return [spiral_indices(v, f, length) for v, f in zip(vertices[:-1], faces[:-1], strict=True)]


def build_cmr(name: str) -> CmrModel:
    """A registered variant, fresh weights, *no* mesh hierarchy yet (the registry's builder).

    The published level sizes fix every parameter shape, so the model checks and loads official
    checkpoints (also on 'meta'); it runs only after ``set_mesh_hierarchy``, and says so.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name not in CMR_VARIANTS:
        raise ValueError(f'unknown CMR variant {name!r}; known: {", ".join(CMR_VARIANTS)}')
    spirals, ups = [], []
    for fine, coarse in zip(CMR_HAND_LEVELS[:-1], CMR_HAND_LEVELS[1:], strict=True):
        spirals.append(torch.zeros(fine, SPIRAL_LENGTH, dtype=torch.long))
        ups.append(
            torch.sparse_coo_tensor(
                torch.zeros(2, 0, dtype=torch.long), [], (fine, coarse), check_invariants=True
            )
        )
    model = CmrModel(CMR_VARIANTS[name], spirals, ups)
    model.hierarchy_loaded = False
    return model


def cmr_from_hierarchy(name: str, hierarchy: CmrMeshHierarchy) -> CmrModel:
    """A registered variant over the user's mesh hierarchy; spirals regenerated from it."""
    model = build_cmr(name)
    model.set_mesh_hierarchy(
        cmr_spirals(hierarchy.vertices, hierarchy.faces), hierarchy.up_transforms
    )
    return model
