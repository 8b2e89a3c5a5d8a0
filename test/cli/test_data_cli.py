"""``hmr-ros data convert`` and ``hmr-ros data check`` on tiny files in published layouts."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from hmr_ros.cli.main import main
from hmr_ros.datasets.catalog import CONVERTERS, convert, summarize_index
from hmr_ros.datasets.sample import load_index


def _interhand_release(root: Path) -> None:
    """One image with both hands valid, MANO for the right hand (InterHand2.6M layout)."""
    folder = root / 'annotations' / 'train'
    folder.mkdir(parents=True)
    world = np.tile([0.0, 0.0, 1000.0], (42, 1)) + np.random.default_rng(0).normal(
        scale=20.0, size=(42, 3)
    )
    image = {
        'id': 1,
        'file_name': 'Capture0/seq/cam1/image1.jpg',
        'width': 64,
        'height': 64,
        'capture': 0,
        'camera': '1',
        'frame_idx': 1,
        'seq_name': 'seq',
    }
    files = {
        'data': {
            'images': [image],
            'annotations': [
                {
                    'id': 1,
                    'image_id': 1,
                    'bbox': [0, 0, 9, 9],
                    'joint_valid': [1] * 42,
                    'hand_type': 'interacting',
                    'hand_type_valid': 1,
                }
            ],
        },
        'camera': {
            '0': {
                'campos': {'1': [0, 0, 0]},
                'camrot': {'1': np.eye(3).tolist()},
                'focal': {'1': [50, 50]},
                'princpt': {'1': [32, 32]},
            }
        },
        'joint_3d': {'0': {'1': {'world_coord': world.tolist()}}},
        'MANO_NeuralAnnot': {
            '0': {
                '1': {
                    'right': {'pose': [0.0] * 48, 'shape': [0.0] * 10, 'trans': [0, 0, 1]},
                    'left': None,
                }
            }
        },
    }
    for name, value in files.items():
        (folder / f'InterHand2.6M_train_{name}.json').write_text(json.dumps(value))


def _threedpw_release(root: Path) -> None:
    folder = root / 'sequenceFiles' / 'test'
    folder.mkdir(parents=True)
    joints = np.random.default_rng(1).normal(scale=0.3, size=(1, 72))
    poses = np.eye(4)[None].copy()
    poses[0, 2, 3] = 3.0
    data = {
        'sequence': 'seq',
        'jointPositions': [joints],
        'campose_valid': [np.ones(1)],
        'poses2d': [np.zeros((1, 3, 18))],
        'cam_poses': poses,
        'cam_intrinsics': np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]),
    }
    with (folder / 'seq.pkl').open('wb') as file:
        pickle.dump(data, file, protocol=2)


def test_convert_and_check(
    tmp_path: Path, body_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _interhand_release(tmp_path / 'ih')
    out = tmp_path / 'converted'
    assert (
        main(
            [
                'data',
                'convert',
                'InterHand2.6M',
                str(tmp_path / 'ih'),
                str(out / 'ih.npz'),
                '--body-model-dir',
                str(body_model_dir),
            ]
        )
        == 0
    )
    assert 'InterHand2.6M: 1 samples' in capsys.readouterr().out
    _threedpw_release(tmp_path / 'pw')
    assert main(['data', 'convert', '3DPW', str(tmp_path / 'pw'), str(out / 'pw.npz')]) == 0
    capsys.readouterr()
    assert main(['data', 'check', str(out), '--check-images', '-1']) == 0
    report = capsys.readouterr().out
    assert 'hand adapter: 2 hand crops, 0 with a body pose' in report
    assert 'SMPL joints (3DPW body metrics) 1' in report
    assert 'MANO hands (hand metrics) 1' in report
    assert 'images: 1 of 1 checked are missing' in report  # no image files were written
    summary = summarize_index(out / 'ih.npz')
    assert summary.person_crops == 0 and summary.datasets == {'InterHand2.6M': 1}
    assert load_index(out / 'ih.npz')[0].right_mano is not None


def test_convert_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['data', 'convert', 'NoSuchSet', str(tmp_path), str(tmp_path / 'x.npz')]) == 2
    assert 'known: ARCTIC' in capsys.readouterr().err
    assert main(['data', 'convert', 'ARCTIC', str(tmp_path), str(tmp_path / 'x.npz')]) == 2
    assert 'needs the body models' in capsys.readouterr().err
    assert main(['data', 'check', str(tmp_path)]) == 1
    with pytest.raises(ValueError, match='splits are'):
        convert('3DPW', tmp_path, 'val')
    assert set(CONVERTERS) >= {'ARCTIC', 'BEDLAM', 'RICH', 'Human3.6M', 'InterHand2.6M', '3DPW'}
