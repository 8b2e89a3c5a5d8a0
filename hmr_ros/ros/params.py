"""Parameters of ``hmr_node``: frozen dataclasses, declared, documented and checked once.

Each leaf field carries a :class:`ParameterSpec` in its metadata (description, unit, range or
choices, whether it is dynamic). From these one helper declares every ROS parameter with a
``ParameterDescriptor`` (:func:`declare_node_parameters`), the parameter callback validates a
change by building a new instance with :func:`replace_parameters`, ``config/hmr_ros.yaml`` is
:func:`parameters_yaml` and the table in docs/ros-interface.md is
:func:`parameter_table_markdown` (docs/development.md). Defaults live here only. Names and
defaults follow docs/ros-interface.md, grouped with dots (``smoothing.body.beta``) as nested
dataclasses.

This module imports rclpy only inside :func:`declare_node_parameters`, so the tables, the YAML
and the validation work without ROS.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, Union

from hmr_ros.pipeline.detectors.onnx_detector import ONNX_FORMATS
from hmr_ros.pipeline.detectors.plugin import DetectorOptions
from hmr_ros.pipeline.operator_selection import OPERATOR_MODES, OperatorConfig
from hmr_ros.pipeline.protocol import (
    ADAPTER_CHOICES,
    BACKEND_CHOICES,
    DEFAULT_WRIST_SOURCE,
    DEVICE_CHOICES_HINT,
    HAND_ROOT_SOURCES,
    PRECISION_CHOICES,
    WRIST_SOURCE_CHOICES,
    ModelOptions,
    PipelineOptions,
    RuntimeSettings,
    is_device_name,
)
from hmr_ros.pipeline.smoothing import OneEuroConfig
from hmr_ros.pipeline.tracking import TrackerConfig

if TYPE_CHECKING:
    from rclpy.node import Node

ParameterValue = Union[bool, int, float, str]
_SPEC_KEY = 'hmr_ros_parameter'

INPUT_TRANSPORTS = ('raw', 'compressed')
INPUT_QOS_CHOICES = ('sensor_data', 'reliable', 'system_default')
NODE_INPUT_QOS_CHOICES = ('auto', *INPUT_QOS_CHOICES)
"""hmr_node's ``input.qos``: 'auto' follows the image publishers (ros/qos.py)."""
HAND_FRAME_CONVENTIONS = ('operator', 'dex_retargeting', 'smplx')
TF_JOINT_SETS = ('minimal', 'hands', 'full')
TF_TREES = ('flat', 'kinematic')
DETECTION_SOURCES = ('internal', 'external')


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """What a parameter means and which values it takes.

    Attributes:
        description: One sentence for the descriptor, the YAML comment and the docs table.
        unit: Unit symbol ('ms', 'Hz', 's', 'px'), '' when dimensionless.
        min_value: Smallest value of a number, None for strings and booleans.
        max_value: Largest value of a number.
        choices: Allowed strings; empty when free text.
        dynamic: Whether it may change while the node runs.
    """

    description: str
    unit: str = ''
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] = ()
    dynamic: bool = False

    @property
    def range_text(self) -> str:
        """'[0, 1]', 'raw | compressed' or '' for the docs."""
        if self.choices:
            return ', '.join(self.choices)
        if self.min_value is not None and self.max_value is not None:
            return f'[{_format_number(self.min_value)}, {_format_number(self.max_value)}]'
        return ''


def parameter(
    default: ParameterValue,
    description: str,
    *,
    unit: str = '',
    value_range: tuple[float, float] | None = None,
    choices: tuple[str, ...] = (),
    dynamic: bool = False,
) -> Any:
    """A dataclass field holding one ROS parameter (its default and its spec)."""
    low, high = value_range if value_range is not None else (None, None)
    spec = ParameterSpec(description, unit, low, high, choices, dynamic)
    return dataclasses.field(default=default, metadata={_SPEC_KEY: spec})


