"""Adapter training on tiny models and synthetic data written in the canonical format.

The ground truth of the overfitting tests is made by a "teacher": the same frozen base model
with an adapter whose zero-initialised output layers were randomised. Its predictions are
written into the samples as labels, so a perfect adapter exists and a working training loop must
move the (zero-initialised) student towards it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch.utils.data import default_collate

from hmr_ros.checkpoints.project_format import ModelCard, save_model_file
from hmr_ros.config import config_from_mapping
from hmr_ros.datasets.loader import LoaderConfig
from hmr_ros.datasets.sample import MANOParams, Sample, SMPLXParams, save_index
from hmr_ros.geometry.crops import apply_affine
from hmr_ros.geometry.rotations import mirror_axis_angle, rotmat_to_axis_angle
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.models.heads.smplx_head import HAND_MCP_JOINT_INDICES
from hmr_ros.models.whole_body import build_whole_body
from hmr_ros.training.config import BodyAdapterTrainConfig, DataConfig, HandAdapterTrainConfig
from hmr_ros.training.trainer import (
    ADAPTER_FILE_NAME,
    CHECKPOINTS_DIR,
    LOSSES_CSV,
    STATE_FILE_NAME,
    AdapterTrainer,
    BodyAdapterTask,
    HandAdapterTask,
    KeyedCropDataset,
    LossLog,
    autocast_dtype,
    body_mcp_points_hm,
    epoch_order,
    find_checkpoint,
    step_items,
    weighted_step_items,
)

IMAGE_WH = (64, 80)
INTRINSICS = np.array(((70.0, 0.0, 31.5), (0.0, 70.0, 39.5), (0.0, 0.0, 1.0)))


def _write_image(folder: Path, name: str, rng: np.random.Generator) -> str:
    width, height = IMAGE_WH
    noise = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path = folder / f'{name}.png'
    cv2.imwrite(str(path), cv2.GaussianBlur(noise, (5, 5), 2))
    return str(path)


def _smplx(rng: np.random.Generator, **values: Any) -> SMPLXParams:
    params: dict[str, Any] = {
        'global_orient_aa': rng.normal(size=3),
        'body_pose_aa': rng.normal(scale=0.5, size=(21, 3)),
        'left_hand_pose_aa': np.zeros((15, 3)),
        'right_hand_pose_aa': np.zeros((15, 3)),
        'jaw_pose_aa': np.zeros(3),
        'betas': np.zeros(10),
        'expression': np.zeros(10),
        'transl_m': np.array((0.0, 0.0, 3.0)),
        'rest_pelvis_m': np.zeros(3),
    }
    params.update(values)
    return SMPLXParams(**params)


def _batch_of(dataset: KeyedCropDataset) -> dict[str, torch.Tensor]:
    return default_collate([dataset[(0, item)] for item in range(len(dataset))])


# --- Hand adapter -------------------------------------------------------------------------------


def _hand_mapping(files: Mapping[str, Path], out: Path, **sections: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        'hand_expert': str(files['hand_expert']),
        'body_model_dir': str(files['body_model_dir']),
        'data': {'indexes': [str(files['index'])], 'augmentation': None, 'num_workers': 0},
        'output': {'dir': str(out), 'checkpoint_every': 0, 'log_every': 1, 'tensorboard': False},
        'optimizer': {'lr': 1e-2, 'warmup_steps': 0, 'schedule': 'constant', 'weight_decay': 0.0},
        'run': {'steps': 40, 'batch_size': 4, 'device': 'cpu', 'seed': 3},
    }
    for name, values in sections.items():
        mapping[name] = {**mapping[name], **values} if isinstance(values, dict) else values
    return mapping


@pytest.fixture(scope='module')
def hand_files(tmp_path_factory: pytest.TempPathFactory, body_model_dir: Path) -> dict[str, Path]:
    """hamer_tiny model file and 2 samples (4 hands, 2 of them left) labelled by a teacher."""
    root = tmp_path_factory.mktemp('hand_training')
    torch.manual_seed(11)
    save_model_file(
        root / 'hamer_tiny.safetensors',
        build_hand_expert('hamer_tiny').state_dict(),
        ModelCard(model='hamer', variant='hamer_tiny'),
    )
    rng = np.random.default_rng(5)
    samples = [
        Sample(
            dataset='synthetic',
            sample_id=f'hands/{i}',
            image_size_wh=IMAGE_WH,
            image_path=_write_image(root, f'hands_{i}', rng),
            intrinsics=INTRINSICS,
            left_hand_box_xyxy=np.array((8.0, 30.0, 24.0, 46.0)) + rng.uniform(-4, 4, 4),
            right_hand_box_xyxy=np.array((36.0, 20.0, 52.0, 38.0)) + rng.uniform(-4, 4, 4),
            smplx=_smplx(rng),
        )
        for i in range(2)
    ]
    files = {
        'hand_expert': root / 'hamer_tiny.safetensors',
        'body_model_dir': body_model_dir,
        'index': root / 'index.npz',
    }
    save_index(files['index'], samples)

    config = config_from_mapping(HandAdapterTrainConfig, _hand_mapping(files, root / 'teacher'))
    teacher = HandAdapterTask.from_config(config, torch.device('cpu'))
    with torch.no_grad():
        for branch in teacher.adapter.branches:
            branch.output_projection.weight.normal_(0.0, 0.3)
    batch = _batch_of(KeyedCropDataset(samples, LoaderConfig(mode='hand', augmentation=None)))
    with torch.no_grad():
        pred = teacher.predict(batch, None)
    pose_aa = rotmat_to_axis_angle(pred.pose_rotmat)
    keypoints_px = apply_affine((pred.keypoints_2d + 0.5) * 256.0, batch['crop_to_image'])
    labelled = list(samples)
    for i in range(len(pose_aa)):
        index, is_left = int(batch['sample_index'][i]), bool(batch['is_left'][i])
        # Items show right hands; a left hand's labels are mirrored back into the original image.
        aa = mirror_axis_angle(pose_aa[i]) if is_left else pose_aa[i]
        points = keypoints_px[i].clone()
        if is_left:
            points[:, 0] = IMAGE_WH[0] - 1 - points[:, 0]
        side = 'left' if is_left else 'right'
        labelled[index] = labelled[index].replace(
            **{
                f'{side}_mano': MANOParams(aa[0].numpy(), aa[1:].numpy(), pred.betas[i].numpy()),
                f'{side}_hand_keypoints_2d_px': torch.cat(
                    (points, torch.ones(21, 1)), dim=1
                ).numpy(),
            }
        )
    save_index(files['index'], labelled)
    return files


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same_state(before: Mapping[str, torch.Tensor], module: torch.nn.Module) -> None:
    after = module.state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f'base weights changed: {changed[:5]}'


def test_hand_adapter_overfits_and_leaves_base_weights_unchanged(
    hand_files: dict[str, Path], tmp_path: Path
) -> None:
    """40 steps on 4 hands (2 left) cut eq. 5 by more than 5x; every base weight is bitwise
    the same afterwards, and only adapter parameters were optimised."""
    config = config_from_mapping(HandAdapterTrainConfig, _hand_mapping(hand_files, tmp_path))
    trainer = AdapterTrainer(config)
    hand_expert = trainer.task.model.hand_expert  # type: ignore[attr-defined]
    base_before = _state(hand_expert)
    adapter_before = _state(trainer.task.adapter)
    optimised = {id(p) for g in trainer.optimizer.param_groups for p in g['params']}
    assert optimised == {id(p) for p in trainer.task.adapter.parameters()}
    assert not any(p.requires_grad for p in hand_expert.parameters())

    result = trainer.fit()

    losses = [record['total'] for record in result.records]
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert losses[-1] < 0.2 * losses[0], losses
    _assert_same_state(base_before, hand_expert)
    assert not hand_expert.training
    assert any(
        not torch.equal(adapter_before[k], v) for k, v in trainer.task.adapter.state_dict().items()
    )
    assert result.adapter_file.name == 'hand_adapter_hamer_tiny.safetensors'


def test_resume_reproduces_the_uninterrupted_run(
    hand_files: dict[str, Path], tmp_path: Path
) -> None:
    """A run interrupted after its step-3 checkpoint and resumed computes the same 6 losses and
    the same adapter as a run that was never interrupted (augmentation on, CPU fp32)."""
    sections: dict[str, Any] = {
        'run': {'steps': 6, 'batch_size': 3},
        'output': {'checkpoint_every': 3, 'keep_checkpoints': 0},
        'data': {
            'augmentation': {'rotation_probability': 1.0, 'max_rotation_deg': 20.0},
        },
        'optimizer': {'lr': 1e-2, 'warmup_steps': 2, 'schedule': 'cosine'},
    }
    full_dir, resumed_dir = tmp_path / 'full', tmp_path / 'resumed'
    full_config = config_from_mapping(
        HandAdapterTrainConfig, _hand_mapping(hand_files, full_dir, **sections)
    )
    full = AdapterTrainer(full_config).fit()

    # The interrupted run: its folder as it was after step 3 (step-6 checkpoint not yet written,
    # the CSV possibly ahead of the checkpoint).
    shutil.copytree(full_dir, resumed_dir)
    shutil.rmtree(resumed_dir / CHECKPOINTS_DIR / 'step_00000006')
    resumed_config = config_from_mapping(
        HandAdapterTrainConfig, _hand_mapping(hand_files, resumed_dir, **sections)
    )
    resumed = AdapterTrainer(resumed_config).fit(resume=resumed_dir)

    assert resumed.start_step == 3 and resumed.steps == 6
    full_losses = torch.tensor([r['total'] for r in full.records[3:]])
    resumed_losses = torch.tensor([r['total'] for r in resumed.records])
    assert torch.equal(resumed_losses, full_losses)
    for key in full.records[3]:
        assert [r[key] for r in full.records[3:]] == [r[key] for r in resumed.records]
    assert (resumed_dir / LOSSES_CSV).read_text() == (full_dir / LOSSES_CSV).read_text()
    with (
        safe_open(str(full.adapter_file), 'pt') as a,
        safe_open(str(resumed.adapter_file), 'pt') as b,
    ):
        assert set(a.keys()) == set(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())


def test_checkpoint_holds_only_adapter_state(hand_files: dict[str, Path], tmp_path: Path) -> None:
    """adapter.safetensors has exactly the adapter's keys; training_state.pt loads with
    weights_only=True and its tensors are AdamW moments of adapter parameters, step counters and
    RNG states: nothing of the base model's size."""
    config = config_from_mapping(
        HandAdapterTrainConfig,
        _hand_mapping(hand_files, tmp_path, run={'steps': 2}, output={'checkpoint_every': 1}),
    )
    trainer = AdapterTrainer(config)
    trainer.fit()
    folder = find_checkpoint(tmp_path)
    assert folder.name == 'step_00000002'
    assert sorted(p.name for p in folder.iterdir()) == [ADAPTER_FILE_NAME, STATE_FILE_NAME]
    adapter_state = trainer.task.adapter.state_dict()
    with safe_open(str(folder / ADAPTER_FILE_NAME), 'pt') as file:
        assert set(file.keys()) == set(adapter_state)
    state = torch.load(folder / STATE_FILE_NAME, weights_only=True)
    assert state['step'] == 2 and state['adapter'] == 'hand_adapter'
    adapter_shapes = sorted(tuple(v.shape) for v in adapter_state.values())
    for moments in state['optimizer']['state'].values():
        assert tuple(moments['exp_avg'].shape) in adapter_shapes
    optimiser_values = sum(
        t.numel()
        for moments in state['optimizer']['state'].values()
        for t in moments.values()
        if t.dim() > 0
    )
    adapter_values = sum(p.numel() for p in trainer.task.adapter.parameters())
    assert optimiser_values == 2 * adapter_values
    base_keys = set(trainer.task.model.hand_expert.state_dict())  # type: ignore[attr-defined]
    assert not base_keys & set(adapter_state)


