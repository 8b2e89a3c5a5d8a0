"""Frame intake without ROS types: image decoding, camera intrinsics and the one-slot hand-off.

The ROS layer passes the raw fields of ``sensor_msgs/Image`` (``data``, ``width``, ``height``,
``step``, ``encoding``, ``is_bigendian``), ``sensor_msgs/CompressedImage`` (``data``, ``format``)
and ``sensor_msgs/CameraInfo`` (``k``, ``p``, ``d``, ``distortion_model``) to the functions here,
so the same code serves the node, the offline CLI and the tests (docs/ros-interface.md,
docs/development.md).

Every decoder returns an ``(H, W, 3)`` ``uint8`` RGB array, the input the models expect. Row
``step`` is honoured (rows may carry padding after ``width * bytes_per_pixel`` bytes). Encodings
already in RGB channel order come back as zero-copy views of the input buffer; a copy is made only
where the colour order or the bit depth has to change.
"""

from __future__ import annotations

import array
import dataclasses
import math
import threading
from collections.abc import Sequence
from typing import Generic, NamedTuple, TypeVar, Union

import cv2
import numpy as np

MAX_IMAGE_SIDE_PX = 8192
"""Default limit on an image's width and height; larger headers are treated as corrupt."""

MAX_IMAGE_PIXELS = 7680 * 4320
"""Default pixel budget of one image (8K UHD, 33 Mpx, 100 MB as RGB), checked from the header
before anything is allocated: a decoded image never costs more than this times 3 bytes."""

RGB_CHANNELS = 3

ImageBuffer = Union[bytes, bytearray, memoryview, array.array, np.ndarray]
"""Anything exposing the buffer protocol: ``bytes`` or ``array.array('B')`` from rclpy, numpy."""


class ImageDecodeError(ValueError):
    """An image buffer cannot be turned into an RGB array (bad sizes or unsupported encoding)."""


class IntrinsicsError(ValueError):
    """Camera intrinsics are missing, non-finite or not a pinhole camera."""


class _EncodingSpec(NamedTuple):
    """Memory layout of one ``sensor_msgs/Image`` encoding and how to reach RGB."""

    channels: int  # interleaved channels per pixel in the buffer
    bytes_per_channel: int  # 1 or 2
    rgb_order: tuple[int, ...]  # buffer channels giving R, G, B (empty: converted by cv2_code)
    cv2_code: int  # cv2.cvtColor code for packed formats, -1 when unused


_YUV_UYVY = _EncodingSpec(2, 1, (), cv2.COLOR_YUV2RGB_UYVY)
_YUV_YUYV = _EncodingSpec(2, 1, (), cv2.COLOR_YUV2RGB_YUY2)

