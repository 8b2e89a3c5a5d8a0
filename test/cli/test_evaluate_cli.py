"""``hmr-ros eval`` run in-process on stand-in assets and synthetic data sets.

Untrained adapters are exact no-ops, so a row with them must reproduce the baseline row's
numbers exactly; adapters with randomised output layers must change them. That checks the
ablation switch end to end (files loaded, rows run with the right adapters).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import get_args

import cv2
import numpy as np
import pytest
import torch
import yaml

from hmr_ros.body_models.smplx_layers import MANOHandModel
from hmr_ros.checkpoints.adapter_files import save_adapter_file
from hmr_ros.cli.main import main
from hmr_ros.config import load_config
from hmr_ros.datasets.sample import MANOParams, Sample, SMPLXParams, load_index, save_index
from hmr_ros.evaluation.evaluator import ORACLE_LABEL, EvalConfig
from hmr_ros.geometry.rotations import axis_angle_to_rotmat
from hmr_ros.models.adapters.body_adapter import BodyAdapter, body_adapter_tiny
from hmr_ros.models.adapters.hand_adapter import HandAdapter
from hmr_ros.models.dual_path_builder import load_hand_expert

REPO = Path(__file__).resolve().parents[2]
IMAGE_WH = (64, 80)
INTRINSICS = np.array(((90.0, 0.0, 31.5), (0.0, 90.0, 39.5), (0.0, 0.0, 1.0)))


@pytest.fixture(scope='module')
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stand-in models, and zero (no-op) and randomised adapter files for both base models."""
    folder = tmp_path_factory.mktemp('assets')
    assert main(['make-test-assets', str(folder), '--variants', 'hamer_tiny', 'smplerx_tiny']) == 0
    hand_expert, _ = load_hand_expert(folder / 'hamer_tiny.safetensors')
    files = {'dir': folder}
    torch.manual_seed(0)
    for kind in ('zero', 'random'):
        hand = HandAdapter(hand_expert.mano_head)
        body = BodyAdapter(body_adapter_tiny(32))
        if kind == 'random':
            with torch.no_grad():
                for branch in hand.branches:
                    branch.output_projection.weight.normal_(0.0, 0.5)
                body.output_layer.weight.normal_(0.0, 0.5)
        files[f'hand_{kind}'] = save_adapter_file(
            folder / f'hand_{kind}.safetensors', hand, 'hamer_tiny'
        )
        files[f'body_{kind}'] = save_adapter_file(
            folder / f'body_{kind}.safetensors', body, 'smplerx_tiny'
        )
    return files


