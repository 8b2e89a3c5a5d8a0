"""Child process for test_camera_delivery.py: a camera driver stand-in in its own process.

Publishes ``<namespace>/image`` (rgb8) and ``<namespace>/camera_info`` with the given
reliability, as realsense-ros (reliable) or a best-effort driver would. It starts once the
node's image subscription with the expected reliability exists (so DDS discovery and the
node's QoS choice are not counted as loss), then sends ``rate * seconds`` frames and prints
how many as JSON.

Arguments: domain_id namespace reliability width height rate_hz seconds expect_reliability
"""

import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

POLICIES = {
    'reliable': QoSReliabilityPolicy.RELIABLE,
    'best_effort': QoSReliabilityPolicy.BEST_EFFORT,
}


def main() -> int:
    domain_id, namespace, reliability = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    width, height, rate_hz, seconds = (
        int(sys.argv[4]),
        int(sys.argv[5]),
        float(sys.argv[6]),
        float(sys.argv[7]),
    )
    expected = POLICIES[sys.argv[8]]
    rclpy.init(domain_id=domain_id)
    node = rclpy.create_node('camera_stand_in', namespace=namespace)
    # rclcpp's defaults for drivers: QoS(10) is reliable keep-last-10, SensorDataQoS best effort
    # keep-last-5.
    qos = QoSProfile(
        depth=10 if reliability == 'reliable' else 5, reliability=POLICIES[reliability]
    )
    images = node.create_publisher(Image, 'image', qos)
    infos = node.create_publisher(CameraInfo, 'camera_info', qos)
    topic = images.topic_name
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        readers = node.get_subscriptions_info_by_topic(topic)
        if any(r.qos_profile.reliability == expected for r in readers):
            break
        rclpy.spin_once(node, timeout_sec=0.05)
    else:
        print(json.dumps({'error': f'no {sys.argv[8]} subscription on {topic}'}), flush=True)
        return 1
    time.sleep(0.5)  # the writer's side of the match
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    info.k = [500.0, 0.0, width / 2, 0.0, 500.0, height / 2, 0.0, 0.0, 1.0]
    info.p = [500.0, 0.0, width / 2, 0.0, 0.0, 500.0, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    message = Image(height=height, width=width, encoding='rgb8', step=3 * width)
    message.header.frame_id = 'camera_color_optical_frame'
    info.header.frame_id = message.header.frame_id
    message.data = (
        np.random.default_rng(0).integers(0, 255, 3 * width * height, np.uint8).tobytes()
    )
    count = round(rate_hz * seconds)
    start = time.monotonic()
    for index in range(count):
        stamp = node.get_clock().now().to_msg()
        message.header.stamp = info.header.stamp = stamp
        infos.publish(info)
        images.publish(message)
        delay = start + (index + 1) / rate_hz - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({'published': count, 'topic': topic}), flush=True)
    time.sleep(1.0)  # reliable samples still in flight
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
