"""Tests of flip and rotation augmentation: involution, left/right swaps, consistency."""

import math

import numpy as np
import pytest
import torch
from synthetic_samples import IMAGE_WH, make_synthetic_sample, project

from hmr_ros.body_models.joint_names import BODY_JOINT_NAMES
from hmr_ros.datasets.augmentation import (
    AugmentationConfig,
    AugmentationParams,
    augment_sample,
    draw_augmentation,
    flip_sample,
    rotate_sample,
    scale_colours,
)
from hmr_ros.datasets.sample import (
    KEYPOINT_LAYOUTS,
    Sample,
    smplx_params_to_rotmats,
    smplx_rest_pelvis_m,
)
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, mirror_axis_angle

ARRAY_FIELDS = (
    'intrinsics',
    'person_box_xyxy',
    'left_hand_box_xyxy',
    'right_hand_box_xyxy',
    'body_keypoints_2d_px',
    'body_keypoints_3d_cam_m',
    'left_hand_keypoints_2d_px',
    'right_hand_keypoints_2d_px',
    'left_hand_keypoints_3d_cam_m',
    'right_hand_keypoints_3d_cam_m',
    'vertices_cam_m',
)


def _mirror(axis_angle: np.ndarray) -> np.ndarray:
    return mirror_axis_angle(torch.from_numpy(np.array(axis_angle))).numpy()


def _assert_annotations_equal(a: Sample, b: Sample, atol: float = 1e-5) -> None:
    assert a.present == b.present
    assert a.vertices_model == b.vertices_model
    for name in ARRAY_FIELDS:
        if getattr(a, name) is not None:
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=atol, err_msg=name)
    for group in ('smplx', 'left_mano', 'right_mano'):
        params = getattr(a, group)
        for name in type(params).SHAPES:
            np.testing.assert_allclose(
                getattr(getattr(b, group), name), getattr(params, name), atol=atol, err_msg=name
            )


def test_flip_twice_is_identity() -> None:
    sample = make_synthetic_sample(1)
    twice = flip_sample(flip_sample(sample))
    np.testing.assert_array_equal(twice.image, sample.image)
    _assert_annotations_equal(sample, twice)


def test_flipped_left_hand_is_the_original_right_hand_mirrored() -> None:
    """Left after the flip = right before, mirrored.

    Poses (x, y, z) -> (x, -y, -z), 3D x -> -x, 2D x -> W - 1 - x, boxes mirrored.
    """
    sample = make_synthetic_sample(2)
    flipped = flip_sample(sample)
    last_x = IMAGE_WH[0] - 1

    np.testing.assert_allclose(
        flipped.left_mano.global_orient_aa, _mirror(sample.right_mano.global_orient_aa)
    )
    np.testing.assert_allclose(
        flipped.left_mano.hand_pose_aa, _mirror(sample.right_mano.hand_pose_aa)
    )
    np.testing.assert_allclose(flipped.left_mano.betas, sample.right_mano.betas)
    np.testing.assert_allclose(
        flipped.smplx.left_hand_pose_aa, _mirror(sample.smplx.right_hand_pose_aa)
    )
    right_3d = sample.right_hand_keypoints_3d_cam_m
    np.testing.assert_allclose(flipped.left_hand_keypoints_3d_cam_m[:, 0], -right_3d[:, 0])
    np.testing.assert_allclose(flipped.left_hand_keypoints_3d_cam_m[:, 1:], right_3d[:, 1:])
    right_2d = sample.right_hand_keypoints_2d_px
    np.testing.assert_allclose(flipped.left_hand_keypoints_2d_px[:, 0], last_x - right_2d[:, 0])
    x1, y1, x2, y2 = sample.right_hand_box_xyxy
    np.testing.assert_allclose(flipped.left_hand_box_xyxy, [last_x - x2, y1, last_x - x1, y2])
    # The right MANO mesh becomes a left one, mirrored.
    assert flipped.vertices_model == 'mano_left'
    np.testing.assert_allclose(flipped.vertices_cam_m[:, 0], -sample.vertices_cam_m[:, 0])


