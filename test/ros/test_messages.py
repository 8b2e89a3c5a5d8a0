"""The package's messages cross a process boundary over DDS unchanged (issue 2, item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import require_ros_modules

HERE = Path(__file__).resolve().parent


def make_person_array():
    """A PersonArray whose every field group holds distinctive, known values."""
    from hmr_ros.msg import HandPose, Person, PersonArray

    message = PersonArray()
    message.header.stamp.sec = 1_700_000_123
    message.header.stamp.nanosec = 456_789_000
    message.header.frame_id = 'camera_color_optical_frame'
    message.frame_index = 42
    message.processing_time.nanosec = 12_500_000
    person = Person()
    person.id = '7'
    person.tracking_state = Person.TRACKED
    person.track_age = 19
    person.confidence = 0.875
    person.bbox.x_min, person.bbox.y_min, person.bbox.x_max, person.bbox.y_max = (
        10.0,
        20.0,
        330.0,
        470.0,
    )
    person.root_pose.position.z = 2.25
    person.root_pose.orientation.w = 1.0
    person.global_orient = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    person.body_pose = np.linspace(-1, 1, 63, dtype=np.float32)
    person.left_hand_pose = np.linspace(0, 0.5, 45, dtype=np.float32)
    person.right_hand_pose = np.linspace(0.5, 0, 45, dtype=np.float32)
    person.betas = np.arange(10, dtype=np.float32) / 10
    person.expression = -np.arange(10, dtype=np.float32) / 10
    person.transl = np.array([0.1, 0.2, 2.5], dtype=np.float32)
    person.joints = np.arange(65 * 3, dtype=np.float32) / 100
    person.vertices = np.full(30, 0.5, dtype=np.float32)
    hand = HandPose()
    hand.person_id = '7'
    hand.side = HandPose.RIGHT
    hand.valid = True
    hand.confidence = 0.75
    hand.wrist_pose.position.x = 0.3
    hand.wrist_pose.orientation.w = 1.0
    hand.keypoints = np.arange(63, dtype=np.float32) / 63
    hand.keypoints_wrist = -np.arange(63, dtype=np.float32) / 63
    hand.finger_pose = np.linspace(-0.3, 0.3, 45, dtype=np.float32)
    person.right_hand = hand
    message.persons.append(person)
    return message


def test_person_array_round_trips_between_processes(ros_domain_id: int) -> None:
    """A second process publishes make_person_array(); this one receives an equal message."""
    require_ros_modules()
    import rclpy
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    from hmr_ros.msg import PersonArray

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    publisher = subprocess.Popen(
        [sys.executable, str(HERE / '_person_array_publisher.py'), str(ros_domain_id), '20'],
        env=env,
    )
    received: list[PersonArray] = []
    rclpy.init(domain_id=ros_domain_id)
    try:
        node = rclpy.create_node('person_array_listener')
        qos = QoSProfile(
            depth=1,
            reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
        )
        node.create_subscription(PersonArray, 'persons', received.append, qos)
        deadline_s = time.monotonic() + 20.0
        while not received and time.monotonic() < deadline_s:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        publisher.terminate()
        publisher.wait(timeout=10)
    assert received, 'no PersonArray arrived from the publisher process within 20 s'
    # Generated messages compare field by field, header stamp included.
    assert received[0] == make_person_array()
    assert received[0].header.stamp.nanosec == 456_789_000
