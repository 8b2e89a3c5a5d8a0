"""The project's own model files: safetensors weights plus a model card in the file's metadata.

Official checkpoints are pickles (safe_load.py reads them once, in ``hmr-ros convert-checkpoint``);
everything hmr_ros loads at run time is a ``.safetensors`` file, which holds only tensors and a
``str -> str`` metadata table, so opening one never runs code (docs/development.md). The model card
says what the weights are and where they came from, so a file can be checked before it is used
and traced back to the exact official file it was converted from (docs/development.md: the
preprocessing contract travels with the weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hmr_ros import __version__ as HMR_ROS_VERSION
from hmr_ros.checkpoints.safe_load import (
    README_CHECKPOINTS_SECTION,
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
)

__all__ = [
    'FORMAT_VERSION',
    'KNOWN_MODELS',
    'ModelCard',
    'load_model_file',
    'save_model_file',
    'sha256_file',
]

# Version of the layout of our files (metadata keys and their meaning). Readers refuse newer ones.
FORMAT_VERSION = 1
# Prefix of our keys in the safetensors metadata ('format': 'pt' is the safetensors convention).
METADATA_PREFIX = 'hmr_ros.'
# Model families written by hmr_ros today; `model` may name others (e.g. new adapters) as long as
# it is a lowercase identifier.
KNOWN_MODELS: tuple[str, ...] = ('hamer', 'smplerx', 'hand_adapter', 'body_adapter')
# Bytes read at a time when hashing multi-gigabyte checkpoints.
HASH_CHUNK_BYTES = 1 << 20

_IDENTIFIER = re.compile(r'^[a-z][a-z0-9_]*$')
_SHA256 = re.compile(r'^[0-9a-f]{64}$')


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='seconds')


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a model file holds and where it came from; stored in the safetensors metadata.

    Attributes:
        model: model family, a lowercase identifier such as ``'hamer'``, ``'smplerx'`` or an
            adapter name (``'hand_adapter'``); see ``KNOWN_MODELS``.
        variant: registered variant that builds the matching module, e.g. ``'smplerx_h32'``,
            ``'hamer'``, ``'hamer_tiny'``.
        source_file: name (no folders) of the file the weights were converted from, or ``''``
            for weights trained by hmr_ros.
        source_sha256: SHA-256 (64 lowercase hex digits) of ``source_file``, or ``''``.
        format_version: layout version of the file, ``FORMAT_VERSION`` when written.
        hmr_ros_version: version of hmr_ros that wrote the file.
        created: UTC creation time, ISO 8601 with seconds.
    """

    model: str
    variant: str
    source_file: str = ''
    source_sha256: str = ''
    format_version: int = FORMAT_VERSION
    hmr_ros_version: str = HMR_ROS_VERSION
    created: str = dataclasses.field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.model):
            raise ValueError(
                f'ModelCard.model must be a lowercase identifier such as one of {KNOWN_MODELS}, '
                f'got {self.model!r}.'
            )
        if not _IDENTIFIER.match(self.variant):
            raise ValueError(
                f"ModelCard.variant must be a registered variant name (e.g. 'smplerx_h32'), "
                f'got {self.variant!r}.'
            )
        if Path(self.source_file).name != self.source_file:
            raise ValueError(
                f'ModelCard.source_file must be a file name without folders, '
                f'got {self.source_file!r}; pass Path(src).name.'
            )
        if self.source_sha256 and not _SHA256.match(self.source_sha256):
            raise ValueError(
                'ModelCard.source_sha256 must be 64 lowercase hexadecimal digits '
                f'(sha256_file(path)), got {self.source_sha256!r}.'
            )
        if not 1 <= self.format_version <= FORMAT_VERSION:
            raise ValueError(
                f'Model file format version {self.format_version} is not supported by hmr_ros '
                f'{HMR_ROS_VERSION} (supports 1..{FORMAT_VERSION}); update hmr_ros or convert the '
                'checkpoint again with this version.'
            )
        try:
            datetime.fromisoformat(self.created)
        except ValueError as error:
            raise ValueError(
                f'ModelCard.created must be an ISO 8601 time, got {self.created!r}.'
            ) from error

    def to_metadata(self) -> dict[str, str]:
        """The card as safetensors metadata (``str -> str``), keys prefixed with ``hmr_ros.``."""
        metadata = {'format': 'pt'}
        for field in dataclasses.fields(self):
            metadata[METADATA_PREFIX + field.name] = str(getattr(self, field.name))
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ModelCard:
        """Reads a card written by ``to_metadata``.

        Raises:
            KeyError: naming the card fields that are absent.
            ValueError: when a field does not validate.
        """
        values: dict[str, object] = {}
        absent = []
        for field in dataclasses.fields(cls):
            key = METADATA_PREFIX + field.name
            if key not in metadata:
                absent.append(field.name)
            else:
                values[field.name] = metadata[key]
        if absent:
            raise KeyError(f'model card fields absent: {", ".join(absent)}')
        values['format_version'] = int(str(values['format_version']))
        return cls(**values)  # type: ignore[arg-type]


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = HASH_CHUNK_BYTES) -> str:
    """SHA-256 of a file as 64 lowercase hex digits, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _storable(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, each owning its memory (safetensors refuses shared storage)."""
    tensors: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f'State dict entry {key!r} is a {type(value).__name__}, not a tensor; model files '
                'hold tensors only.'
            )
        tensor = value.detach().to('cpu').contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen_storages and tensor.numel() > 0:
            tensor = tensor.clone()
        seen_storages.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    return tensors


