"""Adapter files: HMR-Adapter weights in their own safetensors files, apart from base checkpoints.

The paper trains only the two adapters (HMR-Adapter, section 3.5), so their weights (27M and
37M values at full size) travel without the base models' 670M: one ``.safetensors`` file per
adapter, holding exactly the adapter module's state dict. Its metadata carries

- the model card (project_format.ModelCard): ``model`` is the adapter type (``'hand_adapter'``
  or ``'body_adapter'``), ``variant`` the base variant the adapter was trained against
  (``'hamer'``, ``'smplerx_h32'`` ...), and where the weights came from;
- ``hmr_ros.adapter_config``: JSON of the adapter's ``file_config()``, every size and choice
  that fixes its tensor shapes (width, depth, heads, joint embedding ...).

Loading is strict (docs/development.md): type, base variant and configuration are compared
before any tensor is read into the module, and every difference is reported by key; then the
state dict is loaded with ``load_state_dict_strict``, which reports missing, unexpected and
mis-shaped keys. This module works on any ``nn.Module`` with an ``adapter_name`` and a
``file_config()`` (the adapters in hmr_ros.models.adapters), so the checkpoints layer does not
import the models layer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from safetensors import safe_open
from torch import nn

from hmr_ros.checkpoints.project_format import (
    METADATA_PREFIX,
    ModelCard,
    load_model_file,
    save_model_file,
)
from hmr_ros.checkpoints.safe_load import (
    README_CHECKPOINTS_SECTION,
    CheckpointError,
    CorruptCheckpointError,
    load_state_dict_strict,
)

__all__ = [
    'ADAPTER_CONFIG_KEY',
    'ADAPTER_MODELS',
    'AdapterFile',
    'AdapterFileMismatchError',
    'AdapterModule',
    'load_adapter_file',
    'read_adapter_file',
    'save_adapter_file',
]

ADAPTER_MODELS: tuple[str, ...] = (
    'hand_adapter',
    'body_adapter',
    'deformable_decoder',
    # Whole-body ablation variants (models/ablations/body.py): their training checkpoints,
    # and the final files of those that add modules.
    'smplerx_full_finetune',
    'smplerx_from_scratch',
    'smplerx_head_finetune',
    'body_concatenation',
    'body_weighted_sum',
    'body_adapter_task_tokens',
    # The paper's hand ablations (models/ablations/hand.py): body feature injections, and the
    # trained part of the weight-only variants in training checkpoints.
    'hand_concatenation',
    'hand_weighted_sum',
    'hamer_full_finetune',
    'hamer_from_scratch',
    'hamer_decoder_finetune',
)
"""Model-card ``model`` values of adapter files."""

ADAPTER_CONFIG_KEY = METADATA_PREFIX + 'adapter_config'
"""Metadata key of the adapter configuration (JSON object of scalars)."""

ConfigValue = int | float | bool | str


@runtime_checkable
class AdapterModule(Protocol):
    """What an adapter module offers for its file (HandAdapter and BodyAdapter do).

    Attributes:
        adapter_name: the card's ``model``, one of ADAPTER_MODELS.
    """

    adapter_name: str

    def file_config(self) -> dict[str, ConfigValue]:
        """Sizes and choices that fix the adapter's state-dict shapes."""
        ...


class AdapterFileMismatchError(CheckpointError, ValueError):
    """An adapter file was written for another adapter type, base variant or configuration.

    Attributes:
        differences: ``(key, value in the file, value expected)`` for every difference; keys
            are ``'model'``, ``'base_variant'`` or a configuration key.
    """

    def __init__(self, path: str | os.PathLike[str], differences: list[tuple[str, str, str]]):
        self.differences = differences
        lines = [f'Adapter file {os.fspath(path)} does not match the adapter it is loaded into:']
        lines += [f'  {key}: file {found}, expected {want}' for key, found, want in differences]
        lines.append(
            'Build the adapter with the configuration and base variant written in the file '
            '(read_adapter_file shows them), or use the adapter file trained for this base model.'
        )
        super().__init__('\n'.join(lines))


@dataclass(frozen=True)
class AdapterFile:
    """Contents of an adapter file.

    Attributes:
        state_dict: the adapter's tensors, key -> tensor.
        card: model card; ``card.model`` the adapter type, ``card.variant`` the base variant.
        config: the adapter's ``file_config()`` when it was saved.
    """

    state_dict: dict[str, torch.Tensor]
    card: ModelCard
    config: dict[str, ConfigValue]


def _describe(adapter: nn.Module) -> tuple[str, dict[str, ConfigValue]]:
    if not isinstance(adapter, AdapterModule):
        raise TypeError(
            f'{type(adapter).__name__} is not an adapter: adapter files hold modules with an '
            '`adapter_name` and a `file_config()` (hmr_ros.models.adapters HandAdapter, '
            'BodyAdapter); save base models with project_format.save_model_file'
        )
    name = adapter.adapter_name
    if name not in ADAPTER_MODELS:
        raise ValueError(f'adapter_name must be one of {ADAPTER_MODELS}, got {name!r}')
    config = dict(adapter.file_config())
    for key, value in config.items():
        if not isinstance(value, (int, float, bool, str)):
            raise TypeError(
                f'file_config()[{key!r}] must be an int, float, bool or str, '
                f'got {type(value).__name__}'
            )
    return name, config


