"""DeforHMR's deformable cross-attention against hand-computed bilinear sampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hmr_ros.models.alternatives.deformable_decoder import (
    DeformableBodyDecoder,
    DeformableCrossAttention,
    DeformableDecoderConfig,
    reference_points,
)

# A 2 x 2 feature map with two channels: f0 = [[1, 2], [3, 4]], f1 = 10 f0.
FEATURES = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])[None]


def _attention(dim: int = 2, heads: int = 1, groups: int = 1) -> DeformableCrossAttention:
    attention = DeformableCrossAttention(
        dim, 2, (2, 2), 1, num_heads=heads, num_groups=groups, offset_range=1.0, offset_kernel=3
    )
    with torch.no_grad():
        for linear in (attention.to_v, attention.to_out):
            linear.weight.copy_(torch.eye(2))
            linear.bias.zero_()
        attention.to_k.weight.zero_()  # equal logits: only the bias decides
        attention.to_k.bias.zero_()
        attention.position_bias.zero_()
    return attention


def _offset_output(attention: DeformableCrossAttention) -> nn.Conv2d:
    layer = attention.offset[-1]
    assert isinstance(layer, nn.Conv2d)
    return layer


def _normalised(x_px: float, y_px: float, size: int = 2) -> list[float]:
    """Pixel coordinates (centre of pixel j at j) -> grid_sample, align_corners=False."""
    return [(x_px + 0.5) / size * 2 - 1, (y_px + 0.5) / size * 2 - 1]


def test_reference_points_are_cell_centres() -> None:
    """H = 2, W = 3: x = (j + 0.5) / 3 * 2 - 1 = -2/3, 0, 2/3; y = -1/2, 1/2."""
    grid = reference_points(2, 3)
    assert torch.allclose(grid[0, :, 0], torch.tensor([-2 / 3, 0.0, 2 / 3]))
    assert torch.allclose(grid[:, 0, 1], torch.tensor([-0.5, 0.5]))


def test_attention_samples_bilinearly_at_known_positions() -> None:
    """Samples at pixels (0.5, 0), (0, 0.5), (0.5, 0.5), (1, 1) read, by bilinear interpolation,
    f0 = 1.5, 2, 2.5, 4. A bias grid [[0, 0], [0, 4 ln 2]] sampled there gives 0, 0, ln 2,
    4 ln 2, so the weights are 1, 1, 2, 16 over 20 and the output is
    (1.5 + 2 + 2 * 2.5 + 16 * 4) / 20 = 3.625 for f0 and 36.25 for f1."""
    attention = _attention()
    with torch.no_grad():
        attention.position_bias[0, 0, 1, 1] = 4 * math.log(2)
    points = [_normalised(0.5, 0), _normalised(0, 0.5), _normalised(0.5, 0.5), _normalised(1, 1)]
    positions = torch.tensor(points).reshape(1, 1, 2, 2, 2)
    out = attention.attend(torch.zeros(1, 1, 2), FEATURES, positions)
    assert torch.allclose(out[0, 0], torch.tensor([3.625, 36.25]))


class _ConstantRawOffset(nn.Module):
    """Stands in for the offset network: raw offsets atanh(0.5) in x, 0 in y, everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = torch.zeros(x.shape[0], 2, *x.shape[2:])
        raw[:, 0] = math.atanh(0.5)
        return raw


def test_known_offsets_shift_the_samples_by_half_a_cell() -> None:
    """tanh(atanh(0.5)) * lambda_o (1) = half a grid cell to the right of every cell centre:
    samples at pixels (0.5, 0), (1.5, 0), (0.5, 1), (1.5, 1). Bilinear with zero padding
    outside the map: f0 = 1.5, 0.5 * 2 = 1, 3.5, 0.5 * 4 = 2; equal logits average them:
    f0 = 8 / 4 = 2, f1 = 20."""
    attention = _attention()
    attention.offset = nn.Sequential(_ConstantRawOffset())
    positions = attention.sampling_positions(FEATURES)
    expected = torch.tensor([[_normalised(0.5, 0), _normalised(1.5, 0)],
                             [_normalised(0.5, 1), _normalised(1.5, 1)]])  # fmt: skip
    assert torch.allclose(positions[0, 0], expected)
    out = attention(torch.zeros(1, 1, 2), FEATURES)
    assert torch.allclose(out[0, 0], torch.tensor([2.0, 20.0]))


