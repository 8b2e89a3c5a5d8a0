"""Data-set averages of the metrics, printed in the paper's table layouts and written as JSON.

`MetricAccumulator` sums per-sample metrics (the (B,) tensors of `metrics.py`) over a data set;
`ResultRow` holds one method's (or ablation's) averages for one or more data sets; a
`TableLayout` says which averages go in which column, grouped the way the paper groups them:

- 'table1': whole body on ARCTIC and EHF; PA-PVE, PVE, PA-MPJPE, each All and Hands (Table 1).
- 'table2': body only on 3DPW; PVE, PA-MPJPE, MPJPE (Table 2).
- 'table3': hand expert fine-tuning on ARCTIC hand crops; PA-PVE, PVE, PA-MPJPE (Table 3).
- 'table4': whole-body fine-tuning on ARCTIC; PA-PVE, PVE, PA-MPJPE (Table 4).
- 'table5': body-guidance injection into the hand expert, the whole pipeline's hands on ARCTIC;
  PA-PVE, PVE of the 'Hands' vertices (Table 5: its HMR-Adapter row equals Table 1's ARCTIC
  Hands columns, so the table measures the dual path, not hand crops).
- 'table6': hand-feature injection, EHF whole body; PA-PVE, PVE, PA-MPJPE (Table 6).
- 'agora': not a paper table. AGORA validation with the ground-truth person boxes, scored with
  Table 1's metrics ('All' and 'Hands') and the 'All' MPJPE. AGORA's leaderboard protocol is
  different (it matches detections to people and reports NMVE / NMJE / F1), so these numbers
  are not comparable with the leaderboard's; the title says so.
- 'freihand': CMR supplementary Table 2 (root-relative): PA-MPJPE, J-AUC, PA-MPVPE, V-AUC,
  F@5 mm, F@15 mm.
- 'freihand_cs': CMR supplementary Table 3 (camera space), the same columns unaligned.

Tables 3 and 4 also list text columns (pre-trained, adapter, trainable parameters), carried in
`ResultRow.extra`. Metric names are the keys of `metrics.whole_body_errors` and
`metrics.hand_errors`. Lengths print with one decimal (mm), AUCs and F-scores with three.
Formatting returns a string; printing is the CLI's job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

MISSING = '-'
"""Printed where a row has no value for a column, as the paper's tables do."""

JSON_FORMAT_VERSION = 1


