"""InterHand2.6M (Moon et al., ECCV 2020) to canonical samples.

The paper trains the hand adapter on InterHand2.6M among others (HMR-Adapter section 4.1).
Layout of the release (`facebookresearch/InterHand2.6M`: `data/InterHand2.6M/dataset.py` and
`tool/MANO_world_to_camera/convert.py`), for split S in 'train', 'val', 'test':

    images/S/Capture<c>/<sequence>/cam<k>/image<frame>.jpg
    annotations/S/InterHand2.6M_S_data.json      COCO style: 'images' (id, file_name relative
        to images/S, width, height, capture, camera, frame_idx, seq_name) and 'annotations'
        (image_id, bbox x y w h, joint_valid (42), hand_type 'right'/'left'/'interacting')
    annotations/S/InterHand2.6M_S_camera.json    capture -> 'campos' / 'camrot' / 'focal' /
        'princpt', each camera -> value; world frame in millimetres, x_cam = R (x - campos)
    annotations/S/InterHand2.6M_S_joint_3d.json  capture -> frame -> 'world_coord' (42 x 3 mm)
    annotations/S/InterHand2.6M_S_MANO_NeuralAnnot.json  capture -> frame -> 'right'/'left' ->
        {'pose' (48: root + 15 fingers, axis-angle relative to MANO's mean hand, since the
        release poses smplx's MANO with flat_hand_mean False), 'shape' (10), 'trans' (3, m)}
        or null, world frame

Older copies keep the annotations in `annotations/all/` (or `human_annot/`, `machine_annot/`);
`annotation_subset` picks that folder. Joints: 21 per hand, right hand first (0-20), each hand
ordered thumb tip ... thumb base, index tip ... pinky base, wrist last (index 20 / 41); they are
reordered here into the OpenPose order of the sample format. A joint is valid where
joint_valid is 1 and the hand's wrist is valid (the release's own rule).

Each annotated image becomes one sample: both hands' MANO parameters in the camera frame
(root rotation turned by R; hand pose made flat-hand by adding MANO's mean), 3D keypoints in
metres, 2D keypoints projected with the camera's focal length and principal point, and hand
boxes around the valid 2D keypoints. There is no body, so the hand adapter sees zero guidance
on these crops, as the paper does for hand-only data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmr_ros.body_models.joint_names import (
    ANATOMICAL_FINGER_ORDER,
    NUM_HAND_JOINTS,
    NUM_HAND_KEYPOINTS,
    NUM_SEGMENTS_PER_FINGER,
    SIDES,
    Side,
)
from hmr_ros.body_models.smplx_layers import HAND_POSE_DIM
from hmr_ros.datasets.sample import MANOParams, Sample, keypoint_box_xyxy
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

_LOG = logging.getLogger(__name__)

DATASET_NAME = 'InterHand2.6M'
INTERHAND_SPLITS = ('train', 'val', 'test')
MM_PER_M = 1000.0
_JOINTS_PER_HAND = NUM_HAND_KEYPOINTS
_SIDE_OFFSET: dict[Side, int] = {'right': 0, 'left': _JOINTS_PER_HAND}
_WRIST = _JOINTS_PER_HAND - 1


def _openpose_from_interhand() -> tuple[int, ...]:
    """For each OpenPose hand keypoint, its index within one InterHand2.6M hand."""
    order = [_WRIST]
    for finger in range(len(ANATOMICAL_FINGER_ORDER)):
        # InterHand: finger f holds tip (4) .. base (1) at 4f .. 4f + 3; OpenPose base first.
        segments = NUM_SEGMENTS_PER_FINGER + 1
        order += [finger * segments + (segments - k) for k in range(1, segments + 1)]
    return tuple(order)


OPENPOSE_FROM_INTERHAND = _openpose_from_interhand()
"""openpose_keypoints = interhand_hand_joints[OPENPOSE_FROM_INTERHAND]."""


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(
            f'{path} not found; point root at the InterHand2.6M release (the folder holding '
            'images/ and annotations/)'
        )
    with path.open() as file:
        return json.load(file)


def _camera_frame_mano(
    params: Mapping[str, Any], rotation: np.ndarray, hands_mean: np.ndarray
) -> MANOParams:
    pose = np.asarray(params['pose'], dtype=np.float64).reshape(1 + NUM_HAND_JOINTS, 3)
    root = axis_angle_to_rotmat(torch.from_numpy(pose[0]))
    orient = rotmat_to_axis_angle(torch.from_numpy(rotation) @ root).numpy()
    return MANOParams(
        global_orient_aa=orient,
        hand_pose_aa=pose[1:] + hands_mean.reshape(NUM_HAND_JOINTS, 3),
        betas=np.asarray(params['shape'], dtype=np.float64),
    )


def convert_interhand(
    root: str | Path,
    mano_hands_mean: Mapping[Side, np.ndarray],
    split: str = 'train',
    annotation_subset: str = '',
) -> list[Sample]:
    """Read an InterHand2.6M split into canonical samples, one per annotated image.

    Args:
        root: the release folder (holds images/ and annotations/).
        mano_hands_mean: side -> (45,) MANO mean hand pose of MANO_{RIGHT,LEFT}.pkl
            (`MANOHandModel.from_folder(folder, side).hands_mean`).
        split: 'train', 'val' or 'test'.
        annotation_subset: annotations/<subset>/ of older copies ('all', 'human_annot',
            'machine_annot'); '' reads annotations/<split>/.

    Returns:
        Samples with intrinsics, both hands' keypoints and boxes where valid and MANO
        parameters where the release has them.

    Raises:
        FileNotFoundError: an annotation file is missing.
        ValueError: bad arguments or malformed annotations.
    """
    if split not in INTERHAND_SPLITS:
        raise ValueError(f'split must be one of {INTERHAND_SPLITS}; got {split!r}')
    means = {}
    for side in SIDES:
        mean = np.asarray(mano_hands_mean[side], dtype=np.float64).reshape(-1)
        if mean.shape != (HAND_POSE_DIM,):
            raise ValueError(f'mano_hands_mean[{side!r}] must have {HAND_POSE_DIM} values')
        means[side] = mean
    root = Path(root)
    folder = root / 'annotations' / (annotation_subset or split)
    prefix = f'InterHand2.6M_{split}'
    data = _load_json(folder / f'{prefix}_data.json')
    cameras = _load_json(folder / f'{prefix}_camera.json')
    joints = _load_json(folder / f'{prefix}_joint_3d.json')
    mano_path = folder / f'{prefix}_MANO_NeuralAnnot.json'
    mano = _load_json(mano_path) if mano_path.is_file() else {}
    if not mano:
        _LOG.warning('%s missing: samples get keypoints but no MANO parameters', mano_path)
    images = {image['id']: image for image in data['images']}
    reorder = np.array(OPENPOSE_FROM_INTERHAND)
    samples = []
    for annotation in data['annotations']:
        image = images[annotation['image_id']]
        capture, camera = str(image['capture']), str(image['camera'])
        frame = str(image['frame_idx'])
        calibration = cameras[capture]
        rotation = np.asarray(calibration['camrot'][camera], dtype=np.float64).reshape(3, 3)
        position_mm = np.asarray(calibration['campos'][camera], dtype=np.float64).reshape(3)
        fx, fy = (float(v) for v in calibration['focal'][camera])
        cx, cy = (float(v) for v in calibration['princpt'][camera])
        intrinsics = np.array(((fx, 0.0, cx), (0.0, fy, cy), (0.0, 0.0, 1.0)))
        world_mm = np.asarray(joints[capture][frame]['world_coord'], dtype=np.float64)
        camera_m = (world_mm.reshape(-1, 3) - position_mm) @ rotation.T / MM_PER_M
        valid = np.asarray(annotation['joint_valid'], dtype=np.float64).reshape(-1)
        if camera_m.shape[0] != 2 * _JOINTS_PER_HAND or valid.shape[0] != 2 * _JOINTS_PER_HAND:
            raise ValueError(f'{prefix}: capture {capture} frame {frame} needs 42 joints')
        fields: dict[str, Any] = {}
        for side in SIDES:
            offset = _SIDE_OFFSET[side]
            hand = camera_m[offset : offset + _JOINTS_PER_HAND][reorder]
            hand_valid = (
                valid[offset : offset + _JOINTS_PER_HAND][reorder] * valid[offset + _WRIST]
            )
            if not hand_valid.any():
                continue
            projected = hand @ intrinsics.T
            pixels = projected[:, :2] / projected[:, 2:]
            keypoints_2d = np.concatenate((pixels, hand_valid[:, None]), axis=1)
            box = keypoint_box_xyxy(keypoints_2d)
            if box is None:
                continue
            fields[f'{side}_hand_keypoints_2d_px'] = keypoints_2d
            fields[f'{side}_hand_keypoints_3d_cam_m'] = np.concatenate(
                (hand, hand_valid[:, None]), axis=1
            )
            fields[f'{side}_hand_box_xyxy'] = box
            params = mano.get(capture, {}).get(frame, {}).get(side)
            if params is not None:
                fields[f'{side}_mano'] = _camera_frame_mano(params, rotation, means[side])
        if not fields:
            continue
        samples.append(
            Sample(
                dataset=DATASET_NAME,
                sample_id=f'{split}/{image["file_name"]}',
                image_size_wh=(int(image['width']), int(image['height'])),
                image_path=str(root / 'images' / split / image['file_name']),
                intrinsics=intrinsics,
                **fields,
            )
        )
    return samples
