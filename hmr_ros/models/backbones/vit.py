"""ViTPose-style plain Vision Transformer shared by the hand expert and the whole-body model.

Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021), as adapted for dense human
pose by ViTPose (Xu et al., NeurIPS 2022). Both HaMeR (ViT-H) and SMPLer-X (ViT-S/B/L/H with
31 task tokens) use the same block, so one module with the official parameter names loads
both (docs/model-reference.md, A.3 and B.3). Easy-to-miss details, each kept on purpose:

- The patch convolution has padding 2 (ViTPose's 4 + 2 (ratio // 2 - 1) with ratio 1); a
  256x192 image still gives a 16x12 grid, but every token differs from a padding-0 conv.
- ``pos_embed`` keeps a class slot from pre-training (1 + 192 rows) although there is no class
  token: every patch token gets ``pos_embed[:, 1:] + pos_embed[:, :1]``.
- SMPLer-X's task tokens are prepended after the positional embedding, so they get none.
- LayerNorm eps 1e-6, exact (erf) GELU, pre-norm blocks, a final ``last_norm``.

Attention has a fused path (``F.scaled_dot_product_attention``) and a readable reference path
with the same weights; tests compare the two.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-6
"""ViTPose's LayerNorm epsilon (the PyTorch default 1e-5 would shift every activation)."""

PATCH_PADDING_PX = 2
"""ViTPose patch-embedding padding for ratio 1: 4 + 2 * (1 // 2 - 1)."""

NUM_POS_EMBED_EXTRA_TOKENS = 1
"""The unused class-token slot kept in ``pos_embed`` (added to every patch token)."""

SMPLERX_NUM_TASK_TOKENS = 31
"""SMPLer-X encoder task tokens: 1 (root) + 1 (shape) + 2 (camera/face) + 2 + 25 (body joints)."""

INIT_STD = 0.02
"""Truncated-normal std for fresh weights (ViTPose/timm convention)."""


