"""``hmr_node``: the real-time lifecycle node (docs/ros-interface.md-5.10; style guide, section 5).

The node is thin: it declares parameters (``params.py``), builds the pipeline through a factory,
converts messages (``conversions.py``), hands frames to one worker thread, converts results back,
publishes them with the image's stamp, broadcasts TF (``tf_frames.py``) and reports diagnostics
(``diagnostics.py``). Resources follow the lifecycle states:

- ``__init__``: parameters, the ``~/enable`` and ``~/reset_tracking`` services.
- ``configure``: the pipeline (models loaded; FAILURE with a log naming the parameter and file
  when something is missing), publishers, the 1 Hz diagnostics timer.
- ``activate``: subscriptions, the worker thread; ``model_info`` and ``mesh_topology`` are sent
  (transient-local).
- ``deactivate``: subscriptions and worker stopped, empty ``persons`` and ``hands`` published so
  consumers clear.
- ``cleanup`` / ``shutdown``: publishers destroyed, pipeline closed.

Frame path: the image callback (executor thread) only counts, checks age and rate, decodes,
attaches the latest camera_info and puts the frame into a one-slot, drop-oldest
:class:`~hmr_ros.pipeline.frames.FrameSlot`. The worker takes the newest frame, applies pending
parameter changes, runs ``pipeline.process`` and publishes.

Person boxes (``detection.source``): 'internal' lets the pipeline find them (the
``detection.plugin`` detector or the built-in single-operator front-end). 'external' subscribes
``detections`` (``vision_msgs/Detection2DArray``, imported only then; configure fails when it is
not installed); the worker matches each image to the closest array by stamp
(:mod:`hmr_ros.ros.external_detections`) and an image without a match is processed with no
boxes, counted in the diagnostics. Pipeline calls (``process``,
``update_settings``, ``reset_tracking``) all happen on the worker thread while it runs, so the
pipeline needs no locking.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import rclpy
import rclpy.logging
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import SetBool, Trigger
from tf2_msgs.msg import TFMessage

from hmr_ros.msg import HandPoseArray, MeshTopology, ModelInfo, OperatorState, PersonArray
from hmr_ros.pipeline.detectors.base import DetectionError, Detections
from hmr_ros.pipeline.frame_change import change_frame
from hmr_ros.pipeline.frames import FrameSlot, ImageDecodeError, IntrinsicsError
from hmr_ros.pipeline.operator_selection import OperatorConfig, OperatorSelector
from hmr_ros.pipeline.protocol import (
    Frame,
    FramePipeline,
    PipelineFactory,
    RuntimeSettings,
)
from hmr_ros.pipeline.results import FrameResult, ModelDescription
from hmr_ros.pipeline.tracking import Track, TrackState
from hmr_ros.ros import conversions, qos, side_channels, tf_frames
from hmr_ros.ros.diagnostics import (
    DiagnosticsSettings,
    Event,
    ModelFacts,
    NodeStatistics,
    diagnostic_array,
    evaluate,
)
from hmr_ros.ros.external_detections import DetectionBuffer
from hmr_ros.ros.lifecycle_guard import InvalidTransitionGuard
from hmr_ros.ros.operator_state import (
    OperatorStateTracker,
    OperatorStatus,
    operator_state_message,
    stopped_status,
)
from hmr_ros.ros.output_frame import OutputFrame, TransformUnavailableError
from hmr_ros.ros.params import (
    HmrNodeParams,
    declare_node_parameters,
    flatten_parameters,
    parameter_entries,
    pipeline_options,
    replace_parameters,
    runtime_settings,
)

NODE_NAME = 'hmr_node'
LOG_THROTTLE_S = 5.0
"""Repeated warnings about the same problem are logged at most this often."""
QOS_HINT_THROTTLE_S = 10.0
QOS_RECHECK_PERIOD_S = 0.5
"""Under input.qos auto, how often the image publishers' reliability is checked."""
DELIVERY_WARN_FRACTION = 0.8
"""Warn when fewer than this share of the camera's frames arrive (estimated from stamps)."""
WORKER_POLL_S = 0.1
"""The worker wakes this often without frames, to apply parameter changes and to stop."""
WORKER_JOIN_S = 10.0
DIAGNOSTICS_PERIOD_S = 1.0
TF_TIME_JUMP_NS = 1_000_000_000
"""An image stamp this much older than the last broadcast means time jumped back."""
NANOSECONDS_PER_MILLISECOND = 1e6
NANOSECONDS_PER_SECOND = 1_000_000_000
VISION_MSGS_MISSING = (
    "detection.source is 'external' but vision_msgs is not installed; install "
    "ros-<distro>-vision-msgs or use 'internal'"
)


class _Job(NamedTuple):
    """A frame in the slot, with what the node needs to stamp its outputs."""

    frame: Frame
    stamp: Time  # the image header's stamp, copied to every output unchanged
    stamp_ns: int
    sequence: int  # frames accepted since activation; gaps in frame_index reveal drops


@dataclasses.dataclass
class _PendingControl:
    """Changes from the executor thread, applied by the worker between two frames."""

    settings: RuntimeSettings | None = None
    operator: OperatorConfig | None = None
    reset: bool = False


def _default_pipeline_factory() -> PipelineFactory:
    """``hmr_ros.pipeline.runner.build_pipeline``, imported only when the node is configured."""
    # Imported by name: the runner pulls in torch and the models, needed only from here on.
    runner = importlib.import_module('hmr_ros.pipeline.runner')
    return cast(PipelineFactory, runner.build_pipeline)


