"""Tests of the crop dataset and the DataLoader factory on tiny synthetic samples."""

import dataclasses
import time

import cv2
import numpy as np
import pytest
import torch
from synthetic_samples import IMAGE_WH, make_synthetic_sample

from hmr_ros.datasets.augmentation import AugmentationConfig
from hmr_ros.datasets.loader import CropDataset, LoaderConfig, _crop, make_data_loader
from hmr_ros.datasets.sample import KEYPOINT_LAYOUTS, Sample
from hmr_ros.geometry.crops import apply_affine, crop_images, crop_to_image_affine
from hmr_ros.geometry.rotations import mirror_axis_angle

BODY_HW = (32, 24)
HAND_HW = (16, 16)


def _write_images(tmp_path, samples: list[Sample]) -> list[Sample]:
    """Store each sample's pixels as PNG (lossless) and drop the in-memory copy."""
    stored = []
    for sample in samples:
        path = tmp_path / f'{sample.sample_id.replace("/", "_")}.png'
        cv2.imwrite(str(path), cv2.cvtColor(np.array(sample.image), cv2.COLOR_RGB2BGR))
        stored.append(sample.replace(image=None, image_path=str(path)))
    return stored


def test_window_crop_equals_a_crop_of_the_whole_image() -> None:
    """Cropping only the window under the crop gives the full-image crop's pixels."""
    image = np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    center, size = torch.tensor([31.3, 12.8]), torch.tensor([20.0, 26.0])
    crop, affine = _crop(image, center, size, BODY_HW)
    whole = crop_images(
        torch.from_numpy(image).permute(2, 0, 1)[None], center[None], size[None], BODY_HW
    )
    torch.testing.assert_close(crop, whole[0] / 255.0)
    torch.testing.assert_close(affine, crop_to_image_affine(center[None], size[None], BODY_HW)[0])


def test_body_items_have_fixed_shapes_and_keypoints_map_back_to_the_image(tmp_path) -> None:
    samples = _write_images(tmp_path, [make_synthetic_sample(0), make_synthetic_sample(1)])
    dataset = CropDataset(samples, LoaderConfig(mode='body', crop_hw=BODY_HW))
    item = dataset[1]

    assert item['image'].shape == (3, *BODY_HW) and item['image'].dtype == torch.float32
    assert 0.0 <= float(item['image'].min()) and float(item['image'].max()) <= 1.0
    assert item['body_keypoints_2d'].shape == (len(KEYPOINT_LAYOUTS['smplx']), 3)
    assert item['hand_keypoints_2d'].shape == (2, 21, 3)
    assert item['vertices'].shape == (10475, 3) and not bool(item['has_vertices'])  # MANO mesh
    assert bool(item['has_smplx']) and bool(item['has_hand_box'].all())
    sample = samples[1]
    back = apply_affine(item['body_keypoints_2d'][None, :, :2], item['crop_to_image'][None])[0]
    torch.testing.assert_close(
        back, torch.from_numpy(np.array(sample.body_keypoints_2d_px[:, :2])), atol=1e-3, rtol=0
    )
    left_box = apply_affine(item['hand_boxes_xyxy'][0].view(1, 2, 2), item['crop_to_image'][None])[
        0
    ]
    torch.testing.assert_close(
        left_box.reshape(4),
        torch.from_numpy(np.array(sample.left_hand_box_xyxy)),
        atol=1e-3,
        rtol=0,
    )
    torch.testing.assert_close(item['smplx_betas'], torch.from_numpy(np.array(sample.smplx.betas)))


def test_body_keypoints_are_matched_into_the_layout_by_name(tmp_path) -> None:
    """An OpenPose BODY_25 sample in the 'smplx' layout: left_elbow is copied, MidHip lands on
    the pelvis, and SMPL-X joints OpenPose lacks (spine1) get confidence 0."""
    base = make_synthetic_sample(2)
    body25 = np.zeros((25, 3), np.float32)
    body25[:, 0] = np.arange(25) + 1.0
    body25[:, 1] = 10.0
    body25[:, 2] = 1.0
    sample = base.replace(
        body_keypoint_layout='openpose_body25',
        body_keypoints_2d_px=body25,
        body_keypoints_3d_cam_m=None,
    )
    item = CropDataset([sample], LoaderConfig(crop_hw=BODY_HW))[0]
    names = KEYPOINT_LAYOUTS['smplx']
    back = apply_affine(item['body_keypoints_2d'][None, :, :2], item['crop_to_image'][None])[0]
    assert float(back[names.index('left_elbow'), 0]) == pytest.approx(7.0, abs=1e-3)  # BODY_25 #6
    assert float(back[names.index('pelvis'), 0]) == pytest.approx(9.0, abs=1e-3)  # MidHip #8
    assert float(item['body_keypoints_2d'][names.index('spine1'), 2]) == 0.0
    assert float(item['body_keypoints_3d'].abs().sum()) == 0.0


