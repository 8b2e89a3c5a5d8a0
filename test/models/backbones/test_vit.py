"""Tests for hmr_ros.models.backbones.vit: official layout, sizes, conventions, fast path."""

import pytest
import torch
from torch import nn

from hmr_ros.models.backbones.vit import (
    LAYER_NORM_EPS,
    SMPLERX_NUM_TASK_TOKENS,
    ViT,
    ViTConfig,
    count_parameters,
    vit_base,
    vit_config,
    vit_huge,
    vit_large,
    vit_small,
    vit_tiny,
)


def tiny_vit(num_task_tokens: int = 0, seed: int = 0) -> ViT:
    torch.manual_seed(seed)
    return ViT(vit_tiny(num_task_tokens=num_task_tokens)).eval()


def images(batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 256, 192, generator=g)


def test_hamer_vit_h_parameter_count_on_meta():
    """ViT-H without task tokens: 630,912,000 parameters in 389 tensors (reference A.3)."""
    with torch.device('meta'):
        model = ViT(vit_huge())
    assert count_parameters(model) == 630_912_000
    assert len(model.state_dict()) == 389


@pytest.mark.parametrize(
    ('constructor', 'expected'),
    [
        (vit_small, 21_675_648),
        (vit_base, 85_818_624),
        (vit_large, 303_328_256),
        (vit_huge, 630_951_680),
    ],
)
def test_smplerx_encoder_parameter_counts_on_meta(constructor, expected):
    """SMPLer-X encoders with 31 task tokens (reference B.3 / B.7 encoder column)."""
    with torch.device('meta'):
        model = ViT(constructor(num_task_tokens=SMPLERX_NUM_TASK_TOKENS))
    assert count_parameters(model) == expected
    assert model.task_tokens.shape == (1, 31, model.config.embed_dim)


def test_official_key_names_and_shapes_vit_h():
    """Key set and shapes of the ViT-H state dict match the reference table (A.3)."""
    with torch.device('meta'):
        sd = ViT(vit_huge()).state_dict()
    expected = {
        'pos_embed': (1, 193, 1280),
        'patch_embed.proj.weight': (1280, 3, 16, 16),
        'patch_embed.proj.bias': (1280,),
        'last_norm.weight': (1280,),
        'last_norm.bias': (1280,),
    }
    for i in range(32):
        p = f'blocks.{i}.'
        expected.update(
            {
                p + 'norm1.weight': (1280,),
                p + 'norm1.bias': (1280,),
                p + 'attn.qkv.weight': (3840, 1280),
                p + 'attn.qkv.bias': (3840,),
                p + 'attn.proj.weight': (1280, 1280),
                p + 'attn.proj.bias': (1280,),
                p + 'norm2.weight': (1280,),
                p + 'norm2.bias': (1280,),
                p + 'mlp.fc1.weight': (5120, 1280),
                p + 'mlp.fc1.bias': (5120,),
                p + 'mlp.fc2.weight': (1280, 5120),
                p + 'mlp.fc2.bias': (1280,),
            }
        )
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_patch_embed_padding_and_grid():
    """floor((256 + 4 - 16) / 16) + 1 = 16 rows, floor((192 + 4 - 16) / 16) + 1 = 12 columns."""
    model = tiny_vit()
    assert model.patch_embed.proj.padding == (2, 2)
    assert model.config.grid_size == (16, 12)
    assert model.config.num_patches == 192
    assert model.pos_embed.shape == (1, 193, 32)


def test_layer_norm_eps_and_exact_gelu():
    model = tiny_vit()
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1
    assert all(m.eps == LAYER_NORM_EPS == 1e-6 for m in norms)
    gelus = [m for m in model.modules() if isinstance(m, nn.GELU)]
    assert gelus and all(m.approximate == 'none' for m in gelus)


def test_forward_shapes_and_finite():
    model = tiny_vit(num_task_tokens=3)
    out = model(images())
    assert out.task_tokens.shape == (2, 3, 32)
    assert out.feature_map.shape == (2, 32, 16, 12)
    assert torch.isfinite(out.feature_map).all()
    plain = tiny_vit()(images())
    assert plain.task_tokens.shape == (2, 0, 32)


