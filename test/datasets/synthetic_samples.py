"""Synthetic canonical samples shared by the training-data tests (no files, no downloads).

Imported by the test modules of this folder (pytest puts the folder on sys.path).
"""

from __future__ import annotations

import numpy as np

from hmr_ros.body_models.joint_names import NUM_BODY_JOINTS, NUM_HAND_JOINTS, NUM_HAND_KEYPOINTS
from hmr_ros.datasets.sample import (
    KEYPOINT_LAYOUTS,
    MANOParams,
    Sample,
    SMPLXParams,
    keypoint_box_xyxy,
)

IMAGE_WH = (48, 36)
INTRINSICS = np.array(((60.0, 0.5, 23.2), (0.0, 55.0, 17.9), (0.0, 0.0, 1.0)))
"""fx != fy, a small skew and an off-centre principal point, to catch formula slips."""


def project(points_cam_m: np.ndarray, intrinsics: np.ndarray = INTRINSICS) -> np.ndarray:
    """Pinhole projection of (N, 3) camera-frame points to (N, 2) pixels."""
    homogeneous = points_cam_m @ intrinsics.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def _points_3d(
    rng: np.random.Generator, count: int, centre: tuple[float, float, float]
) -> np.ndarray:
    """(count, 4) points near centre (metres) with confidence 1."""
    xyz = np.asarray(centre) + rng.normal(scale=0.1, size=(count, 3))
    return np.concatenate((xyz, np.ones((count, 1))), axis=1).astype(np.float32)


def _with_projection(points_3d: np.ndarray) -> np.ndarray:
    return np.concatenate((project(points_3d[:, :3]), points_3d[:, 3:]), axis=1)


def _mano(rng: np.random.Generator) -> MANOParams:
    return MANOParams(
        global_orient_aa=rng.normal(size=3),
        hand_pose_aa=rng.normal(scale=0.3, size=(NUM_HAND_JOINTS, 3)),
        betas=rng.normal(size=10),
    )


def make_synthetic_sample(seed: int = 0, rest_pelvis_m: np.ndarray | None = None) -> Sample:
    """A self-consistent whole-body sample: 2D keypoints are projections of the 3D ones.

    Body keypoints use the 'smplx' layout (76 points, a few marked absent), both hands have
    21 keypoints, MANO parameters and boxes; the mesh is a right MANO hand.
    """
    rng = np.random.default_rng(seed)
    body_3d = _points_3d(rng, len(KEYPOINT_LAYOUTS['smplx']), (0.0, 0.0, 3.0))
    body_3d[[3, 40], 3] = 0.0
    left_3d = _points_3d(rng, NUM_HAND_KEYPOINTS, (0.2, 0.1, 2.8))
    right_3d = _points_3d(rng, NUM_HAND_KEYPOINTS, (-0.25, 0.05, 2.9))
    left_2d, right_2d = _with_projection(left_3d), _with_projection(right_3d)
    body_2d = _with_projection(body_3d)
    width, height = IMAGE_WH
    return Sample(
        dataset='synthetic',
        sample_id=f'synthetic/{seed}',
        image_size_wh=IMAGE_WH,
        image_path=f'/nonexistent/{seed}.jpg',
        image=rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8),
        intrinsics=INTRINSICS,
        person_box_xyxy=keypoint_box_xyxy(body_2d),
        left_hand_box_xyxy=keypoint_box_xyxy(left_2d),
        right_hand_box_xyxy=keypoint_box_xyxy(right_2d),
        smplx=SMPLXParams(
            global_orient_aa=rng.normal(size=3),
            body_pose_aa=rng.normal(scale=0.3, size=(NUM_BODY_JOINTS, 3)),
            left_hand_pose_aa=rng.normal(scale=0.3, size=(NUM_HAND_JOINTS, 3)),
            right_hand_pose_aa=rng.normal(scale=0.3, size=(NUM_HAND_JOINTS, 3)),
            jaw_pose_aa=rng.normal(scale=0.1, size=3),
            betas=rng.normal(size=10),
            expression=rng.normal(size=10),
            transl_m=(0.1, -0.2, 3.0),
            rest_pelvis_m=rng.normal(scale=0.2, size=3)
            if rest_pelvis_m is None
            else rest_pelvis_m,
        ),
        left_mano=_mano(rng),
        right_mano=_mano(rng),
        body_keypoint_layout='smplx',
        body_keypoints_2d_px=body_2d,
        body_keypoints_3d_cam_m=body_3d,
        left_hand_keypoints_2d_px=left_2d,
        right_hand_keypoints_2d_px=right_2d,
        left_hand_keypoints_3d_cam_m=left_3d,
        right_hand_keypoints_3d_cam_m=right_3d,
        vertices_cam_m=_points_3d(rng, 778, (-0.25, 0.05, 2.9))[:, :3],
        vertices_model='mano_right',
    )
