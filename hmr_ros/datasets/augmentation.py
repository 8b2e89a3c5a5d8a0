"""Training augmentation of canonical samples: horizontal flip, in-plane rotation, scale, colour.

Flip and rotation change the picture and every annotation together, so a sample stays
self-consistent (its 3D keypoints still project onto its 2D keypoints):

Horizontal flip (the camera sees the mirror world, X -> -X):
    pixels x -> W - 1 - x (OpenCV pixel centres); boxes mirrored and left/right swapped;
    intrinsics cx -> W - 1 - cx and skew negated; 3D points x -> -x; keypoints of a layout
    re-ordered by `joint_names.flip_permutation` (left_elbow <-> right_elbow) and hand keypoints
    swapped between the hands; rotations mirrored, axis-angle (x, y, z) -> (x, -y, -z)
    (`geometry.rotations.mirror_axis_angle`), with `body_pose` re-ordered by left/right pairs
    and the two hand poses exchanged; SMPL-X transl follows the mirrored pelvis; MANO meshes
    become the other hand's mesh (MANO's left and right meshes are mirror images vertex for
    vertex); SMPL-X meshes are dropped, since re-indexing them needs SMPL-X's licensed
    vertex-symmetry map. Betas and expression are kept (the shape spaces are treated as
    symmetric, as the base models' flip augmentation does).
Rotation by angle a (a camera roll about the optical axis):
    3D points p -> R_z(a) p and root orientations R -> R_z(a) R, with
    R_z(a) = [[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]]; the image is warped by the
    homography K R_z K^-1, which is affine because R_z keeps z, so the camera matrix K is
    unchanged and the result is exact for any intrinsics. In pixel coordinates (y down) a
    positive angle turns the picture clockwise on screen. Boxes become the box of their rotated
    corners. Samples without intrinsics rotate about the image centre and may not carry 3D data.
Scale:
    a factor on the crop size, applied by the loader when it crops (zooms out when > 1).
Colour:
    one multiplicative factor per RGB channel, applied by the loader to the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from hmr_ros.body_models.joint_names import BODY_POSE_FLIP_PERMUTATION, flip_permutation
from hmr_ros.datasets.sample import (
    MANOParams,
    Sample,
    SMPLXParams,
    layout_names,
)
from hmr_ros.geometry.rotations import (
    axis_angle_to_rotmat,
    mirror_axis_angle,
    rotmat_to_axis_angle,
)

_MIRROR = np.array((-1.0, 1.0, 1.0), dtype=np.float32)
"""Reflection of the camera frame in its YZ-plane, as a vector of diagonal entries."""

_THREE_D_FIELDS = (
    'smplx',
    'left_mano',
    'right_mano',
    'body_keypoints_3d_cam_m',
    'left_hand_keypoints_3d_cam_m',
    'right_hand_keypoints_3d_cam_m',
    'vertices_cam_m',
)


@dataclass(frozen=True)
class AugmentationConfig:
    """How strongly to augment; defaults are moderate and should be tuned per experiment.

    Attributes:
        flip_probability: chance of a horizontal flip.
        rotation_probability: chance of rotating at all.
        max_rotation_deg: rotations are uniform in [-max, max] degrees when applied.
        scale_range: crop-size factor range (uniform); > 1 zooms out.
        colour_scale: channel factors are uniform in [1 - c, 1 + c].
    """

    flip_probability: float = 0.5
    rotation_probability: float = 0.6
    max_rotation_deg: float = 30.0
    scale_range: tuple[float, float] = (0.8, 1.2)
    colour_scale: float = 0.2

    def __post_init__(self) -> None:
        for name in ('flip_probability', 'rotation_probability'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1]; got {getattr(self, name)}')
        if not 0.0 <= self.max_rotation_deg <= 180.0:
            raise ValueError(f'max_rotation_deg must be in [0, 180]; got {self.max_rotation_deg}')
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise ValueError(f'scale_range must satisfy 0 < low <= high; got {self.scale_range}')
        if not 0.0 <= self.colour_scale < 1.0:
            raise ValueError(f'colour_scale must be in [0, 1); got {self.colour_scale}')


@dataclass(frozen=True)
class AugmentationParams:
    """One draw of the augmentation: what to do to one sample."""

    flip: bool = False
    rotation_rad: float = 0.0
    scale: float = 1.0
    colour_factors: tuple[float, float, float] = (1.0, 1.0, 1.0)


def draw_augmentation(
    config: AugmentationConfig, generator: torch.Generator | None = None
) -> AugmentationParams:
    """Draw augmentation parameters with torch's RNG (seeded per DataLoader worker).

    Args:
        config: ranges and probabilities.
        generator: RNG to use; None uses torch's default RNG.

    Returns:
        AugmentationParams.
    """
    u = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
    rotation = 0.0
    if u[1] < config.rotation_probability:
        rotation = math.radians((2.0 * u[2] - 1.0) * config.max_rotation_deg)
    low, high = config.scale_range
    c = config.colour_scale
    return AugmentationParams(
        flip=u[0] < config.flip_probability,
        rotation_rad=rotation,
        scale=low + (high - low) * u[3],
        colour_factors=(1 - c + 2 * c * u[4], 1 - c + 2 * c * u[5], 1 - c + 2 * c * u[6]),
    )


# ---------------------------------------------------------------- flip


def _mirror_aa(axis_angle: np.ndarray) -> np.ndarray:
    return mirror_axis_angle(torch.from_numpy(np.array(axis_angle))).numpy()


def _mirror_mano(params: MANOParams | None) -> MANOParams | None:
    if params is None:
        return None
    return MANOParams(
        global_orient_aa=_mirror_aa(params.global_orient_aa),
        hand_pose_aa=_mirror_aa(params.hand_pose_aa),
        betas=params.betas,
    )


def _mirror_smplx(params: SMPLXParams | None) -> SMPLXParams | None:
    if params is None:
        return None
    pelvis = params.rest_pelvis_m
    return SMPLXParams(
        global_orient_aa=_mirror_aa(params.global_orient_aa),
        body_pose_aa=_mirror_aa(params.body_pose_aa[list(BODY_POSE_FLIP_PERMUTATION)]),
        left_hand_pose_aa=_mirror_aa(params.right_hand_pose_aa),
        right_hand_pose_aa=_mirror_aa(params.left_hand_pose_aa),
        jaw_pose_aa=_mirror_aa(params.jaw_pose_aa),
        betas=params.betas,
        expression=params.expression,
        # The pelvis p + t is mirrored and the mirrored body still rests its pelvis at p.
        transl_m=_MIRROR * (pelvis + params.transl_m) - pelvis,
        rest_pelvis_m=pelvis,
    )


def flip_sample(sample: Sample) -> Sample:
    """Mirror a sample horizontally (see the module docstring); flipping twice restores it.

    Args:
        sample: a sample with its image loaded (`sample.with_image`).

    Returns:
        The mirrored sample; SMPL-X vertices are dropped (no symmetry map).
    """
    if sample.image is None:
        raise ValueError(f'{sample.sample_id}: load the image before flipping (with_image)')
    last_x = sample.image_size_wh[0] - 1.0

    def points_2d(points: np.ndarray | None) -> np.ndarray | None:
        if points is None:
            return None
        flipped = np.array(points)
        flipped[:, 0] = last_x - flipped[:, 0]
        return flipped

    def points_3d(points: np.ndarray | None) -> np.ndarray | None:
        if points is None:
            return None
        flipped = np.array(points)
        flipped[:, 0] = -flipped[:, 0]
        return flipped

    def box(xyxy: np.ndarray | None) -> np.ndarray | None:
        if xyxy is None:
            return None
        x1, y1, x2, y2 = xyxy
        return np.array((last_x - x2, y1, last_x - x1, y2))

    changes: dict[str, Any] = {
        'image': np.ascontiguousarray(sample.image[:, ::-1]),
        'person_box_xyxy': box(sample.person_box_xyxy),
        'left_hand_box_xyxy': box(sample.right_hand_box_xyxy),
        'right_hand_box_xyxy': box(sample.left_hand_box_xyxy),
        'left_hand_keypoints_2d_px': points_2d(sample.right_hand_keypoints_2d_px),
        'right_hand_keypoints_2d_px': points_2d(sample.left_hand_keypoints_2d_px),
        'left_hand_keypoints_3d_cam_m': points_3d(sample.right_hand_keypoints_3d_cam_m),
        'right_hand_keypoints_3d_cam_m': points_3d(sample.left_hand_keypoints_3d_cam_m),
        'left_mano': _mirror_mano(sample.right_mano),
        'right_mano': _mirror_mano(sample.left_mano),
        'smplx': _mirror_smplx(sample.smplx),
    }
    if sample.body_keypoint_layout is not None:
        order = list(flip_permutation(layout_names(sample.body_keypoint_layout)))
        for name, flip in (
            ('body_keypoints_2d_px', points_2d),
            ('body_keypoints_3d_cam_m', points_3d),
        ):
            value = getattr(sample, name)
            changes[name] = None if value is None else flip(value[order])
    if sample.intrinsics is not None:
        intrinsics = np.array(sample.intrinsics)
        intrinsics[0, 2] = last_x - intrinsics[0, 2]
        intrinsics[0, 1] = -intrinsics[0, 1]
        changes['intrinsics'] = intrinsics
    if sample.vertices_model == 'smplx':
        changes['vertices_cam_m'] = changes['vertices_model'] = None
    elif sample.vertices_model is not None:
        changes['vertices_cam_m'] = points_3d(sample.vertices_cam_m)
        changes['vertices_model'] = (
            'mano_left' if sample.vertices_model == 'mano_right' else 'mano_right'
        )
    return sample.replace(**changes)


# ---------------------------------------------------------------- rotation


def _roll_matrix(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)))


def _rotate_orientation(axis_angle: np.ndarray, roll: np.ndarray) -> np.ndarray:
    rotmat = axis_angle_to_rotmat(torch.from_numpy(np.array(axis_angle, dtype=np.float64)))
    return rotmat_to_axis_angle(torch.from_numpy(roll) @ rotmat).numpy()


def rotate_sample(sample: Sample, angle_rad: float) -> Sample:
    """Roll the camera about its optical axis by angle_rad (see the module docstring).

    Args:
        sample: a sample with its image loaded.
        angle_rad: rotation; positive turns the picture clockwise on screen.

    Returns:
        The rotated sample (same image size and intrinsics; corners outside become black).
    """
    if sample.image is None:
        raise ValueError(f'{sample.sample_id}: load the image before rotating (with_image)')
    if angle_rad == 0.0:
        return sample
    width, height = sample.image_size_wh
    if sample.intrinsics is not None:
        intrinsics = sample.intrinsics.astype(np.float64)
    else:
        missing = [name for name in _THREE_D_FIELDS if getattr(sample, name) is not None]
        if missing:
            raise ValueError(
                f'{sample.sample_id}: rotating 3D annotations ({", ".join(missing)}) needs '
                'intrinsics; add them in the converter or disable rotation'
            )
        intrinsics = np.array(((1.0, 0, (width - 1) / 2), (0, 1.0, (height - 1) / 2), (0, 0, 1)))
    roll = _roll_matrix(angle_rad)
    affine = (intrinsics @ roll @ np.linalg.inv(intrinsics))[:2]

    def points_2d(points: np.ndarray | None) -> np.ndarray | None:
        if points is None:
            return None
        moved = np.array(points)
        moved[:, :2] = points[:, :2] @ affine[:, :2].T + affine[:, 2]
        return moved

    def points_3d(points: np.ndarray | None) -> np.ndarray | None:
        if points is None:
            return None
        moved = np.array(points)
        moved[:, :3] = points[:, :3] @ roll.T
        return moved

    def box(xyxy: np.ndarray | None) -> np.ndarray | None:
        if xyxy is None:
            return None
        x1, y1, x2, y2 = xyxy
        corners = np.array(((x1, y1), (x2, y1), (x2, y2), (x1, y2)))
        moved = corners @ affine[:, :2].T + affine[:, 2]
        return np.concatenate((moved.min(axis=0), moved.max(axis=0)))

    def mano(params: MANOParams | None) -> MANOParams | None:
        if params is None:
            return None
        return MANOParams(
            global_orient_aa=_rotate_orientation(params.global_orient_aa, roll),
            hand_pose_aa=params.hand_pose_aa,
            betas=params.betas,
        )

    smplx = sample.smplx
    if smplx is not None:
        pelvis = smplx.rest_pelvis_m.astype(np.float64)
        smplx = SMPLXParams(
            **{
                **{name: getattr(smplx, name) for name in SMPLXParams.SHAPES},
                'global_orient_aa': _rotate_orientation(smplx.global_orient_aa, roll),
                'transl_m': roll @ (pelvis + smplx.transl_m) - pelvis,
            }
        )
    image = cv2.warpAffine(
        np.ascontiguousarray(sample.image),
        affine,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return sample.replace(
        image=image,
        person_box_xyxy=box(sample.person_box_xyxy),
        left_hand_box_xyxy=box(sample.left_hand_box_xyxy),
        right_hand_box_xyxy=box(sample.right_hand_box_xyxy),
        body_keypoints_2d_px=points_2d(sample.body_keypoints_2d_px),
        left_hand_keypoints_2d_px=points_2d(sample.left_hand_keypoints_2d_px),
        right_hand_keypoints_2d_px=points_2d(sample.right_hand_keypoints_2d_px),
        body_keypoints_3d_cam_m=points_3d(sample.body_keypoints_3d_cam_m),
        left_hand_keypoints_3d_cam_m=points_3d(sample.left_hand_keypoints_3d_cam_m),
        right_hand_keypoints_3d_cam_m=points_3d(sample.right_hand_keypoints_3d_cam_m),
        vertices_cam_m=points_3d(sample.vertices_cam_m),
        smplx=smplx,
        left_mano=mano(sample.left_mano),
        right_mano=mano(sample.right_mano),
    )


def augment_sample(sample: Sample, params: AugmentationParams) -> Sample:
    """Flip (if drawn), then rotate; scale and colour are applied by the loader's crop."""
    if params.flip:
        sample = flip_sample(sample)
    return rotate_sample(sample, params.rotation_rad)


def scale_colours(images: torch.Tensor, factors: tuple[float, float, float]) -> torch.Tensor:
    """Multiply each RGB channel by its factor and clip to [0, 1].

    Args:
        images: (..., 3, H, W) RGB in [0, 1].
        factors: (r, g, b) multipliers.

    Returns:
        Same shape and dtype.
    """
    scale = images.new_tensor(factors).view(3, 1, 1)
    return (images * scale).clamp(0.0, 1.0)