@dataclass(frozen=True)
class ViTConfig:
    """Sizes of a ViTPose-style ViT.

    Attributes:
        embed_dim: token width C.
        depth: number of transformer blocks.
        num_heads: attention heads; must divide embed_dim.
        mlp_ratio: MLP hidden width / C.
        patch_size: square patch side in pixels.
        img_size: (H, W) input size in pixels; fixes the token grid and ``pos_embed``.
        num_task_tokens: learned tokens prepended after the positional embedding (SMPLer-X: 31,
            HaMeR: 0).
        drop_path_rate: stochastic-depth rate of the last block (linear from 0); training only.
        qkv_bias: bias on the fused qkv projection.
        fused_attention: use ``F.scaled_dot_product_attention`` (False: the reference path).
    """

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: tuple[int, int] = (256, 192)
    num_task_tokens: int = 0
    drop_path_rate: float = 0.0
    qkv_bias: bool = True
    fused_attention: bool = True

    def __post_init__(self) -> None:
        for name in ('embed_dim', 'depth', 'num_heads', 'patch_size'):
            if getattr(self, name) <= 0:
                raise ValueError(f'ViTConfig.{name} must be positive, got {getattr(self, name)}')
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f'ViTConfig.embed_dim ({self.embed_dim}) must be divisible by num_heads '
                f'({self.num_heads})'
            )
        if self.mlp_ratio <= 0:
            raise ValueError(f'ViTConfig.mlp_ratio must be positive, got {self.mlp_ratio}')
        if self.num_task_tokens < 0:
            raise ValueError(f'ViTConfig.num_task_tokens must be >= 0, got {self.num_task_tokens}')
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(
                f'ViTConfig.drop_path_rate must be in [0, 1), got {self.drop_path_rate}'
            )
        if len(self.img_size) != 2 or min(self.img_size) < self.patch_size:
            raise ValueError(
                f'ViTConfig.img_size must be (H, W) with both >= patch_size '
                f'({self.patch_size}), got {self.img_size}'
            )

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (H', W') of the padded patch convolution."""
        h, w = self.img_size
        p = self.patch_size
        return (
            (h + 2 * PATCH_PADDING_PX - p) // p + 1,
            (w + 2 * PATCH_PADDING_PX - p) // p + 1,
        )

    @property
    def num_patches(self) -> int:
        """Number of patch tokens H' * W'."""
        gh, gw = self.grid_size
        return gh * gw

    @property
    def mlp_hidden_dim(self) -> int:
        """MLP hidden width."""
        return int(self.embed_dim * self.mlp_ratio)


def vit_small(num_task_tokens: int = 0, drop_path_rate: float = 0.1) -> ViTConfig:
    """ViTPose-S: C 384, 12 blocks, 12 heads of 32 (SMPLer-X S32 encoder with 31 tokens)."""
    return ViTConfig(384, 12, 12, num_task_tokens=num_task_tokens, drop_path_rate=drop_path_rate)


def vit_base(num_task_tokens: int = 0, drop_path_rate: float = 0.3) -> ViTConfig:
    """ViTPose-B: C 768, 12 blocks, 12 heads of 64 (SMPLer-X B32 encoder with 31 tokens)."""
    return ViTConfig(768, 12, 12, num_task_tokens=num_task_tokens, drop_path_rate=drop_path_rate)


def vit_large(num_task_tokens: int = 0, drop_path_rate: float = 0.5) -> ViTConfig:
    """ViTPose-L: C 1024, 24 blocks, 16 heads of 64 (SMPLer-X L32 encoder with 31 tokens)."""
    return ViTConfig(1024, 24, 16, num_task_tokens=num_task_tokens, drop_path_rate=drop_path_rate)


def vit_huge(num_task_tokens: int = 0, drop_path_rate: float = 0.55) -> ViTConfig:
    """ViTPose-H: C 1280, 32 blocks, 16 heads of 80 (HaMeR backbone; SMPLer-X H32 with 31)."""
    return ViTConfig(1280, 32, 16, num_task_tokens=num_task_tokens, drop_path_rate=drop_path_rate)


def vit_tiny(num_task_tokens: int = 0, drop_path_rate: float = 0.0) -> ViTConfig:
    """Test-only size: C 32, 2 blocks, 2 heads of 16; same input size and token grid."""
    return ViTConfig(32, 2, 2, num_task_tokens=num_task_tokens, drop_path_rate=drop_path_rate)


VIT_VARIANTS: dict[str, Callable[..., ViTConfig]] = {
    'vit_small': vit_small,
    'vit_base': vit_base,
    'vit_large': vit_large,
    'vit_huge': vit_huge,
    'vit_tiny': vit_tiny,
}
"""Named ViT sizes; each constructor accepts num_task_tokens and drop_path_rate."""


def vit_config(name: str, **overrides: object) -> ViTConfig:
    """Config of a named variant, with optional field overrides.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in VIT_VARIANTS:
        raise ValueError(f'unknown ViT variant {name!r}; known: {sorted(VIT_VARIANTS)}')
    return replace(VIT_VARIANTS[name](), **overrides)  # type: ignore[arg-type]


