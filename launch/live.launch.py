"""Live human mesh recovery on a camera: hmr_node (lifecycle), hmr_viz_node and optionally RViz.

Usage:
  ros2 launch hmr_ros live.launch.py camera_type:=realsense rviz:=true \\
      whole_body_checkpoint:=/data/smplerx_h32.safetensors \\
      hand_checkpoint:=/data/hamer.safetensors body_model_dir:=/data/body_models

Topics: hmr_node subscribes ``image`` and ``camera_info``, remapped to the ``camera_type``
preset's topics (hmr_ros/ros/camera_presets.py: realsense, zed, azure, usb_cam), to
``<camera>/image_raw`` and ``<camera>/camera_info`` when ``camera`` is given, or to ``image`` /
``camera_info`` when those are; it publishes under ``namespace`` (``/hmr/persons``,
``/hmr/model_info``, ...); hmr_viz_node publishes ``/hmr/markers/skeleton``,
``/hmr/markers/mesh`` and ``/hmr/debug/image``. RViz opens ``rviz_config`` with its fixed frame
set to the preset's TF root (or ``fixed_frame``). The preset also sets ``input.rectified``.

``profile:=orin`` adds ``config/profile_orin.yaml`` after ``params_file`` (light models, fp16 on
the GPU; docs/seed-models.md, 'Embedded profile'); ``profile:=default`` adds nothing.

Tuning belongs in the YAML files (``params_file``, ``viz_params_file``); the model-file arguments
override the YAML only when given (non-empty), so one YAML serves several machines. hmr_node
configures and activates itself (``autostart``); it is started as a LifecycleNode so lifecycle
tools and events see its states. See the README (Launch files) for the RViz fixed frame.
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from hmr_ros.ros.camera_presets import (
    CAMERA_TYPES,
    camera_wiring,
    rviz_config_with_fixed_frame,
)

PACKAGE = 'hmr_ros'
MAIN_EXECUTABLE = 'hmr_node'
VIZ_EXECUTABLE = 'hmr_viz_node'
TRUE_WORDS = ('true', '1', 'yes', 'on')
FALSE_WORDS = ('false', '0', 'no', 'off')

# Launch argument -> hmr_node parameter; applied only when the argument is not empty.
MODEL_ARGUMENTS = {
    'whole_body_checkpoint': 'model.whole_body_checkpoint',
    'hand_checkpoint': 'model.hand_checkpoint',
    'hand_adapter_checkpoint': 'model.hand_adapter_checkpoint',
    'body_adapter_checkpoint': 'model.body_adapter_checkpoint',
    'body_model_dir': 'model.body_model_dir',
    'whole_body_variant': 'model.whole_body_variant',
    'hand_variant': 'model.hand_variant',
    'device': 'model.device',
    'precision': 'model.precision',
}
BOOLEAN_MODEL_ARGUMENTS = {'use_test_assets': 'model.use_test_assets'}
# The settings users change most, as launch arguments (applied only when not empty).
SETTING_ARGUMENTS = {
    'transport': 'input.transport',
    'detection_source': 'detection.source',
    'detection_plugin': 'detection.plugin',
    'tf_prefix': 'tf.prefix',
    'operator_mode': 'operator.mode',
    'backend': 'model.backend',
}
DEFAULT_CAMERA_TYPE = 'realsense'
# profile:=NAME -> parameter file loaded after params_file ('' adds none).
PROFILES = {'default': '', 'orin': 'profile_orin.yaml'}


def _share(*parts: str) -> str:
    return '/'.join([get_package_share_directory(PACKAGE), *parts])


def _flag(context: LaunchContext, name: str) -> bool:
    value = LaunchConfiguration(name).perform(context).strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"launch argument {name}:={value!r} must be 'true' or 'false'")


def _text(context: LaunchContext, name: str) -> str:
    return LaunchConfiguration(name).perform(context).strip()


def _nodes(context: LaunchContext) -> list:
    """Build the nodes once the arguments are known (overrides only when non-empty)."""
    rectified_text = _text(context, 'rectified')
    wiring = camera_wiring(
        _text(context, 'camera_type'),
        camera=_text(context, 'camera'),
        image=_text(context, 'image'),
        camera_info=_text(context, 'camera_info'),
        fixed_frame=_text(context, 'fixed_frame'),
        rectified=_flag(context, 'rectified') if rectified_text else None,
    )
    image, camera_info = wiring.image_topic, wiring.camera_info_topic
    namespace = _text(context, 'namespace')
    use_sim_time = _flag(context, 'use_sim_time')
    ros_arguments = ['--log-level', _text(context, 'log_level')]
    remappings = [
        ('image', image),
        ('image/compressed', f'{image}/compressed'),
        ('camera_info', camera_info),
    ]

    profile = _text(context, 'profile') or 'default'
    if profile not in PROFILES:
        raise ValueError(f'launch argument profile:={profile!r} must be one of {sorted(PROFILES)}')
    profile_files = [_share('config', PROFILES[profile])] if PROFILES[profile] else []

    overrides: dict = {'use_sim_time': use_sim_time, 'autostart': _flag(context, 'autostart')}
    for argument, parameter in MODEL_ARGUMENTS.items():
        value = _text(context, argument)
        if value:
            overrides[parameter] = value
    for argument, parameter in BOOLEAN_MODEL_ARGUMENTS.items():
        if _text(context, argument):
            overrides[parameter] = _flag(context, argument)
    for argument, parameter in SETTING_ARGUMENTS.items():
        value = _text(context, argument)
        if value:
            overrides[parameter] = value
    if wiring.rectified is not None:
        overrides['input.rectified'] = wiring.rectified

    actions = [
        LifecycleNode(
            package=PACKAGE,
            executable=MAIN_EXECUTABLE,
            name=MAIN_EXECUTABLE,
            namespace=namespace,
            parameters=[_text(context, 'params_file'), *profile_files, overrides],
            remappings=remappings,
            ros_arguments=ros_arguments,
            output='screen',
            emulate_tty=True,
        )
    ]
    if _flag(context, 'use_viz'):
        actions.append(
            Node(
                package=PACKAGE,
                executable=VIZ_EXECUTABLE,
                name=VIZ_EXECUTABLE,
                namespace=namespace,
                parameters=[_text(context, 'viz_params_file'), {'use_sim_time': use_sim_time}],
                remappings=remappings,
                ros_arguments=ros_arguments,
                output='screen',
                emulate_tty=True,
            )
        )
    if _flag(context, 'rviz'):
        actions.append(
            Node(
                package='rviz2',
                executable='rviz2',
                name='rviz2',
                arguments=[
                    '-d',
                    rviz_config_with_fixed_frame(
                        _text(context, 'rviz_config'), wiring.fixed_frame
                    ),
                ],
                parameters=[{'use_sim_time': use_sim_time}],
                output='screen',
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(
            'camera_type',
            default_value=DEFAULT_CAMERA_TYPE,
            choices=list(CAMERA_TYPES),
            description='Camera driver whose default topics, frames and rectification to use '
            '(custom: give camera or image and camera_info)',
        ),
        DeclareLaunchArgument(
            'camera',
            default_value='',
            description='Camera namespace overriding the preset: image is <camera>/image_raw, '
            'camera_info <camera>/camera_info',
        ),
        DeclareLaunchArgument(
            'image', default_value='', description="Image topic; empty: the camera's"
        ),
        DeclareLaunchArgument(
            'camera_info',
            default_value='',
            description="CameraInfo topic; empty: the camera's",
        ),
        DeclareLaunchArgument(
            'fixed_frame',
            default_value='',
            description="RViz fixed frame; empty: the camera preset's TF root",
        ),
        DeclareLaunchArgument(
            'rectified',
            default_value='',
            description="input.rectified (true/false); empty: the camera preset's",
        ),
        DeclareLaunchArgument(
            'namespace', default_value='hmr', description='Namespace of both nodes and outputs'
        ),
        DeclareLaunchArgument(
            'params_file',
            default_value=_share('config', 'hmr_ros.yaml'),
            description='hmr_node parameters (YAML)',
        ),
        DeclareLaunchArgument(
            'profile',
            default_value='default',
            description='Parameter profile after params_file: default (none) or orin '
            '(config/profile_orin.yaml: light models, fp16)',
        ),
        DeclareLaunchArgument(
            'viz_params_file',
            default_value=_share('config', 'visualization.yaml'),
            description='hmr_viz_node parameters (YAML)',
        ),
        DeclareLaunchArgument(
            'use_viz', default_value='true', description='Start hmr_viz_node (markers, overlay)'
        ),
        DeclareLaunchArgument('rviz', default_value='false', description='Start RViz 2'),
        DeclareLaunchArgument(
            'rviz_config',
            default_value=_share('rviz', 'hmr.rviz'),
            description="RViz configuration (its fixed frame is replaced by the camera's)",
        ),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', description='Use /clock (bag replay)'
        ),
        DeclareLaunchArgument(
            'log_level', default_value='info', description='debug, info, warn, error or fatal'
        ),
        DeclareLaunchArgument(
            'autostart',
            default_value='true',
            description='hmr_node configures and activates itself; false waits for a manager',
        ),
    ]
    overridable = {**MODEL_ARGUMENTS, **BOOLEAN_MODEL_ARGUMENTS, **SETTING_ARGUMENTS}
    for argument, parameter in overridable.items():
        arguments.append(
            DeclareLaunchArgument(
                argument,
                default_value='',
                description=f'Overrides {parameter} when not empty',
            )
        )
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
