"""In-process tests of hmr_node: real rclpy, real DDS, a scripted pipeline instead of the model.

Each test builds the node in its own rclpy context, drives it with trigger_configure() and
trigger_activate() (as rclpy's test_lifecycle.py does) while an executor spins the node and a
peer node in a background thread; the peer publishes Image/CameraInfo and records every output.
Every wait is bounded; a test takes a few seconds at most.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

import rclpy  # noqa: E402
from _scripted_pipeline import JOINT_NAMES, ScriptedPipeline  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import (  # noqa: E402
    QoSDurabilityPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from test_conversions import quaternion_matrix  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from hmr_ros.body_models.model_files import find_smplx_file  # noqa: E402
from hmr_ros.msg import HandPose, HandPoseArray, MeshTopology, ModelInfo, PersonArray  # noqa: E402
from hmr_ros.pipeline.protocol import PipelineOptions  # noqa: E402
from hmr_ros.ros.diagnostics import Event  # noqa: E402
from hmr_ros.ros.node import HmrNode  # noqa: E402

FRAME_ID = 'test_camera_optical_frame'
WIDTH, HEIGHT = 64, 48
NAMESPACE = '/hmr_test'
RELIABLE = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=1,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
)


def sample_image() -> np.ndarray:
    """A 64x48 RGB image with distinct pixels."""
    return np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


def camera_info_message(fx: float = 60.0) -> CameraInfo:
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model='plumb_bob')
    info.header.frame_id = FRAME_ID
    info.k = [fx, 0.0, 32.0, 0.0, fx, 24.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, 32.0, 0.0, 0.0, fx, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    return info


def stamp_key(stamp: Time) -> tuple[int, int]:
    return (stamp.sec, stamp.nanosec)


class Harness:
    """The node under test, a peer node that feeds and listens, and a spinning executor."""

    def __init__(
        self,
        context: Any,
        pipeline: ScriptedPipeline | None = None,
        overrides: dict[str, Any] | None = None,
        *,
        image_reliability: QoSReliabilityPolicy = QoSReliabilityPolicy.BEST_EFFORT,
        factory: Callable[[PipelineOptions], Any] | None = None,
    ) -> None:
        self.pipeline = pipeline if pipeline is not None else ScriptedPipeline()
        self.options: PipelineOptions | None = None
        self.node = HmrNode(
            pipeline_factory=factory or self._factory,
            context=context,
            namespace=NAMESPACE,
            parameter_overrides=[
                Parameter(name, value=value) for name, value in (overrides or {}).items()
            ],
        )
        self.peer = rclpy.create_node('hmr_test_peer', context=context, namespace=NAMESPACE)
        self.lock = threading.Lock()
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        for topic, kind, qos in (
            ('persons', PersonArray, RELIABLE),
            ('hands', HandPoseArray, RELIABLE),
            ('left_hand/pose', PoseStamped, RELIABLE),
            ('right_hand/pose', PoseStamped, RELIABLE),
            ('/tf', TFMessage, RELIABLE),
            ('/diagnostics', DiagnosticArray, RELIABLE),
            ('model_info', ModelInfo, LATCHED),
            ('mesh_topology', MeshTopology, LATCHED),
        ):
            self.peer.create_subscription(kind, topic, self._recorder(topic), qos)
        image_qos = QoSProfile(depth=5, reliability=image_reliability)
        self.image_publisher = self.peer.create_publisher(Image, 'image', image_qos)
        self.compressed_publisher = self.peer.create_publisher(
            CompressedImage, 'image/compressed', image_qos
        )
        self.info_publisher = self.peer.create_publisher(CameraInfo, 'camera_info', RELIABLE)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.running = True
        self.thread.start()

    def _spin(self) -> None:
        while self.running:
            self.executor.spin_once(timeout_sec=0.02)

    def _factory(self, options: PipelineOptions) -> ScriptedPipeline:
        self.options = options
        return self.pipeline

    def _recorder(self, topic: str) -> Callable[[Any], None]:
        def record(message: Any) -> None:
            with self.lock:
                self.received[topic].append((time.monotonic(), message))

        return record

    def messages(self, topic: str) -> list[Any]:
        with self.lock:
            return [message for _, message in self.received[topic]]

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.peer.destroy_node()

    # ---------------------------------------------------------------- driving

    def start(self) -> None:
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def now(self) -> Time:
        return self.node.get_clock().now().to_msg()

    def send_camera_info(self, info: CameraInfo | None = None, timeout_s: float = 3.0) -> None:
        """Publish camera_info until the node holds exactly this one."""
        info = info or camera_info_message()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.info_publisher.publish(info)
            time.sleep(0.02)
            held = self.node._camera_info
            if held is not None and np.array_equal(held.k, info.k, equal_nan=True):
                return
        raise AssertionError('the node did not receive camera_info')

    def image_message(
        self,
        pixels: np.ndarray | None = None,
        *,
        stamp: Time | None = None,
        frame_id: str = FRAME_ID,
        encoding: str = 'rgb8',
    ) -> Image:
        pixels = sample_image() if pixels is None else pixels
        message = Image(
            height=pixels.shape[0],
            width=pixels.shape[1],
            encoding=encoding,
            step=pixels.shape[1] * 3,
            data=pixels.tobytes(),
        )
        message.header.stamp = stamp or self.now()
        message.header.frame_id = frame_id
        return message

    def publish_until(
        self, make: Callable[[], Any], done: Callable[[], bool], timeout_s: float = 4.0
    ) -> list[Any]:
        """Publish fresh messages from make() every 50 ms until done(); returns those sent."""
        sent = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = make()
            publisher = (
                self.compressed_publisher
                if isinstance(message, CompressedImage)
                else self.image_publisher
            )
            publisher.publish(message)
            sent.append(message)
            if wait_for(done, 0.05):
                return sent
        raise AssertionError(f'condition not met after publishing {len(sent)} messages')

    def first_output(self, timeout_s: float = 4.0) -> Time:
        """Publish images until persons for one of them arrive; returns that image's stamp."""
        sent = self.publish_until(self.image_message, lambda: bool(self.messages('persons')))
        stamps = {stamp_key(m.header.stamp) for m in sent}
        stamp = self.messages('persons')[0].header.stamp
        assert stamp_key(stamp) in stamps
        return stamp

    def with_stamp(self, topic: str, stamp: Time) -> list[Any]:
        if topic == '/tf':
            return [
                m
                for m in self.messages(topic)
                if m.transforms and m.transforms[0].header.stamp == stamp
            ]
        return [m for m in self.messages(topic) if m.header.stamp == stamp]


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Polls condition until true or timeout_s (generous: CI runs on 2 loaded cores)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def harness_factory(rclpy_context):
    harnesses: list[Harness] = []

    def make(*args: Any, **kwargs: Any) -> Harness:
        harness = Harness(rclpy_context, *args, **kwargs)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.close()


