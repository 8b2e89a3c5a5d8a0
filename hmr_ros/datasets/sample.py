"""The canonical sample every data set is converted to, and its on-disk index.

Each converter (`freihand.py`, `ehf.py`, ...) reads a data set's published files once and writes
one `Sample` per person (or per hand crop source) into a small index file; training and
evaluation read only the index and the images. One format, whatever the data set provides:

Always present
    dataset, sample_id: names for logs and results.
    image_size_wh: (W, H) pixels of the original image (needed to mirror coordinates).
    image_path and/or image: the RGB picture, as a file path or an (H, W, 3) uint8 RGB array
        (at least one; `with_image` loads the array from the path).

Optional (None when the data set does not provide it; `Sample.present` lists what is there)
    intrinsics: (3, 3) camera matrix K, pixels; the image is undistorted.
    person_box_xyxy: (4,) the person's box, image pixels (x1, y1, x2, y2).
    left_hand_box_xyxy, right_hand_box_xyxy: (4,) hand boxes, image pixels. Left and right
        are the person's own hands (an OpenPose/SMPL-X 'left' hand), not image sides.
    smplx: `SMPLXParams`, axis-angle, camera frame.
    left_mano, right_mano: `MANOParams` for hand-only data sets (FreiHAND has right hands only).
    body_keypoint_layout: name in `KEYPOINT_LAYOUTS` giving the order of the body keypoints.
    body_keypoints_2d_px: (K, 3) x, y in image pixels and a confidence in [0, 1].
    body_keypoints_3d_cam_m: (K, 4) x, y, z in metres, camera optical frame, and a confidence.
    left_hand_keypoints_2d_px, right_hand_keypoints_2d_px: (21, 3), OpenPose hand order
        (`joint_names.OPENPOSE_HAND_JOINT_NAMES`: wrist, thumb1-3, thumb tip, index..., pinky).
    left_hand_keypoints_3d_cam_m, right_hand_keypoints_3d_cam_m: (21, 4), the same order.
    vertices_cam_m: (V, 3) ground-truth mesh, metres, camera frame; vertices_model says which
        topology: 'smplx' (10,475), 'mano_right' or 'mano_left' (778), 'smpl' (6,890; 3DPW).

Conventions
    Pixels follow OpenCV: integer coordinates are pixel centres, so mirroring maps x to
    W - 1 - x. Camera frame = OpenCV optical frame (x right, y down, z forward). Hand poses are
    in the flat-hand convention of `smplx.SMPLXLayer` / HaMeR's MANO (full finger articulation;
    converters add the model's `hands_mean` to mean-relative data such as FreiHAND's).
    A confidence of 0 marks a keypoint that is absent.

The index is one `.npz` per data set (`save_index` / `load_index`, no pickle): every field
stacked over samples with a `<field>.present` mask, strings as unicode arrays, image paths
relative to an image root that can be moved. In-memory images are not stored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np
import torch

from hmr_ros.body_models.joint_names import (
    NUM_BODY_JOINTS,
    NUM_HAND_JOINTS,
    NUM_HAND_KEYPOINTS,
    SMPLX_JOINT_NAMES,
    SMPLX_VERTEX_KEYPOINT_NAMES,
)
from hmr_ros.body_models.smplx_layers import NUM_BETAS, NUM_EXPRESSION_COEFFS, SMPLXBodyModel
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

INDEX_FORMAT_VERSION = 1

VerticesModel = Literal['smplx', 'mano_right', 'mano_left', 'smpl']
VERTICES_MODELS: tuple[str, ...] = get_args(VerticesModel)

OPENPOSE_BODY25_NAMES: tuple[str, ...] = (
    'nose',
    'neck',
    'right_shoulder',
    'right_elbow',
    'right_wrist',
    'left_shoulder',
    'left_elbow',
    'left_wrist',
    'pelvis',  # OpenPose 'MidHip'; SMPLify-X pairs it with the SMPL-X pelvis
    'right_hip',
    'right_knee',
    'right_ankle',
    'left_hip',
    'left_knee',
    'left_ankle',
    'right_eye',
    'left_eye',
    'right_ear',
    'left_ear',
    'left_big_toe',
    'left_small_toe',
    'left_heel',
    'right_big_toe',
    'right_small_toe',
    'right_heel',
)
"""OpenPose BODY_25 keypoints, named like the SMPL-X joints they correspond to (as SMPLify-X's
`smpl_to_openpose` pairs them), so layouts can be matched by name."""

OPENPOSE_COCO18_NAMES: tuple[str, ...] = OPENPOSE_BODY25_NAMES[:8] + OPENPOSE_BODY25_NAMES[9:19]
"""OpenPose COCO-18 keypoints (BODY_25 without pelvis and feet)."""

SMPL_LAYOUT = 'smpl24'
SMPL_JOINT_NAMES: tuple[str, ...] = SMPLX_JOINT_NAMES[: 1 + NUM_BODY_JOINTS] + (
    'left_smpl_hand',
    'right_smpl_hand',
)
"""The 24 joints of SMPL's J_regressor: the 22 it shares (by name and place) with SMPL-X, then
SMPL's 'L_Hand' and 'R_Hand' (knuckle joints beyond the wrists; no SMPL-X joint matches them)."""

