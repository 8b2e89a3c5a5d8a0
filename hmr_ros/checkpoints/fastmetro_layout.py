"""FastMETRO's released ``*_state_dict.bin`` files <-> FastMetroBody's state dict (pure functions).

The released files (docs/seed-models.md, 'FastMETRO') are raw ``torch.save(model.state_dict())``
dicts: no container, no ``module.`` prefix. The official code loads them with
``strict=False``, which would silently accept a file of another variant, so this module and
the strict check after it (safe_load.check_state_dict) do the coverage check themselves. Quirks
of the files, each handled here:

- ResNet-50 keys are numbered ``backbone.0.*`` ... ``backbone.7.*``: the official code keeps
  the torchvision children up to layer4 in an ``nn.Sequential`` (our module does the same).
- HRNet-W64 files keep the ImageNet ``backbone.classifier.*`` the model never uses
  (HRNET_UNUSED_PATTERNS); HRNet-W64 itself is not implemented in this build, so those files
  are recognised and refused with that reason.
- Hand (FreiHAND) files have 21 joint and 195 vertex tokens and no learnable upsampling; the
  hand path needs MANO parameters, so they are recognised and refused.
- Parametric ``_smpl`` files add ``smpl_parameter_regressor.regressor.*``.

Our module uses the official names, so conversion selects and checks keys; it never renames.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch

from hmr_ros.checkpoints.safe_load import CheckpointMismatchError

__all__ = [
    'FASTMETRO_SIZES',
    'HRNET_UNUSED_PATTERNS',
    'detect_fastmetro_variant',
    'fastmetro_state_dict_from_official',
    'is_official_fastmetro_checkpoint',
    'official_fastmetro_checkpoint',
]

CAMERA_TOKEN_KEY = 'cam_token_embed.weight'
JOINT_TOKEN_KEY = 'joint_token_embed.weight'
VERTEX_TOKEN_KEY = 'vertex_token_embed.weight'
DDP_PREFIX = 'module.'
HRNET_UNUSED_PATTERNS = ('backbone.classifier.*',)
"""Keys of the HRNet-W64 files the model does not use (ImageNet classifier head)."""
BODY_TOKENS = (14, 431)
HAND_TOKENS = (21, 195)
PARAMETRIC_PREFIX = 'smpl_parameter_regressor.'

FASTMETRO_SIZES: Mapping[tuple[str, int, int], str] = {
    ('resnet', 512, 1): 'fastmetro_s_r50',
    ('resnet', 512, 2): 'fastmetro_m_r50',
    ('resnet', 512, 3): 'fastmetro_l_r50',
    ('resnet', 32, 1): 'fastmetro_tiny',
}
"""(backbone, transformer-1 width, layers) -> variant of hmr_ros.models.alternatives.fastmetro
(a test checks that it agrees with the registered variants)."""

_ENCODER_LAYER_KEY = re.compile(r'^transformer_1\.encoder\.layers\.(\d+)\.')


def is_official_fastmetro_checkpoint(ckpt: Any) -> bool:
    """Whether a loaded file is a raw FastMETRO state dict (camera token + transformer_1)."""
    if not isinstance(ckpt, Mapping):
        return False
    keys = [str(k).removeprefix(DDP_PREFIX) for k in ckpt]
    return CAMERA_TOKEN_KEY in keys and any(k.startswith('transformer_1.') for k in keys)


def _backbone_kind(state_dict: Mapping[str, Any]) -> str:
    if 'backbone.0.weight' in state_dict:
        return 'resnet'
    if any(key.startswith('backbone.stage') for key in state_dict):
        return 'hrnet'
    return 'unknown'


def fastmetro_state_dict_from_official(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """FastMetroBody state dict from a loaded released file (checks the layout, not the sizes).

    Args:
        ckpt: the loaded ``*_state_dict.bin`` (safe_load.load_torch_file): key -> tensor.

    Returns:
        key -> tensor in FastMetroBody's names (the official ones; a ``module.`` prefix, as
        DistributedDataParallel writes it, is removed).

    Raises:
        CheckpointMismatchError: a FastMETRO file this build cannot run (hand model, HRNet-W64
            backbone) or no FastMETRO layout; the message says which and why.
    """
    state = {str(k).removeprefix(DDP_PREFIX): v for k, v in ckpt.items()}
    if CAMERA_TOKEN_KEY not in state:
        raise CheckpointMismatchError(
            missing=[CAMERA_TOKEN_KEY], unexpected=[], context='not a FastMETRO state dict'
        )
    tokens = tuple(
        int(state[key].shape[0]) for key in (JOINT_TOKEN_KEY, VERTEX_TOKEN_KEY) if key in state
    )
    if tokens == HAND_TOKENS:
        raise CheckpointMismatchError(
            missing=[],
            unexpected=[JOINT_TOKEN_KEY, VERTEX_TOKEN_KEY],
            context=(
                'this is a FastMETRO hand (FreiHAND) file: 21 joint and 195 vertex tokens, a '
                'MANO-topology mesh without MANO parameters; hmr_ros runs FastMETRO as the body '
                'model only (use a HaMeR hand checkpoint for the hand path)'
            ),
        )
    kind = _backbone_kind(state)
    if kind == 'hrnet':
        raise CheckpointMismatchError(
            missing=[],
            unexpected=sorted(k for k in state if k.startswith('backbone.'))[:3],
            context=(
                'this FastMETRO file has an HRNet-W64 backbone (FastMETRO-L-H64); HRNet-W64 is '
                'not implemented in this hmr_ros build: use FastMETRO-S-R50 '
                '(FastMETRO-S-R50_h36m_state_dict.bin or _3dpw_)'
            ),
        )
    return {k: v for k, v in state.items() if not k.startswith('backbone.classifier.')}


def detect_fastmetro_variant(state_dict: Mapping[str, Any]) -> str:
    """Variant from the backbone, transformer width and layer count of a FastMETRO state dict.

    Raises:
        ValueError: no FastMETRO keys, or sizes of no registered variant (the message lists
            the known ones).
    """
    token = state_dict.get(CAMERA_TOKEN_KEY)
    if token is None:
        raise ValueError(f"state dict has no '{CAMERA_TOKEN_KEY}': not a FastMETRO state dict")
    width = int(token.shape[-1])
    layer_ids = {int(m.group(1)) for key in state_dict if (m := _ENCODER_LAYER_KEY.match(key))}
    layers = max(layer_ids) + 1 if layer_ids else 0
    kind = _backbone_kind(state_dict)
    name = FASTMETRO_SIZES.get((kind, width, layers))
    if name is None:
        known = ', '.join(
            f'{n}: {b}, width {w}, {d} layers' for (b, w, d), n in FASTMETRO_SIZES.items()
        )
        raise ValueError(
            f'unknown FastMETRO sizes: {kind} backbone, width {width}, {layers} layers; known '
            f'variants: {known}'
        )
    if any(key.startswith(PARAMETRIC_PREFIX) for key in state_dict):
        raise ValueError(
            f'{name} with the SMPL parameter regressor: no such file was released for this '
            'backbone (the _smpl files are FastMETRO-L-H64, HRNet-W64, not in this build)'
        )
    return name


def official_fastmetro_checkpoint(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A released-style raw state dict from FastMetroBody's (same names, an OrderedDict)."""
    return OrderedDict((key, value.detach().clone()) for key, value in state_dict.items())
