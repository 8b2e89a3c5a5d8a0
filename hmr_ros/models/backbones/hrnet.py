"""HRNet (classification form, feature-map output) in plain torch, with the official names.

Wang et al., "Deep High-Resolution Representation Learning for Visual Recognition" (TPAMI 2020),
in the ImageNet classification variant FastMETRO-L-H64 uses as its backbone (``cls_hrnet`` of
HRNet-Image-Classification, as vendored by FastMETRO's ``hrnet_cls_net_featmaps.py``), which
returns the 2048-channel map before pooling:

1. stem: two 3x3 stride-2 convolutions (64 channels), then ``layer1`` (4 bottlenecks, 256 out);
2. stages 2-4 keep 2, 3, 4 parallel branches of widths C, 2C, 4C, 8C (HRNet-W64: C = 64),
   each a stack of ``HighResolutionModule`` (4 basic blocks per branch, then ``fuse_layers``
   exchanging information between resolutions: 1x1 conv + BN + nearest upsampling from lower
   resolutions, chains of 3x3 stride-2 conv + BN from higher ones, summed, ReLU); the
   ``transition`` layers adapt widths and start each new branch from the lowest one;
3. head: ``incre_modules`` (one bottleneck per branch to 128, 256, 512, 1024 channels),
   ``downsamp_modules`` (3x3 stride-2 conv + BN + ReLU adding each branch into the next) and
   ``final_layer`` (1x1 conv to 2048 + BN + ReLU): 2048 x 7 x 7 for a 224 x 224 input.

The ImageNet ``classifier`` (Linear 2048 -> 1000) is not part of this module: FastMETRO never
uses it, though its HRNet files keep it (checkpoints.fastmetro_layout drops it). HRNet-W64 has
126,010,944 parameters here, 128,059,944 with the classifier (the 128.1M of FastMETRO's Table 2
and of HRNet-W64-C in the HRNet paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from hmr_ros.models.backbones.resnet import BN_EPS, Bottleneck

__all__ = [
    'HEAD_CHANNELS',
    'HRNet',
    'HRNetConfig',
    'hrnet_tiny_config',
    'hrnet_w64_config',
]

STEM_CHANNELS = 64
LAYER1_WIDTH = 64
HEAD_CHANNELS = (32, 64, 128, 256)
"""Bottleneck widths of the incre_modules (x4 expansion: 128, 256, 512, 1024 channels)."""
FINAL_CHANNELS = 2048
EXPANSION = 4


@dataclass(frozen=True)
class HRNetConfig:
    """Sizes of an HRNet classification trunk.

    Attributes:
        width: C, the first branch's width (HRNet-W64: 64); branch i has C 2^i channels.
        modules_per_stage: HighResolutionModules in stages 2, 3, 4 (1, 4, 3).
        blocks_per_branch: basic blocks per branch in every module (4).
        layer1_blocks: bottlenecks in layer1 (4).
        head_channels: incre_module widths (32, 64, 128, 256).
        final_channels: channels of the output map (2048).
    """

    width: int = 64
    modules_per_stage: tuple[int, int, int] = (1, 4, 3)
    blocks_per_branch: int = 4
    layer1_blocks: int = 4
    head_channels: tuple[int, int, int, int] = HEAD_CHANNELS
    final_channels: int = FINAL_CHANNELS


def hrnet_w64_config() -> HRNetConfig:
    """HRNet-W64 (FastMETRO-L-H64's backbone)."""
    return HRNetConfig()


def hrnet_tiny_config() -> HRNetConfig:
    """Test-only: width 4, one module per stage, one block per branch; same module tree."""
    return HRNetConfig(
        width=4,
        modules_per_stage=(1, 1, 1),
        blocks_per_branch=1,
        layer1_blocks=1,
        head_channels=(4, 4, 8, 8),
        final_channels=32,
    )


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BN, identity or projected shortcut."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.bn1 = _bn(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = _bn(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, bias=False), _bn(channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C, H, W)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + shortcut)


def _bottleneck(in_channels: int, width: int) -> Bottleneck:
    """ResNet's bottleneck at stride 1 (HRNet's is the same block, same names)."""
    return Bottleneck(in_channels, width, 1, in_channels != width * EXPANSION)


def _down_chain(in_channels: int, out_channels: int, steps: int) -> nn.Sequential:
    """``steps`` 3x3 stride-2 conv + BN; ReLU after all but the last (fuse layers)."""
    layers: list[nn.Module] = []
    for step in range(steps):
        last = step == steps - 1
        out = out_channels if last else in_channels
        parts: list[nn.Module] = [nn.Conv2d(in_channels, out, 3, 2, 1, bias=False), _bn(out)]
        if not last:
            parts.append(nn.ReLU(inplace=False))
        layers.append(nn.Sequential(*parts))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then the multi-resolution fusion (module docstring)."""

    def __init__(self, channels: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(blocks)]) for c in channels
        )
        fuse: list[nn.ModuleList] = []
        for i, target in enumerate(channels):
            row: list[nn.Module | None] = []
            for j, source in enumerate(channels):
                if j > i:  # lower resolution: 1x1 conv + BN, upsampled in forward
                    row.append(
                        nn.Sequential(nn.Conv2d(source, target, 1, bias=False), _bn(target))
                    )
                elif j == i:
                    row.append(None)
                else:
                    row.append(_down_chain(source, target, i - j))
            fuse.append(nn.ModuleList(row))  # type: ignore[arg-type]  # None: no layer, as official
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, inputs: list[Tensor]) -> list[Tensor]:
        """One feature map per branch, highest resolution first -> as many, fused."""
        features = [branch(x) for branch, x in zip(self.branches, inputs, strict=True)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            total = features[i]
            for j, layer in enumerate(cast(nn.ModuleList, row)):
                if j == i:
                    continue
                y = layer(features[j])
                if j > i:
                    y = F.interpolate(y, scale_factor=2 ** (j - i), mode='nearest')
                total = total + y
            fused.append(self.relu(total))
        return fused


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        _bn(out_channels),
        nn.ReLU(inplace=True),
    )


class HRNet(nn.Module):
    """HRNet classification trunk returning the final 2048-channel map (module docstring).

    Input (B, 3, H, W) ImageNet-normalised RGB; output (B, final_channels, H / 32, W / 32).
    """

    def __init__(self, config: HRNetConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn1 = _bn(STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn2 = _bn(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        layer1 = [_bottleneck(STEM_CHANNELS, LAYER1_WIDTH)]
        layer1 += [
            _bottleneck(LAYER1_WIDTH * EXPANSION, LAYER1_WIDTH)
            for _ in range(config.layer1_blocks - 1)
        ]
        self.layer1 = nn.Sequential(*layer1)

        previous: tuple[int, ...] = (LAYER1_WIDTH * EXPANSION,)
        for stage, modules in enumerate(config.modules_per_stage, start=2):
            channels = tuple(config.width * 2**i for i in range(stage))
            setattr(self, f'transition{stage - 1}', self._transition(previous, channels))
            setattr(
                self,
                f'stage{stage}',
                nn.Sequential(
                    *[
                        HighResolutionModule(channels, config.blocks_per_branch)
                        for _ in range(modules)
                    ]
                ),
            )
            previous = channels

        head = config.head_channels
        self.incre_modules = nn.ModuleList(
            nn.Sequential(_bottleneck(c, w)) for c, w in zip(previous, head, strict=True)
        )
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(head[i] * EXPANSION, head[i + 1] * EXPANSION, 3, 2, 1),
                _bn(head[i + 1] * EXPANSION),
                nn.ReLU(inplace=True),
            )
            for i in range(len(head) - 1)
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(head[-1] * EXPANSION, config.final_channels, 1),
            _bn(config.final_channels),
            nn.ReLU(inplace=True),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _transition(previous: tuple[int, ...], current: tuple[int, ...]) -> nn.ModuleList:
        """Width adapters for kept branches (None when equal) and the new branch's downsampling."""
        layers: list[nn.Module | None] = []
        for i, channels in enumerate(current):
            if i < len(previous):
                same = channels == previous[i]
                layers.append(None if same else _conv_bn_relu(previous[i], channels, 1))
            else:
                steps = i + 1 - len(previous)
                chain = [
                    _conv_bn_relu(previous[-1], channels if k == steps - 1 else previous[-1], 2)
                    for k in range(steps)
                ]
                layers.append(nn.Sequential(*chain))
        return nn.ModuleList(layers)  # type: ignore[arg-type]  # None: branch kept as is

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, final_channels, H / 32, W / 32)."""
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(images))))))
        branches = [self.layer1(x)]
        for stage in range(2, 2 + len(self.config.modules_per_stage)):
            transition: nn.ModuleList = getattr(self, f'transition{stage - 1}')
            inputs = []
            for i, layer in enumerate(transition):
                if i < len(branches):
                    inputs.append(branches[i] if layer is None else layer(branches[i]))
                else:  # a new, lower-resolution branch starts from the lowest one
                    inputs.append(layer(branches[-1]))
            branches = inputs
            for module in getattr(self, f'stage{stage}'):
                branches = module(branches)
        y = self.incre_modules[0](branches[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](branches[i + 1]) + down(y)
        return self.final_layer(y)