class ParameterGroup:
    """Checks every leaf field against its spec at construction (types, ranges, choices)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            spec = field.metadata.get(_SPEC_KEY)
            if spec is None:
                continue
            value = getattr(self, field.name)
            _check_value(field.name, value, field.default, spec)


def _check_value(name: str, value: Any, default: Any, spec: ParameterSpec) -> None:
    expected = type(default)
    if type(value) is not expected and not (expected is float and type(value) is int):
        raise ValueError(
            f'{name} must be of type {_TYPE_NAMES.get(expected, expected.__name__)}, got '
            f'{value!r} ({_TYPE_NAMES.get(type(value), type(value).__name__)})'
            + (f'; range {spec.range_text}' if spec.range_text and not spec.choices else '')
        )
    if spec.choices and value not in spec.choices:
        raise ValueError(f'{name} {value!r} is not valid; choose one of {spec.range_text}')
    if spec.min_value is not None and spec.max_value is not None:
        if not (math.isfinite(value) and spec.min_value <= value <= spec.max_value):
            raise ValueError(f'{name} must be in {spec.range_text}, got {value}')


_TYPE_NAMES = {bool: 'bool', int: 'integer', float: 'double', str: 'string'}


@dataclasses.dataclass(frozen=True)
class InputParams(ParameterGroup):
    """``input.*``: how images arrive and which are refused."""

    transport: str = parameter(
        'raw',
        "Subscribe 'image' (raw) or 'image/compressed' (JPEG/PNG)",
        choices=INPUT_TRANSPORTS,
    )
    qos: str = parameter(
        'auto',
        'QoS of the image and camera_info subscriptions: auto matches the image publishers '
        '(reliable ones get reliable keep-last-1, else best effort); qos_overrides.* refine it',
        choices=NODE_INPUT_QOS_CHOICES,
    )
    max_input_age_ms: float = parameter(
        150.0,
        'Skip images older than this (ROS clock minus header stamp); 0 disables the check',
        unit='ms',
        value_range=(0.0, 60000.0),
        dynamic=True,
    )
    max_future_stamp_ms: float = parameter(
        500.0,
        'Refuse images stamped more than this ahead of the ROS clock (unsynchronised clocks); '
        '0 disables the check',
        unit='ms',
        value_range=(0.0, 60000.0),
        dynamic=True,
    )
    max_rate_hz: float = parameter(
        0.0,
        'Accept at most this many images per second; 0 processes as fast as possible',
        unit='Hz',
        value_range=(0.0, 1000.0),
        dynamic=True,
    )
    rectified: bool = parameter(
        False, 'Images are rectified: use camera_info P; false uses K and the distortion D'
    )
    default_frame_id: str = parameter(
        'camera_optical_frame', 'Frame used (with a warning) when an image has an empty frame_id'
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.default_frame_id:
            raise ValueError('input.default_frame_id must name a frame, got an empty string')


@dataclasses.dataclass(frozen=True)
class ModelParams(ParameterGroup):
    """``model.*``: networks, weights and device (read when the node is configured)."""

    whole_body_variant: str = parameter(
        'auto',
        'Body model variant the checkpoint must hold (model registry: smplerx_h32, '
        "fastmetro_s_r50, ...); 'auto' takes it from the file",
    )
    hand_variant: str = parameter(
        'auto', "Hand model variant the checkpoint must hold (hamer, ...); 'auto' from the file"
    )
    whole_body_checkpoint: str = parameter(
        '', 'Body model checkpoint file (SMPLer-X or FastMETRO, official or converted)'
    )
    hand_checkpoint: str = parameter('', 'Hand expert (HaMeR) checkpoint file')
    hand_adapter_checkpoint: str = parameter(
        '', 'Hand adapter file (body pose guides the hand expert); empty for none'
    )
    body_adapter_checkpoint: str = parameter(
        '', 'Body adapter file (hand features refine the body); empty for none'
    )
    body_model_dir: str = parameter(
        '', 'Folder holding SMPLX_NEUTRAL.npz, MANO_RIGHT.pkl and MANO_LEFT.pkl'
    )
    adapters: str = parameter(
        'auto', "Adapters to run; 'auto' uses those whose files are set", choices=ADAPTER_CHOICES
    )
    device: str = parameter('auto', f'Inference device: {DEVICE_CHOICES_HINT}')
    precision: str = parameter(
        'auto',
        "Inference precision; 'auto' is fp16 on CUDA, fp32 on CPU",
        choices=PRECISION_CHOICES,
    )
    use_test_assets: bool = parameter(
        False, 'Run on generated stand-in weights and body models: outputs are meaningless'
    )
    backend: str = parameter(
        'auto',
        "Inference backend (docs/performance.md); 'auto' is the best available, logged",
        choices=BACKEND_CHOICES,
    )
    engine_cache_dir: str = parameter(
        '', "TensorRT engine and ONNX graph cache; '' is ~/.cache/hmr_ros/engines"
    )
    rebuild_engines: bool = parameter(
        False, 'Rebuild cached TensorRT engines and ONNX graphs at configure'
    )
    compile_cache_dir: str = parameter(
        '', "Inductor cache of the compile backend; '' is ~/.cache/hmr_ros/inductor"
    )
    wrist_source: str = parameter(
        DEFAULT_WRIST_SOURCE,
        "Wrist rotation of fused hands: 'body' (refined body path), 'hand' (IK from the hand "
        "expert) or 'blend' (halfway)",
        choices=WRIST_SOURCE_CHOICES,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_device_name(self.device):
            raise ValueError(
                f'model.device {self.device!r} is not valid; use {DEVICE_CHOICES_HINT}'
            )


@dataclasses.dataclass(frozen=True)
class DetectionParams(ParameterGroup):
    """``detection.*``: which persons are processed."""

    max_persons: int = parameter(4, 'Most persons processed per image', value_range=(1, 64))
    person_threshold: float = parameter(
        0.5,
        "Smallest person-presence score kept (the detector's, else the body model's heatmap "
        'score); applies on every path',
        value_range=(0.0, 1.0),
        dynamic=True,
    )
    min_box_px: float = parameter(
        48.0, 'Smallest person box side kept', unit='px', value_range=(0.0, 8192.0), dynamic=True
    )
    hands: bool = parameter(True, 'Run the hand expert (false: hands from the body model only)')
    source: str = parameter(
        'internal',
        "Person boxes from the pipeline ('internal': detection.plugin or the built-in "
        "single-operator front-end) or the 'detections' topic (vision_msgs/Detection2DArray)",
        choices=DETECTION_SOURCES,
    )
    plugin: str = parameter(
        '',
        "Person detector: 'onnx' (YOLOX/RTMDet export), 'torchvision', or "
        "'package.module:factory' (factory() returns an object with detect(image_rgb, "
        'stamp_s)); empty uses the built-in single-operator front-end',
    )
    weights: str = parameter(
        '',
        "The detector's model file: the .onnx export ('onnx') or the state dict "
        "('torchvision'); passed as weights= to an entry point's factory when set",
    )
    onnx_format: str = parameter(
        'yolox',
        "Output layout of the 'onnx' detector's export",
        choices=ONNX_FORMATS,
    )
    torchvision_model: str = parameter(
        'fasterrcnn_resnet50_fpn_v2', "Architecture of the 'torchvision' detector"
    )
    class_id: int = parameter(
        -1,
        "Person class in the detector's labels; -1: COCO person (0 for 'onnx', 1 for "
        "'torchvision')",
        value_range=(-1, 10000),
    )
    external_slop_s: float = parameter(
        0.05,
        'External detections match an image when their stamps differ by at most this',
        unit='s',
        value_range=(0.0, 1.0),
        dynamic=True,
    )
    external_wait_s: float = parameter(
        0.1,
        'How long the worker waits for matching external detections before processing an '
        'image without persons',
        unit='s',
        value_range=(0.0, 5.0),
        dynamic=True,
    )
    external_class: str = parameter(
        '',
        'Keep only external detections whose best hypothesis has this class_id; empty keeps all',
        dynamic=True,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source == 'external' and self.plugin:
            raise ValueError(
                f"detection.plugin is {self.plugin!r} but detection.source is 'external' (boxes "
                "come from the detections topic); clear detection.plugin or use 'internal'"
            )


@dataclasses.dataclass(frozen=True)
class TrackingParams(ParameterGroup):
    """``tracking.*``: person ids across frames."""

    enable: bool = parameter(True, 'Track persons across frames (false: new id every frame)')
    iou_threshold: float = parameter(
        0.3,
        'Smallest box overlap (IoU) matching a detection to a track',
        value_range=(0.01, 1.0),
        dynamic=True,
    )
    min_hits: int = parameter(
        2, 'Detections before a track is TRACKED', value_range=(1, 100), dynamic=True
    )
    max_coast_s: float = parameter(
        0.3,
        'Keep an undetected track as PREDICTED this long, then LOST',
        unit='s',
        value_range=(0.0, 10.0),
        dynamic=True,
    )


@dataclasses.dataclass(frozen=True)
class OneEuroParams(ParameterGroup):
    """One-Euro filter settings of one output group."""

    min_cutoff_hz: float = parameter(
        1.0,
        'Cutoff at rest: lower smooths more, lags more',
        unit='Hz',
        value_range=(0.001, 100.0),
        dynamic=True,
    )
    beta: float = parameter(
        0.05,
        'Cutoff increase per unit of speed: higher lags less when moving fast',
        unit='Hz s/m',
        value_range=(0.0, 100.0),
        dynamic=True,
    )
    d_cutoff_hz: float = parameter(
        1.0,
        'Cutoff of the speed estimate',
        unit='Hz',
        value_range=(0.001, 100.0),
        dynamic=True,
    )

    def to_config(self) -> OneEuroConfig:
        """The pipeline's filter settings."""
        return OneEuroConfig(self.min_cutoff_hz, self.beta, self.d_cutoff_hz)