KEYPOINT_LAYOUTS: dict[str, tuple[str, ...]] = {
    'smplx': SMPLX_JOINT_NAMES + SMPLX_VERTEX_KEYPOINT_NAMES,
    SMPL_LAYOUT: SMPL_JOINT_NAMES,
    'openpose_body25': OPENPOSE_BODY25_NAMES,
    'openpose_coco18': OPENPOSE_COCO18_NAMES,
}
"""Body keypoint orders by name. 'smplx': the 55 kinematic joints and 21 vertex keypoints of
`smplx.SMPLXLayer`, the first 76 joints it returns."""


def layout_names(layout: str) -> tuple[str, ...]:
    """Names of a body keypoint layout; raises with the known layouts otherwise."""
    try:
        return KEYPOINT_LAYOUTS[layout]
    except KeyError:
        raise KeyError(
            f'unknown keypoint layout {layout!r}; known: {", ".join(KEYPOINT_LAYOUTS)}'
        ) from None


def _array(value: Any, shape: tuple[int, ...], name: str, dtype: Any = np.float32) -> np.ndarray:
    """Read-only copy with a checked shape (-1 matches any size).

    Arrays that are already read-only with the right dtype (those of another sample) are
    shared instead of copied, so `Sample.replace` stays cheap.
    """
    if isinstance(value, np.ndarray) and not value.flags.writeable and value.dtype == dtype:
        array = value
    else:
        array = np.array(value, dtype=dtype)
    if array.ndim != len(shape) or any(
        want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)
    ):
        expected = ', '.join('N' if s == -1 else str(s) for s in shape)
        raise ValueError(f'{name} must have shape ({expected}); got {array.shape}')
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SMPLXParams:
    """SMPL-X parameters of one person, axis-angle (radians), camera optical frame.

    The mesh is `SMPLXBodyModel` of these (converted to matrices); the pelvis ends at
    rest_pelvis_m + transl_m, because the root rotates about the rest-pose pelvis.

    Attributes:
        global_orient_aa: (3,) root rotation in the camera frame.
        body_pose_aa: (21, 3) local rotations of `joint_names.BODY_JOINT_NAMES`.
        left_hand_pose_aa: (15, 3) flat-hand convention.
        right_hand_pose_aa: (15, 3) flat-hand convention.
        jaw_pose_aa: (3,).
        betas: (10,) shape coefficients.
        expression: (10,) expression coefficients.
        transl_m: (3,) translation added to the posed mesh, metres.
        rest_pelvis_m: (3,) pelvis joint of the rest pose for these betas and expression
            (`smplx_rest_pelvis_m`); rotating or mirroring the camera moves the pelvis, and
            transl_m can only follow when this is known.
    """

    global_orient_aa: np.ndarray
    body_pose_aa: np.ndarray
    left_hand_pose_aa: np.ndarray
    right_hand_pose_aa: np.ndarray
    jaw_pose_aa: np.ndarray
    betas: np.ndarray
    expression: np.ndarray
    transl_m: np.ndarray
    rest_pelvis_m: np.ndarray

    SHAPES = {
        'global_orient_aa': (3,),
        'body_pose_aa': (NUM_BODY_JOINTS, 3),
        'left_hand_pose_aa': (NUM_HAND_JOINTS, 3),
        'right_hand_pose_aa': (NUM_HAND_JOINTS, 3),
        'jaw_pose_aa': (3,),
        'betas': (NUM_BETAS,),
        'expression': (NUM_EXPRESSION_COEFFS,),
        'transl_m': (3,),
        'rest_pelvis_m': (3,),
    }

    def __post_init__(self) -> None:
        for name, shape in self.SHAPES.items():
            object.__setattr__(self, name, _array(getattr(self, name), shape, f'smplx.{name}'))


