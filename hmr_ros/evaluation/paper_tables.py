"""The paper's Tables 1-6: their rows, their published numbers, and how to measure ours.

``hmr-ros eval --table N PAPER_CONFIG`` (``run_paper_table``) evaluates every row of Table N
that this package can compute with the files of a ``PaperEvalConfig`` and prints each row twice:
the paper's published numbers ('[paper]', transcribed from the HMR-Adapter paper) and ours
('[ours]'). Rows it cannot compute say why:

- another method (Hand4Whole, OSX, ...): published numbers only;
- an ablation variant (full fine-tuning, training from scratch, decoder-only fine-tuning,
  concatenation or moderator (weighted-sum) injection, the whole-body-pose guidance, the
  adapter fed the base model's own features) whose trained file is not in
  ``ablation_files``: the command that trains it (config/train_ablation_<variant>.yaml);
- a row whose adapter file is not configured: the training configuration that produces it.

Rows that run: SMPLer-X alone (the dual path with the hand path switched off), SMPLer-X +
HaMeR (no adapters), the full system (both adapters), the adapters fine-tuned on ARCTIC for
Tables 3 and 4 (No.6), the plain HaMeR on ARCTIC hand crops, and the ablation rows whose
trained files ``ablation_files`` names: the hand variants (Table 3 No.1-No.5 on hand crops,
Table 5 in the dual path) and the whole-body variants (Table 4 No.1-5, Table 6), each file in
its ``VARIANT_FILE_FIELDS`` place; docs/evaluation.md "Ablation variants". Hand-crop rows guided
by the ground-truth body pose are oracle rows and say so (evaluator.ORACLE_LABEL).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from hmr_ros.evaluation.evaluator import (
    AdapterRequest,
    EvalConfig,
    EvalDataset,
    EvalRow,
    HandGuidance,
    WholeBodyMetricsConfig,
    evaluate,
)
from hmr_ros.evaluation.report import ResultRow, TableLayout, get_layout
from hmr_ros.models.ablations.body import BODY_ABLATION_VARIANTS, WEIGHT_ONLY_VARIANTS
from hmr_ros.models.ablations.hand import HAND_ABLATION_VARIANTS, HAND_WEIGHT_ONLY_VARIANTS
from hmr_ros.models.dual_path import DualPathConfig

__all__ = [
    'PAPER_TABLES',
    'PaperEvalConfig',
    'PaperRow',
    'PaperTable',
    'RowRun',
    'TableEntry',
    'run_paper_table',
]

WHOLE_BODY_ONLY_THRESHOLD = 2.0
"""hand_confidence_threshold above 1: the hand path never replaces SMPLer-X's hands."""

AdapterKey = Literal[
    '', 'hand_adapter', 'body_adapter', 'hand_adapter_arctic', 'body_adapter_arctic'
]

TRAIN_CONFIGS: dict[str, str] = {
    'hand_adapter': 'hmr-ros train hand-adapter config/train_hand_adapter.yaml',
    'body_adapter': 'hmr-ros train body-adapter config/train_body_adapter.yaml',
    'hand_adapter_arctic': 'hmr-ros train hand-adapter config/train_hand_adapter_arctic.yaml',
    'body_adapter_arctic': 'hmr-ros train body-adapter config/train_body_adapter_arctic.yaml',
}
"""The command that trains each adapter file a row needs."""

VariantFileField = Literal['hand_expert', 'hand_adapter', 'whole_body', 'body_variant']

VARIANT_FILE_FIELDS: dict[str, VariantFileField] = {
    **{
        variant: 'hand_expert' if variant in HAND_WEIGHT_ONLY_VARIANTS else 'hand_adapter'
        for variant in HAND_ABLATION_VARIANTS
    },
    **{
        variant: 'whole_body' if variant in WEIGHT_ONLY_VARIANTS else 'body_variant'
        for variant in BODY_ABLATION_VARIANTS
    },
}
"""The EvalConfig field each ablation variant's trained file fills: a weight-only variant's
file is a model file used in place of HaMeR ('hand_expert') or SMPLer-X ('whole_body'); the
others are adapter-style files, run as the hand adapter ('hand_adapter') or on top of the
whole-body model ('body_variant', models/ablations/body.py)."""

EVALUATED_VARIANTS: frozenset[str] = frozenset(VARIANT_FILE_FIELDS)
"""Ablation variants whose trained files the table rows can evaluate."""


