"""The whole-body ablation variants of Tables 4 and 6: what trains, what is written, what runs.

Tiny SMPLer-X stand-in (``make-test-assets``), synthetic persons written in the canonical
format; the full-size facts (trainable counts) are checked on the meta device.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from hmr_ros.checkpoints.adapter_files import read_adapter_file, save_adapter_file
from hmr_ros.cli.main import main
from hmr_ros.datasets.sample import Sample, SMPLXParams, save_index
from hmr_ros.models.ablations.body import (
    HEAD_MODULE_NAMES,
    MODULE_VARIANTS,
    WEIGHT_ONLY_VARIANTS,
    BodyVariantWholeBody,
    FineTunedWholeBody,
    MCPConcatenation,
    MCPModerator,
    TaskTokenBodyAdapter,
    WholeBodyParts,
    build_variant_module,
    load_body_variant,
    mcp_joint_features,
)
from hmr_ros.models.adapters.body_adapter import BodyAdapterConfig
from hmr_ros.models.adapters.hand_adapter import HandAdapter
from hmr_ros.models.dual_path_builder import load_hand_expert, load_whole_body
from hmr_ros.models.heads.smplx_head import BODY_POSITION_JOINT_NAMES
from hmr_ros.models.whole_body import BODY_POSE_TOKENS, WholeBodyModel, build_whole_body
from hmr_ros.training.body_variants import BODY_VARIANT_TASKS
from hmr_ros.training.config import (
    BodyAdapterTrainConfig,
    DataConfig,
    OptimizerConfig,
    OutputConfig,
    RunConfig,
)
from hmr_ros.training.trainer import AdapterTrainer

REPO = Path(__file__).resolve().parents[2]
IMAGE_WH = (64, 80)
TINY_ADAPTER = BodyAdapterConfig(feature_dim=16, dim=32, depth=1, heads=2, dim_head=16)
WEIGHT_ONLY = ('smplerx_full_finetune', 'smplerx_from_scratch', 'smplerx_head_finetune')
ADDED_MODULES = (
    'smplerx_concatenation',
    'body_concatenation',
    'body_weighted_sum',
    'smplerx_adapter_task_tokens',
)


@pytest.fixture(scope='module')
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp('assets')
    assert main(['make-test-assets', str(folder), '--variants', 'hamer_tiny', 'smplerx_tiny']) == 0
    return folder


def _smplx(rng: np.random.Generator) -> SMPLXParams:
    return SMPLXParams(
        global_orient_aa=np.array((np.pi, 0.0, 0.0)) + rng.normal(scale=0.1, size=3),
        body_pose_aa=rng.normal(scale=0.3, size=(21, 3)),
        left_hand_pose_aa=np.zeros((15, 3)),
        right_hand_pose_aa=np.zeros((15, 3)),
        jaw_pose_aa=np.zeros(3),
        betas=np.zeros(10),
        expression=np.zeros(10),
        transl_m=np.array((0.0, 0.2, 4.0)),
        rest_pelvis_m=np.zeros(3),
    )


@pytest.fixture(scope='module')
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two persons with SMPL-X labels, a box, the camera and both hands' 2D keypoints."""
    folder = tmp_path_factory.mktemp('persons')
    rng = np.random.default_rng(3)
    samples = []
    for i in range(2):
        path = folder / f'{i}.png'
        pixels = rng.integers(0, 256, size=(IMAGE_WH[1], IMAGE_WH[0], 3), dtype=np.uint8)
        cv2.imwrite(str(path), cv2.GaussianBlur(pixels, (5, 5), 2))
        hands = {
            f'{side}_hand_keypoints_2d_px': np.concatenate(
                (rng.uniform(lo, lo + 12, (21, 2)), np.ones((21, 1))), axis=1
            )
            for side, lo in (('left', 34.0), ('right', 14.0))
        }
        samples.append(
            Sample(
                dataset='synthetic',
                sample_id=str(i),
                image_size_wh=IMAGE_WH,
                image_path=str(path),
                intrinsics=np.array(((90.0, 0.0, 31.5), (0.0, 90.0, 39.5), (0.0, 0.0, 1.0))),
                person_box_xyxy=np.array((8.0, 4.0, 56.0, 76.0)),
                smplx=_smplx(rng),
                **hands,
            )
        )
    return save_index(folder / 'index.npz', samples)


