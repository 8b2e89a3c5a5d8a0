"""AGORA conversion from tiny camera dataframes in the release's layout.

Outside facts (AGORA evaluation code, `docs/gt_dataframe.md` and `projection.py`; the parsing
code SMPLer-X ships, `tool/AGORA/agora2coco.py`):
- the SMPL-X "withjv" dataframes are ROOT/<split>_SMPLX/SMPLX/<split>_<k>_withjv.pkl, one row
  per image, per-person lists; images ROOT/3840x2160/<train_k | validation>/<imgPath> and
  ROOT/1280x720/.../<stem>_1280x720.png;
- gt_joints_2d are 4K pixels for both resolutions (the 720p ones are x 720 / 2160);
- the camera: sensor 36 x 20.25 mm, principal point (W / 2, H / 2), focal_px = f_mm / sensor *
  2 * (W / 2); f = 50 mm for 'hdri' images, 18 mm for cam00-cam03, 28 mm otherwise. By hand:
  18 mm at 4K gives fx = 18 / 36 * 3840 = 1920 and fy = 18 / 20.25 * 2160 = 1920; 50 mm gives
  5333.3 on both axes; 28 mm gives 2986.7;
- isValid marks occlusion 0-90 %; kid marks children (SMPL-X kid model, 11 betas).
- SMPL-X layer joint order (the smplx package): left wrist 20, right wrist 21, the vertex
  keypoint 'left_thumb' (tip) 66, 'right_thumb' 71.
The dataframe pickles are written by `agora_files` in pandas' own pickle layouts; the same
writer's files read back with real pandas 1.5.3 and 2.2.3 as the intended DataFrames.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agora_files import write_dataframe_pickle

from hmr_ros.datasets.agora import convert_agora
from hmr_ros.datasets.catalog import convert, summarize_index
from hmr_ros.datasets.safe_pickle import UnsafePickleError, load_dataframe_pickle
from hmr_ros.datasets.sample import load_index, save_index

CAM02 = 'ag_validationset_renderpeople_bfh_archviz_5_10_cam02_00001.png'  # 18 mm
HDRI = 'ag_validationset_renderpeople_body_hdri_50mm_5_10_00000.png'  # 50 mm
TRAIN = 'ag_trainset_3dpeople_bfh_flowers_5_15_00000.png'  # 28 mm


def _person(rng: np.random.Generator, focal_px: float, joints: int = 127, vertices: int = 10475):
    points = rng.normal(scale=0.4, size=(joints, 3)) + (0.3, 0.2, 6.0)
    pixels = points[:, :2] / points[:, 2:] * focal_px + (1920.0, 1080.0)  # 4K, cx = W / 2
    mesh = rng.normal(scale=0.4, size=(vertices, 3)) + (0.3, 0.2, 6.0)
    return pixels, points, mesh


def _columns(images: list[tuple[str, float, list[dict[str, Any]]]], seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    table: dict[str, list[Any]] = {
        key: []
        for key in (
            'imgPath', 'X', 'Y', 'Z', 'Yaw', 'camX', 'camY', 'camZ', 'camYaw', 'gender', 'kid',
            'occlusion', 'isValid', 'age', 'ethnicity', 'gt_path_smpl', 'gt_path_smplx',
            'gt_joints_2d', 'gt_joints_3d', 'gt_verts',
        )
    }  # fmt: skip
    for name, focal_px, persons in images:
        table['imgPath'].append(name)
        for key, value in (('camX', 120.0), ('camY', -40.0), ('camZ', 170.0), ('camYaw', 35.0)):
            table[key].append(value)
        arrays = [
            _person(rng, p.get('focal', focal_px), p.get('joints', 127), p.get('verts', 10475))
            for p in persons
        ]
        for key in ('X', 'Y', 'Z', 'Yaw'):
            table[key].append([float(rng.normal()) for _ in persons])
        table['gender'].append(['female' if p.get('kid') else 'male' for p in persons])
        table['kid'].append([bool(p.get('kid', False)) for p in persons])
        table['occlusion'].append([95.0 if not p.get('valid', True) else 10.0 for p in persons])
        table['isValid'].append([bool(p.get('valid', True)) for p in persons])
        table['age'].append(['31-50' for _ in persons])
        table['ethnicity'].append(['asian' for _ in persons])
        table['gt_path_smpl'].append([f'smpl_gt/p{i}.obj' for i in range(len(persons))])
        table['gt_path_smplx'].append([f'smplx_gt/p{i}.obj' for i in range(len(persons))])
        table['gt_joints_2d'].append([a[0] for a in arrays])
        table['gt_joints_3d'].append([a[1] for a in arrays])
        table['gt_verts'].append([a[2] for a in arrays])
    return table


def _release(root: Path, layout: str = 'legacy') -> dict:
    validation = _columns(
        [
            (CAM02, 1920.0, [{}, {'valid': False}, {'kid': True}]),
            (HDRI, 50 / 36 * 3840, [{}]),
        ]
    )
    folder = root / 'validation_SMPLX' / 'SMPLX'
    folder.mkdir(parents=True)
    write_dataframe_pickle(folder / 'validation_0_withjv.pkl', validation, layout)
    train = _columns([(TRAIN, 28 / 36 * 3840, [{}])], seed=1)
    folder = root / 'train_SMPLX' / 'SMPLX'
    folder.mkdir(parents=True)
    write_dataframe_pickle(folder / 'train_3_withjv.pkl', train, layout)
    return {'validation': validation, 'train': train}


@pytest.mark.parametrize('layout', ['legacy', 'blocks'])
def test_validation_split(tmp_path: Path, layout: str) -> None:
    written = _release(tmp_path, layout)['validation']
    samples = convert_agora(tmp_path, 'validation')
    # Person 1 of the first image is invalid (occlusion > 90 %), person 2 a kid (refused).
    assert [s.sample_id for s in samples] == [
        f'AGORA/validation/{CAM02}/0',
        f'AGORA/validation/{HDRI}/0',
    ]
    first, second = samples
    assert first.image_path == str(tmp_path / '3840x2160' / 'validation' / CAM02)
    assert first.image_size_wh == (3840, 2160)
    np.testing.assert_allclose(first.intrinsics, [[1920, 0, 1920], [0, 1920, 1080], [0, 0, 1]])
    np.testing.assert_allclose(second.intrinsics[0, 0], 5333.333, atol=1e-3)
    np.testing.assert_allclose(second.intrinsics[1, 1], 5333.333, atol=1e-3)
    pixels, points, mesh = (written[k][0][0] for k in ('gt_joints_2d', 'gt_joints_3d', 'gt_verts'))
    np.testing.assert_allclose(first.vertices_cam_m, mesh, atol=1e-6)
    assert first.vertices_model == 'smplx'
    assert first.body_keypoint_layout == 'smplx'
    np.testing.assert_allclose(first.body_keypoints_3d_cam_m[:, :3], points[:76], atol=1e-6)
    np.testing.assert_allclose(first.body_keypoints_2d_px[:, :2], pixels[:76], atol=1e-3)
    # OpenPose hand order: wrist first (SMPL-X joint 20 / 21), thumb tip fifth (joint 66 / 71).
    np.testing.assert_allclose(first.left_hand_keypoints_2d_px[0, :2], pixels[20], atol=1e-3)
    np.testing.assert_allclose(first.left_hand_keypoints_2d_px[4, :2], pixels[66], atol=1e-3)
    np.testing.assert_allclose(first.right_hand_keypoints_3d_cam_m[4, :3], points[71], atol=1e-6)
    # Tight boxes: the person's around all 127 projected joints.
    np.testing.assert_allclose(
        first.person_box_xyxy, [*pixels.min(axis=0), *pixels.max(axis=0)], atol=1e-2
    )
    assert first.left_hand_box_xyxy is not None and first.right_hand_box_xyxy is not None
    # The index round trip keeps the mesh.
    again = load_index(save_index(tmp_path / 'agora.npz', samples, tmp_path))
    np.testing.assert_allclose(again[1].vertices_cam_m, samples[1].vertices_cam_m)


def test_kids_720p_and_train(tmp_path: Path) -> None:
    written = _release(tmp_path)
    samples = convert_agora(tmp_path, 'validation', resolution='1280x720', include_kids=True)
    assert [s.sample_id.split('/')[-1] for s in samples] == ['0', 'kid', '0']
    kid = samples[1]
    assert kid.image_path == str(
        tmp_path / '1280x720' / 'validation' / (CAM02[:-4] + '_1280x720.png')
    )
    assert kid.image_size_wh == (1280, 720)
    # 720p: pixels and K scale by 720 / 2160 = 1 / 3; the 3D joints do not.
    np.testing.assert_allclose(kid.intrinsics, [[640, 0, 640], [0, 640, 360], [0, 0, 1]])
    np.testing.assert_allclose(
        kid.body_keypoints_2d_px[:, :2],
        written['validation']['gt_joints_2d'][0][2][:76] / 3,
        atol=1e-3,
    )
    np.testing.assert_allclose(
        kid.body_keypoints_3d_cam_m[:, :3],
        written['validation']['gt_joints_3d'][0][2][:76],
        atol=1e-6,
    )
    train = convert_agora(tmp_path, 'train')
    assert len(train) == 1
    assert train[0].image_path == str(tmp_path / '3840x2160' / 'train_3' / TRAIN)
    np.testing.assert_allclose(train[0].intrinsics[0, 0], 2986.667, atol=1e-3)


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='evaluation server'):
        convert_agora(tmp_path, 'test')
    with pytest.raises(FileNotFoundError, match='validation_SMPLX/SMPLX'):
        convert_agora(tmp_path, 'validation')
    folder = tmp_path / 'bad'
    folder.mkdir()
    # A 'cam00' scene (18 mm) whose joints were projected with a 28 mm lens: the camera
    # rule does not hold, so the converter stops instead of storing a wrong K.
    wrong = _columns([(CAM02.replace('cam02', 'cam00'), 28 / 36 * 3840, [{}])])
    write_dataframe_pickle(folder / 'wrong.pkl', wrong)
    with pytest.raises(ValueError, match='18 mm'):
        convert_agora(tmp_path, 'validation', annotation=folder / 'wrong.pkl')
    # The SMPL dataframe (45 joints, 6890 vertices) is not the SMPL-X one.
    smpl = _columns([(CAM02, 1920.0, [{'joints': 45, 'verts': 6890}])])
    write_dataframe_pickle(folder / 'smpl.pkl', smpl)
    with pytest.raises(ValueError, match='SMPL one'):
        convert_agora(tmp_path, 'validation', annotation=folder / 'smpl.pkl')
    # The plain camera dataframe has no joints or vertices.
    plain = {k: v for k, v in smpl.items() if not k.startswith('gt_joints') and k != 'gt_verts'}
    write_dataframe_pickle(folder / 'plain.pkl', plain)
    with pytest.raises(ValueError, match='with SMPL-X joints'):
        convert_agora(tmp_path, 'validation', annotation=folder / 'plain.pkl')


class _Exploit:
    def __reduce__(self) -> tuple:
        return (print, ('never',))


def test_dataframe_reader_runs_no_code(tmp_path: Path) -> None:
    table = _columns([(CAM02, 1920.0, [{}])])
    table['gender'] = [[_Exploit()]]
    write_dataframe_pickle(tmp_path / 'bad.pkl', table)
    with pytest.raises(UnsafePickleError, match='builtins.print'):
        load_dataframe_pickle(tmp_path / 'bad.pkl')
    (tmp_path / 'dict.pkl').write_bytes(pickle.dumps({'imgPath': ['a.png']}))
    with pytest.raises(ValueError, match='DataFrame'):
        load_dataframe_pickle(tmp_path / 'dict.pkl')


def test_real_pandas_pickle(tmp_path: Path) -> None:
    pandas = pytest.importorskip('pandas')
    table = _columns([(CAM02, 1920.0, [{}, {'kid': True}])])
    frame = pandas.DataFrame(table)
    frame.iloc[[0]].to_pickle(tmp_path / 'real.pkl')
    columns = load_dataframe_pickle(tmp_path / 'real.pkl')
    assert list(columns) == list(table)
    assert columns['camYaw'] == [35.0]
    np.testing.assert_array_equal(columns['gt_verts'][0][1], table['gt_verts'][0][1])


def test_catalog_and_check(tmp_path: Path) -> None:
    _release(tmp_path)
    samples = convert('AGORA', tmp_path, include_kids=True)
    assert len(samples) == 3
    path = save_index(tmp_path / 'agora_val.npz', samples, tmp_path)
    summary = summarize_index(path, check_images=0)
    assert summary.datasets == {'AGORA': 3}
    assert summary.ground_truth['SMPL-X mesh (whole-body metrics)'] == 3
    assert summary.hand_crops == 6 and summary.hand_crops_with_body_pose == 0


def test_cli_convert_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hmr_ros.cli.main import main

    _release(tmp_path)
    out = tmp_path / 'out'
    out.mkdir()
    args = ['data', 'convert', 'AGORA', str(tmp_path), str(out / 'agora_val.npz')]
    assert main([*args, '--resolution', '1280x720']) == 0
    assert 'AGORA: 2 samples' in capsys.readouterr().out  # the kid refused
    assert main([*args, '--include-kids']) == 0
    assert main(['data', 'check', str(out), '--check-images', '0']) == 0
    report = capsys.readouterr().out
    assert 'AGORA: 3 samples' in report and 'SMPL-X mesh (whole-body metrics) 3' in report
    assert (
        main(['data', 'convert', 'AGORA', str(tmp_path), str(out / 'x.npz'), '--split', 'test'])
        == 2
    )


def test_dataframe_projected_for_720p(tmp_path: Path) -> None:
    """AGORA's project_joints --imgWidth 1280 stores 720p pixels (focal and centre / 3)."""
    table = _columns([(CAM02, 1920.0, [{}])])
    table['gt_joints_2d'] = [
        [(p - (1920.0, 1080.0)) / 3 + (640.0, 360.0) for p in table['gt_joints_2d'][0]]
    ]
    write_dataframe_pickle(tmp_path / 'df720.pkl', table)
    for resolution, factor in (('1280x720', 1.0), ('3840x2160', 3.0)):
        (sample,) = convert_agora(
            tmp_path, annotation=tmp_path / 'df720.pkl', resolution=resolution
        )
        np.testing.assert_allclose(
            sample.body_keypoints_2d_px[:, :2],
            table['gt_joints_2d'][0][0][:76] * factor,
            atol=1e-3,
        )
