"""ResNet (bottleneck) feature extractor in plain torch, with torchvision's parameter names.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = [
    'BN_EPS',
    'Bottleneck',
    'ResNetConfig',
    'resnet50_config',
    'resnet_trunk',
    'resnet_tiny_config',
]

BN_EPS = 1e-5
"""torchvision's BatchNorm epsilon (the PyTorch default)."""

BOTTLENECK_EXPANSION = 4
"""Output channels of a bottleneck block / its inner width."""

STEM_CHANNELS = 64


@dataclass(frozen=True)
class ResNetConfig:
    """Sizes of a bottleneck ResNet trunk.

    Attributes:
        blocks_per_stage: bottleneck blocks in layer1 ... layer4 (ResNet-50: 3, 4, 6, 3).
        base_width: inner width of layer1's blocks; doubles per stage (ResNet-50: 64).
        stem_channels: channels of the 7x7 stem convolution (64).
    """

    blocks_per_stage: tuple[int, int, int, int] = (3, 4, 6, 3)
    base_width: int = 64
    stem_channels: int = STEM_CHANNELS

    @property
    def out_channels(self) -> int:
        """Channels of the final feature map: base_width * 8 * 4 (ResNet-50: 2048)."""
        return self.base_width * 8 * BOTTLENECK_EXPANSION


def resnet50_config() -> ResNetConfig:
    """ResNet-50: 3, 4, 6, 3 blocks, width 64; 2048 output channels."""
    return ResNetConfig()


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


def _stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    out_channels = width * BOTTLENECK_EXPANSION
    project = stride != 1 or in_channels != out_channels
    layers = [Bottleneck(in_channels, width, stride, project)]
    layers += [Bottleneck(out_channels, width, 1, False) for _ in range(blocks - 1)]
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
    in_channels = stem
    for index, blocks in enumerate(config.blocks_per_stage):
        width = config.base_width * 2**index
        children.append(_stage(in_channels, width, blocks, 1 if index == 0 else 2))
        in_channels = width * BOTTLENECK_EXPANSION
    trunk = nn.Sequential(*children)
    _initialise([trunk])
    return trunk