def _config(assets: Path, index: Path, out: Path, variant: str, steps: int = 3):
    return BodyAdapterTrainConfig(
        whole_body=str(assets / 'smplerx_tiny.safetensors'),
        body_model_dir=str(assets),
        data=DataConfig(indexes=(str(index),), augmentation=None, num_workers=0),
        output=OutputConfig(
            dir=str(out), checkpoint_every=1, log_every=1, tensorboard=False, progress_bar=False
        ),
        variant=variant,  # type: ignore[arg-type]
        adapter=TINY_ADAPTER,
        optimizer=OptimizerConfig(lr=1e-3, warmup_steps=0),
        run=RunConfig(steps=steps, batch_size=2, device='cpu'),
    )


def _module_states(model: WholeBodyModel) -> dict[str, dict[str, torch.Tensor]]:
    return {
        name: {k: v.detach().clone() for k, v in child.state_dict().items()}
        for name, child in model.named_children()
    }


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- Full-size facts ----------------------------------------------------------------------------


def test_trainable_counts_match_the_papers_table_4_at_h32() -> None:
    """Table 4 prints 662M, 662M, 31M, 31M, 37M for No.1-5 (SMPLer-X-H32); Table 6 prints
    no counts, so the moderator variant is checked against its stated sizes: the neck and
    head plus PIXIE's MLP 1024 -> 1024 -> 2 and one temperature."""
    counts = {}
    for name in WEIGHT_ONLY + ADDED_MODULES:
        with torch.device('meta'):
            model = build_whole_body('smplerx_h32')
            if name in WEIGHT_ONLY_VARIANTS:
                parts = WholeBodyParts(model, WEIGHT_ONLY_VARIANTS[name], name)
                wrapped: nn.Module = FineTunedWholeBody(model, parts)
            else:
                variant = build_variant_module(MODULE_VARIANTS[name], model)
                wrapped = BodyVariantWholeBody(model, variant)
        counts[name] = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    paper_millions = {
        'smplerx_full_finetune': 662,
        'smplerx_from_scratch': 662,
        'smplerx_head_finetune': 31,
        'smplerx_concatenation': 31,
        'smplerx_adapter_task_tokens': 37,
    }
    for name, millions in paper_millions.items():
        assert round(counts[name] / 1e6) == millions, (name, counts[name])
    assert counts['body_concatenation'] == counts['smplerx_concatenation']  # one model
    head = counts['smplerx_head_finetune']
    assert counts['body_weighted_sum'] == head + (1024 * 1024 + 1024) + (1024 * 2 + 2) + 1


# --- What trains --------------------------------------------------------------------------------