def train_stage(variant: str) -> str:
    """The ``hmr-ros train`` stage of a variant: 'hand-adapter' or 'body-adapter'.

    By name (training/config.py HandVariant: the HaMeR and hand-guidance variants), since
    evaluation does not import training.
    """
    return 'hand-adapter' if variant.startswith(('hamer_', 'hand_')) else 'body-adapter'


@dataclass(frozen=True)
class RowRun:
    """How to measure a row.

    Attributes:
        model: 'dual_path' or 'hand_expert' (hand crops).
        adapters: which adapters run.
        hand_adapter: PaperEvalConfig field of the hand adapter file ('' = none).
        body_adapter: PaperEvalConfig field of the body adapter file ('' = none).
        whole_body_only: SMPLer-X's own hands (the hand path switched off).
        ablation_config: ablation rows: the training config of the variant (its file is
            ``PaperEvalConfig.ablation_files[variant]``).
        variant: ablation rows: the variant's name (training/config.py HandVariant,
            BodyVariant).
        guidance: hand-crop rows: 'ground_truth' (an oracle, labelled so) or 'predicted'
            (SMPLer-X's body pose, the real pipeline's guidance).
    """

    model: Literal['dual_path', 'hand_expert'] = 'dual_path'
    adapters: AdapterRequest = 'none'
    hand_adapter: AdapterKey = ''
    body_adapter: AdapterKey = ''
    whole_body_only: bool = False
    ablation_config: str = ''
    variant: str = ''
    guidance: HandGuidance = 'ground_truth'


@dataclass(frozen=True)
class PaperRow:
    """A row of a paper table: label, published numbers (layout column order), how to run it."""

    method: str
    published: tuple[float | None, ...]
    run: RowRun | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperTable:
    """One table: its layout (report.LAYOUTS) and rows."""

    layout: str
    rows: tuple[PaperRow, ...]


NA = None
"""A '-' cell of the paper."""
_BASELINE = RowRun(adapters='none')
_SMPLERX = RowRun(adapters='none', whole_body_only=True)
_OURS = RowRun(adapters='both', hand_adapter='hand_adapter', body_adapter='body_adapter')


def _ablation(name: str, model: Literal['dual_path', 'hand_expert'] = 'dual_path') -> RowRun:
    return RowRun(model=model, ablation_config=f'config/train_ablation_{name}.yaml', variant=name)


def _body_ablation(name: str, **changes: str | bool) -> RowRun:
    """A whole-body ablation row (models/ablations/body.py), with the row's other settings."""
    return replace(_ablation(name), **changes)  # type: ignore[arg-type]


def _hand_ablation(name: str, guidance: HandGuidance = 'ground_truth') -> RowRun:
    """Table 3 row of a hand variant, on hand crops.

    An adapter-style file runs as the hand adapter, guided by ``guidance`` (the ground truth,
    an oracle row as No.6, or 'zero' for the image-input adapter, which takes no body pose).
    """
    adapter = VARIANT_FILE_FIELDS[name] == 'hand_adapter'
    return replace(
        _ablation(name, 'hand_expert'), adapters='hand' if adapter else 'none', guidance=guidance
    )


def _hand_injection(name: str) -> RowRun:
    """Table 5 row: the dual path as 'Ours', the hand adapter replaced by the variant's file.

    Both adapters run and SMPLer-X's (refined) body pose guides the hand path, as for the
    'HMR-Adapter (Ours)' row, whose numbers are Table 1's ARCTIC hands.
    """
    return replace(_ablation(name), adapters='both', body_adapter='body_adapter')


def _finetune(pre: str, adapter: str, params: str) -> dict[str, str]:
    return {'Pre-trained': pre, 'Adapter': adapter, 'Trainable Params.': params}


