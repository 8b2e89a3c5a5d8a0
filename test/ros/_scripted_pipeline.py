"""A deterministic FramePipeline test double for the ROS-layer tests (no model, no torch).

It returns persons whose every value is derived from the frame (stamp and intrinsics), records
every call with the calling thread, and can sleep or fail on chosen frames. Production code has
no such backend: the node's real factory is hmr_ros.pipeline.runner.build_pipeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import numpy as np

from hmr_ros.body_models.joint_names import (
    ANATOMICAL_FINGER_ORDER,
    OPENPOSE_HAND_JOINT_NAMES,
    SMPLX_JOINT_INDEX,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
)
from hmr_ros.pipeline.detectors.base import Detections
from hmr_ros.pipeline.protocol import Frame, RuntimeSettings
from hmr_ros.pipeline.results import FrameResult, HandResult, ModelDescription, PersonResult
from hmr_ros.pipeline.tracking import TrackState

FINGERTIP_NAMES = tuple(
    f'{side}_{finger}' for side in ('left', 'right') for finger in ANATOMICAL_FINGER_ORDER
)
JOINT_NAMES = SMPLX_JOINT_NAMES + FINGERTIP_NAMES
JOINT_PARENTS = SMPLX_PARENTS + (-1,) * len(FINGERTIP_NAMES)
NUM_JOINTS = len(JOINT_NAMES)
FACES = np.array([[0, 1, 2], [0, 2, 3], [3, 2, 4]], dtype=np.uint32)  # 5 vertices
FACING_CAMERA = np.diag([1.0, -1.0, -1.0])
"""SMPL-X root rotation of a person facing the camera: x (their left) = camera x (right),
y (up) = -camera y, z (front) = -camera z."""


def axis_angle_matrix(axis_angle: Iterable[float]) -> np.ndarray:
    """Rodrigues' formula written out for tests (independent of the code under test)."""
    vector = np.asarray(list(axis_angle), dtype=np.float64)
    angle = float(np.linalg.norm(vector))
    if angle == 0.0:
        return np.eye(3)
    k = vector / angle
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def make_hand(
    side: str,
    wrist_m: np.ndarray,
    rotation: np.ndarray,
    *,
    valid: bool = True,
    confidence: float = 0.9,
) -> HandResult:
    """A hand whose 21 keypoints are a fixed flat hand placed by ``rotation`` at ``wrist_m``.

    The hand's own axes: a = toward the fingers, c = the palm normal out of the palm, b = c x a.
    Anatomy fixes the thumb's side: hold a hand up in front of a camera, palm toward it, fingers
    up (a = up = -y optical, c = toward the camera = -z optical, so b = -x optical); the right
    hand's thumb is then on the image's right (+x optical = -b) and the left hand's thumb on the
    image's left (+b). Knuckles sit 9 cm along a; the index knuckle 2 cm toward the thumb side,
    the little-finger knuckle 3 cm away from it; fingers continue 3 cm per joint.
    """
    thumb_sign = -1.0 if side == 'right' else 1.0  # along b (see above)
    across = {'thumb': 0.04, 'index': 0.02, 'middle': 0.0, 'ring': -0.015, 'pinky': -0.03}
    base = {'thumb': 0.03, 'index': 0.09, 'middle': 0.09, 'ring': 0.085, 'pinky': 0.08}
    local = [np.zeros(3)]
    for finger in ANATOMICAL_FINGER_ORDER:
        for segment in range(4):
            local.append(
                np.array([base[finger] + 0.03 * segment, thumb_sign * across[finger], 0.0])
            )
    keypoints = wrist_m + np.stack(local) @ rotation.T
    assert len(keypoints) == len(OPENPOSE_HAND_JOINT_NAMES)
    return HandResult(
        side=side,
        valid=valid,
        confidence=confidence,
        box_px=np.array([10.0, 20.0, 60.0, 80.0]),
        wrist_position_m=np.asarray(wrist_m, dtype=np.float64),
        wrist_rotation=rotation,
        keypoints_m=keypoints,
        keypoint_confidence=np.full(21, 0.8),
        finger_pose_aa=np.linspace(-0.2, 0.2, 45).reshape(15, 3),
    )