def test_flip_swaps_body_joint_pairs() -> None:
    """body_pose of left_elbow after the flip = mirrored right_elbow before; spine stays."""
    sample = make_synthetic_sample(3)
    flipped = flip_sample(sample)
    left, right = BODY_JOINT_NAMES.index('left_elbow'), BODY_JOINT_NAMES.index('right_elbow')
    spine = BODY_JOINT_NAMES.index('spine2')
    np.testing.assert_allclose(
        flipped.smplx.body_pose_aa[left], _mirror(sample.smplx.body_pose_aa[right])
    )
    np.testing.assert_allclose(
        flipped.smplx.body_pose_aa[spine], _mirror(sample.smplx.body_pose_aa[spine])
    )
    names = KEYPOINT_LAYOUTS['smplx']
    left_knee, right_knee = names.index('left_knee'), names.index('right_knee')
    np.testing.assert_allclose(
        flipped.body_keypoints_3d_cam_m[left_knee, 1:],
        sample.body_keypoints_3d_cam_m[right_knee, 1:],
    )


@pytest.mark.parametrize('operation', ['flip', 'rotate', 'flip_and_rotate'])
def test_augmented_3d_keypoints_still_project_onto_2d_keypoints(operation) -> None:
    """The converters' invariant 2D = project(K, 3D) survives flips (cx mirrored, skew negated)
    and rotations (image warped by K R_z K^-1), for body and both hands."""
    sample = make_synthetic_sample(4)
    params = AugmentationParams(
        flip=operation != 'rotate', rotation_rad=0.0 if operation == 'flip' else 0.4
    )
    augmented = augment_sample(sample, params)
    for prefix in ('body', 'left_hand', 'right_hand'):
        points_3d = getattr(augmented, f'{prefix}_keypoints_3d_cam_m')[:, :3]
        points_2d = getattr(augmented, f'{prefix}_keypoints_2d_px')[:, :2]
        np.testing.assert_allclose(project(points_3d, augmented.intrinsics), points_2d, atol=1e-3)


def test_flipped_image_mirrors_pixels_about_w_minus_1() -> None:
    sample = make_synthetic_sample(5)
    flipped = flip_sample(sample)
    width = IMAGE_WH[0]
    np.testing.assert_array_equal(flipped.image[:, 0], sample.image[:, width - 1])
    np.testing.assert_array_equal(flipped.image[7, 10], sample.image[7, width - 1 - 10])


def test_rotation_moves_the_smplx_mesh_rigidly(smplx_body_model) -> None:
    """SMPL-X(rotated params) = R_z SMPL-X(params): global_orient and transl follow the roll
    about the camera, which needs the rest-pose pelvis (transl alone would be off)."""
    rng = np.random.default_rng(0)
    betas = rng.normal(size=10)
    base = make_synthetic_sample(6)
    params = base.smplx.__class__(
        **{
            **{name: getattr(base.smplx, name) for name in base.smplx.SHAPES},
            'betas': betas,
            'rest_pelvis_m': smplx_rest_pelvis_m(smplx_body_model, betas, base.smplx.expression),
        }
    )
    sample = base.replace(smplx=params)
    angle = 0.7
    rotated = rotate_sample(sample, angle)

    def vertices(p) -> torch.Tensor:
        inputs = smplx_params_to_rotmats(p)
        return smplx_body_model(**{k: v.float() for k, v in inputs.items()}).vertices[0]

    roll = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, angle])).float()
    torch.testing.assert_close(
        vertices(rotated.smplx), vertices(params) @ roll.T, atol=1e-4, rtol=0
    )


def test_flip_mirrors_the_smplx_pelvis(smplx_body_model) -> None:
    """After a flip the posed pelvis sits at the mirrored position (-x, y, z)."""
    betas = np.full(10, 0.3)
    base = make_synthetic_sample(7)
    params = base.smplx.__class__(
        **{
            **{name: getattr(base.smplx, name) for name in base.smplx.SHAPES},
            'betas': betas,
            'rest_pelvis_m': smplx_rest_pelvis_m(smplx_body_model, betas, base.smplx.expression),
        }
    )
    flipped = flip_sample(base.replace(smplx=params))

    def pelvis(p) -> torch.Tensor:
        inputs = smplx_params_to_rotmats(p)
        return smplx_body_model(**{k: v.float() for k, v in inputs.items()}).joints[0, 0]

    torch.testing.assert_close(
        pelvis(flipped.smplx), pelvis(params) * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-5, rtol=0
    )


