"""InterHand2.6M conversion from tiny files in the release's layout.

Outside facts (facebookresearch/InterHand2.6M: data/InterHand2.6M/dataset.py,
tool/MANO_world_to_camera/convert.py): joints 0-20 are the right hand, 21-41 the left, each
ordered R_Thumb_4 (tip), R_Thumb_3, R_Thumb_2, R_Thumb_1, R_Index_4 ... R_Pinky_1, R_Wrist;
world coordinates are millimetres and x_cam = camrot (x_world - campos); MANO 'pose' is
relative to the mean hand and the camera rotation multiplies the root rotation; a joint counts
only when the hand's wrist is valid.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hmr_ros.datasets.interhand import convert_interhand

ROTATION = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # 90 degrees about z
CAMPOS_MM = [100.0, 0.0, 0.0]
FOCAL = [1200.0, 1100.0]
PRINCPT = [160.0, 120.0]


def _release(root: Path, left_wrist_valid: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    world = np.tile([100.0, 0.0, 2000.0], (42, 1)) + rng.normal(scale=30.0, size=(42, 3))
    world[20] = (100.0, 0.0, 2000.0)  # right wrist: on the optical axis, 2 m away
    world[0] = (1100.0, 0.0, 2000.0)  # right thumb tip: 1 m along world x
    valid = np.ones(42)
    valid[41] = left_wrist_valid
    valid[5] = 0.0  # R_Index_3
    folder = root / 'annotations' / 'train'
    folder.mkdir(parents=True)
    prefix = folder / 'InterHand2.6M_train'
    file_name = 'Capture0/ROM01_No_Interaction_2_Hand/cam400002/image0451.jpg'
    data = {
        'images': [
            {
                'id': 7,
                'file_name': file_name,
                'width': 334,
                'height': 512,
                'capture': 0,
                'camera': '400002',
                'frame_idx': 451,
                'seq_name': 'ROM01_No_Interaction_2_Hand',
            }
        ],
        'annotations': [
            {
                'id': 3,
                'image_id': 7,
                'bbox': [0, 0, 10, 10],
                'joint_valid': valid.tolist(),
                'hand_type': 'interacting',
                'hand_type_valid': 1,
            }
        ],
    }
    cameras = {
        '0': {
            'campos': {'400002': CAMPOS_MM},
            'camrot': {'400002': ROTATION},
            'focal': {'400002': FOCAL},
            'princpt': {'400002': PRINCPT},
        }
    }
    joints = {
        '0': {
            '451': {
                'world_coord': world.tolist(),
                'joint_valid': valid.tolist(),
                'hand_type': 'interacting',
                'hand_type_valid': True,
            }
        }
    }
    pose = np.zeros(48)
    pose[3:] = 0.1
    mano = {
        '0': {
            '451': {
                'right': {'pose': pose.tolist(), 'shape': [0.5] * 10, 'trans': [0.1, 0.0, 2.0]},
                'left': None,
            }
        }
    }
    for name, value in (
        ('data', data),
        ('camera', cameras),
        ('joint_3d', joints),
        ('MANO_NeuralAnnot', mano),
    ):
        Path(f'{prefix}_{name}.json').write_text(json.dumps(value))
    return world


def test_interhand_release(tmp_path: Path) -> None:
    world = _release(tmp_path)
    means = {'right': np.full(45, 0.2), 'left': np.full(45, -0.2)}
    (sample,) = convert_interhand(tmp_path, means, 'train')
    assert sample.image_path.endswith(
        'images/train/Capture0/ROM01_No_Interaction_2_Hand/cam400002/image0451.jpg'
    )
    assert sample.image_size_wh == (334, 512)
    right = sample.right_hand_keypoints_3d_cam_m
    # OpenPose row 0 is the wrist (InterHand row 20): on the optical axis at 2 m.
    np.testing.assert_allclose(right[0, :3], (0.0, 0.0, 2.0), atol=1e-9)
    # Row 4 is the thumb tip (InterHand row 0): world +1 m in x is camera +1 m in y (R).
    np.testing.assert_allclose(right[4, :3], (0.0, 1.0, 2.0), atol=1e-9)
    # Row 1 is the thumb base (InterHand R_Thumb_1, row 3).
    expected = (world[3] - CAMPOS_MM) @ np.array(ROTATION).T / 1000.0
    np.testing.assert_allclose(right[1, :3], expected, atol=1e-9)
    # R_Index_3 (InterHand row 5, the DIP joint) is invalid: OpenPose index3, row 7.
    assert right[7, 3] == 0.0 and right[:, 3].sum() == 20
    pixels = sample.right_hand_keypoints_2d_px
    np.testing.assert_allclose(pixels[0, :2], PRINCPT, atol=1e-9)
    np.testing.assert_allclose(pixels[4, :2], (160.0, 120.0 + 1100.0 * 0.5), atol=1e-9)
    # MANO: world root identity turned by R = 90 degrees about z; fingers + the mean.
    np.testing.assert_allclose(sample.right_mano.global_orient_aa, (0, 0, math.pi / 2), atol=1e-9)
    np.testing.assert_allclose(sample.right_mano.hand_pose_aa, np.full((15, 3), 0.3), atol=1e-6)
    assert sample.left_mano is None  # null in the release
    assert sample.left_hand_keypoints_2d_px is not None


def test_invalid_wrist_drops_the_hand(tmp_path: Path) -> None:
    _release(tmp_path, left_wrist_valid=0.0)
    (sample,) = convert_interhand(tmp_path, {'right': np.zeros(45), 'left': np.zeros(45)})
    assert sample.left_hand_box_xyxy is None and sample.left_hand_keypoints_3d_cam_m is None
    assert sample.right_hand_box_xyxy is not None


def test_missing_annotations_say_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='InterHand2.6M_val_data.json'):
        convert_interhand(tmp_path, {'right': np.zeros(45), 'left': np.zeros(45)}, 'val')