@pytest.mark.parametrize('variant', WEIGHT_ONLY + ADDED_MODULES)
def test_exactly_the_variants_parameters_train_and_its_file_loads(
    assets: Path, index: Path, tmp_path: Path, variant: str
) -> None:
    base, _ = load_whole_body(assets / 'smplerx_tiny.safetensors')
    before = _module_states(base)
    trainer = AdapterTrainer(_config(assets, index, tmp_path / 'run', variant))
    assert variant in BODY_VARIANT_TASKS
    initial = {k: v.clone() for k, v in trainer.task.adapter.state_dict().items()}
    result = trainer.fit()
    model = trainer.task.model.whole_body  # type: ignore[attr-defined]
    after = _module_states(model)
    trained = set(HEAD_MODULE_NAMES) if variant != 'smplerx_adapter_task_tokens' else set()
    if variant in ('smplerx_full_finetune', 'smplerx_from_scratch'):
        trained.add('encoder')
    requires_grad = {
        name
        for name, child in model.named_children()
        if any(p.requires_grad for p in child.parameters())
    }
    assert requires_grad == trained
    for name in set(before) - trained:  # frozen: bitwise the checkpoint's, buffers included
        assert _equal(before[name], after[name]), name
    # Trained modules that the body losses reach moved. (hand_position_net and box_net get
    # no gradient from them: their outputs enter the losses detached, as in SMPLer-X.)
    for name in trained & {'encoder', 'body_regressor', 'hand_roi_net', 'face_regressor'}:
        assert not _equal(before[name], after[name]), name
    if variant == 'smplerx_from_scratch':
        # No drawn tensor of the checkpoint survives (its constant ones, the norms' 1 and 0,
        # are also what a fresh init writes).
        drawn = [
            (m, k)
            for m in before
            for k in before[m]
            if before[m][k].is_floating_point() and before[m][k].float().std() > 0
        ]
        assert len(drawn) > 20
        assert not any(torch.equal(before[m][k], after[m][k]) for m, k in drawn)
    # The added modules moved away from their initialisation.
    own = {
        k: v for k, v in trainer.task.adapter.state_dict().items() if not k.startswith('heads.')
    }
    assert any(not torch.equal(initial[k], v) for k, v in own.items())

    if variant in WEIGHT_ONLY:
        assert result.adapter_file.name == f'{variant}_smplerx_tiny.safetensors'
        loaded, info = load_whole_body(result.adapter_file)  # an ordinary whole-body file
        assert info.variant == 'smplerx_tiny'
        assert _equal(loaded.state_dict(), model.state_dict())
    else:
        module_name = type(trainer.task.adapter).adapter_name  # type: ignore[attr-defined]
        assert result.adapter_file.name == f'{module_name}_smplerx_tiny.safetensors'
        fresh, _ = load_whole_body(assets / 'smplerx_tiny.safetensors')
        wrapped, info = load_body_variant(result.adapter_file, fresh, 'smplerx_tiny')
        assert info.model == module_name
        assert _equal(wrapped.variant.state_dict(), trainer.task.adapter.state_dict())


def test_resume_of_a_variant_equals_the_uninterrupted_run(
    assets: Path, index: Path, tmp_path: Path
) -> None:
    """Concatenation fine-tunes the neck and head in train mode (BatchNorm statistics move),
    so the checkpoint must carry them for the resumed losses to be the same."""
    straight = AdapterTrainer(
        _config(assets, index, tmp_path / 'a', 'smplerx_concatenation')
    ).fit()
    # Interrupted after its step-2 checkpoint: the same run folder without step 3.
    shutil.copytree(tmp_path / 'a', tmp_path / 'b')
    shutil.rmtree(tmp_path / 'b' / 'checkpoints' / 'step_00000003')
    resumed = AdapterTrainer(_config(assets, index, tmp_path / 'b', 'smplerx_concatenation')).fit(
        resume=tmp_path / 'b'
    )
    assert resumed.start_step == 2
    assert resumed.records[-1]['total'] == straight.records[-1]['total']
    a = read_adapter_file(straight.adapter_file).state_dict
    b = read_adapter_file(resumed.adapter_file).state_dict
    assert _equal(a, b)


# --- Behaviour from outside the code ------------------------------------------------------------


def _stages_and_integer_points(model: WholeBodyModel) -> tuple:
    torch.manual_seed(5)
    stages = model.run_stages(torch.rand(2, 3, 512, 384))
    # Integer pixel positions: bilinear sampling reads the pixel itself (no interpolation).
    points = torch.randint(0, 16, (2, 2, 4, 2)).float()
    return stages, points


