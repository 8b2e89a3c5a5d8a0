"""Tests for ``hmr-ros infer`` (hmr_ros.cli.infer), run in-process on generated stand-ins."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hmr_ros.body_models.joint_names import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from hmr_ros.checkpoints.adapter_files import save_adapter_file
from hmr_ros.cli.infer import parse_intrinsics, skeleton_parents
from hmr_ros.cli.main import main
from hmr_ros.geometry.cameras import assumed_intrinsics
from hmr_ros.models.adapters.hand_adapter import HandAdapter
from hmr_ros.models.hand_expert import build_hand_expert

ASTRONAUT = Path(__file__).resolve().parents[2] / 'resource' / 'data' / 'astronaut.jpg'
NUM_SMPLX_JOINTS_OUT = 144  # 55 kinematic + 21 vertex keypoints + 51 landmarks + 17 contour


@pytest.fixture(scope='module')
def assets(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('assets')
    assert main(['make-test-assets', str(folder)]) == 0
    return folder


def _base_args(assets: Path, official: bool = False) -> list[str]:
    if official:
        files = ['smpler_x_tiny.pth.tar', 'hamer_tiny.ckpt']
    else:
        files = ['smplerx_tiny.safetensors', 'hamer_tiny.safetensors']
    return [
        'infer',
        '--whole-body',
        str(assets / files[0]),
        '--hand',
        str(assets / files[1]),
        '--body-models',
        str(assets),
    ]


def test_infer_on_an_image_writes_json_npz_and_overlay(assets, tmp_path, capsys):
    """Default options: the whole 512 x 512 image is one person, f = 512 px, principal point
    (255.5, 255.5); without adapter files the baseline runs and says so."""
    output = tmp_path / 'out'
    assert main([*_base_args(assets), str(ASTRONAUT), '--output', str(output)]) == 0
    assert 'baseline SMPLer-X + HaMeR' in capsys.readouterr().out
    assert sorted(p.name for p in output.iterdir()) == [
        'astronaut.json',
        'astronaut.npz',
        'astronaut_overlay.png',
        'run.json',
    ]

    run = json.loads((output / 'run.json').read_text())
    assert run['model_version'] == 'smplerx_tiny+hamer_tiny'
    assert run['adapters'] == 'none'
    assert len(run['joint_names']) == len(run['joint_parents']) == NUM_SMPLX_JOINTS_OUT
    assert len(run['hand_keypoint_names']) == 21
    assert 'hands_mean is included' in run['hands_mean']

    record = json.loads((output / 'astronaut.json').read_text())
    assert record['image_size'] == [512, 512]
    assert record['camera'] == {
        'fx': 512.0,
        'fy': 512.0,
        'cx': 255.5,
        'cy': 255.5,
        'source': 'assumed: fx = fy = max(W, H), principal point at the image centre',
    }
    (person,) = record['persons']
    assert person['box_px'] == [0.0, 0.0, 511.0, 511.0]
    assert np.array(person['smplx']['body_pose']).shape == (21, 3)
    assert np.array(person['smplx']['left_hand_pose']).shape == (15, 3)
    assert np.array(person['joints_m']).shape == (NUM_SMPLX_JOINTS_OUT, 3)
    assert set(person['hands']) == {'left', 'right'}
    assert np.array(person['hands']['right']['keypoints_m']).shape == (21, 3)
    assert np.array(person['hands']['left']['wrist_rotation']).shape == (3, 3)
    assert np.array(person['hands']['left']['registered_root_m']).shape == (3,)
    assert isinstance(person['hands']['left']['registration_valid'], bool)

    arrays = np.load(output / 'astronaut.npz')
    assert arrays['vertices'].shape == (1, 10475, 3)
    assert arrays['joints'].shape == (1, NUM_SMPLX_JOINTS_OUT, 3)
    assert arrays['keypoints_2d_px'].shape == (1, NUM_SMPLX_JOINTS_OUT, 2)
    assert arrays['hand_keypoints'].shape == (1, 2, 21, 3)
    assert arrays['hand_finger_pose'].shape == (1, 2, 15, 3)
    assert arrays['intrinsics'].tolist() == [[512, 0, 255.5], [0, 512, 255.5], [0, 0, 1]]
    np.testing.assert_allclose(np.array(person['joints_m']), arrays['joints'][0], atol=1e-6)
    assert np.isfinite(arrays['vertices']).all()

    overlay = cv2.imread(str(output / 'astronaut_overlay.png'))
    original = cv2.imread(str(ASTRONAUT))
    assert overlay.shape == original.shape
    assert np.any(overlay != original)  # something was drawn


def _write_video(path: Path, frames: int) -> tuple[int, int]:
    image = cv2.resize(cv2.imread(str(ASTRONAUT)), (192, 160))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (192, 160))
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return 192, 160


def test_infer_on_a_video_with_boxes_intrinsics_official_files_and_an_adapter(assets, tmp_path):
    """Two frames, two person boxes each, given intrinsics, official checkpoints converted in
    memory, and a hand adapter file (base variant hamer_tiny) switched on by 'auto'."""
    video = tmp_path / 'clip.avi'
    _write_video(video, frames=2)
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(json.dumps([[5, 10, 90, 150], [100, 5, 185, 155]]))
    adapter = tmp_path / 'hand_adapter.safetensors'
    save_adapter_file(
        adapter, HandAdapter(build_hand_expert('hamer_tiny').mano_head), 'hamer_tiny'
    )
    output = tmp_path / 'out'
    arguments = [
        *_base_args(assets, official=True),
        str(video),
        '--output',
        str(output),
        '--boxes',
        str(boxes),
        '--intrinsics',
        '200,210,95.5,79.5',
        '--hand-adapter',
        str(adapter),
        '--mesh',
        'wireframe',
    ]
    assert main(arguments) == 0
    names = sorted(p.name for p in output.iterdir())
    for index in range(2):
        stem = f'clip_{index:06d}'
        assert {f'{stem}.json', f'{stem}.npz', f'{stem}_overlay.png'} <= set(names)
        record = json.loads((output / f'{stem}.json').read_text())
        assert record['camera']['fx'] == 200.0 and record['camera']['source'] == '--intrinsics'
        assert len(record['persons']) == 2
        arrays = np.load(output / f'{stem}.npz')
        assert arrays['vertices'].shape == (2, 10475, 3)
        assert arrays['person_boxes_px'].tolist() == [[5, 10, 90, 150], [100, 5, 185, 155]]
    run = json.loads((output / 'run.json').read_text())
    assert run['adapters'] == 'hand'
    assert [w['converted_from_official'] for w in run['weights']] == [True, True, False]


def test_frames_without_boxes_get_an_empty_record_and_the_plain_image(assets, tmp_path):
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(json.dumps({'another_frame': [[0, 0, 10, 10]]}))
    output = tmp_path / 'out'
    arguments = [*_base_args(assets), str(ASTRONAUT), '--output', str(output)]
    assert main([*arguments, '--boxes', str(boxes)]) == 0
    assert json.loads((output / 'astronaut.json').read_text())['persons'] == []
    assert not (output / 'astronaut.npz').exists()
    overlay = cv2.imread(str(output / 'astronaut_overlay.png'))
    assert np.array_equal(overlay, cv2.imread(str(ASTRONAUT)))


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (['--intrinsics', '500,500,320'], 'fx,fy,cx,cy'),
        (['--adapters', 'body'], 'needs the body adapter'),
        (['--backend', 'cuda_graph', '--device', 'cpu'], 'needs a CUDA device'),
    ],
)
def test_bad_options_exit_with_a_message(assets, tmp_path, capsys, extra, message):
    arguments = [*_base_args(assets), str(ASTRONAUT), '--output', str(tmp_path / 'out'), *extra]
    assert main(arguments) == 1
    assert message in capsys.readouterr().err


def test_missing_input_and_bad_boxes_exit_with_a_message(assets, tmp_path, capsys):
    base = [*_base_args(assets), '--output', str(tmp_path / 'out')]
    assert main([*base, str(tmp_path / 'nothing.jpg')]) == 1
    assert 'does not exist' in capsys.readouterr().err
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(json.dumps([[10, 10, 5, 20]]))
    assert main([*base, str(ASTRONAUT), '--boxes', str(boxes)]) == 1
    assert 'x2 > x1' in capsys.readouterr().err


def test_helpers():
    assert parse_intrinsics('600, 610.5,320,240') == (600.0, 610.5, 320.0, 240.0)
    assert assumed_intrinsics(640, 480) == (640.0, 640.0, 319.5, 239.5)
    parents = skeleton_parents([*SMPLX_JOINT_NAMES, 'nose', 'left_thumb'])
    assert parents[: len(SMPLX_PARENTS)] == list(SMPLX_PARENTS)
    assert parents[-2] == -1  # a face keypoint hangs from nothing
    assert parents[-1] == SMPLX_JOINT_NAMES.index('left_thumb3')  # a fingertip from its finger
