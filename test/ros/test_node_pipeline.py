"""hmr_node with the REAL pipeline (hmr_ros.pipeline.runner.build_pipeline) on CPU.

``model.use_test_assets`` builds the tiny registered variants with seeded random weights and a
generated SMPL-X file (about a second), so the numbers are meaningless but every stage runs:
detection front-end, dual path, tracking, smoothing, conversion, TF. The harness of
test_node.py (real rclpy and DDS, a peer node publishing and recording) drives the node; the
input is the bundled photo resized to 256x256. Bounded waits, a few seconds per test.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

import rclpy  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from test_node import (  # noqa: E402
    FRAME_ID,
    Harness,
    stamp_key,
    to_matrix,
    transform_table,
    wait_for,
)

from hmr_ros.body_models.joint_names import SMPLX_JOINT_NAMES  # noqa: E402
from hmr_ros.msg import HandPose, Person  # noqa: E402
from hmr_ros.pipeline.detectors.base import Detections  # noqa: E402
from hmr_ros.pipeline.protocol import Frame, FramePipeline, PipelineOptions  # noqa: E402
from hmr_ros.pipeline.results import FrameResult, ModelDescription  # noqa: E402
from hmr_ros.pipeline.runner import build_pipeline  # noqa: E402
from hmr_ros.ros import tf_frames  # noqa: E402
from hmr_ros.ros.conversions import stamp_to_nanoseconds  # noqa: E402
from hmr_ros.ros.node import HmrNode  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SIDE = 256
FOCAL_PX = 220.0
SMPLX_NUM_FACES = 20908
SMPLX_NUM_VERTICES = 10475
REAL_PIPELINE = {
    'model.use_test_assets': True,
    'model.device': 'cpu',
    # The random hand expert reports confidence 0: accept every hand so hands, wrist poses
    # and operator frames are produced and can be compared.
    'safety.min_hand_confidence': 0.0,
    # Random weights score presence near 0 (flat heatmaps): accept the front-end's person.
    'detection.person_threshold': 0.0,
}
# What the test expects for tf.joints minimal, written out here rather than taken from
# tf_frames: the REP-120 frame name of each published joint name in ModelInfo.joint_names.
MINIMAL_FRAMES = {
    'head': 'head',
    'l_wrist': 'left_wrist',
    'r_wrist': 'right_wrist',
    **{
        f'{side[0]}_{finger}_tip': f'{side}_{finger}'
        for side in ('left', 'right')
        for finger in ('thumb', 'index', 'middle', 'ring', 'pinky')
    },
}


def astronaut() -> np.ndarray:
    """The bundled photo (a real person), 256x256 RGB."""
    bgr = cv2.imread(str(REPO / 'resource' / 'data' / 'astronaut.jpg'))
    return np.ascontiguousarray(
        cv2.resize(bgr, (SIDE, SIDE), interpolation=cv2.INTER_AREA)[..., ::-1]
    )


def camera_info() -> CameraInfo:
    info = CameraInfo(width=SIDE, height=SIDE, distortion_model='plumb_bob')
    info.header.frame_id = FRAME_ID
    c = (SIDE - 1) / 2.0
    info.k = [FOCAL_PX, 0.0, c, 0.0, FOCAL_PX, c, 0.0, 0.0, 1.0]
    info.p = [FOCAL_PX, 0.0, c, 0.0, 0.0, FOCAL_PX, c, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    return info


class TimedPipeline:
    """The real runner, forwarding every call; records how long each ``process`` took."""

    def __init__(self, runner: FramePipeline) -> None:
        self.runner = runner
        self.process_s: list[float] = []
        self.stamps_s: list[float] = []
        self._lock = threading.Lock()

    def describe(self) -> ModelDescription:
        return self.runner.describe()

    def process(self, frame: Frame, detections: Detections | None = None) -> FrameResult:
        start = time.perf_counter()
        result = self.runner.process(frame, detections)
        with self._lock:
            self.process_s.append(time.perf_counter() - start)
            self.stamps_s.append(frame.stamp_s)
        return result

    def update_settings(self, settings: Any) -> None:
        self.runner.update_settings(settings)

    def reset_tracking(self) -> None:
        self.runner.reset_tracking()

    def close(self) -> None:
        self.runner.close()


@pytest.fixture
def real_harness(rclpy_context):
    """A started Harness whose pipeline factory is build_pipeline (wrapped by TimedPipeline)."""
    harnesses: list[Harness] = []
    pipelines: list[TimedPipeline] = []

    def make(**overrides: Any) -> tuple[Harness, list[TimedPipeline]]:
        def factory(options: PipelineOptions) -> TimedPipeline:
            pipeline = TimedPipeline(build_pipeline(options))
            pipelines.append(pipeline)
            return pipeline

        harness = Harness(rclpy_context, overrides={**REAL_PIPELINE, **overrides}, factory=factory)
        harnesses.append(harness)
        harness.start()
        harness.send_camera_info(camera_info(), timeout_s=5.0)
        return harness, pipelines

    yield make
    for harness in harnesses:
        harness.close()


def joints_of(person: Person) -> np.ndarray:
    return np.asarray(person.joints, dtype=np.float64).reshape(-1, 3)


def position(pose: Any) -> np.ndarray:
    return np.array([pose.position.x, pose.position.y, pose.position.z])


def test_real_pipeline_outputs_agree_with_each_other(real_harness) -> None:
    """One image stamp S, TRACKED person p (tracking.min_hits 2, so from the second frame):

    - persons, hands, the wrist poses and every TF transform carry S and the image frame;
    - body_<p> sits at the pelvis (root_pose), joint frames hang from it, and composing
      body_<p> with each minimal frame gives the joint of the same name in persons, read
      through ModelInfo.joint_names (e.g. l_index_tip <-> 'left_index');
    - each hand's wrist keypoint, wrist pose and the skeleton's wrist joint are one point, and
      the operator alias equals left_hand/pose;
    - ModelInfo states the stand-ins; MeshTopology holds the SMPL-X faces (20908) and
      persons carry 10475 vertices (output.publish_vertices).
    """
    h, pipelines = real_harness(**{'output.publish_vertices': True})
    image = astronaut()

    def tracked_with_tf() -> bool:
        for message in h.messages('persons'):
            if any(p.tracking_state == Person.TRACKED for p in message.persons):
                stamp = message.header.stamp
                return bool(h.with_stamp('/tf', stamp) and h.with_stamp('hands', stamp))
        return False

    sent = h.publish_until(lambda: h.image_message(image), tracked_with_tf, timeout_s=20.0)
    message = next(
        m
        for m in h.messages('persons')
        if any(p.tracking_state == Person.TRACKED for p in m.persons)
    )
    stamp = message.header.stamp
    assert stamp_key(stamp) in {stamp_key(m.header.stamp) for m in sent}
    assert message.header.frame_id == FRAME_ID
    assert wait_for(lambda: h.messages('model_info') and h.messages('mesh_topology'))
    info = h.messages('model_info')[0]
    topology = h.messages('mesh_topology')[0]
    names = list(info.joint_names)

    # The node passed this exact stamp to the real runner.
    stamp_s = stamp_to_nanoseconds(stamp) / 1e9
    assert any(abs(s - stamp_s) < 1e-6 for s in pipelines[0].stamps_s)

    person = next(p for p in message.persons if p.tracking_state == Person.TRACKED)
    joints = joints_of(person)
    assert joints.shape == (len(names), 3) and np.all(np.isfinite(joints))
    assert len(person.vertices) == 3 * SMPLX_NUM_VERTICES

    [tf] = h.with_stamp('/tf', stamp)
    assert all(t.header.stamp == stamp for t in tf.transforms)
    table = transform_table(tf)
    body = table[f'body_{person.id}']
    assert body.header.frame_id == FRAME_ID
    body_t, body_r = to_matrix(body)
    np.testing.assert_allclose(body_t, position(person.root_pose), atol=1e-5)
    np.testing.assert_allclose(body_t, joints[names.index(SMPLX_JOINT_NAMES[0])], atol=1e-5)
    for frame, joint in MINIMAL_FRAMES.items():
        assert tf_frames.joint_frame_name(joint) == frame
        transform = table[f'{frame}_{person.id}']
        assert transform.header.frame_id == f'body_{person.id}'
        t, _ = to_matrix(transform)
        np.testing.assert_allclose(
            body_r @ t + body_t, joints[names.index(joint)], atol=2e-5, err_msg=frame
        )
    assert len(tf.transforms) == 1 + len(MINIMAL_FRAMES) + 2  # body, joints, operator aliases

    [hands] = h.with_stamp('hands', stamp)
    assert hands.header.frame_id == FRAME_ID
    by_side = {hand.side: hand for hand in hands.hands if hand.person_id == person.id}
    assert set(by_side) == {HandPose.LEFT, HandPose.RIGHT}
    for side, hand, joint in (
        (HandPose.LEFT, person.left_hand, 'left_wrist'),
        (HandPose.RIGHT, person.right_hand, 'right_wrist'),
    ):
        wrist = joints[names.index(joint)]
        np.testing.assert_allclose(position(by_side[side].wrist_pose), wrist, atol=1e-5)
        np.testing.assert_allclose(position(hand.wrist_pose), wrist, atol=1e-5)
        np.testing.assert_allclose(by_side[side].keypoints[:3], wrist, atol=1e-5)
    assert wait_for(lambda: h.with_stamp('left_hand/pose', stamp))
    [left_pose] = h.with_stamp('left_hand/pose', stamp)
    alias_t, _ = to_matrix(table['operator_l_wrist'])
    np.testing.assert_allclose(alias_t, position(left_pose.pose), atol=1e-6)
    assert table['operator_l_wrist'].header.frame_id == FRAME_ID

    assert info.synthetic_weights and 'meaningless' in info.weights_note
    assert info.model_version == 'smplerx_tiny+hamer_tiny' and info.device == 'cpu'
    assert info.num_faces == SMPLX_NUM_FACES and info.num_vertices == SMPLX_NUM_VERTICES
    assert len(topology.faces) == 3 * SMPLX_NUM_FACES
    assert topology.num_vertices == SMPLX_NUM_VERTICES
    assert max(topology.faces) == SMPLX_NUM_VERTICES - 1


def test_fast_input_against_the_real_pipeline_drops_instead_of_queueing(real_harness) -> None:
    """60 Hz images against the real pipeline (tens to hundreds of ms per frame on this CPU):

    with a one-slot, latest-frame-wins hand-off an output's latency (receipt minus image stamp)
    is at most about two processing times (the frame waits for the one in progress, then is
    processed) plus scheduling; a queue would add one processing time per queued frame, so the
    latency would grow through the run. The skipped frames are counted as 'dropped while busy'
    in /diagnostics and show as gaps in frame_index. input.max_input_age_ms is off so only the
    busy hand-off drops frames.
    """
    h, pipelines = real_harness(**{'input.max_input_age_ms': 0.0})
    image = astronaut()
    h.publish_until(lambda: h.image_message(image), lambda: bool(h.messages('persons')), 20.0)
    pipeline = pipelines[0]
    start = len(h.messages('persons'))
    warm = len(pipeline.process_s)
    published = 0
    period = 1.0 / 60.0
    begin = time.monotonic()
    while time.monotonic() - begin < 2.0:
        h.image_publisher.publish(h.image_message(image))
        published += 1
        time.sleep(max(0.0, begin + published * period - time.monotonic()))
    assert wait_for(lambda: len(pipeline.process_s) > warm + 2, 5.0)
    time.sleep(0.5)  # the frame in progress finishes
    with h.lock:
        received = [(t, m) for t, m in h.received['persons']][start:]
    assert len(received) >= 3
    process_s = pipeline.process_s[warm:]
    assert len(process_s) < published  # far fewer processed than sent
    assert h.node.dropped_while_busy > 0

    clock_offset_ns = h.node.get_clock().now().nanoseconds - time.monotonic() * 1e9
    latencies_s = [
        (receipt * 1e9 + clock_offset_ns - stamp_to_nanoseconds(m.header.stamp)) / 1e9
        for receipt, m in received
    ]
    bound_s = 2.0 * max(process_s) + 0.3
    assert max(latencies_s) < bound_s, (latencies_s, process_s)
    third = max(1, len(latencies_s) // 3)
    assert np.median(latencies_s[-third:]) < np.median(latencies_s[:third]) + max(process_s)
    indices = [m.frame_index for _, m in received]
    assert indices == sorted(indices) and indices[-1] - indices[0] > len(indices)
    assert wait_for(
        lambda: any(
            kv.key == 'dropped while busy' and int(kv.value) > 0
            for m in h.messages('/diagnostics')
            for status in m.status
            for kv in status.values
        ),
        3.0,
    )


def test_a_destroyed_node_leaves_the_graph(rclpy_context) -> None:
    """destroy_node takes hmr_node and its latched publishers out of the ROS graph, even while
    the context lives on (two bugs made it linger, so a later subscriber in the same process got
    its stale ModelInfo: the node replaced rclpy's own publisher list, and rclpy's lifecycle
    state machine kept the rcl node in use)."""
    namespace = '/hmr_graph_test'
    node = HmrNode(
        context=rclpy_context,
        namespace=namespace,
        parameter_overrides=[Parameter(k, value=v) for k, v in REAL_PIPELINE.items()],
    )
    peer = rclpy.create_node('graph_peer', context=rclpy_context)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        present = ('hmr_node', namespace)
        assert wait_for(lambda: present in peer.get_node_names_and_namespaces())
        assert peer.get_publishers_info_by_topic(f'{namespace}/model_info')
        node.destroy_node()
        assert wait_for(lambda: present not in peer.get_node_names_and_namespaces(), 5.0)
        assert peer.get_publishers_info_by_topic(f'{namespace}/model_info') == []
        parameter_events = peer.get_publishers_info_by_topic('/parameter_events')
        assert all(info.node_name != 'hmr_node' for info in parameter_events)
    finally:
        peer.destroy_node()