def _same(a: object, b: object) -> bool:
    """Equal values of the same type (so True and 1, or 1 and 1.0, differ)."""
    return type(a) is type(b) and a == b


def save_adapter_file(
    path: str | os.PathLike[str],
    adapter: nn.Module,
    base_variant: str,
    *,
    source_file: str = '',
    source_sha256: str = '',
) -> Path:
    """Write an adapter's weights, card and configuration to a ``.safetensors`` file.

    The file is written beside its destination and renamed into place (never a truncated
    file); parent folders are created.

    Args:
        path: destination, conventionally ``<adapter>_<base variant>.safetensors``.
        adapter: HandAdapter or BodyAdapter (any AdapterModule).
        base_variant: registered name of the base model the adapter was trained against
            (``'hamer'``, ``'smplerx_h32'``).
        source_file: file the weights came from (e.g. a training checkpoint), name only.
        source_sha256: SHA-256 of ``source_file`` or ''.

    Returns:
        The destination path.

    Raises:
        TypeError: ``adapter`` is not an adapter.
        ValueError: invalid card fields (e.g. a base variant that is not an identifier).
    """
    name, config = _describe(adapter)
    card = ModelCard(
        model=name, variant=base_variant, source_file=source_file, source_sha256=source_sha256
    )
    return save_model_file(
        path,
        adapter.state_dict(),
        card,
        extra_metadata={ADAPTER_CONFIG_KEY: json.dumps(config, sort_keys=True)},
    )


def read_adapter_file(
    path: str | os.PathLike[str], device: str | torch.device = 'cpu'
) -> AdapterFile:
    """Read an adapter file without loading it into a module.

    Args:
        path: file written by save_adapter_file.
        device: where to put the tensors.

    Returns:
        AdapterFile.

    Raises:
        CheckpointNotFoundError: no such file.
        CorruptCheckpointError: not a safetensors file with a model card and an adapter
            configuration.
        AdapterFileMismatchError: a model file of a base model, not of an adapter.
    """
    state_dict, card = load_model_file(path, device=device)
    if card.model not in ADAPTER_MODELS:
        raise AdapterFileMismatchError(path, [('model', card.model, ' or '.join(ADAPTER_MODELS))])
    with safe_open(os.fspath(path), framework='pt') as reader:
        metadata: Mapping[str, str] = reader.metadata() or {}
    try:
        config = json.loads(metadata[ADAPTER_CONFIG_KEY])
        if not isinstance(config, dict):
            raise ValueError('not a JSON object')
    except (KeyError, ValueError) as error:
        raise CorruptCheckpointError(
            f'{os.fspath(path)} is a {card.model} file without a readable {ADAPTER_CONFIG_KEY} '
            f'entry ({type(error).__name__}: {error}); write adapter files with '
            f'save_adapter_file (see {README_CHECKPOINTS_SECTION}).'
        ) from error
    return AdapterFile(state_dict=state_dict, card=card, config=config)


def load_adapter_file(
    path: str | os.PathLike[str],
    adapter: nn.Module,
    base_variant: str | None = None,
    device: str | torch.device = 'cpu',
) -> ModelCard:
    """Strictly load an adapter file into an adapter module.

    Checks, in order, reporting every difference by key before anything is copied:

    1. the file's adapter type equals ``adapter.adapter_name``;
    2. its base variant equals ``base_variant`` (when given);
    3. its configuration equals ``adapter.file_config()`` key by key;
    4. keys and shapes of the tensors (load_state_dict_strict).

    Args:
        path: file written by save_adapter_file.
        adapter: a freshly built HandAdapter / BodyAdapter of the right configuration (on the
            'meta' device it receives the file's tensors directly).
        base_variant: the base model variant the adapter will run on, or None to skip check 2.
        device: where the file's tensors are read to.

    Returns:
        The file's model card.

    Raises:
        AdapterFileMismatchError: checks 1-3 failed (the message lists each key).
        CheckpointMismatchError: check 4 failed (missing, unexpected, mis-shaped keys).
        CheckpointNotFoundError, CorruptCheckpointError: see read_adapter_file.
    """
    name, config = _describe(adapter)
    file = read_adapter_file(path, device=device)
    differences: list[tuple[str, str, str]] = []
    if file.card.model != name:
        differences.append(('model', file.card.model, name))
    if base_variant is not None and file.card.variant != base_variant:
        differences.append(('base_variant', file.card.variant, base_variant))
    absent = '<absent>'
    for key in sorted(set(file.config) | set(config)):
        found, want = file.config.get(key, absent), config.get(key, absent)
        if not _same(found, want):
            differences.append((key, repr(found), repr(want)))
    if differences:
        raise AdapterFileMismatchError(path, differences)
    load_state_dict_strict(
        adapter,
        file.state_dict,
        context=f'Adapter file {os.fspath(path)} does not match {type(adapter).__name__}',
    )
    return file.card
