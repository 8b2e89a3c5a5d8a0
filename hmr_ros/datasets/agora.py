"""AGORA (Patel et al., CVPR 2021) to canonical samples: SMPL-X meshes in the camera frame.

AGORA renders scanned people into synthetic scenes at 3840 x 2160 (and downscaled 1280 x 720)
and publishes its ground truth as pickled pandas DataFrames, one row per image (the AGORA
evaluation code's `docs/gt_dataframe.md` and `projection.py`). Only the train and validation
labels are public; the test split is scored by AGORA's server. Layout read (as the parsing code
SMPLer-X and Hand4Whole ship, `tool/AGORA/agora2coco.py`):

    ROOT/{train,validation}_SMPLX/SMPLX/*.pkl   the "Camera dataframe with SMPL-X joints and
        vertices" (train_<k>_withjv.pkl ..., validation_<k>_withjv.pkl); per row:
        imgPath    image file name ('..._00000.png')
        X, Y, Z, Yaw, gender, kid, occlusion, isValid, age, ethnicity, gt_path_smplx,
                   gt_path_smpl     one list entry per person in the image
        camX, camY, camZ, camYaw    the camera (per image)
        gt_joints_2d   per person (127, 2): the SMPL-X layer's joints projected into the
                       3840 x 2160 image, whatever resolution the images are
        gt_joints_3d   per person (127, 3): the same joints in the camera frame, metres
        gt_verts       per person (10475, 3): the SMPL-X mesh in the camera frame, metres
    ROOT/3840x2160/<folder>/<imgPath>, ROOT/1280x720/<folder>/<imgPath stem>_1280x720.png
        with <folder> 'train_<k>' (the dataframe file's name before '_withjv') or 'validation'

The camera frame is OpenCV's (x right, y down, z forward): AGORA turns its Unreal world into it
before projecting. AGORA's camera has no stored matrix; `agora_intrinsics` rebuilds it the way
`projection.py` does: a 36 x 20.25 mm sensor, the principal point at the image centre, and a
focal length by scene (50 mm for 'hdri' images, 18 mm for the 'cam00'-'cam03' scenes, 28 mm for
all others). Each person's stored 2D joints are checked against the projection of the stored
3D joints with it, so a scene with another camera is refused rather than given a wrong K.

What is converted: every valid person (isValid: occlusion in 0-90 %) becomes one sample with
the SMPL-X mesh (vertices model 'smplx') and the first 76 joints (our 'smplx' layout: 55
kinematic joints and 21 vertex keypoints, as the `smplx` layer orders its 127 joints) in 2D and
3D, both hands in OpenPose order, tight person and hand boxes around the 2D joints and the
intrinsics. The meshes are the ground truth of whole-body metrics and of training's vertex
loss, the joints of its keypoint losses.

What is not: the SMPL-X parameters. AGORA's fits (gt_path_smplx, pickles of torch tensors) are
posed in a frame of their own (AGORA places them with Yaw and X, Y, Z), use the male and
female models for adults and the kid model (SMPL-X with the SMIL-X template blended in by an
11th shape coefficient) for children. The project's labels are neutral-model parameters in the
camera frame; gendered or kid shape coefficients read as neutral ones would give a silently
wrong body, so they are not turned into labels. Kids are refused by default (logged with their
count); `include_kids` keeps their meshes, which AGORA computed with its kid model and which are
therefore correct ground truth, even though a neutral adult model can never fit them exactly.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmr_ros.body_models.joint_names import SIDES, smplx_hand_to_openpose, smplx_output_joint_names
from hmr_ros.body_models.smplx_layers import SMPLX_NUM_VERTICES
from hmr_ros.datasets.safe_pickle import load_dataframe_pickle
from hmr_ros.datasets.sample import KEYPOINT_LAYOUTS, Sample, keypoint_box_xyxy

_LOG = logging.getLogger(__name__)

__all__ = [
    'AGORA_IMAGE_SIZES',
    'AGORA_SPLITS',
    'agora_focal_length_mm',
    'agora_intrinsics',
    'convert_agora',
]

DATASET_NAME = 'AGORA'
AGORA_SPLITS = ('validation', 'train')
"""Splits with public labels (AGORA's test labels are kept by its evaluation server)."""
AGORA_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    '3840x2160': (3840, 2160),
    '1280x720': (1280, 720),
}
"""Image folders of the release and their (W, H)."""
GROUND_TRUTH_SIZE_WH = (3840, 2160)
"""gt_joints_2d of the release are pixels of the 4K images for both resolutions
(docs/gt_dataframe.md); dataframes re-projected for 720p are recognised by their projection."""
SENSOR_SIZE_MM = (36.0, 20.25)
"""AGORA's virtual sensor, width x height (projection.py: dslr_sens_width, _height)."""
NUM_AGORA_JOINTS = 127
"""The `smplx` layer's output without face contour: 55 joints, 21 vertex keypoints, 51
landmarks."""
REPROJECTION_TOLERANCE_PX = 1.0
"""Largest median gap (4K pixels; a third of it at 720p) between the stored 2D joints and the
projection of the stored 3D joints with `agora_intrinsics`; the stored joints are exact
projections."""
_REQUIRED_COLUMNS = ('imgPath', 'isValid', 'kid', 'gt_joints_2d', 'gt_joints_3d', 'gt_verts')


