"""Tests for hmr_ros.ros.params: one source for declarations, YAML, README table and checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import require_ros_modules

from hmr_ros.pipeline.smoothing import HAND_SMOOTHING
from hmr_ros.ros import params as node_params
from hmr_ros.ros.params import (
    HmrNodeParams,
    dynamic_parameter_names,
    flatten_parameters,
    parameter_entries,
    parameter_table_markdown,
    parameters_from_values,
    parameters_yaml,
    pipeline_options,
    replace_parameters,
    runtime_settings,
)

REPO = Path(__file__).resolve().parents[2]
YAML_PATH = REPO / 'config' / 'hmr_ros.yaml'
TABLE_BEGIN = '<!-- params:begin -->'
TABLE_END = '<!-- params:end -->'


def flatten_yaml(tree: dict, prefix: str = '') -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten_yaml(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def test_shipped_yaml_mirrors_the_dataclasses() -> None:
    """Same keys, same defaults (and types), a comment on every parameter line."""
    text = YAML_PATH.read_text()
    loaded = yaml.safe_load(text)['/**']['ros__parameters']
    values = flatten_yaml(loaded)
    defaults = flatten_parameters(HmrNodeParams())
    assert list(values) == list(defaults)
    for name, default in defaults.items():
        assert values[name] == default and type(values[name]) is type(default), name
    leaf_lines = [line for line in text.splitlines() if re.match(r'^\s+\w+: \S', line)]
    assert len(leaf_lines) == len(defaults)
    assert all('  # ' in line for line in leaf_lines)
    dynamic_lines = [line for line in leaf_lines if line.endswith('[dynamic]')]
    assert len(dynamic_lines) == len(dynamic_parameter_names())


def test_shipped_yaml_is_the_generated_text() -> None:
    assert YAML_PATH.read_text() == parameters_yaml(), (
        'config/hmr_ros.yaml is out of date: write hmr_ros.ros.params.parameters_yaml() to it'
    )


def test_documented_table_is_the_generated_one() -> None:
    """docs/ros-interface.md holds the table (tools/generate_parameter_docs.py writes it)."""
    text = (REPO / 'docs' / 'ros-interface.md').read_text()
    assert TABLE_BEGIN in text and TABLE_END in text, 'the parameter table block is missing'
    block = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    assert block.strip() == parameter_table_markdown().strip(), (
        'docs/ros-interface.md is out of date: run python tools/generate_parameter_docs.py'
    )


def test_table_has_one_row_per_parameter() -> None:
    table = parameter_table_markdown().splitlines()
    entries = list(parameter_entries())
    assert len(table) == 2 + len(entries)
    assert table[2 + [e.name for e in entries].index('tf.joints')].startswith(
        "| `tf.joints` | `'minimal'` |  | minimal, hands, full | yes |"
    )


def test_names_and_defaults_follow_the_interface_spec() -> None:
    """Spot checks against docs/ros-interface.md (groups, names, defaults, dynamic flags)."""
    defaults = flatten_parameters(HmrNodeParams())
    expected = {
        'autostart': True,
        'input.transport': 'raw',
        'input.qos': 'auto',  # issue 10: match the image publishers' reliability
        'input.max_input_age_ms': 150.0,
        'input.max_rate_hz': 0.0,
        'input.default_frame_id': 'camera_optical_frame',
        'detection.max_persons': 4,
        'detection.person_threshold': 0.5,
        'detection.source': 'internal',
        'detection.plugin': '',
        'detection.external_slop_s': 0.05,
        'tracking.max_coast_s': 0.3,
        'tracking.min_hits': 2,
        'tracking.iou_threshold': 0.3,
        'smoothing.body.min_cutoff_hz': 1.0,
        'smoothing.body.beta': 0.05,
        'smoothing.hands.min_cutoff_hz': 2.0,
        'smoothing.hands.beta': 0.3,
        'tf.enable': True,
        'tf.joints': 'minimal',
        'tf.tree': 'flat',
        'operator.mode': 'largest',
        'operator.left_wrist_frame': 'operator_l_wrist',
        'safety.min_hand_confidence': 0.5,
        'diagnostics.latency_warn_ms': 100.0,
        'diagnostics.stall_s': 2.0,
        'model.adapters': 'auto',
        'model.device': 'auto',
        'model.use_test_assets': False,
    }
    for name, value in expected.items():
        assert defaults[name] == value, name
    dynamic = dynamic_parameter_names()
    assert {
        'smoothing.hands.beta',
        'tf.enable',
        'operator.mode',
        'input.max_input_age_ms',
    } <= dynamic
    assert not any(name.startswith('model.') for name in dynamic)
    assert 'tf.tree' not in dynamic and 'input.qos' not in dynamic


def test_every_parameter_is_documented() -> None:
    for entry in parameter_entries():
        assert entry.spec.description, entry.name
        if isinstance(entry.default, (int, float)) and not isinstance(entry.default, bool):
            assert entry.spec.min_value is not None, f'{entry.name} needs a range'


def test_validation_rejects_with_the_reason() -> None:
    defaults = HmrNodeParams()
    cases = {
        'input.transport': ('ftp', 'input.transport .* choose one of raw, compressed'),
        'tf.joints': ('all', 'tf.joints .* minimal, hands, full'),
        'input.max_rate_hz': (-1.0, r'input.max_rate_hz must be in \[0, 1000\]'),
        'operator.mode': ('id', 'operator.id'),
        'model.device': ('gpu', "model.device 'gpu' is not valid"),
        'tracking.min_hits': (2.5, 'tracking.min_hits must be of type int'),
        'input.default_frame_id': ('', 'default_frame_id must name a frame'),
    }
    for name, (value, pattern) in cases.items():
        with pytest.raises(ValueError, match=pattern):
            replace_parameters(defaults, {name: value})
    with pytest.raises(ValueError, match='unknown parameter.*tf.jionts'):
        replace_parameters(defaults, {'tf.jionts': 'full'})


def test_replace_keeps_group_defaults_and_accepts_integers_for_floats() -> None:
    changed = replace_parameters(HmrNodeParams(), {'smoothing.body.beta': 2, 'operator.id': '4'})
    assert changed.smoothing.body.beta == 2.0 and type(changed.smoothing.body.beta) is float
    assert changed.smoothing.hands == HmrNodeParams().smoothing.hands
    both = replace_parameters(changed, {'operator.mode': 'id'})
    assert both.operator.to_config().id == '4'


def test_runtime_settings_and_pipeline_options_carry_the_values() -> None:
    custom = parameters_from_values(
        {
            'smoothing.hands.beta': 0.7,
            'tracking.max_coast_s': 0.5,
            'safety.min_hand_confidence': 0.6,
            'output.publish_vertices': True,
            'model.body_model_dir': '/models',
            'model.adapters': 'hand',
            'detection.max_persons': 2,
            'detection.hands': False,
        }
    )
    settings = runtime_settings(custom)
    assert settings.hand_smoothing.beta == 0.7
    assert settings.hand_smoothing.min_cutoff_hz == HAND_SMOOTHING.min_cutoff_hz
    assert settings.tracking.max_coast_s == 0.5
    assert settings.min_hand_confidence == 0.6 and settings.publish_vertices
    options = pipeline_options(custom)
    assert options.model.body_model_dir == '/models' and options.model.adapters == 'hand'
    assert options.max_persons == 2 and not options.estimate_hands
    assert options.settings == settings


def test_detection_source_and_plugin_reach_the_pipeline_options() -> None:
    plugin = parameters_from_values({'detection.plugin': 'my_pkg.detectors:make_yolo'})
    assert pipeline_options(plugin).detector_plugin == 'my_pkg.detectors:make_yolo'
    assert pipeline_options(HmrNodeParams()).detector_plugin == ''
    assert 'detection.source' not in dynamic_parameter_names()
    assert 'detection.plugin' not in dynamic_parameter_names()
    assert {'detection.external_slop_s', 'detection.external_class'} <= dynamic_parameter_names()
    with pytest.raises(ValueError, match="detection.source 'other' is not valid"):
        parameters_from_values({'detection.source': 'other'})
    # A plugin would be silently unused with external boxes: refused, naming both parameters.
    with pytest.raises(ValueError, match='clear detection.plugin'):
        replace_parameters(plugin, {'detection.source': 'external'})


def test_wrist_source_reaches_the_pipeline_and_is_checked() -> None:
    assert pipeline_options(HmrNodeParams()).model.wrist_source == 'body'
    custom = parameters_from_values({'model.wrist_source': 'blend'})
    assert pipeline_options(custom).model.wrist_source == 'blend'
    assert 'model.wrist_source' not in dynamic_parameter_names()
    with pytest.raises(ValueError, match='model.wrist_source'):
        parameters_from_values({'model.wrist_source': 'elbow'})


def test_declare_node_parameters_with_descriptors(rclpy_context) -> None:
    require_ros_modules()
    import rclpy
    from rclpy.parameter import Parameter

    node = rclpy.create_node(
        'params_under_test',
        context=rclpy_context,
        parameter_overrides=[
            Parameter('tf.prefix', value='cam_'),
            Parameter('smoothing.hands.beta', value=0.9),
        ],
    )
    try:
        declared = node_params.declare_node_parameters(node)
        assert declared.tf.prefix == 'cam_' and declared.smoothing.hands.beta == 0.9
        descriptor = node.describe_parameter('tf.prefix')
        assert descriptor.read_only and 'Prefix' in descriptor.description
        beta = node.describe_parameter('smoothing.hands.beta')
        assert not beta.read_only
        assert (
            beta.floating_point_range[0].from_value,
            beta.floating_point_range[0].to_value,
        ) == (
            0.0,
            100.0,
        )
        hits = node.describe_parameter('tracking.min_hits')
        assert hits.integer_range[0].from_value == 1
        assert (
            'one of: minimal, hands, full'
            in node.describe_parameter('tf.joints').additional_constraints
        )
        # rclpy enforces the declared ranges and read_only itself.
        assert not node.set_parameters([Parameter('tracking.min_hits', value=0)])[0].successful
        assert not node.set_parameters([Parameter('tf.prefix', value='x')])[0].successful
    finally:
        node.destroy_node()


def test_invalid_override_fails_declaration_with_the_name(rclpy_context) -> None:
    require_ros_modules()
    import rclpy
    from rclpy.parameter import Parameter

    node = rclpy.create_node(
        'params_bad_override',
        context=rclpy_context,
        parameter_overrides=[Parameter('input.transport', value='smoke_signals')],
    )
    try:
        with pytest.raises(ValueError, match='input.transport'):
            node_params.declare_node_parameters(node)
    finally:
        node.destroy_node()