class MetricAccumulator:
    """Running sums of per-sample metrics; NaN entries mean 'not measured' and are skipped."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def update(self, metrics: Mapping[str, torch.Tensor]) -> None:
        """Add one batch.

        Args:
            metrics: name -> (B,) per-sample values (e.g. `whole_body_errors(...)`).
        """
        for name, values in metrics.items():
            flat = values.detach().to('cpu', torch.float64).reshape(-1)
            measured = flat[~torch.isnan(flat)]
            self._sums[name] = self._sums.get(name, 0.0) + float(measured.sum())
            self._counts[name] = self._counts.get(name, 0) + int(measured.numel())

    def means(self) -> dict[str, float]:
        """Average of each metric over the samples that measured it (metrics with 0 dropped)."""
        return {name: self._sums[name] / n for name, n in self._counts.items() if n > 0}

    def counts(self) -> dict[str, int]:
        """Number of samples behind each average."""
        return dict(self._counts)


@dataclass(frozen=True)
class ResultRow:
    """One line of a results table: a method or ablation and its averages per data set.

    Attributes:
        method: row label, e.g. 'SMPLer-X-H32 + HaMeR' or 'No.6'.
        metrics: data set -> metric name -> average.
        counts: data set -> metric name -> samples behind the average.
        extra: text columns, e.g. {'Trainable Params.': '27M'}.
    """

    method: str
    metrics: Mapping[str, Mapping[str, float]]
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_accumulators(
        cls,
        method: str,
        accumulators: Mapping[str, MetricAccumulator],
        extra: Mapping[str, str] | None = None,
    ) -> ResultRow:
        """Row from one accumulator per data set ({'ARCTIC': acc, 'EHF': acc})."""
        return cls(
            method=method,
            metrics={name: acc.means() for name, acc in accumulators.items()},
            counts={name: acc.counts() for name, acc in accumulators.items()},
            extra=dict(extra or {}),
        )

    def value(self, dataset: str, metric: str) -> float | None:
        """The average, or None when this row did not measure it."""
        value = self.metrics.get(dataset, {}).get(metric)
        return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class Column:
    """A numeric column: which data set and metric, its header, and its decimals."""

    dataset: str
    metric: str
    header: str
    decimals: int = 1


@dataclass(frozen=True)
class TableLayout:
    """Columns of one table: text columns first, then numeric columns grouped by data set."""

    name: str
    title: str
    columns: tuple[Column, ...]
    text_columns: tuple[str, ...] = ()


def _whole_body_columns(dataset: str) -> tuple[Column, ...]:
    return tuple(
        Column(dataset, f'{metric}_{part}_mm', f'{header} {label}')
        for metric, header in (('pa_pve', 'PA-PVE'), ('pve', 'PVE'), ('pa_mpjpe', 'PA-MPJPE'))
        for part, label in (('all', 'All'), ('hands', 'Hands'))
    )


def _columns(dataset: str, *specs: tuple[str, str, int]) -> tuple[Column, ...]:
    return tuple(Column(dataset, metric, header, decimals) for metric, header, decimals in specs)


_FINETUNE_TEXT = ('Pre-trained', 'Adapter', 'Trainable Params.')


def _cmr_columns(prefix: str, error_label: str) -> tuple[Column, ...]:
    return _columns(
        'FreiHAND',
        (f'{prefix}_mpjpe_mm', f'{error_label}-MPJPE', 1),
        (f'{prefix}_j_auc', 'J-AUC', 3),
        (f'{prefix}_pve_mm', f'{error_label}-MPVPE', 1),
        (f'{prefix}_v_auc', 'V-AUC', 3),
        (f'{prefix}_f_score_5mm', 'F@5 mm', 3),
        (f'{prefix}_f_score_15mm', 'F@15 mm', 3),
    )


LAYOUTS: dict[str, TableLayout] = {
    layout.name: layout
    for layout in (
        TableLayout(
            'table1',
            'Whole-body reconstruction on ARCTIC and EHF (mm)',
            _whole_body_columns('ARCTIC') + _whole_body_columns('EHF'),
        ),
        TableLayout(
            'table2',
            'Body-only reconstruction on 3DPW (mm)',
            _columns(
                '3DPW',
                ('pve_all_mm', 'PVE', 1),
                ('pa_mpjpe_all_mm', 'PA-MPJPE', 1),
                ('mpjpe_all_mm', 'MPJPE', 1),
            ),
        ),
        TableLayout(
            'table3',
            'Hand reconstruction on ARCTIC by fine-tuning method (mm)',
            _columns(
                'ARCTIC',
                ('pa_pve_mm', 'PA-PVE', 1),
                ('pve_mm', 'PVE', 1),
                ('pa_mpjpe_mm', 'PA-MPJPE', 1),
            ),
            _FINETUNE_TEXT,
        ),
        TableLayout(
            'table4',
            'Whole-body reconstruction on ARCTIC by fine-tuning method (mm)',
            _columns(
                'ARCTIC',
                ('pa_pve_all_mm', 'PA-PVE', 1),
                ('pve_all_mm', 'PVE', 1),
                ('pa_mpjpe_all_mm', 'PA-MPJPE', 1),
            ),
            _FINETUNE_TEXT,
        ),
        TableLayout(
            'table5',
            'Body-feature injection into the hand expert, ARCTIC hands (mm)',
            _columns(
                'ARCTIC',
                ('pa_pve_hands_mm', 'PA-PVE (hands)', 1),
                ('pve_hands_mm', 'PVE (hands)', 1),
            ),
        ),
        TableLayout(
            'table6',
            'Hand-feature injection into the whole-body model, EHF (mm)',
            _columns(
                'EHF',
                ('pa_pve_all_mm', 'PA-PVE', 1),
                ('pve_all_mm', 'PVE', 1),
                ('pa_mpjpe_all_mm', 'PA-MPJPE', 1),
            ),
        ),
        TableLayout(
            'agora',
            'AGORA validation, ground-truth person boxes, Table 1 metrics (mm); not the AGORA '
            'leaderboard protocol (no detection matching, NMVE / NMJE / F1)',
            _whole_body_columns('AGORA') + _columns('AGORA', ('mpjpe_all_mm', 'MPJPE All', 1)),
        ),
        TableLayout(
            'freihand', 'Root-relative hand mesh recovery on FreiHAND', _cmr_columns('pa', 'PA')
        ),
        TableLayout(
            'freihand_cs', 'Camera-space hand mesh recovery on FreiHAND', _cmr_columns('cs', 'CS')
        ),
    )
}


def get_layout(name: str) -> TableLayout:
    """The layout called `name`; raises with the known names otherwise."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f'unknown table layout {name!r}; known: {", ".join(LAYOUTS)}') from None