@dataclass(frozen=True, eq=False)
class MANOParams:
    """MANO parameters of one hand, axis-angle, camera frame, flat-hand convention.

    Attributes:
        global_orient_aa: (3,) wrist rotation in the camera frame.
        hand_pose_aa: (15, 3) finger rotations (MANO joint order, full articulation).
        betas: (10,) MANO shape coefficients.
    """

    global_orient_aa: np.ndarray
    hand_pose_aa: np.ndarray
    betas: np.ndarray

    SHAPES = {
        'global_orient_aa': (3,),
        'hand_pose_aa': (NUM_HAND_JOINTS, 3),
        'betas': (NUM_BETAS,),
    }

    def __post_init__(self) -> None:
        for name, shape in self.SHAPES.items():
            object.__setattr__(self, name, _array(getattr(self, name), shape, f'mano.{name}'))


_ARRAY_FIELDS: dict[str, tuple[int, ...]] = {
    'intrinsics': (3, 3),
    'person_box_xyxy': (4,),
    'left_hand_box_xyxy': (4,),
    'right_hand_box_xyxy': (4,),
    'body_keypoints_2d_px': (-1, 3),
    'body_keypoints_3d_cam_m': (-1, 4),
    'left_hand_keypoints_2d_px': (NUM_HAND_KEYPOINTS, 3),
    'right_hand_keypoints_2d_px': (NUM_HAND_KEYPOINTS, 3),
    'left_hand_keypoints_3d_cam_m': (NUM_HAND_KEYPOINTS, 4),
    'right_hand_keypoints_3d_cam_m': (NUM_HAND_KEYPOINTS, 4),
    'vertices_cam_m': (-1, 3),
}
_PARAM_FIELDS: dict[str, type[SMPLXParams] | type[MANOParams]] = {
    'smplx': SMPLXParams,
    'left_mano': MANOParams,
    'right_mano': MANOParams,
}
OPTIONAL_FIELDS: tuple[str, ...] = (
    'image',
    'image_path',
    *_ARRAY_FIELDS,
    *_PARAM_FIELDS,
    'body_keypoint_layout',
    'vertices_model',
)
"""Fields that may be None; `Sample.present` is the subset that is not."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One person (or one hand image) of a data set; see the module docstring for each field."""

    dataset: str
    sample_id: str
    image_size_wh: tuple[int, int]
    image_path: str | None = None
    image: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    person_box_xyxy: np.ndarray | None = None
    left_hand_box_xyxy: np.ndarray | None = None
    right_hand_box_xyxy: np.ndarray | None = None
    smplx: SMPLXParams | None = None
    left_mano: MANOParams | None = None
    right_mano: MANOParams | None = None
    body_keypoint_layout: str | None = None
    body_keypoints_2d_px: np.ndarray | None = None
    body_keypoints_3d_cam_m: np.ndarray | None = None
    left_hand_keypoints_2d_px: np.ndarray | None = None
    right_hand_keypoints_2d_px: np.ndarray | None = None
    left_hand_keypoints_3d_cam_m: np.ndarray | None = None
    right_hand_keypoints_3d_cam_m: np.ndarray | None = None
    vertices_cam_m: np.ndarray | None = None
    vertices_model: VerticesModel | None = None

    def __post_init__(self) -> None:
        width, height = (int(v) for v in self.image_size_wh)
        object.__setattr__(self, 'image_size_wh', (width, height))
        if self.image is None and self.image_path is None:
            raise ValueError(f'{self.sample_id}: give image_path or image (or both)')
        if self.image is not None:
            image = np.asarray(self.image)
            if image.dtype != np.uint8 or image.shape != (height, width, 3):
                raise ValueError(
                    f'{self.sample_id}: image must be ({height}, {width}, 3) uint8 RGB matching '
                    f'image_size_wh; got {image.shape} {image.dtype}'
                )
            # A read-only view: the caller's array stays writable, the sample's is not.
            image = image.view()
            image.setflags(write=False)
            object.__setattr__(self, 'image', image)
        for name, shape in _ARRAY_FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _array(value, shape, f'{self.sample_id}: {name}'))
        self._check_layouts()

    def _check_layouts(self) -> None:
        has_body_keypoints = (
            self.body_keypoints_2d_px is not None or self.body_keypoints_3d_cam_m is not None
        )
        if has_body_keypoints:
            if self.body_keypoint_layout is None:
                raise ValueError(f'{self.sample_id}: body keypoints need body_keypoint_layout')
            count = len(layout_names(self.body_keypoint_layout))
            for array in (self.body_keypoints_2d_px, self.body_keypoints_3d_cam_m):
                if array is not None and array.shape[0] != count:
                    raise ValueError(
                        f'{self.sample_id}: layout {self.body_keypoint_layout!r} has {count} '
                        f'keypoints; got {array.shape[0]}'
                    )
        if (self.vertices_cam_m is None) != (self.vertices_model is None):
            raise ValueError(f'{self.sample_id}: give vertices_cam_m and vertices_model together')
        if self.vertices_model is not None and self.vertices_model not in VERTICES_MODELS:
            raise ValueError(
                f'{self.sample_id}: vertices_model must be one of {VERTICES_MODELS}; '
                f'got {self.vertices_model!r}'
            )

    @property
    def present(self) -> frozenset[str]:
        """Names of the optional fields this sample has (not None)."""
        return frozenset(name for name in OPTIONAL_FIELDS if getattr(self, name) is not None)

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def read_image_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image from a file; raises FileNotFoundError with the path."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'cannot read image {path}; check the data set root')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def with_image(sample: Sample) -> Sample:
    """The sample with its pixels loaded from image_path (unchanged if already loaded)."""
    if sample.image is not None:
        return sample
    return sample.replace(image=read_image_rgb(str(sample.image_path)))


