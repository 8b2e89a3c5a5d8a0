"""The colcon install has what `ros2 run` and `ros2 launch` need (issue 2, item 1).

Runs against the install that tools/bootstrap.sh built (found through the ament index, as ROS
tools find it); skipped where no install is sourced, failed under tools/run_tests.sh.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def install_prefix() -> Path:
    try:
        from ament_index_python.packages import get_package_prefix

        return Path(get_package_prefix('hmr_ros'))
    except Exception as error:  # ImportError or PackageNotFoundError
        reason = f'no sourced colcon install of hmr_ros ({error})'
        if os.environ.get('HMR_ROS_REQUIRE_ROS') == '1':
            pytest.fail(reason)
        pytest.skip(reason)


def test_launch_config_rviz_and_data_are_in_share() -> None:
    share = install_prefix() / 'share' / 'hmr_ros'
    for relative in (
        'package.xml',
        'launch/live.launch.py',
        'config/hmr_ros.yaml',
        'config/visualization.yaml',
        'rviz/hmr.rviz',
        'data/astronaut.jpg',
        'msg/PersonArray.msg',
    ):
        assert (share / relative).is_file(), f'share/hmr_ros/{relative} is not installed'


def test_every_script_is_an_installed_executable() -> None:
    lib = install_prefix() / 'lib' / 'hmr_ros'
    scripts = sorted(p.name for p in (Path(__file__).parents[2] / 'scripts').iterdir())
    assert {'hmr_node', 'hmr_viz_node'} <= set(scripts)
    for name in scripts:
        assert os.access(lib / name, os.X_OK), f'lib/hmr_ros/{name} is missing or not executable'


def test_the_image_source_finds_the_photo_in_an_install_prefix(tmp_path, monkeypatch) -> None:
    """A module under <prefix>/lib/.../hmr_ros/ros finds <prefix>/share/hmr_ros/data."""
    from hmr_ros.ros import image_source

    module = tmp_path / 'lib' / 'python3' / 'site-packages' / 'hmr_ros' / 'ros' / 'x.py'
    module.parent.mkdir(parents=True)
    module.touch()
    monkeypatch.setattr(image_source, '__file__', str(module))
    with pytest.raises(image_source.ImageSourceError, match='share/hmr_ros'):
        image_source.bundled_image_path()
    photo = tmp_path / 'share' / 'hmr_ros' / 'data' / 'astronaut.jpg'
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b'jpeg')
    assert image_source.bundled_image_path() == photo