def test_fresh_run_refuses_a_folder_with_checkpoints(
    hand_files: dict[str, Path], tmp_path: Path
) -> None:
    mapping = _hand_mapping(hand_files, tmp_path, run={'steps': 1})
    AdapterTrainer(config_from_mapping(HandAdapterTrainConfig, mapping)).fit()
    with pytest.raises(FileExistsError, match='--resume'):
        AdapterTrainer(config_from_mapping(HandAdapterTrainConfig, mapping)).fit()


def test_resume_rejects_a_checkpoint_of_another_run(
    hand_files: dict[str, Path], tmp_path: Path
) -> None:
    """Another seed means another data order: the resumed losses would not be the run's."""
    AdapterTrainer(
        config_from_mapping(
            HandAdapterTrainConfig, _hand_mapping(hand_files, tmp_path, run={'steps': 1})
        )
    ).fit()
    other = _hand_mapping(hand_files, tmp_path / 'other', run={'steps': 2, 'seed': 4})
    with pytest.raises(ValueError, match='seed'):
        AdapterTrainer(config_from_mapping(HandAdapterTrainConfig, other)).fit(resume=tmp_path)


# --- Data order ---------------------------------------------------------------------------------


def test_data_order_is_a_function_of_seed_and_step() -> None:
    """7 items, batch 3: steps stream through per-epoch permutations; every epoch shows every
    item once, batches may span epochs, and the same (seed, step) gives the same batch."""
    keys = [key for step in range(7) for key in step_items(step, 3, 7, seed=1)]
    assert len(keys) == 21
    for epoch in range(3):
        items = [item for e, item in keys if e == epoch]
        assert sorted(items) == list(range(7))
        assert items == epoch_order(7, 1, epoch).tolist()
    assert step_items(2, 3, 7, seed=1) == [(0, keys[6][1]), (1, keys[7][1]), (1, keys[8][1])]
    assert step_items(5, 3, 7, seed=1) == step_items(5, 3, 7, seed=1)
    assert epoch_order(7, 1, 0).tolist() != epoch_order(7, 2, 0).tolist()