def _format_value(value: float | None, decimals: int) -> str:
    return MISSING if value is None else f'{value:.{decimals}f}'


def format_table(layout: TableLayout, rows: Sequence[ResultRow]) -> str:
    """The table as aligned text: a data-set line, a header line, a rule, one line per row.

    Args:
        layout: which columns to show.
        rows: methods or ablations, in display order.

    Returns:
        Multi-line text without a trailing newline.
    """
    headers = ['Method', *layout.text_columns, *(c.header for c in layout.columns)]
    groups = ['', *('' for _ in layout.text_columns), *(c.dataset for c in layout.columns)]
    body = [
        [
            row.method,
            *(row.extra.get(name, MISSING) for name in layout.text_columns),
            *(_format_value(row.value(c.dataset, c.metric), c.decimals) for c in layout.columns),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in (headers, groups, *body)) for i in range(len(headers))]

    def render(cells: Sequence[str], numbers_right: bool = True) -> str:
        first = cells[0].ljust(widths[0])
        rest = (
            cell.rjust(width) if numbers_right else cell.ljust(width)
            for cell, width in zip(cells[1:], widths[1:], strict=True)
        )
        return '  '.join((first, *rest)).rstrip()

    # The data-set line names each group once, over its first column.
    group_cells = [
        name if i == 0 or name != groups[i - 1] else '' for i, name in enumerate(groups)
    ]
    lines = [layout.title]
    if len(set(c.dataset for c in layout.columns)) > 1:
        lines.append(render(group_cells, numbers_right=False))
    lines.append(render(headers))
    lines.append('-' * len(render(headers)))
    lines.extend(render(line) for line in body)
    return '\n'.join(lines)


def table_to_json(
    layout: TableLayout, rows: Sequence[ResultRow], metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """JSON-ready dict: layout, column definitions, every row's averages and sample counts."""
    return {
        'format_version': JSON_FORMAT_VERSION,
        'layout': layout.name,
        'title': layout.title,
        'columns': [
            {'dataset': c.dataset, 'metric': c.metric, 'header': c.header} for c in layout.columns
        ],
        'text_columns': list(layout.text_columns),
        'rows': [
            {
                'method': row.method,
                'extra': dict(row.extra),
                'metrics': {name: dict(values) for name, values in row.metrics.items()},
                'counts': {name: dict(values) for name, values in row.counts.items()},
            }
            for row in rows
        ],
        'metadata': dict(metadata or {}),
    }


def write_json(
    path: str | Path,
    layout: TableLayout,
    rows: Sequence[ResultRow],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write `table_to_json(...)` to path (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table_to_json(layout, rows, metadata), indent=2) + '\n')
    return path


def read_json(path: str | Path) -> tuple[TableLayout, list[ResultRow]]:
    """Read a file of `write_json` back: its layout and rows (to merge runs into one table)."""
    data = json.loads(Path(path).read_text())
    if data.get('format_version') != JSON_FORMAT_VERSION:
        raise ValueError(
            f'{path} has results format {data.get("format_version")!r}; this version reads '
            f'{JSON_FORMAT_VERSION}'
        )
    rows = [
        ResultRow(
            method=row['method'],
            metrics=row['metrics'],
            counts=row.get('counts', {}),
            extra=row.get('extra', {}),
        )
        for row in data['rows']
    ]
    return get_layout(data['layout']), rows
