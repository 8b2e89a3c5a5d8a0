"""``hmr-ros eval``: evaluate the dual path or the hand expert, print a paper-layout table.

    hmr-ros eval CONFIG [--set KEY=VALUE ...] [--json PATH]
    hmr-ros eval --table N PAPER_CONFIG [--set KEY=VALUE ...]

CONFIG is a YAML file of hmr_ros.evaluation.evaluator.EvalConfig (config/eval.yaml is an
annotated example): the model and its files, the converted data sets, the rows (one adapter
setting each, the paper's ablations) and the table layout (hmr_ros.evaluation.report). The
table is printed; the averages, sample counts and provenance are written as JSON.

With ``--table N`` (1-6) the file is a hmr_ros.evaluation.paper_tables.PaperEvalConfig
(config/eval_paper.yaml): every row of the paper's Table N that can run with its files is
evaluated and printed under the paper's published numbers; the other rows say why not (another
method, an ablation variant not implemented, or the training config of a missing adapter).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hmr_ros.body_models.model_files import BodyModelFileNotFoundError
from hmr_ros.checkpoints.safe_load import CheckpointError
from hmr_ros.config import ConfigError, load_config, merge_overrides, parse_overrides

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _run_paper_table(args: argparse.Namespace) -> int:
    from hmr_ros.evaluation.paper_tables import (
        PaperEvalConfig,
        comparison_rows,
        run_paper_table,
    )
    from hmr_ros.evaluation.report import format_table, write_json

    try:
        config = load_config(PaperEvalConfig, args.config, parse_overrides(args.set))
    except (ConfigError, FileNotFoundError) as error:
        print(f'error: {args.config}: {error}', file=sys.stderr)
        return EXIT_USAGE
    try:
        layout, entries = run_paper_table(args.table, config)
    except KeyError as error:
        print(f'error: {error.args[0]}', file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, BodyModelFileNotFoundError, FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_FAILURE
    rows = comparison_rows(entries)
    print(f'Table {args.table}: ' + format_table(layout, rows))
    notes = {entry.paper.method.removesuffix(' [paper]'): entry.note for entry in entries}
    for method, note in notes.items():
        if note:
            print(f'note: {method}: {note}')
    path = write_json(
        Path(config.output_dir) / f'table{args.table}.json', layout, rows, {'notes': notes}
    )
    print(f'results: {path}')
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.table is not None:
        return _run_paper_table(args)
    from hmr_ros.evaluation.evaluator import EvalConfig, evaluate
    from hmr_ros.evaluation.report import format_table

    overrides = parse_overrides(args.set)
    if args.json is not None:
        overrides = merge_overrides(overrides, {'output_json': str(args.json)})
    try:
        config = load_config(EvalConfig, args.config, overrides)
    except (ConfigError, FileNotFoundError) as error:
        print(f'error: {args.config}: {error}', file=sys.stderr)
        return EXIT_USAGE
    try:
        result = evaluate(config)
    except (CheckpointError, BodyModelFileNotFoundError, FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_FAILURE
    print(format_table(result.layout, result.rows))
    for name, source in result.metadata.get('metric_sources', {}).items():
        print(f'note: {name} from {source}')
    for name, skipped in result.metadata['skipped_samples'].items():
        if skipped:
            print(f'note: {name}: {skipped} samples skipped (no box or no ground truth)')
    print(f'results: {result.json_path}')
    return 0


def register(subparsers: Any) -> None:
    """Adds ``eval`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'eval',
        help='evaluate on converted data sets and print a paper-layout table',
        description=(
            'Run the dual path (one row per adapter setting) or the hand expert over converted '
            'data sets; print the table of the configured layout and write JSON results.'
        ),
    )
    parser.add_argument('config', type=Path, metavar='CONFIG', help='YAML evaluation config')
    parser.add_argument(
        '--set',
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help='override one value after the file, e.g. --set batch_size=4 (repeatable)',
    )
    parser.add_argument('--json', type=Path, metavar='PATH', help='results file (output_json)')
    parser.add_argument(
        '--table',
        type=int,
        metavar='N',
        help="regenerate the paper's Table N (1-6) from a PaperEvalConfig file "
        '(config/eval_paper.yaml), published numbers beside ours',
    )
    parser.set_defaults(func=_run)