def make_person(
    track_id: str = '7',
    *,
    state: TrackState = TrackState.TRACKED,
    phase: float = 0.0,
    hand_confidence: float = 0.9,
    hands_valid: bool = True,
    with_vertices: bool = False,
) -> PersonResult:
    """A person about 2.5 m in front of the camera, facing it; values vary smoothly with phase."""
    rng = np.random.default_rng(int(track_id) if track_id.isdigit() else 0)
    root = np.array([0.1 + 0.01 * np.sin(phase), -0.2, 2.5])
    root_rotation = FACING_CAMERA @ axis_angle_matrix([0.0, 0.2 * np.sin(phase), 0.0])
    joints = root + rng.uniform(-0.8, 0.8, size=(NUM_JOINTS, 3)) * np.array([1.0, 1.0, 0.2])
    joints[0] = root
    left_wrist = joints[SMPLX_JOINT_INDEX['left_wrist']]
    right_wrist = joints[SMPLX_JOINT_INDEX['right_wrist']]
    left_rotation = axis_angle_matrix([0.3, -0.5, 0.2])
    right_rotation = axis_angle_matrix([-0.4, 0.6, 1.1])
    return PersonResult(
        track_id=track_id,
        tracking_state=state,
        track_age=5,
        confidence=0.95,
        box_px=np.array([100.0, 50.0, 300.0, 460.0]),
        global_orient=np.array([np.pi, 0.0, 0.0]),
        body_pose=rng.uniform(-0.3, 0.3, size=(21, 3)),
        left_hand_pose=rng.uniform(-0.3, 0.3, size=(15, 3)),
        right_hand_pose=rng.uniform(-0.3, 0.3, size=(15, 3)),
        jaw_pose=np.array([0.1, 0.0, 0.0]),
        betas=np.arange(10) / 10.0,
        expression=-np.arange(10) / 10.0,
        transl=root - np.array([0.0, 0.3, 0.0]),
        root_position_m=root,
        root_rotation=root_rotation,
        root_velocity_mps=np.array([0.1, 0.0, -0.05]),
        joints_m=joints,
        keypoints_2d_px=joints[:, :2] / joints[:, 2:] * 500.0 + 320.0,
        vertices_m=(
            np.arange(15, dtype=np.float64).reshape(5, 3) / 10
            if with_vertices
            else np.zeros((0, 3))
        ),
        left_hand=make_hand(
            'left', left_wrist, left_rotation, valid=hands_valid, confidence=hand_confidence
        ),
        right_hand=make_hand(
            'right', right_wrist, right_rotation, valid=hands_valid, confidence=hand_confidence
        ),
    )


def make_description() -> ModelDescription:
    """A ModelDescription with the real joint names and a five-vertex mesh."""
    return ModelDescription(
        model_version='scripted_test_pipeline',
        adapters='none',
        checkpoint_files=('/tmp/whole_body.safetensors', '/tmp/hand.safetensors'),
        checkpoint_sha256=('a' * 64, 'b' * 64),
        synthetic_weights=True,
        weights_note='scripted test double, no network',
        backend='pytorch',
        precision='fp32',
        device='cpu',
        gender='neutral',
        num_betas=10,
        num_expression=10,
        joint_names=JOINT_NAMES,
        joint_parents=JOINT_PARENTS,
        hand_keypoint_names=OPENPOSE_HAND_JOINT_NAMES,
        faces=FACES,
        left_hand_vertex_ids=np.array([0, 1], dtype=np.uint32),
        right_hand_vertex_ids=np.array([3, 4], dtype=np.uint32),
        body_input_hw=(512, 384),
        hand_input_size=256,
    )


class ScriptedPipeline:
    """FramePipeline double: one TRACKED person '7' (plus a TENTATIVE '8') per frame.

    Args:
        delay_s: Sleep in every process call (a slow model).
        fail_on: 1-based frame numbers on which process raises RuntimeError.
        hand_confidence: Confidence of every hand.
    """

    def __init__(
        self, *, delay_s: float = 0.0, fail_on: Iterable[int] = (), hand_confidence: float = 0.9
    ) -> None:
        self.delay_s = delay_s
        self.fail_on = frozenset(fail_on)
        self.hand_confidence = hand_confidence
        self.frames: list[Frame] = []
        self.detections: list[Detections | None] = []  # what process received with each frame
        self.results: list[FrameResult] = []
        self.settings: list[RuntimeSettings] = []
        self.calls: list[tuple[str, str]] = []  # (method, thread name)
        self.resets = 0
        self.closed = False
        self.publish_vertices = False
        self._lock = threading.Lock()

    def _record(self, method: str) -> None:
        with self._lock:
            self.calls.append((method, threading.current_thread().name))

    def describe(self) -> ModelDescription:
        return make_description()

    def process(self, frame: Frame, detections: Detections | None = None) -> FrameResult:
        self._record('process')
        with self._lock:
            self.frames.append(frame)
            self.detections.append(detections)
            number = len(self.frames)
        if self.delay_s:
            time.sleep(self.delay_s)
        if number in self.fail_on:
            raise RuntimeError(f'scripted failure on frame {number}')
        phase = frame.stamp_s % 100.0
        result = FrameResult(
            stamp_s=frame.stamp_s,
            frame_id=frame.frame_id,
            frame_index=number,
            persons=(
                make_person(
                    '7',
                    phase=phase,
                    hand_confidence=self.hand_confidence,
                    with_vertices=self.publish_vertices,
                ),
                make_person(
                    '8',
                    state=TrackState.TENTATIVE,
                    phase=phase,
                    hand_confidence=self.hand_confidence,
                ),
            ),
        )
        with self._lock:
            self.results.append(result)
        return result

    def update_settings(self, settings: RuntimeSettings) -> None:
        self._record('update_settings')
        with self._lock:
            self.settings.append(settings)
            self.publish_vertices = settings.publish_vertices

    def reset_tracking(self) -> None:
        self._record('reset_tracking')
        with self._lock:
            self.resets += 1

    def close(self) -> None:
        self._record('close')
        self.closed = True
