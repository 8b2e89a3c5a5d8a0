"""QoS profiles of hmr_node, named once (ros-interface.md 5.7; REP 2003).

- Inputs default to sensor-data QoS (best effort, keep last, depth 1 for images): a best-effort
  subscription receives from both reliable drivers (REP 2003's system default) and best-effort
  ones, the classic cause of "nothing is published" avoided. ``input.qos`` picks another profile
  and the standard ``qos_overrides.<topic>.subscription.*`` parameters refine it, because every
  publisher and subscription passes :func:`overriding_options`.
- Per-frame outputs are reliable, keep last, volatile: what RViz and ``ros2 topic echo`` request
  by default; consumers on lossy links may subscribe best effort.
- Static information (ModelInfo, MeshTopology) is reliable and transient-local with depth 1, so
  a late subscriber still gets it (REP 2003's map-style profile).
- Images are never queued: depth 1 plus the node's latest-frame-wins slot.
"""

from __future__ import annotations

from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_system_default,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

IMAGE_DEPTH = 1
CAMERA_INFO_DEPTH = 5
DETECTIONS_DEPTH = 5  # external person boxes: a few arrays survive until their image is matched
ARRAY_OUTPUT_DEPTH = 5  # persons, hands: a short burst survives a slow consumer
CONTROL_OUTPUT_DEPTH = 1  # wrist poses: only the newest target matters
TF_DEPTH = 100  # as tf2_ros.TransformBroadcaster
DIAGNOSTICS_DEPTH = 10


def _keep_last(
    depth: int,
    reliability: QoSReliabilityPolicy = QoSReliabilityPolicy.RELIABLE,
    durability: QoSDurabilityPolicy = QoSDurabilityPolicy.VOLATILE,
) -> QoSProfile:
    """A keep-last profile; reliable and volatile unless told otherwise."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=reliability,
        durability=durability,
    )


def _input_profile(name: str, depth: int) -> QoSProfile:
    if name == 'sensor_data':
        return _keep_last(depth, QoSReliabilityPolicy.BEST_EFFORT)
    if name == 'reliable':
        return _keep_last(depth)
    if name == 'system_default':
        return QoSProfile(
            history=qos_profile_system_default.history,
            depth=depth,
            reliability=qos_profile_system_default.reliability,
            durability=qos_profile_system_default.durability,
        )
    raise ValueError(
        f"input QoS {name!r} is not known; choose 'sensor_data', 'reliable' or 'system_default'"
    )


def image_qos(name: str) -> QoSProfile:
    """QoS of the ``image`` (or ``image/compressed``) subscription for ``input.qos``."""
    return _input_profile(name, IMAGE_DEPTH)


def camera_info_qos(name: str) -> QoSProfile:
    """QoS of the ``camera_info`` subscription for ``input.qos``."""
    return _input_profile(name, CAMERA_INFO_DEPTH)


def detections_qos() -> QoSProfile:
    """``detections`` (external person boxes): reliable, keep last 5, volatile."""
    return _keep_last(DETECTIONS_DEPTH)


def array_output_qos() -> QoSProfile:
    """``persons`` and ``hands``: reliable, keep last 5, volatile."""
    return _keep_last(ARRAY_OUTPUT_DEPTH)


def control_output_qos() -> QoSProfile:
    """``left_hand/pose`` and ``right_hand/pose``: reliable, keep last 1, volatile."""
    return _keep_last(CONTROL_OUTPUT_DEPTH)


def latched_qos() -> QoSProfile:
    """``model_info`` and ``mesh_topology``: reliable, transient-local, keep last 1."""
    return _keep_last(1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def tf_qos() -> QoSProfile:
    """``/tf``: the profile of ``tf2_ros.TransformBroadcaster`` (reliable, keep last 100)."""
    return _keep_last(TF_DEPTH)


def diagnostics_qos() -> QoSProfile:
    """``/diagnostics``: reliable, keep last 10 (diagnostic_updater's default)."""
    return _keep_last(DIAGNOSTICS_DEPTH)


def overriding_options() -> QoSOverridingOptions:
    """Expose history, depth and reliability as read-only ``qos_overrides.*`` parameters."""
    return QoSOverridingOptions.with_default_policies()