def test_zero_offsets_equal_dense_cross_attention() -> None:
    """With the offset network's output layer at zero, positions are the cell centres and the
    result is ordinary cross-attention over the 4 cells with the bias grid added."""
    torch.manual_seed(0)
    attention = DeformableCrossAttention(
        4, 2, (2, 2), 3, num_heads=2, num_groups=2, offset_range=2.0, offset_kernel=3
    )
    with torch.no_grad():
        _offset_output(attention).weight.zero_()
        attention.position_bias.normal_()
    queries = torch.randn(1, 3, 4)
    out = attention(queries, FEATURES)

    cells = FEATURES.flatten(2).transpose(1, 2)  # (1, 4, 2): row-major cells
    q = attention.to_q(queries).reshape(1, 3, 2, 2).transpose(1, 2)
    k = attention.to_k(cells).reshape(1, 4, 2, 2).transpose(1, 2)
    v = attention.to_v(cells).reshape(1, 4, 2, 2).transpose(1, 2)
    bias = attention.position_bias.flatten(2)[None]  # (1, heads, Q, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(2) + bias, dim=-1)
    expected = attention.to_out((weights @ v).transpose(1, 2).flatten(2))
    assert torch.allclose(out, expected, atol=1e-6)


def test_offsets_stay_within_the_offset_range() -> None:
    """tanh bounds each offset to offset_range grid cells (2 / H in normalised units)."""
    attention = _attention()
    with torch.no_grad():
        _offset_output(attention).weight.fill_(1e4)
    positions = attention.sampling_positions(torch.randn(1, 2, 2, 2))
    shift = (positions[0, 0] - reference_points(2, 2)).abs()
    assert shift.max() <= 1.0 * 2 / 2 + 1e-6 and shift.max() > 0.9


def test_gradient_reaches_the_offset_network() -> None:
    torch.manual_seed(1)
    attention = DeformableCrossAttention(
        4, 4, (2, 2), 3, num_heads=2, num_groups=2, offset_range=2.0, offset_kernel=3
    )
    attention(torch.randn(2, 3, 4), torch.randn(2, 4, 2, 2)).square().sum().backward()
    gradient = _offset_output(attention).weight.grad
    assert gradient is not None and gradient.abs().sum() > 0


def _decoder(**overrides: object) -> DeformableBodyDecoder:
    config = DeformableDecoderConfig(**overrides)  # type: ignore[arg-type]
    identity_6d = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).expand(config.num_pose_queries, 6)
    return DeformableBodyDecoder(config, identity_6d, torch.zeros(10), torch.tensor([0.9, 0, 0]))


def test_untrained_decoder_returns_the_initial_estimate_at_every_iteration() -> None:
    decoder = _decoder(
        context_dim=8, feature_hw=(4, 3), dim=16, depth=2, num_heads=4, num_groups=2,
        mlp_dim=32, ief_iterations=3,
    )  # fmt: skip
    out = decoder(torch.randn(2, 8, 4, 3))
    assert out.pose_6d.shape == (2, 22, 6) and out.betas.shape == (2, 10)
    assert out.cam.shape == (2, 3) and len(out.pose_6d_iterations) == 3
    assert torch.equal(out.pose_6d, decoder.init_pose_6d.expand(2, -1, -1))
    assert torch.equal(out.cam, torch.tensor([[0.9, 0.0, 0.0]] * 2))


def test_paper_sized_decoder_builds_and_checks_its_input() -> None:
    """The paper's sizes: 25 queries for SMPL (here 22 + 1 for SMPL-X), D = 1024, ViT-H 1280."""
    with torch.device('meta'):
        decoder = _decoder()
    layer = decoder.layers[0]
    assert isinstance(layer.cross_attention, DeformableCrossAttention)
    table = layer.cross_attention.position_bias
    assert table.shape == (8, 23, 16, 12)
    assert decoder.query_embedding.shape == (23, 1024)
    out = decoder(torch.zeros(2, 1280, 16, 12, device='meta'))  # full size, no memory used
    assert out.pose_6d.shape == (2, 22, 6) and out.betas.shape == (2, 10)
    with pytest.raises(ValueError, match='features must be'):
        decoder(torch.zeros(1, 1024, 16, 12, device='meta'))


def test_config_rejects_heads_that_do_not_split_into_groups() -> None:
    with pytest.raises(ValueError, match='num_groups'):
        DeformableDecoderConfig(num_heads=8, num_groups=3)
