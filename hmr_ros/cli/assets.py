"""``hmr-ros make-test-assets``: a folder of generated stand-ins for the files users must supply.

Real SMPL-X/MANO models are licensed and real checkpoints are gigabytes; neither can be shipped or
downloaded in tests and CI (docs/development.md). This command writes files with the official
names, keys, shapes and containers, filled with random but valid content:

- ``SMPLX_NEUTRAL.npz``, ``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl``, ``mano_mean_params.npz``
  (``hmr_ros.body_models.synthetic``);
- per requested variant, an official-layout checkpoint of randomly initialised weights: HaMeR as a
  Lightning ``.ckpt`` whose ``hyper_parameters`` pickle a config object under the class name
  ``yacs.config.CfgNode`` (as HaMeR's file does, so readers meet the same refusal from
  ``weights_only`` and take the restricted path), SMPLer-X as ``smpler_x_*.pth.tar`` with
  ``module.``-prefixed keys under ``network``;
- the same weights converted by ``hmr-ros convert-checkpoint`` into ``<variant>.safetensors``,
  checked to equal the generating model's state dict;
- ``README.txt`` saying that all of this is random stand-in data.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hmr_ros
from hmr_ros.checkpoints.project_format import load_model_file
from hmr_ros.checkpoints.safe_load import CheckpointError
from hmr_ros.cli.checkpoints import (
    EXIT_FAILURE,
    FAMILIES,
    ConversionError,
    ModelFamily,
    convert_checkpoint,
)
from hmr_ros.models.registry import ModelRegistryError

DEFAULT_VARIANTS: tuple[str, ...] = ('hamer_tiny', 'smplerx_tiny')
README_NAME = 'README.txt'

# Values of HaMeR's released model_config.yaml (docs/model-reference.md, A.2) that describe
# the input contract; the stand-in config carries them so the pickled object has real content.
_HAMER_CONFIG_EXAMPLE: dict[str, Any] = {
    'MODEL': {
        'IMAGE_SIZE': 256,
        'IMAGE_MEAN': [0.485, 0.456, 0.406],
        'IMAGE_STD': [0.229, 0.224, 0.225],
        'BBOX_SHAPE': [192, 256],
        'BACKBONE': {'TYPE': 'vit'},
        'MANO_HEAD': {'TYPE': 'transformer_decoder'},
    },
    'EXTRA': {'FOCAL_LENGTH': 5000},
}


class _CfgNodeStandIn(dict[str, Any]):
    """A plain dict pickled as ``yacs.config.CfgNode`` (see ``_yacs_name_for_pickling``)."""


_CfgNodeStandIn.__module__ = 'yacs.config'
_CfgNodeStandIn.__qualname__ = 'CfgNode'


@contextlib.contextmanager
def _yacs_name_for_pickling() -> Iterator[type]:
    """Yields a dict class that pickles as ``yacs.config.CfgNode``.

    The real class is used when yacs is installed. Otherwise a module named ``yacs.config`` holding
    ``_CfgNodeStandIn`` exists in ``sys.modules`` only inside the block, because pickle looks the
    class up by that name while writing; nothing else imports it.
    """
    try:
        from yacs.config import CfgNode  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        yield CfgNode
        return
    package, module = types.ModuleType('yacs'), types.ModuleType('yacs.config')
    module.CfgNode = _CfgNodeStandIn  # type: ignore[attr-defined]
    package.config = module  # type: ignore[attr-defined]
    sys.modules['yacs'], sys.modules['yacs.config'] = package, module
    try:
        yield _CfgNodeStandIn
    finally:
        del sys.modules['yacs'], sys.modules['yacs.config']


def _as_config(cls: type, values: Mapping[str, Any]) -> Any:
    """``values`` as nested ``cls`` instances, the way yacs nests its nodes."""
    return cls({k: _as_config(cls, v) if isinstance(v, Mapping) else v for k, v in values.items()})


def family_of_variant(variant: str) -> ModelFamily:
    """The model family whose registry holds ``variant``.

    Raises:
        ConversionError: no family knows it; lists the known variants.
    """
    known: list[str] = []
    unavailable: list[str] = []
    for family in FAMILIES.values():
        try:
            names = family.variant_names()
        except (ConversionError, ModelRegistryError) as error:
            unavailable.append(str(error))
            continue
        if variant in names:
            return family
        known += names
    raise ConversionError(
        f'Unknown variant {variant!r}; known variants: {", ".join(known) or "none"}.'
        + ''.join(f' {reason}' for reason in unavailable)
    )


def official_file_name(family: ModelFamily, variant: str) -> str:
    """Official-style file name: ``hamer_tiny.ckpt``, ``smpler_x_tiny.pth.tar``."""
    stem = variant.replace('smplerx_', 'smpler_x_', 1) if family.name == 'smplerx' else variant
    return stem + family.official_suffix


def write_official_checkpoint(folder: Path, variant: str, *, seed: int) -> tuple[Path, Any]:
    """Writes randomly initialised weights of ``variant`` in the official layout.

    Returns:
        (file written, the module that generated the weights).
    """
    family = family_of_variant(variant)
    build = family.attribute(family.model_module, family.builder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build(variant)
    to_official = family.attribute(family.layout_module, family.to_official)
    path = folder / official_file_name(family, variant)
    if family.name == 'hamer':
        checkpoint = dict(to_official(module.state_dict(), seed=seed))
        with _yacs_name_for_pickling() as cfg_class:
            config = _as_config(cfg_class, {**_HAMER_CONFIG_EXAMPLE, 'HMR_ROS_VARIANT': variant})
            checkpoint.setdefault('hyper_parameters', {'cfg': config})
            checkpoint.setdefault('epoch', 0)
            checkpoint.setdefault('global_step', 0)
            torch.save(checkpoint, path)
    else:
        torch.save(dict(to_official(module.state_dict())), path)
    return path, module


def _readme(seed: int, variants: Sequence[str], files: Sequence[Path]) -> str:
    listed = '\n'.join(f'  {path.name}' for path in files)
    command = f'hmr-ros make-test-assets --seed {seed} --variants {" ".join(variants)}'
    return (
        'RANDOM STAND-INS, NOT REAL MODELS\n'
        '\n'
        f'Written by `{command.strip()}` (hmr_ros {hmr_ros.__version__}).\n'
        '\n'
        'Every file here has the name, keys, shapes and container format of the official file it\n'
        'stands in for, but its numbers are random. The SMPL-X and MANO files are not the\n'
        'licensed body models, and the checkpoints are untrained networks: results computed with\n'
        'them are meaningless. Use them for tests, CI and trying the tools only. Real files:\n'
        'README of hmr_ros, sections "Body models" and "Checkpoints".\n'
        '\n'
        f'Files:\n{listed}\n'
    )


def _fastmetro_stand_ins(folder: Path, seed: int) -> list[Path]:
    """FastMETRO's mesh file and an SMPL joint regressor, as random stand-ins."""
    from hmr_ros.body_models.smpl_mapping import write_smpl_joint_regressor_stand_in
    from hmr_ros.checkpoints.fastmetro_assets import MESH_FILE_NAME, write_stand_in_mesh_npz

    return [
        write_stand_in_mesh_npz(folder / MESH_FILE_NAME, seed=seed),
        write_smpl_joint_regressor_stand_in(folder, seed=seed),
    ]


