"""Cross-attention transformer decoder of HaMeR's MANO head (and the HMR-Adapter blocks).

A small set of query tokens attends to itself and to image tokens (the ViT feature map):
each layer is pre-norm self-attention, pre-norm cross-attention, pre-norm feed-forward, every
step residual (docs/model-reference.md, A.4). Details kept for checkpoint compatibility:

- Official parameter names: ``layers.{i}.{0,1,2}`` are ``PreNorm`` wrappers with ``norm`` and
  ``fn``; attention projections ``to_qkv`` / ``to_q`` / ``to_kv`` have no bias; outputs
  ``to_out.0``; feed-forward ``net.0`` and ``net.3``.
- ``PreNorm`` normalises only the query stream (LayerNorm eps 1e-5, PyTorch's default); the
  context is used as given. There is no final norm after the last layer.

Extension point for the hand adapter (HMR-Adapter paper, section 3.3): every
``DecoderLayer`` exposes its three residual steps, so a wrapper can keep the frozen block and
add a parallel branch to its cross-attention output without touching the block::

    x = x + layer.attend_self(x)
    x = x + layer.attend_context(x, image_tokens) + guided_branch(x, body_tokens)
    x = x + layer.feed_forward(x)

``layer.self_attention.fn`` and ``layer.cross_attention.fn`` give the frozen SA and the
Wq/Wk/Wv to initialise the parallel SA' and CA' from (copy.deepcopy or load_state_dict).
"""

import torch
import torch.nn.functional as F
from torch import nn

PRENORM_EPS = 1e-5
"""LayerNorm epsilon of the decoder's PreNorm (PyTorch default; the ViT uses 1e-6)."""


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, H*D) -> (B, H, N, D)."""
    b, n, _ = x.shape
    return x.reshape(b, n, num_heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, D) -> (B, N, H*D)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def multi_head_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, fused: bool
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head, on merged-head tensors.

    Args:
        q: (B, Nq, H*D) queries.
        k: (B, Nk, H*D) keys.
        v: (B, Nk, H*D) values.
        num_heads: H.
        fused: use ``F.scaled_dot_product_attention``; False runs the explicit reference math.

    Returns:
        (B, Nq, H*D).
    """
    qh, kh, vh = (_split_heads(t, num_heads) for t in (q, k, v))
    if fused:
        out = F.scaled_dot_product_attention(qh, kh, vh)
    else:
        scale = qh.shape[-1] ** -0.5
        out = ((qh * scale) @ kh.transpose(-2, -1)).softmax(dim=-1) @ vh
    return _merge_heads(out)


class SelfAttention(nn.Module):
    """Multi-head self-attention, no qkv bias (keys ``to_qkv``, ``to_out.0``).

    Attributes:
        fused: True uses ``F.scaled_dot_product_attention``; False the reference path.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.fused = True
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        return self.to_out(multi_head_attention(q, k, v, self.heads, self.fused))


class CrossAttention(nn.Module):
    """Multi-head attention from queries to a context, no projection bias.

    Keys ``to_q`` (dim -> inner), ``to_kv`` (context_dim -> 2 inner, k then v), ``to_out.0``.

    Attributes:
        fused: True uses ``F.scaled_dot_product_attention``; False the reference path.
    """

    def __init__(
        self, dim: int, context_dim: int, heads: int, dim_head: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.fused = True
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Queries x (B, N, dim) attend to context (B, M, context_dim) -> (B, N, dim)."""
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q = self.to_q(x)
        return self.to_out(multi_head_attention(q, k, v, self.heads, self.fused))


class FeedForward(nn.Module):
    """Linear, GELU, Dropout, Linear, Dropout (keys ``net.0``, ``net.3``)."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        return self.net(x)


class PreNorm(nn.Module):
    """fn(LayerNorm(x), *extra): only the query stream x is normalised (keys ``norm``, ``fn``)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=PRENORM_EPS)
        self.fn = fn

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """Normalise x, then call fn(x, *extra) (extra = the context for cross-attention)."""
        return self.fn(self.norm(x), *extra)


