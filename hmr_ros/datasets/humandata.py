"""SMPLer-X's HumanData files (ARCTIC, BEDLAM, RICH, ...) to canonical samples.

SMPLer-X trains and tests on its preprocessed data sets, one mmhuman3d "HumanData" `.npz` per
split (SMPLer-X `data/humandata.py`, `HumanDataset.load_data`), in
`<data_dir>/preprocessed_datasets/` with the images under `<data_dir>/<DATASET>/`:

    ARCTIC  p1_train.npz, p1_val.npz   (ARCTIC protocol p1; 'val' is the test split)
    BEDLAM  bedlam_train.npz           (training only)
    RICH    rich_train.npz             (training only)

HMR-Adapter trains its adapters on BEDLAM and RICH (with Human3.6M, FreiHAND, InterHand2.6M)
and evaluates on ARCTIC as SMPLer-X does (section 4.1), so these files are the published
layout the paper's numbers come from. Keys read (N samples):

    image_path        (N,) str, relative to the data set's image folder
    bbox_xywh         (N, 5) person box x, y, w, h and a confidence
    lhand_bbox_xywh,
    rhand_bbox_xywh   (N, 5) hand boxes; confidence 0 marks an absent hand (optional)
    smplx             0-d object array holding a dict of (N, ...) arrays: global_orient,
                      body_pose (21 x 3), left_hand_pose, right_hand_pose (15 x 3, relative to
                      the SMPL-X hand mean: SMPLer-X's layer keeps flat_hand_mean False),
                      jaw_pose, betas (10; BEDLAM has 11, SMPLer-X keeps 10), transl,
                      expression (optional); camera frame
    meta              0-d object dict, optional: height, width (N,) and, when the set has
                      them, focal_length and principal_point (N, 2) pixels
    keypoints2d_smplx (N, 144, 3), optional, with keypoints2d_smplx_mask (144,): the 144
                      joints of the SMPL-X layer with face contour (55 joints, 21 vertex
                      keypoints, 68 face landmarks); the first 76 are our 'smplx' layout
    __keypoints_compressed__  when true, keypoint arrays hold only the mask's valid columns

The object members (`smplx`, `meta`) are read with the numpy-only unpickler
(`datasets.safe_pickle`), never with `allow_pickle=True`. ARCTIC's egocentric view (camera
folder 0 in `images/<subject>/<sequence>/<view>/<frame>.jpg`) shows only hands; SMPLer-X and the
paper leave it out of the test, `exclude_views` does so.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmr_ros.body_models.joint_names import (
    NUM_BODY_JOINTS,
    NUM_HAND_JOINTS,
    SIDES,
    smplx_hand_to_openpose,
)
from hmr_ros.body_models.smplx_layers import NUM_BETAS, NUM_EXPRESSION_COEFFS, SMPLXBodyModel
from hmr_ros.datasets.safe_pickle import load_npz_member
from hmr_ros.datasets.sample import (
    KEYPOINT_LAYOUTS,
    Sample,
    SMPLXParams,
    smplx_rest_pelvis_batch_m,
)

_LOG = logging.getLogger(__name__)

__all__ = [
    'ARCTIC_EGOCENTRIC_VIEW',
    'HUMANDATA_FILES',
    'HUMANDATA_SMPLX_KEYPOINTS',
    'convert_humandata',
]

HUMANDATA_SMPLX_KEYPOINTS = 144
"""Keypoints of mmhuman3d's 'smplx' convention (the SMPL-X layer's joints with face contour)."""

HUMANDATA_FILES: dict[str, dict[str, str]] = {
    'ARCTIC': {'train': 'p1_train.npz', 'test': 'p1_val.npz'},
    'BEDLAM': {'train': 'bedlam_train.npz'},
    'RICH': {'train': 'rich_train.npz'},
}
"""SMPLer-X's file name per data set and split (data/<DATASET>/<DATASET>.py)."""

ARCTIC_TEST_SAMPLE_INTERVAL = 10
"""SMPLer-X's ARCTIC test_sample_interval (data/ARCTIC/ARCTIC.py)."""
ARCTIC_EGOCENTRIC_VIEW = '0'
"""ARCTIC's head-mounted camera folder."""

_SMPLX_KEYS = {
    'global_orient': (3,),
    'body_pose': (NUM_BODY_JOINTS, 3),
    'left_hand_pose': (NUM_HAND_JOINTS, 3),
    'right_hand_pose': (NUM_HAND_JOINTS, 3),
    'jaw_pose': (3,),
}


