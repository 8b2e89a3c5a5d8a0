"""output.frame's re-expression of results (hmr_ros/pipeline/frame_change.py).

The outside reference is the smplx package itself: SMPL-X parameters moved into another frame
must make ``smplx.SMPLX`` draw the mesh moved by the same rigid transform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import smplx
import torch

from hmr_ros.body_models.model_files import find_smplx_file
from hmr_ros.geometry.rotations import axis_angle_to_rotmat
from hmr_ros.pipeline.frame_change import change_frame
from hmr_ros.pipeline.results import FrameResult, HandResult, PersonResult
from hmr_ros.pipeline.tracking import TrackState


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


def _hand(side: str, rng: np.random.Generator) -> HandResult:
    return HandResult(
        side=side,
        valid=True,
        confidence=0.9,
        box_px=np.array([1.0, 2.0, 30.0, 40.0], np.float32),
        wrist_position_m=rng.normal(size=3).astype(np.float32),
        wrist_rotation=_rotation(rng).astype(np.float32),
        keypoints_m=rng.normal(size=(21, 3)).astype(np.float32),
        keypoint_confidence=np.zeros(0, np.float32),
        finger_pose_aa=rng.normal(size=(15, 3)).astype(np.float32),
    )


@pytest.fixture(scope='module')
def smplx_layer(body_model_dir: Path):
    path = find_smplx_file(body_model_dir)
    return smplx.SMPLX(
        str(path), ext=path.suffix.lstrip('.'), use_pca=False, flat_hand_mean=True, num_betas=10
    )


def _draw(layer, global_orient, transl, body_pose, betas):
    with torch.no_grad():
        out = layer(
            global_orient=torch.as_tensor(global_orient, dtype=torch.float32).reshape(1, 3),
            transl=torch.as_tensor(transl, dtype=torch.float32).reshape(1, 3),
            body_pose=torch.as_tensor(body_pose, dtype=torch.float32).reshape(1, 63),
            betas=torch.as_tensor(betas, dtype=torch.float32).reshape(1, 10),
        )
    return out.vertices[0].numpy().astype(np.float64), out.joints[0].numpy().astype(np.float64)


def test_moved_smplx_parameters_draw_the_moved_mesh(smplx_layer) -> None:
    rng = np.random.default_rng(3)
    global_orient = rng.normal(scale=0.8, size=3)
    transl = rng.normal(size=3) + np.array([0.0, 0.0, 3.0])
    body_pose = rng.normal(scale=0.2, size=(21, 3))
    betas = rng.normal(size=10)
    vertices, joints = _draw(smplx_layer, global_orient, transl, body_pose, betas)
    person = PersonResult(
        track_id='a1',
        tracking_state=TrackState.TRACKED,
        track_age=3,
        confidence=0.9,
        box_px=np.array([0.0, 0.0, 10.0, 10.0], np.float32),
        global_orient=global_orient.astype(np.float32),
        body_pose=body_pose.astype(np.float32),
        left_hand_pose=np.zeros((15, 3), np.float32),
        right_hand_pose=np.zeros((15, 3), np.float32),
        jaw_pose=np.zeros(3, np.float32),
        betas=betas.astype(np.float32),
        expression=np.zeros(10, np.float32),
        transl=transl.astype(np.float32),
        root_position_m=joints[0].astype(np.float32),
        root_rotation=axis_angle_to_rotmat(torch.from_numpy(global_orient)).numpy(),
        root_velocity_mps=np.array([1.0, 0.0, 0.0], np.float32),
        joints_m=joints.astype(np.float32),
        keypoints_2d_px=rng.normal(size=(joints.shape[0], 2)).astype(np.float32),
        vertices_m=vertices.astype(np.float32),
        left_hand=_hand('left', rng),
        right_hand=_hand('right', rng),
    )
    result = FrameResult(
        stamp_s=1.5, frame_id='camera_color_optical_frame', frame_index=7, persons=(person,)
    )
    rotation, translation = _rotation(rng), rng.normal(size=3)

    moved = change_frame(result, rotation, translation, 'base_link')

    assert moved.frame_id == 'base_link' and moved.stamp_s == 1.5
    (out,) = moved.persons
    expected_vertices = vertices @ rotation.T + translation
    np.testing.assert_allclose(out.vertices_m, expected_vertices, atol=2e-5)
    np.testing.assert_allclose(out.joints_m, joints @ rotation.T + translation, atol=2e-5)
    redrawn, rejoints = _draw(smplx_layer, out.global_orient, out.transl, out.body_pose, out.betas)
    np.testing.assert_allclose(redrawn, expected_vertices, atol=5e-5)
    np.testing.assert_allclose(out.root_position_m, rejoints[0], atol=5e-5)
    np.testing.assert_allclose(out.root_rotation, rotation @ person.root_rotation, atol=1e-6)
    np.testing.assert_allclose(out.root_velocity_mps, rotation[:, 0], atol=1e-6)
    hand = out.right_hand
    np.testing.assert_allclose(
        hand.wrist_position_m,
        rotation @ person.right_hand.wrist_position_m + translation,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        hand.wrist_rotation, rotation @ person.right_hand.wrist_rotation, atol=1e-6
    )
    # Unchanged: local rotations and image-space quantities.
    np.testing.assert_array_equal(out.body_pose, person.body_pose)
    np.testing.assert_array_equal(out.keypoints_2d_px, person.keypoints_2d_px)
    np.testing.assert_array_equal(hand.finger_pose_aa, person.right_hand.finger_pose_aa)


def test_reflections_are_refused() -> None:
    result = FrameResult(stamp_s=0.0, frame_id='c', frame_index=0, persons=())
    with pytest.raises(ValueError, match='determinant'):
        change_frame(result, np.diag([1.0, 1.0, -1.0]), np.zeros(3), 'x')
    with pytest.raises(ValueError, match='orthonormal'):
        change_frame(result, np.eye(3) * 2.0, np.zeros(3), 'x')
