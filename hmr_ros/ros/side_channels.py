"""Standard-message side channels that tools understand without ModelInfo.

hmr_node's own messages (PersonArray, HandPoseArray) carry everything, but plotting tools,
``robot_state_publisher``-style consumers, trackers and generic detection viewers speak the
standard types. Three such channels, each stamped with the image's stamp and in the outputs'
frame:

- ``operator/joint_states`` (``sensor_msgs/JointState``): the operator's body as three revolute
  angles per SMPL-X kinematic joint (``<joint>_x``, ``<joint>_y``, ``<joint>_z``, names from
  ModelInfo.joint_names), radians: the joint's local rotation R = Rx(a) Ry(b) Rz(c), i.e. a
  URDF chain of revolute joints about x, then y, then z (intrinsic XYZ Euler angles). The
  pelvis entry is ``global_orient`` (relative to the header frame). Empty ``velocity`` and
  ``effort``.
- ``operator/wrists`` (``geometry_msgs/PoseArray``): exactly two poses, [left, right], the same
  poses as ``left_hand/pose`` and ``right_hand/pose``; a side without a usable hand is a pose
  with NaN position and an all-zero (invalid) quaternion, so it cannot be mistaken for a pose.
  Published only while at least one side is usable.
- ``tracked_detections`` (``vision_msgs/Detection2DArray``, when ``output.detections`` is true):
  one Detection2D per published person, ``id`` = track id, class ``person``, score = the
  person's confidence, bbox = the person box (centre and size, pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from hmr_ros.geometry.rotations import axis_angle_to_rotmat_np
from hmr_ros.pipeline.results import FrameResult, HandResult, PersonResult
from hmr_ros.ros import conversions

SIDES = ('left', 'right')
NUM_KINEMATIC_JOINTS = 55  # SMPL-X: pelvis, 21 body, jaw, 2 eyes, 2 x 15 fingers
PERSON_CLASS_ID = 'person'
VISION_MSGS_FOR_DETECTIONS = (
    'output.detections is true but vision_msgs is not installed; install '
    'ros-<distro>-vision-msgs or set output.detections false'
)


def intrinsic_xyz_euler(rotation: np.ndarray) -> np.ndarray:
    """Angles (a, b, c) with R = Rx(a) Ry(b) Rz(c), radians, for (..., 3, 3) rotations.

    With that product, R[0, 2] = sin b, R[1, 2] = -sin a cos b, R[2, 2] = cos a cos b,
    R[0, 1] = -cos b sin c and R[0, 0] = cos b cos c. At the singularity (|sin b| = 1) c is 0
    and a takes the whole rotation about the common axis.
    """
    r = np.asarray(rotation, dtype=np.float64)
    sin_b = np.clip(r[..., 0, 2], -1.0, 1.0)
    b = np.arcsin(sin_b)
    regular = np.abs(sin_b) < 1.0 - 1e-9
    a_regular = np.arctan2(-r[..., 1, 2], r[..., 2, 2])
    a_singular = np.arctan2(r[..., 2, 1], r[..., 1, 1])
    a = np.where(regular, a_regular, a_singular)
    c = np.where(regular, np.arctan2(-r[..., 0, 1], r[..., 0, 0]), 0.0)
    return np.stack([a, b, c], axis=-1)


def _local_rotations(person: PersonResult) -> np.ndarray:
    """(55, 3) axis-angle of the kinematic joints in SMPL-X order (eyes are zero)."""
    zeros = np.zeros((1, 3))
    return np.concatenate(
        [
            np.asarray(person.global_orient, np.float64).reshape(1, 3),
            np.asarray(person.body_pose, np.float64).reshape(21, 3),
            np.asarray(person.jaw_pose, np.float64).reshape(1, 3),
            zeros,
            zeros,
            np.asarray(person.left_hand_pose, np.float64).reshape(15, 3),
            np.asarray(person.right_hand_pose, np.float64).reshape(15, 3),
        ]
    )


def joint_state_message(
    person: PersonResult, joint_names: Sequence[str], header: Header
) -> JointState:
    """The person's SMPL-X joint rotations as a JointState (module docstring)."""
    names = list(joint_names[:NUM_KINEMATIC_JOINTS])
    if len(names) != NUM_KINEMATIC_JOINTS:
        raise ValueError(f'need the {NUM_KINEMATIC_JOINTS} SMPL-X kinematic joint names')
    rotations = axis_angle_to_rotmat_np(_local_rotations(person))
    angles = intrinsic_xyz_euler(rotations)
    message = JointState()
    message.header = header
    message.name = [f'{name}_{axis}' for name in names for axis in 'xyz']
    message.position = angles.reshape(-1).tolist()
    return message