def keypoint_box_xyxy(keypoints: np.ndarray, min_confidence: float = 0.0) -> np.ndarray | None:
    """Tight box around the keypoints whose confidence exceeds min_confidence.

    Args:
        keypoints: (K, 3) x, y, confidence.
        min_confidence: keypoints at or below it are ignored.

    Returns:
        (4,) x1, y1, x2, y2, or None when fewer than two keypoints are confident.
    """
    confident = keypoints[keypoints[:, 2] > min_confidence, :2]
    if confident.shape[0] < 2:
        return None
    return np.concatenate((confident.min(axis=0), confident.max(axis=0))).astype(np.float32)


@torch.no_grad()
def smplx_rest_pelvis_m(
    body_model: SMPLXBodyModel, betas: np.ndarray, expression: np.ndarray | None = None
) -> np.ndarray:
    """Rest-pose pelvis of an SMPL-X body with these shape coefficients (for SMPLXParams).

    Args:
        body_model: the SMPL-X layer the parameters belong to.
        betas: (10,) shape coefficients.
        expression: (10,) expression coefficients (they shape the template too); zeros if None.

    Returns:
        (3,) metres in the model frame.
    """
    inputs = body_model.neutral_inputs(1)
    like = inputs['betas']
    inputs['betas'] = torch.as_tensor(np.array(betas), dtype=like.dtype)[None]
    if expression is not None:
        inputs['expression'] = torch.as_tensor(np.array(expression), dtype=like.dtype)[None]
    pelvis = body_model(**inputs).joints[0, 0]
    return pelvis.cpu().numpy().astype(np.float32)