def test_rotation_and_its_inverse_restore_annotations() -> None:
    sample = make_synthetic_sample(8)
    back = rotate_sample(rotate_sample(sample, 0.5), -0.5)
    for name in ('body_keypoints_2d_px', 'left_hand_keypoints_3d_cam_m', 'vertices_cam_m'):
        np.testing.assert_allclose(getattr(back, name), getattr(sample, name), atol=1e-4)
    np.testing.assert_allclose(
        back.smplx.global_orient_aa, sample.smplx.global_orient_aa, atol=1e-5
    )
    np.testing.assert_allclose(back.smplx.transl_m, sample.smplx.transl_m, atol=1e-5)


def test_rotation_without_intrinsics_is_about_the_image_centre() -> None:
    """(W-1)/2, (H-1)/2 is fixed; a quarter turn sends centre + (1, 0) to centre + (0, 1)."""
    width, height = IMAGE_WH
    keypoints = np.zeros((21, 3))
    centre = ((width - 1) / 2, (height - 1) / 2)
    keypoints[0, :2] = centre
    keypoints[1, :2] = (centre[0] + 1, centre[1])
    sample = Sample(
        'd',
        'd/0',
        IMAGE_WH,
        image=np.zeros((height, width, 3), np.uint8),
        left_hand_keypoints_2d_px=keypoints,
    )
    rotated = rotate_sample(sample, math.pi / 2)
    np.testing.assert_allclose(rotated.left_hand_keypoints_2d_px[0, :2], centre, atol=1e-9)
    np.testing.assert_allclose(
        rotated.left_hand_keypoints_2d_px[1, :2], (centre[0], centre[1] + 1), atol=1e-9
    )
    with pytest.raises(ValueError, match='needs intrinsics'):
        rotate_sample(make_synthetic_sample(0).replace(intrinsics=None), 0.1)


def test_smplx_vertices_are_dropped_by_a_flip() -> None:
    sample = make_synthetic_sample(9).replace(
        vertices_cam_m=np.zeros((10475, 3)), vertices_model='smplx'
    )
    flipped = flip_sample(sample)
    assert 'vertices_cam_m' not in flipped.present and flipped.vertices_model is None


def test_augmentations_need_pixels() -> None:
    sample = make_synthetic_sample(0).replace(image=None)
    with pytest.raises(ValueError, match='load the image'):
        flip_sample(sample)


def test_draws_respect_the_config_and_the_generator() -> None:
    config = AugmentationConfig(max_rotation_deg=10.0, scale_range=(0.9, 1.1), colour_scale=0.1)
    draws = [draw_augmentation(config, torch.Generator().manual_seed(i)) for i in range(200)]
    assert all(abs(d.rotation_rad) <= math.radians(10.0) for d in draws)
    assert all(0.9 <= d.scale <= 1.1 for d in draws)
    assert all(0.9 <= f <= 1.1 for d in draws for f in d.colour_factors)
    assert 60 < sum(d.flip for d in draws) < 140
    assert draw_augmentation(config, torch.Generator().manual_seed(3)) == draws[3]
    none = AugmentationConfig(flip_probability=0.0, rotation_probability=0.0)
    assert not draw_augmentation(none).flip and draw_augmentation(none).rotation_rad == 0.0
    with pytest.raises(ValueError, match='scale_range'):
        AugmentationConfig(scale_range=(1.2, 0.8))


def test_scale_colours_multiplies_channels_and_clips() -> None:
    image = torch.full((3, 2, 2), 0.6)
    scaled = scale_colours(image, (0.5, 1.0, 2.0))
    torch.testing.assert_close(scaled[:, 0, 0], torch.tensor([0.3, 0.6, 1.0]))
