"""The named QoS profiles hold the choices of ros-interface.md 5.7."""

from __future__ import annotations

import pytest
from conftest import require_ros_for_module

require_ros_for_module()

from rclpy.qos import QoSDurabilityPolicy as Durability  # noqa: E402
from rclpy.qos import QoSHistoryPolicy as History  # noqa: E402
from rclpy.qos import QoSReliabilityPolicy as Reliability  # noqa: E402

from hmr_ros.ros import qos  # noqa: E402


@pytest.mark.parametrize(
    ('profile', 'depth', 'reliability', 'durability'),
    [
        (qos.image_qos('sensor_data'), 1, Reliability.BEST_EFFORT, Durability.VOLATILE),
        (qos.image_qos('reliable'), 1, Reliability.RELIABLE, Durability.VOLATILE),
        (qos.camera_info_qos('sensor_data'), 5, Reliability.BEST_EFFORT, Durability.VOLATILE),
        (qos.array_output_qos(), 5, Reliability.RELIABLE, Durability.VOLATILE),
        (qos.control_output_qos(), 1, Reliability.RELIABLE, Durability.VOLATILE),
        (qos.latched_qos(), 1, Reliability.RELIABLE, Durability.TRANSIENT_LOCAL),
        (qos.tf_qos(), 100, Reliability.RELIABLE, Durability.VOLATILE),
        (qos.detections_qos(), 5, Reliability.RELIABLE, Durability.VOLATILE),
    ],
)
def test_profiles(profile, depth, reliability, durability) -> None:
    assert profile.history == History.KEEP_LAST
    assert (profile.depth, profile.reliability, profile.durability) == (
        depth,
        reliability,
        durability,
    )


def test_unknown_input_qos_names_the_choices() -> None:
    with pytest.raises(ValueError, match='sensor_data'):
        qos.image_qos('fast')