@torch.no_grad()
def smplx_rest_pelvis_batch_m(
    body_model: SMPLXBodyModel,
    betas: np.ndarray,
    expression: np.ndarray | None = None,
    chunk: int = 512,
) -> np.ndarray:
    """`smplx_rest_pelvis_m` of many shapes at once (converters of large data sets).

    Args:
        body_model: the SMPL-X layer.
        betas: (N, 10).
        expression: (N, 10) or None (zeros).
        chunk: shapes per forward pass.

    Returns:
        (N, 3) float32 metres.
    """
    betas = np.asarray(betas, dtype=np.float64).reshape(-1, NUM_BETAS)
    out = np.zeros((len(betas), 3), dtype=np.float32)
    for start in range(0, len(betas), chunk):
        stop = min(start + chunk, len(betas))
        inputs = body_model.neutral_inputs(stop - start)
        like = inputs['betas']
        inputs['betas'] = torch.as_tensor(betas[start:stop], dtype=like.dtype)
        if expression is not None:
            inputs['expression'] = torch.as_tensor(
                np.asarray(expression[start:stop], dtype=np.float64), dtype=like.dtype
            )
        out[start:stop] = body_model(**inputs).joints[:, 0].cpu().numpy()
    return out


def smplx_params_to_camera(
    params: SMPLXParams, rotation: np.ndarray, translation_m: np.ndarray
) -> SMPLXParams:
    """SMPL-X parameters of a body moved by x_cam = R x + t (e.g. world to camera).

    The root turns by R; because it rotates about the rest-pose pelvis p, the new translation
    is R (p + transl) + t - p (the pelvis lands where R and t put it).

    Args:
        params: the body in the source frame.
        rotation: (3, 3) R.
        translation_m: (3,) t, metres.
    """
    rotation = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    pelvis = params.rest_pelvis_m.astype(np.float64)
    root = axis_angle_to_rotmat(torch.from_numpy(params.global_orient_aa.astype(np.float64)))
    orient = rotmat_to_axis_angle(torch.from_numpy(rotation) @ root).numpy()
    transl = rotation @ (pelvis + params.transl_m) + np.asarray(translation_m) - pelvis
    return SMPLXParams(
        **{
            **{name: getattr(params, name) for name in SMPLXParams.SHAPES},
            'global_orient_aa': orient,
            'transl_m': transl,
        }
    )


def smplx_params_to_rotmats(params: SMPLXParams) -> dict[str, torch.Tensor]:
    """Keyword arguments of `SMPLXBodyModel.forward` (batch of 1) for these parameters."""

    def rotmats(value: np.ndarray) -> torch.Tensor:
        return axis_angle_to_rotmat(torch.from_numpy(np.array(value)).reshape(1, -1, 3))

    return {
        'global_orient': rotmats(params.global_orient_aa),
        'body_pose': rotmats(params.body_pose_aa),
        'left_hand_pose': rotmats(params.left_hand_pose_aa),
        'right_hand_pose': rotmats(params.right_hand_pose_aa),
        'jaw_pose': rotmats(params.jaw_pose_aa),
        'betas': torch.from_numpy(np.array(params.betas))[None],
        'expression': torch.from_numpy(np.array(params.expression))[None],
        'transl': torch.from_numpy(np.array(params.transl_m))[None],
    }


# ---------------------------------------------------------------- index files


def _relative_path(path: str, image_root: Path | None) -> str:
    if image_root is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(image_root.resolve()))
    except ValueError:
        raise ValueError(f'image {path} is not under the image root {image_root}') from None