_HAND_ONE_EURO = OneEuroParams(min_cutoff_hz=2.0, beta=0.3, d_cutoff_hz=1.0)


@dataclasses.dataclass(frozen=True)
class SmoothingParams(ParameterGroup):
    """``smoothing.*``: One-Euro filtering per track (adds lag; docs/ros-interface.md)."""

    enable: bool = parameter(True, 'Smooth body and hand outputs over time', dynamic=True)
    body: OneEuroParams = OneEuroParams()
    hands: OneEuroParams = _HAND_ONE_EURO


@dataclasses.dataclass(frozen=True)
class OutputParams(ParameterGroup):
    """``output.*``: what the messages carry."""

    publish_vertices: bool = parameter(
        False, 'Fill Person.vertices (10475 x 3 floats per person)', dynamic=True
    )
    hand_frame_convention: str = parameter(
        'operator',
        "Wrist orientation: 'operator' (x to middle knuckle, z out of the palm), "
        "'dex_retargeting' (dex-retargeting's operator frame) or 'smplx'",
        choices=HAND_FRAME_CONVENTIONS,
    )
    frame: str = parameter(
        '',
        "Frame of every output (e.g. 'base_link'), from TF at each image stamp (needs tf2_ros); "
        "'' keeps the camera's frame",
    )
    frame_timeout_s: float = parameter(
        0.05,
        'Longest wait for the output.frame transform of one image; frames without it are skipped',
        unit='s',
        value_range=(0.0, 1.0),
    )
    joint_states: bool = parameter(
        True, 'Publish operator/joint_states (sensor_msgs/JointState) and operator/wrists'
    )
    detections: bool = parameter(
        False, 'Publish tracked_detections (vision_msgs/Detection2DArray, id = track id)'
    )
    hand_root: str = parameter(
        'mesh',
        "Hand wrist positions: 'mesh' (the SMPL-X mesh's wrists) or 'registered' (2D "
        'registration onto the hand keypoints, where valid and near the body wrist)',
        choices=HAND_ROOT_SOURCES,
        dynamic=True,
    )


