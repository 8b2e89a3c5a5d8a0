"""Camera images from another process reach hmr_node with its default parameters (issue 10).

Over best effort, the DDS of the Jazzy wheels loses most samples of 640x480 rgb8 (900 KiB) that
do not fit its 512 KiB shared-memory segments and UDP socket buffers (6-35 % arrived in
benchmarks/image_delivery.py, docs/dds-large-images.md); ``input.qos: auto`` subscribes
reliable to a reliable publisher (realsense-ros's default), so the frames arrive. A best-effort
publisher must still be received (a reliable reader would not match it at all).

The node runs as in production: alone in its executor (``hmr_node``'s main), with the scripted
pipeline in place of the networks; a peer in another executor reads its ``/diagnostics``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import require_ros_for_module

require_ros_for_module()

import rclpy  # noqa: E402
from _scripted_pipeline import ScriptedPipeline  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy  # noqa: E402

from hmr_ros.ros import qos  # noqa: E402
from hmr_ros.ros.node import HmrNode  # noqa: E402

PUBLISHER = Path(__file__).with_name('_camera_publisher.py')
NAMESPACE = '/hmr_delivery_test'
POLICIES = {
    'reliable': QoSReliabilityPolicy.RELIABLE,
    'best_effort': QoSReliabilityPolicy.BEST_EFFORT,
}


class Spinning:
    """One node spun by its own executor in a thread."""

    def __init__(self, node, context) -> None:  # noqa: ANN001
        self.node = node
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.running:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


@pytest.fixture
def default_node(rclpy_context):
    """hmr_node with default parameters, active, and a peer that keeps its diagnostics."""
    node = HmrNode(
        pipeline_factory=lambda options: ScriptedPipeline(),
        context=rclpy_context,
        namespace=NAMESPACE,
    )
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    peer = rclpy.create_node('delivery_peer', context=rclpy_context, namespace=NAMESPACE)
    counts: list[int] = []

    def record(array: DiagnosticArray) -> None:
        for status in array.status:
            for pair in status.values:
                if pair.key == 'images received':
                    counts.append(int(pair.value))

    reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
    peer.create_subscription(DiagnosticArray, '/diagnostics', record, reliable)
    spinning = [Spinning(node, rclpy_context), Spinning(peer, rclpy_context)]
    yield node, counts
    for part in spinning:
        part.close()


ATTEMPTS = 2
"""Runs of the camera before the test fails. On an oversubscribed CI machine (load 16 on 2
cores) a process can be descheduled longer than a frame period, and a keep-last-1 reader then
loses a frame or two to its successor; a second full run must reach the threshold then. Over
best effort (the previous default) 6-35 % arrive, far below it in every run."""


def run_camera(domain: int, reliability: str, width: int, height: int, seconds: float) -> int:
    """One camera run in its own process; the number of images it published."""
    camera = subprocess.Popen(
        [
            sys.executable,
            str(PUBLISHER),
            str(domain),
            NAMESPACE,
            reliability,
            str(width),
            str(height),
            '30',
            str(seconds),
            reliability,  # start once the node subscribes with the camera's reliability
        ],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        stdout=subprocess.PIPE,
        text=True,
    )
    output, _ = camera.communicate(timeout=seconds + 60)
    report = json.loads(output.strip().splitlines()[-1])
    assert camera.returncode == 0, report
    return int(report['published'])


def settled_count(counts: list[int], at_least: int) -> int:
    """The diagnostics' cumulative 'images received' once it reaches at_least (or 5 s pass)."""
    deadline = time.monotonic() + 5.0  # diagnostics come at 1 Hz
    while time.monotonic() < deadline and (not counts or counts[-1] < at_least):
        time.sleep(0.1)
    assert counts, 'no diagnostics with an images received count'
    return counts[-1]


@pytest.mark.parametrize(
    ('reliability', 'width', 'height', 'seconds', 'minimum'),
    [('reliable', 640, 480, 8.0, 0.95), ('best_effort', 320, 240, 3.0, 0.5)],
    ids=['reliable-640x480', 'best_effort-320x240'],
)
def test_default_node_receives_a_camera_in_another_process(
    default_node, ros_domain_id, reliability, width, height, seconds, minimum
) -> None:
    node, counts = default_node
    assert node.params.input.qos == qos.AUTO
    runs = []
    for _ in range(ATTEMPTS):
        before = counts[-1] if counts else 0
        published = run_camera(ros_domain_id, reliability, width, height, seconds)
        assert node._image_reliability == POLICIES[reliability]
        received = settled_count(counts, before + published) - before
        assert received <= published
        runs.append(f'{received} of {published}')
        if received >= minimum * published:
            return
    pytest.fail(f'fewer than {100 * minimum:g} % of the images arrived: {", ".join(runs)}')