@torch.no_grad()
def test_concatenation_is_one_linear_layer_over_the_concatenated_input(assets: Path) -> None:
    """Hand4Whole's rotation net: one linear layer per output over [body joint features,
    MCP joint features] (each feature + 3 coordinates). Zero new columns give SMPLer-X's
    regressor exactly; random ones equal that widened layer built by hand."""
    model, _ = load_whole_body(assets / 'smplerx_tiny.safetensors')
    variant = MCPConcatenation(model)
    stages, points = _stages_and_integer_points(model)
    assert torch.equal(variant.body_pose_6d(model, stages, points), stages.body_pose_6d)

    variant.mcp_root_pose.weight.normal_(0.0, 0.1)
    variant.mcp_body_pose.weight.normal_(0.0, 0.1)
    regressor = model.body_regressor
    body = torch.cat(
        (regressor.body_conv(stages.task_tokens[:, BODY_POSE_TOKENS]), stages.body_joints_hm),
        dim=2,
    ).flatten(1)
    hand_maps = model.hand_regressor.hand_conv(stages.hands.features.flatten(0, 1))
    rows = []
    for n in range(2):  # person
        for s in range(2):  # side (left, right)
            for j, finger in enumerate((1, 2, 3, 4)):  # index1 ... pinky1 = positions 4, 8, 12, 16
                x, y = (int(v) for v in points[n, s, j])
                depth = stages.hands.joints_hm[n, s, 4 * finger, 2]
                feature = hand_maps[2 * n + s, :, y, x]
                rows.append(torch.cat((feature, torch.tensor((x, y)).float(), depth[None])))
    mcp = torch.stack(rows).reshape(2, -1)
    wide_root = nn.Linear(body.shape[1] + mcp.shape[1], 6)
    wide_root.weight.copy_(
        torch.cat((regressor.root_pose_out[0].weight, variant.mcp_root_pose.weight), 1)
    )
    wide_root.bias.copy_(regressor.root_pose_out[0].bias)
    wide_body = nn.Linear(body.shape[1] + mcp.shape[1], 126)
    wide_body.weight.copy_(
        torch.cat((regressor.body_pose_out[0].weight, variant.mcp_body_pose.weight), 1)
    )
    wide_body.bias.copy_(regressor.body_pose_out[0].bias)
    flat = torch.cat((body, mcp), dim=1)
    expected = torch.cat((wide_root(flat)[:, None], wide_body(flat).reshape(2, 21, 6)), dim=1)
    got = variant.body_pose_6d(model, stages, points)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(got, stages.body_pose_6d)
    assert mcp_joint_features(model, stages, points).shape == (2, 8, 24 + 3)


@torch.no_grad()
def test_a_one_hot_moderator_passes_one_input_through(assets: Path) -> None:
    """PIXIE's fusion w_body * f_body + w_part * f_part with w = softmax(t * MLP(...)): a
    moderator sure of the body (w = (1, 0)) leaves SMPLer-X's regressor as it is; one sure of
    the hand replaces each wrist's feature by the hand's (the mean of its MCP features)."""
    model, _ = load_whole_body(assets / 'smplerx_tiny.safetensors')
    variant = MCPModerator(model)
    stages, points = _stages_and_integer_points(model)
    last = variant.moderator[-1]
    last.weight.zero_()
    last.bias.copy_(torch.tensor((60.0, -60.0)))  # softmax -> (1, 0) exactly in float32
    assert torch.equal(variant.body_pose_6d(model, stages, points), stages.body_pose_6d)

    last.bias.copy_(torch.tensor((-60.0, 60.0)))
    regressor = model.body_regressor
    features = regressor.body_conv(stages.task_tokens[:, BODY_POSE_TOKENS])
    hand_maps = model.hand_regressor.hand_conv(stages.hands.features.flatten(0, 1))
    for n in range(2):
        for s, side in enumerate(('left', 'right')):
            samples = [hand_maps[2 * n + s, :, int(y), int(x)] for x, y in points[n, s]]
            row = BODY_POSITION_JOINT_NAMES.index(f'{side}_wrist')
            features[n, row] = torch.stack(samples).mean(dim=0)
    expected = regressor.pose_from_joint_features(features, stages.body_joints_hm)
    torch.testing.assert_close(
        variant.body_pose_6d(model, stages, points), expected, rtol=1e-5, atol=1e-6
    )


