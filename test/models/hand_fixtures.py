"""Inputs shared by the hand adapter and hand ablation tests: the tiny hand expert and crops."""

import torch

from hmr_ros.models.hand_expert import HandExpert, build_hand_expert

BATCH = 3


def tiny_expert(seed: int = 0) -> HandExpert:
    """hamer_tiny with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return build_hand_expert('hamer_tiny').eval()


def crops(batch: int = BATCH, seed: int = 1) -> torch.Tensor:
    """(batch, 3, 256, 256) random normalised hand crops."""
    return torch.randn(batch, 3, 256, 256, generator=torch.Generator().manual_seed(seed))
