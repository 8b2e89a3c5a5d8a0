"""``hmr_image_source``: a camera stand-in that publishes an image file or a video as a stream.

Publishes ``image_raw`` (``sensor_msgs/Image``, rgb8) and ``camera_info`` (``CameraInfo``) at
``rate_hz``, both with the same header: the node clock's time at publishing (sim time under
``use_sim_time``) and ``frame_id`` (default ``camera_color_optical_frame``). Topic names are
relative, the sibling convention of camera drivers; run it in the camera's namespace
(``--ros-args -r __ns:=/camera/color``) to feed ``live.launch.py``'s default topics.

What it sends, and what it assumes:

- **Source**: a still image (jpg, png, bmp, tif, webp) or a video file (whatever OpenCV's
  ``cv2.VideoCapture`` reads on this machine). Empty: the bundled photo
  (``resource/data/astronaut.jpg`` in the checkout, ``share/hmr_ros/data/`` in an install).
  A video plays at ``rate_hz`` (0: its own frame rate) and restarts at its end when ``loop``
  is true; it is never played faster than it is read.
- **Intrinsics**: a file carries no calibration, so CameraInfo states an **assumed** pinhole
  model unless ``camera.fx`` (and optionally ``fy``, ``cx``, ``cy``) are given:
  ``fx = fy = (width / 2) / tan(camera.horizontal_fov_deg / 2)`` (60 degrees by default, a
  typical RGB-D colour camera or webcam), principal point at the image centre
  ``((width - 1) / 2, (height - 1) / 2)`` (pixel centres at integer coordinates), no distortion
  (``plumb_bob`` with zero coefficients; ``P = [K | 0]``). Metric depth of people estimated
  from such a stream is only as right as this assumption.
- **Synthetic motion** (still images only, ``motion.enable``): a constant image would make
  tracking and smoothing trivial, so each frame is a crop of the still that slowly zooms between
  ``motion.min_zoom`` and ``motion.max_zoom`` and pans within the image (smooth sinusoids, one
  zoom cycle per ``motion.period_s``, pans at 1.6x and 2.2x that period), resized to the output
  size. It depends only on the frame count, so a run is reproducible. CameraInfo stays the one
  model of the output image: a pan then reads as a small camera rotation and a zoom as the scene
  coming closer, not as a changing focal length. Videos are never moved.

The file reading, intrinsics and motion are plain functions and classes here (no ROS types), the
node only times, stamps and publishes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from hmr_ros.pipeline.frames import CameraIntrinsics
from hmr_ros.ros import qos
from hmr_ros.ros.params import (  # field helpers shared with hmr_node
    ParameterGroup,
    declare_node_parameters,
    flatten_parameters,
    parameter,
)

NODE_NAME = 'hmr_image_source'
IMAGE_TOPIC = 'image_raw'
CAMERA_INFO_TOPIC = 'camera_info'
DEFAULT_FRAME_ID = 'camera_color_optical_frame'
STILL_IMAGE_SUFFIXES = frozenset(
    {'.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm'}
)
BUNDLED_IMAGE = Path('data') / 'astronaut.jpg'
"""The bundled photo under resource/ of a source checkout and under share/hmr_ros of an
install (resource/data/README.md says where it comes from)."""
STILL_IMAGE_RATE_HZ = 30.0
"""Rate of a still image, and of a video whose file states no frame rate, when rate_hz is 0."""
PAN_PERIOD_FACTORS = (1.6, 2.2)
"""Horizontal and vertical pan periods in zoom periods: incommensurate, so the path wanders."""
PAN_FILL = 0.9
"""Fraction of the free margin a pan uses, so the crop never touches the image border."""
PUBLISHER_DEPTH = 5
_RGB_CHANNELS = 3


class ImageSourceError(ValueError):
    """The source cannot be read or the parameters do not fit it; the message says the fix."""


# ---------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class CameraModelParams(ParameterGroup):
    """``camera.*``: the intrinsics stated in CameraInfo (of the published image size)."""

    fx: float = parameter(
        0.0,
        'Focal length x of the published image; 0 assumes it from camera.horizontal_fov_deg',
        unit='px',
        value_range=(0.0, 1e6),
    )
    fy: float = parameter(
        0.0, 'Focal length y of the published image; 0 uses fx', unit='px', value_range=(0.0, 1e6)
    )
    cx: float = parameter(
        0.0,
        'Principal point x; 0 puts it at the image centre (width - 1) / 2',
        unit='px',
        value_range=(0.0, 1e6),
    )
    cy: float = parameter(
        0.0,
        'Principal point y; 0 puts it at the image centre (height - 1) / 2',
        unit='px',
        value_range=(0.0, 1e6),
    )
    horizontal_fov_deg: float = parameter(
        60.0,
        'Assumed horizontal field of view when camera.fx is 0 (typical colour camera)',
        unit='deg',
        value_range=(1.0, 179.0),
    )


@dataclasses.dataclass(frozen=True)
class MotionParams(ParameterGroup):
    """``motion.*``: slow synthetic pan and zoom of a still image (videos are not moved)."""

    enable: bool = parameter(
        True, 'Pan and zoom a still image slowly so the stream is not constant'
    )
    period_s: float = parameter(
        8.0,
        'Duration of one zoom cycle (pans take 1.6 and 2.2 times as long)',
        unit='s',
        value_range=(0.1, 3600.0),
    )
    min_zoom: float = parameter(
        1.1, 'Smallest zoom (crop side = image side / zoom)', value_range=(1.0, 10.0)
    )
    max_zoom: float = parameter(1.3, 'Largest zoom', value_range=(1.0, 10.0))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_zoom < self.min_zoom:
            raise ValueError(
                f'motion.max_zoom {self.max_zoom} is below motion.min_zoom {self.min_zoom}; '
                'give max_zoom >= min_zoom'
            )


@dataclasses.dataclass(frozen=True)
class ImageSourceParams(ParameterGroup):
    """All parameters of ``hmr_image_source`` (groups become dotted names: ``camera.fx``)."""

    source: str = parameter('', 'Image or video file; empty: the bundled astronaut photo')
    rate_hz: float = parameter(
        30.0,
        "Frames per second; 0 uses the video's own rate (30 for a still image)",
        unit='Hz',
        value_range=(0.0, 1000.0),
    )
    loop: bool = parameter(True, 'Restart a video at its end; false stops publishing there')
    frame_id: str = parameter(
        DEFAULT_FRAME_ID, 'header.frame_id of image_raw and camera_info (an optical frame)'
    )
    width: int = parameter(
        0,
        "Published width; 0 keeps the source's (or follows height's scale)",
        unit='px',
        value_range=(0, 16384),
    )
    height: int = parameter(
        0,
        "Published height; 0 keeps the source's (or follows width's scale)",
        unit='px',
        value_range=(0, 16384),
    )
    camera: CameraModelParams = CameraModelParams()
    motion: MotionParams = MotionParams()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.frame_id:
            raise ValueError('frame_id must name the camera optical frame, got an empty string')


# ---------------------------------------------------------------- sources (no ROS)


class FrameReader(Protocol):
    """Frames of a source, RGB ``uint8`` ``(H, W, 3)`` at the source's size."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the source's frames."""
        ...

    @property
    def is_video(self) -> bool:
        """Whether frames change by themselves (no synthetic motion then)."""
        ...

    @property
    def native_rate_hz(self) -> float:
        """Frame rate the file states (STILL_IMAGE_RATE_HZ for still images)."""
        ...

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end of a video."""
        ...

    def rewind(self) -> bool:
        """Start again from the first frame; False when that is not possible."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class StillImageReader:
    """One image file, the same frame every time."""

    def __init__(self, path: Path) -> None:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ImageSourceError(
                f'cannot read the image {path}: missing, or a format this OpenCV cannot decode'
            )
        self._rgb = np.ascontiguousarray(bgr[..., ::-1])
        self._rgb.setflags(write=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        height, width = self._rgb.shape[:2]
        return width, height

    @property
    def is_video(self) -> bool:
        """Whether frames change by themselves."""
        return False

    @property
    def native_rate_hz(self) -> float:
        """Frame rate the file states (STILL_IMAGE_RATE_HZ for a still image)."""
        return STILL_IMAGE_RATE_HZ

    def read(self) -> np.ndarray:
        """The next RGB frame, or None at the end of a video."""
        return self._rgb

    def rewind(self) -> bool:
        """Start again from the first frame; False when that is not possible."""
        return True

    def close(self) -> None:
        """Nothing to release: the image is in memory."""


class VideoReader:
    """A video file through ``cv2.VideoCapture`` (BGR frames converted to RGB)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._capture = cv2.VideoCapture(str(path))
        first = self._capture.read()[1] if self._capture.isOpened() else None
        if first is None:
            self._capture.release()
            raise ImageSourceError(
                f'cannot read the video {path}: missing, empty, or a codec this OpenCV build '
                '(opencv-python-headless uses FFmpeg) cannot decode; convert it to H.264 MP4 or '
                'MJPG AVI'
            )
        self._first: np.ndarray | None = first
        height, width = first.shape[:2]
        self._size = (int(width), int(height))
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._rate_hz = fps if math.isfinite(fps) and 0.0 < fps <= 1000.0 else STILL_IMAGE_RATE_HZ

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return self._size

    @property
    def is_video(self) -> bool:
        """Whether frames change by themselves."""
        return True

    @property
    def native_rate_hz(self) -> float:
        """Frame rate the file states (STILL_IMAGE_RATE_HZ for a still image)."""
        return self._rate_hz

    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None at the end of a video."""
        if self._first is not None:
            bgr, self._first = self._first, None
        else:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                return None
        if bgr.ndim == 2:
            return np.ascontiguousarray(np.repeat(bgr[..., None], _RGB_CHANNELS, axis=2))
        if bgr.shape[:2] != (self._size[1], self._size[0]):
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(bgr[..., 2::-1])

    def rewind(self) -> bool:
        """Start again from the first frame; False when that is not possible."""
        if self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return True
        self._capture.release()
        self._capture = cv2.VideoCapture(str(self._path))
        return self._capture.isOpened()

    def close(self) -> None:
        """Release the file."""
        self._capture.release()


def bundled_image_path() -> Path:
    """The bundled photo: resource/data/ of the source checkout, or share/hmr_ros/data/.

    Raises:
        ImageSourceError: found in neither place; set ``source``.
    """
    for folder in (*Path(__file__).resolve().parents, *Path(__file__).absolute().parents):
        for candidate in (
            folder / 'resource' / BUNDLED_IMAGE,
            folder / 'share' / 'hmr_ros' / BUNDLED_IMAGE,
        ):
            if candidate.is_file():
                return candidate
    raise ImageSourceError(
        f'the bundled {BUNDLED_IMAGE} is found neither in a source checkout nor in an install '
        f'prefix (share/hmr_ros/{BUNDLED_IMAGE}) above {Path(__file__).parent}; set the source '
        'parameter to an image or video file'
    )


def open_source(source: str) -> FrameReader:
    """A reader for ``source`` (a still image by its suffix, else a video); '' = bundled image.

    Raises:
        ImageSourceError: the file is missing or unreadable (the message says what to do).
    """
    path = Path(source).expanduser() if source else bundled_image_path()
    if not path.is_file():
        raise ImageSourceError(f'source {str(path)!r} is not a file; give an image or video file')
    if path.suffix.lower() in STILL_IMAGE_SUFFIXES:
        return StillImageReader(path)
    return VideoReader(path)


def output_size(source_size: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """Published (width, height): as given, the source's, or one side scaled by the other."""
    source_width, source_height = source_size
    if width and height:
        return width, height
    if width:
        return width, max(1, round(source_height * width / source_width))
    if height:
        return max(1, round(source_width * height / source_height)), height
    return source_width, source_height


