"""HaMeR-compatible MANO regression head: a transformer decoder over ViT tokens.

Pavlakos et al., "Reconstructing Hands in 3D with Transformers" (CVPR 2024), section 3;
layout in docs/model-reference.md, A.4. One query token (a literal zero input, so only
``to_token_embedding.bias`` and ``pos_embedding`` shape it) cross-attends to the 16x12 ViT
tokens through 6 decoder layers. One iterative-error-feedback step adds linear read-outs to
the mean parameters: 16 rotations in HaMeR's contiguous 6D layout (global orientation, then
the 15 MANO finger joints), 10 betas, the weak-perspective crop camera (s, tx, ty).

Parameter names follow the official checkpoint (``transformer.*``, ``decpose``, ``decshape``,
``deccam``, buffers ``init_hand_pose``, ``init_betas``, ``init_cam``). Adapters reuse the pieces
(``query_tokens``, ``context_tokens``, ``transformer.layers``, ``regress``) with their own
loop over the layers; see hmr_ros.models.components.pose_transformer.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from hmr_ros.geometry.rotations import Rot6dLayout, rot6d_to_rotmat, rotmat_to_rot6d
from hmr_ros.models.components.pose_transformer import TransformerDecoder

ROT6D_LAYOUT: Rot6dLayout = 'contiguous'
"""HaMeR's 6D layout: a1 = v[0:3], a2 = v[3:6]."""

NUM_HAND_JOINTS = 15
"""MANO finger joints (without the global orientation)."""

NUM_POSE_ROTATIONS = 1 + NUM_HAND_JOINTS
"""Global orientation + finger joints."""

ROT6D_DIM = 6
NUM_BETAS = 10
CAM_DIM = 3
"""Weak-perspective camera (s, tx, ty)."""

QUERY_TOKEN_DIM = 1
"""HaMeR's TRANSFORMER_INPUT 'zero': one query of width 1, always zero."""

DEFAULT_MEAN_CAM = (0.9, 0.0, 0.0)
"""Initial camera before mean parameters are loaded: a hand filling most of the crop (tz ~43 m
at f = 5000). Checkpoints and mano_mean_params.npz replace it."""


@dataclass(frozen=True)
class MANOHeadConfig:
    """Sizes of the MANO transformer-decoder head.

    Attributes:
        dim: decoder token width.
        depth: decoder layers.
        heads: attention heads.
        dim_head: width per head (inner width heads * dim_head).
        mlp_dim: feed-forward hidden width.
        context_dim: image-token width (the ViT embed_dim).
        dropout: dropout inside the layers (0 in the released model).
        fused_attention: use ``F.scaled_dot_product_attention`` (False: reference path).
    """

    dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    context_dim: int = 1280
    dropout: float = 0.0
    fused_attention: bool = True

    def __post_init__(self) -> None:
        for name in ('dim', 'depth', 'heads', 'dim_head', 'mlp_dim', 'context_dim'):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f'MANOHeadConfig.{name} must be positive, got {getattr(self, name)}'
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'MANOHeadConfig.dropout must be in [0, 1), got {self.dropout}')


class MANOHeadOutput(NamedTuple):
    """MANO parameters and crop camera of right hands (left hands: see mirror_left_hands).

    Attributes:
        global_orient: (B, 1, 3, 3) hand root rotation, crop camera frame (OpenCV axes).
        hand_pose: (B, 15, 3, 3) finger joint rotations, MANO joint order, flat-hand
            convention (MANO's hands_mean is not added).
        betas: (B, 10) MANO shape.
        cam: (B, 3) weak-perspective camera (s, tx, ty) of the 256x256 square crop.
        pose_6d: (B, 16, 6) the same 16 rotations in HaMeR's contiguous 6D layout.
        token: (B, dim) the decoder's output token.
    """

    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    pose_6d: torch.Tensor
    token: torch.Tensor


def identity_pose_6d() -> torch.Tensor:
    """(1, 96) identity rotations for the 16 joints in the contiguous 6D layout."""
    eye = torch.eye(3).expand(NUM_POSE_ROTATIONS, 3, 3)
    return rotmat_to_rot6d(eye, ROT6D_LAYOUT).reshape(1, -1)


