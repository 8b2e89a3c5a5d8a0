"""Re-express one frame's results in another frame (``output.frame``), without ROS.

The pipeline estimates everything in the camera optical frame of the image. A robot usually
wants a fixed frame (``base_link``, ``odom``); given the rigid transform that maps camera
coordinates into that frame, x_out = R x_cam + t, every position and orientation is moved:

- positions (joints, vertices, pelvis, wrists, hand keypoints): R p + t;
- orientations (pelvis, wrists; 3x3, local frame -> camera): R M;
- velocities: R v;
- SMPL-X's ``global_orient`` and ``transl``: the layer rotates the shaped rest mesh about its
  pelvis joint J0 and then adds ``transl``, so v = R_g (v0 - J0) + J0 + transl and the pelvis
  is at J0 + transl. Moving the mesh by (R, t) gives R_g' = R R_g and
  transl' = R (J0 + transl) + t - J0, with J0 = pelvis - transl read from the result itself, so
  ``smplx.SMPLX`` fed the new parameters draws the moved mesh (the test checks this with smplx);
- local joint rotations, shape, expression, boxes and 2D keypoints do not change.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmr_ros.geometry.rotations import (
    axis_angle_to_rotmat_np,
    quaternion_xyzw_log_np,
    rotmat_to_quaternion_xyzw_np,
)
from hmr_ros.pipeline.results import FrameResult, HandResult, PersonResult


def _points(rotation: np.ndarray, translation_m: np.ndarray, points: np.ndarray) -> np.ndarray:
    moved = points.reshape(-1, 3) @ rotation.T + translation_m
    return moved.reshape(points.shape).astype(points.dtype, copy=False)


def _hand(rotation: np.ndarray, translation_m: np.ndarray, hand: HandResult) -> HandResult:
    return dataclasses.replace(
        hand,
        wrist_position_m=_points(rotation, translation_m, hand.wrist_position_m),
        wrist_rotation=(rotation @ hand.wrist_rotation).astype(hand.wrist_rotation.dtype),
        keypoints_m=_points(rotation, translation_m, hand.keypoints_m),
    )


def _person(rotation: np.ndarray, translation_m: np.ndarray, person: PersonResult) -> PersonResult:
    root = np.asarray(person.root_position_m, dtype=np.float64)
    transl = np.asarray(person.transl, dtype=np.float64)
    rest_pelvis = root - transl  # J0 of the shaped rest mesh
    orient = axis_angle_to_rotmat_np(person.global_orient)
    new_orient = quaternion_xyzw_log_np(rotmat_to_quaternion_xyzw_np(rotation @ orient))
    new_transl = rotation @ root + translation_m - rest_pelvis
    dtype = person.transl.dtype
    return dataclasses.replace(
        person,
        global_orient=new_orient.astype(person.global_orient.dtype),
        transl=new_transl.astype(dtype),
        root_position_m=_points(rotation, translation_m, person.root_position_m),
        root_rotation=(rotation @ person.root_rotation).astype(person.root_rotation.dtype),
        root_velocity_mps=(rotation @ person.root_velocity_mps).astype(
            person.root_velocity_mps.dtype
        ),
        joints_m=_points(rotation, translation_m, person.joints_m),
        vertices_m=_points(rotation, translation_m, person.vertices_m),
        left_hand=_hand(rotation, translation_m, person.left_hand),
        right_hand=_hand(rotation, translation_m, person.right_hand),
    )


def change_frame(
    result: FrameResult, rotation: np.ndarray, translation_m: np.ndarray, frame_id: str
) -> FrameResult:
    """The same results expressed in ``frame_id``.

    Args:
        result: one frame's results in the camera optical frame.
        rotation: (3, 3) rotation taking camera-frame vectors into ``frame_id``.
        translation_m: (3,) position of the camera origin in ``frame_id``, metres.
        frame_id: the target frame's name.

    Raises:
        ValueError: ``rotation`` is not a proper rotation (orthonormal, determinant +1).
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    translation_m = np.asarray(translation_m, dtype=np.float64).reshape(3)
    if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5):
        raise ValueError(f'rotation must be an orthonormal 3x3 matrix; got {rotation!r}')
    if np.linalg.det(rotation) < 0:
        raise ValueError('rotation must have determinant +1 (a reflection was given)')
    persons = tuple(_person(rotation, translation_m, person) for person in result.persons)
    return dataclasses.replace(result, persons=persons, frame_id=frame_id)