@dataclasses.dataclass(frozen=True)
class TfParams(ParameterGroup):
    """``tf.*``: body and joint frames on /tf."""

    enable: bool = parameter(True, 'Publish body, joint and operator frames on /tf', dynamic=True)
    prefix: str = parameter('', 'Prefix of every frame name (e.g. the camera name)')
    joints: str = parameter(
        'minimal',
        'Joint frames: minimal (head, wrists, fingertips), hands (all hand joints) or full',
        choices=TF_JOINT_SETS,
        dynamic=True,
    )
    tree: str = parameter(
        'flat',
        "Joint frames' parent: body_<id> (flat) or the kinematic parent (kinematic)",
        choices=TF_TREES,
    )


@dataclasses.dataclass(frozen=True)
class OperatorParams(ParameterGroup):
    """``operator.*``: the person whose wrists drive left_hand/pose and right_hand/pose."""

    mode: str = parameter(
        'largest', 'How the operator is chosen', choices=OPERATOR_MODES, dynamic=True
    )
    id: str = parameter('', "Track id to follow when mode is 'id'", dynamic=True)
    left_wrist_frame: str = parameter('operator_l_wrist', "TF name of the operator's left wrist")
    right_wrist_frame: str = parameter('operator_r_wrist', "TF name of the operator's right wrist")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.left_wrist_frame or not self.right_wrist_frame:
            raise ValueError('operator.left_wrist_frame and right_wrist_frame must not be empty')
        if self.left_wrist_frame == self.right_wrist_frame:
            raise ValueError(
                f'operator.left_wrist_frame and right_wrist_frame are both '
                f'{self.left_wrist_frame!r}; give the two wrists different names'
            )
        OperatorConfig(self.mode, self.id)  # raises with the fix when mode 'id' has no id

    def to_config(self) -> OperatorConfig:
        """The pipeline's operator selection settings."""
        return OperatorConfig(self.mode, self.id)


