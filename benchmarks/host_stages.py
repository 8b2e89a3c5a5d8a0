"""Host stages of hmr_node after the model: CPU time per frame, fast paths beside references.

Once the networks run in a few milliseconds on a GPU, the node's Python work per frame sets the
frame budget. This script times every host stage that follows the model, on results recorded
from the real pipeline (``PipelineRunner`` with the generated stand-in weights and SMPL-X file:
10,475 vertices, the official sizes; the values are meaningless, the work is the same):

- ``track``: ``BoxTracker.update`` on the frame's boxes;
- ``smooth``: One-Euro filtering of every person and the ``PersonResult`` assembly
  (``PipelineRunner._persons``), fast :class:`~hmr_ros.pipeline.smoothing.PersonSmoother`
  beside :class:`~hmr_ros.pipeline.smoothing.ReferencePersonSmoother`;
- ``messages``: ``PersonArray`` + ``HandPoseArray`` built and serialised (what ``publish``
  does in rclpy: conversion to C and CDR), :func:`~hmr_ros.ros.conversions.frame_messages`
  beside ``person_array_message`` + ``hand_pose_array_message``;
- ``operator``: operator selection and the two wrist ``PoseStamped`` (one path only);
- ``tf``: the ``/tf`` message for ``tf.joints``, serialised:
  :class:`~hmr_ros.ros.tf_frames.TfSerializer` on ``person_frame_arrays`` beside
  ``person_frame_poses`` + ``tf_message`` + ``serialize_message``;
- ``decode`` (before the model, not in the total): a 1280x720 bgr8 ``Image`` to RGB.

Cases: 1 and 4 persons, ``tf.joints`` minimal / hands / full, vertices off / on. Times are
thread CPU time (``time.thread_time``) with every math library on one thread, the median of
``--repeats`` frames after a warm-up; the stages are run in a rotating order so that both paths
see the same cache state. Targets (issue 10): 1 person, tf minimal, no vertices <= 1.5 ms;
4 persons, tf hands, vertices <= 6 ms, all host stages after the model together.

Usage:

    python benchmarks/host_stages.py                       # table
    python benchmarks/host_stages.py --json results.json   # and a JSON file
"""

from __future__ import annotations

import os

for _variable in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_variable, '1')  # one core, as the targets say; before numpy loads

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hmr_ros  # noqa: E402
from hmr_ros.pipeline.detectors.base import Detections  # noqa: E402
from hmr_ros.pipeline.frames import CameraIntrinsics  # noqa: E402
from hmr_ros.pipeline.operator_selection import OperatorSelector  # noqa: E402
from hmr_ros.pipeline.protocol import (  # noqa: E402
    Frame,
    ModelOptions,
    PipelineOptions,
    RuntimeSettings,
)
from hmr_ros.pipeline.results import FrameResult  # noqa: E402
from hmr_ros.pipeline.runner import (  # noqa: E402
    HAND_KEYPOINT_ROWS,
    PipelineRunner,
    build_pipeline,
)
from hmr_ros.pipeline.smoothing import PersonSmoother, ReferencePersonSmoother  # noqa: E402

IMAGE_HW = (480, 640)
RECORDED_FRAMES = 4
FRAME_S = 1.0 / 30.0
CAMERA_FRAME = 'camera_color_optical_frame'
TARGETS_MS = {(1, 'minimal', False): 1.5, (4, 'hands', True): 6.0}


def _boxes(count: int) -> Detections:
    """``count`` person boxes side by side across a 640x480 image."""
    width = IMAGE_HW[1] / count
    boxes = [[i * width + 4, 40.0, (i + 1) * width - 4, IMAGE_HW[0] - 20.0] for i in range(count)]
    return Detections(np.array(boxes, np.float32), np.full(count, 0.9, np.float32))


def _frame(stamp_s: float) -> Frame:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(*IMAGE_HW, 3), dtype=np.uint8)
    k = [500.0, 0.0, IMAGE_HW[1] / 2, 0.0, 500.0, IMAGE_HW[0] / 2, 0.0, 0.0, 1.0]
    intrinsics = CameraIntrinsics.from_k_matrix(k, IMAGE_HW[1], IMAGE_HW[0])
    return Frame(image, intrinsics, stamp_s, CAMERA_FRAME, time.monotonic())


def record_estimates(runner: PipelineRunner, count: int) -> list[list]:
    """Model outputs (host arrays per person) of a few frames with ``count`` persons."""
    recorded: list[list] = []
    original = runner._run_model

    def recording(*args: object) -> list:
        estimates = original(*args)  # type: ignore[arg-type]
        recorded.append(estimates)
        return estimates

    runner._run_model = recording  # type: ignore[method-assign]
    for index in range(RECORDED_FRAMES):
        runner.process(_frame(index * FRAME_S), _boxes(count))
    runner._run_model = original  # type: ignore[method-assign]
    runner.reset_tracking()
    return recorded