def _invalid_pose() -> Pose:
    pose = Pose()
    pose.position.x = pose.position.y = pose.position.z = math.nan
    pose.orientation.w = 0.0
    return pose


def wrist_pose_array(
    hands: dict[str, HandResult],
    header: Header,
    convention: conversions.HandFrameConvention,
) -> PoseArray | None:
    """[left, right] operator wrist poses (module docstring); None when neither is usable."""
    if not hands:
        return None
    message = PoseArray()
    message.header = header
    for side in SIDES:
        hand = hands.get(side)
        if hand is None:
            message.poses.append(_invalid_pose())
        else:
            message.poses.append(
                conversions.pose_message(
                    hand.wrist_position_m, conversions.hand_wrist_rotation(hand, convention)
                )
            )
    return message


def detection_array_message(result: FrameResult, header: Header, types: Any) -> Any:
    """``vision_msgs/Detection2DArray`` of the result's persons.

    Args:
        result: the frame's persons.
        header: the output header.
        types: the ``vision_msgs.msg`` module (Humble and later: ``bbox.center.position``;
            Foxy/Galactic: ``bbox.center.x``; both layouts are filled).
    """
    message = types.Detection2DArray()
    message.header = header
    for person in result.persons:
        detection = types.Detection2D()
        detection.header = header
        detection.id = person.track_id
        x1, y1, x2, y2 = (float(v) for v in np.asarray(person.box_px).reshape(4))
        centre = detection.bbox.center
        target = centre.position if hasattr(centre, 'position') else centre
        target.x, target.y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        detection.bbox.size_x, detection.bbox.size_y = x2 - x1, y2 - y1
        hypothesis = types.ObjectHypothesisWithPose()
        inner = hypothesis.hypothesis if hasattr(hypothesis, 'hypothesis') else hypothesis
        if hasattr(inner, 'class_id'):
            inner.class_id = PERSON_CLASS_ID
        else:  # Foxy: ObjectHypothesisWithPose.id
            inner.id = PERSON_CLASS_ID
        inner.score = float(person.confidence)
        detection.results.append(hypothesis)
        message.detections.append(detection)
    return message


def vision_msgs_module() -> Any:
    """``vision_msgs.msg``, imported only when ``output.detections`` asks for it.

    Raises:
        ImportError: vision_msgs is not installed.
    """
    import vision_msgs.msg

    return vision_msgs.msg


class SideChannelPublishers:
    """The side channels' lifecycle publishers on hmr_node (created at configure).

    Args:
        node: the lifecycle node.
        joint_states: publish ``operator/joint_states`` and ``operator/wrists``.
        detection_types: the ``vision_msgs.msg`` module for ``tracked_detections``, or None.
    """

    def __init__(self, node: Any, joint_states: bool, detection_types: Any | None) -> None:
        from hmr_ros.ros import qos

        def publisher(message_type: Any, topic: str, profile: Any) -> Any:
            return node.create_lifecycle_publisher(
                message_type, topic, profile, qos_overriding_options=qos.overriding_options()
            )

        self._types = detection_types
        self._joint_states = (
            publisher(JointState, 'operator/joint_states', qos.control_output_qos())
            if joint_states
            else None
        )
        self._wrists = (
            publisher(PoseArray, 'operator/wrists', qos.control_output_qos())
            if joint_states
            else None
        )
        self._detections = (
            publisher(
                detection_types.Detection2DArray, 'tracked_detections', qos.array_output_qos()
            )
            if detection_types is not None
            else None
        )

    @property
    def publishers(self) -> list[Any]:
        """The publishers created (for the node to destroy with its others)."""
        return [p for p in (self._joint_states, self._wrists, self._detections) if p is not None]

    def publish(
        self,
        result: FrameResult,
        header: Header,
        operator: PersonResult | None,
        hands: dict[str, HandResult],
        joint_names: Sequence[str],
        convention: conversions.HandFrameConvention,
    ) -> None:
        """Publish one frame's side channels (operator ones only with an operator)."""
        if self._joint_states is not None and operator is not None:
            self._joint_states.publish(joint_state_message(operator, joint_names, header))
        if self._wrists is not None:
            wrists = wrist_pose_array(hands, header, convention)
            if wrists is not None:
                self._wrists.publish(wrists)
        if self._detections is not None:
            self._detections.publish(detection_array_message(result, header, self._types))