def _detection_array_type() -> Any:
    """``vision_msgs.msg.Detection2DArray`` (optional dependency, imported on demand).

    Raises:
        ImportError: vision_msgs is not installed.
    """
    module = side_channels.vision_msgs_module()
    try:
        return module.Detection2DArray
    except AttributeError as error:
        raise ImportError('vision_msgs.msg has no Detection2DArray') from error


def _hand_frame_convention(params: HmrNodeParams) -> conversions.HandFrameConvention:
    """``output.hand_frame_convention`` (validated against its choices by the dataclass)."""
    return cast(conversions.HandFrameConvention, params.output.hand_frame_convention)


def _box_tuple(box_px: np.ndarray) -> tuple[float, float, float, float]:
    x_min, y_min, x_max, y_max = (float(v) for v in np.asarray(box_px).reshape(4))
    return (x_min, y_min, x_max, y_max)


def operator_tracks(result: FrameResult) -> list[Track]:
    """The persons of a result as tracker Tracks, what OperatorSelector reads (id, state, box)."""
    return [
        Track(
            id=person.track_id,
            state=person.tracking_state,
            box_px=_box_tuple(person.box_px),
            score=float(person.confidence),
            age_frames=int(person.track_age),
            hits=int(person.track_age),
            last_seen_s=result.stamp_s,
            velocity_px_s=(0.0, 0.0, 0.0, 0.0),
            detection_index=None,
        )
        for person in result.persons
    ]


