"""``hmr_demo``: the live launch's node set, recorded and measured, with a camera stand-in.

``ros2 launch`` (and rosbag2) are not installable everywhere the package runs (the PyPI ROS
wheels lack them), so this runs what ``launch/live.launch.py`` starts on a file instead of a
camera:

- :class:`~hmr_ros.ros.image_source.ImageSourceNode` in ``/camera/color`` publishing
  ``image_raw`` and ``camera_info`` (an image with slow synthetic pan/zoom, or a video; assumed
  intrinsics, see that module). By default it runs in **its own process**, as a camera driver
  does, so the images cross the DDS middleware and the figures are the ones a user with a real
  driver sees (``input.qos`` choice, large-image delivery: docs/dds-large-images.md);
  ``--camera-in-process`` runs it in the demo's process instead;
- :class:`~hmr_ros.ros.node.HmrNode` in ``/hmr``, remapped to the camera topics as the launch
  file does, configured and activated here (its ``autostart``);
- :class:`~hmr_ros.ros.visualization_node.HmrVisualizationNode` in ``/hmr``;
- a ``hmr_demo`` node that records ``persons``, ``hands``, ``/tf``, ``model_info``,
  ``mesh_topology``, ``/diagnostics``, the operator wrist poses and ``markers/skeleton`` to a
  rosbag2 bag directory (:class:`~hmr_ros.ros.recording.RecordingSubscriber`; ``ros2 bag info``
  and ``ros2 bag play`` open it; a previous run's bag in the output folder is replaced)
  and measures every ``persons`` message as it arrives.

The demo's nodes spin in one ``MultiThreadedExecutor``; inference runs on hmr_node's own worker
thread. After ``duration_s`` the source stops (the camera process gets SIGINT), the last frame
finishes, hmr_node deactivates (its empty arrays are recorded too) and a summary is written to
JSON and logged: input and output rates,
latency p50/p95/max of ``persons`` receipt time minus image stamp over every output (publish time
plus local delivery; hmr_node's own publish-minus-stamp percentiles over its last statistics
window are reported beside them), and every kind of dropped frame.

Without model files it runs on ``model.use_test_assets`` (tiny random networks, generated body
model) and says so loudly; files given (``whole_body_checkpoint``, ``hand_checkpoint``,
``body_model_dir``) are loaded as in the live node. Random or stand-in weights give
meaningless poses: the demo shows the plumbing, rates and latency, never accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.utilities import remove_ros_args
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from hmr_ros.msg import HandPoseArray, MeshTopology, ModelInfo, PersonArray
from hmr_ros.ros import qos
from hmr_ros.ros.conversions import stamp_to_nanoseconds
from hmr_ros.ros.diagnostics import DEFAULT_WINDOW_S, Event
from hmr_ros.ros.image_source import DEFAULT_FRAME_ID, ImageSourceNode
from hmr_ros.ros.image_source import REPORT_ENV as CAMERA_REPORT_ENV
from hmr_ros.ros.node import HmrNode
from hmr_ros.ros.recording import RecordingSubscriber
from hmr_ros.ros.visualization_node import HmrVisualizationNode

logger = logging.getLogger(__name__)

NAMESPACE = 'hmr'
CAMERA_NAMESPACE = '/camera/color'
RECORDING_NAME = 'hmr_demo_bag'
SUMMARY_NAME = 'hmr_demo_summary.json'
CAMERA_REPORT_NAME = 'camera_report.json'
RECORDED_TOPICS: tuple[tuple[str, type], ...] = (
    ('persons', PersonArray),
    ('hands', HandPoseArray),
    ('/tf', TFMessage),
    ('model_info', ModelInfo),
    ('mesh_topology', MeshTopology),
    ('/diagnostics', DiagnosticArray),
    ('left_hand/pose', PoseStamped),
    ('right_hand/pose', PoseStamped),
    ('markers/skeleton', MarkerArray),
    (f'{CAMERA_NAMESPACE}/camera_info', CameraInfo),
)
"""Topics recorded (relative ones in the ``hmr`` namespace). camera_info shares each image's
header, so the recording shows which image stamps were published (images are not recorded)."""
EXECUTOR_THREADS = 4
GIL_SWITCH_INTERVAL_S = 0.0005
"""Python's thread switch interval while the demo runs (default 5 ms). The inference worker
releases the GIL in every torch operation and must get it back after each; rclpy's (Jazzy)
MultiThreadedExecutor can spin in Python while callbacks wait in its thread pool (rclpy issues
#1223, #1452), and at 5 ms per hand-back a few hundred operations took seconds. With 0.5 ms the
demo ran at its normal rate in every trial on a 2-core machine."""
DDS_PROFILE_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
"""Fast DDS 2.x reads its XML profile from this variable (Jazzy's rmw_fastrtps)."""
CAMERA_START_MAX_S = 30.0
"""The camera process starts Python, rclpy and its reader within this."""
CAMERA_STOP_MAX_S = 5.0
SETTLE_POLL_S = 0.05
SETTLE_MAX_S = 5.0
"""After the source stops, wait at most this long for the frame in progress."""
DELIVERY_WAIT_S = 0.3
"""Time for a published message (the last result, the deactivation's empty arrays, the marker
clearing) to reach the recorder."""
NANOSECONDS_PER_MILLISECOND = 1e6
NANOSECONDS_PER_SECOND = 1e9
STAND_IN_NOTE = (
    'NO MODEL FILES GIVEN: running on model.use_test_assets (tiny random networks and a generated '
    'SMPL-X model). Every pose is MEANINGLESS; this shows plumbing, rates and latency only. Give '
    '--whole-body-checkpoint, --hand-checkpoint and --body-model-dir for real results.'
)


class DemoError(RuntimeError):
    """The demo cannot run (bad arguments, hmr_node failed to configure); says what to do."""


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    Attributes:
        source: image or video file for the image source; '' = the bundled photo
            (resource/data/astronaut.jpg).
        duration_s: seconds of streaming (after hmr_node is active).
        rate_hz: image source rate; 0 = a video's own rate.
        output_dir: where the recording and the JSON summary go (created).
        whole_body_checkpoint: ``model.whole_body_checkpoint``; '' with the next two empty runs
            on ``model.use_test_assets``.
        hand_checkpoint: ``model.hand_checkpoint``.
        body_model_dir: ``model.body_model_dir``.
        hand_adapter_checkpoint: ``model.hand_adapter_checkpoint`` ('' = none).
        body_adapter_checkpoint: ``model.body_adapter_checkpoint`` ('' = none).
        device: ``model.device``.
        node_parameters: further hmr_node parameters (dotted name, value).
        frame_id: the image source's optical frame.
        camera_process: run the image source in its own process (as a camera driver), else in
            the demo's process.
        dds_profile: a Fast DDS XML profile for the demo and the camera process
            (``FASTRTPS_DEFAULT_PROFILES_FILE``; config/fastdds_large_images.xml for large
            best-effort images, docs/dds-large-images.md); '' keeps the environment's.
    """

    source: str = ''
    duration_s: float = 10.0
    rate_hz: float = 30.0
    output_dir: Path = Path('hmr_demo_output')
    whole_body_checkpoint: str = ''
    hand_checkpoint: str = ''
    body_model_dir: str = ''
    hand_adapter_checkpoint: str = ''
    body_adapter_checkpoint: str = ''
    device: str = 'auto'
    node_parameters: tuple[tuple[str, Any], ...] = ()
    frame_id: str = DEFAULT_FRAME_ID
    camera_process: bool = True
    dds_profile: str = ''

    def __post_init__(self) -> None:
        if self.dds_profile and not Path(self.dds_profile).is_file():
            raise DemoError(
                f'--dds-profile {self.dds_profile} is not a file; give a Fast DDS XML profile '
                '(the package ships config/fastdds_large_images.xml)'
            )
        if not (math.isfinite(self.duration_s) and self.duration_s > 0.0):
            raise DemoError(
                f'duration must be a positive number of seconds, got {self.duration_s}'
            )
        if not (math.isfinite(self.rate_hz) and self.rate_hz >= 0.0):
            raise DemoError(f'rate must be >= 0 Hz (0: the video rate), got {self.rate_hz}')
        files = {
            '--whole-body-checkpoint': self.whole_body_checkpoint,
            '--hand-checkpoint': self.hand_checkpoint,
            '--body-model-dir': self.body_model_dir,
        }
        given = [name for name, value in files.items() if value]
        if given and len(given) != len(files):
            missing = ', '.join(name for name, value in files.items() if not value)
            raise DemoError(
                f'model files are partly given ({", ".join(given)}); also give {missing}, or '
                'none of them to run on random stand-ins'
            )

    @property
    def uses_test_assets(self) -> bool:
        """Whether no model files are given (then hmr_node builds random stand-ins)."""
        return not self.whole_body_checkpoint

    @property
    def recording_path(self) -> Path:
        """The bag directory."""
        return self.output_dir / RECORDING_NAME

    @property
    def summary_path(self) -> Path:
        """The JSON summary."""
        return self.output_dir / SUMMARY_NAME

    def hmr_node_parameters(self) -> dict[str, Any]:
        """hmr_node parameter overrides (model files or use_test_assets, then the extras)."""
        parameters: dict[str, Any] = {'model.device': self.device}
        if self.uses_test_assets:
            parameters['model.use_test_assets'] = True
        else:
            parameters.update(
                {
                    'model.whole_body_checkpoint': self.whole_body_checkpoint,
                    'model.hand_checkpoint': self.hand_checkpoint,
                    'model.body_model_dir': self.body_model_dir,
                    'model.hand_adapter_checkpoint': self.hand_adapter_checkpoint,
                    'model.body_adapter_checkpoint': self.body_adapter_checkpoint,
                }
            )
        parameters.update(dict(self.node_parameters))
        return parameters


class _PersonsMonitor:
    """Receipt time, stamp, frame index and person count of every persons message."""

    def __init__(self, node: Node) -> None:
        self._clock = node.get_clock()
        self._lock = threading.Lock()
        self.samples: list[tuple[int, int, int, int]] = []
        self.model_info: ModelInfo | None = None
        profile = QoSProfile(
            history=QoSHistoryPolicy.KEEP_LAST,
            depth=100,
            reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.VOLATILE,
        )
        node.create_subscription(PersonArray, 'persons', self._on_persons, profile)
        node.create_subscription(ModelInfo, 'model_info', self._on_model_info, qos.latched_qos())
        # The camera publishes one camera_info with every image (reliable): their count is the
        # images published when the camera runs in another process.
        self.camera_infos = 0
        node.create_subscription(
            CameraInfo, f'{CAMERA_NAMESPACE}/camera_info', self._on_camera_info, profile
        )

    def _on_persons(self, message: PersonArray) -> None:
        receipt_ns = self._clock.now().nanoseconds
        with self._lock:
            self.samples.append(
                (
                    receipt_ns,
                    stamp_to_nanoseconds(message.header.stamp),
                    int(message.frame_index),
                    len(message.persons),
                )
            )

    def _on_model_info(self, message: ModelInfo) -> None:
        self.model_info = message

    def _on_camera_info(self, message: CameraInfo) -> None:
        with self._lock:
            self.camera_infos += 1

    def snapshot(self) -> list[tuple[int, int, int, int]]:
        with self._lock:
            return list(self.samples)


def _percentiles_ms(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {'p50': None, 'p95': None, 'max': None, 'mean': None}
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95 = np.percentile(values, (50.0, 95.0))
    return {
        'p50': round(float(p50), 2),
        'p95': round(float(p95), 2),
        'max': round(float(values.max()), 2),
        'mean': round(float(values.mean()), 2),
    }


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0.0 else 0.0


def recording_contents(path: Path) -> dict[str, Any]:
    """What a bag holds (read with rosbags): per topic its type and count, the span and size."""
    with Reader(path) as reader:
        topics = {
            connection.topic: {'type': connection.msgtype, 'messages': connection.msgcount}
            for connection in sorted(reader.connections, key=lambda c: c.topic)
        }
        messages, span_ns = reader.message_count, reader.duration
    return {
        'path': str(path),
        'bytes': sum(file.stat().st_size for file in path.iterdir() if file.is_file()),
        'messages': int(messages),
        'span_s': round(span_ns / NANOSECONDS_PER_SECOND, 3) if messages else 0.0,
        'topics': topics,
    }


def remove_previous_bag(path: Path) -> None:
    """Delete the bag directory a previous run left, so that this run can write it.

    Only a bag is deleted (metadata.yaml and MCAP files, nothing else); anything else at that
    path is an error, never removed.
    """
    if not path.exists():
        return
    files = list(path.iterdir()) if path.is_dir() else []
    is_bag = (path / 'metadata.yaml').is_file() and all(
        file.is_file() and (file.name == 'metadata.yaml' or file.suffix == '.mcap')
        for file in files
    )
    if not is_bag:
        raise DemoError(f'{path} exists and is not a bag this demo wrote; move it away')
    for file in files:
        file.unlink()
    path.rmdir()


def run_demo(config: DemoConfig, ros_args: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the node set for ``config.duration_s`` and return the summary (also written to JSON).

    Args:
        config: what to run.
        ros_args: command-line arguments for rclpy (``--ros-args ...``); the domain comes from
            ``ROS_DOMAIN_ID``.

    Returns:
        The summary written to ``config.summary_path``.

    Raises:
        DemoError: hmr_node failed to configure or activate (its log says why), or a node's
            parameters are invalid.
    """
    config.output_dir.mkdir(parents=True, exist_ok=True)
    if config.uses_test_assets:
        logger.warning(STAND_IN_NOTE)
    previous_profile = os.environ.get(DDS_PROFILE_VARIABLE)
    if config.dds_profile:
        # Read by Fast DDS when rclpy.init creates the participant; the camera process
        # inherits it.
        os.environ[DDS_PROFILE_VARIABLE] = str(Path(config.dds_profile).resolve())
    context = Context()
    rclpy.init(args=list(ros_args) if ros_args else None, context=context)
    switch_interval_s = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        return _run(config, context)
    finally:
        sys.setswitchinterval(switch_interval_s)
        rclpy.shutdown(context=context)
        if config.dds_profile:
            if previous_profile is None:
                os.environ.pop(DDS_PROFILE_VARIABLE, None)
            else:
                os.environ[DDS_PROFILE_VARIABLE] = previous_profile


def _remaps(topics: dict[str, str]) -> list[str]:
    arguments = ['--ros-args']
    for name, target in topics.items():
        arguments += ['-r', f'{name}:={target}']
    return arguments


def _run(config: DemoConfig, context: Context) -> dict[str, Any]:
    camera = {
        'image': f'{CAMERA_NAMESPACE}/image_raw',
        'image/compressed': f'{CAMERA_NAMESPACE}/image_raw/compressed',
        'camera_info': f'{CAMERA_NAMESPACE}/camera_info',
    }
    overrides = config.hmr_node_parameters()
    try:
        hmr = HmrNode(
            context=context,
            namespace=NAMESPACE,
            cli_args=_remaps(camera),
            parameter_overrides=[
                Parameter(name, value=value) for name, value in overrides.items()
            ],
        )
    except ValueError as error:
        raise DemoError(f'invalid hmr_node parameters: {error}') from error
    nodes: list[Node] = [hmr]
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS, context=context)
    spinning = threading.Event()
    spinner: threading.Thread | None = None
    recorder: RecordingSubscriber | None = None
    source: ImageSourceNode | None = None
    camera_process: subprocess.Popen[bytes] | None = None
    try:
        configure_started = time.monotonic()
        if hmr.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise DemoError('hmr_node failed to configure; its error above names the cause')
        configure_s = time.monotonic() - configure_started
        viz = HmrVisualizationNode(context=context, namespace=NAMESPACE, cli_args=_remaps(camera))
        nodes.append(viz)
        monitor_node = Node('hmr_demo', context=context, namespace=NAMESPACE)
        nodes.append(monitor_node)
        # After configure hmr_node's publishers exist, so each subscription adapts to their QoS
        # (transient-local for model_info and mesh_topology).
        remove_previous_bag(config.recording_path)
        recorder = RecordingSubscriber(monitor_node, config.recording_path, RECORDED_TOPICS)
        monitor = _PersonsMonitor(monitor_node)
        for node in nodes:
            executor.add_node(node)
        spinning.set()
        spinner = threading.Thread(
            target=_spin, args=(executor, spinning), name='hmr_demo_executor', daemon=True
        )
        spinner.start()
        if hmr.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise DemoError('hmr_node failed to activate; its error above names the cause')

        if config.camera_process:
            camera_process = _start_camera_process(config, context)
            stream_started = _wait_first_image(camera_process, monitor)
            _wait_streaming(config.duration_s, camera_process)
            stream_s = time.monotonic() - stream_started
            _stop_camera_process(camera_process)
            source_rate_hz = config.rate_hz
        else:
            source = ImageSourceNode(
                context=context,
                namespace=CAMERA_NAMESPACE,
                parameter_overrides=[
                    Parameter('source', value=config.source),
                    Parameter('rate_hz', value=float(config.rate_hz)),
                    Parameter('frame_id', value=config.frame_id),
                ],
            )
            nodes.append(source)
            stream_started = time.monotonic()
            executor.add_node(source)
            _wait_streaming(config.duration_s, source)
            executor.remove_node(source)
            stream_s = time.monotonic() - stream_started
            source_rate_hz = source.rate_hz
        _settle(hmr)
        time.sleep(DELIVERY_WAIT_S)  # the last persons message reaches the monitor
        # After settling: no timer callback in flight (in-process), every camera_info delivered.
        if source is not None:
            published = source.frames_published
        else:
            published = _camera_report(config, monitor.camera_infos)

        statistics = hmr.statistics.snapshot(time.monotonic(), hmr.dropped_while_busy)
        samples = monitor.snapshot()
        hmr.trigger_deactivate()  # publishes empty persons/hands: recorded as the end
        viz.clear()
        time.sleep(DELIVERY_WAIT_S)
        model_info = monitor.model_info
    finally:
        if camera_process is not None:
            _stop_camera_process(camera_process)
        spinning.clear()
        if spinner is not None:
            spinner.join(timeout=5.0)
        executor.shutdown(timeout_sec=1.0)
        if recorder is not None:
            recorder.close()
        try:
            hmr.trigger_shutdown()
        except Exception:  # already finalized or never configured: nothing to release
            pass
        for node in nodes:
            node.destroy_node()

    summary = _summary(
        config,
        samples=samples,
        published=published,
        stream_s=stream_s,
        configure_s=configure_s,
        statistics=statistics,
        model_info=model_info,
        source_rate_hz=source_rate_hz,
        camera_process=config.camera_process,
    )
    config.summary_path.write_text(json.dumps(summary, indent=2) + '\n')
    return summary


def _spin(executor: MultiThreadedExecutor, spinning: threading.Event) -> None:
    while spinning.is_set():
        executor.spin_once(timeout_sec=0.05)


def _start_camera_process(config: DemoConfig, context: Context) -> subprocess.Popen[bytes]:
    """``hmr_image_source`` in its own process, in the demo's ROS domain; logs to our stderr."""
    parameters = [('rate_hz', repr(float(config.rate_hz))), ('frame_id', config.frame_id)]
    if config.source:
        parameters.append(('source', config.source))
    command = [sys.executable, '-m', 'hmr_ros.ros.image_source', '--ros-args']
    command += ['-r', f'__ns:={CAMERA_NAMESPACE}']
    for name, value in parameters:
        command += ['-p', f'{name}:={value}']
    env = dict(os.environ, ROS_DOMAIN_ID=str(context.get_domain_id()))
    env[CAMERA_REPORT_ENV] = str(_camera_report_path(config))
    _camera_report_path(config).unlink(missing_ok=True)
    return subprocess.Popen(command, env=env)


def _camera_report_path(config: DemoConfig) -> Path:
    return config.output_dir / CAMERA_REPORT_NAME


def _camera_report(config: DemoConfig, camera_infos_seen: int) -> int:
    """Images the camera process published, from its own report (image_source.REPORT_ENV).

    Where the report is missing (a camera that had to be killed), the camera_info messages
    this process saw stand in.
    """
    try:
        return int(json.loads(_camera_report_path(config).read_text())['frames_published'])
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning('the camera process left no report; counting the camera_info received')
        return camera_infos_seen


def _wait_first_image(process: subprocess.Popen[bytes], monitor: _PersonsMonitor) -> float:
    """When the camera process's first image arrived (monotonic seconds).

    Raises:
        DemoError: the process ended (bad source file, parameters) or sent nothing in time.
    """
    deadline = time.monotonic() + CAMERA_START_MAX_S
    while monitor.camera_infos == 0:
        code = process.poll()
        if code is not None:
            raise DemoError(
                f'the camera process (hmr_image_source) exited with status {code} before '
                'publishing; its error above names the cause'
            )
        if time.monotonic() > deadline:
            raise DemoError(
                f'the camera process published nothing within {CAMERA_START_MAX_S:g} s'
            )
        time.sleep(SETTLE_POLL_S)
    return time.monotonic()


def _stop_camera_process(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (rclpy shuts down cleanly), then kill after CAMERA_STOP_MAX_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=CAMERA_STOP_MAX_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_streaming(duration_s: float, source: ImageSourceNode | subprocess.Popen[bytes]) -> None:
    """Sleep ``duration_s`` (Ctrl-C ends early), or until the source ended.

    The source has ended when a video without loop reached its end (in process) or the camera
    process exited.
    """
    deadline = time.monotonic() + duration_s

    def ended() -> bool:
        if isinstance(source, ImageSourceNode):
            return source.finished
        return source.poll() is not None

    try:
        while time.monotonic() < deadline and not ended():
            time.sleep(SETTLE_POLL_S)
    except KeyboardInterrupt:
        logger.warning('interrupted: stopping early and writing what was measured')


def _settle(hmr: HmrNode) -> None:
    """Wait until hmr_node has accounted for every image it received (the last one published).

    An image is accounted for once it is published, dropped while busy, or skipped or refused
    with a counted reason; at most SETTLE_MAX_S.
    """
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        snapshot = hmr.statistics.snapshot(time.monotonic())
        accounted = snapshot.published + hmr.dropped_while_busy + sum(snapshot.counts.values())
        if accounted >= snapshot.received:
            return
        time.sleep(SETTLE_POLL_S)


def _summary(
    config: DemoConfig,
    *,
    samples: list[tuple[int, int, int, int]],
    published: int,
    stream_s: float,
    configure_s: float,
    statistics: Any,
    model_info: ModelInfo | None,
    source_rate_hz: float,
    camera_process: bool,
) -> dict[str, Any]:
    latencies_ms = [
        (receipt - stamp) / NANOSECONDS_PER_MILLISECOND for receipt, stamp, _, _ in samples
    ]
    with_persons = sum(1 for *_, count in samples if count)
    counts = statistics.counts
    refused = {
        event.value: counts[event]
        for event in (Event.DECODE_ERROR, Event.MISSING_CAMERA_INFO, Event.INVALID_CAMERA_INFO)
    }
    weights: dict[str, Any] = {'use_test_assets': config.uses_test_assets}
    if model_info is not None:
        weights.update(
            {
                'synthetic': bool(model_info.synthetic_weights),
                'note': model_info.weights_note,
                'model_version': model_info.model_version,
                'adapters': model_info.adapters,
                'files': list(model_info.checkpoint_files),
                'device': model_info.device,
                'precision': model_info.precision,
            }
        )
    return {
        'source': config.source or 'resource/data/astronaut.jpg (bundled)',
        'duration_s': round(stream_s, 3),
        'configure_s': round(configure_s, 3),
        'weights': weights,
        'input': {
            'published': published,
            'rate_hz': _rate(published, stream_s),
            'requested_rate_hz': source_rate_hz,
            'received_by_hmr_node': statistics.received,
            'camera': 'separate process' if camera_process else 'in the demo process',
            'dds_profile': config.dds_profile or os.environ.get(DDS_PROFILE_VARIABLE) or None,
        },
        'output': {
            'persons_messages': len(samples),
            'rate_hz': _rate(len(samples), stream_s),
            'messages_with_persons': with_persons,
        },
        'latency_ms': {
            **_percentiles_ms(latencies_ms),
            'samples': len(latencies_ms),
            'definition': 'persons receipt time minus image stamp (publish time + local delivery)',
        },
        'hmr_node_latency_ms': {
            'p50': _rounded(statistics.latency_p50_ms),
            'p95': _rounded(statistics.latency_p95_ms),
            'max': _rounded(statistics.latency_max_ms),
            'definition': (
                "hmr_node's own statistics: publish time minus image stamp over the last "
                f'{DEFAULT_WINDOW_S:g} s of streaming (as /diagnostics reports it)'
            ),
        },
        'drops': {
            'dropped_while_busy': statistics.dropped_busy,
            'skipped_stale': counts[Event.SKIPPED_STALE],
            'skipped_by_max_rate': counts[Event.SKIPPED_RATE],
            'refused': refused,
            'pipeline_errors': counts[Event.PIPELINE_ERROR],
            'publish_errors': counts[Event.PUBLISH_ERROR],
            'not_received_by_hmr_node': max(published - statistics.received, 0),
        },
        'recording': recording_contents(config.recording_path),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as lines for a terminal."""
    weights = summary['weights']
    latency = summary['latency_ms']
    node_latency = summary['hmr_node_latency_ms']
    drops = summary['drops']
    inputs, outputs = summary['input'], summary['output']
    recording = summary['recording']

    def ms(value: float | None) -> str:
        return 'n/a' if value is None else f'{value:.1f} ms'

    lines = [
        f'hmr_demo: {summary["source"]} for {summary["duration_s"]:.1f} s '
        f'(hmr_node configured in {summary["configure_s"]:.1f} s)',
        f'  model    : {weights.get("model_version", "?")} on {weights.get("device", "?")} '
        f'{weights.get("precision", "")}, adapters {weights.get("adapters", "?")}',
    ]
    if weights.get('synthetic', True):
        lines.append(
            '  WEIGHTS  : STAND-INS, OUTPUTS ARE MEANINGLESS (ModelInfo.synthetic_weights; '
            'weights.note in the JSON says why)'
        )
    lines += [
        f'  input    : {inputs["published"]} images published ({inputs["rate_hz"]:.1f} Hz) by '
        f'the camera ({inputs.get("camera", "?")}), {inputs["received_by_hmr_node"]} received '
        'by hmr_node',
        f'  output   : {outputs["persons_messages"]} PersonArray ({outputs["rate_hz"]:.1f} Hz), '
        f'{outputs["messages_with_persons"]} with persons',
        f'  latency  : p50 {ms(latency["p50"])}, p95 {ms(latency["p95"])}, max '
        f'{ms(latency["max"])} over {latency["samples"]} outputs ({latency["definition"]})',
        f'             hmr_node itself, last {DEFAULT_WINDOW_S:g} s: p50 '
        f'{ms(node_latency["p50"])}, p95 {ms(node_latency["p95"])} (publish time minus stamp)',
        f'  drops    : {drops["dropped_while_busy"]} while busy (latest frame wins), '
        f'{drops["skipped_stale"]} stale, {sum(drops["refused"].values())} refused, '
        f'{drops["pipeline_errors"]} pipeline errors, {drops["not_received_by_hmr_node"]} never '
        'reached hmr_node',
        f'  recording: {recording["path"]} ({recording["bytes"] / 1e6:.1f} MB, '
        f'{recording.get("messages", 0)} messages over {recording.get("span_s", 0.0):.1f} s)',
    ]
    width = max((len(topic) for topic in recording['topics']), default=0)
    for topic, entry in recording['topics'].items():
        lines.append(f'    {topic:<{width}}  {entry["messages"]:>6}  {entry["type"]}')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of ``hmr_demo`` (ROS arguments after ``--ros-args``)."""
    parser = argparse.ArgumentParser(
        prog='hmr_demo',
        description='Run an image source (its own process, as a camera driver) with hmr_node '
        'and hmr_viz_node for a while, record the outputs to MCAP and report rates, latency '
        'and drops.',
    )
    parser.add_argument('--source', default='', help='image or video file (default: bundled)')
    parser.add_argument('--duration', type=float, default=10.0, help='seconds (default 10)')
    parser.add_argument(
        '--rate', type=float, default=30.0, help='images per second; 0: video rate (default 30)'
    )
    parser.add_argument(
        '--output-dir',
        type=Path,
        default=Path('hmr_demo_output'),
        help=f'where {RECORDING_NAME} and {SUMMARY_NAME} go (default ./hmr_demo_output)',
    )
    parser.add_argument('--whole-body-checkpoint', default='', help='SMPLer-X file')
    parser.add_argument('--hand-checkpoint', default='', help='HaMeR file')
    parser.add_argument('--body-model-dir', default='', help='folder with SMPLX_NEUTRAL.npz')
    parser.add_argument('--hand-adapter-checkpoint', default='', help='hand adapter file')
    parser.add_argument('--body-adapter-checkpoint', default='', help='body adapter file')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument(
        '--camera-in-process',
        action='store_true',
        help='run the image source in the demo process (no DDS transport for the images)',
    )
    parser.add_argument(
        '--dds-profile',
        default='',
        help='Fast DDS XML profile for the demo and the camera process, e.g. '
        'config/fastdds_large_images.xml (docs/dds-large-images.md)',
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hmr_demo``: run, then log the summary to stdout."""
    argv = list(sys.argv if argv is None else argv)
    args = build_parser().parse_args(remove_ros_args(argv)[1:])
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter('[hmr_demo] %(message)s'))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        config = DemoConfig(
            source=args.source,
            duration_s=args.duration,
            rate_hz=args.rate,
            output_dir=args.output_dir,
            whole_body_checkpoint=args.whole_body_checkpoint,
            hand_checkpoint=args.hand_checkpoint,
            body_model_dir=args.body_model_dir,
            hand_adapter_checkpoint=args.hand_adapter_checkpoint,
            body_adapter_checkpoint=args.body_adapter_checkpoint,
            device=args.device,
            camera_process=not args.camera_in_process,
            dds_profile=args.dds_profile,
        )
        summary = run_demo(config, ros_args=argv)
        logger.info(format_summary(summary))
        logger.info(f'summary: {config.summary_path}')
        return 0
    except DemoError as error:
        logger.error(f'error: {error}')
        return 1
    except ValueError as error:  # invalid image source parameters or file
        logger.error(f'error: {error}')
        return 2
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