class HostStages:
    """Every host stage of one configuration, replaying recorded model outputs."""

    def __init__(
        self, runner: PipelineRunner, recorded: list[list], tf_joints: str, reference: bool
    ) -> None:
        from hmr_ros.ros import conversions, tf_frames

        self._conversions = conversions
        self._tf_frames = tf_frames
        self._runner = runner
        self._recorded = recorded
        self._reference = reference
        self._boxes = _boxes(len(recorded[0]))
        self._description = runner.describe()
        self._settings = tf_frames.TfSettings(joints=tf_joints)
        self._serializer = tf_frames.TfSerializer()
        self._operator = OperatorSelector()
        self._frame = 0
        self._result: FrameResult | None = None
        settings = runner._settings
        smoother_type = ReferencePersonSmoother if reference else PersonSmoother
        self._smoother = smoother_type(
            settings.body_smoothing, settings.hand_smoothing, HAND_KEYPOINT_ROWS
        )

    def stages(self) -> dict[str, Callable[[], None]]:
        """Stage name -> the work of that stage for the current frame, in pipeline order."""
        return {
            'track': self.track,
            'smooth': self.smooth,
            'messages': self.messages,
            'operator': self.operator,
            'tf': self.tf,
        }

    def next_frame(self) -> None:
        self._frame += 1

    @property
    def stamp_s(self) -> float:
        return 1000.0 + self._frame * FRAME_S

    def track(self) -> None:
        estimates = self._recorded[self._frame % len(self._recorded)]
        self._tracks = self._runner._track(
            self._boxes, self.stamp_s, following=False, estimates=estimates
        )

    def smooth(self) -> None:
        runner = self._runner
        runner._smoother = self._smoother  # type: ignore[assignment]
        estimates = self._recorded[self._frame % len(self._recorded)]
        persons = runner._persons(self._tracks, estimates, self.stamp_s)
        self._result = FrameResult(self.stamp_s, CAMERA_FRAME, self._frame, tuple(persons))

    def _header(self):  # noqa: ANN202
        from builtin_interfaces.msg import Time

        sec = int(self.stamp_s)
        stamp = Time(sec=sec, nanosec=int((self.stamp_s - sec) * 1e9))
        return self._conversions.make_header(stamp, CAMERA_FRAME), stamp

    def messages(self) -> None:
        from rclpy.serialization import serialize_message

        conversions, result = self._conversions, self._result
        assert result is not None
        header, _ = self._header()
        if self._reference:
            persons = conversions.person_array_message(result, header, 1, 0.01, 'operator')
            hands = conversions.hand_pose_array_message(result, header, 1, 'operator', 0.5)
        else:
            persons, hands = conversions.frame_messages(result, header, 1, 0.01, 'operator', 0.5)
        serialize_message(persons)
        serialize_message(hands)

    def operator(self) -> None:
        from rclpy.serialization import serialize_message

        from hmr_ros.ros.node import operator_tracks

        conversions, result = self._conversions, self._result
        assert result is not None
        header, _ = self._header()
        depth = {p.track_id: float(np.reshape(p.root_position_m, 3)[2]) for p in result.persons}
        operator_id = self._operator.select(operator_tracks(result), depth)
        self._hands = conversions.operator_hands(result, operator_id, 0.5)
        for hand in self._hands.values():
            serialize_message(conversions.wrist_pose_stamped(hand, header, 'operator'))

    def tf(self) -> None:
        from rclpy.serialization import serialize_message

        tf_frames, result = self._tf_frames, self._result
        assert result is not None
        _, stamp = self._header()
        names = {'left': 'operator_left_wrist', 'right': 'operator_right_wrist'}
        joint_names = self._description.joint_names
        if self._reference:
            poses = [
                pose
                for person in result.persons
                for pose in tf_frames.person_frame_poses(
                    person, joint_names, CAMERA_FRAME, self._settings
                )
            ]
            poses += tf_frames.operator_frame_poses(
                self._hands, CAMERA_FRAME, '', names, 'operator'
            )
            serialize_message(tf_frames.tf_message(poses, stamp))
        else:
            frames = tf_frames.FrameArrays.concatenate(
                [
                    tf_frames.person_frame_arrays(
                        result.persons, joint_names, CAMERA_FRAME, self._settings
                    ),
                    tf_frames.operator_frame_arrays(
                        self._hands, CAMERA_FRAME, '', names, 'operator'
                    ),
                ]
            )
            self._serializer.serialize(frames, stamp)