PAPER_TABLES: dict[int, PaperTable] = {
    1: PaperTable(
        'table1',
        (
            PaperRow(
                'Hand4Whole', (63.4, 18.1, 136.8, 54.8, NA, NA, 50.3, 10.8, 76.8, 39.8, NA, NA)
            ),
            PaperRow('OSX', (33.0, 18.8, 58.4, 39.4, NA, NA, 48.7, 15.9, 70.8, 53.7, NA, NA)),
            PaperRow(
                'PyMAF-X (HR48)', (NA, NA, NA, NA, NA, NA, 50.2, 10.2, 64.9, 29.7, 52.8, 10.3)
            ),
            PaperRow(
                'SMPLer-X-B32',
                (34.9, 18.9, 56.3, 40.9, 34.5, 19.8, 40.7, 14.5, 67.3, 52.1, 44.4, 14.9),
            ),
            PaperRow(
                'SMPLer-X-H32',
                (29.3, 18.9, 48.5, 38.3, 28.9, 19.2, 39.0, 14.8, 56.9, 42.2, 43.2, 14.7),
                _SMPLERX,
            ),
            PaperRow(
                'SMPLer-X-H32 (fine-tuned)',
                (27.7, 18.8, 44.7, 37.0, NA, NA, NA, NA, NA, NA, NA, NA),
            ),
            PaperRow('RoboSMPLX', (NA, NA, NA, NA, NA, NA, 49.7, 10.0, 73.7, 34.9, NA, NA)),
            PaperRow(
                'SMPLer-X-H32 + HaMeR',
                (28.3, 16.4, 47.0, 39.0, 27.8, 17.4, 43.0, 12.3, 59.7, 52.2, 43.5, 12.1),
                _BASELINE,
            ),
            PaperRow(
                'Ours',
                (23.9, 10.5, 40.7, 23.6, 24.0, 11.0, 36.8, 10.0, 57.1, 32.4, 42.0, 9.9),
                _OURS,
            ),
        ),
    ),
    2: PaperTable(
        'table2',
        (
            PaperRow('POTTER', (87.4, 44.8, 75.0)),
            PaperRow('SimHMR', (102.8, 49.5, 81.3)),
            PaperRow('HMR 2.0', (82.2, 44.4, 69.8)),
            PaperRow('Hand4Whole', (NA, 54.4, 86.6)),
            PaperRow('OSX', (NA, 60.6, 86.2)),
            PaperRow('PyMAF-X (HR48)', (91.3, 47.1, 78.0)),
            PaperRow('RoboSMPLX', (95.2, 48.5, 80.1)),
            PaperRow('SMPLer-X-B32', (90.3, 53.4, 80.3)),
            PaperRow('SMPLer-X-H32', (86.1, 50.6, 75.0), _SMPLERX),
            PaperRow('SMPLer-X-H32 + HaMeR', (88.3, 46.7, 78.3), _BASELINE),
            PaperRow('Ours', (82.1, 44.0, 73.0), _OURS),
        ),
    ),
    3: PaperTable(
        'table3',
        (
            PaperRow(
                'HaMeR',
                (16.2, 38.5, 17.1),
                RowRun('hand_expert', 'none'),
                _finetune('yes', '-', '-'),
            ),
            PaperRow(
                'No.1',
                (13.9, 45.3, 15.0),
                _hand_ablation('hamer_full_finetune'),
                _finetune('yes', 'no', '671M'),
            ),
            PaperRow(
                'No.2',
                (15.1, 53.3, 16.3),
                _hand_ablation('hamer_from_scratch'),
                _finetune('no', 'no', '671M'),
            ),
            PaperRow(
                'No.3',
                (14.1, 56.1, 15.1),
                _hand_ablation('hamer_decoder_finetune'),
                _finetune('yes', 'no', '39M'),
            ),
            PaperRow(
                'No.4',
                (17.9, 36.7, 18.4),
                _hand_ablation('hamer_concatenation'),
                _finetune('yes', 'no', '39M'),
            ),
            PaperRow(
                'No.5',
                (9.0, 30.9, 9.2),
                _hand_ablation('hamer_adapter_image_input', 'zero'),
                _finetune('yes', 'yes', '27M'),
            ),
            PaperRow(
                'No.6',
                (8.4, 24.1, 8.5),
                RowRun('hand_expert', 'hand', hand_adapter='hand_adapter_arctic'),
                _finetune('yes', 'yes', '27M'),
            ),
            PaperRow(
                'No.6, SMPLer-X body pose',  # not in the paper: No.6 without the oracle
                (NA, NA, NA),
                RowRun(
                    'hand_expert', 'hand', hand_adapter='hand_adapter_arctic', guidance='predicted'
                ),
                _finetune('yes', 'yes', '27M'),
            ),
        ),
    ),
    4: PaperTable(
        'table4',
        (
            PaperRow('SMPLer-X', (29.3, 48.5, 28.9), _SMPLERX, _finetune('yes', '-', '-')),
            PaperRow(
                'No.1',
                (19.5, 24.4, 21.1),
                _body_ablation('smplerx_full_finetune', whole_body_only=True),
                _finetune('yes', 'no', '662M'),
            ),
            PaperRow(
                'No.2',
                (27.0, 35.0, 34.6),
                _body_ablation('smplerx_from_scratch', whole_body_only=True),
                _finetune('no', 'no', '662M'),
            ),
            PaperRow(
                'No.3',
                (21.0, 25.1, 21.2),
                _body_ablation('smplerx_head_finetune', whole_body_only=True),
                _finetune('yes', 'no', '31M'),
            ),
            PaperRow(
                'No.4',
                (23.6, 29.9, 25.1),
                _body_ablation('smplerx_concatenation', whole_body_only=True),
                _finetune('yes', 'no', '31M'),
            ),
            PaperRow(
                'No.5',
                (20.8, 24.7, 21.2),
                _body_ablation('smplerx_adapter_task_tokens', whole_body_only=True),
                _finetune('yes', 'yes', '37M'),
            ),
            PaperRow(
                'No.6',
                (20.7, 24.7, 21.0),
                RowRun(adapters='body', body_adapter='body_adapter_arctic', whole_body_only=True),
                _finetune('yes', 'yes', '37M'),
            ),
        ),
    ),
    5: PaperTable(
        'table5',
        (
            PaperRow('Concatenation', (15.2, 41.9), _hand_injection('hand_concatenation')),
            PaperRow('Weighted sum', (12.1, 26.0), _hand_injection('hand_weighted_sum')),
            PaperRow('Whole-body pose', (13.4, 27.7), _hand_injection('hand_whole_body_pose')),
            PaperRow('HMR-Adapter (Ours)', (10.5, 23.6), _OURS),
        ),
    ),
    6: PaperTable(
        'table6',
        (
            PaperRow(
                'Concatenation',
                (79.3, 95.4, 94.0),
                _body_ablation('body_concatenation', adapters='hand', hand_adapter='hand_adapter'),
            ),
            PaperRow(
                'Weighted sum',
                (57.0, 74.5, 68.0),
                _body_ablation('body_weighted_sum', adapters='hand', hand_adapter='hand_adapter'),
            ),
            PaperRow('HMR-Adapter (Ours)', (36.8, 57.1, 42.0), _OURS),
        ),
    ),
}
"""Published numbers of HMR-Adapter's Tables 1-6 (mm), in each layout's column order;
None where the paper prints '-'. Table 1's 'SMPLer-X-H32 (fine-tuned)' is the paper's
'SMPLer-X-H32 †'."""


