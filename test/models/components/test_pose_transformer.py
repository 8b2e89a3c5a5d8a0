"""Tests for hmr_ros.models.components.pose_transformer (HaMeR decoder blocks)."""

import torch
from torch import nn

from hmr_ros.models.components.pose_transformer import (
    PRENORM_EPS,
    DecoderLayer,
    TransformerDecoder,
)

DIM, CONTEXT_DIM, HEADS, DIM_HEAD, MLP = 24, 20, 3, 8, 40


def tiny_decoder(depth: int = 2) -> TransformerDecoder:
    torch.manual_seed(0)
    return TransformerDecoder(
        num_tokens=1,
        token_dim=1,
        dim=DIM,
        depth=depth,
        context_dim=CONTEXT_DIM,
        heads=HEADS,
        dim_head=DIM_HEAD,
        mlp_dim=MLP,
    ).eval()


def inputs(batch: int = 3, tokens: int = 1, context: int = 7):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, tokens, DIM, generator=g)
    ctx = torch.randn(batch, context, CONTEXT_DIM, generator=g)
    return x, ctx


def spec_layer(layer: DecoderLayer, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """The block as the reference spec states it (A.4), written with explicit weights:
    x = SA(LN(x)) + x; x = CA(LN(x), ctx) + x; x = FF(LN(x)) + x, LN eps 1e-5 on x only,
    qkv chunked q, k, v; kv chunked k, v; heads 'b n (h d)'."""
    sa, ca, ff = layer[0], layer[1], layer[2]

    def ln(mod, t):
        return nn.functional.layer_norm(t, (DIM,), mod.norm.weight, mod.norm.bias, 1e-5)

    def attend(q, k, v):
        def split(t):
            return t.reshape(t.shape[0], t.shape[1], HEADS, DIM_HEAD).permute(0, 2, 1, 3)

        w = (split(q) @ split(k).transpose(-1, -2) * DIM_HEAD**-0.5).softmax(-1)
        out = w @ split(v)
        return out.permute(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], HEADS * DIM_HEAD)

    inner = HEADS * DIM_HEAD
    y = ln(sa, x) @ sa.fn.to_qkv.weight.T
    out = attend(y[..., :inner], y[..., inner : 2 * inner], y[..., 2 * inner :])
    x = x + out @ sa.fn.to_out[0].weight.T + sa.fn.to_out[0].bias
    kv = ctx @ ca.fn.to_kv.weight.T
    q = ln(ca, x) @ ca.fn.to_q.weight.T
    out = attend(q, kv[..., :inner], kv[..., inner:])
    x = x + out @ ca.fn.to_out[0].weight.T + ca.fn.to_out[0].bias
    h = nn.functional.gelu(ln(ff, x) @ ff.fn.net[0].weight.T + ff.fn.net[0].bias)
    return x + h @ ff.fn.net[3].weight.T + ff.fn.net[3].bias


def test_official_key_names_of_one_layer():
    decoder = tiny_decoder(depth=1)
    keys = {k: tuple(v.shape) for k, v in decoder.state_dict().items()}
    inner = HEADS * DIM_HEAD
    p = 'transformer.layers.0.'
    assert keys == {
        'pos_embedding': (1, 1, DIM),
        'to_token_embedding.weight': (DIM, 1),
        'to_token_embedding.bias': (DIM,),
        p + '0.norm.weight': (DIM,),
        p + '0.norm.bias': (DIM,),
        p + '0.fn.to_qkv.weight': (3 * inner, DIM),
        p + '0.fn.to_out.0.weight': (DIM, inner),
        p + '0.fn.to_out.0.bias': (DIM,),
        p + '1.norm.weight': (DIM,),
        p + '1.norm.bias': (DIM,),
        p + '1.fn.to_kv.weight': (2 * inner, CONTEXT_DIM),
        p + '1.fn.to_q.weight': (inner, DIM),
        p + '1.fn.to_out.0.weight': (DIM, inner),
        p + '1.fn.to_out.0.bias': (DIM,),
        p + '2.norm.weight': (DIM,),
        p + '2.norm.bias': (DIM,),
        p + '2.fn.net.0.weight': (MLP, DIM),
        p + '2.fn.net.0.bias': (MLP,),
        p + '2.fn.net.3.weight': (DIM, MLP),
        p + '2.fn.net.3.bias': (DIM,),
    }


def test_prenorm_eps_is_torch_default():
    decoder = tiny_decoder()
    norms = [m for m in decoder.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 3 * 2
    assert all(m.eps == PRENORM_EPS == 1e-5 for m in norms)


def test_layer_matches_spec_restatement():
    decoder = tiny_decoder()
    x, ctx = inputs(tokens=2)
    layer = decoder.layers[0]
    torch.testing.assert_close(layer(x, ctx), spec_layer(layer, x, ctx), atol=1e-5, rtol=1e-5)


def test_context_is_not_normalised():
    """Scaling the context changes the output (a LayerNorm on it would cancel the scale)."""
    decoder = tiny_decoder()
    x, ctx = inputs()
    layer = decoder.layers[0]
    assert not torch.allclose(layer(x, ctx), layer(x, 3.0 * ctx), atol=1e-4)


def test_fused_matches_reference_attention():
    decoder = tiny_decoder()
    x, ctx = inputs(tokens=4)
    fused = decoder(x[..., :1], ctx)
    decoder.set_fused_attention(False)
    reference = decoder(x[..., :1], ctx)
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)


def test_layer_steps_compose_to_forward_and_allow_a_parallel_branch():
    """The adapter recipe from the module docstring: a zero parallel branch is a no-op, a
    non-zero one changes the output."""
    decoder = tiny_decoder()
    x, ctx = inputs()
    layer = decoder.layers[1]

    def stepped(branch):
        y = x + layer.attend_self(x)
        y = y + layer.attend_context(y, ctx) + branch(y)
        return y + layer.feed_forward(y)

    torch.testing.assert_close(stepped(torch.zeros_like), layer(x, ctx))
    assert not torch.allclose(stepped(lambda y: 0.1 * torch.ones_like(y)), layer(x, ctx))
    assert layer.self_attention is layer[0] and layer.cross_attention is layer[1]


def test_zero_query_input_uses_only_the_embedding_bias():
    decoder = tiny_decoder()
    _, ctx = inputs()
    zeros = torch.zeros(3, 1, 1)
    before = decoder(zeros, ctx)
    with torch.no_grad():
        decoder.to_token_embedding.weight.mul_(5.0)
    torch.testing.assert_close(decoder(zeros, ctx), before)