# Names as in sensor_msgs/image_encodings.hpp. ROS's 'yuv422' is UYVY byte order (U Y0 V Y1) and
# 'yuv422_yuy2' is YUYV (Y0 U Y1 V); newer distributions add the explicit aliases 'uyvy'/'yuyv'.
_ENCODINGS: dict[str, _EncodingSpec] = {
    'rgb8': _EncodingSpec(3, 1, (0, 1, 2), -1),
    'bgr8': _EncodingSpec(3, 1, (2, 1, 0), -1),
    'rgba8': _EncodingSpec(4, 1, (0, 1, 2), -1),
    'bgra8': _EncodingSpec(4, 1, (2, 1, 0), -1),
    'mono8': _EncodingSpec(1, 1, (0, 0, 0), -1),
    'rgb16': _EncodingSpec(3, 2, (0, 1, 2), -1),
    'bgr16': _EncodingSpec(3, 2, (2, 1, 0), -1),
    'rgba16': _EncodingSpec(4, 2, (0, 1, 2), -1),
    'bgra16': _EncodingSpec(4, 2, (2, 1, 0), -1),
    'mono16': _EncodingSpec(1, 2, (0, 0, 0), -1),
    'yuv422': _YUV_UYVY,
    'uyvy': _YUV_UYVY,
    'yuv422_yuy2': _YUV_YUYV,
    'yuyv': _YUV_YUYV,
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
"""``sensor_msgs/Image`` encodings accepted by :func:`decode_image`."""

GRAYSCALE_ENCODINGS: frozenset[str] = frozenset({'mono8', 'mono16'})
"""Encodings decoded by replicating one channel; the node may warn once about lower accuracy."""


def _as_byte_array(data: ImageBuffer, what: str) -> np.ndarray:
    """View any C-contiguous buffer as a flat ``uint8`` array without copying."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError) as error:
        raise ImageDecodeError(
            f'{what} data of type {type(data).__name__} is not a contiguous byte buffer '
            f'({error}); pass bytes, bytearray, memoryview, array.array or a C-contiguous '
            'numpy array'
        ) from error


def _check_dimensions(
    width: int, height: int, max_side_px: int, what: str, max_pixels: int = MAX_IMAGE_PIXELS
) -> None:
    """Reject empty and implausibly large images before touching the buffer."""
    for name, value in (('width', width), ('height', height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ImageDecodeError(f'{what} {name} must be an integer, got {value!r}')
    if width <= 0 or height <= 0:
        raise ImageDecodeError(
            f'{what} is empty ({width}x{height} pixels); the publisher sent no image data'
        )
    if width > max_side_px or height > max_side_px:
        raise ImageDecodeError(
            f'{what} is {width}x{height} pixels, above the limit of {max_side_px} pixels per '
            'side; the header is probably corrupt, or raise max_side_px if such images are '
            'intended'
        )
    if width * height > max_pixels:
        raise ImageDecodeError(
            f'{what} is {width}x{height} = {width * height / 1e6:.1f} Mpx, above the budget of '
            f'{max_pixels / 1e6:.1f} Mpx per image; downscale it in the driver (image_proc '
            'resize) or raise max_pixels'
        )


def decode_image(
    data: ImageBuffer,
    width: int,
    height: int,
    step: int,
    encoding: str,
    is_bigendian: bool = False,
    *,
    max_side_px: int = MAX_IMAGE_SIDE_PX,
) -> np.ndarray:
    """Decode the raw fields of a ``sensor_msgs/Image`` into an RGB array.

    Colour handling per encoding:

    - ``rgb8``: zero-copy view of ``data``; ``rgba8``: zero-copy view without the alpha channel
      (not C-contiguous: pixel stride 4 bytes).
    - ``bgr8``, ``bgra8``: channels reordered into a new array.
    - ``mono8``: the grey value replicated into R, G and B (new array). docs/ros-interface.md
      suggests refusing grey input; we convert instead, because infrared and monochrome cameras
      are common on robots and a replicated grey image is the standard way to run an RGB-trained
      network on them: detection and pose still work, with somewhat lower accuracy than on
      colour. Callers can test ``encoding in GRAYSCALE_ENCODINGS`` to warn once.
    - ``rgb16``, ``bgr16``, ``rgba16``, ``bgra16``, ``mono16``: the high byte of each
      ``is_bigendian``-ordered 16-bit sample (full 16-bit range mapped to 8 bits, the ROS
      convention; data from a 12-bit sensor stored unscaled will look dark).
    - ``yuv422``/``uyvy`` (U Y0 V Y1) and ``yuv422_yuy2``/``yuyv`` (Y0 U Y1 V): converted with
      OpenCV's BT.601 video-range YUV 4:2:2 conversion, as ``cv_bridge`` does; width must be even.

    Args:
        data: ``step * height`` bytes (any buffer-protocol object; extra trailing bytes are
            ignored).
        width: Image width in pixels.
        height: Image height in pixels.
        step: Row length in bytes, at least ``width * bytes_per_pixel``; padding after each row's
            pixels is skipped.
        encoding: One of :data:`SUPPORTED_ENCODINGS` (case and surrounding spaces ignored).
        is_bigendian: Byte order of 16-bit samples; ignored for 8-bit encodings.
        max_side_px: Largest accepted width or height; larger headers are rejected as corrupt.

    Returns:
        ``(height, width, 3)`` ``uint8`` RGB. For ``rgb8``/``rgba8`` this is a read-only (when
        ``data`` is read-only) view sharing memory with ``data``; copy it before writing.

    Raises:
        ImageDecodeError: Unsupported encoding, empty or oversized image, ``step`` too small or
            ``data`` too short, odd width for YUV 4:2:2; the message states what was received.
    """
    name = encoding.strip().lower() if isinstance(encoding, str) else encoding
    spec = _ENCODINGS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ImageDecodeError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}'
            ' (republish with image_proc or a format conversion node, e.g. to rgb8 or bgr8)'
        )
    what = f'{name} image'
    _check_dimensions(width, height, max_side_px, what)
    bytes_per_pixel = spec.channels * spec.bytes_per_channel
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise ImageDecodeError(f'{what} step must be an integer number of bytes, got {step!r}')
    if step < width * bytes_per_pixel:
        raise ImageDecodeError(
            f'{what} of width {width} needs a step of at least {width * bytes_per_pixel} bytes '
            f'({bytes_per_pixel} bytes per pixel), got step {step}; the encoding or step field is '
            'wrong'
        )
    if spec.cv2_code >= 0 and width % 2:
        raise ImageDecodeError(
            f'{what} has odd width {width}; YUV 4:2:2 packs two pixels per sample pair, so the '
            'width must be even'
        )
    flat = _as_byte_array(data, what)
    if flat.size < step * height:
        raise ImageDecodeError(
            f'{what} of {width}x{height} pixels with step {step} needs {step * height} bytes, '
            f'got {flat.size}; the message is truncated or its header is wrong'
        )
    # Zero-copy strided view of the pixels, skipping each row's padding.
    dtype: np.dtype = np.dtype(np.uint8)
    if spec.bytes_per_channel == 2:
        dtype = np.dtype('>u2' if is_bigendian else '<u2')
    pixels = np.ndarray(
        shape=(height, width, spec.channels),
        dtype=dtype,
        buffer=flat,
        offset=0,
        strides=(step, bytes_per_pixel, spec.bytes_per_channel),
    )
    if spec.cv2_code >= 0:
        return np.asarray(cv2.cvtColor(pixels, spec.cv2_code))
    if spec.bytes_per_channel == 2:
        # The high byte of each sample, read in place (one allocation: the RGB result).
        high_bytes = np.ndarray(
            shape=(height, width, spec.channels),
            dtype=np.uint8,
            buffer=flat,
            offset=0 if is_bigendian else 1,
            strides=(step, bytes_per_pixel, spec.bytes_per_channel),
        )
        rgb = np.empty((height, width, RGB_CHANNELS), np.uint8)
        for channel, source in enumerate(spec.rgb_order):  # no temporaries, unlike fancy indexing
            rgb[..., channel] = high_bytes[..., source]
        return rgb
    if spec.rgb_order == (0, 1, 2):
        return pixels[..., :RGB_CHANNELS]
    if spec.rgb_order == (0, 0, 0):
        return np.asarray(cv2.cvtColor(pixels[..., 0], cv2.COLOR_GRAY2RGB))
    code = cv2.COLOR_BGR2RGB if spec.channels == 3 else cv2.COLOR_BGRA2RGB
    return np.asarray(cv2.cvtColor(pixels, code))


def decode_compressed(
    data: ImageBuffer, format: str, *, max_side_px: int = MAX_IMAGE_SIDE_PX
) -> np.ndarray:
    """Decode the fields of a ``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) into RGB.

    The codec is detected from the data itself; ``format`` (``'jpeg'``, or image_transport's
    ``'bgr8; jpeg compressed bgr8'``) is only used to refuse depth streams and in messages.
    Grey and 16-bit images are converted to 8-bit RGB like :func:`decode_image` does.

    Args:
        data: The compressed bytes.
        format: The message's ``format`` field.
        max_side_px: Largest accepted width or height of the decoded image.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB, a new C-contiguous array.

    Raises:
        ImageDecodeError: Empty data, a ``compressedDepth`` stream, data OpenCV cannot decode,
            or a decoded image above ``max_side_px``.
    """
    what = f'compressed image (format {format!r})'
    if 'compresseddepth' in str(format).replace(' ', '').lower():
        raise ImageDecodeError(
            f'{what} is a compressedDepth stream (depth, not colour); subscribe the colour image'
        )
    flat = _as_byte_array(data, what)
    if flat.size == 0:
        raise ImageDecodeError(f'{what} has no data; the publisher sent an empty message')
    declared = compressed_image_size(flat)
    if declared is not None:  # refuse oversized images before OpenCV allocates them
        _check_dimensions(declared[0], declared[1], max_side_px, what)
    try:
        bgr = cv2.imdecode(flat, cv2.IMREAD_COLOR)
    except cv2.error as error:
        raise ImageDecodeError(
            f'{what} of {flat.size} bytes could not be decoded by OpenCV ({error}); '
            'expected JPEG or PNG data'
        ) from error
    if bgr is None or bgr.size == 0:
        raise ImageDecodeError(
            f'{what} of {flat.size} bytes could not be decoded by OpenCV; expected JPEG or PNG '
            'data (is the stream truncated?)'
        )
    height, width = bgr.shape[:2]
    _check_dimensions(width, height, max_side_px, what)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr))  # in place: no 2nd copy


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG start-of-frame markers (baseline, progressive, lossless ...), not DHT/JPG/DAC."""


