"""Human3.6M (Ionescu et al., TPAMI 2014) with SMPL-X pseudo ground truth, to canonical samples.

The paper trains both adapters on Human3.6M (HMR-Adapter section 4.1) with the SMPL-X fits
SMPLer-X trains on: the NeuralAnnot fits of Moon et al. (Hand4Whole), read by SMPLer-X's
`data/Human36M/Human36M.py`. Layout of that release:

    images/<file_name>                                   e.g. s_01_act_02_subact_01_ca_01/...
    annotations/Human36M_subject<S>_data.json            COCO style: 'images' (id, file_name,
        width, height, subject, action_idx, subaction_idx, cam_idx, frame_idx) and
        'annotations' (image_id, bbox x y w h)
    annotations/Human36M_subject<S>_camera.json          cam_idx -> R (3 x 3), t (3, mm),
        f (2), c (2) pixels; x_cam = R x_world + t
    annotations/Human36M_subject<S>_joint_3d.json        action -> subaction -> frame ->
        17 x 3 world millimetres (not read: the SMPL-X fit gives every joint)
    annotations/Human36M_subject<S>_SMPLX_NeuralAnnot.json  action -> subaction -> frame ->
        root_pose (3), body_pose (63), shape (10), trans (3), and where fitted lhand_pose,
        rhand_pose (45 each, relative to the SMPL-X hand mean), jaw_pose (3), expr (10);
        world frame, metres

Splits as SMPLer-X: 'train' = subjects 1, 5, 6, 7, 8, every 5th frame; 'test' = subjects 9 and
11, every 64th frame, frontal camera 4 only. Parameters are moved into each camera with
x_cam = R x + t (t in metres): the root turns by R and the translation follows the rest
pelvis (`sample.smplx_params_to_camera`, the same compensation SMPLer-X applies). Fits without
hand poses get the mean hand (SMPLer-X's zero target) and no hand keypoints or boxes, so they
train the body adapter but never pose as hand labels. 2D keypoints are the projected SMPL-X
joints ('smplx' layout), confidence 1 inside the image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmr_ros.body_models.joint_names import (
    NUM_BODY_JOINTS,
    NUM_HAND_JOINTS,
    SIDES,
    Side,
    smplx_hand_to_openpose,
)
from hmr_ros.body_models.smplx_layers import NUM_BETAS, NUM_EXPRESSION_COEFFS, SMPLXBodyModel
from hmr_ros.datasets.sample import (
    KEYPOINT_LAYOUTS,
    Sample,
    SMPLXParams,
    keypoint_box_xyxy,
    smplx_params_to_camera,
    smplx_params_to_rotmats,
    smplx_rest_pelvis_m,
)

_LOG = logging.getLogger(__name__)

DATASET_NAME = 'Human3.6M'
H36M_SUBJECTS: dict[str, tuple[int, ...]] = {'train': (1, 5, 6, 7, 8), 'test': (9, 11)}
H36M_FRAME_STEP: dict[str, int] = {'train': 5, 'test': 64}
H36M_TEST_CAMERA = 4
"""SMPLer-X keeps only camera 4 ('frontal camera following HMR and SPIN') for testing."""
MM_PER_M = 1000.0


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(
            f'{path} not found; point root at the Human3.6M folder holding images/ and '
            'annotations/ (with the SMPLX_NeuralAnnot files of Hand4Whole / SMPLer-X)'
        )
    with path.open() as file:
        return json.load(file)


def _smplx_world(
    fit: Mapping[str, Any], body_model: SMPLXBodyModel, hands_mean: Mapping[Side, np.ndarray]
) -> tuple[SMPLXParams, bool]:
    """The fit as SMPLXParams in the world frame, and whether it has hand poses."""

    def get(key: str, size: int) -> np.ndarray:
        value = fit.get(key)
        return np.zeros(size) if value is None else np.asarray(value, np.float64).reshape(-1)

    has_hands = fit.get('lhand_pose') is not None and fit.get('rhand_pose') is not None
    betas = get('shape', NUM_BETAS)[:NUM_BETAS]
    expression = get('expr', NUM_EXPRESSION_COEFFS)[:NUM_EXPRESSION_COEFFS]
    return (
        SMPLXParams(
            global_orient_aa=get('root_pose', 3),
            body_pose_aa=get('body_pose', 3 * NUM_BODY_JOINTS).reshape(NUM_BODY_JOINTS, 3),
            left_hand_pose_aa=(get('lhand_pose', 45) + hands_mean['left']).reshape(
                NUM_HAND_JOINTS, 3
            ),
            right_hand_pose_aa=(get('rhand_pose', 45) + hands_mean['right']).reshape(
                NUM_HAND_JOINTS, 3
            ),
            jaw_pose_aa=get('jaw_pose', 3),
            betas=betas,
            expression=expression,
            transl_m=get('trans', 3),
            rest_pelvis_m=smplx_rest_pelvis_m(body_model, betas, expression),
        ),
        has_hands,
    )


@torch.no_grad()
def _projected_joints(
    body_model: SMPLXBodyModel, params: SMPLXParams, intrinsics: np.ndarray
) -> np.ndarray:
    """(76, 2) pixels of the first 76 SMPL-X joints ('smplx' layout)."""
    like = body_model.layer.shapedirs
    inputs = {k: v.to(like) for k, v in smplx_params_to_rotmats(params).items()}
    joints = body_model(**inputs).joints[0, : len(KEYPOINT_LAYOUTS['smplx'])]
    points = joints.double().cpu().numpy() @ intrinsics.T
    return points[:, :2] / points[:, 2:]


def convert_human36m(
    root: str | Path,
    body_model: SMPLXBodyModel,
    split: str = 'train',
    subjects: Sequence[int] | None = None,
    frame_step: int | None = None,
) -> list[Sample]:
    """Read Human3.6M with its SMPL-X fits into canonical samples (one per image).

    Args:
        root: the folder holding images/ and annotations/.
        body_model: SMPL-X layer (hand mean, rest pelvis, 2D joints).
        split: 'train' or 'test' (SMPLer-X's subjects, frame steps and test camera).
        subjects: override the split's subjects.
        frame_step: override the split's frame step (frame_idx % step == 0 is kept).

    Returns:
        Samples with image, intrinsics, person box, camera-frame SMPL-X parameters, 2D body
        keypoints and, for fits with hand poses, 2D hand keypoints and hand boxes.

    Raises:
        FileNotFoundError: an annotation file is missing.
    """
    if split not in H36M_SUBJECTS:
        raise ValueError(f'split must be one of {tuple(H36M_SUBJECTS)}; got {split!r}')
    root = Path(root)
    annotations = root / 'annotations'
    step = frame_step or H36M_FRAME_STEP[split]
    hands_mean = {side: body_model.hands_mean(side).double().cpu().numpy() for side in SIDES}
    layout = KEYPOINT_LAYOUTS['smplx']
    hand_rows = {side: [layout.index(n) for n in smplx_hand_to_openpose(side)] for side in SIDES}
    samples = []
    for subject in subjects or H36M_SUBJECTS[split]:
        prefix = annotations / f'Human36M_subject{subject}'
        data = _load_json(Path(f'{prefix}_data.json'))
        cameras = _load_json(Path(f'{prefix}_camera.json'))
        fits = _load_json(Path(f'{prefix}_SMPLX_NeuralAnnot.json'))
        images = {image['id']: image for image in data['images']}
        for annotation in data['annotations']:
            image = images[annotation['image_id']]
            if image['frame_idx'] % step:
                continue
            if split == 'test' and int(image['cam_idx']) != H36M_TEST_CAMERA:
                continue
            keys = (str(image['action_idx']), str(image['subaction_idx']), str(image['frame_idx']))
            fit = fits.get(keys[0], {}).get(keys[1], {}).get(keys[2])
            if fit is None:
                continue
            camera = cameras[str(image['cam_idx'])]
            rotation = np.asarray(camera['R'], dtype=np.float64).reshape(3, 3)
            translation_m = np.asarray(camera['t'], dtype=np.float64).reshape(3) / MM_PER_M
            (fx, fy), (cx, cy) = camera['f'], camera['c']
            intrinsics = np.array(((fx, 0.0, cx), (0.0, fy, cy), (0.0, 0.0, 1.0)))
            world, has_hands = _smplx_world(fit, body_model, hands_mean)
            params = smplx_params_to_camera(world, rotation, translation_m)
            width, height = int(image['width']), int(image['height'])
            pixels = _projected_joints(body_model, params, intrinsics)
            inside = (
                (pixels[:, 0] >= 0)
                & (pixels[:, 0] <= width - 1)
                & (pixels[:, 1] >= 0)
                & (pixels[:, 1] <= height - 1)
            )
            keypoints = np.concatenate((pixels, inside[:, None].astype(np.float64)), axis=1)
            x, y, w, h = (float(v) for v in annotation['bbox'])
            fields: dict[str, Any] = {}
            if has_hands:
                for side in SIDES:
                    hand = keypoints[hand_rows[side]]
                    box = keypoint_box_xyxy(hand)
                    if box is not None:
                        fields[f'{side}_hand_keypoints_2d_px'] = hand
                        fields[f'{side}_hand_box_xyxy'] = box
            samples.append(
                Sample(
                    dataset=DATASET_NAME,
                    sample_id=f'{DATASET_NAME}/{image["file_name"]}',
                    image_size_wh=(width, height),
                    image_path=str(root / 'images' / image['file_name']),
                    intrinsics=intrinsics,
                    person_box_xyxy=np.array((x, y, x + w, y + h)),
                    smplx=params,
                    body_keypoint_layout='smplx',
                    body_keypoints_2d_px=keypoints,
                    **fields,
                )
            )
    _LOG.info('%s %s: %d samples', DATASET_NAME, split, len(samples))
    return samples
