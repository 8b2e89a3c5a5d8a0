"""``output.frame``: look up the camera's pose in a fixed frame through TF (tf2_ros).

When ``output.frame`` is set, hmr_node re-expresses each frame's results there
(hmr_ros.pipeline.frame_change) before publishing: PersonArray, HandPoseArray, the wrist poses,
the side channels and the TF parent all use that frame. The transform is looked up at the
image's stamp (so a moving camera on a robot is handled), waiting at most
``output.frame_timeout_s`` for TF to catch up; a frame whose transform is not available is not
published, counted and logged, and the node keeps running.

tf2_ros is part of every ROS 2 installation but not of the PyPI wheels; without it, configure
fails with a message naming the package (it is imported only when ``output.frame`` is set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Time

from hmr_ros.geometry.rotations import quaternion_xyzw_to_rotmat_np

TF2_ROS_MISSING = (
    'output.frame is {frame!r}, which needs tf2_ros to look up the camera in that frame; '
    'tf2_ros is not importable here (install ros-<distro>-tf2-ros, part of every ROS 2 '
    "install; the PyPI wheels lack it) or set output.frame to '' for the camera frame"
)


class TransformUnavailableError(LookupError):
    """TF has no transform between the two frames at that stamp (yet)."""


def transform_to_rotation_translation(transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) rotation and (3,) translation of a ``geometry_msgs/Transform``."""
    q = transform.rotation
    xyzw = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = float(np.linalg.norm(xyzw))
    if not np.isfinite(norm) or norm < 1e-9:
        raise TransformUnavailableError(f'TF returned an invalid quaternion {xyzw.tolist()}')
    rotation = quaternion_xyzw_to_rotmat_np(xyzw)
    t = transform.translation
    return rotation, np.array([t.x, t.y, t.z], dtype=np.float64)


class OutputFrame:
    """A TF listener on a node and the lookup of image frames into ``frame``.

    Args:
        node: the node whose executor serves the /tf and /tf_static subscriptions.
        frame: the target frame (``output.frame``).
        timeout_s: longest wait for a transform per image.

    Raises:
        ImportError: tf2_ros is not importable; the message is TF2_ROS_MISSING.
    """

    def __init__(self, node: Any, frame: str, timeout_s: float) -> None:
        try:
            import tf2_ros
        except ImportError as error:
            raise ImportError(TF2_ROS_MISSING.format(frame=frame)) from error
        from rclpy.duration import Duration

        self.frame = frame
        self._tf2_ros = tf2_ros
        self._timeout = Duration(nanoseconds=int(timeout_s * 1e9))
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)

    def lookup(self, source_frame: str, stamp: Time) -> tuple[np.ndarray, np.ndarray]:
        """Rotation and translation taking ``source_frame`` coordinates into ``frame``.

        Raises:
            TransformUnavailableError: no transform within the timeout (the message says why).
        """
        from rclpy.time import Time as RclpyTime

        errors = (
            self._tf2_ros.LookupException,
            self._tf2_ros.ConnectivityException,
            self._tf2_ros.ExtrapolationException,
        )
        try:
            stamped = self._buffer.lookup_transform(
                self.frame, source_frame, RclpyTime.from_msg(stamp), timeout=self._timeout
            )
        except errors as error:
            raise TransformUnavailableError(
                f'no transform from {source_frame} to {self.frame} at the image stamp: {error}'
            ) from error
        return transform_to_rotation_translation(stamped.transform)

    def close(self) -> None:
        """Stop listening."""
        unregister = getattr(self._listener, 'unregister', None)
        if unregister is not None:
            unregister()