@dataclasses.dataclass(frozen=True)
class SafetyParams(ParameterGroup):
    """``safety.*``: teleop safety (docs/ros-interface.md)."""

    min_hand_confidence: float = parameter(
        0.5,
        'Hands below it are invalid: no pose, no hands entry, no operator frame',
        value_range=(0.0, 1.0),
        dynamic=True,
    )


@dataclasses.dataclass(frozen=True)
class DiagnosticsParams(ParameterGroup):
    """``diagnostics.*``: levels of the /diagnostics status."""

    latency_warn_ms: float = parameter(
        100.0,
        'WARN when the p95 latency (publish time minus image stamp) exceeds it',
        unit='ms',
        value_range=(1.0, 60000.0),
        dynamic=True,
    )
    stall_s: float = parameter(
        2.0,
        'ERROR when images arrive but nothing was published for this long',
        unit='s',
        value_range=(0.1, 3600.0),
        dynamic=True,
    )


@dataclasses.dataclass(frozen=True)
class HmrNodeParams(ParameterGroup):
    """All parameters of ``hmr_node`` (the group fields become dotted names)."""

    autostart: bool = parameter(
        True, 'Configure and activate at start; false waits for a lifecycle manager'
    )
    input: InputParams = InputParams()
    model: ModelParams = ModelParams()
    detection: DetectionParams = DetectionParams()
    tracking: TrackingParams = TrackingParams()
    smoothing: SmoothingParams = SmoothingParams()
    output: OutputParams = OutputParams()
    tf: TfParams = TfParams()
    operator: OperatorParams = OperatorParams()
    safety: SafetyParams = SafetyParams()
    diagnostics: DiagnosticsParams = DiagnosticsParams()


P = TypeVar('P')