def test_autocast_dtype() -> None:
    """Mixed precision only on CUDA: fp16 and bf16 as asked, fp32 on the CPU whatever asked."""
    cuda = torch.device('cuda')
    assert autocast_dtype('fp16', cuda) is torch.float16
    assert autocast_dtype('bf16', cuda) is torch.bfloat16
    assert autocast_dtype('fp32', cuda) is None
    assert autocast_dtype('fp16', torch.device('cpu')) is None
    assert autocast_dtype('auto', torch.device('cpu')) is None


# --- Body adapter -------------------------------------------------------------------------------


_TINY_BODY_ADAPTER = {
    'feature_dim': 16,
    'dim': 32,
    'depth': 2,
    'heads': 2,
    'dim_head': 16,
    'mlp_dim': 32,
    'regressor_dim': 32,
}


@pytest.fixture(scope='module')
def body_files(tmp_path_factory: pytest.TempPathFactory, body_model_dir: Path) -> dict[str, Any]:
    """smplerx_tiny model file and 2 person samples whose SMPL-X labels a teacher predicted."""
    root = tmp_path_factory.mktemp('body_training')
    torch.manual_seed(12)
    save_model_file(
        root / 'smplerx_tiny.safetensors',
        build_whole_body('smplerx_tiny').state_dict(),
        ModelCard(model='smplerx', variant='smplerx_tiny'),
    )
    rng = np.random.default_rng(6)
    samples = []
    for i in range(2):
        hands = np.concatenate((rng.uniform(10, 50, size=(2, 21, 2)), np.ones((2, 21, 1))), -1)
        hands[1, 0, 2] = 0.0  # right wrist absent
        if i == 1:
            hands[1, 9, 2] = 0.0  # right middle1 absent: that hand samples predicted MCPs
        samples.append(
            Sample(
                dataset='synthetic',
                sample_id=f'body/{i}',
                image_size_wh=IMAGE_WH,
                image_path=_write_image(root, f'body_{i}', rng),
                intrinsics=INTRINSICS,
                person_box_xyxy=np.array((8.0, 6.0, 56.0, 74.0)),
                left_hand_keypoints_2d_px=hands[0],
                right_hand_keypoints_2d_px=hands[1],
            )
        )
    files: dict[str, Any] = {
        'whole_body': root / 'smplerx_tiny.safetensors',
        'body_model_dir': body_model_dir,
        'index': root / 'index.npz',
    }
    save_index(files['index'], samples)

    config = config_from_mapping(BodyAdapterTrainConfig, _body_mapping(files, root / 'teacher'))
    teacher = BodyAdapterTask.from_config(config, torch.device('cpu'))
    with torch.no_grad():
        teacher.adapter.output_layer.weight.normal_(0.0, 0.3)
    batch = _batch_of(KeyedCropDataset(samples, LoaderConfig(mode='body', augmentation=None)))
    with torch.no_grad():
        pred = teacher.predict(batch, None)
        plain = teacher.model.whole_body(batch['image'])
    pose_aa = rotmat_to_axis_angle(pred.pose_rotmat).numpy()
    smplx = teacher.smplx
    labelled = list(samples)
    for i in range(len(pose_aa)):
        index = int(batch['sample_index'][i])
        labelled[index] = labelled[index].replace(
            smplx=_smplx(
                rng,
                global_orient_aa=pose_aa[i, 0],
                body_pose_aa=pose_aa[i, 1:],
                left_hand_pose_aa=smplx.add_hands_mean(plain.left_hand_pose[i], 'left')
                .reshape(15, 3)
                .numpy(),
                right_hand_pose_aa=smplx.add_hands_mean(plain.right_hand_pose[i], 'right')
                .reshape(15, 3)
                .numpy(),
                jaw_pose_aa=plain.jaw_pose[i].numpy(),
                betas=plain.betas[i].numpy(),
                expression=plain.expression[i].numpy(),
            )
        )
    save_index(files['index'], labelled)
    files['samples'] = labelled
    return files


