"""FreiHAND (Zimmermann et al., ICCV 2019) to canonical samples.

The paper trains the hand adapter on FreiHAND among others (HMR-Adapter section 4.1). Layout of
the published release (`lmb-freiburg/freihand: utils/fh_utils.py`), for split S in 'training'
and 'evaluation':

    S_K.json       N camera matrices, 3 x 3, pixels
    S_xyz.json     N x 21 x 3 keypoints, metres, camera frame; order wrist, then thumb, index,
                   middle, ring, pinky from base to tip (= OpenPose hand order)
    S_mano.json    N x 1 x 61: 48 pose (3 global rotation + 45 finger rotations, axis-angle,
                   relative to MANO's mean hand pose, since FreiHAND poses its model with
                   flat_hand_mean=False), 10 shape, 2 root pixel position, 1 scale
    S_verts.json   N x 778 x 3 MANO vertices, metres, camera frame (optional here)
    S/rgb/%08d.jpg images, 224 x 224; the training set stores every sample in 4 versions
                   with different backgrounds at index i + k N, k = 0 'gs' (green screen),
                   1 'hom', 2 'sample', 3 'auto'; the evaluation set only 'gs'

FreiHAND shows right hands only. Each sample gets: the image path, intrinsics, right-hand MANO
parameters converted to the flat-hand convention (finger poses + MANO's `hands_mean`), the
21 keypoints in 3D and projected to 2D (confidence 1), the right-hand box around the 2D
keypoints, and optionally the MANO mesh. Vertices make the index large (778 x 3 floats per
sample and version: about 1.2 GB for all training versions); leave them out for training,
where the mesh follows from the MANO parameters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hmr_ros.body_models.joint_names import NUM_HAND_JOINTS, NUM_HAND_KEYPOINTS
from hmr_ros.body_models.smplx_layers import HAND_POSE_DIM, MANO_NUM_VERTICES, NUM_BETAS
from hmr_ros.datasets.sample import MANOParams, Sample, keypoint_box_xyxy

_LOG = logging.getLogger(__name__)

DATASET_NAME = 'FreiHAND'
FREIHAND_VERSIONS: tuple[str, ...] = ('gs', 'hom', 'sample', 'auto')
"""Background versions of each training sample, in the order of their image index blocks."""
FREIHAND_SPLITS: tuple[str, ...] = ('training', 'evaluation')
FREIHAND_IMAGE_SIZE_WH = (224, 224)

_GLOBAL_ORIENT_DIM = 3
_MANO_POSE_DIM = _GLOBAL_ORIENT_DIM + HAND_POSE_DIM  # 48
_MANO_PARAM_DIM = _MANO_POSE_DIM + NUM_BETAS + 2 + 1  # 61: pose, shape, root uv, scale


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(
            f'{path} not found; point root at the unpacked FreiHAND release (the folder that '
            'holds training_K.json and training/rgb)'
        )
    with path.open() as file:
        return json.load(file)


def _image_size_wh(root: Path, split: str) -> tuple[int, int]:
    """Size of the split's first image, or the published 224 x 224 when it is not there."""
    first = root / split / 'rgb' / f'{0:08d}.jpg'
    image = cv2.imread(str(first), cv2.IMREAD_UNCHANGED) if first.is_file() else None
    if image is None:
        _LOG.warning('cannot read %s; assuming FreiHAND images are 224 x 224', first)
        return FREIHAND_IMAGE_SIZE_WH
    return int(image.shape[1]), int(image.shape[0])