@dataclasses.dataclass(frozen=True)
class ParameterEntry:
    """One leaf parameter of a parameter dataclass.

    Attributes:
        name: Dotted ROS name ('smoothing.body.beta').
        default: Default value (its type is the parameter's type).
        spec: Meaning and allowed values.
    """

    name: str
    default: ParameterValue
    spec: ParameterSpec


def parameter_entries(params_type: type = HmrNodeParams) -> Iterator[ParameterEntry]:
    """Every leaf parameter of ``params_type`` in declaration order, groups flattened.

    Defaults are read from a default instance, so a group used twice with different defaults
    (``smoothing.body`` and ``smoothing.hands``) reports each its own.
    """
    yield from _entries(params_type(), '')


def _entries(group: Any, prefix: str) -> Iterator[ParameterEntry]:
    for field in dataclasses.fields(group):
        spec = field.metadata.get(_SPEC_KEY)
        name = f'{prefix}{field.name}'
        value = getattr(group, field.name)
        if spec is not None:
            yield ParameterEntry(name, value, spec)
        elif dataclasses.is_dataclass(value):
            yield from _entries(value, f'{name}.')
        else:
            raise TypeError(
                f'{type(group).__name__}.{field.name} is neither a parameter nor a group'
            )


def flatten_parameters(params: Any, prefix: str = '') -> dict[str, ParameterValue]:
    """Dotted name -> value of every leaf of a parameter dataclass instance."""
    values: dict[str, ParameterValue] = {}
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if dataclasses.is_dataclass(value):
            values.update(flatten_parameters(value, f'{prefix}{field.name}.'))
        else:
            values[f'{prefix}{field.name}'] = value
    return values


def parameters_from_values(
    values: Mapping[str, ParameterValue],
    params_type: type[P] = HmrNodeParams,  # type: ignore[assignment]
) -> P:
    """Build a parameter dataclass from dotted names (missing names keep their defaults).

    Raises:
        ValueError: An unknown name (the message lists the valid ones), or a value outside its
            type, range or choices.
    """
    complete = {entry.name: entry.default for entry in parameter_entries(params_type)}
    unknown = sorted(set(values) - set(complete))
    if unknown:
        raise ValueError(
            f'unknown parameter(s) {", ".join(unknown)}; valid names: {", ".join(complete)}'
        )
    complete.update(values)
    return _build(params_type, complete, '')


def _build(params_type: type[P], values: Mapping[str, ParameterValue], prefix: str) -> P:
    """Construct nested groups from a complete name -> value mapping."""
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(params_type):  # type: ignore[arg-type]
        name = f'{prefix}{field.name}'
        if field.metadata.get(_SPEC_KEY) is not None:
            kwargs[field.name] = _coerce(values[name], field.default)
        else:
            kwargs[field.name] = _build(type(field.default), values, f'{name}.')
    try:
        return params_type(**kwargs)
    except ValueError as error:
        # Field checks name the bare field; give the dotted name the user wrote.
        message = str(error)
        for field in dataclasses.fields(params_type):  # type: ignore[arg-type]
            if message.startswith(f'{field.name} '):
                message = f'{prefix}{message}'
                break
        raise ValueError(message) from error


def _coerce(value: ParameterValue, default: Any) -> ParameterValue:
    """Integers given for float parameters become floats (YAML '100' for 100.0)."""
    if type(default) is float and type(value) is int:
        return float(value)
    return value


def replace_parameters(params: P, changes: Mapping[str, ParameterValue]) -> P:
    """A new instance with some dotted names changed, validated as a whole.

    Raises:
        ValueError: Unknown name or invalid value (the message says which and why).
    """
    values = flatten_parameters(params)
    values.update(changes)
    return parameters_from_values(values, type(params))


