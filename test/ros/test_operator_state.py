"""No phantom operator: the real pipeline in hmr_node, the presence score, the operator state.

hmr_node runs the real PipelineRunner on the random stand-in networks (model.use_test_assets),
in-process with real rclpy and DDS (the Harness of test_node.py). The stand-ins' own presence
score is near 0 (flat heatmaps), which is what an empty room should give; where a test needs a
person, the whole-body model's person_score is scripted per image (ScriptedPresence) while every
other output stays the real network's.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

import torch  # noqa: E402
from _scripted_pipeline import make_person  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from test_node import Harness, wait_for  # noqa: E402

from hmr_ros.msg import OperatorState  # noqa: E402
from hmr_ros.pipeline.protocol import PipelineOptions  # noqa: E402
from hmr_ros.pipeline.results import FrameResult, HandResult, PersonResult  # noqa: E402
from hmr_ros.pipeline.runner import PipelineRunner, build_pipeline  # noqa: E402
from hmr_ros.pipeline.tracking import TrackState  # noqa: E402
from hmr_ros.ros.operator_state import OperatorStateTracker  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SIDE = 256
FRAME_ID = 'operator_test_optical_frame'
RELIABLE = QoSProfile(depth=200, reliability=QoSReliabilityPolicy.RELIABLE)
PERSON = cv2.resize(
    cv2.cvtColor(cv2.imread(str(REPO / 'resource' / 'data' / 'astronaut.jpg')), cv2.COLOR_BGR2RGB),
    (SIDE, SIDE),
)
BLANK = np.full((SIDE, SIDE, 3), 128, np.uint8)
NOISE = np.random.default_rng(1).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
STAND_IN = {
    'model.use_test_assets': True,
    'model.device': 'cpu',
    'safety.min_hand_confidence': 0.0,  # the random hand path scores 0: let hands through
    'tracking.max_coast_s': 1.0,  # the first unseen image coasts even on a loaded machine
}


def image_key(pixels: np.ndarray) -> int:
    """Tells the test images apart: their pixel standard deviation, rounded."""
    return round(float(np.asarray(pixels, np.float64).std()))


class ScriptedPresence(torch.nn.Module):
    """The stand-in dual path with person_score scripted per image (what a trained model gives:
    low on blank and noise images, high on a person)."""

    def __init__(self, model: torch.nn.Module, scores: dict[int, float]) -> None:
        super().__init__()
        self.model = model
        self.scores = scores

    def forward(self, image, boxes, batch_index, intrinsics):  # type: ignore[no-untyped-def]
        output = self.model(image, boxes, batch_index, intrinsics)
        score = self.scores[round(float(image.double().mul(255).std()))]
        return output._replace(person_score=torch.full_like(output.person_score, score))


def scripted_factory(scores: dict[int, float]) -> Any:
    def factory(options: PipelineOptions) -> PipelineRunner:
        runner = build_pipeline(options)
        # The runner calls its model through the inference backend (eager on the CPU).
        runner._backend.model = ScriptedPresence(runner._backend.model, scores)
        return runner

    return factory


def camera_info() -> CameraInfo:
    info = CameraInfo(width=SIDE, height=SIDE, distortion_model='plumb_bob')
    info.header.frame_id = FRAME_ID
    info.k = [220.0, 0.0, 127.5, 0.0, 220.0, 127.5, 0.0, 0.0, 1.0]
    info.p = [220.0, 0.0, 127.5, 0.0, 0.0, 220.0, 127.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    return info


def start(harness: Harness) -> None:
    harness.peer.create_subscription(
        OperatorState, 'operator_state', harness._recorder('operator_state'), RELIABLE
    )
    harness.start()
    harness.send_camera_info(camera_info())


def feed(harness: Harness, pixels: np.ndarray, count: int) -> list[OperatorState]:
    """Publish count images one at a time (each until its state arrived); their states."""
    states = []
    for _ in range(count):
        message = harness.image_message(pixels, frame_id=FRAME_ID)

        def answered(stamp: Any = message.header.stamp) -> bool:
            return bool(harness.with_stamp('operator_state', stamp))

        harness.publish_until(lambda message=message: message, answered, timeout_s=20.0)
        states.append(harness.with_stamp('operator_state', message.header.stamp)[0])
    return states


@pytest.fixture
def harness_factory(rclpy_context):
    made: list[Harness] = []

    def make(**kwargs: Any) -> Harness:
        made.append(Harness(rclpy_context, **kwargs))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


def test_blank_and_noise_images_give_no_persons_and_no_wrists(harness_factory) -> None:
    """The real stand-in networks at the default detection.person_threshold: blank and noise
    images yield empty PersonArrays, no wrist poses, no operator frames, and a state that says
    NO_OPERATOR for both sides (the old front-end made a TRACKED person of them in 2 frames)."""
    h = harness_factory(overrides=STAND_IN, factory=build_pipeline)
    start(h)
    states = feed(h, BLANK, 3) + feed(h, NOISE, 3)
    assert all(m.persons == [] for m in h.messages('persons'))
    assert len(h.messages('persons')) >= 6
    assert h.messages('left_hand/pose') == [] and h.messages('right_hand/pose') == []
    operator_frames = [
        t for m in h.messages('/tf') for t in m.transforms if t.child_frame_id.startswith('oper')
    ]
    assert operator_frames == []
    for state in states:
        assert (state.left_valid, state.right_valid) == (False, False)
        assert state.left_reason == state.right_reason == OperatorState.NO_OPERATOR
        assert state.track_id == ''


def test_a_lost_operator_flips_the_state_at_once(harness_factory) -> None:
    """A person (scripted score 0.9) becomes the TRACKED operator with both sides valid; the
    first blank image (score 0.05) makes the state invalid (OPERATOR_NOT_SEEN, the track coasts)
    and publishes no wrist pose for it; then OPERATOR_LOST once, then NO_OPERATOR."""
    scores = {image_key(PERSON): 0.9, image_key(BLANK): 0.05}
    h = harness_factory(overrides=STAND_IN, factory=scripted_factory(scores))
    start(h)
    states = feed(h, PERSON, 3)
    last = states[-1]
    assert (last.left_valid, last.right_valid) == (True, True)
    assert last.track_id and last.track_id[0].isalpha()  # REP 155 ids start with a letter
    assert last.person_confidence == pytest.approx(0.9)
    operator_stamp = last.header.stamp
    assert wait_for(lambda: h.with_stamp('left_hand/pose', operator_stamp), 5.0)
    [persons] = h.with_stamp('persons', operator_stamp)
    assert persons.persons[0].confidence == pytest.approx(0.9)
    assert len(persons.persons[0].joint_confidence) == len(persons.persons[0].joints) // 3

    after = feed(h, BLANK, 1)[0]
    assert (after.left_valid, after.right_valid) == (False, False)
    assert after.left_reason == OperatorState.OPERATOR_NOT_SEEN
    assert after.track_id == last.track_id
    time.sleep(0.3)
    assert h.with_stamp('left_hand/pose', after.header.stamp) == []
    time.sleep(1.0)  # past tracking.max_coast_s: the next image ends the track
    reasons = [m.left_reason for m in feed(h, BLANK, 3)]
    assert reasons[0] == OperatorState.OPERATOR_LOST
    assert reasons[-1] == OperatorState.NO_OPERATOR


def test_pausing_says_inactive(harness_factory) -> None:
    """~/enable false: controllers get an INACTIVE state at once, not silence."""
    scores = {image_key(PERSON): 0.9}
    h = harness_factory(overrides=STAND_IN, factory=scripted_factory(scores))
    start(h)
    feed(h, PERSON, 2)
    client = h.peer.create_client(SetBool, 'hmr_node/enable')
    assert client.wait_for_service(timeout_sec=5.0)
    client.call_async(SetBool.Request(data=False))
    assert wait_for(
        lambda: h.messages('operator_state')[-1].left_reason == OperatorState.INACTIVE, 5.0
    )


def test_track_ids_never_repeat_across_activations_and_configurations(harness_factory) -> None:
    """REP 155 ids (letter first). After a reset the serial grows; a new configuration (as after
    a restart) draws a new prefix, so a listener's stale body_<id> frames never collide."""
    scores = {image_key(PERSON): 0.9}
    h = harness_factory(overrides=STAND_IN, factory=scripted_factory(scores))
    start(h)
    first = feed(h, PERSON, 3)[-1].track_id
    reset = h.peer.create_client(Trigger, 'hmr_node/reset_tracking')
    assert reset.wait_for_service(timeout_sec=5.0)
    reset.call_async(Trigger.Request())
    time.sleep(0.3)
    after_reset = feed(h, PERSON, 3)[-1].track_id
    assert after_reset and after_reset != first
    assert after_reset.split('_')[0] == first.split('_')[0]
    assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert h.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    h.start()
    h.send_camera_info(camera_info())
    reconfigured = feed(h, PERSON, 3)[-1].track_id
    assert reconfigured[0].isalpha()
    assert reconfigured.split('_')[0] != first.split('_')[0]


