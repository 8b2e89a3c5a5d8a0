"""FastMETRO body model (Cho et al., ECCV 2022): a light SMPL-mesh regressor for the body path.

"Cross-Attention of Disentangled Modalities for 3D Human Mesh Recovery with Transformers";
architecture, shapes and released files in docs/seed-models.md, 'FastMETRO'. Module and
parameter names are the official ones (``transformer_1.encoder.layers.0.self_attn``,
``cam_token_embed``, ``coarse2intermediate_upsample`` ...), so the released
``FastMETRO-*_state_dict.bin`` files load by name after checkpoints.fastmetro_layout checks them.

Forward, for a 224 x 224 ImageNet-normalised person crop:

1. CNN backbone (ResNet-50 children 0-7 in an ``nn.Sequential``): 2048 x 7 x 7 features;
   ``conv_1x1`` projects them to 512 channels: 49 image tokens.
2. Transformer 1 (width 512, 8 heads, FFN 2048), pre-norm DETR layers: the encoder reads
   [camera token, 49 image tokens] (sine positional encoding on the image tokens only, in
   every attention layer); the decoder reads 14 joint + 431 vertex tokens (learned embeddings,
   zero query position) and cross-attends to the encoded image tokens. Decoder self-attention
   uses the mesh mask: vertex tokens see all joints, themselves and their 1-ring on the
   431-vertex mesh; joint tokens see everything.
3. Three Linear(512 -> 128) reduce the camera, image and joint/vertex features; transformer 2
   (width 128, FFN 512) repeats step 2 on them.
4. Heads: ``cam_predictor`` (weak-perspective s, tx, ty of the crop), ``xyz_regressor`` (14
   joints + 431 coarse vertices, root-relative metres), the learnable 431 -> 1723 upsampling
   and the fixed 1723 -> 6890 upsampling (SMPL topology; the published matrix, as a gather of
   3 weighted vertices per output vertex so it exports to ONNX/TensorRT).

The attention mask and the fixed upsampling are not in the checkpoints: they come from the
published ``mesh_downsampling.npz`` (checkpoints.fastmetro_assets), whose vertex selection
and order the weights are tied to; call ``set_mesh_assets`` before the first forward.

Variants (layers per encoder and per decoder in both transformers): S 1, M 2, L 3. The
published files are S-R50 and L-H64 (HRNet-W64); HRNet-W64 is not written yet, so L-H64 and
its parametric ``_smpl`` files are recognised by checkpoints.fastmetro_layout and refused with
that reason. M-R50 and L-R50 are the paper's Table 2 models (no released files).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmr_ros.models.backbones.resnet import (
    ResNetConfig,
    resnet50_config,
    resnet_tiny_config,
    resnet_trunk,
)

if TYPE_CHECKING:
    from hmr_ros.checkpoints.fastmetro_assets import FastMetroMeshAssets

__all__ = [
    'FASTMETRO_VARIANTS',
    'IMAGENET_MEAN_RGB',
    'IMAGENET_STD_RGB',
    'NUM_COARSE_VERTICES',
    'NUM_FINE_VERTICES',
    'NUM_INTERMEDIATE_VERTICES',
    'NUM_JOINT_TOKENS',
    'FastMetroBody',
    'FastMetroConfig',
    'FastMetroOutput',
    'SMPLParameterRegressor',
    'build_fastmetro',
    'fastmetro_config',
    'sine_position_encoding',
]

NUM_JOINT_TOKENS = 14
"""Joint tokens: the 14 LSP/H36M-common joints of METRO (see FASTMETRO_JOINT_NAMES)."""
NUM_COARSE_VERTICES = 431
"""Vertex tokens: SMPL's mesh decimated 4 x 4 (mesh_downsampling.npz, level 2)."""
NUM_INTERMEDIATE_VERTICES = 1723
"""SMPL decimated 4 x (level 1)."""
NUM_FINE_VERTICES = 6890
"""SMPL's full mesh."""
UPSAMPLE_WEIGHTS_PER_VERTEX = 3
"""The published fine-from-intermediate matrix has 3 non-zeros per row (nearest triangle)."""

FASTMETRO_JOINT_NAMES = (
    'right_ankle',
    'right_knee',
    'right_hip',
    'left_hip',
    'left_knee',
    'left_ankle',
    'right_wrist',
    'right_elbow',
    'right_shoulder',
    'left_shoulder',
    'left_elbow',
    'left_wrist',
    'neck',
    'head_top',
)
"""The 14 joint tokens' joints, in METRO's order (the H36M regressor's LSP-style subset)."""

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
INPUT_SIZE_PX = 224
NUM_SMPL_JOINTS = 24
NUM_SMPL_BETAS = 10