def declare_node_parameters(node: Node, params_type: type[P] = HmrNodeParams) -> P:  # type: ignore[assignment]
    """Declare every parameter of ``params_type`` on ``node`` and return the filled dataclass.

    Each parameter gets a descriptor with its description (unit and choices appended), an
    integer or floating-point range, and ``read_only`` unless it is dynamic. Values come from the
    node's overrides (launch, YAML, command line) or the dataclass defaults. Overrides are
    checked against the specs first, so a wrong type or an out-of-range value ends in one line
    naming the parameter and its type or range (not rclpy's traceback); an integer given for a
    floating-point parameter is accepted as that number. Override names that match no parameter
    are warned about with the nearest declared name (rclpy ignores them silently).

    Raises:
        ValueError: An override of the wrong type, outside its range or choices, or invalid as a
            whole (e.g. ``operator.mode: id`` without ``operator.id``); the message names it.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import ParameterException
    from rclpy.parameter import Parameter

    entries = list(parameter_entries(params_type))
    overrides: dict[str, Any] = getattr(node, '_parameter_overrides', {})
    _warn_unknown_overrides(node, overrides, [entry.name for entry in entries])
    for entry in entries:
        override = overrides.get(entry.name)
        if override is None:
            continue
        value = _coerce(override.value, entry.default)
        _check_value(entry.name, value, entry.default, entry.spec)
        if value is not override.value:  # int given for a double: declare it as the double
            overrides[entry.name] = Parameter(entry.name, value=value)
    declarations: list[Any] = []
    for entry in entries:
        spec = entry.spec
        descriptor = ParameterDescriptor(description=_describe(entry), read_only=not spec.dynamic)
        if spec.choices:
            descriptor.additional_constraints = f'one of: {", ".join(spec.choices)}'
        if spec.min_value is not None and spec.max_value is not None:
            if type(entry.default) is int:
                descriptor.integer_range = [
                    IntegerRange(
                        from_value=int(spec.min_value), to_value=int(spec.max_value), step=1
                    )
                ]
            else:
                descriptor.floating_point_range = [
                    FloatingPointRange(
                        from_value=float(spec.min_value), to_value=float(spec.max_value), step=0.0
                    )
                ]
        declarations.append((entry.name, entry.default, descriptor))
    try:
        declared = node.declare_parameters('', declarations)
    except ParameterException as error:  # a case the checks above missed: still one line
        raise ValueError(str(error)) from error
    return parameters_from_values({p.name: p.value for p in declared}, params_type)


_FOREIGN_PARAMETER_PREFIXES = ('qos_overrides.', 'use_sim_time', 'start_type_description_service')
"""Override names rclpy itself declares (QoS overrides appear when topics are created)."""


def _warn_unknown_overrides(node: Node, overrides: Mapping[str, Any], names: list[str]) -> None:
    for name in sorted(set(overrides) - set(names)):
        if name.startswith(_FOREIGN_PARAMETER_PREFIXES):
            continue
        nearest = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"; did you mean '{nearest[0]}'?" if nearest else ' (see config/hmr_ros.yaml)'
        node.get_logger().warning(f"unknown parameter '{name}' is ignored{hint}")


def _describe(entry: ParameterEntry) -> str:
    text = entry.spec.description
    if entry.spec.unit:
        text += f' [{entry.spec.unit}]'
    return text


def dynamic_parameter_names(params_type: type = HmrNodeParams) -> frozenset[str]:
    """Names of the parameters that may change while the node runs."""
    return frozenset(e.name for e in parameter_entries(params_type) if e.spec.dynamic)


# ---------------------------------------------------------------- to the pipeline's settings


def runtime_settings(params: HmrNodeParams) -> RuntimeSettings:
    """The dynamic settings forwarded to ``FramePipeline.update_settings``."""
    return RuntimeSettings(
        tracking=TrackerConfig(
            iou_threshold=params.tracking.iou_threshold,
            min_hits=params.tracking.min_hits,
            max_coast_s=params.tracking.max_coast_s,
        ),
        smoothing_enable=params.smoothing.enable,
        body_smoothing=params.smoothing.body.to_config(),
        hand_smoothing=params.smoothing.hands.to_config(),
        person_threshold=params.detection.person_threshold,
        min_box_px=params.detection.min_box_px,
        min_hand_confidence=params.safety.min_hand_confidence,
        publish_vertices=params.output.publish_vertices,
        hand_root=params.output.hand_root,
    )


def pipeline_options(params: HmrNodeParams) -> PipelineOptions:
    """Everything the pipeline factory needs, from the node's parameters."""
    model = params.model
    return PipelineOptions(
        model=ModelOptions(
            whole_body_variant=model.whole_body_variant,
            hand_variant=model.hand_variant,
            whole_body_checkpoint=model.whole_body_checkpoint,
            hand_checkpoint=model.hand_checkpoint,
            hand_adapter_checkpoint=model.hand_adapter_checkpoint,
            body_adapter_checkpoint=model.body_adapter_checkpoint,
            body_model_dir=model.body_model_dir,
            adapters=model.adapters,
            device=model.device,
            precision=model.precision,
            use_test_assets=model.use_test_assets,
            backend=model.backend,
            engine_cache_dir=model.engine_cache_dir,
            rebuild_engines=model.rebuild_engines,
            compile_cache_dir=model.compile_cache_dir,
            wrist_source=model.wrist_source,
        ),
        max_persons=params.detection.max_persons,
        estimate_hands=params.detection.hands,
        tracking_enable=params.tracking.enable,
        settings=runtime_settings(params),
        detector_plugin=params.detection.plugin,
        detector=DetectorOptions(
            weights=params.detection.weights,
            onnx_format=params.detection.onnx_format,
            torchvision_model=params.detection.torchvision_model,
            class_id=params.detection.class_id,
            device=model.device,
        ),
    )