class ViTOutput(NamedTuple):
    """ViT outputs.

    Attributes:
        task_tokens: (B, T, C) the task tokens after the last norm (T = 0 for HaMeR).
        feature_map: (B, C, H', W') patch tokens after the last norm, channel-first, row-major
            from the top-left patch (16x12 for a 256x192 input).
    """

    task_tokens: torch.Tensor
    feature_map: torch.Tensor


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability ``rate`` (training).

    Kept samples are scaled by 1 / (1 - rate) so the expectation is unchanged; identity in eval.
    """

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to a residual branch x (B, ...)."""
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(mask_shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        """Show the rate when printing the model."""
        return f'rate={self.rate}'


class PatchEmbed(nn.Module):
    """Padded patch convolution: (B, 3, H, W) -> (B, H'W', C) tokens, row-major."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.grid_size = config.grid_size
        self.proj = nn.Conv2d(
            3,
            config.embed_dim,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            padding=PATCH_PADDING_PX,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed patches.

        Args:
            images: (B, 3, H, W) with (H, W) = config.img_size.

        Returns:
            (B, H' * W', C) patch tokens.

        Raises:
            ValueError: the input size does not give the configured token grid.
        """
        features = self.proj(images)
        if tuple(features.shape[-2:]) != self.grid_size:
            raise ValueError(
                f'ViT input {tuple(images.shape[-2:])} gives a {tuple(features.shape[-2:])} token '
                f'grid, but pos_embed was built for {self.grid_size}; resize the crops to the '
                "ViTConfig's img_size"
            )
        return features.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (keys ``qkv``, ``proj``).

    Attributes:
        fused: True runs ``F.scaled_dot_product_attention`` (flash/memory-efficient kernels on
            GPU); False runs the explicit softmax(q k^T / sqrt(d)) v reference path.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, fused: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over tokens x (B, N, C) -> (B, N, C)."""
        b, n, c = x.shape
        # (B, N, 3C) -> (3, B, heads, N, head_dim); q, k, v are slices 0, 1, 2 of the 3 axis.
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            weights = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = weights @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Two-layer MLP with exact GELU (keys ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN1(x)), then x + MLP(LN2(x))."""

    def __init__(self, config: ViTConfig, drop_path_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(
            config.embed_dim, config.num_heads, config.qkv_bias, config.fused_attention
        )
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(config.embed_dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(config.embed_dim, config.mlp_hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViT(nn.Module):
    """ViTPose-style backbone with optional task tokens; official parameter names.

    State-dict keys: ``pos_embed``, ``patch_embed.proj.*``, ``blocks.{i}.{norm1, attn.qkv,
    attn.proj, norm2, mlp.fc1, mlp.fc2}.*``, ``last_norm.*`` and ``task_tokens`` when T > 0.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        c = config.embed_dim
        self.patch_embed = PatchEmbed(config)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, config.num_patches + NUM_POS_EMBED_EXTRA_TOKENS, c)
        )
        if config.num_task_tokens > 0:
            self.task_tokens = nn.Parameter(torch.zeros(1, config.num_task_tokens, c))
        # Linear 0 -> drop_path_rate over the blocks (plain floats: works under a meta device).
        rates = [config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(Block(config, rate) for rate in rates)
        self.last_norm = nn.LayerNorm(c, eps=LAYER_NORM_EPS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh weights: truncated normal (std 0.02) for linears and embeddings, zero biases.

        The patch convolution keeps PyTorch's default init. Real weights come from checkpoints.
        """
        nn.init.trunc_normal_(self.pos_embed, std=INIT_STD)
        if self.config.num_task_tokens > 0:
            nn.init.trunc_normal_(self.task_tokens, std=INIT_STD)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def set_fused_attention(self, enabled: bool) -> None:
        """Switch every block between the fused and the reference attention path."""
        for block in self.blocks:
            block.attn.fused = enabled  # type: ignore[union-attr]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Input tokens before the blocks: task tokens, then patch tokens with pos-embed.

        Args:
            images: (B, 3, H, W) as config.img_size.

        Returns:
            (B, T + H'W', C).
        """
        tokens = self.patch_embed(images)
        tokens = tokens + self.pos_embed[:, NUM_POS_EMBED_EXTRA_TOKENS:] + self.pos_embed[:, :1]
        if self.config.num_task_tokens > 0:
            task = self.task_tokens.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
            tokens = torch.cat((task, tokens), dim=1)
        return tokens

    def forward(self, images: torch.Tensor) -> ViTOutput:
        """Run the backbone.

        Args:
            images: (B, 3, H, W) normalised as the checkpoint expects (HaMeR: ImageNet mean/std;
                SMPLer-X: [0, 1] RGB), (H, W) = config.img_size.

        Returns:
            ViTOutput with task_tokens (B, T, C) and feature_map (B, C, H', W').
        """
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        x = self.last_norm(x)
        t = self.config.num_task_tokens
        gh, gw = self.config.grid_size
        feature_map = x[:, t:].transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        return ViTOutput(task_tokens=x[:, :t], feature_map=feature_map)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())
