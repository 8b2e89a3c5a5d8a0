"""tools/gpu_check.sh: what it would run, its time budget and shell hygiene (issue 9, item 5).

Outside facts: the issue asks for the gpu-marked tests, then ``hmr-ros bench`` for the H and B
whole-body variants, 1 and 4 persons, fp16 and bf16, in at most 8 minutes (480 s) in all, with
no ROS or colcon on the machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'tools' / 'gpu_check.sh'


def _dry_run(tmp_path: Path, *flags: str) -> str:
    result = subprocess.run(
        ['bash', str(SCRIPT), '--dry-run', *flags, str(tmp_path / 'out')],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def test_gpu_check_runs_the_gpu_tests_then_the_asked_bench_within_8_minutes(tmp_path) -> None:
    text = _dry_run(tmp_path)
    pytest_line = next(line for line in text.splitlines() if '-m pytest' in line)
    bench_line = next(line for line in text.splitlines() if 'bench' in line and 'cli' in line)
    assert '-m gpu' in pytest_line
    assert '--variants H B' in bench_line and '--persons 1 4' in bench_line
    assert '--precisions fp16 bf16' in bench_line and '--device cuda' in bench_line
    assert f'--json {tmp_path}/out/bench.json' in bench_line
    assert f'--markdown {tmp_path}/out/bench.md' in bench_line
    # No ROS: the bench is started from the checkout, not from a colcon install.
    assert 'hmr_ros.cli.main' in bench_line and 'ros2' not in text and 'colcon' not in text
    timeouts = [int(v) for v in re.findall(r'timeout (\d+)s', text)]
    assert len(timeouts) == 2 and sum(timeouts) <= 480
    assert not (tmp_path / 'out').exists()  # a dry run writes nothing


def test_gpu_check_refuses_a_missing_out_dir() -> None:
    result = subprocess.run(['bash', str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and 'usage' in result.stderr


@pytest.mark.skipif(shutil.which('shellcheck') is None, reason='shellcheck is not installed')
def test_gpu_check_is_shellcheck_clean() -> None:
    result = subprocess.run(
        ['shellcheck', str(SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout
