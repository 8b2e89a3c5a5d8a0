"""ResNet feature extractors in plain torch, with torchvision's parameter names.

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), in the "ResNet v1.5"
form torchvision ships (stride 2 in the 3x3 convolution of each stage's first block, not in the
1x1). torchvision cannot be installed here, and the seed models only need the convolutional
trunk, so it is written out: a stem (7x7 conv stride 2, BN, ReLU, 3x3 max-pool stride 2) and
four stages of bottleneck blocks (1x1 reduce, 3x3, 1x1 expand x4; a 1x1 conv + BN shortcut on
the first block of a stage). Names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv2``,
``layer1.0.downsample.0``), so ImageNet weights and checkpoints that embed them load by name.

FastMETRO keeps the ResNet-50 children up to ``layer4`` in an ``nn.Sequential``, which numbers
them: ``backbone.0`` (conv1), ``backbone.1`` (bn1), ``backbone.4`` ... ``backbone.7``
(layer1 ... layer4); :func:`resnet_trunk` builds that container.

ResNet-50 at 224 x 224 gives a 2048 x 7 x 7 map (stride 32) with 23,508,032 parameters
without the classifier (the 23.5M of FastMETRO's Table 2).

CMR uses whole torchvision models (ResNet-18 with basic blocks, or ResNet-50) and reaches their
stages by attribute, ``fc`` included (its 1000-d output is CMR's latent): :class:`ResNet` is that
model, with torchvision's counts, ResNet-18 11,689,512 and ResNet-50 25,557,032 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    'BN_EPS',
    'BasicBlock',
    'Bottleneck',
    'ResNet',
    'ResNetConfig',
    'resnet18',
    'resnet18_config',
    'resnet50',
    'resnet50_config',
    'resnet_trunk',
    'resnet_tiny_config',
]

BlockKind = Literal['basic', 'bottleneck']

BN_EPS = 1e-5
"""torchvision's BatchNorm epsilon (the PyTorch default)."""

BOTTLENECK_EXPANSION = 4
"""Output channels of a bottleneck block / its inner width."""
BLOCK_EXPANSION = {'basic': 1, 'bottleneck': BOTTLENECK_EXPANSION}

STEM_CHANNELS = 64


@dataclass(frozen=True)
class ResNetConfig:
    """Sizes of a bottleneck ResNet trunk.

    Attributes:
        blocks_per_stage: bottleneck blocks in layer1 ... layer4 (ResNet-50: 3, 4, 6, 3).
        base_width: inner width of layer1's blocks; doubles per stage (ResNet-50: 64).
        stem_channels: channels of the 7x7 stem convolution (64).
        block: 'bottleneck' (1x1-3x3-1x1, ResNet-50) or 'basic' (two 3x3, ResNet-18).
    """

    blocks_per_stage: tuple[int, int, int, int] = (3, 4, 6, 3)
    base_width: int = 64
    stem_channels: int = STEM_CHANNELS
    block: BlockKind = 'bottleneck'

    def __post_init__(self) -> None:
        if self.block not in BLOCK_EXPANSION:
            raise ValueError(f"block must be 'basic' or 'bottleneck'; got {self.block!r}")

    @property
    def out_channels(self) -> int:
        """Channels of the final feature map: base_width * 8 * 4 (ResNet-50: 2048)."""
        return self.stage_channels[-1]

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        """Output channels of layer1 ... layer4 (ResNet-18: 64-512, ResNet-50: 256-2048)."""
        expansion = BLOCK_EXPANSION[self.block]
        c1, c2, c3, c4 = (self.base_width * 2**i * expansion for i in range(4))
        return c1, c2, c3, c4


def resnet50_config() -> ResNetConfig:
    """ResNet-50: 3, 4, 6, 3 blocks, width 64; 2048 output channels."""
    return ResNetConfig()


def resnet18_config() -> ResNetConfig:
    """ResNet-18: 2, 2, 2, 2 basic blocks, width 64; 512 output channels."""
    return ResNetConfig(blocks_per_stage=(2, 2, 2, 2), block='basic')


def resnet_tiny_config() -> ResNetConfig:
    """Test-only: one block per stage, width 4 (128 output channels); same module tree."""
    return ResNetConfig(blocks_per_stage=(1, 1, 1, 1), base_width=4, stem_channels=8)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand; identity or projected shortcut."""

    def __init__(self, in_channels: int, width: int, stride: int, project: bool) -> None:
        super().__init__()
        out_channels = width * BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=BN_EPS)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width, eps=BN_EPS)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if project:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels, eps=BN_EPS),
            )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, 4 width, H / stride, W / stride)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (the first carries the stride); identity or projected shortcut."""

    def __init__(self, in_channels: int, width: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=BN_EPS)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if project:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, width, 1, stride=stride, bias=False),
                nn.BatchNorm2d(width, eps=BN_EPS),
            )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, width, H / stride, W / stride)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


def _stage(
    in_channels: int, width: int, blocks: int, stride: int, block: BlockKind = 'bottleneck'
) -> nn.Sequential:
    kind = Bottleneck if block == 'bottleneck' else BasicBlock
    out_channels = width * BLOCK_EXPANSION[block]
    project = stride != 1 or in_channels != out_channels
    layers = [kind(in_channels, width, stride, project)]
    layers += [kind(out_channels, width, 1, False) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _initialise(modules: Sequence[nn.Module]) -> None:
    """Torchvision's init: Kaiming-normal (fan-out) convolutions, BN weight 1 and bias 0."""
    for root in modules:
        for module in root.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def resnet_trunk(config: ResNetConfig) -> nn.Sequential:
    """The ResNet without avgpool and fc, as FastMETRO's ``nn.Sequential`` (children 0-7).

    Children: 0 conv1 (7x7, stride 2), 1 bn1, 2 relu, 3 maxpool (3x3, stride 2), 4-7 layer1-4
    (strides 1, 2, 2, 2). Input (B, 3, H, W) ImageNet-normalised RGB; output
    (B, config.out_channels, H / 32, W / 32).
    """
    stem = config.stem_channels
    children: list[nn.Module] = [
        nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(stem, eps=BN_EPS),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    ]
    children += _stages(config)
    trunk = nn.Sequential(*children)
    _initialise([trunk])
    return trunk


def _stages(config: ResNetConfig) -> list[nn.Sequential]:
    stages, in_channels = [], config.stem_channels
    for index, blocks in enumerate(config.blocks_per_stage):
        width = config.base_width * 2**index
        stages.append(_stage(in_channels, width, blocks, 1 if index == 0 else 2, config.block))
        in_channels = config.stage_channels[index]
    return stages


class ResNet(nn.Module):
    """The whole torchvision model: named stem and stages, ``avgpool`` and ``fc``.

    Callers that need the stages (CMR's encoders) use the attributes, as the official code does
    with torchvision's model; ``forward`` returns the ``fc`` output.

    Args:
        config: block kind and sizes.
        num_classes: width of ``fc`` (1000, the ImageNet head CMR keeps as its latent).
    """

    def __init__(self, config: ResNetConfig, num_classes: int = 1000) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(3, config.stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem_channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1, self.layer2, self.layer3, self.layer4 = _stages(config)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(config.out_channels, num_classes)
        _initialise([self])

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        """Output channels of layer1 ... layer4."""
        return self.config.stage_channels

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, num_classes) logits."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 as torchvision builds it (basic blocks 2, 2, 2, 2)."""
    return ResNet(resnet18_config(), num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 as torchvision builds it (bottlenecks 3, 4, 6, 3)."""
    return ResNet(resnet50_config(), num_classes)
