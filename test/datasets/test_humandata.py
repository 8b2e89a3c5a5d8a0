"""SMPLer-X HumanData conversion (ARCTIC, BEDLAM, RICH) from tiny files in that layout.

The files are written as SMPLer-X's preprocessing writes them (numpy.savez of mmhuman3d's
HumanData dict): 'smplx' and 'meta' are 0-d object arrays holding dicts; boxes are x, y, w, h,
confidence; hand poses are relative to the SMPL-X hand mean (SMPLer-X's layer keeps
flat_hand_mean False); keypoints2d_smplx has the 144 SMPL-X layer joints with face contour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.datasets.humandata import convert_humandata
from hmr_ros.datasets.safe_pickle import UnsafePickleError
from hmr_ros.datasets.sample import load_index, save_index, smplx_rest_pelvis_m

COUNT = 4
PATHS = [
    'images/s05/box_use_01/0/00010.jpg',  # ARCTIC egocentric view
    'images/s05/box_use_01/1/00010.jpg',
    'images/s05/box_use_01/2/00010.jpg',
    'images/s05/box_use_01/3/00010.jpg',
]


def _write(path: Path, compressed: bool = False, meta: bool = True) -> dict:
    rng = np.random.default_rng(0)
    smplx = {
        'global_orient': rng.normal(size=(COUNT, 3)),
        'body_pose': rng.normal(scale=0.2, size=(COUNT, 63)),  # flat, as some files store it
        'left_hand_pose': rng.normal(scale=0.2, size=(COUNT, 15, 3)),
        'right_hand_pose': rng.normal(scale=0.2, size=(COUNT, 15, 3)),
        'jaw_pose': rng.normal(scale=0.1, size=(COUNT, 3)),
        'betas': rng.normal(size=(COUNT, 11)),  # BEDLAM's 11 betas; SMPLer-X keeps 10
        'transl': rng.normal(size=(COUNT, 3)) + (0, 0, 3),
        'expression': rng.normal(size=(COUNT, 10)),
    }
    keypoints = rng.uniform(0, 500, size=(COUNT, 144, 3)).astype(np.float32)
    keypoints[..., 2] = 1.0
    mask = np.ones(144, np.float32)
    mask[100:] = 0  # face landmarks absent
    arrays = {
        'image_path': np.array(PATHS),
        'bbox_xywh': np.tile([10.0, 20.0, 100.0, 200.0, 1.0], (COUNT, 1)),
        'lhand_bbox_xywh': np.tile([30.0, 40.0, 20.0, 25.0, 1.0], (COUNT, 1)),
        'rhand_bbox_xywh': np.tile([60.0, 40.0, 20.0, 25.0, 0.0], (COUNT, 1)),  # absent
        'smplx': np.array(smplx, dtype=object),
        'keypoints2d_smplx': keypoints[:, mask > 0] if compressed else keypoints,
        'keypoints2d_smplx_mask': mask,
        '__keypoints_compressed__': np.array(compressed),
    }
    if meta:
        arrays['meta'] = np.array(
            {
                'height': [480] * COUNT,
                'width': [640] * COUNT,
                'focal_length': np.tile([1000.0, 1010.0], (COUNT, 1)),
                'principal_point': np.tile([320.0, 240.0], (COUNT, 1)),
            },
            dtype=object,
        )
    np.savez(path, **arrays)
    return {'smplx': smplx, 'keypoints': keypoints, 'mask': mask}


def test_arctic_test_split(tmp_path: Path, smplx_body_model: SMPLXBodyModel) -> None:
    written = _write(tmp_path / 'p1_val.npz')
    samples = convert_humandata(
        tmp_path / 'p1_val.npz',
        tmp_path / 'ARCTIC',
        smplx_body_model,
        'ARCTIC',
        exclude_views=('0',),
    )
    assert [s.sample_id.split('/')[-2] for s in samples] == ['1', '2', '3']  # view 0 dropped
    first = samples[0]
    assert first.image_path == str(tmp_path / 'ARCTIC' / PATHS[1])
    assert first.image_size_wh == (640, 480)
    assert first.person_box_xyxy.tolist() == [10.0, 20.0, 110.0, 220.0]  # x, y, w, h -> xyxy
    assert first.left_hand_box_xyxy.tolist() == [30.0, 40.0, 50.0, 65.0]
    assert first.right_hand_box_xyxy is None  # confidence 0
    assert first.intrinsics.tolist() == [[1000, 0, 320], [0, 1010, 240], [0, 0, 1]]
    smplx = written['smplx']
    np.testing.assert_allclose(first.smplx.body_pose_aa.reshape(-1), smplx['body_pose'][1])
    np.testing.assert_allclose(first.smplx.betas, smplx['betas'][1, :10], rtol=1e-6)
    # Mean-relative hands become the flat-hand convention: + the model file's hands_mean.
    mean = smplx_body_model.hands_mean('left').numpy().reshape(15, 3)
    np.testing.assert_allclose(
        first.smplx.left_hand_pose_aa, smplx['left_hand_pose'][1] + mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        first.smplx.rest_pelvis_m,
        smplx_rest_pelvis_m(smplx_body_model, smplx['betas'][1, :10], smplx['expression'][1]),
        atol=1e-5,
    )
    # 2D: the first 76 layer joints; hands in OpenPose order (wrist = SMPL-X joint 20/21,
    # thumb tip = vertex keypoint 'left_thumb', joint 66 of the layer).
    np.testing.assert_array_equal(first.body_keypoints_2d_px, written['keypoints'][1, :76])
    np.testing.assert_array_equal(first.left_hand_keypoints_2d_px[0], written['keypoints'][1, 20])
    np.testing.assert_array_equal(first.left_hand_keypoints_2d_px[4], written['keypoints'][1, 66])
    np.testing.assert_array_equal(first.right_hand_keypoints_2d_px[0], written['keypoints'][1, 21])
    # The index round trip keeps everything.
    again = load_index(save_index(tmp_path / 'arctic.npz', samples, tmp_path / 'ARCTIC'))
    assert again[2].smplx.transl_m.tolist() == samples[2].smplx.transl_m.tolist()


def test_interval_compressed_keypoints_and_missing_meta(
    tmp_path: Path, smplx_body_model: SMPLXBodyModel
) -> None:
    written = _write(tmp_path / 'rich_train.npz', compressed=True, meta=False)
    with pytest.raises(ValueError, match='image_size_wh'):
        convert_humandata(tmp_path / 'rich_train.npz', tmp_path, smplx_body_model, 'RICH')
    samples = convert_humandata(
        tmp_path / 'rich_train.npz',
        tmp_path,
        smplx_body_model,
        'RICH',
        sample_interval=2,
        image_size_wh=(64, 48),
    )
    assert len(samples) == 2 and samples[1].sample_id.endswith(PATHS[2])
    assert samples[0].intrinsics is None
    expected = written['keypoints'][2, :76].copy()
    np.testing.assert_array_equal(samples[1].body_keypoints_2d_px, expected)  # decompressed


def test_object_members_never_run_code(tmp_path: Path, smplx_body_model: SMPLXBodyModel) -> None:
    class Exploit:
        def __reduce__(self) -> tuple:
            return (print, ('never',))

    path = tmp_path / 'bad.npz'
    _write(path)
    arrays = dict(np.load(path, allow_pickle=True))
    arrays['smplx'] = np.array(Exploit(), dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(UnsafePickleError):
        convert_humandata(path, tmp_path, smplx_body_model, 'BEDLAM')
