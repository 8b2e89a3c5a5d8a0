"""3DPW conversion from a tiny sequence file in the release's layout.

Outside facts (3DPW readme): 'jointPositions' holds the 24 SMPL joints per actor in the world
frame (N x 72), 'cam_poses' the world-to-camera 4 x 4 matrices per frame, 'campose_valid'
which frames are aligned, 'poses2d' COCO-18 detections as N x 3 x 18; images are
imageFiles/<sequence>/image_<frame:05d>.jpg. The files are Python 2 pickles (protocol 2).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from hmr_ros.datasets.sample import load_index, save_index
from hmr_ros.datasets.threedpw import convert_3dpw


def _sequence(root: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = 3
    joints = rng.normal(scale=0.3, size=(frames, 24, 3))
    joints[..., 2] += 0.0  # world frame; the camera puts the person 4 m ahead
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    cam_poses[:, 2, 3] = 4.0
    cam_poses[1, :3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # 90 degrees about y
    detections = np.zeros((frames, 3, 18))
    detections[:, :2] = 500.0
    detections[:, 2, 0] = 0.9  # one confident detection (the nose) at (500, 500)
    data = {
        'sequence': 'downtown_walking_00',
        'jointPositions': [joints.reshape(frames, 72)],
        'poses': [rng.normal(size=(frames, 72))],
        'betas': [rng.normal(size=10)],
        'trans': [rng.normal(size=(frames, 3))],
        'genders': ['m'],
        'poses2d': [detections],
        'campose_valid': [np.array([1, 1, 0])],
        'cam_poses': cam_poses,
        'cam_intrinsics': np.array([[1960.0, 0, 540.0], [0, 1969.0, 960.0], [0, 0, 1]]),
        'img_frame_ids': np.arange(frames),
    }
    folder = root / 'sequenceFiles' / 'test'
    folder.mkdir(parents=True)
    with (folder / 'downtown_walking_00.pkl').open('wb') as file:
        pickle.dump(data, file, protocol=2)
    return joints


def test_3dpw_test_sequence(tmp_path: Path) -> None:
    joints = _sequence(tmp_path)
    samples = convert_3dpw(tmp_path, 'test')
    assert [s.sample_id for s in samples] == [
        '3DPW/downtown_walking_00/00000/0',
        '3DPW/downtown_walking_00/00001/0',
    ]  # frame 2: campose_valid 0
    first, second = samples
    assert first.image_path.endswith('imageFiles/downtown_walking_00/image_00000.jpg')
    assert first.image_size_wh == (1080, 1920)
    assert first.body_keypoint_layout == 'smpl24'
    np.testing.assert_allclose(first.body_keypoints_3d_cam_m[:, :3], joints[0] + (0, 0, 4), 1e-6)
    # Frame 1: x_cam = R x + t with R mapping world z to camera x and world x to camera -z.
    expected = np.stack((joints[1, :, 2], joints[1, :, 1], 4.0 - joints[1, :, 0]), axis=-1)
    np.testing.assert_allclose(second.body_keypoints_3d_cam_m[:, :3], expected, atol=1e-6)
    pelvis = expected[0]
    np.testing.assert_allclose(
        second.body_keypoints_2d_px[0, :2],
        (540.0 + 1960.0 * pelvis[0] / pelvis[2], 960.0 + 1969.0 * pelvis[1] / pelvis[2]),
        rtol=1e-5,
    )
    # The box covers the projected joints and the confident detection at (500, 500).
    box = first.person_box_xyxy
    assert box[0] <= 500 <= box[2] and box[1] <= 500 <= box[3]
    again = load_index(save_index(tmp_path / '3dpw.npz', samples))
    assert again[1].body_keypoint_layout == 'smpl24'


def test_missing_split(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='sequenceFiles/validation'):
        convert_3dpw(tmp_path, 'validation')