def test_hand_items_show_left_hands_as_flipped_right_hands(tmp_path) -> None:
    sample = _write_images(tmp_path, [make_synthetic_sample(3)])[0]
    dataset = CropDataset([sample], LoaderConfig(mode='hand', crop_hw=HAND_HW))
    assert len(dataset) == 2
    right, left = dataset[1], dataset[0]
    assert bool(left['is_left']) and not bool(right['is_left'])
    assert left['image'].shape == (3, *HAND_HW)

    mirrored = mirror_axis_angle(torch.from_numpy(np.array(sample.left_mano.hand_pose_aa)))
    torch.testing.assert_close(left['mano_hand_pose_aa'], mirrored)
    torch.testing.assert_close(
        right['mano_hand_pose_aa'], torch.from_numpy(np.array(sample.right_mano.hand_pose_aa))
    )
    # The left hand's keypoints map back to the flipped image: x -> W - 1 - x.
    back = apply_affine(left['hand_keypoints_2d'][None, :, :2], left['crop_to_image'][None])[0]
    expected = np.array(sample.left_hand_keypoints_2d_px[:, :2])
    expected[:, 0] = IMAGE_WH[0] - 1 - expected[:, 0]
    torch.testing.assert_close(back, torch.from_numpy(expected), atol=1e-3, rtol=0)
    # The arm guidance of a flipped left hand is the body's mirrored left side.
    torch.testing.assert_close(
        left['smplx_right_hand_pose_aa'],
        mirror_axis_angle(torch.from_numpy(np.array(sample.smplx.left_hand_pose_aa))),
    )
    assert bool(right['has_vertices']) and not bool(left['has_vertices'])


def test_samples_without_boxes_are_skipped_and_an_empty_set_is_an_error() -> None:
    bare = Sample('d', 'd/0', IMAGE_WH, image=np.zeros((IMAGE_WH[1], IMAGE_WH[0], 3), np.uint8))
    assert len(CropDataset([bare, make_synthetic_sample(4)], LoaderConfig(crop_hw=BODY_HW))) == 1
    with pytest.raises(ValueError, match='no sample has a hand box'):
        CropDataset([bare], LoaderConfig(mode='hand'))
    with pytest.raises(ValueError, match='mode must be'):
        LoaderConfig(mode='face')  # type: ignore[arg-type]


def test_same_seed_gives_the_same_augmented_batches(tmp_path) -> None:
    samples = _write_images(tmp_path, [make_synthetic_sample(i) for i in range(4)])
    config = LoaderConfig(
        crop_hw=BODY_HW, augmentation=AugmentationConfig(), batch_size=2, num_workers=0, seed=7
    )
    first = next(iter(make_data_loader(samples, config)))
    again = next(iter(make_data_loader(samples, config)))
    torch.testing.assert_close(first['image'], again['image'])
    torch.testing.assert_close(first['body_keypoints_2d'], again['body_keypoints_2d'])
    other = next(iter(make_data_loader(samples, dataclasses.replace(config, seed=8))))
    assert not torch.equal(first['image'], other['image'])


def test_worker_processes_deliver_full_batches_in_bounded_time(tmp_path) -> None:
    """Two workers, augmentation on, one epoch of 8 items in batches of 4 (timeout 60 s)."""
    samples = _write_images(tmp_path, [make_synthetic_sample(i) for i in range(4)])
    config = LoaderConfig(
        mode='hand',
        crop_hw=HAND_HW,
        augmentation=AugmentationConfig(),
        batch_size=4,
        num_workers=2,
        timeout_s=60.0,
    )
    start = time.monotonic()
    batches = list(make_data_loader(samples, config))
    assert time.monotonic() - start < 60.0
    assert len(batches) == 2
    for batch in batches:
        assert batch['image'].shape == (4, 3, *HAND_HW)
        assert batch['mano_hand_pose_aa'].shape == (4, 15, 3)
        assert bool(torch.isfinite(batch['hand_keypoints_2d']).all())
    indices = torch.cat([b['sample_index'] for b in batches])
    assert sorted(indices.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