def transform_table(message: TFMessage) -> dict[str, Any]:
    return {t.child_frame_id: t for t in message.transforms}


def to_matrix(transform: Any) -> tuple[np.ndarray, np.ndarray]:
    t, q = transform.transform.translation, transform.transform.rotation
    return np.array([t.x, t.y, t.z]), quaternion_matrix([q.x, q.y, q.z, q.w])


# ---------------------------------------------------------------- image in, everything out


def test_image_in_gives_consistent_persons_hands_poses_and_tf(harness_factory) -> None:
    h = harness_factory()
    h.start()
    h.send_camera_info()
    stamp = h.first_output()
    assert wait_for(lambda: h.with_stamp('/tf', stamp) and h.with_stamp('left_hand/pose', stamp))

    # The pipeline got the published image, intrinsics and stamp.
    stamp_s = stamp.sec + stamp.nanosec / 1e9  # float seconds: compare to well below 1 ms
    frame = next(f for f in h.pipeline.frames if abs(f.stamp_s - stamp_s) < 1e-6)
    np.testing.assert_array_equal(frame.image_rgb, sample_image())
    assert (frame.intrinsics.fx, frame.intrinsics.cx) == (60.0, 32.0)
    assert frame.frame_id == FRAME_ID
    result = next(r for r in h.pipeline.results if r.stamp_s == frame.stamp_s)

    [persons] = h.with_stamp('persons', stamp)
    assert persons.header.frame_id == FRAME_ID
    assert [p.id for p in persons.persons] == ['7', '8']
    operator = persons.persons[0]
    np.testing.assert_allclose(
        np.asarray(operator.joints).reshape(-1, 3), result.persons[0].joints_m, atol=1e-6
    )
    [hands] = h.with_stamp('hands', stamp)
    assert [(hand.person_id, hand.side) for hand in hands.hands][:2] == [
        ('7', HandPose.LEFT),
        ('7', HandPose.RIGHT),
    ]
    [left_pose] = h.with_stamp('left_hand/pose', stamp)
    assert left_pose.header.frame_id == FRAME_ID
    assert left_pose.pose == hands.hands[0].wrist_pose

    # TF: body_7 under the camera frame, joints under body_7, operator aliases under the camera;
    # composing body_7 and l_wrist_7 gives the wrist joint published in persons.
    [tf] = h.with_stamp('/tf', stamp)
    table = transform_table(tf)
    assert table['body_7'].header.frame_id == FRAME_ID
    assert table['l_wrist_7'].header.frame_id == 'body_7'
    assert 'body_8' not in table  # TENTATIVE persons get no frames
    body_t, body_r = to_matrix(table['body_7'])
    wrist_t, _ = to_matrix(table['l_wrist_7'])
    wrist_index = JOINT_NAMES.index('left_wrist')
    np.testing.assert_allclose(
        body_r @ wrist_t + body_t,
        np.asarray(operator.joints).reshape(-1, 3)[wrist_index],
        atol=1e-5,
    )
    alias_t, alias_r = to_matrix(table['operator_l_wrist'])
    pose = left_pose.pose
    np.testing.assert_allclose(alias_t, [pose.position.x, pose.position.y, pose.position.z])
    assert table['operator_l_wrist'].header.frame_id == FRAME_ID
    assert all(t.header.stamp == stamp for t in tf.transforms)

    # Static information, latched.
    assert wait_for(lambda: h.messages('model_info') and h.messages('mesh_topology'))
    info = h.messages('model_info')[0]
    assert list(info.joint_names) == list(JOINT_NAMES)
    assert info.hand_frame_convention == 'operator' and info.synthetic_weights
    assert list(h.messages('mesh_topology')[0].faces)[:3] == [0, 1, 2]
    assert h.options is not None and h.options.max_persons == 4


