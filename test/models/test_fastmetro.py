"""FastMETRO body model (hmr_ros.models.alternatives.fastmetro) and its ResNet-50 trunk."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from hmr_ros.checkpoints.fastmetro_assets import (
    load_fastmetro_mesh_assets,
    write_stand_in_mesh_npz,
)
from hmr_ros.models.alternatives.fastmetro import (
    FASTMETRO_VARIANTS,
    build_fastmetro,
    fastmetro_config,
    sine_position_encoding,
)
from hmr_ros.models.backbones.resnet import resnet50_config, resnet_trunk


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet50_trunk_size_and_stride() -> None:
    with torch.device('meta'):
        trunk = resnet_trunk(resnet50_config())
        features = trunk(torch.empty(2, 3, 224, 224))
    # torchvision's resnet50 has 25,557,032 parameters, its fc 2048 * 1000 + 1000 of them.
    assert _count(trunk) == 25_557_032 - (2048 * 1000 + 1000)
    assert tuple(features.shape) == (2, 2048, 7, 7)  # stride 32 (paper, section A)
    # torchvision keys under FastMETRO's nn.Sequential numbering (children 0-7).
    keys = set(trunk.state_dict())
    assert {'0.weight', '1.running_var', '4.0.downsample.0.weight', '7.2.bn3.weight'} <= keys
    assert len(keys) == 320 - 2  # torchvision resnet50's 320 entries without fc.weight/bias


@pytest.mark.parametrize(
    ('variant', 'transformer_m', 'official_m'),
    [
        ('fastmetro_s_r50', 9.2, 10.04),
        ('fastmetro_m_r50', 17.1, 17.86),
        ('fastmetro_l_r50', 24.9, 25.67),
    ],
)
def test_parameter_counts_match_the_paper(
    variant: str, transformer_m: float, official_m: float
) -> None:
    with torch.device('meta'):
        model = build_fastmetro(variant)
    backbone = _count(model.backbone)
    upsampling = _count(model.coarse2intermediate_upsample)
    transformer = _count(model) - backbone
    # Paper Table 2: CNN 23.5M; transformer 9.2 / 17.1 / 24.9M without the learnable
    # 431 -> 1723 layer (431 * 1723 + 1723 = 744,336 parameters, counted apart).
    # The official module instantiated (seed-systems study, 2.4) has 10.04 / 17.86 / 25.67M
    # beside the backbone, upsampling layer included; the paper rounds about 0.1M lower.
    assert round(backbone / 1e6, 1) == 23.5
    assert upsampling == 431 * 1723 + 1723
    assert transformer / 1e6 == pytest.approx(official_m, abs=0.01)
    assert (transformer - upsampling) / 1e6 == pytest.approx(transformer_m, abs=0.15)


def test_state_dict_has_the_official_layout() -> None:
    with torch.device('meta'):
        shapes = {
            k: tuple(v.shape) for k, v in build_fastmetro('fastmetro_s_r50').state_dict().items()
        }
    # Names and shapes of the official module (modeling_fastmetro.py, transformer.py): DETR
    # layers with nn.MultiheadAttention (in_proj 3C x C), widths 512 and 128, FFN 2048 / 512.
    expected = {
        'transformer_1.encoder.layers.0.self_attn.in_proj_weight': (1536, 512),
        'transformer_1.decoder.layers.0.multihead_attn.out_proj.weight': (512, 512),
        'transformer_1.decoder.layers.0.norm3.bias': (512,),
        'transformer_1.encoder.norm.weight': (512,),
        'transformer_2.decoder.layers.0.linear1.weight': (512, 128),
        'transformer_2.decoder.norm.weight': (128,),
        'dim_reduce_enc_cam.weight': (128, 512),
        'dim_reduce_enc_img.weight': (128, 512),
        'dim_reduce_dec.weight': (128, 512),
        'cam_token_embed.weight': (1, 512),
        'joint_token_embed.weight': (14, 512),
        'vertex_token_embed.weight': (431, 512),
        'xyz_regressor.weight': (3, 128),
        'cam_predictor.weight': (3, 128),
        'conv_1x1.weight': (512, 2048, 1, 1),
        'coarse2intermediate_upsample.weight': (1723, 431),
    }
    assert {k: shapes[k] for k in expected} == expected
    # 318 ResNet entries + 2 x (12 per encoder layer + 18 per decoder layer + 4 final norms)
    # + 17 for the reductions, embeddings, heads, 1x1 conv and upsampling layer.
    assert len(shapes) == 318 + 2 * (12 + 18 + 4) + 17
    # The mask and the fixed upsampling are not in the released files.
    assert not any('mask' in k or 'upsample_' in k for k in shapes)


@pytest.mark.parametrize('variant', sorted(FASTMETRO_VARIANTS))
def test_forward_shapes_at_full_size_on_meta(variant: str) -> None:
    with torch.device('meta'):
        model = build_fastmetro(variant)
        out = model(torch.empty(2, 3, 224, 224))
    assert tuple(out.camera.shape) == (2, 3)
    assert tuple(out.joints.shape) == (2, 14, 3)
    assert tuple(out.vertices_coarse.shape) == (2, 431, 3)
    assert tuple(out.vertices_intermediate.shape) == (2, 1723, 3)
    assert tuple(out.vertices.shape) == (2, 6890, 3)


def test_sine_encoding_against_the_formula() -> None:
    # DETR normalised sine encoding, evaluated by hand for a 7 x 7 grid and 512 channels:
    # cell (row 2, column 5) 0-based -> y = 3 / 7 * 2 pi, x = 6 / 7 * 2 pi (1e-6 eps aside);
    # feature i of 256 uses period 10000^(2 floor(i/2) / 256), sin for even i, cos for odd i.
    encoding = sine_position_encoding(7, 7, 512)
    assert tuple(encoding.shape) == (49, 512)
    token = encoding[2 * 7 + 5]
    y, x = 3 / (7 + 1e-6) * 2 * math.pi, 6 / (7 + 1e-6) * 2 * math.pi
    for i in (0, 1, 10, 11, 254, 255):
        period = 10000 ** (2 * (i // 2) / 256)
        trig = math.sin if i % 2 == 0 else math.cos
        assert token[i].item() == pytest.approx(trig(y / period), abs=1e-5)
        assert token[256 + i].item() == pytest.approx(trig(x / period), abs=1e-5)


def test_forward_needs_the_mesh_assets_and_uses_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_fastmetro('fastmetro_tiny').eval()
    crops = torch.randn(2, 3, 224, 224)
    with pytest.raises(RuntimeError, match='set_mesh_assets'):
        model(crops)
    assets = load_fastmetro_mesh_assets(
        write_stand_in_mesh_npz(tmp_path / 'mesh_downsampling.npz'), expected_sha256=None
    )
    model.set_mesh_assets(assets)
    with torch.no_grad():
        out = model(crops)
        # The fine mesh is the fixed gather of the intermediate one.
        index, weight = assets.fine_from_intermediate()
        expected = (out.vertices_intermediate[:, index] * weight[..., None]).sum(2)
        torch.testing.assert_close(out.vertices, expected)
    assert torch.equal(model.attention_mask, assets.decoder_attention_mask(14))
    assert model.mesh_assets_sha256 == assets.sha256


def test_batch_items_are_independent(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_fastmetro('fastmetro_tiny').eval()
    model.set_mesh_assets(
        load_fastmetro_mesh_assets(
            write_stand_in_mesh_npz(tmp_path / 'm.npz', seed=1), expected_sha256=None
        )
    )
    crops = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        batched = model(crops)
        single = model(crops[1:2])
    torch.testing.assert_close(batched.vertices[1:2], single.vertices, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched.camera[1:2], single.camera, atol=1e-5, rtol=1e-5)


def test_unknown_variant_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match='fastmetro_s_r50'):
        fastmetro_config('fastmetro_xl')


def test_decoder_mask_limits_vertex_tokens_to_their_ring(tmp_path: Path) -> None:
    from hmr_ros.models.alternatives.fastmetro import DecoderLayer

    assets = load_fastmetro_mesh_assets(
        write_stand_in_mesh_npz(tmp_path / 'm.npz', seed=2), expected_sha256=None
    )
    mask = assets.decoder_attention_mask(14)
    torch.manual_seed(2)
    layer = DecoderLayer(16, 2, 32, dropout=0.0).eval()
    tokens, memory = torch.randn(1, 445, 16), torch.randn(1, 49, 16)
    pos = torch.zeros(49, 16)
    moved = 14 + 7  # vertex token 7
    changed = tokens.clone()
    changed[0, moved] += torch.randn(16)  # not a constant: LayerNorm would remove it
    with torch.no_grad():
        delta = (layer(changed, memory, pos, mask) - layer(tokens, memory, pos, mask)).abs()
    affected = delta[0].amax(dim=1) > 1e-6
    ring = assets.coarse_adjacency[7] | (torch.arange(431) == 7)
    # Joint tokens attend to everything; a vertex token only to joints and its 1-ring.
    assert affected[:14].all()
    assert torch.equal(affected[14:], ring)