@torch.no_grad()
def test_from_scratch_follows_the_stated_initialisation(
    assets: Path, index: Path, tmp_path: Path
) -> None:
    """SMPLer-X random_init: ViTPose's ViT init (truncated normal std 0.02, LayerNorm 1 / 0)
    and SMPLer-X's init_weights for the rest (Linear N(0, 0.01), Conv N(0, 0.001), zero biases,
    BatchNorm 1 / 0 with reset statistics)."""
    config = _config(assets, index, tmp_path / 'run', 'smplerx_from_scratch')
    model = AdapterTrainer(config).task.model.whole_body  # type: ignore[attr-defined]

    def close(value: float, target: float) -> bool:
        return abs(value - target) < 0.05 * target

    assert close(float(model.body_regressor.body_pose_out[0].weight.std()), 0.01)
    assert close(float(model.box_net.deconv[0].weight.std()), 0.001)
    assert close(float(model.hand_regressor.hand_conv[0].weight.std()), 0.001)
    assert close(float(model.encoder.blocks[0].mlp.fc1.weight.std()), 0.02)
    assert float(model.body_regressor.body_pose_out[0].bias.abs().max()) == 0.0
    norm = model.hand_regressor.hand_conv[1]
    assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    assert torch.equal(
        model.encoder.last_norm.weight, torch.ones_like(model.encoder.last_norm.weight)
    )


@torch.no_grad()
def test_task_token_adapter_reads_the_body_pose_tokens(assets: Path) -> None:
    """Table 4 No.5: the adapter's input is the 25 body-pose task tokens, so changing the
    hand features leaves its offset unchanged and changing those tokens does not; untrained,
    its zero output layer makes it SMPLer-X exactly (as the body adapter)."""
    model, _ = load_whole_body(assets / 'smplerx_tiny.safetensors')
    adapter = TaskTokenBodyAdapter(
        BodyAdapterConfig(**{**asdict(TINY_ADAPTER), 'in_channels': 32})
    )
    stages, points = _stages_and_integer_points(model)
    assert torch.equal(adapter.body_pose_6d(model, stages, points), stages.body_pose_6d)
    adapter.output_layer.weight.normal_(0.0, 0.5)
    reference = adapter.body_pose_6d(model, stages, points)
    other_hands = stages._replace(hands=stages.hands._replace(features=stages.hands.features * 3))
    assert torch.equal(adapter.body_pose_6d(model, other_hands, points), reference)
    tokens = stages.task_tokens.clone()
    tokens[:, BODY_POSE_TOKENS] += 1.0
    moved = adapter.body_pose_6d(model, stages._replace(task_tokens=tokens), points)
    assert not torch.equal(moved, reference)


# --- hmr-ros train with the shipped configs, then hmr-ros eval --table N ------------------------


def _train_shipped(assets: Path, index: Path, tmp_path: Path, variant: str) -> Path:
    """``hmr-ros train`` on the shipped config/train_ablation_<variant>.yaml, paths and sizes
    overridden for the stand-ins; returns the file it writes."""
    values = yaml.safe_load((REPO / 'config' / f'train_ablation_{variant}.yaml').read_text())
    assert values['variant'] == variant
    values.update(whole_body=str(assets / 'smplerx_tiny.safetensors'), body_model_dir=str(assets))
    values['data'].update(indexes=[str(index)], weights=[], augmentation=None, num_workers=0)
    if 'adapter' in values:  # the task-token variant: the body adapter's sizes
        values['adapter'] = {**values['adapter'], **asdict(TINY_ADAPTER), 'mlp_dim': 32}
        values['adapter']['regressor_dim'] = 32
    values['output'].update(dir=str(tmp_path / variant), checkpoint_every=0, tensorboard=False)
    values['optimizer'].update(lr=1e-3, warmup_steps=0)
    values['run'].update(steps=1, batch_size=2, device='cpu')
    config = tmp_path / f'{variant}.yaml'
    config.write_text(yaml.safe_dump(values))
    assert main(['train', 'body-adapter', str(config)]) == 0
    (written,) = (tmp_path / variant).glob('*_smplerx_tiny.safetensors')
    return written


def _paper_config(assets: Path, index: Path, tmp_path: Path, dataset: str, **extra) -> Path:
    values = {
        'whole_body': str(assets / 'smplerx_tiny.safetensors'),
        'hand_expert': str(assets / 'hamer_tiny.safetensors'),
        'body_model_dir': str(assets),
        'datasets': [{'name': dataset, 'index': str(index)}],
        'metrics': {'protocol': 'approximate'},
        'device': 'cpu',
        'output_dir': str(tmp_path / 'results'),
        **extra,
    }
    path = tmp_path / 'paper.yaml'
    path.write_text(yaml.safe_dump(values))
    return path


def _rows(tmp_path: Path, number: int) -> dict[str, dict]:
    results = json.loads((tmp_path / 'results' / f'table{number}.json').read_text())
    return {row['method']: row['metrics'] for row in results['rows']}


def test_table_4_rows_run_from_the_files_hmr_ros_train_writes(
    assets: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table_4 = (
        'smplerx_full_finetune',
        'smplerx_from_scratch',
        'smplerx_head_finetune',
        'smplerx_concatenation',
        'smplerx_adapter_task_tokens',
    )
    # Without the files each row names the command that trains it.
    config = _paper_config(assets, index, tmp_path, 'ARCTIC')
    assert main(['eval', '--table', '4', str(config)]) == 0
    assert 'note: No.1: needs ablation_files.smplerx_full_finetune (train it: hmr-ros train ' in (
        capsys.readouterr().out
    )
    files = {v: str(_train_shipped(assets, index, tmp_path, v)) for v in table_4}
    config = _paper_config(assets, index, tmp_path, 'ARCTIC', ablation_files=files)
    assert main(['eval', '--table', '4', str(config)]) == 0
    printed = capsys.readouterr().out
    assert 'note: No.6: needs body_adapter_arctic' in printed
    assert not any(f'note: No.{n}:' in printed for n in range(1, 6))
    rows = _rows(tmp_path, 4)
    smplerx = rows['SMPLer-X [ours]']['ARCTIC']
    for n in range(1, 6):  # every trained file changed the prediction
        assert rows[f'No.{n} [ours]']['ARCTIC']['pve_all_mm'] != smplerx['pve_all_mm'], n
    no5_run = json.loads((tmp_path / 'results' / 'table4_no_5.json').read_text())
    assert no5_run['metadata']['config']['body_variant'] == files['smplerx_adapter_task_tokens']
    no3_run = json.loads((tmp_path / 'results' / 'table4_no_3.json').read_text())
    assert no3_run['metadata']['config']['whole_body'] == files['smplerx_head_finetune']
    # SMPLer-X's own hands, as the SMPLer-X row (the hand path switched off).
    assert no3_run['metadata']['config']['dual_path']['hand_confidence_threshold'] == 2.0


def test_table_6_rows_run_with_the_hand_adapter_and_the_injection_variant(
    assets: Path, index: Path, tmp_path: Path
) -> None:
    files = {
        v: str(_train_shipped(assets, index, tmp_path, v))
        for v in ('body_concatenation', 'body_weighted_sum')
    }
    hand_expert, _ = load_hand_expert(assets / 'hamer_tiny.safetensors')
    hand_file = save_adapter_file(
        tmp_path / 'hand.safetensors', HandAdapter(hand_expert.mano_head), 'hamer_tiny'
    )
    config = _paper_config(
        assets, index, tmp_path, 'EHF', ablation_files=files, hand_adapter=str(hand_file)
    )
    assert main(['eval', '--table', '6', str(config)]) == 0
    rows = _rows(tmp_path, 6)
    assert {'Concatenation [ours]', 'Weighted sum [ours]'} <= set(rows)
    run = json.loads((tmp_path / 'results' / 'table6_weighted_sum.json').read_text())
    models = [w['model'] for w in run['metadata']['weights']]
    assert models[-2:] == ['hand_adapter', 'body_weighted_sum']
    assert run['rows'][0]['method'] == 'Weighted sum [ours]'
