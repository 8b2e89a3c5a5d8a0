"""ResNet-18/50 in plain torch, with torchvision's module names (He et al., CVPR 2016).

The light seed models (CMR's 2D-cue encoders, FastMETRO's CNN) use the torchvision ResNet and
save its parameters under torchvision's names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ``fc``). torchvision is not a dependency here, so the same
architecture is written out: ResNet v1.5 (the stride of a bottleneck on its 3x3 conv), BatchNorm,
a 7x7/2 stem and a 3x3/2 max-pool, four stages, global average pooling and ``fc``.

Parameter counts (torchvision's documentation): ResNet-18 11,689,512; ResNet-50 25,557,032.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ['RESNET_STAGE_CHANNELS', 'ResNet', 'ResNetConfig', 'resnet18', 'resnet50']

BlockKind = Literal['basic', 'bottleneck']

RESNET_STAGE_CHANNELS = {'basic': (64, 128, 256, 512), 'bottleneck': (256, 512, 1024, 2048)}
"""Output channels of layer1..layer4 per block kind."""

STEM_CHANNELS = 64


@dataclass(frozen=True)
class ResNetConfig:
    """Sizes of one ResNet.

    Attributes:
        block: 'basic' (two 3x3 convs, ResNet-18/34) or 'bottleneck' (1x1-3x3-1x1, ResNet-50+).
        depths: blocks per stage.
        num_classes: width of ``fc`` (1000 for the ImageNet head the seed models keep).
    """

    block: BlockKind
    depths: tuple[int, int, int, int]
    num_classes: int = 1000

    def __post_init__(self) -> None:
        if self.block not in RESNET_STAGE_CHANNELS:
            raise ValueError(f"block must be 'basic' or 'bottleneck'; got {self.block!r}")
        if len(self.depths) != 4 or min(self.depths) < 1:
            raise ValueError(f'depths must be 4 positive counts; got {self.depths}')


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (torchvision's names)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, v1.5), 1x1 expand by 4, residual."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class ResNet(nn.Module):
    """torchvision-layout ResNet; ``forward`` returns the ``fc`` logits.

    Callers that need the stages (CMR's encoders) use the attributes directly, as the
    official code does with torchvision's model.
    """

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        block = BasicBlock if config.block == 'basic' else Bottleneck
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = STEM_CHANNELS
        stages = []
        for index, depth in enumerate(config.depths):
            planes = STEM_CHANNELS * 2**index
            blocks: list[nn.Module] = []
            for i in range(depth):
                stride = 2 if (index > 0 and i == 0) else 1
                blocks.append(block(channels, planes, stride))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, config.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        """Output channels of layer1..layer4."""
        channels = RESNET_STAGE_CHANNELS[self.config.block]
        return channels[0], channels[1], channels[2], channels[3]

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, num_classes) logits."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 (basic blocks 2, 2, 2, 2)."""
    return ResNet(ResNetConfig('basic', (2, 2, 2, 2), num_classes))


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 (bottlenecks 3, 4, 6, 3)."""
    return ResNet(ResNetConfig('bottleneck', (3, 4, 6, 3), num_classes))