def time_case(
    runner: PipelineRunner, recorded: list[list], tf_joints: str, repeats: int, warmup: int
) -> dict[str, dict[str, float]]:
    """Median thread CPU time, ms, of each stage for the fast and the reference path."""
    paths = {
        name: HostStages(runner, recorded, tf_joints, reference=name == 'reference')
        for name in ('fast', 'reference')
    }
    samples: dict[str, dict[str, list[float]]] = {
        name: {stage: [] for stage in paths[name].stages()} for name in paths
    }
    order = list(paths)
    for iteration in range(warmup + repeats):
        for name in order:
            stages = paths[name]
            stages.next_frame()
            for stage, work in stages.stages().items():
                start = time.thread_time()
                work()
                elapsed_ms = (time.thread_time() - start) * 1e3
                if iteration >= warmup:
                    samples[name][stage].append(elapsed_ms)
        order.reverse()
    return {
        name: {stage: statistics.median(values) for stage, values in stage_samples.items()}
        for name, stage_samples in samples.items()
    }


def time_decode(repeats: int) -> dict[str, float]:
    """bgr8 1280x720 Image -> RGB (before the model; the issue's last table row)."""
    from sensor_msgs.msg import Image

    from hmr_ros.ros.conversions import image_to_rgb

    height, width = 720, 1280
    message = Image(height=height, width=width, encoding='bgr8', step=3 * width)
    message.data = (
        np.random.default_rng(0).integers(0, 255, height * width * 3, np.uint8).tobytes()
    )
    values = []
    for _ in range(repeats):
        start = time.thread_time()
        image_to_rgb(message)
        values.append((time.thread_time() - start) * 1e3)
    return {'decode_bgr8_720p': statistics.median(values)}


def run(repeats: int, warmup: int) -> dict:
    """Every case; returns the JSON-ready results."""
    torch.set_num_threads(1)
    cases = []
    for publish_vertices in (False, True):
        options = PipelineOptions(
            model=ModelOptions(use_test_assets=True, device='cpu', precision='fp32'),
            settings=RuntimeSettings(publish_vertices=publish_vertices),
        )
        runner = build_pipeline(options)
        for persons in (1, 4):
            recorded = record_estimates(runner, persons)
            for tf_joints in ('minimal', 'hands', 'full'):
                runner.reset_tracking()
                times = time_case(runner, recorded, tf_joints, repeats, warmup)
                fast_total = sum(times['fast'].values())
                reference_total = sum(times['reference'].values())
                target = TARGETS_MS.get((persons, tf_joints, publish_vertices))
                cases.append(
                    {
                        'persons': persons,
                        'tf_joints': tf_joints,
                        'vertices': publish_vertices,
                        'fast_ms': times['fast'],
                        'reference_ms': times['reference'],
                        'fast_total_ms': fast_total,
                        'reference_total_ms': reference_total,
                        'speedup': reference_total / fast_total,
                        'target_ms': target,
                        'meets_target': None if target is None else fast_total <= target,
                    }
                )
        runner.close()
    return {
        'benchmark': 'host_stages',
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'clock': 'thread CPU time (time.thread_time), median per frame, ms',
        'repeats': repeats,
        'machine': {
            'processor': platform.processor() or platform.machine(),
            'python': platform.python_version(),
            'numpy': np.__version__,
            'torch': torch.__version__,
            'hmr_ros': hmr_ros.__version__,
        },
        'decode': time_decode(repeats),
        'cases': cases,
    }


def print_table(results: dict) -> None:
    stages = list(results['cases'][0]['fast_ms'])
    header = f'{"persons":>7} {"tf":>7} {"verts":>5} | ' + ' '.join(f'{s:>15}' for s in stages)
    print(header + f' | {"total":>15} {"x":>5} target')
    print('-' * len(header) + '-' * 30)
    for case in results['cases']:
        cells = ' '.join(
            f'{case["fast_ms"][s]:6.3f} / {case["reference_ms"][s]:6.3f}' for s in stages
        )
        target = case['target_ms']
        verdict = (
            '' if target is None else f'<= {target} ms: {"yes" if case["meets_target"] else "NO"}'
        )
        vertices = 'on' if case['vertices'] else 'off'
        print(
            f'{case["persons"]:>7} {case["tf_joints"]:>7} {vertices:>5} | '
            f'{cells} | {case["fast_total_ms"]:6.3f} / {case["reference_total_ms"]:6.3f} '
            f'{case["speedup"]:5.1f} {verdict}'
        )
    print('cells: fast / reference, ms of thread CPU time per frame (median)')
    for name, value in results['decode'].items():
        print(f'{name}: {value:.3f} ms (before the model, not in the totals)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=60, help='timed frames per case')
    parser.add_argument('--warmup', type=int, default=5, help='untimed frames per case')
    parser.add_argument('--json', metavar='PATH', help='also write the results as JSON')
    args = parser.parse_args(argv)
    results = run(args.repeats, args.warmup)
    print_table(results)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as stream:
            json.dump(results, stream, indent=2)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