def save_index(
    path: str | Path, samples: Sequence[Sample], image_root: str | Path | None = None
) -> Path:
    """Write samples to one `.npz` index (no pickle).

    Args:
        path: output file; '.npz' is appended by numpy when missing.
        samples: samples of one data set; each needs image_path (pixels are not stored), and
            all body keypoints of the index must share one layout, all vertices one size.
        image_root: folder the image paths are stored relative to; `load_index` can point it
            elsewhere when the data set moves. None stores the paths as given.

    Returns:
        The written path.
    """
    if not samples:
        raise ValueError('nothing to save: samples is empty')
    root = None if image_root is None else Path(image_root)
    arrays: dict[str, np.ndarray] = {}
    strings: dict[str, list[str]] = {
        'dataset': [],
        'sample_id': [],
        'image_path': [],
        'vertices_model': [],
        'body_keypoint_layout': [],
    }
    for sample in samples:
        if sample.image_path is None:
            raise ValueError(
                f'{sample.sample_id}: index samples need image_path (write the image)'
            )
        strings['dataset'].append(sample.dataset)
        strings['sample_id'].append(sample.sample_id)
        strings['image_path'].append(_relative_path(sample.image_path, root))
        strings['vertices_model'].append(sample.vertices_model or '')
        strings['body_keypoint_layout'].append(sample.body_keypoint_layout or '')
    for name, values in strings.items():
        arrays[name] = np.array(values, dtype=np.str_)
    arrays['image_size_wh'] = np.array([s.image_size_wh for s in samples], dtype=np.int64)

    def stack(name: str, values: list[np.ndarray | None]) -> None:
        present = np.array([v is not None for v in values])
        shapes = {v.shape for v in values if v is not None}
        if len(shapes) > 1:
            raise ValueError(f'{name} has different shapes in one index: {sorted(shapes)}')
        if shapes:
            shape = shapes.pop()
            filled = [np.zeros(shape, np.float32) if v is None else v for v in values]
            arrays[name] = np.stack(filled).astype(np.float32)
        arrays[f'{name}.present'] = present

    for name in _ARRAY_FIELDS:
        stack(name, [getattr(s, name) for s in samples])
    for group, params_type in _PARAM_FIELDS.items():
        params = [getattr(s, group) for s in samples]
        arrays[f'{group}.present'] = np.array([p is not None for p in params])
        for name in params_type.SHAPES:
            stack(f'{group}.{name}', [None if p is None else getattr(p, name) for p in params])
    meta: dict[str, Any] = {
        'format_version': INDEX_FORMAT_VERSION,
        'count': len(samples),
        'image_root': None if root is None else str(root),
    }
    arrays['meta'] = np.array(json.dumps(meta))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return path if path.suffix == '.npz' else path.with_name(path.name + '.npz')


def load_index(path: str | Path, image_root: str | Path | None = None) -> list[Sample]:
    """Read the samples of a `save_index` file.

    Args:
        path: the `.npz` index.
        image_root: folder holding the images now; None uses the root stored at save time.

    Returns:
        Samples with image_path resolved against the image root (images not loaded).
    """
    with np.load(Path(path), allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays['meta']))
    if meta.get('format_version') != INDEX_FORMAT_VERSION:
        raise ValueError(
            f'{path} is index format {meta.get("format_version")!r}; this version reads '
            f'{INDEX_FORMAT_VERSION} (convert the data set again)'
        )
    root = image_root if image_root is not None else meta.get('image_root')

    def field(name: str, i: int) -> np.ndarray | None:
        if name not in arrays or not bool(arrays[f'{name}.present'][i]):
            return None
        return arrays[name][i]

    samples = []
    for i in range(int(meta['count'])):
        values: dict[str, Any] = {name: field(name, i) for name in _ARRAY_FIELDS}
        for group, params_type in _PARAM_FIELDS.items():
            if bool(arrays[f'{group}.present'][i]):
                values[group] = params_type(
                    **{name: arrays[f'{group}.{name}'][i] for name in params_type.SHAPES}
                )
        image_path = str(arrays['image_path'][i])
        samples.append(
            Sample(
                dataset=str(arrays['dataset'][i]),
                sample_id=str(arrays['sample_id'][i]),
                image_size_wh=tuple(int(v) for v in arrays['image_size_wh'][i]),  # type: ignore[arg-type]
                image_path=str(Path(root) / image_path) if root is not None else image_path,
                body_keypoint_layout=str(arrays['body_keypoint_layout'][i]) or None,
                vertices_model=str(arrays['vertices_model'][i]) or None,  # type: ignore[arg-type]
                **values,
            )
        )
    return samples