def _body_mapping(files: Mapping[str, Any], out: Path, **sections: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        'whole_body': str(files['whole_body']),
        'body_model_dir': str(files['body_model_dir']),
        'data': {'indexes': [str(files['index'])], 'augmentation': None, 'num_workers': 0},
        'output': {'dir': str(out), 'checkpoint_every': 0, 'log_every': 1, 'tensorboard': False},
        'adapter': _TINY_BODY_ADAPTER,
        # The random 2D labels cannot be reached (L_img is a constant of the adapter training,
        # L_proj's hand rows are random points): this check trains on 3D joints and pose.
        'loss': {'keypoints_2d': 0.0},
        'optimizer': {'lr': 1e-2, 'warmup_steps': 0, 'schedule': 'constant', 'weight_decay': 0.0},
        'run': {'steps': 12, 'batch_size': 2, 'device': 'cpu'},
    }
    for name, values in sections.items():
        mapping[name] = {**mapping[name], **values}
    return mapping


def test_body_adapter_trains_and_leaves_base_weights_unchanged(
    body_files: dict[str, Any], tmp_path: Path
) -> None:
    """12 steps cut eqs. 7-8 by more than 2x; the whole-body model (BatchNorm statistics
    included) is bitwise unchanged and stays in eval mode."""
    config = config_from_mapping(BodyAdapterTrainConfig, _body_mapping(body_files, tmp_path))
    trainer = AdapterTrainer(config)
    whole_body = trainer.task.model.whole_body  # type: ignore[attr-defined]
    before = _state(whole_body)
    assert any('running_mean' in key for key in before)

    result = trainer.fit()

    losses = [record['total'] for record in result.records]
    assert losses[-1] < 0.5 * losses[0], losses
    _assert_same_state(before, whole_body)
    assert not any(module.training for module in whole_body.modules())
    assert result.adapter_file.name == 'body_adapter_smplerx_tiny.safetensors'


