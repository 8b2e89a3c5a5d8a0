"""``hmr-ros bench --models``: body networks timed side by side (hmr_ros/cli/seed_bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

from hmr_ros.cli.main import main


def test_models_are_timed_in_one_run_with_ratios_to_the_first(tmp_path: Path) -> None:
    """One row per model; the first is the ratios' reference (x1); the nearest-rank 90th
    percentile of a sample is never below its median."""
    output = tmp_path / 'rows.json'
    status = main(
        [
            'bench',
            '--models',
            'fastmetro_tiny',
            'smplerx_tiny',
            '--device',
            'cpu',
            '--precisions',
            'fp32',
            '--iterations',
            '3',
            '--json',
            str(output),
        ]
    )
    assert status == 0
    rows = json.loads(output.read_text())['rows']
    assert [row['model'] for row in rows] == ['fastmetro_tiny', 'smplerx_tiny']
    assert rows[0]['ratio_to_first'] == 1.0
    for row in rows:
        assert row['median_ms'] > 0 and row['p90_ms'] >= row['median_ms']
        assert row['ratio_to_first'] == row['median_ms'] / rows[0]['median_ms']
        assert row['device'] == 'cpu' and row['precision'] == 'fp32' and row['parameters'] > 0
