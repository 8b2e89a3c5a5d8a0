"""Spiral convolutions and CMR's coarse-to-fine mesh decoder (docs/cmr.md).

- ``SpiralConv``: for each vertex, concatenate the features of its L spiral neighbours (fixed
  indices, see ``spiral_indices``) and apply one Linear(L * C_in -> C_out) (SpiralNet++
  without dilation). The concatenation is neighbour-major, as the official gather
  (``index_select`` then ``view``) lays it out, so released weights apply unchanged.
- ``upsample_vertices``: the sparse product U X of a (V_fine, V_coarse) interpolation matrix,
  as a gather of the coarse rows and a scatter-add into the fine rows (CMR's ``Pool``).
- ``ParallelDeblock`` (the paper's inception-style spiral module, ISM): upsample, then spiral
  convolutions over the full spiral (C/2), its first 2/3 (C/4) and first 1/3 (C/4), concatenated,
  plus a length-1 shortcut convolution (C), then ReLU.
- ``SpiralMeshDecoder``: Linear(latent -> V_coarsest * C) then one deblock per level; after each,
  a spiral head predicts xyz, averaged from the second level on with the upsampled previous
  prediction, and concatenated to the features.

Attribute names are the official ones (``layer``, ``conv``, ``conv_2d3``, ``conv_d3``,
``conv1``, ``de_layers``, ``heads``), because the released checkpoints use them. Index and
transform tensors are non-persistent buffers: the official files do not carry them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    'ParallelDeblock',
    'SpiralConv',
    'SpiralMeshDecoder',
    'decode_mesh',
    'set_decoder_hierarchy',
    'upsample_vertices',
]


class SpiralConv(nn.Module):
    """Linear layer over each vertex's gathered spiral (module docstring).

    Args:
        in_channels: C_in per vertex.
        out_channels: C_out per vertex.
        indices: (V, L) spiral indices into the V vertices.
    """

    def __init__(self, in_channels: int, out_channels: int, indices: Tensor) -> None:
        super().__init__()
        if indices.dim() != 2:
            raise ValueError(f'indices must be (V, L); got {tuple(indices.shape)}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.register_buffer('indices', indices.to(torch.long), persistent=False)
        self.layer = nn.Linear(in_channels * indices.shape[1], out_channels)
        nn.init.xavier_uniform_(self.layer.weight)
        nn.init.zeros_(self.layer.bias)

    indices: Tensor

    def set_indices(self, spiral: Tensor) -> None:
        """Replaces the indices by the first L entries of a (V, >= L) spiral."""
        num_vertices, length = self.indices.shape
        if spiral.shape[0] != num_vertices or spiral.shape[1] < length:
            raise ValueError(
                f'spiral {tuple(spiral.shape)} does not fit ({num_vertices}, >= {length})'
            )
        self.indices = spiral[:, :length].to(device=self.indices.device, dtype=torch.long)

    def forward(self, x: Tensor) -> Tensor:
        """(B, V, C_in) -> (B, V, C_out)."""
        num_vertices, length = self.indices.shape
        gathered = x.index_select(1, self.indices.reshape(-1))
        return self.layer(gathered.reshape(x.shape[0], num_vertices, length * x.shape[-1]))


def upsample_vertices(x: Tensor, rows: Tensor, cols: Tensor, values: Tensor, size: int) -> Tensor:
    """U X for a sparse U given as (rows, cols, values) triplets.

    Args:
        x: (B, V_coarse, C) features.
        rows: (nnz,) row indices of U's non-zeros.
        cols: (nnz,) their column indices.
        values: (nnz,) their weights.
        size: V_fine, the number of rows of U.

    Returns:
        (B, V_fine, C).
    """
    weighted = x.index_select(1, cols) * values[None, :, None].to(x.dtype)
    out = x.new_zeros(x.shape[0], size, x.shape[2])
    return out.index_add(1, rows, weighted)


class _Upsample(nn.Module):
    """A fixed interpolation matrix, held as non-persistent COO buffers."""

    rows: Tensor
    cols: Tensor
    values: Tensor

    def __init__(self, matrix: Tensor) -> None:
        super().__init__()
        self.shape = (int(matrix.shape[0]), int(matrix.shape[1]))
        self.size = self.shape[0]
        matrix = matrix.coalesce() if matrix.is_sparse else matrix.to_sparse().coalesce()
        self.register_buffer('rows', matrix.indices()[0].clone(), persistent=False)
        self.register_buffer('cols', matrix.indices()[1].clone(), persistent=False)
        self.register_buffer('values', matrix.values().float().clone(), persistent=False)

    def set_matrix(self, matrix: Tensor) -> None:
        """Replaces the matrix by one of the same shape."""
        if tuple(matrix.shape) != self.shape:
            raise ValueError(f'up transform {tuple(matrix.shape)} does not fit {self.shape}')
        matrix = matrix.coalesce() if matrix.is_sparse else matrix.to_sparse().coalesce()
        device = self.rows.device
        self.rows = matrix.indices()[0].to(device)
        self.cols = matrix.indices()[1].to(device)
        self.values = matrix.values().float().to(device)

    def forward(self, x: Tensor) -> Tensor:
        return upsample_vertices(x, self.rows, self.cols, self.values, self.size)


class ParallelDeblock(nn.Module):
    """Upsample, then CMR's parallel spiral convolutions (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, indices: Tensor) -> None:
        super().__init__()
        length = indices.shape[1]
        self.conv_2d3 = SpiralConv(in_channels, out_channels // 4, indices[:, : length // 3 * 2])
        self.conv_d3 = SpiralConv(in_channels, out_channels // 4, indices[:, : length // 3])
        self.conv = SpiralConv(in_channels, out_channels // 2, indices)
        self.conv1 = SpiralConv(in_channels, out_channels, indices[:, :1])

    def forward(self, x: Tensor, upsample: nn.Module) -> Tensor:
        """(B, V_coarse, C_in) -> (B, V_fine, C_out)."""
        x = upsample(x)
        branches = torch.cat((self.conv(x), self.conv_2d3(x), self.conv_d3(x)), dim=2)
        return torch.relu(self.conv1(x) + branches)


class SpiralMeshDecoder(nn.Module):
    """Latent vector -> meshes at every level, coarse to fine (module docstring).

    Args:
        latent_size: width of the input vector (1000 for CMR's ResNet fc).
        channels: feature widths, finest level first (CMR: 64, 128, 256, 512).
        spirals: (V_l, L) spiral indices per level, finest first (778, 389, 195, 98).
        up_transforms: sparse (V_l, V_{l+1}) matrices, finest first (778x389 ... 98x49).
        out_channels: per-vertex output (3: xyz).
    """

    def __init__(
        self,
        latent_size: int,
        channels: Sequence[int],
        spirals: Sequence[Tensor],
        up_transforms: Sequence[Tensor],
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        levels = len(channels)
        if len(spirals) != levels or len(up_transforms) != levels:
            raise ValueError(
                f'need one spiral and one up transform per channel level ({levels}); got '
                f'{len(spirals)} and {len(up_transforms)}'
            )
        for level, (spiral, up) in enumerate(zip(spirals, up_transforms, strict=True)):
            if spiral.shape[0] != up.shape[0]:
                raise ValueError(
                    f'level {level}: {spiral.shape[0]} spirals but up transform {tuple(up.shape)}'
                )
        self.num_vertices = [int(up.shape[0]) for up in up_transforms] + [
            int(up_transforms[-1].shape[1])
        ]
        self.channels = list(channels)
        self.upsamples = nn.ModuleList(_Upsample(up) for up in up_transforms)
        self.de_layers = nn.ModuleList(
            [nn.Linear(latent_size, self.num_vertices[-1] * channels[-1])]
        )
        for step in range(levels):
            level = levels - 1 - step  # coarse to fine
            width_in = channels[-1] if step == 0 else channels[level + 1] + out_channels
            self.de_layers.append(ParallelDeblock(width_in, channels[level], spirals[level]))
        self.heads = nn.ModuleList(
            SpiralConv(channels[level], out_channels, spirals[level])
            for level in reversed(range(levels))
        )

    def forward(self, latent: Tensor) -> list[Tensor]:
        """(B, latent_size) -> per level (B, V_l, out_channels), finest first."""
        return decode_mesh(latent, self.de_layers, self.heads, self.upsamples)


def decode_mesh(
    latent: Tensor, de_layers: nn.ModuleList, heads: nn.ModuleList, upsamples: nn.ModuleList
) -> list[Tensor]:
    """The decoder's forward over its modules; per level (B, V_l, 3), finest first.

    Models that hold the modules under the official names ``de_layers`` and ``heads`` (CMR)
    call it directly.
    """
    levels = len(heads)
    first: ParallelDeblock = de_layers[1]  # type: ignore[assignment]
    x = de_layers[0](latent).reshape(latent.shape[0], -1, first.conv1.in_channels)
    predictions: list[Tensor] = []
    for step in range(levels):
        upsample = upsamples[levels - 1 - step]
        x = de_layers[step + 1](x, upsample)
        prediction = heads[step](x)
        if predictions:
            prediction = (prediction + upsample(predictions[-1])) / 2
        predictions.append(prediction)
        x = torch.cat((x, prediction), dim=2)
    return predictions[::-1]


def set_decoder_hierarchy(
    de_layers: nn.ModuleList,
    heads: nn.ModuleList,
    upsamples: nn.ModuleList,
    spirals: Sequence[Tensor],
    up_transforms: Sequence[Tensor],
) -> None:
    """Installs spirals and up transforms (finest first) into a decoder's modules.

    Raises:
        ValueError: a level's size differs from the decoder's.
    """
    levels = len(heads)
    if len(spirals) != levels or len(up_transforms) != levels:
        raise ValueError(
            f'need {levels} spirals and up transforms; got {len(spirals)}, {len(up_transforms)}'
        )
    for step in range(levels):
        level = levels - 1 - step  # coarse to fine, as the layers run
        deblock = de_layers[step + 1]
        head = heads[step]
        assert isinstance(deblock, ParallelDeblock) and isinstance(head, SpiralConv)
        for conv in (deblock.conv, deblock.conv_2d3, deblock.conv_d3, deblock.conv1, head):
            conv.set_indices(spirals[level])
    for upsample, matrix in zip(upsamples, up_transforms, strict=True):
        assert isinstance(upsample, _Upsample)
        upsample.set_matrix(matrix)