def make_test_assets(
    folder: str | Path, *, seed: int = 0, variants: Sequence[str] = DEFAULT_VARIANTS
) -> list[Path]:
    """Writes body-model stand-ins, official-layout checkpoints and their model files.

    Args:
        folder: output folder, created if missing; existing files of the same names are replaced.
        seed: seeds every random value; the same seed gives the same numbers.
        variants: registered HaMeR/SMPLer-X variants to write checkpoints for (none: only body
            models). Full-size variants work but write gigabytes.

    Returns:
        Every file written, README.txt last.

    Raises:
        ConversionError: an unknown variant, or a converted file differing from its weights.
    """
    from hmr_ros.body_models import synthetic

    families = [family_of_variant(variant) for variant in variants]  # fail before writing
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [synthetic.write_smplx_model(folder, seed=seed)]
    written += synthetic.write_mano_models(folder, seed=seed)
    written.append(synthetic.write_mano_mean_params(folder / 'mano_mean_params.npz', seed=seed))
    if any(family.name == 'fastmetro' for family in families):
        written += _fastmetro_stand_ins(folder, seed)
    for variant, family in zip(variants, families, strict=True):
        official, module = write_official_checkpoint(folder, variant, seed=seed)
        result = convert_checkpoint(official, folder / f'{variant}.safetensors', model=family.name)
        _check_round_trip(result.destination, module.state_dict(), variant)
        written += [official, result.destination]
    readme = folder / README_NAME
    readme.write_text(_readme(seed, variants, [*written, readme]))
    written.append(readme)
    return written


def _check_round_trip(path: Path, expected: Mapping[str, torch.Tensor], variant: str) -> None:
    """The model file must hold exactly the generating weights (official layout both ways)."""
    loaded, card = load_model_file(path)
    differing = sorted(
        key
        for key in expected.keys() | loaded.keys()
        if key not in loaded or key not in expected or not torch.equal(loaded[key], expected[key])
    )
    if differing or card.variant != variant:
        raise ConversionError(
            f'{path} does not reproduce the {variant} weights it was made from (variant '
            f'{card.variant!r}; differing keys: {", ".join(differing[:10]) or "none"}); the '
            'official layout functions are not inverse to each other.'
        )


def _run(args: argparse.Namespace) -> int:
    try:
        written = make_test_assets(args.dir, seed=args.seed, variants=args.variants)
    except CheckpointError as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_FAILURE
    print(f'Wrote {len(written)} random stand-in files (not real models) to {args.dir}:')
    for path in written:
        print(f'  {path.name}  ({path.stat().st_size:,} bytes)')
    return 0


def register(subparsers: Any) -> None:
    """Adds ``make-test-assets`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'make-test-assets',
        help='write random stand-ins for body models and checkpoints (tests, demos)',
        description=(
            'Write SMPL-X/MANO stand-ins, official-layout HaMeR/SMPLer-X checkpoints with random '
            'weights and their converted .safetensors files into DIR. They have the official '
            'keys and shapes but are NOT real models.'
        ),
    )
    parser.add_argument('dir', type=Path, metavar='DIR', help='output folder')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--variants',
        nargs='*',
        default=list(DEFAULT_VARIANTS),
        metavar='VARIANT',
        help=(
            f'checkpoint variants to write (default: {" ".join(DEFAULT_VARIANTS)}); give none '
            'for body models only'
        ),
    )
    parser.set_defaults(func=_run)
    _register_convert_body_model(subparsers)


def convert_body_model(source: Path, destination: Path) -> dict[str, tuple[int, ...]]:
    """Convert an SMPL-X / MANO model file (official .pkl or .npz) to a plain-array .npz.

    The file is read by ``read_body_model_file`` (restricted: chumpy arrays and scipy sparse
    matrices become numpy arrays, nothing from the file runs); the output holds only its
    numeric arrays, so it loads with ``np.load(allow_pickle=False)``.

    Args:
        source: the model file.
        destination: the .npz to write (folders created).

    Returns:
        Name -> shape of every array written.

    Raises:
        FileNotFoundError: no source file.
        BodyModelFileError: unreadable or refused source, or a destination that is not .npz.
    """
    from hmr_ros.body_models.model_files import (
        BodyModelFileError,
        numeric_arrays,
        read_body_model_file,
    )

    if destination.suffix.lower() != '.npz':
        raise BodyModelFileError(f'{destination}: the converted file must end in .npz')
    arrays = numeric_arrays(read_body_model_file(source))
    if not arrays:
        raise BodyModelFileError(f'{source}: no numeric arrays to convert')
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open('wb') as file:
        np.savez(file, **arrays)  # type: ignore[arg-type]
    return {name: tuple(value.shape) for name, value in arrays.items()}


def _run_convert_body_model(args: argparse.Namespace) -> int:
    from hmr_ros.body_models.model_files import BodyModelFileError

    try:
        shapes = convert_body_model(args.source, args.destination)
    except (FileNotFoundError, BodyModelFileError) as error:
        print(f'hmr-ros convert-body-model: {error}', file=sys.stderr)
        return EXIT_FAILURE
    print(f'wrote {args.destination}: {len(shapes)} arrays')
    for name, shape in shapes.items():
        print(f'  {name}: {shape}')
    return 0


def _register_convert_body_model(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        'convert-body-model',
        help='convert an official SMPL-X/MANO .pkl (chumpy, scipy) to a plain .npz',
        description=(
            'Read an SMPL-X or MANO model file with the restricted reader (no chumpy, no '
            'scipy, no code from the file runs) and write its arrays to a plain .npz. The '
            'node reads official .pkl files directly too; a converted SMPLX_NEUTRAL.npz is '
            'preferred over the .pkl and loads faster.'
        ),
    )
    parser.add_argument('source', type=Path, metavar='SRC', help='model file (.pkl or .npz)')
    parser.add_argument('destination', type=Path, metavar='DST', help='output .npz')
    parser.set_defaults(func=_run_convert_body_model)
