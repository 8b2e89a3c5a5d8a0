"""What an outside client found by driving hmr_node with bad requests (issue 11, item 7).

In-process tests use the Harness of test_node.py (real rclpy and DDS, scripted pipeline); the
startup-parameter tests run the node's entry point in a subprocess, as ``ros2 run`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_ros_for_module

require_ros_for_module()

from builtin_interfaces.msg import Time  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from test_node import Harness, stamp_key, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def harness(rclpy_context):
    made = Harness(rclpy_context)
    yield made
    made.close()


def call(harness: Harness, service_type, name: str, request):  # type: ignore[no-untyped-def]
    client = harness.peer.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(request)
    assert wait_for(future.done, 5.0)
    return future.result()


def test_invalid_transition_requests_fail_and_the_node_keeps_running(harness) -> None:
    """ros2/rclpy#1209: rclpy 7.1 raised inside change_state for 'configure' while active and
    the node exited. The request must be answered with failure and images keep flowing."""
    harness.start()
    harness.send_camera_info()
    harness.first_output()
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_CLEANUP, 99):
        request = ChangeState.Request(transition=Transition(id=transition))
        assert call(harness, ChangeState, 'hmr_node/change_state', request).success is False
    by_label = ChangeState.Request(transition=Transition(label='configure'))
    assert call(harness, ChangeState, 'hmr_node/change_state', by_label).success is False
    assert harness.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    state = call(harness, GetState, 'hmr_node/get_state', GetState.Request()).current_state
    assert state.id == State.PRIMARY_STATE_ACTIVE
    assert harness.thread.is_alive(), 'the executor thread died'
    before = len(harness.messages('persons'))
    harness.publish_until(harness.image_message, lambda: len(harness.messages('persons')) > before)
    # A valid request still works.
    deactivate = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))
    assert call(harness, ChangeState, 'hmr_node/change_state', deactivate).success is True


def test_deactivation_arrays_repeat_the_last_published_header(harness) -> None:
    """PersonArray.msg: the stamp is a source image's acquisition time, frame_index the count of
    processed frames; the clearing arrays repeat the last published image's values."""
    harness.start()
    harness.send_camera_info()
    harness.first_output()
    time.sleep(0.2)
    last = harness.messages('persons')[-1]
    assert harness.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert wait_for(lambda: harness.messages('persons')[-1].persons == [])
    cleared = harness.messages('persons')[-1]
    assert stamp_key(cleared.header.stamp) == stamp_key(last.header.stamp)
    assert cleared.header.frame_id == last.header.frame_id
    assert cleared.frame_index == last.frame_index > 0
    hands = harness.messages('hands')[-1]
    assert hands.hands == [] and hands.frame_index == last.frame_index


def test_images_stamped_in_the_future_are_refused_and_counted(harness) -> None:
    harness.start()
    harness.send_camera_info()
    now = harness.now()
    future = Time(sec=now.sec + 10, nanosec=now.nanosec)
    for _ in range(3):
        harness.image_publisher.publish(harness.image_message(stamp=future))
        time.sleep(0.05)
    assert wait_for(lambda: harness.node.statistics.snapshot(time.monotonic(), 0).received >= 3)
    time.sleep(0.2)
    assert harness.pipeline.frames == []
    assert wait_for(
        lambda: any(
            kv.key == 'stamped in the future' and int(kv.value) >= 1
            for m in harness.messages('/diagnostics')
            for status in m.status
            for kv in status.values
        ),
        4.0,
    )
    harness.first_output()  # a current stamp still goes through


def run_node(*parameters: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        '-c',
        'import sys; from hmr_ros.ros.node import main; sys.exit(main(sys.argv))',
        '--ros-args',
        *[argument for p in parameters for argument in ('-p', p)],
    ]
    env = dict(os.environ, ROS_DOMAIN_ID=str(os.getpid() % 100 + 101))
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=REPO)


@pytest.mark.parametrize(
    ('parameter', 'message'),
    [
        ('detection.person_threshold:=1.5', 'detection.person_threshold must be in [0, 1]'),
        ('detection.max_persons:=four', 'detection.max_persons must be of type integer'),
        ('detection.max_persons:=2.5', 'detection.max_persons must be of type integer'),
        ('input.max_rate_hz:=true', 'input.max_rate_hz must be of type double'),
    ],
)
def test_bad_startup_parameters_exit_with_one_clear_line(parameter: str, message: str) -> None:
    result = run_node(parameter, 'detection.person_treshold:=0.3')
    assert result.returncode == 2, result.stderr
    assert 'Traceback' not in result.stderr
    fatal = [line for line in result.stderr.splitlines() if 'invalid parameters' in line]
    assert len(fatal) == 1 and message in fatal[0], result.stderr
    assert "unknown parameter 'detection.person_treshold'" in result.stderr
    assert "did you mean 'detection.person_threshold'" in result.stderr