@dataclass(frozen=True)
class PaperEvalConfig:
    """``hmr-ros eval --table N CONFIG``: the files every table row may need.

    Attributes:
        whole_body: SMPLer-X-H32 model file.
        hand_expert: HaMeR model file.
        body_model_dir: SMPLX_NEUTRAL.npz, MANO_{RIGHT,LEFT}.pkl.
        datasets: converted test sets by table name ('ARCTIC', 'EHF', '3DPW').
        hand_adapter: the trained hand adapter (config/train_hand_adapter.yaml); '' = none.
        body_adapter: the trained body adapter (config/train_body_adapter.yaml); '' = none.
        hand_adapter_arctic: hand adapter fine-tuned on ARCTIC (Table 3, No.6).
        body_adapter_arctic: body adapter fine-tuned on ARCTIC (Table 4, No.6).
        ablation_files: trained ablation variants (Tables 3-6) by variant name, e.g.
            ``{hamer_full_finetune: runs/ablation_hamer_full_finetune/<file>}``: the file
            ``hmr-ros train`` writes from config/train_ablation_<variant>.yaml.
        metrics: the protocol files (evaluator.WholeBodyMetricsConfig).
        batch_size, device, precision: as EvalConfig.
        output_dir: one JSON file per row run, and the table's.
    """

    whole_body: str
    hand_expert: str
    body_model_dir: str
    datasets: tuple[EvalDataset, ...]
    hand_adapter: str = ''
    body_adapter: str = ''
    hand_adapter_arctic: str = ''
    body_adapter_arctic: str = ''
    ablation_files: dict[str, str] = field(default_factory=dict)
    metrics: WholeBodyMetricsConfig = WholeBodyMetricsConfig()
    batch_size: int = 8
    device: str = 'auto'
    precision: Literal['auto', 'fp32', 'fp16', 'bf16'] = 'fp32'
    output_dir: str = 'results'


@dataclass(frozen=True)
class TableEntry:
    """One printed row pair: the paper's numbers, ours (or None) and a note."""

    paper: ResultRow
    ours: ResultRow | None
    note: str = ''