def _image(folder: Path, name: str, rng: np.random.Generator) -> str:
    path = folder / f'{name}.png'
    pixels = rng.integers(0, 256, size=(IMAGE_WH[1], IMAGE_WH[0], 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.GaussianBlur(pixels, (5, 5), 2))
    return str(path)


def _smplx(rng: np.random.Generator) -> SMPLXParams:
    return SMPLXParams(
        global_orient_aa=np.array((np.pi, 0.0, 0.0)) + rng.normal(scale=0.1, size=3),
        body_pose_aa=rng.normal(scale=0.2, size=(21, 3)),
        left_hand_pose_aa=rng.normal(scale=0.2, size=(15, 3)),
        right_hand_pose_aa=rng.normal(scale=0.2, size=(15, 3)),
        jaw_pose_aa=np.zeros(3),
        betas=rng.normal(size=10),
        expression=np.zeros(10),
        transl_m=np.array((0.0, 0.2, 4.0)),
        rest_pelvis_m=np.zeros(3),
    )


@pytest.fixture(scope='module')
def hand_index(tmp_path_factory: pytest.TempPathFactory, assets: dict[str, Path]) -> Path:
    """FreiHAND-like: 2 right hands with camera-frame mesh and keypoints (one with a body
    pose for the guidance), 1 left hand with MANO parameters only (no camera-frame truth)."""
    folder = tmp_path_factory.mktemp('hands')
    rng = np.random.default_rng(1)
    mano = MANOHandModel.from_folder(assets['dir'], side='right')
    samples = []
    for i in range(2):
        params = MANOParams(rng.normal(size=3), rng.normal(scale=0.3, size=(15, 3)), np.zeros(10))
        rotmats = axis_angle_to_rotmat(
            torch.from_numpy(np.concatenate((params.global_orient_aa[None], params.hand_pose_aa)))
        ).float()
        with torch.no_grad():
            mesh = mano(rotmats[None, :1], rotmats[None, 1:], torch.zeros(1, 10))
        offset = torch.tensor((0.0, 0.0, 0.6))
        joints = (mesh.joints[0] + offset).numpy()
        samples.append(
            Sample(
                dataset='synthetic',
                sample_id=f'right/{i}',
                image_size_wh=IMAGE_WH,
                image_path=_image(folder, f'right_{i}', rng),
                intrinsics=INTRINSICS,
                right_hand_box_xyxy=np.array((20.0, 25.0, 44.0, 55.0)),
                right_mano=params,
                right_hand_keypoints_3d_cam_m=np.concatenate((joints, np.ones((21, 1))), 1),
                vertices_cam_m=(mesh.vertices[0] + offset).numpy(),
                vertices_model='mano_right',
                smplx=_smplx(rng) if i == 0 else None,
            )
        )
    samples.append(
        Sample(
            dataset='synthetic',
            sample_id='left/0',
            image_size_wh=IMAGE_WH,
            image_path=_image(folder, 'left_0', rng),
            left_hand_box_xyxy=np.array((10.0, 30.0, 30.0, 52.0)),
            left_mano=MANOParams(
                rng.normal(size=3), rng.normal(scale=0.3, size=(15, 3)), np.zeros(10)
            ),
        )
    )
    return save_index(folder / 'hands.npz', samples)


@pytest.fixture(scope='module')
def body_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EHF-like: 2 persons with SMPL-X parameters, a person box and the camera."""
    folder = tmp_path_factory.mktemp('bodies')
    rng = np.random.default_rng(2)
    samples = [
        Sample(
            dataset='synthetic',
            sample_id=f'body/{i}',
            image_size_wh=IMAGE_WH,
            image_path=_image(folder, f'body_{i}', rng),
            intrinsics=INTRINSICS,
            person_box_xyxy=np.array((8.0, 4.0, 56.0, 76.0)),
            smplx=_smplx(rng),
        )
        for i in range(2)
    ]
    return save_index(folder / 'bodies.npz', samples)


def _run(tmp_path: Path, values: dict) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / 'eval.yaml'
    config.write_text(yaml.safe_dump(values))
    assert main(['eval', str(config), '--json', str(tmp_path / 'out.json')]) == 0
    return json.loads((tmp_path / 'out.json').read_text())


def _metrics(results: dict, method: str, dataset: str) -> dict[str, float]:
    row = next(row for row in results['rows'] if row['method'] == method)
    return row['metrics'][dataset]


def _hand_config(assets: dict[str, Path], index: Path, adapter: str) -> dict:
    return {
        'model': 'hand_expert',
        'hand_expert': str(assets['dir'] / 'hamer_tiny.safetensors'),
        'hand_adapter': str(assets[adapter]),
        'body_model_dir': str(assets['dir']),
        'datasets': [{'name': 'FreiHAND', 'index': str(index)}],
        'table': 'freihand',
        'rows': [
            {'method': 'HaMeR', 'adapters': 'none'},
            {'method': 'Ours', 'adapters': 'hand'},
            {'method': 'Ours, no guidance', 'adapters': 'hand', 'guidance': 'zero'},
        ],
        'batch_size': 2,
        'device': 'cpu',
    }


def test_eval_hand_expert_rows(
    assets: dict[str, Path],
    hand_index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = _run(tmp_path / 'zero', _hand_config(assets, hand_index, 'hand_zero'))
    printed = capsys.readouterr().out
    assert 'Root-relative hand mesh recovery on FreiHAND' in printed
    assert 'PA-MPJPE' in printed and 'HaMeR' in printed and 'Ours' in printed
    baseline = _metrics(results, 'HaMeR', 'FreiHAND')
    oracle = 'Ours' + ORACLE_LABEL
    # One sample has a body pose: its row is the oracle, labelled so; the zero-guidance row not.
    assert [row['method'] for row in results['rows']] == ['HaMeR', oracle, 'Ours, no guidance']
    assert oracle in printed
    assert results['metadata']['oracle_rows'] == {
        oracle: '1 hands guided by the ground-truth body pose'
    }
    assert _metrics(results, oracle, 'FreiHAND') == baseline  # untrained adapter: a no-op
    assert all(math.isfinite(v) for v in baseline.values())
    counts = results['rows'][0]['counts']['FreiHAND']
    assert counts['pa_mpjpe_mm'] == 3 and counts['pve_mm'] == 3
    assert counts['cs_pve_mm'] == 2  # the left hand has no camera-frame ground truth
    assert 0.0 <= baseline['pa_j_auc'] <= 1.0
    assert results['metadata']['weights'][1]['model'] == 'hand_adapter'

    trained = _run(tmp_path / 'random', _hand_config(assets, hand_index, 'hand_random'))
    assert _metrics(trained, 'HaMeR', 'FreiHAND') == baseline
    guided = _metrics(trained, oracle, 'FreiHAND')
    unguided = _metrics(trained, 'Ours, no guidance', 'FreiHAND')
    assert guided['pa_mpjpe_mm'] != baseline['pa_mpjpe_mm']
    # Guidance reaches the adapter: only the hand with a body pose differs between the rows.
    assert guided['pa_mpjpe_mm'] != unguided['pa_mpjpe_mm']


def _body_config(assets: dict[str, Path], index: Path, kind: str) -> dict:
    return {
        'model': 'dual_path',
        'whole_body': str(assets['dir'] / 'smplerx_tiny.safetensors'),
        'hand_expert': str(assets['dir'] / 'hamer_tiny.safetensors'),
        'hand_adapter': str(assets[f'hand_{kind}']),
        'body_adapter': str(assets[f'body_{kind}']),
        'body_model_dir': str(assets['dir']),
        'datasets': [{'name': 'EHF', 'index': str(index)}],
        'table': 'table1',
        'rows': [
            {'method': 'SMPLer-X + HaMeR', 'adapters': 'none'},
            {'method': 'Ours', 'adapters': 'both'},
        ],
        'dual_path': {'hand_confidence_threshold': 0.0},
        'metrics': {'protocol': 'approximate'},
        'device': 'cpu',
    }


def test_eval_dual_path_ablation_rows(
    assets: dict[str, Path],
    body_index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = _run(tmp_path / 'zero', _body_config(assets, body_index, 'zero'))
    printed = capsys.readouterr().out
    assert 'Whole-body reconstruction on ARCTIC and EHF (mm)' in printed
    assert 'skinning-weight subsets' in printed  # says the hand subsets are not the protocol's
    baseline = _metrics(results, 'SMPLer-X + HaMeR', 'EHF')
    assert _metrics(results, 'Ours', 'EHF') == baseline
    for name in ('pa_pve_all_mm', 'pve_all_mm', 'pa_mpjpe_all_mm', 'pa_pve_hands_mm'):
        assert math.isfinite(baseline[name]) and baseline[name] > 0
    assert results['rows'][0]['counts']['EHF']['pve_all_mm'] == 2
    assert results['layout'] == 'table1'

    trained = _run(tmp_path / 'random', _body_config(assets, body_index, 'random'))
    assert _metrics(trained, 'SMPLer-X + HaMeR', 'EHF') == baseline
    assert _metrics(trained, 'Ours', 'EHF')['pve_all_mm'] != baseline['pve_all_mm']


def test_eval_reports_both_wrist_sources(
    assets: dict[str, Path], body_index: Path, tmp_path: Path
) -> None:
    """Each row is evaluated with the paper's 'body' wrists (its own label) and with the
    IK-style 'hand' wrists (labelled '[wrist: hand]' below it); the JSON says which is which.
    With a random body adapter and hand expert the two differ; a row that fixes its
    wrist_source is evaluated once."""
    config = _body_config(assets, body_index, 'random')
    config['rows'] = [
        {'method': 'Ours', 'adapters': 'both'},
        {'method': 'Ours, IK wrists', 'adapters': 'both', 'wrist_source': 'hand'},
    ]
    results = _run(tmp_path / 'wrists', config)
    labels = [row['method'] for row in results['rows']]
    assert labels == ['Ours', 'Ours [wrist: hand]', 'Ours, IK wrists']
    assert results['metadata']['wrist_source'] == {
        'Ours': 'body',
        'Ours [wrist: hand]': 'hand',
        'Ours, IK wrists': 'hand',
    }
    body_wrists = _metrics(results, 'Ours', 'EHF')
    assert _metrics(results, 'Ours [wrist: hand]', 'EHF') == _metrics(
        results, 'Ours, IK wrists', 'EHF'
    )
    assert (
        _metrics(results, 'Ours [wrist: hand]', 'EHF')['pve_all_mm'] != body_wrists['pve_all_mm']
    )


def test_eval_rejects_a_table_the_model_cannot_fill(
    assets: dict[str, Path], hand_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {**_hand_config(assets, hand_index, 'hand_zero'), 'table': 'table1'}
    config = tmp_path / 'eval.yaml'
    config.write_text(yaml.safe_dump(values))
    assert main(['eval', str(config)]) == 2
    assert "not filled by model 'hand_expert'" in capsys.readouterr().err


def test_shipped_eval_config_loads() -> None:
    config = load_config(EvalConfig, REPO / 'config' / 'eval.yaml')
    assert config.model == 'dual_path' and config.table == 'table1'
    assert [row.adapters for row in config.rows] == ['none', 'both']


# --- hmr-ros eval --table N ----------------------------------------------------------------------


@pytest.fixture(scope='module')
def pw3d_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3DPW-like: 24 SMPL joints in the camera frame (layout 'smpl24'), a box, the camera."""
    folder = tmp_path_factory.mktemp('pw3d')
    rng = np.random.default_rng(4)
    samples = []
    for i in range(2):
        joints = rng.normal(scale=0.3, size=(24, 3)) + (0.0, 0.0, 3.0)
        samples.append(
            Sample(
                dataset='3DPW',
                sample_id=f'pw/{i}',
                image_size_wh=IMAGE_WH,
                image_path=_image(folder, f'pw_{i}', rng),
                intrinsics=INTRINSICS,
                person_box_xyxy=np.array((8.0, 4.0, 56.0, 76.0)),
                body_keypoint_layout='smpl24',
                body_keypoints_3d_cam_m=np.concatenate((joints, np.ones((24, 1))), axis=1),
            )
        )
    return save_index(folder / 'pw3d.npz', samples)


def _paper_config(
    assets: dict[str, Path], tmp_path: Path, datasets: list[dict], **files: str
) -> Path:
    values = {
        'whole_body': str(assets['dir'] / 'smplerx_tiny.safetensors'),
        'hand_expert': str(assets['dir'] / 'hamer_tiny.safetensors'),
        'body_model_dir': str(assets['dir']),
        'datasets': datasets,
        'metrics': {'protocol': 'approximate'},
        'device': 'cpu',
        'output_dir': str(tmp_path / 'results'),
        **files,
    }
    path = tmp_path / 'paper.yaml'
    path.write_text(yaml.safe_dump(values))
    return path


def test_eval_table_1_runs_our_rows_beside_the_papers(
    assets: dict[str, Path],
    body_index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _paper_config(
        assets,
        tmp_path,
        [{'name': 'EHF', 'index': str(body_index)}],
        hand_adapter=str(assets['hand_random']),
        body_adapter=str(assets['body_random']),
    )
    assert main(['eval', '--table', '1', str(config)]) == 0
    printed = capsys.readouterr().out
    # The paper's numbers, e.g. Ours on ARCTIC: PA-PVE All 23.9, Hands 10.5 (Table 1).
    paper_line = next(line for line in printed.splitlines() if line.startswith('Ours [paper]'))
    assert paper_line.split()[2:4] == ['23.9', '10.5']
    assert 'Ours [ours]' in printed and 'SMPLer-X-H32 + HaMeR [ours]' in printed
    assert 'note: Hand4Whole: another method: published numbers only' in printed
    results = json.loads((tmp_path / 'results' / 'table1.json').read_text())
    rows = {row['method']: row['metrics'] for row in results['rows']}
    ours, baseline = rows['Ours [ours]']['EHF'], rows['SMPLer-X-H32 + HaMeR [ours]']['EHF']
    assert ours['pve_all_mm'] != baseline['pve_all_mm']  # the adapters ran
    # SMPLer-X alone: the hand path switched off (a confidence threshold above 1).
    alone = json.loads((tmp_path / 'results' / 'table1_smpler_x_h32.json').read_text())
    assert alone['metadata']['config']['dual_path']['hand_confidence_threshold'] == 2.0
    assert alone['rows'][0]['method'] == 'SMPLer-X-H32 [ours]'
    assert 'ARCTIC' not in rows['Ours [ours]']  # not converted here: '-' in our row


def test_eval_table_2_scores_smpl_joints(
    assets: dict[str, Path],
    pw3d_index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _paper_config(assets, tmp_path, [{'name': '3DPW', 'index': str(pw3d_index)}])
    assert main(['eval', '--table', '2', str(config)]) == 0
    printed = capsys.readouterr().out
    assert 'note: Ours: needs hand_adapter (train it: hmr-ros train hand-adapter' in printed
    results = json.loads((tmp_path / 'results' / 'table2.json').read_text())
    rows = {row['method']: row for row in results['rows']}
    measured = rows['SMPLer-X-H32 + HaMeR [ours]']
    assert set(measured['metrics']['3DPW']) == {'mpjpe_all_mm', 'pa_mpjpe_all_mm'}  # no PVE
    assert measured['counts']['3DPW']['mpjpe_all_mm'] == 2
    assert rows['Ours [paper]']['metrics']['3DPW'] == {
        'pve_all_mm': 82.1,
        'pa_mpjpe_all_mm': 44.0,
        'mpjpe_all_mm': 73.0,
    }


def test_eval_table_3_names_what_each_missing_row_needs(
    assets: dict[str, Path],
    hand_index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _paper_config(assets, tmp_path, [{'name': 'ARCTIC', 'index': str(hand_index)}])
    assert main(['eval', '--table', '3', str(config)]) == 0
    printed = capsys.readouterr().out
    assert 'HaMeR [ours]' in printed
    assert (
        'note: No.1: needs ablation_files.hamer_full_finetune (train it: hmr-ros train '
        'hand-adapter config/train_ablation_hamer_full_finetune.yaml)' in printed
    )
    assert 'note: No.6: needs hand_adapter_arctic (train it: hmr-ros train hand-adapter ' in (
        printed
    )
    for name in ('hamer_full_finetune', 'hamer_adapter_image_input'):
        assert (REPO / 'config' / f'train_ablation_{name}.yaml').is_file()
    assert main(['eval', '--table', '7', str(config)]) == 2


def test_shipped_paper_eval_config_loads() -> None:
    from hmr_ros.evaluation.paper_tables import PAPER_TABLES, PaperEvalConfig, train_stage
    from hmr_ros.training.config import BodyVariant, HandVariant

    config = load_config(PaperEvalConfig, REPO / 'config' / 'eval_paper.yaml')
    assert {d.name for d in config.datasets} == {'ARCTIC', 'EHF', '3DPW'}
    for table in PAPER_TABLES.values():
        for row in table.rows:
            if row.run is not None and row.run.ablation_config:
                assert (REPO / row.run.ablation_config).is_file(), row.run.ablation_config
                # The stage named in the row's note is the one whose variants list it.
                stage_variants = (
                    HandVariant if train_stage(row.run.variant) == 'hand-adapter' else BodyVariant
                )
                assert row.run.variant in get_args(stage_variants), row.run.variant


def test_hand_crops_of_whole_body_samples_use_the_smplx_hands(
    assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ARCTIC-like samples carry SMPL-X only: the hand ground truth is the SMPL-X mesh's MANO
    hand (its 778 vertex ids) in the camera frame, so camera-space errors are measured too."""
    rng = np.random.default_rng(6)
    folder = tmp_path / 'arctic'
    folder.mkdir()
    samples = [
        Sample(
            dataset='ARCTIC',
            sample_id=f'a/{i}',
            image_size_wh=IMAGE_WH,
            image_path=_image(folder, f'a_{i}', rng),
            intrinsics=INTRINSICS,
            left_hand_box_xyxy=np.array((10.0, 30.0, 30.0, 52.0)),
            right_hand_box_xyxy=np.array((34.0, 30.0, 54.0, 52.0)),
            smplx=_smplx(rng),
        )
        for i in range(2)
    ]
    index = save_index(folder / 'arctic.npz', samples)
    ids = tmp_path / 'ids.npz'
    np.savez(ids, left_hand=np.arange(778), right_hand=np.arange(778) + 2000)
    values = {
        **_hand_config(assets, index, 'hand_zero'),
        'datasets': [{'name': 'ARCTIC', 'index': str(index)}],
        'table': 'table3',
        'rows': [{'method': 'HaMeR', 'adapters': 'none'}],
        'metrics': {'protocol': 'approximate'},
    }
    config = tmp_path / 'eval.yaml'
    config.write_text(yaml.safe_dump(values))
    assert main(['eval', str(config)]) == 1
    assert 'set metrics.hand_vertex_ids' in capsys.readouterr().err
    values['metrics'] = {'protocol': 'approximate', 'hand_vertex_ids': str(ids)}
    results = _run(tmp_path / 'with_ids', values)
    counts = results['rows'][0]['counts']['ARCTIC']
    assert counts['pa_pve_mm'] == 4 and counts['cs_pve_mm'] == 4  # 2 samples x 2 hands
    assert math.isfinite(results['rows'][0]['metrics']['ARCTIC']['pve_mm'])


def test_predicted_guidance_rows_are_the_real_pipeline_not_oracles(
    assets: dict[str, Path], hand_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """guidance: predicted guides each hand with the body pose SMPLer-X predicts on the
    person's box (no ground truth): the row keeps its label and the metadata says so."""
    samples = [
        s.replace(person_box_xyxy=np.array((4.0, 4.0, 60.0, 76.0))) for s in load_index(hand_index)
    ]
    index = save_index(tmp_path / 'hands_with_persons.npz', samples)
    values = {
        **_hand_config(assets, index, 'hand_random'),
        'rows': [
            {'method': 'Ours, predicted', 'adapters': 'hand', 'guidance': 'predicted'},
            {'method': 'Ours, no guidance', 'adapters': 'hand', 'guidance': 'zero'},
        ],
    }
    config = tmp_path / 'eval.yaml'
    config.write_text(yaml.safe_dump(values))
    assert main(['eval', str(config)]) == 2
    assert 'use guidance predicted: set whole_body' in capsys.readouterr().err
    values['whole_body'] = str(assets['dir'] / 'smplerx_tiny.safetensors')
    results = _run(tmp_path / 'run', values)
    assert [row['method'] for row in results['rows']] == ['Ours, predicted', 'Ours, no guidance']
    assert 'oracle_rows' not in results['metadata']
    assert results['metadata']['predicted_guidance_rows'] == {
        'Ours, predicted': "3 hands guided by the whole-body model's body pose"
    }
    assert {w['model'] for w in results['metadata']['weights']} >= {'smplerx', 'hand_adapter'}
    predicted = _metrics(results, 'Ours, predicted', 'FreiHAND')
    assert (
        predicted['pa_mpjpe_mm']
        != _metrics(results, 'Ours, no guidance', 'FreiHAND')['pa_mpjpe_mm']
    )


def test_eval_table_3_no6_runs_oracle_and_predicted_guidance(
    assets: dict[str, Path], hand_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = [
        s.replace(person_box_xyxy=np.array((4.0, 4.0, 60.0, 76.0))) for s in load_index(hand_index)
    ]
    index = save_index(tmp_path / 'arctic_hands.npz', samples)
    config = _paper_config(
        assets,
        tmp_path,
        [{'name': 'ARCTIC', 'index': str(index)}],
        hand_adapter_arctic=str(assets['hand_random']),
    )
    assert main(['eval', '--table', '3', str(config)]) == 0
    printed = capsys.readouterr().out
    assert 'No.6 [ours]' + ORACLE_LABEL in printed
    assert 'No.6, SMPLer-X body pose [ours]' in printed
    assert 'No.6, SMPLer-X body pose [paper]' not in printed  # the paper has no such row


# --- Hand ablation variants (Tables 3 and 5) -----------------------------------------------------


@pytest.fixture(scope='module')
def hand_variant_files(
    tmp_path_factory: pytest.TempPathFactory, assets: dict[str, Path], hand_index: Path
) -> dict[str, str]:
    """Every hand variant's file, trained one step by ``hmr-ros train`` from its shipped config
    (paths overridden to the stand-ins)."""
    folder = tmp_path_factory.mktemp('hand_variants')
    from hmr_ros.training.hand_variants import HAND_VARIANT_TASKS

    written = {}
    for variant in sorted(HAND_VARIANT_TASKS):
        out = folder / variant
        config = REPO / 'config' / f'train_ablation_{variant}.yaml'
        overrides = {
            'hand_expert': assets['dir'] / 'hamer_tiny.safetensors',
            'body_model_dir': assets['dir'],
            'data.indexes': f'[{hand_index}]',
            'data.weights': '[]',
            'data.num_workers': 0,
            'data.augmentation': 'null',
            'output.dir': out,
            'run.steps': 1,
            'run.batch_size': 2,
            'run.device': 'cpu',
            'optimizer.warmup_steps': 0,
            'optimizer.lr': 0.05,  # one large step: the trained file must differ from HaMeR
        }
        sets = [i for k, v in overrides.items() for i in ('--set', f'{k}={v}')]
        assert main(['train', 'hand-adapter', str(config), *sets]) == 0
        (final,) = out.glob('*.safetensors')
        written[variant] = str(final)
    return written


def _rows(tmp_path: Path, number: int) -> dict[str, dict]:
    results = json.loads((tmp_path / 'results' / f'table{number}.json').read_text())
    return {row['method']: row for row in results['rows']}


def test_eval_table_3_runs_the_trained_hand_variants(
    assets: dict[str, Path],
    hand_index: Path,
    hand_variant_files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No.1-No.5 from their trained files: weight-only variants in place of HaMeR, the others
    as the hand adapter (No.4 guided by the ground-truth body pose: an oracle row like No.6;
    No.5 takes no body pose)."""
    config = _paper_config(
        assets,
        tmp_path,
        [{'name': 'ARCTIC', 'index': str(hand_index)}],
        ablation_files=hand_variant_files,
    )
    assert main(['eval', '--table', '3', str(config)]) == 0
    printed = capsys.readouterr().out
    assert 'not implemented' not in printed and 'needs ablation_files' not in printed
    rows = _rows(tmp_path, 3)
    hamer = rows['HaMeR [ours]']['metrics']['ARCTIC']
    for method in ('No.1', 'No.2', 'No.3', 'No.5'):
        measured = rows[f'{method} [ours]']['metrics']['ARCTIC']
        assert measured['pa_pve_mm'] != hamer['pa_pve_mm'], method
    assert 'No.4 [ours]' + ORACLE_LABEL in rows
    no1 = json.loads((tmp_path / 'results' / 'table3_no_1.json').read_text())
    assert no1['metadata']['weights'][0]['file'] == hand_variant_files['hamer_full_finetune']
    assert rows['No.3 [paper]']['extra']['Trainable Params.'] == '39M'


def test_eval_table_5_runs_the_injection_variants_in_the_dual_path(
    assets: dict[str, Path],
    body_index: Path,
    hand_variant_files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Table 5 is measured as Table 1's ARCTIC hands (its 'Ours' row is Table 1's 10.5 / 23.6):
    the dual path with both adapters, the hand adapter replaced by each variant's file."""
    datasets = [{'name': 'ARCTIC', 'index': str(body_index)}]
    config = _paper_config(assets, tmp_path, datasets, ablation_files=hand_variant_files)
    assert main(['eval', '--table', '5', str(config)]) == 0
    assert 'note: Concatenation: needs body_adapter' in capsys.readouterr().out
    config = _paper_config(
        assets,
        tmp_path,
        datasets,
        ablation_files=hand_variant_files,
        hand_adapter=str(assets['hand_random']),
        body_adapter=str(assets['body_random']),
    )
    assert main(['eval', '--table', '5', str(config)]) == 0
    rows = _rows(tmp_path, 5)
    variants = {
        'Concatenation': ('hand_concatenation', 'hand_concatenation', 'concatenation'),
        'Weighted sum': ('hand_weighted_sum', 'hand_weighted_sum', 'weighted_sum'),
        'Whole-body pose': ('hand_whole_body_pose', 'hand_adapter', 'whole_body_pose'),
    }
    for method, (variant, model, slug) in variants.items():
        assert math.isfinite(rows[f'{method} [ours]']['metrics']['ARCTIC']['pve_hands_mm'])
        run = json.loads((tmp_path / 'results' / f'table5_{slug}.json').read_text())
        weights = run['metadata']['weights']
        assert [w['model'] for w in weights] == ['smplerx', 'hamer', model, 'body_adapter']
        assert weights[2]['file'] == hand_variant_files[variant]
        assert run['rows'][0]['method'] == f'{method} [ours]'
    # The stand-in SMPLer-X's hand boxes are too small for the hand path to replace its hands
    # (hand_confidence_threshold), so the hand numbers here are SMPLer-X's in every row; the
    # injections' effect on hands is tested in test/models/test_hand_ablations.py.
