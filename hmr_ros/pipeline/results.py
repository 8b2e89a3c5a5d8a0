"""What the real-time pipeline hands to its consumers for one image (no ROS types).

The ROS node converts these into `PersonArray`, `HandPoseArray`, `PoseStamped` and `/tf`; the
offline command line writes them to npz/JSON. Every array is numpy (host memory, float32 unless
stated), every position is in metres in the camera optical frame of the source image (x right,
y down, z forward; REP 103 optical frame), and every rotation is a 3x3 matrix mapping the local
frame of the thing it orients into that camera frame.

SMPL-X parameters keep the `smplx` names and axis-angle convention, so consumers can feed them to
`smplx.SMPLX` directly. Hand poses are absolute (the SMPL-X `hands_mean` is included, as for a
`flat_hand_mean=True` layer), the one hand-pose convention of the whole project.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hmr_ros.pipeline.tracking import TrackState


@dataclass(frozen=True)
class HandResult:
    """One hand of one person.

    Attributes:
        side: 'left' or 'right', the person's own side (from the body model).
        valid: False when the hand was not estimated or is below the confidence threshold;
            consumers must then ignore the poses.
        confidence: 0..1.
        box_px: (4,) x_min, y_min, x_max, y_max in source-image pixels.
        wrist_position_m: (3,) wrist joint, camera frame.
        wrist_rotation: (3, 3) the SMPL-X wrist joint's global rotation in the camera frame.
        keypoints_m: (21, 3) camera frame, MediaPipe/OpenPose order.
        keypoint_confidence: (21,) scores, or shape (0,) when not estimated.
        finger_pose_aa: (15, 3) parent-relative axis-angle, SMPL-X/MANO joint order, absolute.
    """

    side: str
    valid: bool
    confidence: float
    box_px: np.ndarray
    wrist_position_m: np.ndarray
    wrist_rotation: np.ndarray
    keypoints_m: np.ndarray
    keypoint_confidence: np.ndarray
    finger_pose_aa: np.ndarray


@dataclass(frozen=True)
class PersonResult:
    """One person in one image.

    Attributes:
        track_id: tracker id (a string, unique while tracked; never a frame index).
        tracking_state: see TrackState (values equal Person.msg's constants).
        track_age: frames since the track was created.
        confidence: person-presence score, 0..1: the detector's score when boxes come from a
            detector or from outside, else the whole-body model's heatmap presence score; every
            reported person had it at or above ``detection.person_threshold`` when last seen.
        box_px: (4,) x_min, y_min, x_max, y_max in source-image pixels.
        global_orient, body_pose, left_hand_pose, right_hand_pose, jaw_pose: SMPL-X axis-angle
            parameters, shapes (3,), (21, 3), (15, 3), (15, 3), (3,); hand poses absolute.
        betas: (num_betas,).
        expression: (num_expression,).
        transl: (3,) metres; with global_orient, places the SMPL-X mesh in the camera frame.
        root_position_m: (3,) pelvis, camera frame.
        root_rotation: (3, 3) pelvis global rotation in the camera frame (SMPL-X body axes:
            x to the person's left, y up, z forward out of the body).
        root_velocity_mps: (3,) metres per second in the camera frame, from the tracker (rate
            of the matched root positions); zeros when unknown.
        joints_m: (K, 3) camera frame, order of `joint_names` in the model info.
        keypoints_2d_px: (K, 2) projections of joints_m with the real intrinsics (K, and D
            for a raw image with distortion: pixels of the image as received).
        vertices_m: (10475, 3) camera frame, or shape (0, 3) when vertices were not requested.
        left_hand, right_hand: the two hands.
        joint_confidence: (K,) per row of joints_m and keypoints_2d_px in [0, 1] (how
            concentrated the heatmap that located the joint was; 0 for joints no heatmap
            covers), or shape (0,) when the model gives none.
    """

    track_id: str
    tracking_state: TrackState
    track_age: int
    confidence: float
    box_px: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    left_hand_pose: np.ndarray
    right_hand_pose: np.ndarray
    jaw_pose: np.ndarray
    betas: np.ndarray
    expression: np.ndarray
    transl: np.ndarray
    root_position_m: np.ndarray
    root_rotation: np.ndarray
    root_velocity_mps: np.ndarray
    joints_m: np.ndarray
    keypoints_2d_px: np.ndarray
    vertices_m: np.ndarray
    left_hand: HandResult
    right_hand: HandResult
    joint_confidence: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline produced for one source image.

    Attributes:
        stamp_s: the source image's acquisition time, seconds (ROS time of the image header).
        frame_id: the source image's frame (camera optical frame).
        frame_index: count of processed frames since the pipeline started.
        persons: every person to publish (TENTATIVE, TRACKED, PREDICTED, and LOST once).
        stage_times_ms: wall time of each pipeline stage for this frame (decode, detect, body,
            hands, fuse, track, ...), milliseconds.
    """

    stamp_s: float
    frame_id: str
    frame_index: int
    persons: tuple[PersonResult, ...]
    stage_times_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelDescription:
    """Static facts about the running model, for ModelInfo and MeshTopology.

    Attributes:
        model_version: e.g. 'smplerx_h32+hamer'.
        adapters: 'none', 'hand', 'body' or 'both'.
        checkpoint_files: base and adapter files in use.
        checkpoint_sha256: same order as checkpoint_files.
        synthetic_weights: True when random stand-in weights or body models are in use.
        weights_note: a sentence for humans about the weights in use.
        backend: the inference backend that runs (hmr_ros.pipeline.backends: 'eager' ...).
        precision: 'fp32', 'fp16' or 'bf16'.
        device: e.g. 'cuda:0 (NVIDIA H100)' or 'cpu'.
        gender: SMPL-X model gender.
        num_betas, num_expression: parameter counts.
        joint_names: names of PersonResult.joints_m rows.
        joint_parents: parent index per joint: -1 for the root, a fingertip's last finger joint.
        hand_keypoint_names: names of HandResult.keypoints_m rows (21).
        faces: (F, 3) uint32 SMPL-X faces.
        left_hand_vertex_ids, right_hand_vertex_ids: SMPL-X vertex indices of each hand.
        body_input_hw: whole-body crop size (512, 384).
        hand_input_size: hand crop side (256).
    """

    model_version: str
    adapters: str
    checkpoint_files: tuple[str, ...]
    checkpoint_sha256: tuple[str, ...]
    synthetic_weights: bool
    weights_note: str
    backend: str
    precision: str
    device: str
    gender: str
    num_betas: int
    num_expression: int
    joint_names: tuple[str, ...]
    joint_parents: tuple[int, ...]
    hand_keypoint_names: tuple[str, ...]
    faces: np.ndarray
    left_hand_vertex_ids: np.ndarray
    right_hand_vertex_ids: np.ndarray
    body_input_hw: tuple[int, int]
    hand_input_size: int