@pytest.mark.parametrize(
    'reliability', [QoSReliabilityPolicy.BEST_EFFORT, QoSReliabilityPolicy.RELIABLE]
)
def test_sensor_data_input_accepts_best_effort_and_reliable_publishers(
    harness_factory, reliability
) -> None:
    h = harness_factory(image_reliability=reliability)
    h.start()
    h.send_camera_info()
    stamp = h.first_output()
    assert h.with_stamp('persons', stamp)


def test_reliable_input_with_best_effort_camera_is_explained(harness_factory, capfd) -> None:
    """input.qos reliable cannot receive a best-effort publisher: nothing arrives, and after
    diagnostics.stall_s the node names the mismatch and the fix."""
    h = harness_factory(
        overrides={'input.qos': 'reliable', 'diagnostics.stall_s': 0.3},
        image_reliability=QoSReliabilityPolicy.BEST_EFFORT,
    )
    h.start()
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        h.image_publisher.publish(h.image_message())
        time.sleep(0.05)
    assert h.node.statistics.snapshot(time.monotonic()).received == 0
    assert (
        "offers best_effort but this node requests reliable: set input.qos to 'sensor_data'"
        in (capfd.readouterr().err)
    )


# ---------------------------------------------------------------- real time behaviour


def test_fast_input_against_a_slow_pipeline_drops_instead_of_queueing(harness_factory) -> None:
    """60 Hz images, 50 ms per frame: about 20 Hz get processed, the rest are dropped while
    busy, and each output's latency stays near one or two processing times instead of growing
    as a queue would (90 queued frames x 50 ms = 4.5 s behind by the end)."""
    h = harness_factory(ScriptedPipeline(delay_s=0.05))
    h.start()
    h.send_camera_info()
    h.first_output()
    start = len(h.messages('persons'))
    published = 0
    period = 1.0 / 60.0
    begin = time.monotonic()
    while time.monotonic() - begin < 1.5:
        h.image_publisher.publish(h.image_message())
        published += 1
        time.sleep(max(0.0, begin + published * period - time.monotonic()))
    assert wait_for(lambda: h.node.statistics.snapshot(time.monotonic()).published >= 2, 1.0)
    time.sleep(0.2)
    outputs = h.messages('persons')[start:]
    assert 10 <= len(outputs) < published * 0.75
    dropped = h.node.dropped_while_busy
    assert dropped > 0
    assert len(h.pipeline.frames) + dropped <= h.node._frames_accepted + 1
    indices = [m.frame_index for m in outputs]
    assert indices == sorted(indices) and indices[-1] - indices[0] > len(indices)  # gaps = drops
    worst_ms = h.node.statistics.snapshot(time.monotonic()).latency_max_ms
    assert worst_ms < 500.0, f'latency grew to {worst_ms:.0f} ms: frames are queueing'
    assert wait_for(
        lambda: any(
            kv.key == 'dropped while busy' and int(kv.value) > 0
            for m in h.messages('/diagnostics')
            for status in m.status
            for kv in status.values
        ),
        2.0,
    )