def _published_row(layout: TableLayout, row: PaperRow) -> ResultRow:
    if len(row.published) != len(layout.columns):
        raise AssertionError(f'{layout.name} {row.method}: {len(row.published)} numbers')
    metrics: dict[str, dict[str, float]] = {}
    for column, value in zip(layout.columns, row.published, strict=True):
        if value is not None:
            metrics.setdefault(column.dataset, {})[column.metric] = value
    return ResultRow(f'{row.method} [paper]', metrics, extra=row.extra)


def _slug(text: str) -> str:
    return re.sub(r'[^a-z0-9]+', '_', text.lower()).strip('_')


def _row_config(
    config: PaperEvalConfig, layout: TableLayout, row: PaperRow, run: RowRun, number: int
) -> EvalConfig:
    names = {column.dataset for column in layout.columns}
    datasets = tuple(d for d in config.datasets if d.name in names)
    if not datasets:
        raise FileNotFoundError(
            f'Table {number} needs converted {", ".join(sorted(names))} data sets; add them to '
            'datasets (hmr-ros data convert)'
        )
    dual_path = DualPathConfig()
    if run.whole_body_only:
        dual_path = replace(dual_path, hand_confidence_threshold=WHOLE_BODY_ONLY_THRESHOLD)
    files = {
        'hand_expert': config.hand_expert,
        'whole_body': (
            config.whole_body if run.model == 'dual_path' or run.guidance == 'predicted' else ''
        ),
        'hand_adapter': getattr(config, run.hand_adapter) if run.hand_adapter else '',
        'body_adapter': getattr(config, run.body_adapter) if run.body_adapter else '',
        'body_variant': '',
    }
    if run.variant:  # the trained ablation file takes its field's place
        files[VARIANT_FILE_FIELDS[run.variant]] = config.ablation_files[run.variant]
    return EvalConfig(
        model=run.model,
        hand_expert=files['hand_expert'],
        body_model_dir=config.body_model_dir,
        datasets=datasets,
        table=layout.name,
        whole_body=files['whole_body'],
        hand_adapter=files['hand_adapter'],
        body_adapter=files['body_adapter'],
        body_variant=files['body_variant'],
        rows=(
            EvalRow(f'{row.method} [ours]', run.adapters, dict(row.extra), guidance=run.guidance),
        ),
        dual_path=dual_path,
        metrics=config.metrics,
        batch_size=config.batch_size,
        device=config.device,
        precision=config.precision,
        output_json=str(Path(config.output_dir) / f'table{number}_{_slug(row.method)}.json'),
    )


def plan_row(config: PaperEvalConfig, row: PaperRow) -> str:
    """'' when the row can run with this configuration, else why not (printed as its note)."""
    run = row.run
    if run is None:
        return 'another method: published numbers only'
    if run.variant:
        if not config.ablation_files.get(run.variant):
            return (
                f'needs ablation_files.{run.variant} (train it: hmr-ros train '
                f'{train_stage(run.variant)} {run.ablation_config})'
            )
        if run.variant not in EVALUATED_VARIANTS:
            return f'evaluating ablation variant {run.variant} is not implemented in this version'
    for key in (run.hand_adapter, run.body_adapter):
        if key and not getattr(config, key):
            return f'needs {key} (train it: {TRAIN_CONFIGS[key]})'
    return ''


def run_paper_table(number: int, config: PaperEvalConfig) -> tuple[TableLayout, list[TableEntry]]:
    """Evaluate every runnable row of Table ``number`` and pair it with the paper's numbers.

    Raises:
        KeyError: no such table.
        FileNotFoundError, CheckpointError, ValueError: as ``evaluator.evaluate``.
    """
    if number not in PAPER_TABLES:
        raise KeyError(f'the paper has Tables 1-6; got {number}')
    table = PAPER_TABLES[number]
    layout = get_layout(table.layout)
    entries = []
    for row in table.rows:
        paper = _published_row(layout, row)
        note = plan_row(config, row)
        ours = None
        if not note and row.run is not None:
            result = evaluate(_row_config(config, layout, row, row.run, number))
            ours = result.rows[0]
        entries.append(TableEntry(paper, ours, note))
    return layout, entries


def comparison_rows(entries: Sequence[TableEntry]) -> list[ResultRow]:
    """The rows to print: each paper row (unless the paper has no such row), then ours."""
    rows: list[ResultRow] = []
    for entry in entries:
        if entry.paper.metrics:
            rows.append(entry.paper)
        if entry.ours is not None:
            rows.append(entry.ours)
    return rows