# ---------------------------------------------------------------- documentation


def _format_number(value: float) -> str:
    return f'{value:g}'


def _format_value(value: ParameterValue) -> str:
    """A value as YAML writes it (floats keep a decimal point, so ROS types them as double)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        text = repr(value)
        return text if ('.' in text or 'e' in text) else f'{text}.0'
    if isinstance(value, int):
        return str(value)
    return f"'{value}'"


def parameter_table_markdown(params_type: type = HmrNodeParams) -> str:
    """The parameter table of docs/ros-interface.md (one row per parameter)."""
    lines = [
        '| parameter | default | unit | range | dynamic | description |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    for entry in parameter_entries(params_type):
        spec = entry.spec
        lines.append(
            f'| `{entry.name}` | `{_format_value(entry.default)}` | {spec.unit} | '
            f'{spec.range_text} | {"yes" if spec.dynamic else "no"} | {spec.description} |'
        )
    return '\n'.join(lines) + '\n'


def parameters_yaml(node_name: str = '/**', params_type: type = HmrNodeParams) -> str:
    """``config/hmr_ros.yaml``: every parameter at its default, a comment per line."""
    lines = [
        '# Parameters of hmr_node at their defaults (generated from hmr_ros/ros/params.py by',
        '# hmr_ros.ros.params.parameters_yaml(); a test keeps them equal). Copy and edit for your',
        '# set-up. Comments: meaning [unit] {range} [dynamic = may change at run time].',
        f'{node_name}:',
        '  ros__parameters:',
    ]
    open_groups: list[str] = []
    for entry in parameter_entries(params_type):
        *groups, leaf = entry.name.split('.')
        common = 0
        while (
            common < min(len(groups), len(open_groups)) and groups[common] == open_groups[common]
        ):
            common += 1
        for depth in range(common, len(groups)):
            lines.append(f'{"  " * (depth + 2)}{groups[depth]}:')
        open_groups = groups
        spec = entry.spec
        comment = spec.description
        if spec.unit:
            comment += f' [{spec.unit}]'
        if spec.range_text:
            comment += f' {{{spec.range_text}}}'
        if spec.dynamic:
            comment += ' [dynamic]'
        indent = '  ' * (len(groups) + 2)
        lines.append(f'{indent}{leaf}: {_format_value(entry.default)}  # {comment}')
    return '\n'.join(lines) + '\n'
