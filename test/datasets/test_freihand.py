"""FreiHAND conversion from tiny files written in the published layout."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import smplx
import torch

from hmr_ros.body_models.model_files import find_mano_file, read_body_model_file
from hmr_ros.datasets.freihand import convert_freihand
from hmr_ros.geometry.rotations import axis_angle_to_rotmat

COUNT = 3
IMAGE_HW = (12, 16)


def _write_release(root: Path, split: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Write {split}_K/xyz/mano/verts.json for COUNT samples and the first image."""
    intrinsics = np.tile(
        np.array([[500.0, 0.0, 8.0], [0.0, 480.0, 6.0], [0.0, 0.0, 1.0]]), (COUNT, 1, 1)
    )
    intrinsics[:, 0, 0] += np.arange(COUNT)
    xyz = np.array([0.0, 0.0, 0.6]) + rng.normal(scale=0.03, size=(COUNT, 21, 3))
    mano = rng.normal(scale=0.3, size=(COUNT, 1, 61))
    verts = rng.normal(size=(COUNT, 778, 3))
    files = {'K': intrinsics, 'xyz': xyz, 'mano': mano, 'verts': verts}
    for name, array in files.items():
        (root / f'{split}_{name}.json').write_text(json.dumps(array.tolist()))
    (root / split / 'rgb').mkdir(parents=True)
    cv2.imwrite(str(root / split / 'rgb' / '00000000.jpg'), np.zeros((*IMAGE_HW, 3), np.uint8))
    return files


def test_training_split_is_converted_field_by_field(tmp_path, mano_hand_model) -> None:
    rng = np.random.default_rng(0)
    files = _write_release(tmp_path, 'training', rng)
    hands_mean = mano_hand_model.hands_mean.numpy()

    samples = convert_freihand(tmp_path, hands_mean, include_vertices=True)

    assert len(samples) == 4 * COUNT
    # Version 'hom' (block 1) of sample 2 is image 2 + 1 * COUNT = 5.
    sample = samples[COUNT + 2]
    assert sample.sample_id == 'training/00000002/hom'
    assert sample.image_path == str(tmp_path / 'training' / 'rgb' / '00000005.jpg')
    assert sample.image_size_wh == (IMAGE_HW[1], IMAGE_HW[0])
    assert sample.dataset == 'FreiHAND'
    assert sample.present == frozenset(
        {
            'image_path',
            'intrinsics',
            'right_hand_box_xyxy',
            'right_mano',
            'right_hand_keypoints_2d_px',
            'right_hand_keypoints_3d_cam_m',
            'vertices_cam_m',
            'vertices_model',
        }
    )
    np.testing.assert_allclose(sample.intrinsics, files['K'][2])
    mano = files['mano'][2, 0]
    np.testing.assert_allclose(sample.right_mano.global_orient_aa, mano[:3], rtol=1e-6)
    np.testing.assert_allclose(
        sample.right_mano.hand_pose_aa.reshape(-1), mano[3:48] + hands_mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(sample.right_mano.betas, mano[48:58], rtol=1e-6)
    xyz = files['xyz'][2]
    np.testing.assert_allclose(sample.right_hand_keypoints_3d_cam_m[:, :3], xyz, rtol=1e-6)
    np.testing.assert_array_equal(sample.right_hand_keypoints_3d_cam_m[:, 3], 1.0)
    # Keypoint 7, projected by hand: u = fx x / z + cx, v = fy y / z + cy.
    fx = 502.0
    x, y, z = xyz[7]
    np.testing.assert_allclose(
        sample.right_hand_keypoints_2d_px[7],
        [fx * x / z + 8.0, 480.0 * y / z + 6.0, 1.0],
        rtol=1e-5,
    )
    uv = sample.right_hand_keypoints_2d_px[:, :2]
    np.testing.assert_allclose(sample.right_hand_box_xyxy, [*uv.min(0), *uv.max(0)], rtol=1e-6)
    np.testing.assert_allclose(sample.vertices_cam_m, files['verts'][2], rtol=1e-6)
    assert sample.vertices_model == 'mano_right'


def test_converted_pose_reproduces_freihands_mean_relative_mano(
    tmp_path, body_model_dir, mano_hand_model
) -> None:
    """FreiHAND poses MANO with flat_hand_mean=False; smplx.MANO does the same independently.

    The converted (flat-hand) parameters through our MANO layer must give the same mesh.
    """
    rng = np.random.default_rng(1)
    files = _write_release(tmp_path, 'evaluation', rng)
    sample = convert_freihand(tmp_path, mano_hand_model.hands_mean.numpy(), split='evaluation')[1]
    mano_path = find_mano_file(body_model_dir, 'right')
    reference = smplx.MANO(
        str(mano_path),
        data_struct=smplx.utils.Struct(**read_body_model_file(mano_path)),  # chumpy/scipy pickle
        is_rhand=True,
        use_pca=False,
        flat_hand_mean=False,
        num_betas=10,
    )
    mano = torch.from_numpy(files['mano'][1]).float()
    expected = reference(global_orient=mano[:, :3], hand_pose=mano[:, 3:48], betas=mano[:, 48:58])

    params = sample.right_mano
    ours = mano_hand_model(
        global_orient=axis_angle_to_rotmat(torch.from_numpy(np.array(params.global_orient_aa)))[
            None, None
        ],
        hand_pose=axis_angle_to_rotmat(torch.from_numpy(np.array(params.hand_pose_aa)))[None],
        betas=torch.from_numpy(np.array(params.betas))[None],
    )
    torch.testing.assert_close(ours.vertices, expected.vertices, atol=1e-5, rtol=0)


def test_evaluation_split_has_one_version_and_errors_say_what_is_wrong(
    tmp_path, mano_hand_model
) -> None:
    rng = np.random.default_rng(2)
    _write_release(tmp_path, 'evaluation', rng)
    mean = mano_hand_model.hands_mean.numpy()
    samples = convert_freihand(tmp_path, mean, split='evaluation')
    assert [s.sample_id for s in samples] == [f'evaluation/{i:08d}/gs' for i in range(COUNT)]
    assert 'vertices_cam_m' not in samples[0].present

    with pytest.raises(ValueError, match='versions'):
        convert_freihand(tmp_path, mean, split='evaluation', versions=('hom',))
    with pytest.raises(ValueError, match='45 values'):
        convert_freihand(tmp_path, mean[:10], split='evaluation')
    with pytest.raises(FileNotFoundError, match='training_K.json'):
        convert_freihand(tmp_path, mean, split='training')
    (tmp_path / 'evaluation_xyz.json').write_text(json.dumps(np.zeros((2, 21, 3)).tolist()))
    with pytest.raises(ValueError, match='evaluation_xyz.json has shape'):
        convert_freihand(tmp_path, mean, split='evaluation')