class MANOTransformerHead(nn.Module):
    """HaMeR's ``MANOTransformerDecoderHead`` with the official parameter names.

    ``forward`` is query_tokens -> each of ``transformer.layers`` -> regress. The hand adapter
    (issue 4, paper section 3.3) keeps this module frozen and runs the same steps with its own
    layer loop, adding its body-guided branch to each layer's cross-attention output::

        context = head.context_tokens(feature_map)
        x = head.query_tokens(context.shape[0], context)
        for layer, branch in zip(head.transformer.layers, adapter_branches):
            x = x + layer.attend_self(x)
            x = x + layer.attend_context(x, context) + branch(x, body_tokens)
            x = x + layer.feed_forward(x)
        output = head.regress(x[:, 0])
    """

    init_hand_pose: torch.Tensor
    init_betas: torch.Tensor
    init_cam: torch.Tensor

    def __init__(self, config: MANOHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = TransformerDecoder(
            num_tokens=1,
            token_dim=QUERY_TOKEN_DIM,
            dim=config.dim,
            depth=config.depth,
            context_dim=config.context_dim,
            heads=config.heads,
            dim_head=config.dim_head,
            mlp_dim=config.mlp_dim,
            dropout=config.dropout,
        )
        self.transformer.set_fused_attention(config.fused_attention)
        self.decpose = nn.Linear(config.dim, NUM_POSE_ROTATIONS * ROT6D_DIM)
        self.decshape = nn.Linear(config.dim, NUM_BETAS)
        self.deccam = nn.Linear(config.dim, CAM_DIM)
        self.register_buffer('init_hand_pose', identity_pose_6d())
        self.register_buffer('init_betas', torch.zeros(1, NUM_BETAS))
        self.register_buffer('init_cam', torch.tensor([DEFAULT_MEAN_CAM]))

    def set_mean_params(
        self, pose_6d: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor
    ) -> None:
        """Copy mean parameters into the init_* buffers.

        Args:
            pose_6d: (96,) or (1, 96) contiguous-6D mean pose.
            betas: (10,) or (1, 10) mean shape.
            cam: (3,) or (1, 3) mean camera (s, tx, ty).

        Raises:
            ValueError: wrong number of values.
        """
        for name, value, buffer in (
            ('pose_6d', pose_6d, self.init_hand_pose),
            ('betas', betas, self.init_betas),
            ('cam', cam, self.init_cam),
        ):
            if value.numel() != buffer.numel():
                raise ValueError(
                    f'mean {name} must have {buffer.numel()} values, got {tuple(value.shape)}'
                )
            with torch.no_grad():
                buffer.copy_(value.reshape(buffer.shape))

    def load_mean_params(self, path: str | Path) -> None:
        """Read HaMeR's ``mano_mean_params.npz`` (keys pose (96,), shape (10,), cam (3,)).

        Only needed to train from scratch: the official checkpoint stores the buffers.

        Raises:
            FileNotFoundError: the file is missing.
            ValueError: a key is missing or has the wrong size.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f'MANO mean parameters not found at {path}; HaMeR ships them as '
                '_DATA/data/mano_mean_params.npz (see docs/licences.md)'
            )
        with np.load(path, allow_pickle=False) as data:
            missing = {'pose', 'shape', 'cam'} - set(data.files)
            if missing:
                raise ValueError(
                    f'{path} lacks keys {sorted(missing)}; expected pose (96,), shape (10,), '
                    'cam (3,) as in HaMeR mano_mean_params.npz'
                )
            values = {
                k: torch.from_numpy(np.asarray(data[k], dtype=np.float32)) for k in data.files
            }
        self.set_mean_params(values['pose'], values['shape'], values['cam'])

    def query_tokens(self, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        """Embedded query tokens (B, 1, dim) from the zero input.

        Args:
            batch_size: B.
            like: any tensor whose device and dtype the zero input takes (the context).
        """
        zeros = like.new_zeros(batch_size, 1, QUERY_TOKEN_DIM)
        return self.transformer.embed(zeros)

    @staticmethod
    def context_tokens(feature_map: torch.Tensor) -> torch.Tensor:
        """ViT feature map (B, C, H', W') -> context tokens (B, H'W', C), row-major."""
        return feature_map.flatten(2).transpose(1, 2)

    def regress(self, token: torch.Tensor) -> MANOHeadOutput:
        """One IEF step from the decoder's output token.

        Args:
            token: (B, dim).

        Returns:
            MANOHeadOutput (rotations via contiguous 6D Gram-Schmidt).
        """
        pose_6d = self.decpose(token) + self.init_hand_pose
        betas = self.decshape(token) + self.init_betas
        cam = self.deccam(token) + self.init_cam
        pose_6d = pose_6d.reshape(token.shape[0], NUM_POSE_ROTATIONS, ROT6D_DIM)
        rotations = rot6d_to_rotmat(pose_6d, ROT6D_LAYOUT)
        return MANOHeadOutput(
            global_orient=rotations[:, :1],
            hand_pose=rotations[:, 1:],
            betas=betas,
            cam=cam,
            pose_6d=pose_6d,
            token=token,
        )

    def forward(self, feature_map: torch.Tensor) -> MANOHeadOutput:
        """Regress MANO parameters from ViT features.

        Args:
            feature_map: (B, context_dim, H', W') backbone output.

        Returns:
            MANOHeadOutput.
        """
        context = self.context_tokens(feature_map)
        x = self.query_tokens(context.shape[0], context)
        for layer in self.transformer.layers:
            x = layer(x, context)
        return self.regress(x[:, 0])
