"""CMR: official key layout, parameter counts, shapes, and the spiral decoder's pieces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hmr_ros.checkpoints.cmr_layout import check_cmr_state_dict, cmr_state_dict
from hmr_ros.checkpoints.safe_load import (
    CheckpointMismatchError,
    load_state_dict_strict,
    load_torch_file,
    state_dict_shapes,
)
from hmr_ros.models.alternatives.cmr import CmrConfig, CmrModel, heatmap_argmax
from hmr_ros.models.alternatives.spiral_conv import SpiralConv, upsample_vertices
from hmr_ros.models.backbones.resnet import resnet18, resnet50

HAND_LEVELS = (778, 389, 195, 98, 49)
"""CMR's hand hierarchy (the seed-systems study of the official asset)."""


def _hierarchy(generator: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Spirals (V, 27) and 3-non-zero up transforms of the published sizes, random content."""
    spirals, ups = [], []
    for fine, coarse in zip(HAND_LEVELS[:-1], HAND_LEVELS[1:], strict=True):
        spirals.append(torch.randint(0, fine, (fine, 27), generator=generator))
        rows = torch.arange(fine).repeat_interleave(3)
        cols = torch.randint(0, coarse, (3 * fine,), generator=generator)
        ups.append(
            torch.sparse_coo_tensor(
                torch.stack((rows, cols)),
                torch.full((3 * fine,), 1 / 3),
                (fine, coarse),
                check_invariants=True,
            )
        )
    return spirals, ups


def _meta_model(variant: str, backbone: str) -> CmrModel:
    spirals, ups = _hierarchy(torch.Generator().manual_seed(0))
    with torch.device('meta'):
        return CmrModel(CmrConfig(variant, backbone), spirals, ups)  # type: ignore[arg-type]


# Shapes read off the official classes (SeanChenxy/HandMesh cmr/models/cmr_sg.py, network.py,
# conv/spiralconv.py) by hand: Linear(1000, 49 * 512); deblock widths 512 -> 512 -> 256 ->
# 128 -> 64 with xyz concatenated (515, 259, 131); SpiralConv = Linear(C_in * L, C_out) with
# L = 27, 18 (2/3), 9 (1/3), 1; stage-2 reduce over 64 + 1 (SG) channels, stage 3 over
# 64 + 21 + 10; torchvision ResNet-18 names inside each encoder.
OFFICIAL_SG_R18_SHAPES = {
    'de_layers.0.weight': (49 * 512, 1000),
    'de_layers.1.conv.layer.weight': (256, 512 * 27),
    'de_layers.1.conv_2d3.layer.weight': (128, 512 * 18),
    'de_layers.1.conv_d3.layer.weight': (128, 512 * 9),
    'de_layers.1.conv1.layer.weight': (512, 512),
    'de_layers.2.conv.layer.weight': (128, 515 * 27),
    'de_layers.4.conv1.layer.weight': (64, 131),
    'heads.0.layer.weight': (3, 512 * 27),
    'heads.3.layer.weight': (3, 64 * 27),
    'attention.query_conv.weight': (1000, 1000),
    'attention.gamma': (1,),
    'backbone1.conv1.weight': (64, 3, 7, 7),
    'backbone1.layer2.0.downsample.0.weight': (128, 64, 1, 1),
    'backbone2.reduce.0.conv.weight': (65, 65, 3, 3),
    'backbone2.reduce.2.conv.weight': (64, 128, 1, 1),
    'backbone2.fc.weight': (1000, 512),
    'backbone3.reduce.0.conv.weight': (95, 95, 3, 3),
    'backbone3.fc.weight': (1000, 512),
    'mask_delayer.0.conv.weight': (256, 512 + 256, 3, 3),
    'mask_head.conv.weight': (1, 64, 3, 3),
    'uv_head.conv.weight': (21, 64, 3, 3),
    'uvm_head.conv.weight': (22, 64, 3, 3),
    'uvm_delayer.3.norm.running_var': (64,),
}
OFFICIAL_SG_PREFIXES = {
    'backbone1', 'backbone2', 'backbone3', 'mask_delayer', 'mask_head', 'uv_delayer', 'uv_head',
    'uvm_delayer', 'uvm_head', 'attention', 'de_layers', 'heads',
}  # fmt: skip


def test_sg_layout_matches_the_official_names_and_shapes() -> None:
    shapes = state_dict_shapes(_meta_model('sg', 'resnet18'))
    for key, shape in OFFICIAL_SG_R18_SHAPES.items():
        assert shapes[key] == shape, key
    assert {k.split('.')[0] for k in shapes} == OFFICIAL_SG_PREFIXES
    assert 'backbone1.fc.weight' not in shapes  # stage 1 keeps no fc in the official model


def test_pg_swaps_the_prior_decoder_and_widens_stage_two() -> None:
    shapes = state_dict_shapes(_meta_model('pg', 'resnet18'))
    assert shapes['uv_prior_head.conv.weight'] == (21, 64, 3, 3)
    assert shapes['backbone2.reduce.0.conv.weight'] == (85, 85, 3, 3)  # 64 + 21 heatmaps
    assert not any(k.startswith('mask_') for k in shapes)


@pytest.mark.parametrize(
    ('variant', 'backbone', 'millions'),
    [('sg', 'resnet18', 79.4), ('pg', 'resnet18', 79.5), ('sg', 'resnet50', 225.7),
     ('pg', 'resnet50', 225.8)],
)  # fmt: skip
def test_parameter_counts_match_the_official_models(
    variant: str, backbone: str, millions: float
) -> None:
    """the seed-systems study (measured on the official code): 79.4M / 79.5M / 225.7M / 225.8M."""
    count = sum(p.numel() for p in _meta_model(variant, backbone).parameters())
    assert round(count / 1e6, 1) == millions


def test_resnet_parameter_counts_match_torchvision() -> None:
    """torchvision's model documentation: ResNet-18 11,689,512; ResNet-50 25,557,032."""
    with torch.device('meta'):
        assert sum(p.numel() for p in resnet18().parameters()) == 11_689_512
        assert sum(p.numel() for p in resnet50().parameters()) == 25_557_032


def test_official_checkpoint_loads_strictly_and_a_renamed_key_is_named(tmp_path: Path) -> None:
    spirals, ups = _hierarchy(torch.Generator().manual_seed(1))
    source = CmrModel(CmrConfig('sg', 'resnet18'), spirals, ups)
    path = tmp_path / 'cmr_sg_res18_freihand.pt'
    torch.save(
        {'epoch': 37, 'model_state_dict': source.state_dict(), 'optimizer_state_dict': {}}, path
    )
    weights = cmr_state_dict(load_torch_file(path))
    with torch.device('meta'):
        target = CmrModel(CmrConfig('sg', 'resnet18'), spirals, ups)
    check_cmr_state_dict(state_dict_shapes(target), weights)
    load_state_dict_strict(target, weights)
    assert torch.equal(
        target.state_dict()['heads.0.layer.weight'], source.state_dict()['heads.0.layer.weight']
    )

    weights['backbone2.fc.weights'] = weights.pop('backbone2.fc.weight')
    with pytest.raises(CheckpointMismatchError, match=r'backbone2\.fc\.weight') as error:
        check_cmr_state_dict(state_dict_shapes(target), weights)
    assert error.value.missing == ['backbone2.fc.weight']
    assert error.value.unexpected == ['backbone2.fc.weights']


def test_forward_shapes_on_a_small_crop() -> None:
    spirals, ups = _hierarchy(torch.Generator().manual_seed(2))
    model = CmrModel(CmrConfig('pg', 'resnet18'), spirals, ups).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out.vertices_m.shape == (1, 778, 3)
    assert [level.shape[1] for level in out.mesh_levels_m] == list(HAND_LEVELS[:-1])
    assert out.heatmaps.shape == (1, 21, 32, 32) and out.silhouette.shape == (1, 32, 32)
    assert out.prior.shape == (1, 21, 32, 32) and out.keypoints_crop_px.shape == (1, 21, 2)


def test_spiral_conv_concatenates_neighbours_in_spiral_order() -> None:
    """Vertex v's output = W [x_s0; x_s1] + b for its spiral (s0, s1): checked with a weight
    that picks the second neighbour's first channel."""
    indices = torch.tensor([[0, 2], [1, 0], [2, 1]])
    conv = SpiralConv(2, 1, indices)
    with torch.no_grad():
        conv.layer.weight.copy_(torch.tensor([[0.0, 0.0, 1.0, 0.0]]))
        conv.layer.bias.zero_()
    x = torch.tensor([[[10.0, 11.0], [20.0, 21.0], [30.0, 31.0]]])
    assert conv(x)[0, :, 0].tolist() == [30.0, 10.0, 20.0]


def test_upsampling_equals_the_dense_product() -> None:
    dense = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    sparse = dense.to_sparse().coalesce()
    x = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    rows, cols = sparse.indices()
    out = upsample_vertices(x, rows, cols, sparse.values(), 3)
    assert torch.allclose(out[0], torch.tensor([[1.0, 2.0], [2.0, 3.5], [2.6, 4.4]]))


def test_heatmap_argmax_follows_the_official_map2uv() -> None:
    """map2uv: u = (argmax % W) / W * size, v = (argmax // W) / H * size, confidence = peak."""
    heatmaps = torch.zeros(1, 1, 112, 112)
    heatmaps[0, 0, 40, 7] = 0.8  # row 40 (v), column 7 (u)
    uv, peak = heatmap_argmax(heatmaps, 224)
    assert uv[0, 0].tolist() == [14.0, 80.0] and peak.item() == pytest.approx(0.8)