def agora_focal_length_mm(image_name: str) -> float:
    """Focal length AGORA rendered an image with, from its name (projection.py's scene rules).

    Args:
        image_name: imgPath of the dataframe (or any path holding it).

    Returns:
        50 for HDRI-background images ('hdri'), 18 for the four fixed cameras of the 'cam00' to
        'cam03' scenes, 28 for every other scene.
    """
    if 'hdri' in image_name:
        return 50.0
    if any(f'cam0{k}' in image_name for k in range(4)):
        return 18.0
    return 28.0


def agora_intrinsics(image_name: str, image_size_wh: tuple[int, int]) -> np.ndarray:
    """Camera matrix K of an AGORA image at the given resolution.

    f_px = f_mm / sensor_mm * image_size on each axis; the principal point is (W / 2, H / 2),
    as AGORA projects (so its stored 2D joints use this K, not (W - 1) / 2).

    Args:
        image_name: imgPath (picks the focal length).
        image_size_wh: (W, H) of the images used (3840 x 2160 or 1280 x 720).

    Returns:
        (3, 3) float64.
    """
    focal_mm = agora_focal_length_mm(image_name)
    width, height = image_size_wh
    fx = focal_mm / SENSOR_SIZE_MM[0] * width
    fy = focal_mm / SENSOR_SIZE_MM[1] * height
    return np.array(((fx, 0.0, width / 2), (0.0, fy, height / 2), (0.0, 0.0, 1.0)))


def _dataframe_files(root: Path, split: str, annotation: str | Path) -> list[Path]:
    if annotation:
        path = Path(annotation)
        files = sorted(path.glob('*.pkl')) if path.is_dir() else [path]
    else:
        files = sorted((root / f'{split}_SMPLX' / 'SMPLX').glob('*.pkl'))
    missing = [f for f in files if not f.is_file()]
    if not files or missing:
        where = annotation or root / f'{split}_SMPLX' / 'SMPLX'
        raise FileNotFoundError(
            f'no AGORA dataframe at {missing[0] if missing else f"{where}/*.pkl"}; download '
            "the 'Camera dataframe (with SMPL-X joints and vertices)' of the split from the AGORA "
            f'website and unpack it so that {root}/{split}_SMPLX/SMPLX/*.pkl exist'
        )
    return files


def _image_folder(dataframe: Path, split: str) -> str:
    return dataframe.stem.split('_withjv')[0] if split == 'train' else 'validation'


def _image_name(image_path: str, resolution: str) -> str:
    if resolution == '1280x720' and not image_path.endswith('_1280x720.png'):
        return f'{Path(image_path).stem}_1280x720.png'
    return image_path