# ---------------------------------------------------------------- the state rules, no node


def person(track_id: str, state: TrackState, confidence: float = 0.9) -> PersonResult:

    return dataclasses.replace(
        make_person('7'), track_id=track_id, tracking_state=state, confidence=confidence
    )


def result(*persons: PersonResult) -> FrameResult:
    return FrameResult(stamp_s=1.0, frame_id='cam', frame_index=1, persons=persons)


def test_state_rules() -> None:
    tracker = OperatorStateTracker()
    hands: dict[str, HandResult] = {}
    operator = person('a1', TrackState.TRACKED)
    both = {'left': operator.left_hand, 'right': operator.right_hand}
    ok = tracker.update(result(operator), 'a1', both, operator_enabled=True, person_threshold=0.5)
    assert ok.valid('left') and ok.valid('right') and ok.track_id == 'a1'
    one = tracker.update(
        result(operator),
        'a1',
        {'left': operator.left_hand},
        operator_enabled=True,
        person_threshold=0.5,
    )
    assert one.valid('left') and one.reasons['right'] == OperatorState.HAND_NOT_USABLE
    low = tracker.update(
        result(person('a1', TrackState.TRACKED, 0.3)),
        'a1',
        hands,
        operator_enabled=True,
        person_threshold=0.5,
    )
    assert low.reasons['left'] == OperatorState.LOW_PERSON_SCORE
    # The selector dropped the operator and picked nobody: that image says LOST, once.
    gone = tracker.update(result(), None, hands, operator_enabled=True, person_threshold=0.5)
    assert gone.reasons['left'] == OperatorState.OPERATOR_LOST and gone.track_id == 'a1'
    none = tracker.update(result(), None, hands, operator_enabled=True, person_threshold=0.5)
    assert none.reasons['right'] == OperatorState.NO_OPERATOR and none.track_id == ''
    disabled = tracker.update(
        result(operator), None, hands, operator_enabled=False, person_threshold=0.5
    )
    assert disabled.reasons['left'] == OperatorState.OPERATOR_DISABLED
