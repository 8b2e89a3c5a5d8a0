"""launch_testing: live.launch.py brings up hmr_node and hmr_viz_node; /hmr/model_info arrives.

Runs where ROS 2 is installed (``launch_test test/launch/test_live_launch.py`` or pytest with the
launch_testing plugin). The PyPI ROS wheels have no ``launch``/``launch_ros``/``launch_testing``,
so there the whole module is skipped with that reason. The nodes run on generated stand-in files
(``hmr-ros make-test-assets``: tiny variants, synthetic body models) on the CPU.
"""

from __future__ import annotations

import os
import tempfile
import time
import unittest
from pathlib import Path

import pytest

_REASON = (
    'launch_testing and launch_ros are not installed (they are not on PyPI); run this test in '
    'a ROS 2 installation'
)
pytest.importorskip('launch_testing', reason=_REASON)
pytest.importorskip('launch_ros', reason=_REASON)

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description import LaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[2] / 'launch' / 'live.launch.py'
NAMESPACE = 'hmr'
MODEL_INFO_TIMEOUT_S = 120.0  # configure loads tiny models on the CPU; CI machines are slow
_ASSETS = tempfile.TemporaryDirectory(prefix='hmr_live_launch_')
# Separate this test's DDS traffic from other runs on the machine (as test/ros/conftest.py does).
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 101))


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    from hmr_ros.cli.assets import make_test_assets

    assets = Path(_ASSETS.name)
    make_test_assets(assets, variants=('smplerx_tiny', 'hamer_tiny'))
    arguments = {
        'namespace': NAMESPACE,
        'camera': '/launch_test_camera',
        'use_viz': 'true',
        'rviz': 'false',
        'whole_body_variant': 'smplerx_tiny',
        'whole_body_checkpoint': str(assets / 'smplerx_tiny.safetensors'),
        'hand_variant': 'hamer_tiny',
        'hand_checkpoint': str(assets / 'hamer_tiny.safetensors'),
        'body_model_dir': str(assets),
        'device': 'cpu',
        'precision': 'fp32',
    }
    return LaunchDescription(
        [
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
                launch_arguments=arguments.items(),
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestLiveLaunch(unittest.TestCase):
    """While the launch runs."""

    def test_model_info_arrives_and_the_viz_node_runs(self) -> None:
        import rclpy
        from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

        from hmr_ros.msg import ModelInfo

        rclpy.init()
        node = rclpy.create_node('live_launch_probe')
        try:
            received: list[ModelInfo] = []
            latched = QoSProfile(
                depth=1,
                reliability=QoSReliabilityPolicy.RELIABLE,
                durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
            )
            node.create_subscription(
                ModelInfo, f'/{NAMESPACE}/model_info', received.append, latched
            )
            deadline = time.monotonic() + MODEL_INFO_TIMEOUT_S
            while not received and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.2)
            self.assertTrue(received, f'no /{NAMESPACE}/model_info in {MODEL_INFO_TIMEOUT_S} s')
            self.assertEqual(received[0].model_type, 'smplx')
            self.assertTrue(received[0].joint_names)
            nodes = set(node.get_node_names_and_namespaces())
            self.assertIn(('hmr_viz_node', f'/{NAMESPACE}'), nodes)
            self.assertIn(('hmr_node', f'/{NAMESPACE}'), nodes)
        finally:
            node.destroy_node()
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestLiveLaunchShutdown(unittest.TestCase):
    """After the launch stopped: every process ended cleanly on SIGINT."""

    def test_exit_codes(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
