"""``hmr-ros convert-checkpoint``: an official checkpoint -> hmr_ros model file.

The families and their layouts come from the model registry (hmr_ros.models.registry;
docs/seed-models.md): HaMeR's Lightning checkpoint (weights under ``state_dict``, keys
``backbone.*``, ``mano_head.*``, plus ``discriminator.*`` and ``mano.*``), SMPLer-X's
``{'network': ...}`` with ``module.``-prefixed keys, FastMETRO's raw ``*_state_dict.bin`` state
dict, and any family registered later. Conversion, in order:

1. hash the source (SHA-256, recorded in the model card);
2. read it with ``load_torch_file`` (no code from the file runs);
3. detect the model family from the layout, unless ``--model`` names it;
4. map the keys to our modules' names with the family's pure layout function;
5. detect the variant (the family's detector, e.g. SMPLer-X from encoder width and depth; else by
   matching every registered variant built on the 'meta' device), unless ``--variant`` names it;
6. check every key and shape against that variant built on 'meta' (no memory allocated);
7. write ``DST.safetensors`` with its model card and print a summary.

Any mismatch lists the offending keys and exits with status 1; nothing is written. An existing
DST is replaced only by a successful conversion (written beside it, then renamed over it).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hmr_ros.checkpoints.project_format import ModelCard, save_model_file, sha256_file
from hmr_ros.checkpoints.safe_load import (
    CheckpointError,
    CheckpointMismatchError,
    check_state_dict,
    load_torch_file,
    state_dict_shapes,
)
from hmr_ros.models.registry import ModelEntry, ModelRegistryError, all_models, detect_model

# Exit status of a failed conversion (argparse uses 2 for usage errors).
EXIT_FAILURE = 1
MODEL_FILE_SUFFIX = '.safetensors'


class ConversionError(CheckpointError):
    """A checkpoint cannot be converted; the message says why and what to do."""


ModelFamily = ModelEntry
"""A model family as the registry (hmr_ros.models.registry) describes it."""


def _families() -> dict[str, ModelEntry]:
    return all_models()


FAMILIES: dict[str, ModelEntry] = _families()
"""Every registered family by name (the registry's table, read at import)."""


def build_on_meta(family: ModelEntry, variant: str) -> nn.Module:
    """The variant's module on the 'meta' device: shapes without memory.

    Raises:
        ConversionError: unknown variant, or the builder returned something else.
    """
    try:
        with torch.device('meta'):
            module = family.build(variant)
    except ModelRegistryError as error:
        raise ConversionError(str(error)) from error
    if not isinstance(module, nn.Module):
        raise ConversionError(f'{family.model_module}.{family.builder} did not return a module.')
    return module


def _attribute(family: ModelEntry, module: str, name: str) -> Any:
    try:
        return family.attribute(module, name)
    except ModelRegistryError as error:
        raise ConversionError(str(error)) from error


def _variant_names(family: ModelEntry) -> list[str]:
    try:
        return family.variant_names()
    except ModelRegistryError as error:
        raise ConversionError(str(error)) from error


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """What ``convert_checkpoint`` wrote.

    Attributes:
        source: the official checkpoint read.
        destination: the model file written.
        card: the model card stored in ``destination``.
        num_tensors: entries in the converted state dict (parameters and buffers).
        num_parameters: trainable parameters of the model the weights fill.
        destination_sha256: SHA-256 of the written file.
    """

    source: Path
    destination: Path
    card: ModelCard
    num_tensors: int
    num_parameters: int
    destination_sha256: str

    def summary(self) -> str:
        """One paragraph for the terminal."""
        card = self.card
        return (
            f'Converted {self.source} to {self.destination}: {FAMILIES[card.model].title} '
            f'(model {card.model!r}, variant {card.variant!r}), {self.num_tensors} tensors, '
            f'{self.num_parameters:,} parameters; keys and shapes match the variant exactly. '
            f'Source sha256 {card.source_sha256}; model file sha256 '
            f'{self.destination_sha256} (format {card.format_version}, hmr_ros '
            f'{card.hmr_ros_version}).'
        )


def detect_family(checkpoint: Any) -> ModelEntry:
    """Recognises the official layout of a loaded checkpoint (each registry entry's predicate).

    A HaMeR Lightning checkpoint is a mapping whose ``state_dict`` holds ``mano_head.*`` keys; a
    SMPLer-X checkpoint is a mapping with a ``network`` mapping; a FastMETRO file is a raw state
    dict with ``transformer_1.*`` and ``cam_token_embed.weight``.

    Raises:
        ConversionError: no layout fits; the message lists the top-level keys.
    """
    entry = detect_model(checkpoint)
    if entry is not None:
        return entry
    if isinstance(checkpoint, Mapping):
        keys = ', '.join(repr(k) for k in list(checkpoint)[:10]) or 'none'
        found = f'a mapping with top-level keys {keys}'
    else:
        found = f'a {type(checkpoint).__name__}'
    known = ', '.join(f'{e.title} (--model {e.name})' for e in FAMILIES.values())
    raise ConversionError(
        f'Cannot tell which model this checkpoint holds: found {found}. Known official '
        f'layouts: {known}; pass --model if the file uses another container.'
    )


def detect_variant(family: ModelEntry, state_dict: Mapping[str, torch.Tensor]) -> str:
    """Registered variant the converted state dict belongs to.

    Uses the family's own detector when it has one. Otherwise every registered variant is built on
    the 'meta' device and compared; the one with the fewest differing keys and shapes is returned
    (an exact match when the file is sound), so the strict check that follows lists exactly what
    differs from the closest variant.

    Raises:
        ConversionError: the family's detector cannot place the weights, or no variant exists.
    """
    if family.variant_detector is not None:
        detector = _attribute(family, family.layout_module, family.variant_detector)
        try:
            return str(detector(state_dict))
        except (KeyError, ValueError) as error:
            raise ConversionError(
                f'Cannot detect the {family.title} variant: {error}. Pass --variant '
                f'(one of {", ".join(_variant_names(family))}).'
            ) from error
    found = state_dict_shapes(state_dict)
    scores = []
    for variant in _variant_names(family):
        expected = state_dict_shapes(build_on_meta(family, variant))
        differing = len(expected.keys() ^ found.keys())
        differing += sum(1 for k in expected.keys() & found.keys() if expected[k] != found[k])
        if differing == 0:
            return variant
        scores.append((differing, variant))
    if not scores:
        raise ConversionError(f'No {family.title} variant is registered in this hmr_ros build.')
    return min(scores)[1]


def convert_checkpoint(
    source: str | Path,
    destination: str | Path,
    *,
    model: str = 'auto',
    variant: str | None = None,
) -> ConversionResult:
    """Converts an official checkpoint into an hmr_ros model file (steps in the module docstring).

    Args:
        source: official checkpoint (``hamer.ckpt``, ``smpler_x_h32.pth.tar``).
        destination: ``.safetensors`` file to write.
        model: ``'auto'``, ``'hamer'`` or ``'smplerx'``.
        variant: registered variant name; detected when None.

    Returns:
        What was written.

    Raises:
        CheckpointError: unreadable source (CheckpointNotFoundError, CorruptCheckpointError,
            UnsafeCheckpointError), unknown layout or variant (ConversionError), or weights that do
            not match the variant (CheckpointMismatchError, listing the keys).
    """
    source, destination = Path(source), Path(destination)
    if not destination.name.endswith(MODEL_FILE_SUFFIX):
        raise ConversionError(
            f'Destination {destination} must end in {MODEL_FILE_SUFFIX} (hmr_ros model files are '
            'safetensors); check the order of SRC and DST.'
        )
    if destination.exists() and source.exists() and destination.samefile(source):
        raise ConversionError(f'SRC and DST are the same file ({source}); choose another DST.')
    if model != 'auto' and model not in FAMILIES:
        raise ConversionError(f'Unknown model {model!r}; use auto, {", ".join(FAMILIES)}.')

    # Memory-mapped: SRC is only read, and never equals DST (checked above).
    checkpoint = load_torch_file(source, hint='check the SRC argument', mmap=True)
    source_sha256 = sha256_file(source)
    family = detect_family(checkpoint) if model == 'auto' else FAMILIES[model]
    to_ours: Callable[[Any], Mapping[str, torch.Tensor]]
    to_ours = _attribute(family, family.layout_module, family.from_official)
    try:
        state_dict = dict(to_ours(checkpoint))
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise ConversionError(
            f'{source} is not a {family.title} checkpoint in the official layout ({error}).'
        ) from error
    variant = variant or detect_variant(family, state_dict)
    module = build_on_meta(family, variant)
    check_state_dict(
        state_dict_shapes(module),
        state_dict,
        context=f'{source.name} does not match {family.title} variant {variant!r}',
    )
    card = ModelCard(
        model=family.name, variant=variant, source_file=source.name, source_sha256=source_sha256
    )
    save_model_file(destination, state_dict, card)
    return ConversionResult(
        source=source,
        destination=destination,
        card=card,
        num_tensors=len(state_dict),
        num_parameters=sum(p.numel() for p in module.parameters()),
        destination_sha256=sha256_file(destination),
    )


def _run(args: argparse.Namespace) -> int:
    try:
        result = convert_checkpoint(args.src, args.dst, model=args.model, variant=args.variant)
    except CheckpointMismatchError as error:
        print(f'error: {error}\nNothing was written.', file=sys.stderr)
        return EXIT_FAILURE
    except CheckpointError as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_FAILURE
    print(result.summary())
    return 0


def register(subparsers: Any) -> None:
    """Adds ``convert-checkpoint`` to the ``hmr-ros`` command."""
    titles = '/'.join(entry.title for entry in FAMILIES.values())
    files = ', '.join(f'{e.title} *{e.official_suffix}' for e in FAMILIES.values())
    parser = subparsers.add_parser(
        'convert-checkpoint',
        help=f'convert an official {titles} checkpoint to an hmr_ros .safetensors file',
        description=(
            f'Read an official checkpoint ({files}) without running code from it, check every '
            'key and shape against the detected variant, and write an hmr_ros model file '
            '(safetensors with a model card recording the source sha256).'
        ),
    )
    parser.add_argument('src', type=Path, metavar='SRC', help='official checkpoint file')
    parser.add_argument('dst', type=Path, metavar='DST', help='model file to write (.safetensors)')
    parser.add_argument(
        '--model',
        choices=['auto', *FAMILIES],
        default='auto',
        help='model family (default: detected from the file layout)',
    )
    parser.add_argument(
        '--variant', default=None, help='registered variant, e.g. smplerx_h32 (default: detected)'
    )
    parser.set_defaults(func=_run)
