"""AGORA validation rows end to end: release layout -> `data convert AGORA` -> `eval` (agora).

Stand-in models (`make-test-assets`) and a one-image AGORA validation release written in the
published layout (see test/datasets/test_agora.py for its outside facts). The ground-truth mesh
is the stand-in SMPL-X rest pose turned into the OpenCV camera frame (y down, z forward: a
half turn about x) 6 m ahead; a second person is a kid, refused by default.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from agora_files import write_dataframe_pickle

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.cli.main import main

IMAGE = 'ag_validationset_renderpeople_bfh_archviz_5_10_cam02_00001.png'  # 18 mm lens
FOCAL_4K_PX = 18 / 36 * 3840  # AGORA: f_mm / sensor width (36 mm) * image width


def _person(model: SMPLXBodyModel, shift_x_m: float) -> tuple[np.ndarray, ...]:
    with torch.no_grad():
        output = model(**model.neutral_inputs(1))
    flip = np.array((1.0, -1.0, -1.0))  # half turn about x: model y-up -> camera y-down
    offset = np.array((shift_x_m, 0.0, 6.0))
    vertices = output.vertices[0].double().numpy() * flip + offset
    joints = output.joints[0].double().numpy() * flip + offset
    joints = np.concatenate((joints, vertices[: max(0, 127 - len(joints))]))[:127]
    pixels = joints[:, :2] / joints[:, 2:] * FOCAL_4K_PX + (1920.0, 1080.0)
    return pixels, joints, vertices


def test_agora_validation_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assets = tmp_path / 'assets'
    assert main(['make-test-assets', str(assets), '--variants', 'hamer_tiny', 'smplerx_tiny']) == 0
    model = SMPLXBodyModel.from_folder(assets).eval()
    root = tmp_path / 'agora'
    adult, kid = _person(model, -0.6), _person(model, 0.6)
    columns = {
        'imgPath': [IMAGE],
        'camX': [0.0],
        'camY': [0.0],
        'camZ': [170.0],
        'camYaw': [0.0],
        'isValid': [[True, True]],
        'kid': [[False, True]],
        'gender': [['male', 'female']],
        'occlusion': [[5.0, 5.0]],
        'gt_joints_2d': [[adult[0], kid[0]]],
        'gt_joints_3d': [[adult[1], kid[1]]],
        'gt_verts': [[adult[2], kid[2]]],
    }
    folder = root / 'validation_SMPLX' / 'SMPLX'
    folder.mkdir(parents=True)
    write_dataframe_pickle(folder / 'validation_0_withjv.pkl', columns)
    images = root / '1280x720' / 'validation'
    images.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
    cv2.imwrite(str(images / (IMAGE[:-4] + '_1280x720.png')), cv2.GaussianBlur(pixels, (9, 9), 3))

    index = tmp_path / 'agora_val.npz'
    convert = ['data', 'convert', 'AGORA', str(root), str(index), '--resolution', '1280x720']
    assert main(convert) == 0
    config = {
        'model': 'dual_path',
        'whole_body': str(assets / 'smplerx_tiny.safetensors'),
        'hand_expert': str(assets / 'hamer_tiny.safetensors'),
        'body_model_dir': str(assets),
        'datasets': [{'name': 'AGORA', 'index': str(index)}],
        'table': 'agora',
        'rows': [{'method': 'SMPLer-X + HaMeR', 'adapters': 'none'}],
        'wrist_sources': ['body'],
        'metrics': {'protocol': 'approximate'},
        'device': 'cpu',
    }
    (tmp_path / 'eval.yaml').write_text(yaml.safe_dump(config))
    out = tmp_path / 'out.json'
    assert main(['eval', str(tmp_path / 'eval.yaml'), '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'not the AGORA leaderboard protocol' in printed
    results = json.loads(out.read_text())
    assert results['layout'] == 'agora'
    metrics = results['rows'][0]['metrics']['AGORA']
    counts = results['rows'][0]['counts']['AGORA']
    assert counts['pve_all_mm'] == 1  # the adult; the kid was refused at conversion
    for name in ('pa_pve_all_mm', 'pve_all_mm', 'pa_mpjpe_all_mm', 'mpjpe_all_mm'):
        assert math.isfinite(metrics[name]) and metrics[name] > 0
    assert math.isfinite(metrics['pa_pve_hands_mm'])


def test_shipped_agora_config_loads() -> None:
    from hmr_ros.config import load_config
    from hmr_ros.evaluation.evaluator import EvalConfig

    config = load_config(
        EvalConfig, Path(__file__).resolve().parents[2] / 'config' / 'eval_agora.yaml'
    )
    assert config.table == 'agora' and [d.name for d in config.datasets] == ['AGORA']
