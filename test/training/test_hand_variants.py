"""Training the hand ablation variants (training/hand_variants.py) on hamer_tiny and synthetic
hand crops: exactly the intended parameters train, checkpoints resume, final files load."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np
import pytest
import torch

from hmr_ros.checkpoints.adapter_files import read_adapter_file
from hmr_ros.checkpoints.project_format import ModelCard, load_model_file, save_model_file
from hmr_ros.config import config_from_mapping
from hmr_ros.datasets.sample import Sample, SMPLXParams, save_index
from hmr_ros.models.ablations.hand import BodyFeatureInjection
from hmr_ros.models.adapters.hand_adapter import HandAdapter
from hmr_ros.models.dual_path_builder import load_hand_adapter, load_hand_expert
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.training.config import HandAdapterTrainConfig, HandVariant
from hmr_ros.training.hand_variants import HAND_VARIANT_TASKS
from hmr_ros.training.trainer import AdapterTrainer

IMAGE_WH = (64, 80)
INTRINSICS = np.array(((70.0, 0.0, 31.5), (0.0, 70.0, 39.5), (0.0, 0.0, 1.0)))

WEIGHT_ONLY = ('hamer_full_finetune', 'hamer_from_scratch', 'hamer_decoder_finetune')


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory, body_model_dir: Path) -> dict[str, Path]:
    """hamer_tiny model file and 2 persons (both hands boxed, SMPL-X body pose)."""
    root = tmp_path_factory.mktemp('hand_variants')
    torch.manual_seed(3)
    save_model_file(
        root / 'hamer_tiny.safetensors',
        build_hand_expert('hamer_tiny').state_dict(),
        ModelCard(model='hamer', variant='hamer_tiny'),
    )
    rng = np.random.default_rng(8)
    samples = []
    for i in range(2):
        path = root / f'{i}.png'
        noise = rng.integers(0, 256, size=(IMAGE_WH[1], IMAGE_WH[0], 3), dtype=np.uint8)
        cv2.imwrite(str(path), cv2.GaussianBlur(noise, (5, 5), 2))
        samples.append(
            Sample(
                dataset='synthetic',
                sample_id=str(i),
                image_size_wh=IMAGE_WH,
                image_path=str(path),
                intrinsics=INTRINSICS,
                left_hand_box_xyxy=np.array((8.0, 30.0, 24.0, 46.0)),
                right_hand_box_xyxy=np.array((36.0, 20.0, 52.0, 38.0)),
                smplx=SMPLXParams(
                    global_orient_aa=rng.normal(size=3),
                    body_pose_aa=rng.normal(scale=0.5, size=(21, 3)),
                    left_hand_pose_aa=rng.normal(scale=0.3, size=(15, 3)),
                    right_hand_pose_aa=rng.normal(scale=0.3, size=(15, 3)),
                    jaw_pose_aa=np.zeros(3),
                    betas=np.zeros(10),
                    expression=np.zeros(10),
                    transl_m=np.array((0.0, 0.0, 3.0)),
                    rest_pelvis_m=np.zeros(3),
                ),
            )
        )
    save_index(root / 'index.npz', samples)
    return {
        'hand_expert': root / 'hamer_tiny.safetensors',
        'body_model_dir': body_model_dir,
        'index': root / 'index.npz',
    }


def _config(files: dict[str, Path], out: Path, variant: str, **run: Any) -> HandAdapterTrainConfig:
    return config_from_mapping(
        HandAdapterTrainConfig,
        {
            'hand_expert': str(files['hand_expert']),
            'body_model_dir': str(files['body_model_dir']),
            'variant': variant,
            'data': {'indexes': [str(files['index'])], 'augmentation': None, 'num_workers': 0},
            'output': {
                'dir': str(out),
                'checkpoint_every': 1,
                'log_every': 1,
                'tensorboard': False,
                'progress_bar': False,
            },
            'optimizer': {'lr': 1e-3, 'warmup_steps': 0, 'schedule': 'constant'},
            'run': {'steps': 3, 'batch_size': 2, 'device': 'cpu', 'seed': 1, **run},
        },
    )


def _base_state(files: dict[str, Path]) -> dict[str, torch.Tensor]:
    state, _ = load_model_file(files['hand_expert'])
    return state


@pytest.mark.parametrize('variant', sorted(HAND_VARIANT_TASKS))
def test_exactly_the_variants_parameters_train(
    files: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    """After 3 AdamW steps the frozen weights are bitwise the base file's, and the trained
    module is the variant's: the whole expert, its head, an adapter or a decoder copy."""
    trainer = AdapterTrainer(_config(files, tmp_path / 'run', variant))
    task = trainer.task
    trained = {id(p) for p in task.adapter.parameters()}
    assert trained == {id(p) for p in task.model.parameters() if p.requires_grad}
    expert = task.model.hand_expert
    by_name = dict(expert.named_parameters())
    expected = {
        'hamer_full_finetune': set(by_name),
        'hamer_from_scratch': set(by_name),
        'hamer_decoder_finetune': {k for k in by_name if k.startswith('mano_head.')},
    }.get(variant, set())
    assert {k for k, p in by_name.items() if id(p) in trained} == expected
    start = {k: v.clone() for k, v in task.adapter.state_dict().items()}
    result = trainer.fit()
    base = _base_state(files)
    for key, value in expert.state_dict().items():
        if key not in expected and variant != 'hamer_from_scratch':
            assert torch.equal(value, base[key]), key
    changed = [k for k, v in task.adapter.state_dict().items() if not torch.equal(v, start[k])]
    assert changed, 'nothing trained'
    if variant in WEIGHT_ONLY:
        # A normal hand-expert model file of the base variant: load_hand_expert reads it.
        assert result.adapter_file.name == f'{variant}_hamer_tiny.safetensors'
        loaded, info = load_hand_expert(result.adapter_file)
        assert info.model == 'hamer' and info.variant == 'hamer_tiny'
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, expert.state_dict()[key]), key
    else:
        loaded_expert, info = load_hand_expert(files['hand_expert'])
        adapter, adapter_info = load_hand_adapter(result.adapter_file, loaded_expert, 'hamer_tiny')
        kind = (
            BodyFeatureInjection if 'concatenation' in variant or 'sum' in variant else HandAdapter
        )
        assert isinstance(adapter, kind)
        assert adapter_info.model == read_adapter_file(result.adapter_file).card.model
        for key, value in adapter.state_dict().items():
            assert torch.equal(value, task.adapter.state_dict()[key]), key


