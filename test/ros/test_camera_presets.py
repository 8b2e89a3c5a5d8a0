"""Camera presets (hmr_ros/ros/camera_presets.py) against the drivers' published defaults.

Expected values are the drivers' documented defaults, not this package's choices:
- realsense-ros 4.5x: camera_namespace and camera_name both 'camera', so the colour stream is
  /camera/camera/color/image_raw with camera_info beside it, frame camera_color_optical_frame;
- zed-ros2-wrapper 5.x: node /zed/zed_node, colour topic ~/rgb/color/rect/image, camera_info in
  zed_left_camera_frame_optical, rectified by the SDK;
- Azure_Kinect_ROS_Driver: /rgb/image_raw, /rgb/camera_info, frame rgb_camera_link, TF root
  camera_base; its usage doc says the published images are not rectified;
- usb_cam: image_raw and camera_info at the root, frame_id 'camera' in its params_1.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hmr_ros.ros.camera_presets import (
    CAMERA_PRESETS,
    CAMERA_TYPES,
    camera_wiring,
    rviz_config_with_fixed_frame,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ('camera_type', 'image', 'info', 'rectified'),
    [
        ('realsense', '/camera/camera/color/image_raw', '/camera/camera/color/camera_info', False),
        (
            'zed',
            '/zed/zed_node/rgb/color/rect/image',
            '/zed/zed_node/rgb/color/rect/camera_info',
            True,
        ),
        ('azure', '/rgb/image_raw', '/rgb/camera_info', False),
        ('usb_cam', '/image_raw', '/camera_info', False),
    ],
)
def test_presets_wire_the_drivers_default_topics(camera_type, image, info, rectified) -> None:
    wiring = camera_wiring(camera_type)
    assert (wiring.image_topic, wiring.camera_info_topic) == (image, info)
    assert wiring.rectified is rectified
    assert wiring.fixed_frame == CAMERA_PRESETS[camera_type].fixed_frame


def test_preset_frames_are_the_drivers() -> None:
    assert CAMERA_PRESETS['realsense'].optical_frame == 'camera_color_optical_frame'
    assert CAMERA_PRESETS['zed'].optical_frame == 'zed_left_camera_frame_optical'
    assert CAMERA_PRESETS['azure'].optical_frame == 'rgb_camera_link'
    assert CAMERA_PRESETS['azure'].fixed_frame == 'camera_base'
    assert CAMERA_PRESETS['usb_cam'].optical_frame == 'camera'
    assert CAMERA_TYPES[-1] == 'custom'


def test_explicit_arguments_win_over_the_preset() -> None:
    wiring = camera_wiring('realsense', camera='/front/')
    assert (wiring.image_topic, wiring.camera_info_topic) == (
        '/front/image_raw',
        '/front/camera_info',
    )
    wiring = camera_wiring(
        'zed', image='/a/img', camera_info='/a/info', fixed_frame='map', rectified=False
    )
    assert (wiring.image_topic, wiring.camera_info_topic, wiring.fixed_frame) == (
        '/a/img',
        '/a/info',
        'map',
    )
    assert wiring.rectified is False


def test_custom_needs_a_topic_and_leaves_rectified_to_the_parameters() -> None:
    with pytest.raises(ValueError, match='camera_type:=custom needs'):
        camera_wiring('custom')
    wiring = camera_wiring('custom', camera='/my_cam')
    assert (wiring.image_topic, wiring.camera_info_topic) == (
        '/my_cam/image_raw',
        '/my_cam/camera_info',
    )
    assert wiring.fixed_frame == 'my_cam_link'
    assert wiring.rectified is None
    wiring = camera_wiring('custom', image='/robot/eye/image_color')
    assert wiring.camera_info_topic == '/robot/eye/camera_info'
    with pytest.raises(ValueError, match='realsense, zed, azure, usb_cam, custom'):
        camera_wiring('kinect')


def test_rviz_copy_sets_only_the_fixed_frame(tmp_path: Path) -> None:
    rviz = REPO / 'resource' / 'rviz' / 'hmr.rviz'
    original = yaml.safe_load(rviz.read_text())
    copy = Path(rviz_config_with_fixed_frame(str(rviz), 'camera_base', str(tmp_path)))
    changed = yaml.safe_load(copy.read_text())
    assert changed['Visualization Manager']['Global Options']['Fixed Frame'] == 'camera_base'
    changed['Visualization Manager']['Global Options']['Fixed Frame'] = original[
        'Visualization Manager'
    ]['Global Options']['Fixed Frame']
    assert changed == original
