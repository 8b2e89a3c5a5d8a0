"""Static checks of launch/live.launch.py and resource/rviz/hmr.rviz (no launch package needed).

``launch`` and ``launch_ros`` are not on PyPI, so the launch file is read with ``ast`` here; the
launch_testing test (test_live_launch.py) runs it where ROS 2 is installed.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / 'launch' / 'live.launch.py'
RVIZ_FILE = REPO / 'resource' / 'rviz' / 'hmr.rviz'

EXPECTED_ARGUMENTS = {
    'camera_type',
    'camera',
    'fixed_frame',
    'rectified',
    'transport',
    'detection_source',
    'detection_plugin',
    'tf_prefix',
    'operator_mode',
    'backend',
    'image',
    'camera_info',
    'namespace',
    'params_file',
    'profile',
    'viz_params_file',
    'use_viz',
    'rviz',
    'rviz_config',
    'use_sim_time',
    'log_level',
    'autostart',
    'whole_body_checkpoint',
    'hand_checkpoint',
    'hand_adapter_checkpoint',
    'body_adapter_checkpoint',
    'body_model_dir',
    'whole_body_variant',
    'hand_variant',
    'device',
    'precision',
    'use_test_assets',
}


def _module() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _constants(module: ast.Module) -> dict[str, object]:
    """Module-level NAME = literal assignments."""
    values = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    values[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return values


def _calls(module: ast.Module, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(module)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_declared_arguments() -> None:
    """Literal DeclareLaunchArgument names plus one per MODEL_ARGUMENTS entry (declared in a loop
    with an empty default, so the YAML wins unless the argument is given)."""
    module = _module()
    constants = _constants(module)
    literal = {
        call.args[0].value
        for call in _calls(module, 'DeclareLaunchArgument')
        if call.args and isinstance(call.args[0], ast.Constant)
    }
    model = (
        set(constants['MODEL_ARGUMENTS'])
        | set(constants['BOOLEAN_MODEL_ARGUMENTS'])
        | set(constants['SETTING_ARGUMENTS'])
    )
    assert literal | model == EXPECTED_ARGUMENTS
    assert not literal & model


def _flatten(tree: dict, prefix: str = '') -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def test_model_arguments_override_hmr_node_parameters_of_their_type() -> None:
    """Each argument names model.<argument> of config/hmr_ros.yaml; booleans map to booleans."""
    constants = _constants(_module())
    defaults = _flatten(
        yaml.safe_load((REPO / 'config' / 'hmr_ros.yaml').read_text())['/**']['ros__parameters']
    )
    for argument, parameter in constants['MODEL_ARGUMENTS'].items():
        assert parameter == f'model.{argument}'
        assert isinstance(defaults[parameter], str), parameter
    for argument, parameter in constants['BOOLEAN_MODEL_ARGUMENTS'].items():
        assert parameter == f'model.{argument}'
        assert isinstance(defaults[parameter], bool), parameter
    assert isinstance(defaults['autostart'], bool)
    for argument, parameter in constants['SETTING_ARGUMENTS'].items():
        assert isinstance(defaults[parameter], str), (argument, parameter)
    # The camera preset (or the 'rectified' argument) sets this boolean parameter.
    assert isinstance(defaults['input.rectified'], bool)


def test_executables_exist_and_the_main_node_is_a_lifecycle_node() -> None:
    module = _module()
    constants = _constants(module)
    assert constants['MAIN_EXECUTABLE'] == 'hmr_node'
    assert constants['VIZ_EXECUTABLE'] == 'hmr_viz_node'
    for name in ('hmr_node', 'hmr_viz_node'):
        script = REPO / 'scripts' / name
        assert script.is_file() and os.access(script, os.X_OK), script
    (lifecycle,) = _calls(module, 'LifecycleNode')
    executable = _keyword(lifecycle, 'executable')
    assert isinstance(executable, ast.Name) and executable.id == 'MAIN_EXECUTABLE'
    executables = [_keyword(call, 'executable') for call in _calls(module, 'Node')]
    names = [e.id if isinstance(e, ast.Name) else getattr(e, 'value', None) for e in executables]
    assert names == ['VIZ_EXECUTABLE', 'rviz2']


# share/hmr_ros/<folder> -> the source folder CMakeLists.txt installs it from.
SHARE_SOURCES = {'config': 'config', 'rviz': 'resource/rviz', 'data': 'resource/data'}


def test_default_files_exist_in_the_package() -> None:
    """Every _share('<folder>', '<file>') default names a file the package installs there."""
    shared = [
        tuple(arg.value for arg in call.args)
        for call in _calls(_module(), '_share')
        if all(isinstance(arg, ast.Constant) for arg in call.args)
    ]
    assert {'/'.join(parts) for parts in shared} == {
        'config/hmr_ros.yaml',
        'config/visualization.yaml',
        'rviz/hmr.rviz',
    }
    for folder, *rest in shared:
        assert REPO.joinpath(SHARE_SOURCES[folder], *rest).is_file(), (folder, rest)
    cmake = (REPO / 'CMakeLists.txt').read_text()
    assert 'install(DIRECTORY resource/rviz resource/data DESTINATION share/${PROJECT_NAME})' in (
        cmake
    )


def _displays(config: dict) -> list[dict]:
    return config['Visualization Manager']['Displays']


def test_rviz_config_shows_the_hmr_topics_in_the_camera_frame() -> None:
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'camera_color_optical_frame'
    by_class: dict[str, list[dict]] = {}
    for display in _displays(config):
        by_class.setdefault(display['Class'], []).append(display)
    marker_topics = {d['Topic']['Value'] for d in by_class['rviz_default_plugins/MarkerArray']}
    assert marker_topics == {'/hmr/markers/skeleton', '/hmr/markers/mesh'}
    (image,) = by_class['rviz_default_plugins/Image']
    assert image['Topic']['Value'] == '/hmr/debug/image'
    for display in [*by_class['rviz_default_plugins/MarkerArray'], image]:
        # What hmr_viz_node offers: reliable, volatile (a mismatch shows nothing).
        assert display['Topic']['Reliability Policy'] == 'Reliable'
        assert display['Topic']['Durability Policy'] == 'Volatile'
    (tf,) = by_class['rviz_default_plugins/TF']
    assert 'body_' in tf['Filter (whitelist)']
    assert all(display['Enabled'] for display in _displays(config))