def test_from_scratch_starts_away_from_the_checkpoint(files: dict[str, Path], tmp_path: Path):
    """No.2: every weight is freshly initialised (seeded by run.seed), mean parameters kept."""
    task = AdapterTrainer(_config(files, tmp_path / 'a', 'hamer_from_scratch')).task
    again = AdapterTrainer(_config(files, tmp_path / 'b', 'hamer_from_scratch')).task
    base = _base_state(files)
    state = task.model.hand_expert.state_dict()
    buffers = {name for name, _ in task.model.hand_expert.named_buffers()}
    for key, value in state.items():
        if key in buffers:
            assert torch.equal(value, base[key]), key
        elif value.numel() > 1 and value.std() > 0:
            assert not torch.equal(value, base[key]), key
    other = again.model.hand_expert.state_dict()
    assert all(torch.equal(other[k], v) for k, v in state.items())


def test_weight_only_variant_resumes_exactly(files: dict[str, Path], tmp_path: Path) -> None:
    """3 steps straight equal 2 steps, a restart, and 1 step from the checkpoint."""
    straight = AdapterTrainer(_config(files, tmp_path / 'straight', 'hamer_decoder_finetune'))
    straight.fit()
    first = AdapterTrainer(_config(files, tmp_path / 'split', 'hamer_decoder_finetune', steps=2))
    first.fit()
    resumed = AdapterTrainer(_config(files, tmp_path / 'split', 'hamer_decoder_finetune'))
    result = resumed.fit(resume=tmp_path / 'split')
    assert result.start_step == 2 and result.steps == 3
    a = straight.task.model.hand_expert.state_dict()
    b = resumed.task.model.hand_expert.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adapter_variants_reject_a_conflicting_guidance(files: dict[str, Path], tmp_path: Path):
    mapping = _config(files, tmp_path, 'hand_whole_body_pose')
    from dataclasses import replace

    from hmr_ros.models.adapters.hand_adapter import HandAdapterConfig

    bad = replace(mapping, adapter=HandAdapterConfig(guidance='image_features'))
    with pytest.raises(ValueError, match='sets adapter.guidance'):
        AdapterTrainer(bad)


def test_every_hand_variant_has_a_task() -> None:
    """No hand variant falls through to the plain adapter task: each named in HandVariant
    has its own factory."""
    hand = set(get_args(HandVariant)) - {'hmr_adapter'}
    assert set(HAND_VARIANT_TASKS) == hand


def test_trainer_refuses_an_unknown_variant(files: dict[str, Path], tmp_path: Path) -> None:
    """A config built in code (no YAML validation) naming no known variant is refused by the
    trainer with the known names, instead of training the plain adapter."""
    config = dataclasses.replace(_config(files, tmp_path, 'hmr_adapter'), variant='hand_moderator')
    with pytest.raises(ValueError, match="unknown variant 'hand_moderator'; known: hmr_adapter, "):
        AdapterTrainer(config)