def test_body_adapter_samples_at_ground_truth_mcp_keypoints(
    body_files: dict[str, Any], tmp_path: Path
) -> None:
    """Hands with all four MCP keypoints (OpenPose rows 5, 9, 13, 17) sample there, mapped
    through the predicted hand boxes as SMPLer-X's training targets (u = (x - x1) 16 /
    (x2 - x1), the left hand at 15 - u in its mirrored map; checked against SMPLer-X's code
    and a RoIAlign construction in test/models/test_hand_feature_points.py); a hand missing
    one uses the predicted MCP joints."""
    config = config_from_mapping(BodyAdapterTrainConfig, _body_mapping(body_files, tmp_path))
    task = BodyAdapterTask.from_config(config, torch.device('cpu'))
    batch = _batch_of(KeyedCropDataset(body_files['samples'], LoaderConfig(mode='body')))
    with torch.no_grad():
        stages = task.model.whole_body.run_stages(batch['image'])
    points, used_gt = body_mcp_points_hm(task.model, stages, batch['hand_keypoints_2d'])
    order = batch['sample_index'].tolist()
    assert used_gt[order.index(0)].tolist() == [True, True]
    assert used_gt[order.index(1)].tolist() == [True, False]

    boxes = task.model.hand_boxes_crop_px(stages)
    mcp = batch['hand_keypoints_2d'][:, :, [5, 9, 13, 17], :2]
    for item in range(2):
        for side in range(2):
            if not used_gt[item, side]:
                continue
            x1, y1, x2, y2 = boxes[item, side].tolist()
            u = (mcp[item, side, :, 0] - x1) * 16 / (x2 - x1)
            v = (mcp[item, side, :, 1] - y1) * 16 / (y2 - y1)
            if side == 0:
                u = 15 - u
            torch.testing.assert_close(points[item, side], torch.stack((u, v), -1))
    item = order.index(1)
    predicted = stages.hands.joints_hm[item, 1][list(HAND_MCP_JOINT_INDICES), :2]
    torch.testing.assert_close(points[item, 1], predicted)


