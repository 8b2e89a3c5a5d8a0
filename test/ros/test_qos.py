"""The named QoS profiles hold the choices of docs/ros-interface.md"""

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


# ---------------------------------------------------------------- input.qos auto (issue 10)


def test_auto_follows_the_publishers_reliability() -> None:
    """Reliable publishers only: reliable keep-last-1; any best-effort one, or none: best effort
    (a reliable reader does not match a best-effort writer, REP 2003 / DDS RxO rules)."""
    reliable, best_effort = Reliability.RELIABLE, Reliability.BEST_EFFORT
    assert qos.auto_image_reliability([reliable, reliable]) == reliable
    assert qos.auto_image_reliability([reliable, best_effort]) == best_effort
    assert qos.auto_image_reliability([]) == best_effort
    profile = qos.image_qos('auto', [reliable])
    assert (profile.reliability, profile.depth, profile.history) == (
        reliable,
        1,
        History.KEEP_LAST,
    )
    assert qos.image_qos('auto').reliability == best_effort
    assert qos.camera_info_qos('auto').reliability == best_effort
    # Explicit choices ignore the publishers.
    assert qos.image_qos('sensor_data', [reliable]).reliability == best_effort
    assert qos.image_qos('reliable', [best_effort]).reliability == reliable


def test_auto_leaves_the_image_reliability_undeclared_as_an_override() -> None:
    from rclpy.qos import QoSPolicyKind

    assert QoSPolicyKind.RELIABILITY not in qos.image_overriding_options('auto').policy_kinds
    assert QoSPolicyKind.RELIABILITY in qos.image_overriding_options('reliable').policy_kinds


def test_received_fraction_from_stamps_with_drops_and_jitter() -> None:
    """A 30 Hz camera of which a random third of the frames arrive (2 ms of stamp jitter): the
    rate is 30 Hz and the fraction the share received; all frames: fraction 1."""
    import numpy as np

    rng = np.random.default_rng(0)
    period_ns = 1e9 / 30
    all_stamps = (np.arange(300) * period_ns + rng.uniform(-2e6, 2e6, 300)).astype(np.int64)
    kept = all_stamps[rng.random(300) < 1 / 3]
    span_frames = (kept[-1] - kept[0]) / period_ns
    assert qos.source_rate_hz(kept.tolist()) == pytest.approx(30.0, rel=0.05)
    assert qos.received_fraction(kept.tolist()) == pytest.approx(
        (len(kept) - 1) / span_frames, rel=0.05
    )
    assert qos.received_fraction(all_stamps.tolist()) == pytest.approx(1.0, abs=0.03)
    assert qos.received_fraction([1, 2]) is None


def test_missing_images_hints_name_the_cause() -> None:
    reliable, best_effort = Reliability.RELIABLE, Reliability.BEST_EFFORT
    mismatch = qos.missing_images_hint(reliable, [best_effort])
    assert (
        "offers best_effort but this node requests reliable: set input.qos to 'sensor_data'"
        in mismatch
    )
    large = qos.missing_images_hint(best_effort, [reliable], 0.33)
    assert '33 % of the frames arrive' in large and "input.qos to 'auto' or 'reliable'" in large
    assert 'docs/dds-large-images.md' in large
    lossy = qos.missing_images_hint(best_effort, [best_effort], None)
    assert 'fastdds_large_images.xml' in lossy and 'no image arrived' in lossy
    assert 'ros2 topic hz' in qos.missing_images_hint(reliable, [reliable], 0.5)
