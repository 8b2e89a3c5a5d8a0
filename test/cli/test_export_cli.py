"""``hmr-ros export-onnx`` on the tiny variants: every graph ONNX Runtime runs equals PyTorch.

Outside fact: the issue's acceptance tolerance, 1e-4 relative between ONNX Runtime (CPU) and the
eager module, for every exported graph; the networks and (with the sync-free forward) the whole
dual path export.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hmr_ros.cli.main import main

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')


@pytest.fixture(scope='module')
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hmr_ros.cli.assets import make_test_assets

    folder = tmp_path_factory.mktemp('assets')
    make_test_assets(folder, seed=3, variants=('smplerx_tiny', 'hamer_tiny'))
    return folder


@pytest.mark.slow
def test_export_writes_every_bucket_and_onnxruntime_matches(
    tiny_files: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'onnx'
    code = main(
        [
            'export-onnx',
            str(tiny_files / 'smplerx_tiny.safetensors'),
            str(tiny_files / 'hamer_tiny.ckpt'),  # the official layout is accepted too
            str(out),
            '--persons',
            '2',
            '--body-model-dir',
            str(tiny_files),
            '--check',
        ]
    )
    assert code == 0
    manifest = json.loads((out / 'manifest.json').read_text())
    graphs = {entry['graph']: entry for entry in manifest['graphs']}
    for bucket in (1, 2):
        whole_body = graphs[f'whole_body_b{bucket}.onnx']
        hand = graphs[f'hand_path_b{bucket}.onnx']
        assert whole_body['inputs'] == {'crops': [bucket, 3, 512, 384]}
        assert hand['inputs'] == {'crops': [2 * bucket, 3, 256, 256]}
        for entry in (whole_body, hand):
            assert (out / entry['graph']).is_file()
            assert entry['check_ok'] and entry['check_max_relative'] <= 1e-4, entry
        # The sync-free forward exports whole (with the project's ONNX translations of the 3x3
        # solve and of boolean where); it must match too.
        dual = graphs[f'dual_path_b{bucket}_480x640.onnx']
        assert 'error' not in dual, dual.get('error')
        assert dual['inputs']['images'] == [1, 3, 480, 640]
        assert dual['check_ok'] and dual['check_max_relative'] <= 1e-4, dual


def test_export_refuses_a_missing_file(tmp_path: Path) -> None:
    code = main(
        [
            'export-onnx',
            str(tmp_path / 'no.safetensors'),
            str(tmp_path / 'no.ckpt'),
            str(tmp_path / 'o'),
        ]
    )
    assert code == 1
