"""``hmr-ros train``: train one HMR-Adapter with its base model frozen (paper 3.5).

A config's ``variant`` may instead name one of the paper's ablations (Tables 3-6; the
config/train_ablation_*.yaml files): some of those fine-tune the base model itself and write a
model file instead of an adapter file (docs/evaluation.md, "Ablation variants").

    hmr-ros train hand-adapter CONFIG [--resume RUN_OR_CHECKPOINT] [--set KEY=VALUE ...]
    hmr-ros train body-adapter CONFIG [--resume RUN_OR_CHECKPOINT] [--set KEY=VALUE ...]
    hmr-ros train deforhmr-decoder CONFIG [--resume RUN_OR_CHECKPOINT] [--set KEY=VALUE ...]

CONFIG is a YAML file of overrides of hmr_ros.training.config.HandAdapterTrainConfig or
BodyAdapterTrainConfig (config/train_hand_adapter.yaml and config/train_body_adapter.yaml are
annotated examples); ``--set section.key=value`` overrides single values after the file (YAML
syntax: ``--set run.steps=200 --set data.indexes=[a.npz,b.npz]``). The run folder
(``output.dir``) receives checkpoints, ``losses.csv``, TensorBoard files and, at the end, the
adapter file that ``hmr-ros infer`` and ``hmr-ros eval`` load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hmr_ros.body_models.model_files import BodyModelFileNotFoundError
from hmr_ros.checkpoints.safe_load import CheckpointError
from hmr_ros.config import ConfigError, load_config, parse_overrides

EXIT_FAILURE = 1
EXIT_USAGE = 2

STAGES = {
    'hand-adapter': 'hand adapter on the frozen hand expert (body pose guides HaMeR, paper 3.5.1)',
    'body-adapter': 'body adapter on the frozen whole-body model (hand features refine SMPLer-X, '
    'paper 3.5.2)',
    'deforhmr-decoder': 'DeforHMR-style deformable body decoder on the frozen whole-body ViT '
    '(docs/deforhmr.md)',
}


def _run(args: argparse.Namespace) -> int:
    from hmr_ros.training.config import (
        BodyAdapterTrainConfig,
        DeformableDecoderTrainConfig,
        HandAdapterTrainConfig,
        TrainConfig,
    )
    from hmr_ros.training.trainer import train_adapter

    overrides = parse_overrides(args.set)
    config: TrainConfig
    try:
        if args.stage == 'hand-adapter':
            config = load_config(HandAdapterTrainConfig, args.config, overrides)
        elif args.stage == 'deforhmr-decoder':
            config = load_config(DeformableDecoderTrainConfig, args.config, overrides)
        else:
            config = load_config(BodyAdapterTrainConfig, args.config, overrides)
    except (ConfigError, FileNotFoundError) as error:
        print(f'error: {args.config}: {error}', file=sys.stderr)
        return EXIT_USAGE
    try:
        result = train_adapter(config, resume=args.resume)
    except (
        CheckpointError,
        BodyModelFileNotFoundError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        FloatingPointError,
    ) as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_FAILURE
    last = result.records[-1] if result.records else None
    print(
        f'{args.stage}: steps {result.start_step} -> {result.steps} on base {result.base_variant}'
        + (f', final loss {last["total"]:.6g}' if last else '')
    )
    print(f'run folder: {result.run_dir} (losses.csv, checkpoints/)')
    print(f'{_file_kind(result.adapter_file)}: {result.adapter_file}')
    return 0


def _file_kind(path: Path) -> str:
    """What the final file is, from its card: 'adapter file' or '<family> model file'.

    The weight-only ablations write a base model file (e.g. hamer's), used as hand_expert.
    """
    from safetensors import safe_open

    from hmr_ros.checkpoints.adapter_files import ADAPTER_MODELS
    from hmr_ros.checkpoints.project_format import METADATA_PREFIX

    with safe_open(str(path), framework='pt') as reader:
        model = (reader.metadata() or {}).get(METADATA_PREFIX + 'model', '')
    if model in ADAPTER_MODELS:
        return 'adapter file'
    return f'{model} model file'


def register(subparsers: Any) -> None:
    """Adds ``train`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'train',
        help='train the hand or body HMR-Adapter (base models frozen), or a paper ablation',
        description=__doc__.split('\n\n', 1)[0] if __doc__ else None,
    )
    stages = parser.add_subparsers(dest='stage', required=True, metavar='STAGE')
    for stage, text in STAGES.items():
        sub = stages.add_parser(stage, help=text, description=f'Train the {text}.')
        sub.add_argument('config', type=Path, metavar='CONFIG', help='YAML file of overrides')
        sub.add_argument(
            '--resume',
            type=Path,
            metavar='PATH',
            help='continue a run: its output folder (newest checkpoint) or a checkpoints/step_N '
            "folder; the configuration must be the run's",
        )
        sub.add_argument(
            '--set',
            action='append',
            default=[],
            metavar='KEY=VALUE',
            help='override one value after the file, e.g. --set run.steps=200 (repeatable)',
        )
        sub.set_defaults(func=_run)