def convert_freihand(
    root: str | Path,
    mano_hands_mean: np.ndarray,
    split: str = 'training',
    versions: Sequence[str] | None = None,
    include_vertices: bool = False,
) -> list[Sample]:
    """Read a FreiHAND split into canonical samples.

    Args:
        root: folder of the release (holds `{split}_K.json` and `{split}/rgb/`).
        mano_hands_mean: (45,) mean hand pose of MANO_RIGHT.pkl, axis-angle
            (`MANOHandModel.from_folder(folder).hands_mean`); added to FreiHAND's finger poses
            to get the flat-hand convention of the sample format.
        split: 'training' or 'evaluation'.
        versions: background versions to include; None takes all of the split (the
            evaluation split has only 'gs').
        include_vertices: also store the 778 MANO vertices of each sample.

    Returns:
        One sample per (version, index), version-major like the image files.

    Raises:
        FileNotFoundError: a required file is missing.
        ValueError: bad arguments or files of inconsistent length or shape.
    """
    root = Path(root)
    if split not in FREIHAND_SPLITS:
        raise ValueError(f'split must be one of {FREIHAND_SPLITS}; got {split!r}')
    available = FREIHAND_VERSIONS if split == 'training' else FREIHAND_VERSIONS[:1]
    versions = available if versions is None else tuple(versions)
    if not versions or any(v not in available for v in versions):
        raise ValueError(
            f'versions must be a non-empty subset of {available} for the {split} split; '
            f'got {versions}'
        )
    hands_mean = np.asarray(mano_hands_mean, dtype=np.float64).reshape(-1)
    if hands_mean.shape != (HAND_POSE_DIM,):
        raise ValueError(
            f'mano_hands_mean must have {HAND_POSE_DIM} values; got {hands_mean.size}'
        )

    intrinsics = np.asarray(_load_json(root / f'{split}_K.json'), dtype=np.float64)
    xyz = np.asarray(_load_json(root / f'{split}_xyz.json'), dtype=np.float64)
    mano = np.asarray(_load_json(root / f'{split}_mano.json'), dtype=np.float64)
    count = len(intrinsics)
    mano = mano.reshape(count, -1) if mano.size == count * _MANO_PARAM_DIM else mano
    expected: dict[str, tuple[np.ndarray, tuple[int, ...]]] = {
        'K': (intrinsics, (count, 3, 3)),
        'xyz': (xyz, (count, NUM_HAND_KEYPOINTS, 3)),
        'mano': (mano, (count, _MANO_PARAM_DIM)),
    }
    vertices = None
    if include_vertices:
        vertices = np.asarray(_load_json(root / f'{split}_verts.json'), dtype=np.float32)
        expected['verts'] = (vertices, (count, MANO_NUM_VERTICES, 3))
    for name, (array, shape) in expected.items():
        if array.shape != shape:
            raise ValueError(
                f'{split}_{name}.json has shape {array.shape}; expected {shape} (files of one '
                'release must list the same samples)'
            )

    image_size = _image_size_wh(root, split)
    # 2D keypoints: pinhole projection of the 3D keypoints with each sample's K.
    homogeneous = np.einsum('nij,nkj->nki', intrinsics, xyz)
    keypoints_2d = homogeneous[..., :2] / homogeneous[..., 2:]
    ones = np.ones((count, NUM_HAND_KEYPOINTS, 1))
    keypoints_2d = np.concatenate((keypoints_2d, ones), axis=-1)
    keypoints_3d = np.concatenate((xyz, ones), axis=-1)
    global_orient = mano[:, :_GLOBAL_ORIENT_DIM]
    hand_pose = (mano[:, _GLOBAL_ORIENT_DIM:_MANO_POSE_DIM] + hands_mean).reshape(
        count, NUM_HAND_JOINTS, 3
    )
    betas = mano[:, _MANO_POSE_DIM : _MANO_POSE_DIM + NUM_BETAS]

    samples = []
    for version in versions:
        offset = FREIHAND_VERSIONS.index(version) * count
        for i in range(count):
            samples.append(
                Sample(
                    dataset=DATASET_NAME,
                    sample_id=f'{split}/{i:08d}/{version}',
                    image_size_wh=image_size,
                    image_path=str(root / split / 'rgb' / f'{i + offset:08d}.jpg'),
                    intrinsics=intrinsics[i],
                    right_hand_box_xyxy=keypoint_box_xyxy(keypoints_2d[i]),
                    right_mano=MANOParams(
                        global_orient_aa=global_orient[i],
                        hand_pose_aa=hand_pose[i],
                        betas=betas[i],
                    ),
                    right_hand_keypoints_2d_px=keypoints_2d[i],
                    right_hand_keypoints_3d_cam_m=keypoints_3d[i],
                    vertices_cam_m=None if vertices is None else vertices[i],
                    vertices_model=None if vertices is None else 'mano_right',
                )
            )
    return samples
