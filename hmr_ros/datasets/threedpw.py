"""3DPW (von Marcard et al., ECCV 2018) to canonical samples: SMPL ground truth, body metrics.

The paper evaluates body-only reconstruction on the 3DPW test split (HMR-Adapter section 4.1,
Table 2). Layout of the release (its readme):

    imageFiles/<sequence>/image_<frame:05d>.jpg
    sequenceFiles/{train,validation,test}/<sequence>.pkl   Python 2 pickles of dicts:
        'sequence' name; per actor (lists of one or two): 'poses' (N x 72 SMPL, world),
        'betas', 'trans', 'genders' ('m' / 'f'), 'jointPositions' (N x 72: the 24 SMPL joints,
        world frame, metres), 'poses2d' (N x 3 x 18: OpenPose COCO-18 detections x, y,
        confidence), 'campose_valid' (N: whether the camera pose is aligned to the image);
        per frame: 'cam_poses' (N x 4 x 4 world-to-camera), 'img_frame_ids'; and
        'cam_intrinsics' (3 x 3)

Each valid (frame, actor) becomes one sample with the 24 SMPL joints in the camera frame
(layout 'smpl24', x_cam = cam_pose [x, 1]) as 3D keypoints, their projections as 2D keypoints,
the intrinsics, and a person box around the projected joints and the confident COCO-18
detections. The SMPL mesh itself needs the licensed SMPL model and is not stored, so Table 2's
PVE is left out unless SMPL vertices are added (see docs/datasets.md). Pickles are read with
the numpy-only unpickler.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hmr_ros.datasets.safe_pickle import load_numpy_pickle
from hmr_ros.datasets.sample import SMPL_LAYOUT, Sample, keypoint_box_xyxy

_LOG = logging.getLogger(__name__)

DATASET_NAME = '3DPW'
PW3D_SPLITS = ('train', 'validation', 'test')
PW3D_IMAGE_SIZE_WH = (1080, 1920)
"""3DPW's portrait phone frames, used when the first image cannot be read."""
NUM_SMPL_JOINTS = 24
DETECTION_MIN_CONFIDENCE = 0.3
"""COCO-18 detections at or below this confidence do not shape the person box."""


def _image_size(folder: Path) -> tuple[int, int]:
    first = folder / 'image_00000.jpg'
    image = cv2.imread(str(first), cv2.IMREAD_UNCHANGED) if first.is_file() else None
    if image is None:
        _LOG.warning('cannot read %s; assuming 3DPW frames are 1080 x 1920', first)
        return PW3D_IMAGE_SIZE_WH
    return int(image.shape[1]), int(image.shape[0])


def _sequence_samples(root: Path, path: Path) -> list[Sample]:
    data: dict[str, Any] = load_numpy_pickle(path)
    name = str(data['sequence'])
    folder = root / 'imageFiles' / name
    size = _image_size(folder)
    intrinsics = np.asarray(data['cam_intrinsics'], dtype=np.float64).reshape(3, 3)
    cam_poses = np.asarray(data['cam_poses'], dtype=np.float64)
    samples = []
    for actor, positions in enumerate(data['jointPositions']):
        joints_world = np.asarray(positions, dtype=np.float64).reshape(-1, NUM_SMPL_JOINTS, 3)
        valid = np.asarray(data['campose_valid'][actor]).astype(bool).reshape(-1)
        detections = np.asarray(data['poses2d'][actor], dtype=np.float64)
        for frame in range(len(joints_world)):
            if not valid[frame]:
                continue
            pose = cam_poses[frame]
            joints = joints_world[frame] @ pose[:3, :3].T + pose[:3, 3]
            projected = joints @ intrinsics.T
            pixels = projected[:, :2] / projected[:, 2:]
            ones = np.ones((NUM_SMPL_JOINTS, 1))
            detected = detections[frame].T  # (18, 3)
            confident = detected[detected[:, 2] > DETECTION_MIN_CONFIDENCE, :2]
            box = keypoint_box_xyxy(
                np.concatenate(
                    (np.vstack((pixels, confident)), np.ones((len(pixels) + len(confident), 1))),
                    axis=1,
                )
            )
            samples.append(
                Sample(
                    dataset=DATASET_NAME,
                    sample_id=f'{DATASET_NAME}/{name}/{frame:05d}/{actor}',
                    image_size_wh=size,
                    image_path=str(folder / f'image_{frame:05d}.jpg'),
                    intrinsics=intrinsics,
                    person_box_xyxy=box,
                    body_keypoint_layout=SMPL_LAYOUT,
                    body_keypoints_2d_px=np.concatenate((pixels, ones), axis=1),
                    body_keypoints_3d_cam_m=np.concatenate((joints, ones), axis=1),
                )
            )
    return samples


def convert_3dpw(root: str | Path, split: str = 'test') -> list[Sample]:
    """Read a 3DPW split into canonical samples: sequences sorted, then actor, then frame.

    Args:
        root: the release folder (holds imageFiles/ and sequenceFiles/).
        split: 'train', 'validation' or 'test'.

    Raises:
        FileNotFoundError: no sequence files for the split.
        UnsafePickleError: a sequence file asks for more than numpy data.
    """
    if split not in PW3D_SPLITS:
        raise ValueError(f'split must be one of {PW3D_SPLITS}; got {split!r}')
    root = Path(root)
    files = sorted((root / 'sequenceFiles' / split).glob('*.pkl'))
    if not files:
        raise FileNotFoundError(
            f'no {root}/sequenceFiles/{split}/*.pkl; point root at the unpacked 3DPW release'
        )
    samples: list[Sample] = []
    for path in files:
        samples += _sequence_samples(root, path)
    _LOG.info('%s %s: %d samples from %d sequences', DATASET_NAME, split, len(samples), len(files))
    return samples