def camera_intrinsics(size: tuple[int, int], camera: CameraModelParams) -> CameraIntrinsics:
    """The intrinsics CameraInfo states for images of ``size`` (see the module docstring)."""
    width, height = size
    fx = camera.fx or (width / 2.0) / math.tan(math.radians(camera.horizontal_fov_deg) / 2.0)
    return CameraIntrinsics(
        fx=fx,
        fy=camera.fy or fx,
        cx=camera.cx or (width - 1) / 2.0,
        cy=camera.cy or (height - 1) / 2.0,
        width=width,
        height=height,
        distortion_model='plumb_bob',
        distortion=(0.0,) * 5,
    )


def intrinsics_are_assumed(camera: CameraModelParams) -> bool:
    """Whether the focal length comes from the assumed field of view (camera.fx is 0)."""
    return camera.fx == 0.0


def motion_crop(
    frame_index: int, rate_hz: float, size: tuple[int, int], motion: MotionParams
) -> tuple[float, float, float, float]:
    """Crop ``(x0, y0, width, height)`` of the still for one frame (pixels, float).

    Time is ``frame_index / rate_hz``. The zoom follows a raised cosine from ``min_zoom`` (at
    time 0) to ``max_zoom`` and back per ``period_s``; the centre moves by sines on both axes
    within ``PAN_FILL`` of the free margin. The crop keeps the image's aspect ratio.
    """
    width, height = size
    time_s = frame_index / rate_hz
    phase = 2.0 * math.pi * time_s / motion.period_s
    zoom = motion.min_zoom + (motion.max_zoom - motion.min_zoom) * 0.5 * (1.0 - math.cos(phase))
    crop_width, crop_height = width / zoom, height / zoom
    pan_x = math.sin(phase / PAN_PERIOD_FACTORS[0])
    pan_y = math.sin(phase / PAN_PERIOD_FACTORS[1])
    centre_x = width / 2.0 + PAN_FILL * (width - crop_width) / 2.0 * pan_x
    centre_y = height / 2.0 + PAN_FILL * (height - crop_height) / 2.0 * pan_y
    return centre_x - crop_width / 2.0, centre_y - crop_height / 2.0, crop_width, crop_height