def _person_arrays(
    columns: dict[str, list[Any]], row: int, person: int, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    joints_2d = np.asarray(columns['gt_joints_2d'][row][person], dtype=np.float64).reshape(-1, 2)
    joints_3d = np.asarray(columns['gt_joints_3d'][row][person], dtype=np.float64).reshape(-1, 3)
    vertices = np.asarray(columns['gt_verts'][row][person], dtype=np.float64).reshape(-1, 3)
    if vertices.shape[0] != SMPLX_NUM_VERTICES or joints_3d.shape[0] != NUM_AGORA_JOINTS:
        raise ValueError(
            f'{source}: person {person} of {columns["imgPath"][row]} has {joints_3d.shape[0]} '
            f'joints and {vertices.shape[0]} vertices; the SMPL-X dataframe has '
            f'{NUM_AGORA_JOINTS} and {SMPLX_NUM_VERTICES} (is this the SMPL one?)'
        )
    if joints_2d.shape[0] != NUM_AGORA_JOINTS:
        raise ValueError(f'{source}: gt_joints_2d must hold {NUM_AGORA_JOINTS} joints')
    return joints_2d, joints_3d, vertices


def _reprojection_gap_px(joints_2d: np.ndarray, joints_3d: np.ndarray, k: np.ndarray) -> float:
    projected = joints_3d @ k.T
    in_front = projected[:, 2] > 0
    if not in_front.any():
        return float('inf')
    pixels = projected[in_front, :2] / projected[in_front, 2:]
    return float(np.median(np.linalg.norm(pixels - joints_2d[in_front], axis=1)))


def _joints_2d_scale(
    joints_2d: np.ndarray, joints_3d: np.ndarray, image_name: str, size_wh: tuple[int, int]
) -> float | None:
    """Factor from the stored 2D joints to pixels of size_wh, or None if the camera differs.

    The release stores 4K pixels; a dataframe re-projected for 720p (AGORA's `project_joints
    --imgWidth 1280`) holds 720p pixels. Whichever K reproduces the stored joints says which.
    """
    for stored_wh in AGORA_IMAGE_SIZES.values():
        k = agora_intrinsics(image_name, stored_wh)
        tolerance = REPROJECTION_TOLERANCE_PX * stored_wh[0] / GROUND_TRUTH_SIZE_WH[0]
        if _reprojection_gap_px(joints_2d, joints_3d, k) <= tolerance:
            return size_wh[0] / stored_wh[0]
    return None


def convert_agora(
    root: str | Path,
    split: str = 'validation',
    resolution: str = '3840x2160',
    include_kids: bool = False,
    annotation: str | Path = '',
    sample_interval: int = 1,
) -> list[Sample]:
    """Read an AGORA split into canonical samples, one per valid person.

    Args:
        root: the release folder (holds <split>_SMPLX/ and the image folders).
        split: 'validation' or 'train' (the test labels are not public).
        resolution: '3840x2160' or '1280x720': which images the samples point at; the 2D
            joints and K are scaled to it.
        include_kids: keep children (their meshes come from AGORA's kid model); by default
            they are refused and counted in the log.
        annotation: a dataframe file or a folder of them instead of <root>/<split>_SMPLX/SMPLX.
        sample_interval: keep every k-th image of each dataframe.

    Returns:
        Samples with the SMPL-X mesh and joints in the camera frame, 2D joints, boxes and K;
        sample_id 'AGORA/<split>/<imgPath>/<person>' ('/kid' appended for children).

    Raises:
        FileNotFoundError: no dataframe.
        UnsafePickleError: a dataframe asks for more than pandas' frame machinery and numpy.
        ValueError: bad arguments, a dataframe without the SMPL-X joints and vertices, or
            an image whose stored 2D and 3D joints disagree with AGORA's camera.
    """
    if split not in AGORA_SPLITS:
        raise ValueError(
            f'AGORA splits with public labels are {AGORA_SPLITS}; got {split!r} (the test split '
            'is scored by the AGORA evaluation server)'
        )
    if resolution not in AGORA_IMAGE_SIZES:
        raise ValueError(f'resolution must be one of {tuple(AGORA_IMAGE_SIZES)}')
    if sample_interval < 1:
        raise ValueError('sample_interval must be >= 1')
    root = Path(root)
    size = AGORA_IMAGE_SIZES[resolution]
    layout = KEYPOINT_LAYOUTS['smplx']
    names = smplx_output_joint_names(use_face_contour=False)
    if names[: len(layout)] != layout:
        raise AssertionError('the smplx layout must lead the SMPL-X layer output')
    hand_rows = {side: [names.index(n) for n in smplx_hand_to_openpose(side)] for side in SIDES}
    counts: Counter[str] = Counter()
    samples: list[Sample] = []
    for dataframe in _dataframe_files(root, split, annotation):
        columns = load_dataframe_pickle(dataframe)
        absent = [c for c in _REQUIRED_COLUMNS if c not in columns]
        if absent:
            raise ValueError(
                f'{dataframe} has no {", ".join(absent)}: use the dataframe "with SMPL-X joints '
                'and vertices" (the plain camera dataframe needs the fits and the gendered and '
                'kid body models to be projected, which this converter does not do)'
            )
        folder = root / resolution / _image_folder(dataframe, split)
        for row in range(0, len(columns['imgPath']), sample_interval):
            image_path = str(columns['imgPath'][row])
            image_name = _image_name(image_path, resolution)
            k = agora_intrinsics(image_path, size)
            valid: Sequence[Any] = columns['isValid'][row]
            for person, is_valid in enumerate(valid):
                counts['persons'] += 1
                if not is_valid:
                    counts['invalid (occlusion over 90 %)'] += 1
                    continue
                kid = bool(columns['kid'][row][person])
                if kid and not include_kids:
                    counts['kids refused'] += 1
                    continue
                joints_2d, joints_3d, vertices = _person_arrays(
                    columns, row, person, str(dataframe)
                )
                scale = _joints_2d_scale(joints_2d, joints_3d, image_path, size)
                if scale is None:
                    raise ValueError(
                        f'{dataframe}: {image_path} person {person}: the stored 2D joints are '
                        'not the projection of the 3D joints with a '
                        f'{agora_focal_length_mm(image_path):g} mm lens at either resolution; '
                        'this scene uses a camera the converter does not know'
                    )
                ones = np.ones((NUM_AGORA_JOINTS, 1))
                keypoints_2d = np.concatenate((joints_2d * scale, ones), axis=1)
                keypoints_3d = np.concatenate((joints_3d, ones), axis=1)
                fields: dict[str, Any] = {}
                for side in SIDES:
                    fields[f'{side}_hand_keypoints_2d_px'] = keypoints_2d[hand_rows[side]]
                    fields[f'{side}_hand_keypoints_3d_cam_m'] = keypoints_3d[hand_rows[side]]
                    fields[f'{side}_hand_box_xyxy'] = keypoint_box_xyxy(
                        keypoints_2d[hand_rows[side]]
                    )
                counts['kids kept' if kid else 'adults'] += 1
                samples.append(
                    Sample(
                        dataset=DATASET_NAME,
                        sample_id=f'{DATASET_NAME}/{split}/{image_path}/{person}'
                        + ('/kid' if kid else ''),
                        image_size_wh=size,
                        image_path=str(folder / image_name),
                        intrinsics=k,
                        person_box_xyxy=keypoint_box_xyxy(keypoints_2d),
                        body_keypoint_layout='smplx',
                        body_keypoints_2d_px=keypoints_2d[: len(layout)],
                        body_keypoints_3d_cam_m=keypoints_3d[: len(layout)],
                        vertices_cam_m=vertices,
                        vertices_model='smplx',
                        **fields,
                    )
                )
    _LOG.info(
        '%s %s: %d samples (%s)',
        DATASET_NAME,
        split,
        len(samples),
        ', '.join(f'{name} {count}' for name, count in counts.items()),
    )
    return samples