def test_stale_images_are_skipped_and_counted(harness_factory) -> None:
    h = harness_factory(overrides={'input.max_input_age_ms': 100.0})
    h.start()
    h.send_camera_info()
    old = h.node.get_clock().now() - rclpy.duration.Duration(seconds=1.0)
    h.publish_until(
        lambda: h.image_message(stamp=old.to_msg()),
        lambda: h.node.statistics.count(Event.SKIPPED_STALE) >= 3,
    )
    assert h.pipeline.frames == []
    h.first_output()  # fresh images still flow


def test_max_rate_limits_accepted_images(harness_factory) -> None:
    """input.max_rate_hz 5 against 60 Hz input for 1 s: about 5 accepted, the rest skipped."""
    h = harness_factory(overrides={'input.max_rate_hz': 5.0})
    h.start()
    h.send_camera_info()
    h.first_output()
    before = len(h.pipeline.frames)
    begin = time.monotonic()
    while time.monotonic() - begin < 1.0:
        h.image_publisher.publish(h.image_message())
        time.sleep(1.0 / 60.0)
    time.sleep(0.1)
    assert 3 <= len(h.pipeline.frames) - before <= 7
    assert h.node.statistics.count(Event.SKIPPED_RATE) >= 40


def test_a_repeated_image_stamp_is_not_broadcast_on_tf_again(harness_factory) -> None:
    h = harness_factory()
    h.start()
    h.send_camera_info()
    stamp = h.first_output()
    assert wait_for(lambda: h.with_stamp('/tf', stamp))
    h.publish_until(
        lambda: h.image_message(stamp=stamp), lambda: len(h.with_stamp('persons', stamp)) >= 2
    )
    time.sleep(0.1)
    assert len(h.with_stamp('/tf', stamp)) == 1


# ---------------------------------------------------------------- bad input


