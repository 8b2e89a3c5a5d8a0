"""``hmr-ros bench`` on the CPU: the JSON schema of issue 9 item 4 and same-run ratios.

Outside facts: the issue fixes the row keys (backend, whole_body, persons, precision, p50_ms,
p99_ms, fps, stages{name: {p50_ms}}) and that the naive baseline's rows have backend 'naive' and
the ratios come from the same run. Without CUDA the bench must run the tiny variants and say so.
Timings themselves are never asserted (they are measured, not tested).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hmr_ros.cli.bench import percentile_ms, summarise
from hmr_ros.cli.main import main


def test_percentiles_follow_numpy_linear_interpolation() -> None:
    # Hand-computed: samples 1..100 -> p50 = 50.5, p99 = 99.01 (rank 0.99 * 99 = 98.01).
    samples = [float(v) for v in range(1, 101)]
    assert percentile_ms(samples, 50) == pytest.approx(50.5)
    assert percentile_ms(samples, 99) == pytest.approx(99.01)
    assert summarise([10.0, 10.0, 40.0])['fps'] == pytest.approx(50.0)  # 1000 / mean 20 ms


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU fallback')
def test_cpu_bench_writes_the_schema_and_same_run_ratios(tmp_path: Path) -> None:
    json_file, markdown_file = tmp_path / 'bench.json', tmp_path / 'bench.md'
    code = main(
        [
            'bench',
            '--variants',
            'H',  # no GPU: replaced by the tiny variants, and said so
            '--persons',
            '1',
            '2',
            '--precisions',
            'fp16',
            '--backends',
            'eager',
            'cuda_graph',
            '--iterations',
            '2',
            '--warmup',
            '0',
            '--image-size',
            '240x320',
            '--json',
            str(json_file),
            '--markdown',
            str(markdown_file),
        ]
    )
    assert code == 0
    document = json.loads(json_file.read_text())
    assert any('NO CUDA DEVICE' in note for note in document['notes'])
    rows = document['rows']
    assert {(r['backend'], r['persons']) for r in rows} == {
        ('naive', 1),
        ('naive', 2),
        ('eager', 1),
        ('eager', 2),
    }
    for row in rows:
        for key in ('backend', 'whole_body', 'persons', 'precision', 'p50_ms', 'p99_ms', 'fps'):
            assert key in row, key
        assert row['whole_body'] == 'tiny' and row['precision'] == 'fp32'
        assert 0 < row['p50_ms'] <= row['p99_ms']
        assert all(set(stage) == {'p50_ms'} for stage in row['stages'].values())
        naive = next(r for r in rows if r['backend'] == 'naive' and r['persons'] == row['persons'])
        assert row['speedup_vs_naive'] == pytest.approx(naive['p50_ms'] / row['p50_ms'], rel=1e-2)
    eager = next(r for r in rows if r['backend'] == 'eager')
    expected_stages = {'upload', 'crops', 'whole_body', 'body_adapter', 'hand_crops'}
    assert expected_stages <= set(eager['stages'])
    assert {'hand_expert', 'fusion', 'smplx', 'download'} <= set(eager['stages'])
    naive_stages = next(r for r in rows if r['backend'] == 'naive')['stages']
    assert {'upload', 'whole_body', 'hand_expert', 'smplx', 'download'} <= set(naive_stages)
    # cuda_graph cannot run here: listed with its reason, not silently replaced.
    assert any(s['backend'] == 'cuda_graph' and 'CUDA' in s['reason'] for s in document['skipped'])
    text = markdown_file.read_text()
    assert 'TensorRT' in text and 'driver' in text and '| naive | tiny | 1 |' in text


def test_stage_timer_does_not_change_the_outputs() -> None:
    """Timing marks record clocks only: outputs with and without the timer are identical."""
    from hmr_ros.models.dual_path import DualPathConfig
    from hmr_ros.models.stage_timing import DUAL_PATH_STAGES, StageTimer
    from hmr_ros.pipeline.backends.cuda_graph import example_inputs
    from hmr_ros.pipeline.runner import _test_asset_model

    model = _test_asset_model(DualPathConfig(), torch.device('cpu'))
    inputs = example_inputs((240, 320), 2, torch.device('cpu'))
    with torch.inference_mode():
        plain = model(*inputs)
        model.stage_timer = StageTimer(torch.device('cpu'))
        try:
            timed = model(*inputs)
            durations = model.stage_timer.durations_ms()
        finally:
            model.stage_timer = None
    assert tuple(durations) == DUAL_PATH_STAGES
    assert all(value >= 0 for value in durations.values())
    for name, value in plain._asdict().items():
        assert torch.equal(getattr(timed, name), value), name