class DecoderLayer(nn.ModuleList):
    """One decoder block: [PreNorm(SelfAttention), PreNorm(CrossAttention), PreNorm(FeedForward)].

    A ``ModuleList`` so that parameters keep HaMeR's names ``{0,1,2}.norm`` / ``{0,1,2}.fn``.
    ``forward(x, context)`` runs the three residual steps; adapters call the steps one by one
    (see the module docstring).
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        heads: int,
        dim_head: int,
        mlp_dim: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            [
                PreNorm(dim, SelfAttention(dim, heads, dim_head, dropout)),
                PreNorm(dim, CrossAttention(dim, context_dim, heads, dim_head, dropout)),
                PreNorm(dim, FeedForward(dim, mlp_dim, dropout)),
            ]
        )

    @property
    def self_attention(self) -> PreNorm:
        """The block's PreNorm(SelfAttention) (index 0)."""
        return self[0]  # type: ignore[return-value]

    @property
    def cross_attention(self) -> PreNorm:
        """The block's PreNorm(CrossAttention) (index 1)."""
        return self[1]  # type: ignore[return-value]

    @property
    def feed_forward_block(self) -> PreNorm:
        """The block's PreNorm(FeedForward) (index 2)."""
        return self[2]  # type: ignore[return-value]

    def attend_self(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention residual update SA(LN(x)), (B, N, dim); add it to x."""
        return self.self_attention(x)

    def attend_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Cross-attention residual update CA(LN(x), context), (B, N, dim); add it to x."""
        return self.cross_attention(x, context)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feed-forward residual update FF(LN(x)), (B, N, dim); add it to x."""
        return self.feed_forward_block(x)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Run the block.

        Args:
            x: (B, N, dim) query tokens.
            context: (B, M, context_dim) image tokens.

        Returns:
            (B, N, dim) updated query tokens.
        """
        x = x + self.attend_self(x)
        x = x + self.attend_context(x, context)
        return x + self.feed_forward(x)


class TransformerCrossAttn(nn.Module):
    """A stack of ``DecoderLayer`` (key ``layers``); no final norm."""

    def __init__(
        self,
        dim: int,
        depth: int,
        context_dim: int,
        heads: int,
        dim_head: int,
        mlp_dim: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(dim, context_dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) queries, (B, M, context_dim) context -> (B, N, dim)."""
        for layer in self.layers:
            x = layer(x, context)
        return x


class TransformerDecoder(nn.Module):
    """Token embedding + positional embedding + ``TransformerCrossAttn`` (HaMeR's decoder).

    Keys: ``to_token_embedding``, ``pos_embedding`` (1, num_tokens, dim), ``transformer.*``.
    """

    def __init__(
        self,
        num_tokens: int,
        token_dim: int,
        dim: int,
        depth: int,
        context_dim: int,
        heads: int,
        dim_head: int,
        mlp_dim: int,
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.to_token_embedding = nn.Linear(token_dim, dim)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_tokens, dim))
        self.dropout = nn.Dropout(emb_dropout)
        self.transformer = TransformerCrossAttn(
            dim, depth, context_dim, heads, dim_head, mlp_dim, dropout
        )

    @property
    def layers(self) -> nn.ModuleList:
        """The decoder layers (``transformer.layers``), each a ``DecoderLayer``."""
        return self.transformer.layers

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Query tokens before the layers.

        Args:
            inputs: (B, num_tokens, token_dim) raw query inputs (HaMeR: zeros of token_dim 1).

        Returns:
            (B, num_tokens, dim).
        """
        x = self.to_token_embedding(inputs) + self.pos_embedding[:, : inputs.shape[1]]
        return self.dropout(x)

    def set_fused_attention(self, enabled: bool) -> None:
        """Switch all attention modules between the fused and the reference path."""
        for module in self.modules():
            if isinstance(module, (SelfAttention, CrossAttention)):
                module.fused = enabled

    def forward(self, inputs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Decode.

        Args:
            inputs: (B, num_tokens, token_dim) query inputs.
            context: (B, M, context_dim) image tokens.

        Returns:
            (B, num_tokens, dim) output tokens.
        """
        return self.transformer(self.embed(inputs), context)
