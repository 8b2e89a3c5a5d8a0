"""Tests for hmr_ros.ros.image_source: files in, rgb8 Image + CameraInfo out.

The pure parts (intrinsics, crops, readers, messages) are checked with exact expected values;
the node is spun in its own rclpy context with a subscriber in the same executor, every wait
bounded (about a second per test).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import require_ros_for_module

require_ros_for_module()

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hmr_ros.ros import conversions  # noqa: E402
from hmr_ros.ros.image_source import (  # noqa: E402
    CameraModelParams,
    ImageSourceError,
    ImageSourceNode,
    ImageSourceParams,
    MotionParams,
    StillImageReader,
    VideoReader,
    bundled_image_path,
    camera_info_message,
    camera_intrinsics,
    fit_size,
    image_message,
    motion_crop,
    open_source,
    output_size,
    render_crop,
)
from hmr_ros.ros.params import parameters_from_values  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = '/camera/color'
BEST_EFFORT = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.BEST_EFFORT)
VIDEO_COLOURS_BGR = [(0, 10, 200), (50, 10, 160), (100, 10, 120), (150, 10, 80), (200, 10, 40)]


def write_video(path: Path, rate_hz: float = 12.0) -> Path:
    """A 40x30 MJPG video of five flat frames of known colours (VIDEO_COLOURS_BGR)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), rate_hz, (40, 30))
    assert writer.isOpened(), 'this OpenCV cannot write MJPG AVI files'
    for colour in VIDEO_COLOURS_BGR:
        writer.write(np.full((30, 40, 3), colour, np.uint8))
    writer.release()
    return path


# ---------------------------------------------------------------- intrinsics and messages


def test_assumed_intrinsics_follow_the_field_of_view() -> None:
    """512 px wide at 60 degrees: fx = 256 / tan(30 deg) = 443.405 px, fy = fx; the centre of a
    512x384 image with pixel centres at integers is (255.5, 191.5)."""
    k = camera_intrinsics((512, 384), CameraModelParams())
    assert k.fx == pytest.approx(256.0 / math.tan(math.radians(30.0)))
    assert k.fx == pytest.approx(443.405, abs=1e-3)
    assert (k.fy, k.cx, k.cy) == (k.fx, 255.5, 191.5)
    assert (k.width, k.height, k.distortion) == (512, 384, (0.0,) * 5)
    given = camera_intrinsics((640, 480), CameraModelParams(fx=600.0, cx=300.0))
    assert (given.fx, given.fy, given.cx, given.cy) == (600.0, 600.0, 300.0, 239.5)


def test_camera_info_round_trips_through_the_node_conversion() -> None:
    """What the source states is exactly what hmr_node reads, from K (raw) and P (rectified)."""
    k = camera_intrinsics((64, 48), CameraModelParams(fx=70.0, fy=72.0, cx=31.0, cy=22.5))
    info = camera_info_message(k, Header(frame_id='cam'))
    for rectified in (False, True):
        read = conversions.camera_info_to_intrinsics(
            info, rectified=rectified, image_width=64, image_height=48
        )
        assert (read.fx, read.fy, read.cx, read.cy) == (70.0, 72.0, 31.0, 22.5)
    assert info.distortion_model == 'plumb_bob' and list(info.d) == [0.0] * 5
    assert list(info.r) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert (info.width, info.height, info.header.frame_id) == (64, 48, 'cam')


def test_image_message_is_packed_rgb8_that_the_node_decodes() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    message = image_message(pixels, Header(frame_id='cam'))
    assert (message.encoding, message.step, message.width, message.height) == ('rgb8', 21, 7, 5)
    np.testing.assert_array_equal(conversions.image_to_rgb(message), pixels)


def test_output_size_keeps_the_aspect_ratio_when_one_side_is_given() -> None:
    assert output_size((640, 480), 0, 0) == (640, 480)
    assert output_size((640, 480), 320, 0) == (320, 240)
    assert output_size((640, 480), 0, 120) == (160, 120)
    assert output_size((640, 480), 100, 100) == (100, 100)


# ---------------------------------------------------------------- synthetic motion


def test_motion_starts_centred_at_min_zoom_and_stays_inside_the_image() -> None:
    """Frame 0: zoom 1.1, crop 100/1.1 = 90.909 wide, centred (sin 0 = 0). Half a period later
    the zoom is 1.3. Every crop keeps the aspect ratio and lies inside the image."""
    motion = MotionParams(period_s=2.0, min_zoom=1.1, max_zoom=1.3)
    size = (100, 80)
    x0, y0, width, height = motion_crop(0, 10.0, size, motion)
    assert width == pytest.approx(100 / 1.1) and height == pytest.approx(80 / 1.1)
    assert x0 + width / 2 == pytest.approx(50.0) and y0 + height / 2 == pytest.approx(40.0)
    assert motion_crop(10, 10.0, size, motion)[2] == pytest.approx(100 / 1.3)
    centres = set()
    for index in range(200):
        x0, y0, width, height = motion_crop(index, 10.0, size, motion)
        assert 100 / 1.3 - 1e-9 <= width <= 100 / 1.1 + 1e-9
        assert width / height == pytest.approx(100 / 80)
        assert x0 >= 0.0 and y0 >= 0.0 and x0 + width <= 100.0 and y0 + height <= 80.0
        centres.add((round(x0 + width / 2), round(y0 + height / 2)))
    assert len(centres) > 20  # it pans, not only zooms


