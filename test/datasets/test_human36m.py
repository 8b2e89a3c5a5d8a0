"""Human3.6M + SMPL-X NeuralAnnot conversion from tiny files in the release's layout.

Outside facts (SMPLer-X data/Human36M/Human36M.py, Hand4Whole's process_human_model_output):
training subjects 1, 5, 6, 7, 8 every 5th frame; test subjects 9, 11 every 64th frame and only
camera 4; camera 't' is millimetres and x_cam = R x_world + t; the fit is in the world frame and
the mesh in the camera is R (mesh_world) + t. The expected camera-frame mesh below is built that
way, from the world-frame mesh, independently of the converter's parameter transform.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.datasets.human36m import convert_human36m
from hmr_ros.datasets.sample import SMPLXParams, smplx_params_to_rotmats, smplx_rest_pelvis_m
from hmr_ros.geometry.rotations import axis_angle_to_rotmat

ROTATION_AA = np.array([0.3, -1.2, 0.4])
T_MM = np.array([120.0, -80.0, 4500.0])


def _fit(rng: np.random.Generator, hands: bool) -> dict:
    fit = {
        'root_pose': rng.normal(scale=0.5, size=3).tolist(),
        'body_pose': rng.normal(scale=0.2, size=63).tolist(),
        'shape': rng.normal(size=10).tolist(),
        'trans': rng.normal(scale=0.3, size=3).tolist(),
    }
    if hands:
        fit.update(
            lhand_pose=rng.normal(scale=0.2, size=45).tolist(),
            rhand_pose=rng.normal(scale=0.2, size=45).tolist(),
            jaw_pose=[0.1, 0.0, 0.0],
            expr=rng.normal(size=10).tolist(),
        )
    return fit


def _subject(root: Path, subject: int, frames: list[int], cameras: list[int]) -> dict:
    rng = np.random.default_rng(subject)
    annotations = root / 'annotations'
    annotations.mkdir(parents=True, exist_ok=True)
    images, anns, fits = [], [], {'2': {'1': {}}}
    for frame in frames:
        fits['2']['1'][str(frame)] = _fit(rng, hands=frame % 2 == 0)
        for cam in cameras:
            image_id = len(images)
            images.append(
                {
                    'id': image_id,
                    'width': 1000,
                    'height': 1002,
                    'subject': subject,
                    'action_idx': 2,
                    'subaction_idx': 1,
                    'cam_idx': cam,
                    'frame_idx': frame,
                    'file_name': f's_{subject:02d}_act_02_subact_01_ca_{cam:02d}/'
                    f's_{subject:02d}_act_02_subact_01_ca_{cam:02d}_{frame + 1:06d}.jpg',
                }
            )
            anns.append({'id': image_id, 'image_id': image_id, 'bbox': [300, 200, 400, 700]})
    rotation = axis_angle_to_rotmat(torch.tensor(ROTATION_AA)).numpy()
    camera = {
        'R': rotation.tolist(),
        't': T_MM.tolist(),
        'f': [1145.0, 1143.8],
        'c': [512.5, 515.4],
    }
    prefix = annotations / f'Human36M_subject{subject}'
    Path(f'{prefix}_data.json').write_text(json.dumps({'images': images, 'annotations': anns}))
    Path(f'{prefix}_camera.json').write_text(json.dumps({str(c): camera for c in cameras}))
    Path(f'{prefix}_joint_3d.json').write_text('{}')
    Path(f'{prefix}_SMPLX_NeuralAnnot.json').write_text(json.dumps(fits))
    return fits


def _mesh(body_model: SMPLXBodyModel, params: SMPLXParams) -> np.ndarray:
    like = body_model.layer.shapedirs
    inputs = {k: v.to(like) for k, v in smplx_params_to_rotmats(params).items()}
    return body_model(**inputs).vertices[0].detach().double().numpy()


def test_train_split_in_the_camera_frame(tmp_path: Path, smplx_body_model: SMPLXBodyModel) -> None:
    fits = _subject(tmp_path, 1, frames=[0, 3, 10], cameras=[1, 4])
    samples = convert_human36m(tmp_path, smplx_body_model, 'train', subjects=[1])
    assert [s.sample_id[-10:-4] for s in samples] == ['000001', '000001', '000011', '000011']
    sample = samples[0]
    assert sample.person_box_xyxy.tolist() == [300.0, 200.0, 700.0, 900.0]
    assert sample.intrinsics[0].tolist() == [1145.0, 0.0, 512.5]
    fit = fits['2']['1']['0']
    mean = {s: smplx_body_model.hands_mean(s).numpy() for s in ('left', 'right')}
    betas, expression = np.array(fit['shape']), np.array(fit['expr'])
    world = SMPLXParams(
        global_orient_aa=np.array(fit['root_pose']),
        body_pose_aa=np.array(fit['body_pose']).reshape(21, 3),
        left_hand_pose_aa=(np.array(fit['lhand_pose']) + mean['left']).reshape(15, 3),
        right_hand_pose_aa=(np.array(fit['rhand_pose']) + mean['right']).reshape(15, 3),
        jaw_pose_aa=np.array(fit['jaw_pose']),
        betas=betas,
        expression=expression,
        transl_m=np.array(fit['trans']),
        rest_pelvis_m=smplx_rest_pelvis_m(smplx_body_model, betas, expression),
    )
    rotation = axis_angle_to_rotmat(torch.tensor(ROTATION_AA)).numpy()
    expected = _mesh(smplx_body_model, world) @ rotation.T + T_MM / 1000.0
    np.testing.assert_allclose(_mesh(smplx_body_model, sample.smplx), expected, atol=2e-5)
    np.testing.assert_allclose(sample.smplx.left_hand_pose_aa, world.left_hand_pose_aa, atol=1e-6)
    # Hands fitted: keypoints and boxes; 2D = projection of the 3D joints.
    assert sample.left_hand_box_xyxy is not None and sample.body_keypoint_layout == 'smplx'
    # Frame 10 (even) has hands, frame 3 is dropped; a hand-less fit gets no hand boxes.


def test_fits_without_hands_give_no_hand_labels(
    tmp_path: Path, smplx_body_model: SMPLXBodyModel
) -> None:
    _subject(tmp_path, 5, frames=[5], cameras=[2])
    (sample,) = convert_human36m(tmp_path, smplx_body_model, 'train', subjects=[5])
    assert sample.left_hand_box_xyxy is None and sample.right_hand_keypoints_2d_px is None
    mean = smplx_body_model.hands_mean('right').numpy().reshape(15, 3)
    np.testing.assert_allclose(sample.smplx.right_hand_pose_aa, mean, atol=1e-6)


def test_test_split_keeps_camera_4_every_64th_frame(
    tmp_path: Path, smplx_body_model: SMPLXBodyModel
) -> None:
    _subject(tmp_path, 9, frames=[0, 5, 64], cameras=[1, 4])
    _subject(tmp_path, 11, frames=[128], cameras=[4])
    samples = convert_human36m(tmp_path, smplx_body_model, 'test')
    assert [s.sample_id.split('/')[-1] for s in samples] == [
        's_09_act_02_subact_01_ca_04_000001.jpg',
        's_09_act_02_subact_01_ca_04_000065.jpg',
        's_11_act_02_subact_01_ca_04_000129.jpg',
    ]
    with pytest.raises(FileNotFoundError, match='Human36M_subject7_data.json'):
        convert_human36m(tmp_path, smplx_body_model, 'train', subjects=[7])