def save_model_file(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    card: ModelCard,
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Writes ``state_dict`` and ``card`` to a ``.safetensors`` file.

    The file is written beside its destination and renamed into place, so an interrupted write
    never leaves a truncated model file. Parent folders are created.

    Args:
        path: destination, conventionally ending in ``.safetensors``.
        state_dict: key -> tensor (any device; stored as contiguous CPU tensors).
        card: what the weights are and where they came from.
        extra_metadata: further ``str -> str`` entries (e.g. an adapter's configuration); they
            may not overwrite the card's.

    Returns:
        The destination path.

    Raises:
        ValueError: an extra metadata key collides with a card entry.
    """
    metadata = card.to_metadata()
    clashes = sorted(set(metadata) & set(extra_metadata or {}))
    if clashes:
        raise ValueError(f'extra metadata may not overwrite model card entries: {clashes}')
    metadata.update(extra_metadata or {})
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tensors = _storable(state_dict)
    handle, temporary = tempfile.mkstemp(
        prefix=f'.{destination.name}.', suffix='.tmp', dir=destination.parent
    )
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return destination


def load_model_file(
    path: str | os.PathLike[str], device: str | torch.device = 'cpu'
) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Reads a model file written by ``save_model_file``.

    Args:
        path: ``.safetensors`` file.
        device: where to put the tensors, e.g. ``'cuda:0'``.

    Returns:
        ``(state_dict, card)``: the tensors in file order and the model card.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist or is not a file.
        CorruptCheckpointError: the file is damaged, not safetensors, or carries no valid model
            card (for instance an official ``.ckpt`` renamed, or a foreign safetensors file).
    """
    file = Path(path)
    if not file.is_file():
        what = 'not found' if not file.exists() else 'not a file'
        raise CheckpointNotFoundError(
            f'Model file {what}: {file}; convert the official checkpoint with `hmr-ros '
            f'convert-checkpoint SRC {file}` (see {README_CHECKPOINTS_SECTION}).'
        )
    try:
        with safe_open(str(file), framework='pt', device=str(device)) as reader:
            metadata = reader.metadata() or {}
            state_dict = {key: reader.get_tensor(key) for key in reader.keys()}
    except CheckpointError:
        raise
    except Exception as error:  # safetensors raises its own error types for damaged headers
        raise CorruptCheckpointError(
            f'Cannot read model file {file} ({type(error).__name__}: {error}). It is damaged or '
            'not a safetensors file; convert the official checkpoint again with `hmr-ros '
            f'convert-checkpoint` (see {README_CHECKPOINTS_SECTION}).'
        ) from error
    try:
        card = ModelCard.from_metadata(metadata)
    except (KeyError, ValueError) as error:
        raise CorruptCheckpointError(
            f'{file} is a safetensors file without a valid hmr_ros model card ({error}). '
            'Model files are written by `hmr-ros convert-checkpoint` '
            f'(see {README_CHECKPOINTS_SECTION}).'
        ) from error
    return state_dict, card