def compressed_image_size(data: np.ndarray) -> tuple[int, int] | None:
    """``(width, height)`` declared in a PNG or JPEG header, without decoding; None if unknown.

    PNG: the IHDR chunk right after the signature (width, height as big-endian uint32). JPEG:
    the first start-of-frame segment (height, width as big-endian uint16 after the precision
    byte), found by walking the marker segments from the start.

    Args:
        data: The compressed bytes as a flat uint8 array.
    """
    head = data[:32].tobytes()
    if head.startswith(_PNG_SIGNATURE) and head[12:16] == b'IHDR':
        return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    if not head.startswith(b'\xff\xd8'):
        return None
    position, size = 2, int(data.size)
    while position + 4 <= size:
        if data[position] != 0xFF:
            return None
        marker = int(data[position + 1])
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        length = int(data[position + 2]) << 8 | int(data[position + 3])
        if marker in _JPEG_SOF_MARKERS and position + 9 <= size:
            height = int(data[position + 5]) << 8 | int(data[position + 6])
            width = int(data[position + 7]) << 8 | int(data[position + 8])
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            return None
        position += 2 + length
    return None


@dataclasses.dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the camera that took a frame (from ``sensor_msgs/CameraInfo``).

    Use :meth:`from_k_matrix` for raw images (``K`` with distortion ``D``) and
    :meth:`from_p_matrix` for rectified images (``P``, no distortion), as docs/ros-interface.md
    prescribes.

    Attributes:
        fx: Focal length along x, pixels (> 0).
        fy: Focal length along y, pixels (> 0).
        cx: Principal point x, pixels.
        cy: Principal point y, pixels.
        width: Image width the calibration refers to, pixels (> 0).
        height: Image height the calibration refers to, pixels (> 0).
        distortion_model: CameraInfo ``distortion_model`` (``plumb_bob``,
            ``rational_polynomial``, ``equidistant``), empty when undistorted.
        distortion: CameraInfo ``d`` coefficients in that model's order.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion_model: str = ''
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ('fx', 'fy', 'cx', 'cy'):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError) as error:
                raise IntrinsicsError(f'camera {name} must be a number, got {value!r}') from error
            if not math.isfinite(number):
                raise IntrinsicsError(
                    f'camera {name} is {number}; camera_info holds non-finite intrinsics, '
                    'recalibrate the camera or fix its driver'
                )
            object.__setattr__(self, name, number)
        if self.fx <= 0.0 or self.fy <= 0.0:
            raise IntrinsicsError(
                f'camera focal lengths must be positive, got fx={self.fx}, fy={self.fy}; an '
                'all-zero K means the camera is not calibrated (run camera_calibration or load a '
                'calibration file in the driver)'
            )
        for name in ('width', 'height'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise IntrinsicsError(
                    f'camera {name} must be a positive integer, got {value!r}; if camera_info '
                    'leaves it 0, pass the image size instead'
                )
            object.__setattr__(self, name, int(value))
        coefficients = tuple(
            float(c) for c in np.asarray(self.distortion, dtype=np.float64).ravel()
        )
        if not all(math.isfinite(c) for c in coefficients):
            raise IntrinsicsError(
                f'camera distortion coefficients must be finite, got {coefficients}'
            )
        object.__setattr__(self, 'distortion', coefficients)
        object.__setattr__(self, 'distortion_model', str(self.distortion_model))

    @classmethod
    def from_k_matrix(
        cls,
        k: Sequence[float] | np.ndarray,
        width: int,
        height: int,
        distortion_model: str = '',
        distortion: Sequence[float] | np.ndarray = (),
    ) -> CameraIntrinsics:
        """Build intrinsics from CameraInfo ``k`` (raw image) and its distortion.

        Args:
            k: 3x3 camera matrix, row-major 9 values or a ``(3, 3)`` array.
            width: Image width, pixels.
            height: Image height, pixels.
            distortion_model: CameraInfo ``distortion_model``.
            distortion: CameraInfo ``d``.

        Raises:
            IntrinsicsError: Wrong size, non-zero skew, last row not ``(0, 0, 1)``, or invalid
                values.
        """
        matrix = _as_matrix(k, (3, 3), 'K')
        return cls._from_camera_matrix(matrix, 'K', width, height, distortion_model, distortion)

    @classmethod
    def from_p_matrix(
        cls, p: Sequence[float] | np.ndarray, width: int, height: int
    ) -> CameraIntrinsics:
        """Build intrinsics from CameraInfo ``p`` (rectified image, no distortion).

        The fourth column (the stereo baseline term ``-fx * Tx``) does not change a single
        camera's projection and is ignored.

        Args:
            p: 3x4 projection matrix, row-major 12 values or a ``(3, 4)`` array.
            width: Image width, pixels.
            height: Image height, pixels.

        Raises:
            IntrinsicsError: Wrong size, non-zero skew, last row not ``(0, 0, 1, 0)``, or invalid
                values.
        """
        matrix = _as_matrix(p, (3, 4), 'P')
        if matrix[2, 3] != 0.0:
            raise IntrinsicsError(
                f'P[2, 3] must be 0 for a pinhole camera, got {matrix[2, 3]}; check camera_info'
            )
        return cls._from_camera_matrix(matrix[:, :3], 'P', width, height, '', ())

    @classmethod
    def _from_camera_matrix(
        cls,
        matrix: np.ndarray,
        name: str,
        width: int,
        height: int,
        distortion_model: str,
        distortion: Sequence[float] | np.ndarray,
    ) -> CameraIntrinsics:
        if not np.all(np.isfinite(matrix)):
            raise IntrinsicsError(
                f'camera matrix {name} has non-finite entries: {matrix.tolist()}'
            )
        if not np.any(matrix):
            raise IntrinsicsError(
                f'camera matrix {name} is all zeros: the camera is not calibrated (run '
                'camera_calibration or load a calibration file in the driver)'
            )
        if not np.allclose(matrix[2], (0.0, 0.0, 1.0)) or matrix[1, 0] != 0.0:
            raise IntrinsicsError(
                f'camera matrix {name} must have the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], '
                f'got {matrix.tolist()}'
            )
        if matrix[0, 1] != 0.0:
            raise IntrinsicsError(
                f'camera matrix {name} has skew {matrix[0, 1]}; only zero-skew pinhole cameras '
                'are supported'
            )
        return cls(
            fx=float(matrix[0, 0]),
            fy=float(matrix[1, 1]),
            cx=float(matrix[0, 2]),
            cy=float(matrix[1, 2]),
            width=width,
            height=height,
            distortion_model=distortion_model,
            distortion=tuple(np.asarray(distortion, dtype=np.float64).ravel().tolist()),
        )

    @property
    def k_matrix(self) -> np.ndarray:
        """``(3, 3)`` float64 camera matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    @property
    def has_distortion(self) -> bool:
        """Whether any distortion coefficient is non-zero (keypoints then need undistorting)."""
        return any(c != 0.0 for c in self.distortion)


def _as_matrix(
    values: Sequence[float] | np.ndarray, shape: tuple[int, int], name: str
) -> np.ndarray:
    """Read a row-major CameraInfo matrix into a float64 array of ``shape``."""
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise IntrinsicsError(f'camera matrix {name} must be numeric, got {values!r}') from error
    if matrix.size != shape[0] * shape[1]:
        raise IntrinsicsError(
            f'camera matrix {name} needs {shape[0] * shape[1]} values ({shape[0]}x{shape[1]}, '
            f'row-major), got {matrix.size}'
        )
    return matrix.reshape(shape)


T = TypeVar('T')


class FrameSlot(Generic[T]):
    """One-slot, drop-oldest, thread-safe hand-off from the image callback to the worker.

    The producer (the ROS callback) calls :meth:`put`, which never blocks: an item the consumer
    has not taken yet is replaced by the newer one and counted as dropped, so the worker always
    runs on the latest frame (docs/ros-interface.md, "latest-frame-wins worker"). The consumer (the
    inference thread) calls :meth:`get`, which blocks until an item arrives, the timeout passes,
    or the slot is closed.

    Counters: ``received`` (every :meth:`put`), ``dropped`` (items replaced, discarded by
    :meth:`clear` or :meth:`close`, or put after close) and ``consumed`` (items returned by
    :meth:`get`). Once the slot is empty, ``received == consumed + dropped``.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self._received = 0
        self._dropped = 0
        self._consumed = 0

    def put(self, item: T) -> bool:
        """Store ``item``, replacing any unconsumed one.

        Returns:
            True when an older, unconsumed item was dropped to make room. On a closed slot the
            item itself is discarded (counted in ``dropped``) and False is returned.
        """
        with self._condition:
            self._received += 1
            if self._closed:
                self._dropped += 1
                return False
            replaced = self._has_item
            if replaced:
                self._dropped += 1
            self._item = item
            self._has_item = True
            self._condition.notify()
            return replaced

    def get(self, timeout: float | None = None) -> T | None:
        """Take the newest item, waiting up to ``timeout`` seconds (None: wait forever).

        Returns:
            The item, or None on timeout or when the slot is closed.
        """
        with self._condition:
            self._condition.wait_for(lambda: self._has_item or self._closed, timeout=timeout)
            if not self._has_item:
                return None
            item = self._item
            self._item = None
            self._has_item = False
            self._consumed += 1
            return item

    def clear(self) -> bool:
        """Discard the pending item, if any (counted as dropped); returns whether one was there."""
        with self._condition:
            had_item = self._has_item
            if had_item:
                self._dropped += 1
            self._item = None
            self._has_item = False
            return had_item

    def close(self) -> None:
        """Discard the pending item and wake every waiting :meth:`get`, which then returns None.

        A closed slot stays closed; make a new one to restart the worker.
        """
        with self._condition:
            if self._has_item:
                self._dropped += 1
            self._item = None
            self._has_item = False
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        with self._condition:
            return self._closed

    @property
    def received(self) -> int:
        """Number of :meth:`put` calls."""
        with self._condition:
            return self._received

    @property
    def dropped(self) -> int:
        """Number of items that never reached :meth:`get`."""
        with self._condition:
            return self._dropped

    @property
    def consumed(self) -> int:
        """Number of items returned by :meth:`get`."""
        with self._condition:
            return self._consumed
