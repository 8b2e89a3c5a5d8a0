"""Fixtures for tests that need rclpy and the built hmr_ros messages.

Without them these tests skip, unless HMR_ROS_REQUIRE_ROS=1 (set by tools/run_tests.sh after the
bootstrap has built the package): then a missing build fails loudly instead of hiding behind skips.
"""

from __future__ import annotations

import importlib
import os

import pytest


def require_ros_modules() -> None:
    """Skips (or fails, when ROS is required) unless rclpy and hmr_ros.msg import."""
    for name in ('rclpy', 'hmr_ros.msg'):
        try:
            importlib.import_module(name)
        except ImportError as error:
            reason = (
                f'{name} is not importable ({error}); '
                'run tools/bootstrap.sh and source tools/env.sh'
            )
            if os.environ.get('HMR_ROS_REQUIRE_ROS') == '1':
                pytest.fail(reason)
            pytest.skip(reason)


@pytest.fixture(scope='session')
def ros_domain_id() -> int:
    """A DDS domain for this test run, so parallel runs on one machine do not cross-talk."""
    domain = os.getpid() % 100 + 101  # 101..200: above the usual 0..100 range of real robots
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    return domain


@pytest.fixture
def rclpy_context(ros_domain_id: int):
    """An initialised rclpy context, shut down after the test."""
    require_ros_modules()
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    yield context
    rclpy.shutdown(context=context)


def require_ros_for_module() -> None:
    """Module-level form of require_ros_modules: skips (or fails) the whole test module."""
    try:
        require_ros_modules()
    except pytest.skip.Exception as skip:
        pytest.skip(skip.msg, allow_module_level=True)
