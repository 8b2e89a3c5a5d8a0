"""Tests of the canonical sample: validation, layouts, index files, rest pelvis."""

import numpy as np
import pytest
import torch
from synthetic_samples import make_synthetic_sample

from hmr_ros.body_models.joint_names import SMPLX_JOINT_INDEX, flip_permutation, mirror_name
from hmr_ros.datasets.sample import (
    KEYPOINT_LAYOUTS,
    Sample,
    keypoint_box_xyxy,
    load_index,
    save_index,
    smplx_params_to_rotmats,
    smplx_rest_pelvis_m,
)


def test_present_lists_the_fields_given() -> None:
    minimal = Sample('d', 'd/0', (4, 3), image_path='x.jpg')
    assert minimal.present == frozenset({'image_path'})
    full = make_synthetic_sample(0)
    assert {'smplx', 'left_mano', 'right_mano', 'intrinsics', 'vertices_cam_m'} <= full.present
    assert 'image' in full.present


def test_arrays_are_read_only_copies() -> None:
    sample = make_synthetic_sample(0)
    with pytest.raises(ValueError, match='read-only'):
        sample.intrinsics[0, 0] = 1.0
    with pytest.raises(ValueError, match='read-only'):
        sample.smplx.betas[0] = 1.0
    pixels = np.zeros((3, 4, 3), np.uint8)
    with_pixels = Sample('d', 'd/0', (4, 3), image=pixels)
    pixels[0, 0, 0] = 1  # the caller's array stays writable ...
    with pytest.raises(ValueError, match='read-only'):
        with_pixels.image[0, 0, 0] = 2  # ... the sample's view of it is not


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'image_path': None, 'image': None}, 'image_path or image'),
        ({'intrinsics': np.eye(4)}, r'intrinsics must have shape \(3, 3\)'),
        ({'body_keypoint_layout': 'openpose_body25'}, 'has 25 keypoints; got 76'),
        ({'body_keypoint_layout': 'coco'}, 'unknown keypoint layout'),
        ({'vertices_model': None}, 'together'),
        ({'image': np.zeros((5, 5, 3), np.uint8)}, 'image must be'),
    ],
)
def test_inconsistent_samples_are_rejected(changes, message) -> None:
    with pytest.raises((ValueError, KeyError), match=message):
        make_synthetic_sample(0).replace(**changes)


def test_every_layout_is_closed_under_mirroring() -> None:
    """Each left/right name has its partner, and the permutation is an involution."""
    for names in KEYPOINT_LAYOUTS.values():
        perm = flip_permutation(names)
        assert [perm[i] for i in perm] == list(range(len(names)))
    smplx = KEYPOINT_LAYOUTS['smplx']
    perm = flip_permutation(smplx)
    assert smplx[perm[SMPLX_JOINT_INDEX['left_elbow']]] == 'right_elbow'
    assert smplx[perm[SMPLX_JOINT_INDEX['pelvis']]] == 'pelvis'
    assert mirror_name('left_eye_smplhf') == 'right_eye_smplhf'
    with pytest.raises(ValueError, match='mirror partner'):
        flip_permutation(('left_wrist', 'nose'))


def test_keypoint_box_ignores_unconfident_points() -> None:
    keypoints = np.array([[1.0, 2.0, 1.0], [5.0, 9.0, 0.9], [100.0, 100.0, 0.0]])
    np.testing.assert_array_equal(keypoint_box_xyxy(keypoints), [1.0, 2.0, 5.0, 9.0])
    assert keypoint_box_xyxy(keypoints, min_confidence=0.95) is None


def _assert_same_sample(a: Sample, b: Sample) -> None:
    assert a.present - {'image'} == b.present - {'image'}
    for name in a.present - {'image', 'image_path', 'smplx', 'left_mano', 'right_mano'}:
        value = getattr(a, name)
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(getattr(b, name), value, rtol=1e-6, atol=1e-6)
        else:
            assert getattr(b, name) == value
    for group in ('smplx', 'left_mano', 'right_mano'):
        params_a, params_b = getattr(a, group), getattr(b, group)
        if params_a is None:
            assert params_b is None
            continue
        for name in type(params_a).SHAPES:
            np.testing.assert_allclose(getattr(params_b, name), getattr(params_a, name), rtol=1e-6)


def test_index_round_trip_with_a_moved_image_root(tmp_path) -> None:
    """Samples survive save/load; image paths follow the image root when it moves."""
    root = tmp_path / 'data'
    full = make_synthetic_sample(0).replace(image_path=str(root / 'rgb' / '0.jpg'))
    sparse = Sample('synthetic', 'synthetic/1', (48, 36), image_path=str(root / 'rgb' / '1.jpg'))
    path = save_index(tmp_path / 'index' / 'synthetic', [full, sparse], image_root=root)
    assert path.name == 'synthetic.npz' and path.is_file()

    loaded = load_index(path, image_root=tmp_path / 'moved')

    assert [s.sample_id for s in loaded] == ['synthetic/0', 'synthetic/1']
    assert loaded[0].image_path == str(tmp_path / 'moved' / 'rgb' / '0.jpg')
    assert loaded[1].present == frozenset({'image_path'})
    _assert_same_sample(full, loaded[0])
    assert load_index(path)[1].image_path == str(root / 'rgb' / '1.jpg')


def test_index_rejects_mixed_layouts_and_images_without_paths(tmp_path) -> None:
    sample = make_synthetic_sample(0)
    other = sample.replace(
        sample_id='other',
        body_keypoint_layout='openpose_coco18',
        body_keypoints_2d_px=np.zeros((18, 3)),
        body_keypoints_3d_cam_m=np.zeros((18, 4)),
    )
    with pytest.raises(ValueError, match='different shapes'):
        save_index(tmp_path / 'x.npz', [sample, other])
    no_path = sample.replace(image_path=None)
    with pytest.raises(ValueError, match='need image_path'):
        save_index(tmp_path / 'y.npz', [no_path])


def test_rest_pelvis_is_where_the_posed_pelvis_sits_without_rotation(
    smplx_body_model,
) -> None:
    """With identity rotations the pelvis of SMPL-X(params) is rest_pelvis + transl."""
    betas = np.linspace(-1.0, 1.0, 10)
    pelvis = smplx_rest_pelvis_m(smplx_body_model, betas)
    sample = make_synthetic_sample(0)
    params = sample.smplx.__class__(
        **{
            **{name: getattr(sample.smplx, name) for name in sample.smplx.SHAPES},
            'global_orient_aa': np.zeros(3),
            'betas': betas,
            'expression': np.zeros(10),
            'rest_pelvis_m': pelvis,
        }
    )
    inputs = smplx_params_to_rotmats(params)
    joints = smplx_body_model(**{k: v.float() for k, v in inputs.items()}).joints
    torch.testing.assert_close(
        joints[0, 0], torch.from_numpy(pelvis + params.transl_m), atol=1e-5, rtol=0
    )