def test_render_crop_is_exact_for_the_identity_and_integer_shifts() -> None:
    """Crop = whole image at its size: the same pixels. A same-size crop shifted by whole pixels:
    the sliced pixels (bilinear sampling exactly on pixel centres)."""
    image = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render_crop(image, (0.0, 0.0, 60.0, 40.0), (60, 40)), image)
    shifted = render_crop(image, (7.0, 3.0, 30.0, 20.0), (30, 20))
    np.testing.assert_array_equal(shifted, image[3:23, 7:37])
    halved = render_crop(image, (0.0, 0.0, 60.0, 40.0), (30, 20))
    assert halved.shape == (20, 30, 3)
    # each output pixel samples between two source columns/rows: the mean of a 2x2 block
    block = image[:2, :2].astype(np.float64).mean(axis=(0, 1))
    np.testing.assert_allclose(halved[0, 0], block, atol=1.0)
    assert fit_size(image, (60, 40)) is image and fit_size(image, (30, 20)).shape == (20, 30, 3)


# ---------------------------------------------------------------- readers


def test_still_and_video_readers(tmp_path: Path) -> None:
    still = open_source('')  # the bundled photo
    assert isinstance(still, StillImageReader) and still.size == (512, 512)
    assert bundled_image_path() == REPO / 'resource' / 'data' / 'astronaut.jpg'
    first = still.read()
    np.testing.assert_array_equal(first, cv2.imread(str(bundled_image_path()))[..., ::-1])

    video = open_source(str(write_video(tmp_path / 'clip.avi')))
    assert isinstance(video, VideoReader)
    assert video.size == (40, 30) and video.native_rate_hz == pytest.approx(12.0)
    frames = []
    while (frame := video.read()) is not None:
        frames.append(frame)
    assert len(frames) == len(VIDEO_COLOURS_BGR)
    for frame, (b, g, r) in zip(frames, VIDEO_COLOURS_BGR, strict=True):
        np.testing.assert_allclose(frame[15, 20], (r, g, b), atol=6)  # MJPG is lossy
    assert video.rewind()
    np.testing.assert_array_equal(video.read(), frames[0])
    video.close()


def test_unreadable_sources_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ImageSourceError, match='is not a file'):
        open_source(str(tmp_path / 'missing.png'))
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a jpeg')
    with pytest.raises(ImageSourceError, match='cannot read the image'):
        open_source(str(broken))
    not_video = tmp_path / 'notes.mp4'
    not_video.write_text('not a video')
    with pytest.raises(ImageSourceError, match='convert it to H.264'):
        open_source(str(not_video))


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match='motion.max_zoom 1.05 is below'):
        parameters_from_values({'motion.max_zoom': 1.05}, ImageSourceParams)
    with pytest.raises(ValueError, match='frame_id must name'):
        parameters_from_values({'frame_id': ''}, ImageSourceParams)
    with pytest.raises(ValueError, match='rate_hz must be in'):
        parameters_from_values({'rate_hz': -1.0}, ImageSourceParams)


# ---------------------------------------------------------------- the node