def _xywh_to_xyxy(box: np.ndarray) -> np.ndarray:
    x, y, w, h = (float(v) for v in box[:4])
    return np.array((x, y, x + w, y + h))


def _keypoints_2d(npz: Path, files: Sequence[str], compressed: bool) -> np.ndarray | None:
    if 'keypoints2d_smplx' not in files:
        return None
    with np.load(npz, allow_pickle=False) as archive:
        keypoints = np.asarray(archive['keypoints2d_smplx'], dtype=np.float32)
        mask = (
            np.asarray(archive['keypoints2d_smplx_mask'], dtype=np.float32)
            if 'keypoints2d_smplx_mask' in files
            else np.ones(HUMANDATA_SMPLX_KEYPOINTS, np.float32)
        )
    if compressed:
        full = np.zeros((len(keypoints), HUMANDATA_SMPLX_KEYPOINTS, 3), np.float32)
        full[:, mask > 0] = keypoints
        keypoints = full
    if keypoints.shape[1:] != (HUMANDATA_SMPLX_KEYPOINTS, 3):
        raise ValueError(
            f'{npz}: keypoints2d_smplx must be (N, {HUMANDATA_SMPLX_KEYPOINTS}, 3); got '
            f'{keypoints.shape}'
        )
    keypoints = keypoints.copy()
    keypoints[:, :, 2] *= mask[None] > 0
    return keypoints


def _smplx_arrays(npz: Path, count: int) -> dict[str, np.ndarray]:
    table = load_npz_member(npz, 'smplx')
    params = table.item() if table.shape == () else table[0]
    if not isinstance(params, dict):
        raise ValueError(f'{npz}: smplx must hold a dict of parameter arrays')
    out: dict[str, np.ndarray] = {}
    for key, shape in _SMPLX_KEYS.items():
        if key not in params:
            raise ValueError(
                f'{npz}: smplx has no {key!r} (has {sorted(params)}); the adapters need full '
                'SMPL-X labels'
            )
        out[key] = np.asarray(params[key], dtype=np.float64).reshape(count, *shape)
    betas = np.asarray(params.get('betas', np.zeros((count, NUM_BETAS))), dtype=np.float64)
    out['betas'] = betas.reshape(count, -1)[:, :NUM_BETAS]
    expression = params.get('expression', np.zeros((count, NUM_EXPRESSION_COEFFS)))
    out['expression'] = np.asarray(expression, dtype=np.float64).reshape(count, -1)[
        :, :NUM_EXPRESSION_COEFFS
    ]
    out['transl'] = np.asarray(params.get('transl', np.zeros((count, 3))), np.float64).reshape(
        count, 3
    )
    return out


def _meta(npz: Path, files: Sequence[str]) -> dict[str, Any]:
    if 'meta' not in files:
        return {}
    table = load_npz_member(npz, 'meta')
    meta = table.item() if table.shape == () else table[0]
    return meta if isinstance(meta, dict) else {}


