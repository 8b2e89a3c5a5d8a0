"""SMPLer-X checkpoint layout: official ``.pth.tar`` dicts <-> WholeBodyModel state dicts.

Pure state-dict functions, like timm's ``checkpoint_filter_fn`` (docs/model-reference.md,
B.7 and D.11):

- A released file is ``torch.save({'network': state_dict, 'epoch': ..., 'optimizer': ...})``
  (whether ``optimizer`` is kept is unverified); the state dict is the DataParallel/DDP one, so
  every key starts with ``module.``.
- Older OSX-style files name three modules differently (``backbone``, ``body_rotation_net``,
  ``hand_rotation_net``); both spellings are accepted.
- SMPLer-X's ``save_model`` drops ``smplx_layer.*`` (the SMPL-X layer's buffers); an unfiltered
  file may still carry them and they are dropped here: the SMPL-X layer is built from the body
  model file (hmr_ros.body_models), not from the checkpoint.

Everything else (BatchNorm running statistics included) must be present: load the result with
hmr_ros.checkpoints.safe_load.load_state_dict_strict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from hmr_ros.checkpoints.safe_load import CheckpointMismatchError, CorruptCheckpointError

__all__ = [
    'LEGACY_MODULE_NAMES',
    'OFFICIAL_CONTAINER_KEY',
    'OFFICIAL_KEY_PREFIX',
    'SMPLERX_ENCODER_SIZES',
    'SMPLERX_MODULE_NAMES',
    'detect_smplerx_variant',
    'is_official_smplerx_checkpoint',
    'official_smplerx_checkpoint',
    'smplerx_state_dict_from_official',
]

OFFICIAL_CONTAINER_KEY = 'network'
"""Entry of the saved dict that holds the model state dict."""
OFFICIAL_KEY_PREFIX = 'module.'
"""DataParallel/DDP prefix of every official key."""
SMPLERX_MODULE_NAMES = (
    'encoder',
    'body_position_net',
    'body_regressor',
    'box_net',
    'hand_roi_net',
    'hand_position_net',
    'hand_regressor',
    'face_regressor',
)
"""Top-level modules of the network, in checkpoint order."""
LEGACY_MODULE_NAMES: Mapping[str, str] = {
    'backbone': 'encoder',
    'body_rotation_net': 'body_regressor',
    'hand_rotation_net': 'hand_regressor',
}
"""Old (OSX-style) top-level module names -> current ones."""
DROPPED_MODULE_NAMES = ('smplx_layer',)
"""Top-level modules whose keys are ignored (not part of WholeBodyModel)."""

SMPLERX_ENCODER_SIZES: Mapping[tuple[int, int], str] = {
    (384, 12): 'smplerx_s32',
    (768, 12): 'smplerx_b32',
    (1024, 24): 'smplerx_l32',
    (1280, 32): 'smplerx_h32',
    (32, 2): 'smplerx_tiny',
}
"""(encoder width, encoder depth) -> variant name of hmr_ros.models.whole_body (a test checks
that this table agrees with the registered variants)."""

_BLOCK_KEY = re.compile(r'^encoder\.blocks\.(\d+)\.')


def is_official_smplerx_checkpoint(ckpt: Any) -> bool:
    """Whether a loaded file is a SMPLer-X checkpoint: a mapping with a 'network' mapping."""
    return isinstance(ckpt, Mapping) and isinstance(ckpt.get(OFFICIAL_CONTAINER_KEY), Mapping)


def smplerx_state_dict_from_official(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """WholeBodyModel state dict from a loaded official SMPLer-X checkpoint.

    Args:
        ckpt: what hmr_ros.checkpoints.safe_load.load_torch_file returned for a
            ``smpler_x_*.pth.tar`` file: ``{'network': state_dict, ...}``; other entries
            (``epoch``, ``optimizer``) are ignored.

    Returns:
        key -> tensor without the ``module.`` prefix, legacy module names renamed, SMPL-X layer
        buffers dropped; keys keep the file's order.

    Raises:
        CorruptCheckpointError: no ``network`` entry, or it is not a mapping of tensors.
        CheckpointMismatchError: the file holds a tensor under both a legacy and a current name.
    """
    if not isinstance(ckpt, Mapping) or OFFICIAL_CONTAINER_KEY not in ckpt:
        found = sorted(map(str, ckpt))[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CorruptCheckpointError(
            f"Not a SMPLer-X checkpoint: expected a dict with a '{OFFICIAL_CONTAINER_KEY}' entry "
            f'(the smpler_x_*.pth.tar files), found {found}. HaMeR checkpoints use '
            'hmr_ros.checkpoints.hamer_layout instead.'
        )
    network = ckpt[OFFICIAL_CONTAINER_KEY]
    if not isinstance(network, Mapping):
        raise CorruptCheckpointError(
            f"SMPLer-X checkpoint entry '{OFFICIAL_CONTAINER_KEY}' must be a state dict; found "
            f'{type(network).__name__}. Download the checkpoint again.'
        )
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    collisions: list[str] = []
    for key, value in network.items():
        if not isinstance(value, torch.Tensor):
            raise CorruptCheckpointError(
                f"SMPLer-X checkpoint entry '{OFFICIAL_CONTAINER_KEY}' holds a "
                f'{type(value).__name__} under {key!r}; expected tensors only.'
            )
        name = key.removeprefix(OFFICIAL_KEY_PREFIX)
        module, _, rest = name.partition('.')
        if module in DROPPED_MODULE_NAMES:
            continue
        name = f'{LEGACY_MODULE_NAMES.get(module, module)}.{rest}' if rest else name
        if name in state:
            collisions += [origin[name], key]
            continue
        state[name] = value
        origin[name] = key
    if collisions:
        raise CheckpointMismatchError(
            unexpected=collisions,
            context=(
                'SMPLer-X checkpoint holds the same tensors under legacy and current names '
                f'({dict(LEGACY_MODULE_NAMES)}); keep one spelling'
            ),
        )
    return state


def official_smplerx_checkpoint(
    model_state: Mapping[str, torch.Tensor],
    *,
    epoch: int = 0,
    legacy_names: bool = False,
) -> dict[str, Any]:
    """Official-layout dict from a WholeBodyModel state dict (for tiny stand-in files).

    Args:
        model_state: WholeBodyModel.state_dict().
        epoch: value of the ``epoch`` entry.
        legacy_names: write ``backbone``/``body_rotation_net``/``hand_rotation_net`` instead of
            the current module names, as older OSX-style files do.

    Returns:
        ``{'network': {'module.' + key: tensor}, 'epoch': epoch}``; save with ``torch.save``.
    """
    current_to_legacy = {new: old for old, new in LEGACY_MODULE_NAMES.items()}
    network: dict[str, torch.Tensor] = {}
    for key, value in model_state.items():
        module, _, rest = key.partition('.')
        if legacy_names and module in current_to_legacy:
            key = f'{current_to_legacy[module]}.{rest}'
        network[OFFICIAL_KEY_PREFIX + key] = value
    return {OFFICIAL_CONTAINER_KEY: network, 'epoch': epoch}


def detect_smplerx_variant(state_dict: Mapping[str, Any]) -> str:
    """Variant name from the encoder width and depth of a WholeBodyModel state dict.

    Args:
        state_dict: output of smplerx_state_dict_from_official (or WholeBodyModel.state_dict();
            tensors or anything with a ``shape``).

    Returns:
        'smplerx_s32', 'smplerx_b32', 'smplerx_l32', 'smplerx_h32' or 'smplerx_tiny'.

    Raises:
        ValueError: no encoder keys, or a width/depth of no known variant.
    """
    pos_embed = state_dict.get('encoder.pos_embed')
    if pos_embed is None:
        raise ValueError(
            "state dict has no 'encoder.pos_embed'; convert the official checkpoint with "
            'smplerx_state_dict_from_official first'
        )
    width = int(pos_embed.shape[-1])
    block_ids = {int(m.group(1)) for key in state_dict if (m := _BLOCK_KEY.match(key))}
    depth = max(block_ids) + 1 if block_ids else 0
    name = SMPLERX_ENCODER_SIZES.get((width, depth))
    if name is None:
        known = ', '.join(
            f'{n}: width {w}, depth {d}' for (w, d), n in SMPLERX_ENCODER_SIZES.items()
        )
        raise ValueError(
            f'unknown SMPLer-X encoder: width {width}, depth {depth}; known variants: {known}'
        )
    return name