def render_crop(
    image_rgb: np.ndarray, crop: tuple[float, float, float, float], size: tuple[int, int]
) -> np.ndarray:
    """The crop of ``image_rgb`` resampled to ``size`` (bilinear, sub-pixel exact)."""
    x0, y0, crop_width, crop_height = crop
    width, height = size
    scale_x, scale_y = crop_width / width, crop_height / height
    # Output pixel centre u maps to source x0 + (u + 0.5) * scale_x - 0.5 (centres at integers).
    affine = np.array(
        [
            [scale_x, 0.0, x0 + 0.5 * scale_x - 0.5],
            [0.0, scale_y, y0 + 0.5 * scale_y - 0.5],
        ]
    )
    return cv2.warpAffine(
        image_rgb,
        affine,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def fit_size(image_rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image_rgb`` resized to ``size`` (unchanged when it has that size already)."""
    height, width = image_rgb.shape[:2]
    if (width, height) == size:
        return image_rgb
    shrinking = size[0] < width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image_rgb, size, interpolation=interpolation)


# ---------------------------------------------------------------- messages


def image_message(image_rgb: np.ndarray, header: Header) -> Image:
    """``sensor_msgs/Image`` rgb8 of an ``(H, W, 3)`` uint8 array, rows packed (step = 3 W)."""
    height, width = image_rgb.shape[:2]
    return Image(
        header=header,
        height=height,
        width=width,
        encoding='rgb8',
        is_bigendian=0,
        step=width * _RGB_CHANNELS,
        data=np.ascontiguousarray(image_rgb, dtype=np.uint8).tobytes(),
    )


def camera_info_message(intrinsics: CameraIntrinsics, header: Header) -> CameraInfo:
    """``sensor_msgs/CameraInfo`` of pinhole intrinsics: K, R = I, P = [K | 0], D as given."""
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    info = CameraInfo(
        header=header,
        width=intrinsics.width,
        height=intrinsics.height,
        distortion_model=intrinsics.distortion_model or 'plumb_bob',
    )
    info.d = list(intrinsics.distortion) or [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def camera_output_qos() -> QoSProfile:
    """Reliable, keep last 5, volatile: what camera drivers offer by default (REP 2003).

    Best-effort subscribers (hmr_node's sensor-data input) and reliable ones both receive it.
    """
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=PUBLISHER_DEPTH,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.VOLATILE,
    )


# ---------------------------------------------------------------- the node


class ImageSourceNode(Node):
    """Publishes an image or video file as a camera stream (see the module docstring).

    Args:
        node_name: ROS node name.
        **node_kwargs: passed to ``rclpy.node.Node`` (``context``, ``namespace``,
            ``parameter_overrides``, ``cli_args`` ...).

    Raises:
        ValueError: a parameter is invalid (the message names it), or the source cannot be read
            (:class:`ImageSourceError`).
    """

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._params = declare_node_parameters(self, ImageSourceParams)
        params = self._params
        self._reader = open_source(params.source)
        self._size = output_size(self._reader.size, params.width, params.height)
        self._intrinsics = camera_intrinsics(self._size, params.camera)
        self._rate_hz = params.rate_hz or self._reader.native_rate_hz
        self._moving = params.motion.enable and not self._reader.is_video
        self._frame_index = 0
        self._finished = False
        self._last_stamp: Time | None = None
        options = qos.overriding_options
        self._image_publisher = self.create_publisher(
            Image, IMAGE_TOPIC, camera_output_qos(), qos_overriding_options=options()
        )
        self._info_publisher = self.create_publisher(
            CameraInfo, CAMERA_INFO_TOPIC, camera_output_qos(), qos_overriding_options=options()
        )
        self._timer = self.create_timer(1.0 / self._rate_hz, self._publish_next)
        self._log_start()

    # ------------------------------------------------------------ read-only state

    @property
    def params(self) -> ImageSourceParams:
        """The parameters (read-only after start)."""
        return self._params

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """The intrinsics every CameraInfo states."""
        return self._intrinsics

    @property
    def rate_hz(self) -> float:
        """Frames per second the timer runs at."""
        return self._rate_hz

    @property
    def frames_published(self) -> int:
        """Images published so far."""
        return self._frame_index

    @property
    def finished(self) -> bool:
        """True once a video without ``loop`` has reached its end."""
        return self._finished

    @property
    def last_stamp(self) -> Time | None:
        """Stamp of the last published image."""
        return self._last_stamp

    # ------------------------------------------------------------ publishing

    def _log_start(self) -> None:
        params = self._params
        k = self._intrinsics
        width, height = self._size
        kind = 'video' if self._reader.is_video else 'still image'
        where = params.source or str(bundled_image_path())
        if intrinsics_are_assumed(params.camera):
            camera = (
                f'ASSUMED pinhole intrinsics (horizontal field of view '
                f'{params.camera.horizontal_fov_deg:g} deg, principal point at the centre, no '
                'distortion; set camera.fx/fy/cx/cy for the real camera)'
            )
        else:
            camera = 'given intrinsics'
        motion = (
            f'synthetic pan/zoom {params.motion.min_zoom:g}-{params.motion.max_zoom:g}x every '
            f'{params.motion.period_s:g} s'
            if self._moving
            else 'no synthetic motion'
        )
        self.get_logger().info(
            f'publishing {kind} {where} as {width}x{height} rgb8 at {self._rate_hz:g} Hz on '
            f'{self._image_publisher.topic_name} and {self._info_publisher.topic_name}, '
            f'frame {params.frame_id!r}; {camera}: fx={k.fx:.1f} fy={k.fy:.1f} cx={k.cx:.1f} '
            f'cy={k.cy:.1f}; {motion}'
        )
        self.get_logger().debug(
            'parameters: '
            + ', '.join(f'{n}={v!r}' for n, v in flatten_parameters(self._params).items())
        )

    def next_frame(self) -> np.ndarray | None:
        """The next image to publish at the output size, or None when a video has ended."""
        frame = self._reader.read()
        if frame is None:
            if not self._params.loop or not self._reader.rewind():
                return None
            frame = self._reader.read()
            if frame is None:
                return None
        if self._moving:
            crop = motion_crop(
                self._frame_index, self._rate_hz, self._reader.size, self._params.motion
            )
            return render_crop(frame, crop, self._size)
        return fit_size(frame, self._size)

    def _publish_next(self) -> None:
        if self._finished:
            return
        frame = self.next_frame()
        if frame is None:
            self._finished = True
            self._timer.cancel()
            self.get_logger().info(
                f'end of the video after {self._frame_index} frames (loop is false)'
            )
            return
        stamp = self.get_clock().now().to_msg()
        header = Header(stamp=stamp, frame_id=self._params.frame_id)
        self._info_publisher.publish(camera_info_message(self._intrinsics, header))
        self._image_publisher.publish(image_message(frame, header))
        self._last_stamp = stamp
        self._frame_index += 1

    def destroy_node(self) -> None:
        """Release the file, then the node."""
        self._reader.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run hmr_ros hmr_image_source``."""
    rclpy.init(args=args)
    node: ImageSourceNode | None = None
    try:
        try:
            node = ImageSourceNode()
        except ValueError as error:  # ImageSourceError included
            rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {error}')
            return 2
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            _write_report(node.frames_published)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


REPORT_ENV = 'HMR_IMAGE_SOURCE_REPORT'
"""Environment variable naming a JSON file where the process writes how many images it
published when it stops (hmr_demo counts the camera's own output this way: a subscriber's count
misses what DDS dropped)."""


def _write_report(frames_published: int) -> None:
    path = os.environ.get(REPORT_ENV, '')
    if path:
        Path(path).write_text(json.dumps({'frames_published': int(frames_published)}))


if __name__ == '__main__':
    sys.exit(main(sys.argv))