@dataclass(frozen=True)
class FastMetroConfig:
    """A FastMETRO body variant.

    Attributes:
        name: variant name (a FASTMETRO_VARIANTS key for the registered ones).
        backbone: ResNet trunk sizes (ResNet-50 for the R50 variants).
        num_layers: encoder layers = decoder layers, in both transformers (S 1, M 2, L 3).
        model_dims: widths of transformer 1 and 2 (512, 128).
        feedforward_dims: FFN widths of transformer 1 and 2 (2048, 512).
        num_heads: attention heads in every layer (8).
        dropout: transformer dropout (0.1; inactive in eval).
        parametric: carries the SMPL parameter regressor (the ``_smpl`` files).
        input_size_px: crop side (224).
        mean_rgb: ImageNet mean of the [0, 1] RGB crop.
        std_rgb: ImageNet std.
        official_checkpoint: released file name, '' when none was released.
    """

    name: str
    backbone: ResNetConfig = field(default_factory=resnet50_config)
    num_layers: int = 1
    model_dims: tuple[int, int] = (512, 128)
    feedforward_dims: tuple[int, int] = (2048, 512)
    num_heads: int = 8
    dropout: float = 0.1
    parametric: bool = False
    input_size_px: int = INPUT_SIZE_PX
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std_rgb: tuple[float, float, float] = IMAGENET_STD_RGB
    official_checkpoint: str = ''

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f'num_layers must be at least 1; got {self.num_layers}')
        for dim in self.model_dims:
            if dim % self.num_heads or (dim // 2) % 2:
                raise ValueError(
                    f'model width {dim} must divide into {self.num_heads} heads and give an '
                    'even number of sine features per axis (width / 2 even)'
                )


def fastmetro_s_r50() -> FastMetroConfig:
    """FastMETRO-S-R50: 1 + 1 layers per transformer; 32.7M parameters in the paper's count."""
    return FastMetroConfig(
        'fastmetro_s_r50', num_layers=1, official_checkpoint='FastMETRO-S-R50_h36m_state_dict.bin'
    )


def fastmetro_m_r50() -> FastMetroConfig:
    """FastMETRO-M-R50: 2 + 2 layers; 40.6M (paper, Table 2); no released file."""
    return FastMetroConfig('fastmetro_m_r50', num_layers=2)


def fastmetro_l_r50() -> FastMetroConfig:
    """FastMETRO-L-R50: 3 + 3 layers; 48.4M (paper, Table 2); no released file."""
    return FastMetroConfig('fastmetro_l_r50', num_layers=3)


def fastmetro_tiny() -> FastMetroConfig:
    """Test-only: tiny ResNet and 32/16-wide transformers; the real token and vertex counts."""
    return FastMetroConfig(
        'fastmetro_tiny',
        backbone=resnet_tiny_config(),
        model_dims=(32, 16),
        feedforward_dims=(64, 32),
        num_heads=2,
    )


FASTMETRO_VARIANTS: dict[str, Callable[[], FastMetroConfig]] = {
    'fastmetro_s_r50': fastmetro_s_r50,
    'fastmetro_m_r50': fastmetro_m_r50,
    'fastmetro_l_r50': fastmetro_l_r50,
    'fastmetro_tiny': fastmetro_tiny,
}
"""Registered FastMETRO body variants by name."""


def fastmetro_config(name: str) -> FastMetroConfig:
    """Config of a registered variant.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name not in FASTMETRO_VARIANTS:
        raise ValueError(
            f'unknown FastMETRO variant {name!r}; known: {sorted(FASTMETRO_VARIANTS)}'
        )
    return FASTMETRO_VARIANTS[name]()


# --- Positional encoding ------------------------------------------------------------------------

SINE_TEMPERATURE = 10000.0
SINE_SCALE = 2 * math.pi
SINE_EPS = 1e-6


def sine_position_encoding(height: int, width: int, channels: int) -> Tensor:
    """DETR's normalised 2D sine encoding of a height x width grid, row-major tokens.

    For cell (row r, column c), 1-based, y = r / (H + eps) * 2 pi and x = c / (W + eps) * 2 pi;
    with F = channels / 2 features per axis and d_i = T^(2 floor(i / 2) / F), the y features are
    (sin(y / d_0), cos(y / d_1), sin(y / d_2), ...) and the x features likewise; the encoding is
    [y features, x features].

    Args:
        height: grid rows.
        width: grid columns.
        channels: encoding width (even, and channels / 2 even).

    Returns:
        (H * W, channels) float32, token index = r * W + c.
    """
    features = channels // 2
    rows = torch.arange(1, height + 1, dtype=torch.float32) / (height + SINE_EPS) * SINE_SCALE
    cols = torch.arange(1, width + 1, dtype=torch.float32) / (width + SINE_EPS) * SINE_SCALE
    index = torch.arange(features, dtype=torch.float32)
    periods = SINE_TEMPERATURE ** (2 * torch.div(index, 2, rounding_mode='floor') / features)

    def encode(values: Tensor) -> Tensor:  # (N,) -> (N, features), sin/cos interleaved
        phase = values[:, None] / periods
        return torch.stack((phase[:, 0::2].sin(), phase[:, 1::2].cos()), dim=2).flatten(1)

    y = encode(rows)[:, None].expand(height, width, features)
    x = encode(cols)[None].expand(height, width, features)
    return torch.cat((y, x), dim=2).reshape(height * width, channels)


# --- Transformer (official names: encoder/decoder.layers.N.{self_attn, multihead_attn, ...}) ----


class EncoderLayer(nn.Module):
    """Pre-norm DETR encoder layer; token 0 (the camera) gets no positional encoding."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, pos: Tensor) -> Tensor:
        """Tokens (B, 1 + N, C), pos (N, C) for tokens 1..N -> (B, 1 + N, C)."""
        x = self.norm1(tokens)
        query = torch.cat((x[:, :1], x[:, 1:] + pos), dim=1)
        x = self.self_attn(query, query, x, need_weights=False)[0]
        tokens = tokens + self.dropout1(x)
        x = self.linear2(self.dropout(F.relu(self.linear1(self.norm2(tokens)))))
        return tokens + self.dropout2(x)


class DecoderLayer(nn.Module):
    """Pre-norm DETR decoder layer with zero query position (FastMETRO's choice)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, memory: Tensor, pos: Tensor, mask: Tensor) -> Tensor:
        """Tokens (B, T, C), memory (B, N, C), pos (N, C), mask (T, T) bool True = blocked."""
        x = self.norm1(tokens)
        x = self.self_attn(x, x, x, attn_mask=mask, need_weights=False)[0]
        tokens = tokens + self.dropout1(x)
        x = self.multihead_attn(self.norm2(tokens), memory + pos, memory, need_weights=False)[0]
        tokens = tokens + self.dropout2(x)
        x = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tokens)))))
        return tokens + self.dropout3(x)


class _Stack(nn.Module):
    """``layers`` + final ``norm`` (the official TransformerEncoder/Decoder attribute names)."""

    def __init__(self, layers: list[nn.Module], dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(dim)


class Transformer(nn.Module):
    """One FastMETRO encoder-decoder: image tokens to the encoder, mesh tokens to the decoder."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.encoder = _Stack(
            [EncoderLayer(dim, heads, ffn_dim, dropout) for _ in range(layers)], dim
        )
        self.decoder = _Stack(
            [DecoderLayer(dim, heads, ffn_dim, dropout) for _ in range(layers)], dim
        )
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def forward(
        self,
        image_tokens: Tensor,
        camera_token: Tensor,
        mesh_tokens: Tensor,
        pos: Tensor,
        mask: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Encode [camera, image], decode mesh tokens against the encoded image tokens.

        Args:
            image_tokens: (B, N, C).
            camera_token: (B, 1, C).
            mesh_tokens: (B, T, C) joint then vertex tokens.
            pos: (N, C) sine encoding of the image tokens.
            mask: (T, T) bool decoder self-attention mask, True = blocked.

        Returns:
            (camera (B, 1, C), encoded image tokens (B, N, C), mesh tokens (B, T, C)).
        """
        encoded = torch.cat((camera_token, image_tokens), dim=1)
        for layer in self.encoder.layers:
            encoded = layer(encoded, pos)
        encoded = self.encoder.norm(encoded)
        camera, image = encoded[:, :1], encoded[:, 1:]
        decoded = mesh_tokens
        for layer in self.decoder.layers:
            decoded = layer(decoded, image, pos, mask)
        return camera, image, self.decoder.norm(decoded)


# --- Optional SMPL parameter regressor (official names: regressor.N.fc_block.M) ------------------


class _FCBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc_block = nn.Sequential(
            nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.ReLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_block(x)


class _FCResBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.fc_block = nn.Sequential(
            nn.Linear(features, features),
            nn.BatchNorm1d(features),
            nn.ReLU(),
            nn.Linear(features, features),
            nn.BatchNorm1d(features),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.fc_block(x))


class SMPLParameterRegressor(nn.Module):
    """GraphCMR-style regressor of the ``_smpl`` files: intermediate mesh -> SMPL theta, beta.

    FC(1723*3 -> 1024)+BN+ReLU, two residual FC blocks, Linear(1024 -> 24*9 + 10). The 24
    matrices are projected onto rotations by SVD (R = U V^T, sign fixed by det(R)), batched on
    the device instead of the official per-sample CPU loop.
    """

    HIDDEN = 1024

    def __init__(self) -> None:
        super().__init__()
        self.regressor = nn.Sequential(
            _FCBlock(NUM_INTERMEDIATE_VERTICES * 3, self.HIDDEN),
            _FCResBlock(self.HIDDEN),
            _FCResBlock(self.HIDDEN),
            nn.Linear(self.HIDDEN, NUM_SMPL_JOINTS * 9 + NUM_SMPL_BETAS),
        )

    def forward(self, vertices_intermediate: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 1723, 3) -> (SMPL rotations (B, 24, 3, 3), betas (B, 10))."""
        batch = vertices_intermediate.shape[0]
        out = self.regressor(vertices_intermediate.reshape(batch, -1))
        matrices = out[:, : NUM_SMPL_JOINTS * 9].reshape(batch, NUM_SMPL_JOINTS, 3, 3)
        u, _, vh = torch.linalg.svd(matrices.float())
        rotations = u @ vh
        rotations = rotations * torch.linalg.det(rotations)[..., None, None]
        return rotations, out[:, NUM_SMPL_JOINTS * 9 :]


# --- Model --------------------------------------------------------------------------------------


class FastMetroOutput(NamedTuple):
    """FastMETRO prediction for a batch of 224 x 224 crops.

    Coordinates are metres, root-relative (FastMETRO centres the token joints on the hip
    midpoint and the mesh on the H36M pelvis), axes of the crop's camera (x right, y down).

    Attributes:
        camera: (B, 3) weak-perspective (s, tx, ty): crop coordinates in [-1, 1] are
            s * (X_xy + (tx, ty)).
        joints: (B, 14, 3) joint tokens' joints, FASTMETRO_JOINT_NAMES order.
        vertices_coarse: (B, 431, 3).
        vertices_intermediate: (B, 1723, 3).
        vertices: (B, 6890, 3) SMPL-topology mesh.
    """

    camera: Tensor
    joints: Tensor
    vertices_coarse: Tensor
    vertices_intermediate: Tensor
    vertices: Tensor


class FastMetroBody(nn.Module):
    """FastMETRO body network; submodule names are the official ones.

    Buffers not in the checkpoint (non-persistent): ``attention_mask`` (445, 445) bool and the
    fixed upsampling ``upsample_index`` / ``upsample_weight`` (6890, 3), filled by
    ``set_mesh_assets`` from the published mesh file. Use ``eval()`` for inference.
    """

    def __init__(self, config: FastMetroConfig) -> None:
        super().__init__()
        self.config = config
        dim_1, dim_2 = config.model_dims
        ffn_1, ffn_2 = config.feedforward_dims
        layers, heads, dropout = config.num_layers, config.num_heads, config.dropout
        self.backbone = resnet_trunk(config.backbone)
        self.transformer_1 = Transformer(dim_1, heads, ffn_1, layers, dropout)
        self.transformer_2 = Transformer(dim_2, heads, ffn_2, layers, dropout)
        self.dim_reduce_enc_cam = nn.Linear(dim_1, dim_2)
        self.dim_reduce_enc_img = nn.Linear(dim_1, dim_2)
        self.dim_reduce_dec = nn.Linear(dim_1, dim_2)
        self.cam_token_embed = nn.Embedding(1, dim_1)
        self.joint_token_embed = nn.Embedding(NUM_JOINT_TOKENS, dim_1)
        self.vertex_token_embed = nn.Embedding(NUM_COARSE_VERTICES, dim_1)
        self.xyz_regressor = nn.Linear(dim_2, 3)
        self.cam_predictor = nn.Linear(dim_2, 3)
        self.conv_1x1 = nn.Conv2d(config.backbone.out_channels, dim_1, kernel_size=1)
        self.coarse2intermediate_upsample = nn.Linear(
            NUM_COARSE_VERTICES, NUM_INTERMEDIATE_VERTICES
        )
        self.smpl_parameter_regressor = SMPLParameterRegressor() if config.parametric else None
        num_tokens = NUM_JOINT_TOKENS + NUM_COARSE_VERTICES
        self.attention_mask: Tensor
        self.upsample_index: Tensor
        self.upsample_weight: Tensor
        self.register_buffer(
            'attention_mask', torch.ones(num_tokens, num_tokens, dtype=torch.bool), False
        )
        self.register_buffer(
            'upsample_index',
            torch.zeros(NUM_FINE_VERTICES, UPSAMPLE_WEIGHTS_PER_VERTEX, dtype=torch.long),
            False,
        )
        self.register_buffer(
            'upsample_weight', torch.zeros(NUM_FINE_VERTICES, UPSAMPLE_WEIGHTS_PER_VERTEX), False
        )
        self.mesh_assets_sha256 = ''

    def set_mesh_assets(self, assets: FastMetroMeshAssets) -> None:
        """Attention mask and fixed upsampling from the published mesh file.

        Raises:
            ValueError: the assets' vertex counts are not FastMETRO's.
        """
        mask = assets.decoder_attention_mask(NUM_JOINT_TOKENS)
        if tuple(mask.shape) != tuple(self.attention_mask.shape):
            raise ValueError(
                f'mesh assets give a {tuple(mask.shape)} attention mask; FastMETRO needs '
                f'{tuple(self.attention_mask.shape)} (431 coarse vertices + 14 joints)'
            )
        index, weight = assets.fine_from_intermediate()
        if tuple(index.shape) != tuple(self.upsample_index.shape):
            raise ValueError(
                f'mesh assets upsample to {tuple(index.shape)}; FastMETRO needs '
                f'{tuple(self.upsample_index.shape)} (6890 from 1723 vertices)'
            )
        device = self.cam_token_embed.weight.device
        self.attention_mask = mask.to(device)
        self.upsample_index = index.to(device)
        self.upsample_weight = weight.to(device, self.upsample_weight.dtype)
        self.mesh_assets_sha256 = assets.sha256

    def forward(self, crops: Tensor) -> FastMetroOutput:
        """Mesh and camera from person crops.

        Args:
            crops: (B, 3, 224, 224) RGB, ImageNet-normalised ((x / 255 - mean) / std).

        Returns:
            FastMetroOutput.

        Raises:
            RuntimeError: the mesh assets were never set.
            ValueError: wrong crop shape.
        """
        size = self.config.input_size_px
        if crops.dim() != 4 or tuple(crops.shape[1:]) != (3, size, size):
            raise ValueError(
                f'crops must be (B, 3, {size}, {size}) ImageNet-normalised RGB; got '
                f'{tuple(crops.shape)}'
            )
        if not self.mesh_assets_sha256 and not crops.is_meta:
            raise RuntimeError(
                'FastMETRO needs its mesh assets (attention mask, upsampling) before the first '
                'forward: call set_mesh_assets(load_fastmetro_mesh_assets(path))'
            )
        batch = crops.shape[0]
        features = self.conv_1x1(self.backbone(crops))  # (B, 512, h, w)
        height, width = features.shape[-2:]
        image_tokens = features.flatten(2).transpose(1, 2)
        dim_1, dim_2 = self.config.model_dims
        pos_1 = sine_position_encoding(height, width, dim_1).to(image_tokens)
        pos_2 = sine_position_encoding(height, width, dim_2).to(image_tokens)
        camera_token = self.cam_token_embed.weight[None].expand(batch, -1, -1)
        mesh_tokens = torch.cat((self.joint_token_embed.weight, self.vertex_token_embed.weight))
        mesh_tokens = mesh_tokens[None].expand(batch, -1, -1)

        camera_1, image_1, mesh_1 = self.transformer_1(
            image_tokens, camera_token, mesh_tokens, pos_1, self.attention_mask
        )
        camera_2, _, mesh_2 = self.transformer_2(
            self.dim_reduce_enc_img(image_1),
            self.dim_reduce_enc_cam(camera_1),
            self.dim_reduce_dec(mesh_1),
            pos_2,
            self.attention_mask,
        )
        camera = self.cam_predictor(camera_2)[:, 0]
        xyz = self.xyz_regressor(mesh_2)
        joints, coarse = xyz[:, :NUM_JOINT_TOKENS], xyz[:, NUM_JOINT_TOKENS:]
        intermediate = self.coarse2intermediate_upsample(coarse.transpose(1, 2)).transpose(1, 2)
        fine = (intermediate[:, self.upsample_index] * self.upsample_weight[..., None]).sum(2)
        return FastMetroOutput(
            camera=camera,
            joints=joints,
            vertices_coarse=coarse,
            vertices_intermediate=intermediate,
            vertices=fine,
        )


def build_fastmetro(name: str) -> FastMetroBody:
    """Build a registered variant with fresh weights (load a checkpoint next).

    Build under ``with torch.device('meta'):`` to inspect sizes without memory.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    return FastMetroBody(fastmetro_config(name))
