"""``hmr-ros train`` run in-process on stand-in assets and a tiny synthetic data set."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import get_args

import cv2
import numpy as np
import pytest
import torch
import yaml

from hmr_ros.cli.main import main
from hmr_ros.config import load_config
from hmr_ros.datasets.sample import MANOParams, Sample, SMPLXParams, save_index
from hmr_ros.models.dual_path_builder import load_body_adapter, load_hand_adapter, load_hand_expert
from hmr_ros.training.body_variants import BODY_VARIANT_TASKS
from hmr_ros.training.config import (
    BodyAdapterTrainConfig,
    BodyVariant,
    DeformableDecoderTrainConfig,
    HandAdapterTrainConfig,
    HandVariant,
)
from hmr_ros.training.hand_variants import HAND_VARIANT_TASKS

REPO = Path(__file__).resolve().parents[2]
IMAGE_WH = (64, 80)


@pytest.fixture(scope='module')
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp('assets')
    assert main(['make-test-assets', str(folder), '--variants', 'hamer_tiny', 'smplerx_tiny']) == 0
    return folder


@pytest.fixture(scope='module')
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two persons with SMPL-X, right-hand MANO labels, hand keypoints and boxes."""
    folder = tmp_path_factory.mktemp('data')
    rng = np.random.default_rng(0)
    samples = []
    for i in range(2):
        path = folder / f'{i}.png'
        pixels = rng.integers(0, 256, size=(IMAGE_WH[1], IMAGE_WH[0], 3), dtype=np.uint8)
        cv2.imwrite(str(path), pixels)
        keypoints = np.concatenate((rng.uniform(30, 50, (21, 2)), np.ones((21, 1))), axis=1)
        samples.append(
            Sample(
                dataset='synthetic',
                sample_id=str(i),
                image_size_wh=IMAGE_WH,
                image_path=str(path),
                person_box_xyxy=np.array((8.0, 6.0, 56.0, 74.0)),
                right_hand_box_xyxy=np.array((30.0, 30.0, 50.0, 50.0)),
                right_hand_keypoints_2d_px=keypoints,
                right_mano=MANOParams(
                    rng.normal(size=3), rng.normal(scale=0.3, size=(15, 3)), np.zeros(10)
                ),
                smplx=SMPLXParams(
                    global_orient_aa=rng.normal(size=3),
                    body_pose_aa=rng.normal(scale=0.3, size=(21, 3)),
                    left_hand_pose_aa=np.zeros((15, 3)),
                    right_hand_pose_aa=np.zeros((15, 3)),
                    jaw_pose_aa=np.zeros(3),
                    betas=np.zeros(10),
                    expression=np.zeros(10),
                    transl_m=np.array((0.0, 0.0, 3.0)),
                    rest_pelvis_m=np.zeros(3),
                ),
            )
        )
    return save_index(folder / 'index.npz', samples)