def test_bad_inputs_show_in_diagnostics_and_logs_while_good_frames_flow(
    harness_factory, capfd
) -> None:
    h = harness_factory()
    h.start()
    stats = h.node.statistics
    h.publish_until(h.image_message, lambda: stats.count(Event.MISSING_CAMERA_INFO) >= 1)
    h.send_camera_info()

    def fresh(message: Image) -> Callable[[], Image]:
        def make() -> Image:
            message.header.stamp = h.now()
            return message

        return make

    bad_images = [
        h.image_message(encoding='32FC1'),
        Image(height=0, width=0, encoding='rgb8', step=0, data=b''),
        Image(height=HEIGHT, width=WIDTH, encoding='rgb8', step=WIDTH, data=bytes(WIDTH * HEIGHT)),
    ]
    for expected, bad in enumerate(bad_images, start=1):
        h.publish_until(fresh(bad), lambda e=expected: stats.count(Event.DECODE_ERROR) >= e)
    nan_info = camera_info_message(fx=float('nan'))
    h.send_camera_info(nan_info)
    h.publish_until(h.image_message, lambda: stats.count(Event.INVALID_CAMERA_INFO) >= 1)
    assert h.pipeline.frames == []
    h.send_camera_info()
    h.first_output()

    def diagnostics_show_all() -> bool:
        for message in h.messages('/diagnostics'):
            status = next(s for s in message.status if s.name.endswith(': input'))
            values = {kv.key: kv.value for kv in status.values}
            if (
                int(values['decode errors']) >= 3
                and int(values['missing camera_info']) >= 1
                and int(values['invalid camera_info']) >= 1
                and status.level == b'\x01'
            ):
                return True
        return False

    assert wait_for(diagnostics_show_all, 2.5)
    log = capfd.readouterr().err
    assert "unsupported image encoding '32FC1'" in log
    assert 'no camera_info received yet' in log
    assert 'non-finite' in log


def test_pipeline_exceptions_are_counted_and_the_worker_goes_on(harness_factory, capfd) -> None:
    h = harness_factory(ScriptedPipeline(fail_on={1, 2}))
    h.start()
    h.send_camera_info()
    h.first_output()
    assert h.node.statistics.count(Event.PIPELINE_ERROR) == 2
    assert 'scripted failure on frame 1' in capfd.readouterr().err


def test_empty_frame_id_uses_the_default_and_compressed_transport(harness_factory) -> None:
    h = harness_factory(overrides={'input.transport': 'compressed'})
    h.start()
    h.send_camera_info()
    ok, png = cv2.imencode('.png', sample_image()[..., ::-1])  # lossless: exact pixels
    assert ok

    def compressed() -> CompressedImage:
        message = CompressedImage(format='png', data=png.tobytes())
        message.header.stamp = h.now()
        return message

    h.publish_until(compressed, lambda: bool(h.messages('persons')))
    assert h.messages('persons')[0].header.frame_id == 'camera_optical_frame'
    np.testing.assert_array_equal(h.pipeline.frames[0].image_rgb, sample_image())


# ---------------------------------------------------------------- parameters and services


def test_dynamic_parameters_take_effect_on_the_worker(harness_factory) -> None:
    h = harness_factory()
    h.start()
    h.send_camera_info()
    stamp = h.first_output()
    assert wait_for(lambda: h.with_stamp('/tf', stamp))

    # Smoothing knobs reach pipeline.update_settings, called on the worker thread.
    results = h.node.set_parameters(
        [
            Parameter('smoothing.body.beta', value=0.2),
            Parameter('smoothing.hands.min_cutoff_hz', value=3.0),
        ]
    )
    assert all(r.successful for r in results)
    assert wait_for(lambda: any(s.body_smoothing.beta == 0.2 for s in h.pipeline.settings))
    settings = h.pipeline.settings[-1]
    assert settings.hand_smoothing.min_cutoff_hz == 3.0
    assert ('update_settings', 'hmr_worker') in h.pipeline.calls

    # tf.enable false: persons keep flowing, TF stops.
    assert h.node.set_parameters([Parameter('tf.enable', value=False)])[0].successful
    time.sleep(0.15)  # let a frame in flight finish
    count = len(h.messages('persons'))
    h.publish_until(h.image_message, lambda: len(h.messages('persons')) >= count + 2)
    later = h.messages('persons')[-1].header.stamp
    time.sleep(0.2)
    assert not h.with_stamp('/tf', later)

    # tf.joints full: every joint frame of person 7 (64) + body + 2 operator aliases.
    assert h.node.set_parameters(
        [Parameter('tf.enable', value=True), Parameter('tf.joints', value='full')]
    )[0].successful
    h.publish_until(
        h.image_message, lambda: any(len(m.transforms) == 67 for m in h.messages('/tf'))
    )

    # Invalid changes are rejected with the reason and change nothing.
    before = h.node.params
    rejected = h.node.set_parameters([Parameter('operator.mode', value='id')])[0]
    assert not rejected.successful and 'operator.id' in rejected.reason
    assert not h.node.set_parameters([Parameter('tracking.iou_threshold', value=5.0)])[
        0
    ].successful
    assert not h.node.set_parameters([Parameter('model.device', value='cpu')])[0].successful
    assert h.node.params == before