# --- Loss curves --------------------------------------------------------------------------------


def test_loss_log_writes_csv_and_tensorboard_when_installed(tmp_path: Path) -> None:
    pytest.importorskip('tensorboard')
    log = LossLog(tmp_path, ['total', 'lr'], resume_step=0, tensorboard=True)
    log.write(1, {'total': 0.5, 'lr': 1e-3})
    log.close()
    assert (tmp_path / LOSSES_CSV).read_text().splitlines() == ['step,total,lr', '1,0.5,0.001']
    assert any((tmp_path / 'tensorboard').glob('events.out.tfevents.*'))


def test_loss_log_without_tensorboard_keeps_the_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TensorBoard is optional: without it (import fails) only the CSV is written; on resume
    the rows after the checkpoint's step are dropped."""
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    log = LossLog(tmp_path, ['total'], resume_step=0, tensorboard=True)
    for step in (1, 2, 3):
        log.write(step, {'total': float(step)})
    log.close()
    assert log.writer is None and not (tmp_path / 'tensorboard').exists()
    LossLog(tmp_path, ['total'], resume_step=2, tensorboard=True).close()
    assert (tmp_path / LOSSES_CSV).read_text().splitlines() == ['step,total', '1,1.0', '2,2.0']


def test_weighted_mixing_draws_by_weight_and_repeats_per_step() -> None:
    """data.weights: slots pick data set d with probability w_d / sum(w), a function of step."""
    groups = [list(range(0, 10)), list(range(10, 13)), list(range(13, 20))]
    weights = [3.0, 1.0, 0.0]
    drawn = [
        item for step in range(400) for _, item in weighted_step_items(step, 8, groups, weights, 5)
    ]
    first = sum(item < 10 for item in drawn) / len(drawn)
    assert abs(first - 0.75) < 0.03  # 3200 draws: 3 sigma is about 0.023
    assert not any(item >= 13 for item in drawn)  # weight 0: never drawn
    assert {item for item in drawn if item >= 10} == {10, 11, 12}  # small sets repeat
    assert weighted_step_items(17, 8, groups, weights, 5) == weighted_step_items(
        17, 8, groups, weights, 5
    )
    assert weighted_step_items(17, 8, groups, weights, 5) != weighted_step_items(
        18, 8, groups, weights, 5
    )
    with pytest.raises(ValueError, match='no weight'):
        weighted_step_items(0, 4, [[], [1]], [1.0, 0.0], 0)


def test_data_weights_are_checked() -> None:
    assert DataConfig(indexes=('a.npz', 'b.npz'), weights=(2.0, 1.0)).weights == (2.0, 1.0)
    for bad in ((1.0,), (1.0, -1.0), (0.0, 0.0)):
        with pytest.raises(ValueError, match='data.weights'):
            DataConfig(indexes=('a.npz', 'b.npz'), weights=bad)


# --- Guidance matters ---------------------------------------------------------------------------