class Listener:
    """The node under test plus a peer subscribing to image_raw and camera_info, spinning."""

    def __init__(self, context: Any, overrides: dict[str, Any]) -> None:
        self.node = ImageSourceNode(
            context=context,
            namespace=NAMESPACE,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        self.peer = rclpy.create_node('image_source_peer', context=context, namespace=NAMESPACE)
        self.lock = threading.Lock()
        self.images: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.peer.create_subscription(Image, 'image_raw', self._keep(self.images), BEST_EFFORT)
        self.peer.create_subscription(
            CameraInfo, 'camera_info', self._keep(self.infos), BEST_EFFORT
        )
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _keep(self, into: list[Any]) -> Callable[[Any], None]:
        def keep(message: Any) -> None:
            with self.lock:
                into.append(message)

        return keep

    def _spin(self) -> None:
        while self.running:
            self.executor.spin_once(timeout_sec=0.01)

    def wait(self, condition: Callable[[], bool], timeout_s: float = 4.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if condition():
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.peer.destroy_node()


@pytest.fixture
def listen(rclpy_context):
    listeners: list[Listener] = []

    def make(**overrides: Any) -> Listener:
        listener = Listener(rclpy_context, overrides)
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.close()


def test_still_image_stream_is_stamped_moving_and_matches_its_camera_info(listen) -> None:
    """Each image has a CameraInfo with the same header (node-clock stamp, default optical frame)
    stating the assumed model; stamps increase; the synthetic motion changes the pixels, and
    every image is the render of one frame index of motion_crop."""
    h = listen(rate_hz=50.0, width=128, **{'motion.period_s': 0.5})
    before = h.node.get_clock().now().nanoseconds
    assert h.wait(lambda: len(h.images) >= 8 and len(h.infos) >= 8)
    after = h.node.get_clock().now().nanoseconds
    with h.lock:
        images, infos = list(h.images), list(h.infos)
    info_by_stamp = {conversions.stamp_to_nanoseconds(i.header.stamp): i for i in infos}
    stamps = [conversions.stamp_to_nanoseconds(m.header.stamp) for m in images]
    assert stamps == sorted(set(stamps)) and before - 10**9 < stamps[0] and stamps[-1] <= after
    expected_k = camera_intrinsics((128, 128), CameraModelParams())
    source = cv2.imread(str(bundled_image_path()))[..., ::-1]
    renders = [
        render_crop(source, motion_crop(i, 50.0, (512, 512), h.node.params.motion), (128, 128))
        for i in range(h.node.frames_published + 1)
    ]
    matched = []
    for message, stamp in zip(images, stamps, strict=True):
        assert message.header.frame_id == 'camera_color_optical_frame'
        assert (message.encoding, message.width, message.height) == ('rgb8', 128, 128)
        info = info_by_stamp.get(stamp)
        if info is not None:
            k = conversions.camera_info_to_intrinsics(
                info, rectified=False, image_width=128, image_height=128
            )
            assert k == expected_k
        pixels = conversions.image_to_rgb(message)
        matched.append(
            next(i for i, render in enumerate(renders) if np.array_equal(render, pixels))
        )
    assert matched == sorted(matched) and len(set(matched)) == len(matched)
    assert len(info_by_stamp.keys() & set(stamps)) >= len(stamps) - 1  # same header per pair
    assert not np.array_equal(
        conversions.image_to_rgb(images[0]), conversions.image_to_rgb(images[-1])
    )


def test_given_intrinsics_frame_id_and_no_motion(listen) -> None:
    h = listen(
        frame_id='my_optical_frame',
        **{'motion.enable': False, 'camera.fx': 500.0, 'camera.cy': 200.0},
    )
    assert h.wait(lambda: len(h.images) >= 3 and len(h.infos) >= 1)
    with h.lock:
        images, info = list(h.images), h.infos[0]
    assert info.header.frame_id == 'my_optical_frame'
    assert list(info.k) == [500.0, 0.0, 255.5, 0.0, 500.0, 200.0, 0.0, 0.0, 1.0]
    photo = cv2.imread(str(bundled_image_path()))[..., ::-1]
    for message in images:
        np.testing.assert_array_equal(conversions.image_to_rgb(message), photo)


def test_video_plays_once_without_loop_and_repeats_with_it(listen, tmp_path: Path) -> None:
    clip = str(write_video(tmp_path / 'clip.avi'))
    once = listen(source=clip, rate_hz=100.0, loop=False)
    assert once.wait(lambda: once.node.finished, 3.0)
    assert once.node.frames_published == len(VIDEO_COLOURS_BGR)
    looping = listen(source=clip, rate_hz=100.0)
    assert looping.wait(lambda: looping.node.frames_published >= 2 * len(VIDEO_COLOURS_BGR), 3.0)
    assert not looping.node.finished
    assert looping.node.rate_hz == 100.0 and once.node.intrinsics.width == 40


def test_rate_zero_uses_the_videos_own_rate(listen, tmp_path: Path) -> None:
    """The clip states 12 Hz: the timer runs at 12 Hz, not the default 30 Hz, so 1 s brings at
    most 12 frames plus one at each end (no lower bound: a loaded machine may delay the timer)."""
    h = listen(source=str(write_video(tmp_path / 'clip.avi')), rate_hz=0.0)
    assert h.node.rate_hz == pytest.approx(12.0)
    assert h.wait(lambda: h.node.frames_published >= 1)
    start, begin = h.node.frames_published, time.monotonic()
    time.sleep(1.0)
    published = h.node.frames_published - start
    assert 1 <= published <= 12 * (time.monotonic() - begin) + 2


def test_executable_exits_with_status_2_on_a_missing_file(tmp_path: Path, ros_domain_id) -> None:
    env = dict(
        os.environ,
        ROS_DOMAIN_ID=str(ros_domain_id),
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]),
    )
    missing = tmp_path / 'missing.mp4'
    result = subprocess.run(
        [sys.executable, str(REPO / 'scripts' / 'hmr_image_source'), '--ros-args', '-p']
        + [f'source:={missing}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"source '{missing}' is not a file" in result.stderr