def test_low_confidence_hands_publish_no_pose_and_no_operator_frames(harness_factory) -> None:
    h = harness_factory(ScriptedPipeline(hand_confidence=0.3))
    h.start()
    h.send_camera_info()
    stamp = h.first_output()
    assert wait_for(lambda: h.with_stamp('/tf', stamp))
    time.sleep(0.2)
    assert h.messages('left_hand/pose') == [] and h.messages('right_hand/pose') == []
    assert all(not m.hands for m in h.messages('hands'))
    table = transform_table(h.with_stamp('/tf', stamp)[0])
    assert 'l_wrist_7' in table and 'operator_l_wrist' not in table


def test_enable_and_reset_tracking_services(harness_factory) -> None:
    h = harness_factory()
    h.start()
    h.send_camera_info()
    h.first_output()
    enable = h.peer.create_client(SetBool, f'{NAMESPACE}/hmr_node/enable')
    reset = h.peer.create_client(Trigger, f'{NAMESPACE}/hmr_node/reset_tracking')
    assert enable.wait_for_service(timeout_sec=3.0) and reset.wait_for_service(timeout_sec=3.0)

    def call(client: Any, request: Any) -> Any:
        future = client.call_async(request)
        assert wait_for(future.done)
        return future.result()

    assert call(enable, SetBool.Request(data=False)).success
    time.sleep(0.15)
    processed = len(h.pipeline.frames)
    for _ in range(10):
        h.image_publisher.publish(h.image_message())
        time.sleep(0.02)
    time.sleep(0.1)
    assert len(h.pipeline.frames) == processed  # paused
    assert call(enable, SetBool.Request(data=True)).success
    h.publish_until(h.image_message, lambda: len(h.pipeline.frames) > processed)

    response = call(reset, Trigger.Request())
    assert response.success
    assert wait_for(lambda: h.pipeline.resets == 1)
    assert ('reset_tracking', 'hmr_worker') in h.pipeline.calls


# ---------------------------------------------------------------- lifecycle


def test_deactivate_publishes_empty_arrays_and_cleanup_closes(harness_factory) -> None:
    h = harness_factory()
    h.start()
    h.send_camera_info()
    h.first_output()
    assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert wait_for(
        lambda: h.messages('persons')[-1].persons == [] and h.messages('hands')[-1].hands == []
    )
    assert h.messages('persons')[-1].header.frame_id == FRAME_ID
    assert not h.pipeline.closed
    processed = len(h.pipeline.frames)
    for _ in range(5):
        h.image_publisher.publish(h.image_message())
        time.sleep(0.02)
    assert len(h.pipeline.frames) == processed
    assert h.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert h.pipeline.closed
    # configure again builds a new pipeline from the factory; shutdown from active closes it
    h.pipeline = ScriptedPipeline()
    h.start()
    assert h.node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
    assert h.pipeline.closed


def test_configure_fails_naming_the_parameter_and_the_missing_file(
    harness_factory, tmp_path, capfd
) -> None:
    """A factory that looks for the body model in model.body_model_dir (empty folder): the
    transition fails and the log names the file and the parameter to set."""

    def factory(options: PipelineOptions) -> Any:
        find_smplx_file(options.model.body_model_dir)
        raise AssertionError('unreachable')

    h = harness_factory(overrides={'model.body_model_dir': str(tmp_path)}, factory=factory)
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert 'configure failed: BodyModelFileNotFoundError' in log
    assert 'SMPLX_NEUTRAL.npz' in log
    assert f"model.body_model_dir='{tmp_path}'" in log
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE  # still unconfigured


