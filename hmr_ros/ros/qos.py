"""QoS profiles of hmr_node, named once (docs/ros-interface.md; REP 2003).

- Images default to ``input.qos: auto``: the image subscription takes the reliability of the
  publishers found on its topic (:func:`auto_image_reliability`), re-checked while active. A
  reliable publisher (most drivers: REP 2003's system default) gets a reliable keep-last-1
  subscription, so large frames arrive complete; over best effort the DDS drops most samples
  larger than its shared-memory segment and socket buffers (640x480 rgb8: about a third
  arrive, docs/dds-large-images.md). Best-effort publishers, or none yet, get best effort,
  which matches every publisher. ``sensor_data`` (always best effort) and ``reliable`` stay
  explicit choices; camera_info is small and stays best effort under ``auto``.
- The standard ``qos_overrides.<topic>.subscription.*`` parameters refine every profile,
  because every publisher and subscription passes :func:`overriding_options`; under ``auto``
  the image subscription's reliability is the node's choice, so only its history and depth are
  exposed (:func:`image_overriding_options`).
- Per-frame outputs are reliable, keep last, volatile: what RViz and ``ros2 topic echo`` request
  by default; consumers on lossy links may subscribe best effort.
- Static information (ModelInfo, MeshTopology) is reliable and transient-local with depth 1, so
  a late subscriber still gets it (REP 2003's map-style profile).
- Images are never queued: depth 1 plus the node's latest-frame-wins slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSPolicyKind,
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


AUTO = 'auto'
"""``input.qos`` value: match the image publishers' reliability."""


def auto_image_reliability(offered: Iterable[QoSReliabilityPolicy]) -> QoSReliabilityPolicy:
    """The image subscription's reliability under ``input.qos: auto``.

    Args:
        offered: Reliability of each publisher on the image topic.

    Returns:
        RELIABLE when there are publishers and all of them are reliable (a reliable reader
        gets large frames complete); BEST_EFFORT otherwise: with a best-effort publisher a
        reliable reader would not match it at all, and with no publisher yet best effort
        matches whatever appears.
    """
    offered = list(offered)
    if offered and all(policy == QoSReliabilityPolicy.RELIABLE for policy in offered):
        return QoSReliabilityPolicy.RELIABLE
    return QoSReliabilityPolicy.BEST_EFFORT


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
        f"input QoS {name!r} is not known; choose 'auto', 'sensor_data', 'reliable' or "
        "'system_default'"
    )


def image_qos(name: str, offered: Iterable[QoSReliabilityPolicy] = ()) -> QoSProfile:
    """QoS of the ``image`` (or ``image/compressed``) subscription for ``input.qos``.

    Args:
        name: ``input.qos``.
        offered: Under ``auto``, the reliability of each publisher found on the topic.
    """
    if name == AUTO:
        return _keep_last(IMAGE_DEPTH, auto_image_reliability(offered))
    return _input_profile(name, IMAGE_DEPTH)


def camera_info_qos(name: str) -> QoSProfile:
    """QoS of the ``camera_info`` subscription for ``input.qos`` (``auto``: sensor data)."""
    return _input_profile('sensor_data' if name == AUTO else name, CAMERA_INFO_DEPTH)


def image_overriding_options(name: str) -> QoSOverridingOptions:
    """``qos_overrides`` of the image subscription: history and depth only under ``auto``.

    A declared reliability parameter would pin the first choice (rclpy reuses a declared
    override when the subscription is created again), so ``auto`` leaves it undeclared.
    """
    if name == AUTO:
        return QoSOverridingOptions(policy_kinds=(QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH))
    return overriding_options()


def source_rate_hz(stamps_ns: Sequence[int]) -> float | None:
    """The camera's frame rate estimated from the stamps of the images received.

    A lost frame makes the interval between two received stamps a multiple of the frame
    period, never shorter: the intervals within 1.5 times their 5th percentile are the
    single periods (with the camera's jitter), and their median estimates the period even
    when most frames are lost at random (a third of the intervals are single ones when a
    third of the frames arrive).

    Args:
        stamps_ns: Header stamps of consecutive received images, nanoseconds.

    Returns:
        Frames per second, or None with fewer than 5 positive intervals.
    """
    intervals = np.diff(np.asarray(stamps_ns, dtype=np.int64))
    intervals = intervals[intervals > 0]
    if intervals.size < 5:
        return None
    single = intervals[intervals < 1.5 * np.percentile(intervals, 5)]
    return 1e9 / float(np.median(single))


def received_fraction(stamps_ns: Sequence[int]) -> float | None:
    """Share of the camera's frames that arrived, from received stamps (:func:`source_rate_hz`).

    Returns:
        ``(N - 1) / (rate * span)`` in (0, 1], None when the rate cannot be estimated.
    """
    rate_hz = source_rate_hz(stamps_ns)
    if rate_hz is None:
        return None
    span_s = (max(stamps_ns) - min(stamps_ns)) / 1e9
    if span_s <= 0.0:
        return None
    return min(1.0, (len(stamps_ns) - 1) / (rate_hz * span_s))


def missing_images_hint(
    requested: QoSReliabilityPolicy,
    offered: Sequence[QoSReliabilityPolicy],
    fraction: float | None = None,
) -> str:
    """Why images do not arrive although publishers exist, as a sentence for the log.

    Args:
        requested: The image subscription's reliability.
        offered: Reliability of each publisher on the topic.
        fraction: Share of the camera's frames received (:func:`received_fraction`), None when
            no image arrived.
    """
    offered_names = '/'.join(sorted({policy.name.lower() for policy in offered}))
    best_effort_offered = QoSReliabilityPolicy.BEST_EFFORT in offered
    if requested == QoSReliabilityPolicy.RELIABLE and best_effort_offered:
        return (
            f'the publisher offers {offered_names} but this node requests reliable: set '
            "input.qos to 'sensor_data' or 'auto' (a reliable reader does not match a "
            'best-effort writer)'
        )
    lost = (
        'no image arrived' if fraction is None else f'{100 * fraction:.0f} % of the frames arrive'
    )
    if requested == QoSReliabilityPolicy.BEST_EFFORT and not best_effort_offered:
        return (
            f'{lost}: the publisher is reliable but this node subscribes best effort, and the '
            'DDS drops large best-effort samples (docs/dds-large-images.md); set input.qos to '
            "'auto' or 'reliable'"
        )
    if requested == QoSReliabilityPolicy.BEST_EFFORT:
        return (
            f'{lost} over best effort ({offered_names} publisher): large images are dropped '
            'by the DDS transport; use a reliable publisher with input.qos auto, or the Fast '
            'DDS profile config/fastdds_large_images.xml in both processes '
            '(docs/dds-large-images.md)'
        )
    return (
        f'{lost} over a reliable subscription ({offered_names} publisher): the publisher may '
        'be slower than expected or stalled (check ros2 topic hz), or the network saturated'
    )


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