def convert_humandata(
    npz: str | Path,
    image_root: str | Path,
    body_model: SMPLXBodyModel,
    dataset: str,
    sample_interval: int = 1,
    exclude_views: Sequence[str] = (),
    image_size_wh: tuple[int, int] | None = None,
) -> list[Sample]:
    """Read one SMPLer-X HumanData file into canonical samples.

    Args:
        npz: the HumanData file (e.g. preprocessed_datasets/p1_val.npz).
        image_root: the folder its image_path entries are relative to (e.g. <data_dir>/ARCTIC).
        body_model: SMPL-X layer: its hand mean turns the mean-relative hand poses into the
            flat-hand convention and it gives each shape's rest pelvis.
        dataset: name stored in the samples ('ARCTIC', 'BEDLAM', 'RICH').
        sample_interval: keep every k-th sample (SMPLer-X tests ARCTIC with 10).
        exclude_views: camera folder names to leave out (ARCTIC: ('0',), egocentric).
        image_size_wh: (W, H) of every image when meta lacks height/width.

    Returns:
        One sample per kept entry: image path, person and hand boxes, SMPL-X parameters in the
        camera frame, intrinsics when meta has them, and 2D body and hand keypoints when the
        file has keypoints2d_smplx.

    Raises:
        FileNotFoundError: no such file.
        ValueError: keys missing or of the wrong shape.
    """
    npz = Path(npz)
    if not npz.is_file():
        raise FileNotFoundError(
            f"{npz} not found; download SMPLer-X's preprocessed HumanData files (SMPLer-X "
            'README, "Preprocessed data sets") into <data_dir>/preprocessed_datasets'
        )
    if sample_interval < 1:
        raise ValueError(f'sample_interval must be >= 1; got {sample_interval}')
    with zipfile.ZipFile(npz) as archive:
        files = [name.removesuffix('.npy') for name in archive.namelist()]
    with np.load(npz, allow_pickle=False) as archive:
        image_paths = [str(p) for p in archive['image_path']]
        person_boxes = np.asarray(archive['bbox_xywh'], dtype=np.float64)
        hand_boxes = {
            side: np.asarray(archive[f'{side[0]}hand_bbox_xywh'], dtype=np.float64)
            if f'{side[0]}hand_bbox_xywh' in files
            else None
            for side in SIDES
        }
        compressed = (
            bool(archive['__keypoints_compressed__'])
            if ('__keypoints_compressed__' in files)
            else False
        )
    count = len(image_paths)
    params = _smplx_arrays(npz, count)
    meta = _meta(npz, files)
    keypoints = _keypoints_2d(npz, files, compressed)

    keep = [
        i
        for i in range(0, count, sample_interval)
        if not exclude_views or Path(image_paths[i]).parent.name not in exclude_views
    ]
    _LOG.info('%s: %d of %d entries of %s kept', dataset, len(keep), count, npz.name)
    if not keep:
        return []
    pelvis = smplx_rest_pelvis_batch_m(
        body_model, params['betas'][keep], params['expression'][keep]
    )
    hand_means = {
        side: body_model.hands_mean(side).detach().cpu().double().numpy().reshape(-1, 3)
        for side in SIDES
    }
    layout = KEYPOINT_LAYOUTS['smplx']
    hand_rows = {
        side: [layout.index(name) for name in smplx_hand_to_openpose(side)] for side in SIDES
    }
    root = Path(image_root)
    samples = []
    for position, i in enumerate(keep):
        if image_size_wh is not None:
            size = image_size_wh
        elif 'width' in meta and 'height' in meta:
            size = (
                int(np.asarray(meta['width']).reshape(-1)[i]),
                int(np.asarray(meta['height']).reshape(-1)[i]),
            )
        else:
            raise ValueError(f'{npz}: meta has no height/width; pass image_size_wh')
        fields: dict[str, Any] = {}
        if 'focal_length' in meta and 'principal_point' in meta:
            focal = np.asarray(meta['focal_length'], dtype=np.float64).reshape(count, -1)[i]
            centre = np.asarray(meta['principal_point'], dtype=np.float64).reshape(count, 2)[i]
            fx, fy = (focal[0], focal[-1])
            fields['intrinsics'] = np.array(((fx, 0, centre[0]), (0, fy, centre[1]), (0, 0, 1)))
        for side in SIDES:
            boxes = hand_boxes[side]
            if boxes is not None and boxes[i, 4] > 0:
                fields[f'{side}_hand_box_xyxy'] = _xywh_to_xyxy(boxes[i])
        if keypoints is not None:
            fields['body_keypoint_layout'] = 'smplx'
            fields['body_keypoints_2d_px'] = keypoints[i, : len(layout)]
            for side in SIDES:
                fields[f'{side}_hand_keypoints_2d_px'] = keypoints[i, hand_rows[side]]
        samples.append(
            Sample(
                dataset=dataset,
                sample_id=f'{dataset}/{image_paths[i]}',
                image_size_wh=size,
                image_path=str(root / image_paths[i]),
                person_box_xyxy=_xywh_to_xyxy(person_boxes[i]),
                smplx=SMPLXParams(
                    global_orient_aa=params['global_orient'][i],
                    body_pose_aa=params['body_pose'][i],
                    left_hand_pose_aa=params['left_hand_pose'][i] + hand_means['left'],
                    right_hand_pose_aa=params['right_hand_pose'][i] + hand_means['right'],
                    jaw_pose_aa=params['jaw_pose'][i],
                    betas=params['betas'][i],
                    expression=params['expression'][i],
                    transl_m=params['transl'][i],
                    rest_pelvis_m=pelvis[position],
                ),
                **fields,
            )
        )
    return samples