def reference_forward(model: ViT, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent re-statement of the ViTPose forward from the spec, with explicit math."""
    c = model.config.embed_dim
    h = model.config.num_heads
    tokens = nn.functional.conv2d(
        x, model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=16, padding=2
    )
    tokens = tokens.flatten(2).transpose(1, 2)
    tokens = tokens + model.pos_embed[:, 1:] + model.pos_embed[:, :1]
    t = model.config.num_task_tokens
    if t:
        tokens = torch.cat((model.task_tokens.expand(x.shape[0], -1, -1), tokens), dim=1)
    for blk in model.blocks:
        y = nn.functional.layer_norm(tokens, (c,), blk.norm1.weight, blk.norm1.bias, 1e-6)
        qkv = y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias
        q, k, v = qkv.split(c, dim=-1)

        def heads(z):
            return z.reshape(z.shape[0], z.shape[1], h, c // h).transpose(1, 2)

        attn = (heads(q) @ heads(k).transpose(-1, -2) / (c // h) ** 0.5).softmax(-1)
        merged = (attn @ heads(v)).transpose(1, 2).reshape(tokens.shape)
        tokens = tokens + merged @ blk.attn.proj.weight.T + blk.attn.proj.bias
        y = nn.functional.layer_norm(tokens, (c,), blk.norm2.weight, blk.norm2.bias, 1e-6)
        y = nn.functional.gelu(y @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias)
        tokens = tokens + y @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    tokens = nn.functional.layer_norm(
        tokens, (c,), model.last_norm.weight, model.last_norm.bias, 1e-6
    )
    fmap = tokens[:, t:].transpose(1, 2).reshape(x.shape[0], c, 16, 12)
    return tokens[:, :t], fmap


@pytest.mark.parametrize('num_task_tokens', [0, 4])
def test_matches_spec_restatement(num_task_tokens):
    """Padding 2, pos-embed trick (class slot added to every patch), task tokens after it."""
    model = tiny_vit(num_task_tokens=num_task_tokens)
    x = images()
    out = model(x)
    task, fmap = reference_forward(model, x)
    torch.testing.assert_close(out.feature_map, fmap, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.task_tokens, task, atol=1e-5, rtol=1e-5)


def test_class_slot_of_pos_embed_is_added_to_every_patch():
    """Adding d to pos_embed[:, 0] must equal adding d to all patch rows pos_embed[:, 1:]."""
    model = tiny_vit()
    x = images()
    delta = torch.randn(32)
    a = tiny_vit()
    b = tiny_vit()
    with torch.no_grad():
        a.pos_embed[:, 0] += delta
        b.pos_embed[:, 1:] += delta
    torch.testing.assert_close(a(x).feature_map, b(x).feature_map)
    assert not torch.allclose(a(x).feature_map, model(x).feature_map)


def test_task_tokens_get_no_positional_embedding():
    """Changing the class slot of pos_embed leaves the task tokens' input unchanged."""
    model = tiny_vit(num_task_tokens=2)
    x = images()
    before = model.embed(x)[:, :2]
    with torch.no_grad():
        model.pos_embed[:, 0] += 1.0
    torch.testing.assert_close(model.embed(x)[:, :2], before)


def test_fused_attention_matches_reference_path():
    model = tiny_vit(num_task_tokens=2)
    x = images()
    fused = model(x)
    model.set_fused_attention(False)
    reference = model(x)
    torch.testing.assert_close(fused.feature_map, reference.feature_map, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.task_tokens, reference.task_tokens, atol=1e-5, rtol=1e-5)


def test_drop_path_active_only_in_training():
    torch.manual_seed(0)
    model = ViT(vit_tiny(drop_path_rate=0.5))
    rates = [blk.drop_path.rate for blk in model.blocks]
    assert rates == [0.0, 0.5]
    x = images(batch=8)
    model.eval()
    torch.testing.assert_close(model(x).feature_map, model(x).feature_map)
    model.train()
    torch.manual_seed(1)
    first = model(x).feature_map
    torch.manual_seed(2)
    second = model(x).feature_map
    assert not torch.allclose(first, second)


def test_wrong_input_size_raises_with_hint():
    model = tiny_vit()
    with pytest.raises(ValueError, match='img_size'):
        model(torch.zeros(1, 3, 256, 256))


def test_config_validation_and_named_variants():
    with pytest.raises(ValueError, match='divisible'):
        ViTConfig(embed_dim=30, depth=1, num_heads=4)
    with pytest.raises(ValueError, match='num_task_tokens'):
        ViTConfig(embed_dim=32, depth=1, num_heads=2, num_task_tokens=-1)
    with pytest.raises(ValueError, match='vit_huge'):
        vit_config('vit_gigantic')
    assert vit_config('vit_large', num_task_tokens=31).num_task_tokens == 31
    assert vit_huge().drop_path_rate == 0.55 and vit_small().drop_path_rate == 0.1


def test_backward_reaches_all_parameters():
    model = tiny_vit(num_task_tokens=2).train()
    out = model(images())
    (out.feature_map.square().mean() + out.task_tokens.square().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_on_cuda_matches_fp32(dtype):
    model = tiny_vit(num_task_tokens=2).cuda()
    x = images().cuda()
    reference = model(x)
    with torch.autocast('cuda', dtype=dtype):
        out = model(x)
    assert out.feature_map.dtype in (dtype, torch.float32)
    torch.testing.assert_close(
        out.feature_map.float(), reference.feature_map, atol=5e-2, rtol=5e-2
    )