def _write_config(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def _common(index: Path, out: Path) -> dict:
    return {
        'data': {'indexes': [str(index)], 'augmentation': None, 'num_workers': 0},
        'output': {'dir': str(out), 'checkpoint_every': 1, 'log_every': 1},
        'optimizer': {'lr': 1e-3, 'warmup_steps': 0},
        'run': {'steps': 2, 'batch_size': 2, 'device': 'cpu'},
    }


def test_train_hand_adapter_then_resume(
    assets: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'run'
    config = _write_config(
        tmp_path / 'hand.yaml',
        {
            'hand_expert': str(assets / 'hamer_tiny.safetensors'),
            'body_model_dir': str(assets),
            **_common(index, out),
        },
    )
    assert main(['train', 'hand-adapter', str(config)]) == 0
    printed = capsys.readouterr().out
    adapter_file = out / 'hand_adapter_hamer_tiny.safetensors'
    assert f'adapter file: {adapter_file}' in printed and 'steps 0 -> 2' in printed
    with (out / 'losses.csv').open() as file:
        rows = list(csv.DictReader(file))
    assert [row['step'] for row in rows] == ['1', '2']
    assert {'total', 'keypoints_2d', 'keypoints_3d', 'vertices', 'pose', 'betas', 'lr'} <= set(
        rows[0]
    )
    assert (out / 'config.yaml').is_file()
    assert sorted(p.name for p in (out / 'checkpoints').iterdir()) == [
        'step_00000001',
        'step_00000002',
    ]

    # The dual path loads the exported adapter file for its hand expert.
    hand_expert, info = load_hand_expert(assets / 'hamer_tiny.safetensors')
    adapter, _ = load_hand_adapter(adapter_file, hand_expert, info.variant)
    assert sum(p.numel() for p in adapter.parameters()) > 0

    # Resume for one more step with --set; the new rows follow the old ones.
    assert (
        main(['train', 'hand-adapter', str(config), '--resume', str(out), '--set', 'run.steps=3'])
        == 0
    )
    assert 'steps 2 -> 3' in capsys.readouterr().out
    with (out / 'losses.csv').open() as file:
        assert [row['step'] for row in csv.DictReader(file)] == ['1', '2', '3']


def test_train_body_adapter(
    assets: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'run'
    values = {
        'whole_body': str(assets / 'smplerx_tiny.safetensors'),
        'body_model_dir': str(assets),
        'adapter': {'feature_dim': 16, 'dim': 32, 'depth': 1, 'heads': 2, 'dim_head': 16},
        **_common(index, out),
    }
    values['run']['steps'] = 1
    config = _write_config(tmp_path / 'body.yaml', values)
    assert main(['train', 'body-adapter', str(config)]) == 0
    adapter_file = out / 'body_adapter_smplerx_tiny.safetensors'
    assert f'adapter file: {adapter_file}' in capsys.readouterr().out
    adapter, info = load_body_adapter(adapter_file, 'smplerx_tiny')
    assert adapter.config.in_channels == 32 and info.variant == 'smplerx_tiny'


def test_config_errors_exit_with_usage_and_list_valid_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(
        tmp_path / 'bad.yaml',
        {
            'hand_expert': 'x',
            'body_model_dir': 'y',
            'data': {'indexes': ['z.npz']},
            'output': {'dir': 'o'},
            'optimiser': {'lr': 1.0},
        },
    )
    assert main(['train', 'hand-adapter', str(config)]) == 2
    error = capsys.readouterr().err
    assert "unknown key 'optimiser'" in error and 'optimizer' in error
    assert main(['train', 'body-adapter', str(tmp_path / 'missing.yaml')]) == 2


def test_missing_data_is_reported(
    assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(
        tmp_path / 'hand.yaml',
        {
            'hand_expert': str(assets / 'hamer_tiny.safetensors'),
            'body_model_dir': str(assets),
            **_common(tmp_path / 'no_index.npz', tmp_path / 'run'),
        },
    )
    assert main(['train', 'hand-adapter', str(config)]) == 1
    assert 'convert the data set first' in capsys.readouterr().err


@pytest.mark.parametrize(
    ('name', 'config_type'),
    [
        ('train_hand_adapter.yaml', HandAdapterTrainConfig),
        ('train_body_adapter.yaml', BodyAdapterTrainConfig),
    ],
)
def test_shipped_configs_load(name: str, config_type: type) -> None:
    """The example configs in config/ hold only valid keys and values."""
    config = load_config(config_type, REPO / 'config' / name)
    assert config.run.steps == 10_000 and config.run.batch_size == 128
    assert torch.device(config.run.device if config.run.device != 'auto' else 'cpu')
    assert len(config.data.weights) == len(config.data.indexes)


def test_paper_stage_configs_mix_the_papers_data_sets() -> None:
    """Section 4.1: both adapters on Human3.6M, RICH and BEDLAM; the hand adapter also on
    FreiHAND and InterHand2.6M."""
    hand = load_config(HandAdapterTrainConfig, REPO / 'config' / 'train_hand_adapter.yaml')
    body = load_config(BodyAdapterTrainConfig, REPO / 'config' / 'train_body_adapter.yaml')
    names = {Path(p).parent.name for p in hand.data.indexes}
    assert names == {'human36m', 'rich', 'bedlam', 'freihand', 'interhand'}
    assert {Path(p).parent.name for p in body.data.indexes} == {'human36m', 'rich', 'bedlam'}


def test_every_shipped_training_config_loads_and_every_variant_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every config/train_*.yaml is valid; an ablation variant's config names itself; every
    variant of the paper's Tables 3-6 has a task that trains it, and an unknown name is refused
    with a clear error instead of training something else."""
    ablations = 0
    for path in sorted((REPO / 'config').glob('train_*.yaml')):
        first = path.read_text().splitlines()[0]
        if 'deforhmr-decoder' in first:  # config/train_deforhmr.yaml: the DeforHMR decoder
            load_config(DeformableDecoderTrainConfig, path)
            continue
        config_type = HandAdapterTrainConfig if 'hand-adapter' in first else BodyAdapterTrainConfig
        config = load_config(config_type, path)
        if path.name.startswith('train_ablation_'):
            ablations += 1
            assert config.variant == path.stem.removeprefix('train_ablation_')
            if isinstance(config, BodyAdapterTrainConfig):
                assert config.variant in BODY_VARIANT_TASKS, path.name
    assert ablations == 15
    # Every variant the configs may name trains: the hand ones here are run by
    # test_shipped_hand_ablation_configs_train, the body ones by test/training/test_body_variants.
    assert set(get_args(HandVariant)) - {'hmr_adapter'} == set(HAND_VARIANT_TASKS)
    assert set(get_args(BodyVariant)) - {'hmr_adapter'} == set(BODY_VARIANT_TASKS)
    # A name outside the lists is refused when the config loads, before anything is built.
    path = REPO / 'config' / 'train_ablation_hand_weighted_sum.yaml'
    override = ['--set', f'output.dir={tmp_path}', '--set', 'variant=hand_moderator']
    assert main(['train', 'hand-adapter', str(path), *override]) == 2  # a config error
    assert 'hand_moderator' in (capsys.readouterr().err)


HAND_ABLATIONS = sorted(HAND_VARIANT_TASKS)


@pytest.mark.parametrize('variant', HAND_ABLATIONS)
def test_shipped_hand_ablation_configs_train(
    assets: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: str
) -> None:
    """config/train_ablation_<variant>.yaml as shipped, paths and sizes overridden to the
    stand-ins: it trains and writes the file its table row evaluates."""
    out = tmp_path / 'run'
    path = REPO / 'config' / f'train_ablation_{variant}.yaml'
    overrides = {
        'hand_expert': assets / 'hamer_tiny.safetensors',
        'body_model_dir': assets,
        'data.indexes': f'[{index}]',
        'data.weights': '[]',
        'data.num_workers': 0,
        'data.augmentation': 'null',
        'output.dir': out,
        'run.steps': 1,
        'run.batch_size': 1,
        'run.device': 'cpu',
        'optimizer.warmup_steps': 0,
    }
    sets = [item for key, value in overrides.items() for item in ('--set', f'{key}={value}')]
    assert main(['train', 'hand-adapter', str(path), *sets]) == 0
    printed = capsys.readouterr().out
    written = next(line for line in printed.splitlines() if 'file: ' in line)
    final = Path(written.split('file: ')[1].strip())
    assert final.is_file() and final.parent == out
    if variant.startswith(('hamer_full', 'hamer_from', 'hamer_decoder')):
        assert load_hand_expert(final)[1].variant == 'hamer_tiny'
        assert written.startswith('hamer model file: ')
    else:
        assert written.startswith('adapter file: ')
        expert, info = load_hand_expert(assets / 'hamer_tiny.safetensors')
        load_hand_adapter(final, expert, info.variant)