def test_external_detections_without_vision_msgs_fail_configure(
    harness_factory, capfd, monkeypatch
) -> None:
    """Where vision_msgs is missing (the import system refuses it here), configure fails with an
    install hint before loading the models."""
    monkeypatch.setitem(sys.modules, 'vision_msgs', None)
    monkeypatch.setitem(sys.modules, 'vision_msgs.msg', None)
    h = harness_factory(overrides={'detection.source': 'external'})
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert (
        "detection.source is 'external' but vision_msgs is not installed; install "
        "ros-<distro>-vision-msgs or use 'internal'"
    ) in log
    assert h.options is None, 'fails before loading the models'


def test_external_detections_reach_the_pipeline_with_their_image(harness_factory) -> None:
    """A Detection2DArray stamped like an image (vision_msgs Humble+ layout: bbox.center.position,
    results[].hypothesis) arrives as that image's person box: centre (100, 80), size 40 x 60
    is the box (80, 50, 120, 110)."""
    vision_msgs = pytest.importorskip('vision_msgs.msg', reason='vision_msgs not built')
    h = harness_factory(overrides={'detection.source': 'external'})
    publisher = h.peer.create_publisher(vision_msgs.Detection2DArray, 'detections', RELIABLE)
    h.start()
    h.send_camera_info()

    def image_with_boxes() -> Image:
        image = h.image_message()
        array = vision_msgs.Detection2DArray(header=image.header)
        detection = vision_msgs.Detection2D(header=image.header)
        detection.bbox.center.position.x, detection.bbox.center.position.y = 100.0, 80.0
        detection.bbox.size_x, detection.bbox.size_y = 40.0, 60.0
        hypothesis = vision_msgs.ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = 'person', 0.8
        detection.results.append(hypothesis)
        array.detections.append(detection)
        publisher.publish(array)
        return image

    h.publish_until(image_with_boxes, lambda: any(d is not None for d in h.pipeline.detections))
    received = next(d for d in h.pipeline.detections if d is not None)
    np.testing.assert_allclose(received.boxes_px, [[80.0, 50.0, 120.0, 110.0]])
    np.testing.assert_allclose(received.scores, [0.8])


def test_internal_source_passes_no_boxes_to_the_pipeline(harness_factory) -> None:
    h = harness_factory()
    h.start()
    h.send_camera_info()
    h.first_output()
    assert h.pipeline.detections and all(d is None for d in h.pipeline.detections)


def test_configure_fails_clearly_without_the_runner(harness_factory, monkeypatch, capfd) -> None:
    monkeypatch.setitem(sys.modules, 'hmr_ros.pipeline.runner', None)
    h = harness_factory()
    h.node._factory = None  # the production default: import hmr_ros.pipeline.runner
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert 'hmr_ros.pipeline.runner' in capfd.readouterr().err


def test_executable_autostarts_and_exits_when_configure_fails(tmp_path, ros_domain_id) -> None:
    """`ros2 run hmr_ros hmr_node` self-configures (autostart) and, with no model files, exits
    with status 1 after logging why; an invalid parameter exits with status 2."""
    repo = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ,
        ROS_DOMAIN_ID=str(ros_domain_id),
        PYTHONPATH=os.pathsep.join([str(repo), os.environ.get('PYTHONPATH', '')]),
    )
    command = [sys.executable, str(repo / 'scripts' / 'hmr_node'), '--ros-args', '-p']
    failed = subprocess.run(
        [*command, f'model.body_model_dir:={tmp_path}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1, failed.stderr
    assert 'configure failed' in failed.stderr
    invalid = subprocess.run(
        [*command, 'tf.joints:=everything'], env=env, capture_output=True, text=True, timeout=120
    )
    assert invalid.returncode == 2, invalid.stderr
    assert "tf.joints 'everything' is not valid" in invalid.stderr