class HmrNode(InvalidTransitionGuard, LifecycleNode):
    """Real-time SMPL-X human mesh recovery as an rclpy lifecycle node (see the module docstring).

    Args:
        pipeline_factory: Builds the pipeline at configure; default
            ``hmr_ros.pipeline.runner.build_pipeline``.
        node_name: ROS node name.
        **node_kwargs: Passed to ``rclpy.lifecycle.Node`` (``context``, ``namespace``,
            ``parameter_overrides``, ...).

    Raises:
        ValueError: A parameter override is invalid (the message names it and says why).
    """

    def __init__(
        self,
        *,
        pipeline_factory: PipelineFactory | None = None,
        node_name: str = NODE_NAME,
        **node_kwargs: Any,
    ) -> None:
        super().__init__(node_name, **node_kwargs)
        self._params: HmrNodeParams = declare_node_parameters(self, HmrNodeParams)
        self._parameter_names = frozenset(entry.name for entry in parameter_entries(HmrNodeParams))
        self._factory = pipeline_factory
        self._pipeline: FramePipeline | None = None
        self._description: ModelDescription | None = None
        self._stats = NodeStatistics()
        self._state = 'unconfigured'
        self._enabled = True
        self._control_lock = threading.Lock()
        self._pending = _PendingControl()
        self._operator = OperatorSelector(self._params.operator.to_config())
        self._operator_state = OperatorStateTracker()
        self._slot: FrameSlot[_Job] | None = None
        self._worker: threading.Thread | None = None
        self._camera_info: CameraInfo | None = None
        self._detection_type: Any = None  # vision_msgs Detection2DArray with source 'external'
        self._output_frame: OutputFrame | None = None  # output.frame's TF lookup
        self._side_channels: side_channels.SideChannelPublishers | None = None
        self._side_channel_types: Any = None  # vision_msgs.msg with output.detections
        self._detections: DetectionBuffer | None = None
        self._frames_accepted = 0
        self._last_accepted_s = -math.inf
        self._last_tf_stamp_ns = -1
        self._last_frame_id = self._params.input.default_frame_id
        self._last_published: tuple[Time, str, int] | None = None  # stamp, frame, index
        self._last_qos_hint_s = -math.inf
        self._tf_serializer = tf_frames.TfSerializer()
        self._image_qos_timer: Any = None
        self._input_stamps_ns: collections.deque[int] = collections.deque(maxlen=90)
        self._last_delivery_hint_s = -math.inf
        self._last_refusal_log_s: dict[Event, float] = {}
        self._image_topic = ''
        # Not '_publishers': rclpy's Node keeps its own publishers (parameter events) under that
        # name and destroys them in destroy_node; replacing the list leaked the node.
        self._lifecycle_publishers: list[Any] = []
        self._subscriptions_active: list[Any] = []
        self._diagnostics_timer: Any = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/reset_tracking', self._on_reset_tracking)

    # ------------------------------------------------------------ public read-only state

    @property
    def params(self) -> HmrNodeParams:
        """The current parameters (a new instance after every accepted change)."""
        return self._params

    @property
    def statistics(self) -> NodeStatistics:
        """Counters since the last activation."""
        return self._stats

    @property
    def dropped_while_busy(self) -> int:
        """Frames replaced in the slot since the last activation."""
        slot = self._slot
        return slot.dropped if slot is not None else 0

    # ------------------------------------------------------------ lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Build the pipeline, create publishers and the diagnostics timer."""
        params = self._params
        logger = self.get_logger()
        try:
            options = pipeline_options(params)
        except ValueError as error:
            logger.error(f'configure failed: invalid parameters: {error}')
            return TransitionCallbackReturn.FAILURE
        if params.detection.source == 'external':
            try:
                self._detection_type = _detection_array_type()
            except ImportError as error:
                logger.error(f'configure failed: {VISION_MSGS_MISSING} ({error})')
                return TransitionCallbackReturn.FAILURE
        problem = self._configure_output_frame(params)
        if problem:
            logger.error(f'configure failed: {problem}')
            return TransitionCallbackReturn.FAILURE
        try:
            factory = self._factory or _default_pipeline_factory()
        except ImportError as error:
            logger.error(
                'configure failed: the real-time pipeline (hmr_ros.pipeline.runner.'
                f'build_pipeline) cannot be imported: {error}'
            )
            return TransitionCallbackReturn.FAILURE
        pipeline: FramePipeline | None = None
        try:
            pipeline = factory(options)
            description = pipeline.describe()
        except Exception as error:  # any failure here must become FAILURE with the reason
            model_files = ', '.join(
                f'{name}={value!r}'
                for name, value in flatten_parameters(params).items()
                if name.startswith('model.') and (name.endswith(('_checkpoint', '_dir')))
            )
            logger.error(
                f'configure failed: {type(error).__name__}: {error}\n'
                f'  model file parameters: {model_files}'
            )
            if pipeline is not None:
                self._close_pipeline(pipeline)
            return TransitionCallbackReturn.FAILURE
        self._pipeline = pipeline
        self._description = description
        self._log_effective_parameters(description)
        self._create_publishers()
        self._diagnostics_timer = self.create_timer(
            DIAGNOSTICS_PERIOD_S, self._publish_diagnostics
        )
        self._state = 'inactive'
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe, start the worker, publish the static information."""
        params = self._params
        self._stats.reset(time.monotonic())
        self._frames_accepted = 0
        self._last_accepted_s = -math.inf
        self._last_tf_stamp_ns = -1
        self._last_published = None
        self._camera_info = None
        self._input_stamps_ns.clear()
        self._slot = FrameSlot()
        self._detections = DetectionBuffer() if self._detection_type is not None else None
        try:
            self._create_subscriptions(params)
        except ValueError as error:
            self.get_logger().error(f'activate failed: {error}')
            return TransitionCallbackReturn.FAILURE
        self._worker = threading.Thread(
            target=self._run_worker, args=(self._slot,), name='hmr_worker', daemon=True
        )
        self._worker.start()
        result = super().on_activate(state)
        self._state = 'active'
        self._publish_static_information()
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop subscriptions and the worker; publish empty arrays so consumers clear."""
        self._stop_streaming()
        self._publish_stopped_operator(OperatorState.INACTIVE)
        self._publish_clearing_arrays()
        self._state = 'inactive'
        return super().on_deactivate(state)

    def _publish_clearing_arrays(self) -> None:
        """Empty persons and hands so consumers clear, as PersonArray.msg documents it.

        They repeat the last published image's header and frame_index: the stamp stays a source
        image's acquisition time and the index the count of processed frames. Nothing is sent
        when nothing was published since activation (there is nothing to clear).
        """
        last = self._last_published
        if last is None:
            return
        stamp, frame_id, frame_index = last
        header = conversions.make_header(stamp, frame_id)
        self._persons_publisher.publish(conversions.empty_person_array(header, frame_index))
        self._hands_publisher.publish(conversions.empty_hand_pose_array(header, frame_index))

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Destroy publishers and the timer, close the pipeline."""
        self._release_configuration()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release whatever the current state holds."""
        self._stop_streaming()
        self._release_configuration()
        return super().on_shutdown(state)

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release everything and return to unconfigured."""
        self.get_logger().error('error during a transition; releasing the pipeline')
        self._stop_streaming()
        self._release_configuration()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop the worker and close the pipeline even without a shutdown transition.

        rclpy's LifecycleNode (Jazzy) does not release its lifecycle state machine here, which
        keeps the rcl node alive: the node and its latched publishers stayed in the ROS graph
        after ``destroy_node``. The state machine is released too, so the node leaves the graph.
        """
        self._stop_streaming()
        self._release_configuration()
        super().destroy_node()
        state_machine = getattr(self, '_state_machine', None)
        if state_machine is not None:
            state_machine.destroy_when_not_in_use()

    # ------------------------------------------------------------ set-up helpers

    def _create_publishers(self) -> None:
        qos_options = qos.overriding_options
        self._persons_publisher = self.create_lifecycle_publisher(
            PersonArray, 'persons', qos.array_output_qos(), qos_overriding_options=qos_options()
        )
        self._hands_publisher = self.create_lifecycle_publisher(
            HandPoseArray, 'hands', qos.array_output_qos(), qos_overriding_options=qos_options()
        )
        self._wrist_publishers = {
            side: self.create_lifecycle_publisher(
                PoseStamped,
                f'{side}_hand/pose',
                qos.control_output_qos(),
                qos_overriding_options=qos_options(),
            )
            for side in ('left', 'right')
        }
        self._model_info_publisher = self.create_lifecycle_publisher(
            ModelInfo, 'model_info', qos.latched_qos(), qos_overriding_options=qos_options()
        )
        self._mesh_topology_publisher = self.create_lifecycle_publisher(
            MeshTopology, 'mesh_topology', qos.latched_qos(), qos_overriding_options=qos_options()
        )
        self._tf_publisher = self.create_lifecycle_publisher(
            TFMessage, '/tf', qos.tf_qos(), qos_overriding_options=qos_options()
        )
        self._operator_state_publisher = self.create_lifecycle_publisher(
            OperatorState,
            'operator_state',
            qos.control_output_qos(),
            qos_overriding_options=qos_options(),
        )
        # Diagnostics report the inactive state too, so this one is not a lifecycle publisher.
        from diagnostic_msgs.msg import DiagnosticArray

        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray,
            '/diagnostics',
            qos.diagnostics_qos(),
            qos_overriding_options=qos.overriding_options(),
        )
        self._side_channels = side_channels.SideChannelPublishers(
            self, self._params.output.joint_states, self._side_channel_types
        )
        self._lifecycle_publishers = [
            self._persons_publisher,
            self._hands_publisher,
            *self._wrist_publishers.values(),
            self._model_info_publisher,
            self._mesh_topology_publisher,
            self._tf_publisher,
            *self._side_channels.publishers,
            self._operator_state_publisher,
        ]

    def _configure_output_frame(self, params: HmrNodeParams) -> str:
        """TF lookup for output.frame and vision_msgs for output.detections; '' or the problem."""
        try:
            if params.output.detections:
                self._side_channel_types = side_channels.vision_msgs_module()
        except ImportError as error:
            return f'{side_channels.VISION_MSGS_FOR_DETECTIONS} ({error})'
        if params.output.frame:
            try:
                self._output_frame = OutputFrame(
                    self, params.output.frame, params.output.frame_timeout_s
                )
            except ImportError as error:
                return str(error)
        return ''

    def _in_output_frame(self, job: _Job, result: FrameResult) -> FrameResult | None:
        """The result in output.frame (None, counted and logged, when TF has no transform)."""
        if self._output_frame is None:
            return result
        try:
            rotation, translation = self._output_frame.lookup(job.frame.frame_id, job.stamp)
        except TransformUnavailableError as error:
            self._stats.record_event(Event.NO_TRANSFORM, time.monotonic(), str(error))
            self.get_logger().warning(str(error), throttle_duration_sec=LOG_THROTTLE_S)
            return None
        return change_frame(result, rotation, translation, self._output_frame.frame)

    def _create_subscriptions(self, params: HmrNodeParams) -> None:
        info_qos = qos.camera_info_qos(params.input.qos)
        image_subscription = self._subscribe_images(params)
        if params.input.qos == qos.AUTO:
            self._image_qos_timer = self.create_timer(
                QOS_RECHECK_PERIOD_S, self._recheck_image_qos
            )
        info_subscription = self.create_subscription(
            CameraInfo,
            'camera_info',
            self._on_camera_info,
            info_qos,
            qos_overriding_options=qos.overriding_options(),
        )
        self._image_topic = image_subscription.topic_name
        self._subscriptions_active = [image_subscription, info_subscription]
        if self._detection_type is not None:
            self._subscriptions_active.append(
                self.create_subscription(
                    self._detection_type,
                    'detections',
                    self._on_detections,
                    qos.detections_qos(),
                    qos_overriding_options=qos.overriding_options(),
                )
            )

    def _image_publishers_reliability(self, topic: str) -> list[QoSReliabilityPolicy]:
        return [info.qos_profile.reliability for info in self.get_publishers_info_by_topic(topic)]

    def _subscribe_images(self, params: HmrNodeParams) -> Any:
        """The image subscription; under ``input.qos: auto`` with the publishers' reliability."""
        compressed = params.input.transport == 'compressed'
        topic = 'image/compressed' if compressed else 'image'
        offered = []
        if params.input.qos == qos.AUTO:
            offered = self._image_publishers_reliability(self.resolve_topic_name(topic))
        profile = qos.image_qos(params.input.qos, offered)
        subscription = self.create_subscription(
            CompressedImage if compressed else Image,
            topic,
            self._on_compressed_image if compressed else self._on_image,
            profile,
            qos_overriding_options=qos.image_overriding_options(params.input.qos),
        )
        self._image_reliability = profile.reliability
        if params.input.qos == qos.AUTO:
            found = (
                f'{len(offered)} publisher(s) offering '
                + '/'.join(sorted({policy.name.lower() for policy in offered}))
                if offered
                else 'no publisher'
            )
            self.get_logger().info(
                f'input.qos auto: {found} on {subscription.topic_name}: image subscription '
                f'{profile.reliability.name.lower()}, keep last {profile.depth}'
            )
        return subscription

    def _recheck_image_qos(self) -> None:
        """Follow the image publishers under ``input.qos: auto`` (timer, executor thread)."""
        if not self._subscriptions_active:
            return
        offered = self._image_publishers_reliability(self._image_topic)
        # With no publisher left there is nothing to match: keep the subscription until the
        # next publisher's reliability decides (a camera restarting keeps its QoS).
        if not offered or qos.auto_image_reliability(offered) == self._image_reliability:
            return
        replaced = self._subscriptions_active[0]
        self._subscriptions_active[0] = self._subscribe_images(self._params)
        self.destroy_subscription(replaced)

    def _stop_streaming(self) -> None:
        """Destroy subscriptions, stop the worker (idempotent)."""
        for subscription in self._subscriptions_active:
            self.destroy_subscription(subscription)
        self._subscriptions_active = []
        if self._image_qos_timer is not None:
            self.destroy_timer(self._image_qos_timer)
            self._image_qos_timer = None
        slot, worker = self._slot, self._worker
        if slot is not None:
            slot.close()
        if self._detections is not None:
            self._detections.close()  # a worker waiting for boxes returns at once
        if worker is not None:
            worker.join(timeout=WORKER_JOIN_S)
            if worker.is_alive():
                self.get_logger().error(
                    f'the inference worker did not stop within {WORKER_JOIN_S:g} s '
                    '(pipeline.process is blocked); it is abandoned'
                )
        self._worker = None
        # A change that arrived while stopping applies now, with no worker left to race.
        self._apply_pending()

    def _release_configuration(self) -> None:
        """Destroy publishers and the timer, close the pipeline (idempotent)."""
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
            self.destroy_publisher(self._diagnostics_publisher)
        for publisher in self._lifecycle_publishers:
            self.destroy_lifecycle_publisher(publisher)
        self._lifecycle_publishers = []
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            self._close_pipeline(pipeline)
        self._description = None
        self._detection_type = None
        if self._output_frame is not None:
            self._output_frame.close()
        self._output_frame = None
        self._side_channels = None
        self._side_channel_types = None
        self._state = 'unconfigured'

    def _close_pipeline(self, pipeline: FramePipeline) -> None:
        try:
            pipeline.close()
        except Exception as error:  # closing must not prevent the transition
            self.get_logger().error(
                f'closing the pipeline failed: {type(error).__name__}: {error}'
            )

    def _log_effective_parameters(self, description: ModelDescription) -> None:
        lines = [
            f'  {name}: {value!r}' for name, value in flatten_parameters(self._params).items()
        ]
        self.get_logger().info('effective parameters:\n' + '\n'.join(lines))
        self.get_logger().info(
            f'model {description.model_version} (adapters: {description.adapters}) on '
            f'{description.device}, {description.backend} {description.precision}'
        )
        if description.synthetic_weights or self._params.model.use_test_assets:
            self.get_logger().warning(
                'RUNNING ON GENERATED STAND-IN WEIGHTS/BODY MODELS: every output is meaningless '
                f'({description.weights_note}); set the model.* files for real results'
            )

    def _publish_static_information(self) -> None:
        description = self._description
        if description is None:
            return
        header = conversions.make_header(
            self.get_clock().now().to_msg(), self._params.input.default_frame_id
        )
        self._model_info_publisher.publish(
            conversions.model_info_message(
                description, header, _hand_frame_convention(self._params)
            )
        )
        self._mesh_topology_publisher.publish(
            conversions.mesh_topology_message(description, header)
        )

    # ------------------------------------------------------------ parameters and services

    def _on_set_parameters(self, parameters: Sequence[Parameter]) -> SetParametersResult:
        """Validate a change as a whole, then apply it (forwarded to the pipeline if needed)."""
        changes = {p.name: p.value for p in parameters if p.name in self._parameter_names}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            new_params = replace_parameters(self._params, changes)
            new_settings = runtime_settings(new_params)
            new_operator = new_params.operator.to_config()
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        old_params, self._params = self._params, new_params
        pending = _PendingControl()
        if new_settings != runtime_settings(old_params):
            pending.settings = new_settings
        if new_operator != old_params.operator.to_config():
            pending.operator = new_operator
        if pending.settings is not None or pending.operator is not None:
            self._queue_control(pending)
        self.get_logger().info(
            'parameters changed: ' + ', '.join(f'{k}={v!r}' for k, v in sorted(changes.items()))
        )
        return SetParametersResult(successful=True)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._enabled = bool(request.data)
        if not self._enabled and self._slot is not None:
            self._slot.clear()
        if not self._enabled:
            self._publish_stopped_operator(OperatorState.INACTIVE)
        response.success = True
        response.message = 'inference enabled' if self._enabled else 'inference paused'
        self.get_logger().info(response.message)
        return response

    def _on_reset_tracking(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        if self._pipeline is None:
            response.success = False
            response.message = 'the node is not configured; nothing to reset'
            return response
        self._queue_control(_PendingControl(reset=True))
        response.success = True
        response.message = 'tracks and filters are reset before the next frame'
        return response

    def _queue_control(self, change: _PendingControl) -> None:
        with self._control_lock:
            if change.settings is not None:
                self._pending.settings = change.settings
            if change.operator is not None:
                self._pending.operator = change.operator
            self._pending.reset = self._pending.reset or change.reset
        worker = self._worker
        if worker is None or not worker.is_alive():
            self._apply_pending()

    def _apply_pending(self) -> None:
        """Apply queued changes (on the worker thread, or when no worker runs)."""
        with self._control_lock:
            pending, self._pending = self._pending, _PendingControl()
        if pending.operator is not None:
            self._operator.set_config(pending.operator)
        pipeline = self._pipeline
        if pipeline is None:
            return
        try:
            if pending.settings is not None:
                pipeline.update_settings(pending.settings)
            if pending.reset:
                pipeline.reset_tracking()
                self._operator.reset()
                self._operator_state.reset()
        except Exception as error:  # a bad setting must not kill the worker
            self.get_logger().error(
                f'applying settings to the pipeline failed: {type(error).__name__}: {error}'
            )

    # ------------------------------------------------------------ input (executor thread)

    def _on_camera_info(self, message: CameraInfo) -> None:
        self._camera_info = message

    def _on_detections(self, message: Any) -> None:
        """Keep one external detections array for the worker to match (executor thread)."""
        buffer = self._detections
        if buffer is None:
            return
        try:
            detections = conversions.detection2d_array_to_detections(
                message, self._params.detection.external_class
            )
        except DetectionError as error:
            self._refuse_detections(str(error))
            return
        buffer.add(conversions.stamp_to_nanoseconds(message.header.stamp), detections)

    def _refuse_detections(self, reason: str) -> None:
        now_s = time.monotonic()
        event = Event.INVALID_DETECTIONS
        self._stats.record_event(event, now_s, reason)
        if now_s - self._last_refusal_log_s.get(event, -math.inf) >= LOG_THROTTLE_S:
            self._last_refusal_log_s[event] = now_s
            self.get_logger().warning(f'detections array ignored: {reason}')

    def _on_image(self, message: Image) -> None:
        self._accept(message, conversions.image_to_rgb)

    def _on_compressed_image(self, message: CompressedImage) -> None:
        self._accept(message, conversions.compressed_image_to_rgb)

    def _refuse(self, event: Event, now_s: float, reason: str) -> None:
        """Count a refused image; log each kind of refusal at most every LOG_THROTTLE_S."""
        self._stats.record_event(event, now_s, reason)
        if now_s - self._last_refusal_log_s.get(event, -math.inf) >= LOG_THROTTLE_S:
            self._last_refusal_log_s[event] = now_s
            self.get_logger().warning(f'image refused ({event.value}): {reason}')

    def _stamped_in_the_future(self, stamp_ns: int, now_s: float) -> bool:
        """Refuse (and count) an image stamped beyond input.max_future_stamp_ms ahead."""
        limit_ms = self._params.input.max_future_stamp_ms
        ahead_ms = (stamp_ns - self.get_clock().now().nanoseconds) / NANOSECONDS_PER_MILLISECOND
        if limit_ms <= 0.0 or ahead_ms <= limit_ms:
            return False
        self._refuse(
            Event.FUTURE_STAMP,
            now_s,
            f'image stamped {ahead_ms:.0f} ms ahead of the ROS clock, above '
            f'input.max_future_stamp_ms {limit_ms:g}; synchronise the camera and robot clocks '
            '(use_sim_time with bags)',
        )
        return True

    def _accept(
        self, message: Image | CompressedImage, decode: Callable[[Any], np.ndarray]
    ) -> None:
        """Check, convert and hand one image to the worker; never runs the model."""
        now_s = time.monotonic()
        self._stats.record_input(now_s)
        self._input_stamps_ns.append(conversions.stamp_to_nanoseconds(message.header.stamp))
        slot = self._slot
        if not self._enabled or slot is None:
            return
        params = self._params.input
        if params.max_rate_hz > 0.0 and now_s - self._last_accepted_s < 1.0 / params.max_rate_hz:
            self._stats.record_event(Event.SKIPPED_RATE, now_s)
            return
        stamp_ns = conversions.stamp_to_nanoseconds(message.header.stamp)
        if self._stamped_in_the_future(stamp_ns, now_s):
            return
        if params.max_input_age_ms > 0.0:
            age_ms = (self.get_clock().now().nanoseconds - stamp_ns) / NANOSECONDS_PER_MILLISECOND
            if age_ms > params.max_input_age_ms:
                self._stats.record_event(
                    Event.SKIPPED_STALE,
                    now_s,
                    f'image {age_ms:.0f} ms old, above input.max_input_age_ms '
                    f'{params.max_input_age_ms:g}',
                )
                self.get_logger().warning(
                    f'skipping stale images ({age_ms:.0f} ms old > input.max_input_age_ms = '
                    f'{params.max_input_age_ms:g}); check clocks (use_sim_time with bags) or '
                    'raise the limit',
                    throttle_duration_sec=LOG_THROTTLE_S,
                )
                return
        info = self._camera_info
        if info is None:
            self._refuse(
                Event.MISSING_CAMERA_INFO,
                now_s,
                'no camera_info received yet; remap camera_info to the sibling of the image '
                'topic (intrinsics are never guessed)',
            )
            return
        try:
            image_rgb = decode(message)
        except ImageDecodeError as error:
            self._refuse(Event.DECODE_ERROR, now_s, str(error))
            return
        height, width = image_rgb.shape[:2]
        try:
            intrinsics = conversions.camera_info_to_intrinsics(
                info, rectified=params.rectified, image_width=width, image_height=height
            )
        except IntrinsicsError as error:
            self._refuse(Event.INVALID_CAMERA_INFO, now_s, str(error))
            return
        frame_id = message.header.frame_id
        if not frame_id:
            frame_id = params.default_frame_id
            self.get_logger().warning(
                f'image has an empty frame_id; publishing in input.default_frame_id {frame_id!r}',
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        self._frames_accepted += 1
        frame = Frame(
            image_rgb=image_rgb,
            intrinsics=intrinsics,
            stamp_s=stamp_ns / 1e9,
            frame_id=frame_id,
            received_monotonic_s=now_s,
        )
        slot.put(_Job(frame, message.header.stamp, stamp_ns, self._frames_accepted))
        self._last_accepted_s = now_s
        # Optional pipeline method: start moving this frame to the GPU now, while the worker
        # is still busy with the previous one (pipeline.runner.PipelineRunner.prefetch).
        prefetch = getattr(self._pipeline, 'prefetch', None)
        if prefetch is not None:
            try:
                prefetch(frame)
            except Exception as error:  # the worker uploads the frame itself then
                self.get_logger().warning(
                    f'frame prefetch failed ({type(error).__name__}: {error})',
                    throttle_duration_sec=LOG_THROTTLE_S,
                )

    # ------------------------------------------------------------ worker thread

    def _run_worker(self, slot: FrameSlot[_Job]) -> None:
        while True:
            job = slot.get(timeout=WORKER_POLL_S)
            self._apply_pending()
            if job is None:
                if slot.closed:
                    return
                continue
            self._process(job)

    def _process(self, job: _Job) -> None:
        pipeline = self._pipeline
        if pipeline is None:
            return
        detections = self._external_detections(job)
        try:
            result = pipeline.process(job.frame, detections)
        except Exception as error:  # one bad frame must not stop the node
            self._stats.record_event(
                Event.PIPELINE_ERROR, time.monotonic(), f'{type(error).__name__}: {error}'
            )
            self.get_logger().error(
                f'pipeline failed on a frame: {type(error).__name__}: {error}',
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            self._publish_operator_state(
                stopped_status(OperatorState.PIPELINE_ERROR), job.stamp, job.frame.frame_id
            )
            return
        try:
            self._publish_result(job, result)
        except Exception as error:  # a conversion bug must not stop the node
            self._stats.record_event(
                Event.PUBLISH_ERROR, time.monotonic(), f'{type(error).__name__}: {error}'
            )
            self.get_logger().error(
                f'publishing a result failed: {type(error).__name__}: {error}',
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def _external_detections(self, job: _Job) -> Detections | None:
        """The job's boxes from the detections topic; None with detection.source 'internal'."""
        buffer = self._detections
        if buffer is None:
            return None
        params = self._params.detection
        detections = buffer.match(
            job.stamp_ns,
            round(params.external_slop_s * NANOSECONDS_PER_SECOND),
            params.external_wait_s,
        )
        if detections is not None:
            return detections
        self._stats.record_event(
            Event.NO_DETECTIONS,
            time.monotonic(),
            f'no detections within detection.external_slop_s {params.external_slop_s:g} s of '
            'the image stamp; processed without persons (is the detector publishing on '
            "'detections' with the image's stamp?)",
        )
        self.get_logger().warning(
            'an image had no matching detections and was processed without persons',
            throttle_duration_sec=LOG_THROTTLE_S,
        )
        return Detections.empty()

    def _publish_result(self, job: _Job, result_in_camera: FrameResult) -> None:
        result = self._in_output_frame(job, result_in_camera)
        if result is None:
            return
        params = self._params
        convention = _hand_frame_convention(params)
        min_confidence = params.safety.min_hand_confidence
        frame_id = result.frame_id
        self._last_frame_id = frame_id
        header = conversions.make_header(job.stamp, frame_id)
        processing_time_s = time.monotonic() - job.frame.received_monotonic_s
        self._last_published = (job.stamp, frame_id, job.sequence)
        persons_message, hands_message = conversions.frame_messages(
            result, header, job.sequence, processing_time_s, convention, min_confidence
        )
        self._persons_publisher.publish(persons_message)
        self._hands_publisher.publish(hands_message)
        root_depth_m = {
            person.track_id: float(np.asarray(person.root_position_m).reshape(3)[2])
            for person in result.persons
        }
        operator_id = self._operator.select(operator_tracks(result), root_depth_m)
        person_threshold = params.detection.person_threshold
        hands = conversions.operator_hands(result, operator_id, min_confidence, person_threshold)
        for side, hand in hands.items():
            self._wrist_publishers[side].publish(
                conversions.wrist_pose_stamped(hand, header, convention)
            )
        status = self._operator_state.update(
            result,
            operator_id,
            hands,
            operator_enabled=params.operator.mode != 'none',
            person_threshold=person_threshold,
        )
        self._publish_operator_state(status, job.stamp, frame_id)
        if self._side_channels is not None and self._description is not None:
            # The body channel follows the same gate as the wrists: a TRACKED operator whose
            # presence score passes detection.person_threshold.
            operator = next(
                (
                    p
                    for p in result.persons
                    if p.track_id == operator_id
                    and p.tracking_state == TrackState.TRACKED
                    and p.confidence >= person_threshold
                ),
                None,
            )
            self._side_channels.publish(
                result, header, operator, hands, self._description.joint_names, convention
            )
        if params.tf.enable:
            self._broadcast_tf(job, result, hands)
        latency_ms = (
            self.get_clock().now().nanoseconds - job.stamp_ns
        ) / NANOSECONDS_PER_MILLISECOND
        self._stats.record_output(time.monotonic(), latency_ms)

    def _publish_operator_state(self, status: OperatorStatus, stamp: Time, frame_id: str) -> None:
        self._operator_state_publisher.publish(operator_state_message(status, stamp, frame_id))

    def _publish_stopped_operator(self, reason: int) -> None:
        """Tell controllers the operator outputs stop (deactivation, ~/enable false)."""
        publisher = getattr(self, '_operator_state_publisher', None)
        if publisher is None or self._state != 'active':
            return
        self._operator_state.reset()
        status = stopped_status(reason)
        self._publish_operator_state(status, self.get_clock().now().to_msg(), self._last_frame_id)

    def _broadcast_tf(self, job: _Job, result: FrameResult, hands: dict[str, Any]) -> None:
        if self._last_tf_stamp_ns - job.stamp_ns > TF_TIME_JUMP_NS:
            # Time went back by more than a jump threshold (a bag restarted): listeners clear
            # their buffers on such jumps, so broadcasting from the new time is not a repeat.
            self.get_logger().info('image stamps jumped back in time; TF broadcast restarts')
        elif job.stamp_ns <= self._last_tf_stamp_ns:
            self.get_logger().warning(
                'image stamp is not newer than the last TF broadcast; TF is not re-sent for it '
                '(listeners would report TF_REPEATED_DATA)',
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return
        description = self._description
        if description is None:
            return
        params = self._params
        settings = tf_frames.TfSettings(
            prefix=params.tf.prefix,
            joints=params.tf.joints,
            tree=params.tf.tree,
            hand_frame_convention=_hand_frame_convention(params),
        )
        parent = result.frame_id
        # Array path and CDR bytes (tf_frames.TfSerializer); tf_message is its reference.
        frames = tf_frames.FrameArrays.concatenate(
            [
                tf_frames.person_frame_arrays(
                    result.persons, description.joint_names, parent, settings
                ),
                tf_frames.operator_frame_arrays(
                    hands,
                    parent,
                    params.tf.prefix,
                    {
                        'left': params.operator.left_wrist_frame,
                        'right': params.operator.right_wrist_frame,
                    },
                    settings.hand_frame_convention,
                ),
            ]
        )
        if frames.parents:
            self._tf_publisher.publish(self._tf_serializer.serialize(frames, job.stamp))
            self._last_tf_stamp_ns = job.stamp_ns

    # ------------------------------------------------------------ diagnostics

    def _lifecycle_state_name(self) -> str:
        if self._state == 'active' and not self._enabled:
            return 'disabled'
        return self._state

    def _publish_diagnostics(self) -> None:
        now_s = time.monotonic()
        params = self._params
        snapshot = self._stats.snapshot(now_s, self.dropped_while_busy)
        settings = DiagnosticsSettings(
            latency_warn_ms=params.diagnostics.latency_warn_ms,
            stall_s=params.diagnostics.stall_s,
            image_topic=self._image_topic or 'image',
            camera_info_topic='camera_info',
        )
        description = self._description
        facts = None
        if description is not None:
            facts = ModelFacts(
                backend=description.backend,
                device=description.device,
                precision=description.precision,
                model_version=description.model_version,
                adapters=description.adapters,
                files=tuple(description.checkpoint_files),
                synthetic_weights=description.synthetic_weights,
                weights_note=description.weights_note,
            )
        state = self._lifecycle_state_name()
        reports = evaluate(snapshot, settings, state, facts)
        hardware_id = description.device if description is not None else 'unknown'
        self._diagnostics_publisher.publish(
            diagnostic_array(
                reports, self.get_clock().now().to_msg(), self.get_name(), hardware_id
            )
        )
        if state == 'active' and snapshot.since_input_s > settings.stall_s:
            self._hint_missing_images(now_s, snapshot.elapsed_s, settings.stall_s)
        elif state == 'active':
            self._check_delivery(now_s)

    def _hint_missing_images(self, now_s: float, elapsed_s: float, stall_s: float) -> None:
        """Say why no image arrives: no publisher, or an incompatible QoS (issue #1 of users)."""
        if elapsed_s < stall_s or now_s - self._last_qos_hint_s < QOS_HINT_THROTTLE_S:
            return
        self._last_qos_hint_s = now_s
        topic = self._image_topic
        publishers = self.get_publishers_info_by_topic(topic)
        if not publishers:
            self.get_logger().warning(
                f'no image for {stall_s:g} s: nobody publishes {topic}; remap image (and '
                'camera_info) to the camera topics'
            )
            return
        hint = qos.missing_images_hint(
            self._image_reliability, [p.qos_profile.reliability for p in publishers]
        )
        self.get_logger().warning(
            f'no image for {stall_s:g} s although {len(publishers)} publisher(s) exist on '
            f'{topic}; {hint}'
        )

    def _check_delivery(self, now_s: float) -> None:
        """Warn when the camera's stamps show that many of its frames do not arrive."""
        if now_s - self._last_delivery_hint_s < QOS_HINT_THROTTLE_S:
            return
        fraction = qos.received_fraction(list(self._input_stamps_ns))
        if fraction is None or fraction >= DELIVERY_WARN_FRACTION:
            return
        self._last_delivery_hint_s = now_s
        topic = self._image_topic
        offered = self._image_publishers_reliability(topic)
        rate_hz = qos.source_rate_hz(list(self._input_stamps_ns))
        hint = qos.missing_images_hint(self._image_reliability, offered, fraction)
        self.get_logger().warning(
            f'only {100 * fraction:.0f} % of the {rate_hz:.0f} Hz camera frames on {topic} '
            f'arrive (from their stamps); {hint}'
        )


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run hmr_ros hmr_node``: build, autostart and spin."""
    rclpy.init(args=args)
    node: HmrNode | None = None
    exit_code = 0
    try:
        try:
            node = HmrNode()
        except ValueError as error:
            rclpy.logging.get_logger(NODE_NAME).fatal(f'invalid parameters: {error}')
            return 2
        if node.params.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal('autostart: configure failed (see the error above)')
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal('autostart: activate failed (see the error above)')
                return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            try:
                node.trigger_shutdown()
            except Exception:  # already finalized: nothing left to release
                pass
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return exit_code
