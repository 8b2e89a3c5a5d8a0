"""Training the DeforHMR-style decoder with the project's trainer, on tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from hmr_ros.checkpoints.adapter_files import read_adapter_file
from hmr_ros.checkpoints.project_format import ModelCard, save_model_file
from hmr_ros.config import config_from_mapping, load_config
from hmr_ros.datasets.loader import LoaderConfig
from hmr_ros.datasets.sample import Sample, SMPLXParams, save_index
from hmr_ros.geometry.rotations import rot6d_to_rotmat, rotmat_to_axis_angle
from hmr_ros.models.whole_body import build_whole_body
from hmr_ros.training.config import DeformableDecoderTrainConfig
from hmr_ros.training.deformable_task import DeformableDecoderTask, initial_estimate
from hmr_ros.training.trainer import AdapterTrainer, KeyedCropDataset

REPO = Path(__file__).resolve().parents[2]
IMAGE_WH = (64, 80)
INTRINSICS = np.array(((70.0, 0.0, 31.5), (0.0, 70.0, 39.5), (0.0, 0.0, 1.0)))
TINY_DECODER = {'dim': 32, 'depth': 1, 'num_heads': 4, 'num_groups': 2, 'mlp_dim': 32}


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory, body_model_dir: Path) -> dict[str, Any]:
    """smplerx_tiny model file and 2 person samples labelled with its own SMPL-X prediction."""
    root = tmp_path_factory.mktemp('deforhmr_training')
    torch.manual_seed(5)
    whole_body = build_whole_body('smplerx_tiny').eval()
    save_model_file(
        root / 'smplerx_tiny.safetensors',
        whole_body.state_dict(),
        ModelCard(model='smplerx', variant='smplerx_tiny'),
    )
    rng = np.random.default_rng(8)
    samples = []
    for i in range(2):
        noise = rng.integers(0, 256, size=(IMAGE_WH[1], IMAGE_WH[0], 3), dtype=np.uint8)
        path = root / f'person_{i}.png'
        cv2.imwrite(str(path), cv2.GaussianBlur(noise, (5, 5), 2))
        hands = np.concatenate((rng.uniform(10, 50, size=(2, 21, 2)), np.ones((2, 21, 1))), -1)
        samples.append(
            Sample(
                dataset='synthetic',
                sample_id=f'body/{i}',
                image_size_wh=IMAGE_WH,
                image_path=str(path),
                intrinsics=INTRINSICS,
                person_box_xyxy=np.array((8.0, 6.0, 56.0, 74.0)),
                left_hand_keypoints_2d_px=hands[0],
                right_hand_keypoints_2d_px=hands[1],
            )
        )
    dataset = KeyedCropDataset(samples, LoaderConfig(mode='body', augmentation=None))
    batch = default_collate([dataset[(0, item)] for item in range(len(dataset))])
    with torch.no_grad():
        plain = whole_body(batch['image'])
    labelled = list(samples)
    for i in range(len(samples)):
        index = int(batch['sample_index'][i])
        labelled[index] = samples[index].replace(
            smplx=SMPLXParams(
                global_orient_aa=plain.global_orient[i].numpy(),
                body_pose_aa=plain.body_pose[i].reshape(21, 3).numpy(),
                left_hand_pose_aa=np.zeros((15, 3)),
                right_hand_pose_aa=np.zeros((15, 3)),
                jaw_pose_aa=np.zeros(3),
                betas=plain.betas[i].numpy(),
                expression=np.zeros(10),
                transl_m=np.array((0.0, 0.0, 3.0)),
                rest_pelvis_m=np.zeros(3),
            )
        )
    save_index(root / 'index.npz', labelled)
    return {'whole_body': root / 'smplerx_tiny.safetensors', 'index': root / 'index.npz',
            'body_model_dir': body_model_dir}  # fmt: skip


def _config(files: dict[str, Any], out: Path) -> DeformableDecoderTrainConfig:
    mapping = {
        'whole_body': str(files['whole_body']),
        'body_model_dir': str(files['body_model_dir']),
        'data': {'indexes': [str(files['index'])], 'augmentation': None, 'num_workers': 0},
        'output': {'dir': str(out), 'checkpoint_every': 0, 'log_every': 1, 'tensorboard': False},
        'decoder': TINY_DECODER,
        'loss': {'keypoints_2d': 0.0},
        'optimizer': {'lr': 3e-3, 'warmup_steps': 0, 'schedule': 'constant', 'weight_decay': 0.0},
        'run': {'steps': 15, 'batch_size': 2, 'device': 'cpu'},
    }
    return config_from_mapping(DeformableDecoderTrainConfig, mapping)


def test_decoder_trains_with_the_base_frozen_and_writes_its_file(
    files: dict[str, Any], tmp_path: Path
) -> None:
    """15 steps lower the loss; the whole-body model is bitwise unchanged; the decoder file
    records its sizes, the feature map's taken from the whole-body model."""
    trainer = AdapterTrainer(_config(files, tmp_path))
    assert isinstance(trainer.task, DeformableDecoderTask)
    whole_body = trainer.task.model.whole_body
    before = {k: v.clone() for k, v in whole_body.state_dict().items()}
    result = trainer.fit()
    losses = [record['total'] for record in result.records]
    assert losses[-1] < 0.7 * losses[0], losses
    for key, value in whole_body.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert result.adapter_file.name == 'deformable_decoder_smplerx_tiny.safetensors'
    saved = read_adapter_file(result.adapter_file)
    encoder = whole_body.config.encoder
    assert saved.config['context_dim'] == encoder.embed_dim
    assert (saved.config['feature_h'], saved.config['feature_w']) == tuple(encoder.grid_size)


def test_initial_estimate_is_the_identity_pose() -> None:
    pose_6d, betas, cam = initial_estimate()
    rotations = rot6d_to_rotmat(pose_6d, 'interleaved')
    assert torch.allclose(rotations, torch.eye(3).expand(22, 3, 3))
    assert torch.equal(rotmat_to_axis_angle(rotations), torch.zeros(22, 3))
    assert not betas.any() and not cam.any()


def test_shipped_config_loads_with_the_papers_optimiser() -> None:
    """DeforHMR, supplementary A: AdamW, lr 1e-4, weight decay 1e-3; D = 1024, 8 heads with
    4 groups and lambda_o = 2 is a Table 3 configuration; one IEF round (section 3.2.1)."""
    config = load_config(DeformableDecoderTrainConfig, REPO / 'config' / 'train_deforhmr.yaml')
    assert config.optimizer.lr == 1e-4 and config.optimizer.weight_decay == 1e-3
    decoder = config.decoder
    assert (decoder.dim, decoder.num_heads, decoder.num_groups) == (1024, 8, 4)
    assert decoder.offset_range == 2.0 and decoder.ief_iterations == 1
