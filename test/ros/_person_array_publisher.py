"""Child process for test_messages.py: publishes a PersonArray with known values over DDS."""

import sys
import time

import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from test_messages import make_person_array

from hmr_ros.msg import PersonArray


def main() -> int:
    domain_id = int(sys.argv[1])
    deadline_s = time.monotonic() + float(sys.argv[2])
    rclpy.init(domain_id=domain_id)
    node = rclpy.create_node('person_array_publisher')
    qos = QoSProfile(
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
    publisher = node.create_publisher(PersonArray, 'persons', qos)
    message = make_person_array()
    # Publish until the test, having received, ends this process, or until the deadline.
    while time.monotonic() < deadline_s:
        publisher.publish(message)
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
