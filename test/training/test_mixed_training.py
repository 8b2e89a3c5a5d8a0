"""Both adapter stages on data converted from the published layouts, mixed by weight.

A whole-body set written in SMPLer-X's HumanData layout (SMPL-X labels, hand boxes, 2D SMPL-X
keypoints: BEDLAM/RICH/ARCTIC) and a hand-only set in InterHand2.6M's layout are converted with
the real converters and trained on together: the hand crops of the whole-body set carry their
person's body pose (the adapter's guidance, paper 3.5.1), the hand-only crops none; the body
adapter gets the whole-body set's person crops with both hands' MCP keypoints (paper 3.5.2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel
from hmr_ros.checkpoints.project_format import ModelCard, save_model_file
from hmr_ros.config import config_from_mapping
from hmr_ros.datasets.catalog import summarize_index
from hmr_ros.datasets.humandata import convert_humandata
from hmr_ros.datasets.interhand import convert_interhand
from hmr_ros.datasets.sample import save_index
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.models.whole_body import build_whole_body
from hmr_ros.training.config import BodyAdapterTrainConfig, HandAdapterTrainConfig
from hmr_ros.training.trainer import AdapterTrainer

WIDTH, HEIGHT = 96, 128


def _image(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.GaussianBlur(pixels, (5, 5), 2))


def _humandata(root: Path, rng: np.random.Generator) -> Path:
    count = 3
    paths = [f'images/seq/1/{i:05d}.jpg' for i in range(count)]
    for name in paths:
        _image(root / 'BEDLAM' / name, rng)
    keypoints = np.zeros((count, 144, 3), np.float32)
    keypoints[..., :2] = rng.uniform(10, 80, size=(count, 144, 2))
    keypoints[..., 2] = 1.0
    smplx = {
        'global_orient': rng.normal(scale=0.3, size=(count, 3)),
        'body_pose': rng.normal(scale=0.3, size=(count, 21, 3)),
        'left_hand_pose': rng.normal(scale=0.2, size=(count, 15, 3)),
        'right_hand_pose': rng.normal(scale=0.2, size=(count, 15, 3)),
        'jaw_pose': np.zeros((count, 3)),
        'betas': np.zeros((count, 10)),
        'transl': np.tile([0.0, 0.0, 3.0], (count, 1)),
    }
    npz = root / 'preprocessed_datasets' / 'bedlam_train.npz'
    npz.parent.mkdir(parents=True)
    np.savez(
        npz,
        image_path=np.array(paths),
        bbox_xywh=np.tile([10.0, 5.0, 70.0, 110.0, 1.0], (count, 1)),
        lhand_bbox_xywh=np.tile([15.0, 60.0, 20.0, 20.0, 1.0], (count, 1)),
        rhand_bbox_xywh=np.tile([60.0, 60.0, 20.0, 20.0, 1.0], (count, 1)),
        smplx=np.array(smplx, dtype=object),
        meta=np.array({'height': [HEIGHT] * count, 'width': [WIDTH] * count}, dtype=object),
        keypoints2d_smplx=keypoints,
        keypoints2d_smplx_mask=np.ones(144, np.float32),
        __keypoints_compressed__=np.array(False),
    )
    return npz


def _interhand(root: Path, rng: np.random.Generator) -> None:
    _image(root / 'images' / 'train' / 'Capture0/seq/cam1/image1.jpg', rng)
    folder = root / 'annotations' / 'train'
    folder.mkdir(parents=True)
    world = np.tile([0.0, 0.0, 600.0], (42, 1)) + rng.normal(scale=15.0, size=(42, 3))
    files = {
        'data': {
            'images': [
                {
                    'id': 1,
                    'file_name': 'Capture0/seq/cam1/image1.jpg',
                    'width': WIDTH,
                    'height': HEIGHT,
                    'capture': 0,
                    'camera': '1',
                    'frame_idx': 1,
                }
            ],
            'annotations': [
                {'id': 1, 'image_id': 1, 'joint_valid': [1] * 42, 'hand_type': 'interacting'}
            ],
        },
        'camera': {
            '0': {
                'campos': {'1': [0, 0, 0]},
                'camrot': {'1': np.eye(3).tolist()},
                'focal': {'1': [100, 100]},
                'princpt': {'1': [48, 64]},
            }
        },
        'joint_3d': {'0': {'1': {'world_coord': world.tolist()}}},
        'MANO_NeuralAnnot': {
            '0': {
                '1': {
                    'right': {
                        'pose': rng.normal(scale=0.2, size=48).tolist(),
                        'shape': [0.0] * 10,
                        'trans': [0, 0, 0.6],
                    },
                    'left': {
                        'pose': rng.normal(scale=0.2, size=48).tolist(),
                        'shape': [0.0] * 10,
                        'trans': [0, 0, 0.6],
                    },
                }
            }
        },
    }
    for name, value in files.items():
        (folder / f'InterHand2.6M_train_{name}.json').write_text(json.dumps(value))


@pytest.fixture(scope='module')
def converted(tmp_path_factory: pytest.TempPathFactory, body_model_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp('mixed')
    rng = np.random.default_rng(3)
    smplx = SMPLXBodyModel.from_folder(body_model_dir)
    whole = convert_humandata(_humandata(root, rng), root / 'BEDLAM', smplx, 'BEDLAM')
    _interhand(root / 'ih', rng)
    means = {
        s: MANOHandModel.from_folder(body_model_dir, s).hands_mean.numpy()
        for s in ('left', 'right')
    }
    hands = convert_interhand(root / 'ih', means)
    torch.manual_seed(0)
    save_model_file(
        root / 'hamer_tiny.safetensors',
        build_hand_expert('hamer_tiny').state_dict(),
        ModelCard(model='hamer', variant='hamer_tiny'),
    )
    save_model_file(
        root / 'smplerx_tiny.safetensors',
        build_whole_body('smplerx_tiny').state_dict(),
        ModelCard(model='smplerx', variant='smplerx_tiny'),
    )
    return {
        'root': root,
        'body_model_dir': body_model_dir,
        'whole': save_index(root / 'bedlam.npz', whole, root / 'BEDLAM'),
        'hands': save_index(root / 'interhand.npz', hands, root / 'ih'),
    }


def _common(out: Path, indexes: list[str], weights: list[float]) -> dict[str, Any]:
    return {
        'data': {'indexes': indexes, 'weights': weights, 'augmentation': None, 'num_workers': 0},
        'output': {'dir': str(out), 'checkpoint_every': 0, 'log_every': 1, 'tensorboard': False},
        'optimizer': {'lr': 1e-3, 'warmup_steps': 0},
        'run': {'steps': 3, 'batch_size': 4, 'device': 'cpu', 'seed': 1},
    }


def test_check_reports_guidance_and_mcp_points(converted: dict[str, Any]) -> None:
    whole = summarize_index(converted['whole'])
    assert whole.hand_crops == 6 and whole.hand_crops_with_body_pose == 6
    assert whole.person_crops == 3 and whole.persons_with_mcp_keypoints == 3
    hands = summarize_index(converted['hands'])
    assert hands.hand_crops == 2 and hands.hand_crops_with_body_pose == 0


def test_hand_adapter_trains_on_guided_and_hand_only_crops(
    converted: dict[str, Any], tmp_path: Path
) -> None:
    mapping = {
        'hand_expert': str(converted['root'] / 'hamer_tiny.safetensors'),
        'body_model_dir': str(converted['body_model_dir']),
        **_common(tmp_path, [str(converted['whole']), str(converted['hands'])], [1.0, 1.0]),
    }
    trainer = AdapterTrainer(config_from_mapping(HandAdapterTrainConfig, mapping))
    seen: list[torch.Tensor] = []
    loss = trainer.task.loss

    def recording(batch: Any, dtype: Any) -> Any:
        seen.append(batch['has_smplx'].clone())
        return loss(batch, dtype)

    trainer.task.loss = recording  # type: ignore[method-assign]
    result = trainer.fit()
    assert len(result.records) == 3 and all(np.isfinite(r['total']) for r in result.records)
    assert [len(g) for g in trainer.item_groups] == [6, 2]
    flags = torch.cat(seen)
    assert flags.any() and not flags.all()  # guided whole-body crops and unguided hand-only crops


def test_body_adapter_trains_on_the_whole_body_set(
    converted: dict[str, Any], tmp_path: Path
) -> None:
    mapping = {
        'whole_body': str(converted['root'] / 'smplerx_tiny.safetensors'),
        'body_model_dir': str(converted['body_model_dir']),
        'adapter': {
            'feature_dim': 16,
            'dim': 32,
            'depth': 1,
            'heads': 2,
            'dim_head': 8,
            'mlp_dim': 32,
            'regressor_dim': 32,
        },
        **_common(tmp_path, [str(converted['whole'])], [1.0]),
    }
    result = AdapterTrainer(config_from_mapping(BodyAdapterTrainConfig, mapping)).fit()
    assert all(np.isfinite(r['total']) for r in result.records)