class _ShuffledGuidanceTask(HandAdapterTask):
    """The hand task with each item's body pose swapped for another item's, anew every step,
    so the guidance carries no information about which hand is which."""

    def predict(self, batch: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> Any:
        order = torch.randperm(batch['image'].shape[0])
        shuffled = dict(batch)
        for key in ('smplx_global_orient_aa', 'smplx_body_pose_aa'):
            shuffled[key] = batch[key][order]
        return super().predict(shuffled, dtype)


@pytest.fixture(scope='module')
def guided_files(
    tmp_path_factory: pytest.TempPathFactory, body_model_dir: Path
) -> dict[str, Path]:
    """4 persons in the same picture at the same place, told apart only by their body pose.

    The teacher's labels differ between them only through the guidance, so an adapter can fit
    them only by reading the body pose.
    """
    root = tmp_path_factory.mktemp('guided_training')
    torch.manual_seed(12)
    save_model_file(
        root / 'hamer_tiny.safetensors',
        build_hand_expert('hamer_tiny').state_dict(),
        ModelCard(model='hamer', variant='hamer_tiny'),
    )
    rng = np.random.default_rng(8)
    image = _write_image(root, 'shared', rng)
    samples = [
        Sample(
            dataset='synthetic',
            sample_id=f'person/{i}',
            image_size_wh=IMAGE_WH,
            image_path=image,
            intrinsics=INTRINSICS,
            right_hand_box_xyxy=np.array((30.0, 24.0, 50.0, 44.0)),
            smplx=_smplx(rng, body_pose_aa=rng.normal(scale=1.0, size=(21, 3))),
        )
        for i in range(4)
    ]
    files = {
        'hand_expert': root / 'hamer_tiny.safetensors',
        'body_model_dir': body_model_dir,
        'index': root / 'index.npz',
    }
    config = config_from_mapping(HandAdapterTrainConfig, _hand_mapping(files, root / 'teacher'))
    teacher = HandAdapterTask.from_config(config, torch.device('cpu'))
    with torch.no_grad():
        for branch in teacher.adapter.branches:
            branch.output_projection.weight.normal_(0.0, 0.5)
    batch = _batch_of(KeyedCropDataset(samples, LoaderConfig(mode='hand', augmentation=None)))
    with torch.no_grad():
        pred = teacher.predict(batch, None)
    pose_aa = rotmat_to_axis_angle(pred.pose_rotmat)
    keypoints_px = apply_affine((pred.keypoints_2d + 0.5) * 256.0, batch['crop_to_image'])
    labelled = [
        sample.replace(
            right_mano=MANOParams(
                pose_aa[i, 0].numpy(), pose_aa[i, 1:].numpy(), pred.betas[i].numpy()
            ),
            right_hand_keypoints_2d_px=torch.cat((keypoints_px[i], torch.ones(21, 1)), 1).numpy(),
        )
        for i, sample in enumerate(samples)
    ]
    spread = (pose_aa - pose_aa.mean(dim=0)).abs().mean()
    assert spread > 1e-2, 'the teacher must label the persons differently'
    save_index(files['index'], labelled)
    return files


def test_hand_adapter_needs_the_right_guidance(
    guided_files: dict[str, Path], tmp_path: Path
) -> None:
    """Same crop, four body poses, four labels: with each hand's own body pose the adapter fits
    (eq. 5 falls below a fifth); with the body poses shuffled across hands every step it cannot,
    and the loss stays more than 2.5 times higher (3.4 times on CPU with these seeds)."""

    def train(task_type: type[HandAdapterTask], out: Path) -> list[float]:
        config = config_from_mapping(
            HandAdapterTrainConfig,
            _hand_mapping(guided_files, out, run={'steps': 60, 'batch_size': 4}),
        )
        trainer = AdapterTrainer(
            config,
            task_factory=lambda c, device: task_type.from_config(c, device),  # type: ignore[arg-type]
        )
        return [record['total'] for record in trainer.fit().records]

    guided = train(HandAdapterTask, tmp_path / 'guided')
    shuffled = train(_ShuffledGuidanceTask, tmp_path / 'shuffled')
    tail = 10
    guided_final = float(np.mean(guided[-tail:]))
    shuffled_final = float(np.mean(shuffled[-tail:]))
    assert guided_final < 0.2 * guided[0], guided
    assert shuffled_final > 2.5 * guided_final, (guided_final, shuffled_final)
