"""Camera presets: the topics, frames and image facts of the camera drivers users run.

``launch/live.launch.py camera_type:=<name>`` wires hmr_node and RViz to a driver's default
output with one argument. Facts of the drivers' current releases (their default launch files,
default camera name and node name):

- ``realsense``: realsense-ros 4.5x (``ros2 launch realsense2_camera rs_launch.py``) publishes
  ``/camera/camera/color/image_raw`` and ``.../camera_info`` (camera namespace and camera name
  both default to ``camera``), images in ``camera_color_optical_frame``, TF from
  ``camera_link``; colour images are not rectified by the driver.
- ``zed``: zed-ros2-wrapper 5.x (``ros2 launch zed_wrapper zed_camera.launch.py
  camera_model:=<model>``) publishes ``~/rgb/color/rect/image`` and ``~/rgb/color/rect/
  camera_info`` under ``/zed/zed_node`` (camera_name ``zed``), rectified, in
  ``zed_left_camera_frame_optical``, TF from ``zed_camera_link``.
- ``azure``: Azure_Kinect_ROS_Driver (``ros2 launch azure_kinect_ros_driver driver.launch.py``)
  publishes ``/rgb/image_raw`` and ``/rgb/camera_info`` in ``rgb_camera_link`` (an optical
  frame without the ``_optical`` suffix), TF from ``camera_base``; its images are raw (the
  driver documents that they are not rectified) and BGRA.
- ``usb_cam``: ros-drivers/usb_cam (``ros2 run usb_cam usb_cam_node_exe``) publishes
  ``/image_raw`` and ``/camera_info`` in ``camera`` (its shipped ``params_1.yaml``), raw.

Each preset also says whether the images are rectified, which sets ``input.rectified`` (with
unrectified images the node applies camera_info's distortion D). ``custom`` takes the topics
from the ``camera`` / ``image`` / ``camera_info`` arguments. This module has no ROS imports so
the launch file, the docs and the tests share one table.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class CameraPreset:
    """One driver's default output.

    Attributes:
        name: the ``camera_type`` launch argument value.
        driver: the ROS 2 package that publishes it.
        driver_command: how its documentation starts it with default settings.
        image_topic: colour image topic (absolute).
        camera_info_topic: its CameraInfo topic (absolute).
        optical_frame: the images' header.frame_id (REP 103 optical axes).
        fixed_frame: the driver's TF root, RViz's fixed frame.
        rectified: whether the images are already undistorted (input.rectified).
    """

    name: str
    driver: str
    driver_command: str
    image_topic: str
    camera_info_topic: str
    optical_frame: str
    fixed_frame: str
    rectified: bool


CAMERA_PRESETS: dict[str, CameraPreset] = {
    preset.name: preset
    for preset in (
        CameraPreset(
            name='realsense',
            driver='realsense2_camera',
            driver_command='ros2 launch realsense2_camera rs_launch.py',
            image_topic='/camera/camera/color/image_raw',
            camera_info_topic='/camera/camera/color/camera_info',
            optical_frame='camera_color_optical_frame',
            fixed_frame='camera_link',
            rectified=False,
        ),
        CameraPreset(
            name='zed',
            driver='zed_wrapper',
            driver_command='ros2 launch zed_wrapper zed_camera.launch.py camera_model:=zed2i',
            image_topic='/zed/zed_node/rgb/color/rect/image',
            camera_info_topic='/zed/zed_node/rgb/color/rect/camera_info',
            optical_frame='zed_left_camera_frame_optical',
            fixed_frame='zed_camera_link',
            rectified=True,
        ),
        CameraPreset(
            name='azure',
            driver='azure_kinect_ros_driver',
            driver_command='ros2 launch azure_kinect_ros_driver driver.launch.py',
            image_topic='/rgb/image_raw',
            camera_info_topic='/rgb/camera_info',
            optical_frame='rgb_camera_link',
            fixed_frame='camera_base',
            rectified=False,
        ),
        CameraPreset(
            name='usb_cam',
            driver='usb_cam',
            driver_command='ros2 run usb_cam usb_cam_node_exe',
            image_topic='/image_raw',
            camera_info_topic='/camera_info',
            optical_frame='camera',
            fixed_frame='camera',
            rectified=False,
        ),
    )
}
CUSTOM = 'custom'
CAMERA_TYPES = (*CAMERA_PRESETS, CUSTOM)


@dataclass(frozen=True)
class CameraWiring:
    """What the launch file connects: the two topics, RViz's fixed frame, input.rectified.

    ``rectified`` is None when nothing says (custom camera without the argument): the node's
    parameter file then decides.
    """

    image_topic: str
    camera_info_topic: str
    fixed_frame: str
    rectified: bool | None


def camera_wiring(
    camera_type: str,
    camera: str = '',
    image: str = '',
    camera_info: str = '',
    fixed_frame: str = '',
    rectified: bool | None = None,
) -> CameraWiring:
    """Resolve the launch arguments into topics and frames.

    Explicit arguments win over the preset: ``image`` / ``camera_info`` name the topics,
    ``camera`` is a namespace holding ``image_raw`` and ``camera_info`` (the image_transport
    sibling convention), ``fixed_frame`` and ``rectified`` replace the preset's.

    Args:
        camera_type: a CAMERA_TYPES name.
        camera: camera namespace, '' for the preset's topics.
        image: image topic, '' for the camera namespace's or the preset's.
        camera_info: CameraInfo topic, '' likewise.
        fixed_frame: RViz fixed frame, '' for the preset's (for custom: the camera namespace's
            last component plus '_link', or 'camera_link').
        rectified: None for the preset's.

    Raises:
        ValueError: unknown camera_type, or custom without any topic.
    """
    if camera_type not in CAMERA_TYPES:
        raise ValueError(
            f'camera_type:={camera_type!r} is not known; choose one of {", ".join(CAMERA_TYPES)}'
        )
    namespace = camera.strip().rstrip('/')
    if camera_type == CUSTOM:
        if not (namespace or image):
            raise ValueError(
                'camera_type:=custom needs camera:=<namespace> (for <namespace>/image_raw and '
                '<namespace>/camera_info) or image:=<topic> and camera_info:=<topic>'
            )
        base = namespace or image.rsplit('/', 1)[0]
        default_frame = f'{base.strip("/").split("/")[-1]}_link' if base.strip('/') else ''
        preset_image = f'{namespace}/image_raw' if namespace else image
        preset_info = f'{namespace}/camera_info' if namespace else f'{base}/camera_info'
        preset_frame = default_frame or 'camera_link'
        preset_rectified = None
    else:
        preset = CAMERA_PRESETS[camera_type]
        preset_image = f'{namespace}/image_raw' if namespace else preset.image_topic
        preset_info = f'{namespace}/camera_info' if namespace else preset.camera_info_topic
        preset_frame = preset.fixed_frame
        preset_rectified = preset.rectified
    return CameraWiring(
        image_topic=image or preset_image,
        camera_info_topic=camera_info or preset_info,
        fixed_frame=fixed_frame or preset_frame,
        rectified=preset_rectified if rectified is None else rectified,
    )


def rviz_config_with_fixed_frame(path: str, fixed_frame: str, folder: str | None = None) -> str:
    """A copy of an RViz configuration whose fixed frame is ``fixed_frame``.

    Every rviz2 release reads the fixed frame from the configuration file, so the launch file
    writes it there rather than relying on a command-line option.

    Args:
        path: the ``.rviz`` file (YAML).
        fixed_frame: the frame to set.
        folder: where the copy goes; a new temporary folder when None.

    Returns:
        The copy's path.
    """
    config = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
    config['Visualization Manager']['Global Options']['Fixed Frame'] = fixed_frame
    target = Path(folder or tempfile.mkdtemp(prefix='hmr_ros_rviz_'))
    copy = target / Path(path).name
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding='utf-8')
    return str(copy)
