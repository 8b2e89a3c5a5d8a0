"""Tests of metric accumulation, the paper-layout tables and the JSON round trip."""

import math

import pytest
import torch

from hmr_ros.evaluation.report import (
    LAYOUTS,
    MISSING,
    MetricAccumulator,
    ResultRow,
    format_table,
    get_layout,
    read_json,
    write_json,
)


def test_accumulator_averages_over_batches_and_skips_nan() -> None:
    """Batches (1, 2) and (3, NaN): mean 2 over 3 samples; a metric seen once keeps its count."""
    acc = MetricAccumulator()
    acc.update({'pve_all_mm': torch.tensor([1.0, 2.0]), 'pa_pve_all_mm': torch.tensor([4.0, 6.0])})
    acc.update({'pve_all_mm': torch.tensor([3.0, math.nan])})
    assert acc.means() == {'pve_all_mm': 2.0, 'pa_pve_all_mm': 5.0}
    assert acc.counts() == {'pve_all_mm': 3, 'pa_pve_all_mm': 2}


def test_table1_has_the_papers_columns_and_prints_missing_values() -> None:
    layout = get_layout('table1')
    headers = [c.header for c in layout.columns]
    assert (
        headers
        == [
            'PA-PVE All',
            'PA-PVE Hands',
            'PVE All',
            'PVE Hands',
            'PA-MPJPE All',
            'PA-MPJPE Hands',
        ]
        * 2
    )
    assert [c.dataset for c in layout.columns] == ['ARCTIC'] * 6 + ['EHF'] * 6

    ehf = MetricAccumulator()
    ehf.update({'pa_pve_all_mm': torch.tensor([36.84]), 'pve_hands_mm': torch.tensor([32.36])})
    rows = [
        ResultRow.from_accumulators('Ours', {'EHF': ehf}),
        ResultRow('Hand4Whole', {'ARCTIC': {'pa_pve_all_mm': 63.4}}),
    ]
    text = format_table(layout, rows)
    lines = text.splitlines()

    assert lines[0] == layout.title
    assert lines[1].split() == ['ARCTIC', 'EHF']
    ours = lines[4].split()
    assert ours[0] == 'Ours'
    assert ours[1:7] == [MISSING] * 6  # nothing measured on ARCTIC
    assert ours[7] == '36.8' and ours[10] == '32.4'  # EHF PA-PVE All, PVE Hands
    assert lines[5].split()[1] == '63.4'
    # Every line of the table body has the same width as the header line (aligned columns).
    assert len({len(line) for line in lines[2:4]}) == 1


def test_text_columns_and_three_decimal_metrics() -> None:
    """Table 3 shows its text columns; FreiHAND AUC and F-scores print with 3 decimals."""
    row = ResultRow(
        'No.6',
        {'ARCTIC': {'pa_pve_mm': 8.4, 'pve_mm': 24.1, 'pa_mpjpe_mm': 8.5}},
        extra={'Pre-trained': 'yes', 'Adapter': 'yes', 'Trainable Params.': '27M'},
    )
    assert format_table(LAYOUTS['table3'], [row]).splitlines()[-1].split() == [
        'No.6',
        'yes',
        'yes',
        '27M',
        '8.4',
        '24.1',
        '8.5',
    ]
    freihand = ResultRow('CMR-PG', {'FreiHAND': {'pa_j_auc': 0.86333, 'pa_f_score_5mm': 0.715}})
    cells = format_table(LAYOUTS['freihand'], [freihand]).splitlines()[-1].split()
    assert cells == ['CMR-PG', MISSING, '0.863', MISSING, MISSING, '0.715', MISSING]


def test_json_round_trip(tmp_path) -> None:
    acc = MetricAccumulator()
    acc.update(
        {'pve_all_mm': torch.tensor([80.0, 84.2]), 'mpjpe_all_mm': torch.tensor([70.0, 76.0])}
    )
    rows = [ResultRow.from_accumulators('Ours', {'3DPW': acc}, extra={'note': 'test'})]
    path = write_json(tmp_path / 'out' / 'table2.json', LAYOUTS['table2'], rows, {'steps': 10})

    layout, loaded = read_json(path)

    assert layout.name == 'table2'
    assert loaded[0].method == 'Ours'
    assert loaded[0].value('3DPW', 'pve_all_mm') == pytest.approx(82.1)
    assert loaded[0].counts['3DPW']['mpjpe_all_mm'] == 2
    assert loaded[0].extra == {'note': 'test'}


def test_unknown_layout_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match='table1'):
        get_layout('table7')
