"""The core library imports with no ROS on the path (issue 2, items 2 and 6).

The check runs in a fresh interpreter whose import system refuses rclpy, every *_msgs package and
the generated hmr_ros.msg, then imports every module of hmr_ros outside hmr_ros.ros.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import importlib, importlib.abc, pkgutil, sys

BLOCKED_TOP = (
    'rclpy', 'rcl_interfaces', 'launch', 'launch_ros', 'ament_index_python', 'rosidl_runtime_py',
)

class RefuseROS(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        ros_interfaces = top.endswith(('_msgs', '_srvs')) or name == 'hmr_ros.msg'
        if top in BLOCKED_TOP or ros_interfaces:
            raise ImportError(f'ROS module {name} imported by the ROS-free core')
        return None

sys.meta_path.insert(0, RefuseROS())
import hmr_ros
imported = []
for info in pkgutil.walk_packages(hmr_ros.__path__[:1], 'hmr_ros.'):
    if info.name.split('.')[1] in ('ros', 'msg'):
        continue
    importlib.import_module(info.name)
    imported.append(info.name)
print(len(imported))
"""


def test_every_core_module_imports_without_ros() -> None:
    result = subprocess.run(
        [sys.executable, '-c', CHILD],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={'PATH': '/usr/bin:/bin', 'PYTHONPATH': str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    count = int(result.stdout.strip().splitlines()[-1])
    assert count >= 10, f'only {count} modules imported: is the package layout intact?'


def test_the_guard_catches_a_ros_import() -> None:
    """The child's import guard is effective: importing rclpy through it fails."""
    probe = CHILD.split('import hmr_ros')[0] + 'import rclpy\n'
    result = subprocess.run(
        [sys.executable, '-c', probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert 'ROS module rclpy imported' in result.stderr
