"""Tests for hmr_ros.pipeline.frames: decoding, intrinsics and the one-slot hand-off."""

import array
import threading
import time

import cv2
import numpy as np
import pytest

from hmr_ros.pipeline.frames import (
    GRAYSCALE_ENCODINGS,
    SUPPORTED_ENCODINGS,
    CameraIntrinsics,
    FrameSlot,
    ImageDecodeError,
    IntrinsicsError,
    decode_compressed,
    decode_image,
)

HEIGHT, WIDTH = 3, 4
PAD_BYTE = 0xEE


def known_rgb() -> np.ndarray:
    """A 3x4 RGB image whose every sample differs: value = 20 * pixel_index + 5 * channel."""
    index = np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH, 1)
    return (20 * index + 5 * np.arange(3)).astype(np.uint8)


def pack_rows(pixels: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Lay out (H, W, C) samples as a ROS buffer with `pad` junk bytes after each row."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    padding = np.full((rows.shape[0], pad), PAD_BYTE, dtype=np.uint8)
    packed = np.concatenate([rows, padding], axis=1)
    return packed.tobytes(), packed.shape[1]


def to_16bit(pixels: np.ndarray, big_endian: bool) -> np.ndarray:
    """Widen 8-bit samples to 16 bits with junk in the low byte (0xAB), which decoding drops."""
    wide = pixels.astype(np.uint16) * 256 + 0xAB
    return wide.astype('>u2' if big_endian else '<u2')


def gray_of(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 1]


def encoded(encoding: str, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Return (samples as stored in the buffer, expected RGB result, big-endian flag)."""
    alpha = np.full(rgb.shape[:2] + (1,), 77, dtype=np.uint8)
    gray = gray_of(rgb)[..., None]
    table = {
        'rgb8': (rgb, rgb),
        'bgr8': (rgb[..., ::-1], rgb),
        'rgba8': (np.concatenate([rgb, alpha], axis=2), rgb),
        'bgra8': (np.concatenate([rgb[..., ::-1], alpha], axis=2), rgb),
        'mono8': (gray, np.repeat(gray, 3, axis=2)),
    }
    if encoding in table:
        stored, expected = table[encoding]
        return stored, expected, False
    base, big_endian = encoding.split('/')
    eight_bit = {
        'rgb16': rgb,
        'bgr16': rgb[..., ::-1],
        'rgba16': np.concatenate([rgb, alpha], axis=2),
        'bgra16': np.concatenate([rgb[..., ::-1], alpha], axis=2),
        'mono16': gray,
    }[base]
    expected = np.repeat(gray, 3, axis=2) if base == 'mono16' else rgb
    return to_16bit(eight_bit, big_endian == 'be'), expected, big_endian == 'be'


CASES = [
    'rgb8',
    'bgr8',
    'rgba8',
    'bgra8',
    'mono8',
    'rgb16/le',
    'rgb16/be',
    'bgr16/le',
    'bgr16/be',
    'rgba16/le',
    'bgra16/be',
    'mono16/le',
    'mono16/be',
]


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('pad', [0, 3])
def test_decode_every_encoding_with_and_without_row_padding(case: str, pad: int) -> None:
    rgb = known_rgb()
    stored, expected, big_endian = encoded(case, rgb)
    data, step = pack_rows(np.ascontiguousarray(stored), pad)
    encoding = case.split('/')[0]
    out = decode_image(data, WIDTH, HEIGHT, step, encoding, is_bigendian=big_endian)
    assert out.shape == (HEIGHT, WIDTH, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_every_supported_encoding_is_covered_by_a_test() -> None:
    tested = {case.split('/')[0] for case in CASES} | {'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'}
    assert set(SUPPORTED_ENCODINGS) == tested
    assert GRAYSCALE_ENCODINGS <= set(SUPPORTED_ENCODINGS)


def bt601_video_rgb(y: float, u: float, v: float) -> np.ndarray:
    """BT.601 video-range YUV -> RGB, written out from the standard's coefficients.

    R = 1.164 (Y - 16) + 1.596 (V - 128); G = 1.164 (Y - 16) - 0.813 (V - 128) - 0.391 (U - 128);
    B = 1.164 (Y - 16) + 2.018 (U - 128); clipped to [0, 255].
    """
    luma = 1.164 * (y - 16)
    rgb = [
        luma + 1.596 * (v - 128),
        luma - 0.813 * (v - 128) - 0.391 * (u - 128),
        luma + 2.018 * (u - 128),
    ]
    return np.clip(np.array(rgb), 0, 255)


@pytest.mark.parametrize(
    ('encoding', 'layout'),
    [('yuv422', 'UYVY'), ('uyvy', 'UYVY'), ('yuv422_yuy2', 'YUYV'), ('yuyv', 'YUYV')],
)
@pytest.mark.parametrize('pad', [0, 2])
def test_decode_yuv422_byte_orders(encoding: str, layout: str, pad: int) -> None:
    """Pixel pairs: (black, white) with neutral chroma, then a reddish pair (V high).

    A swapped Y order would put white first; swapped U/V would make the second pair bluish.
    """
    pairs = [(16, 235, 128, 128), (81, 81, 128, 240)]  # (Y0, Y1, U, V)
    rows = []
    for _ in range(2):
        row = []
        for y0, y1, u, v in pairs:
            row += [u, y0, v, y1] if layout == 'UYVY' else [y0, u, y1, v]
        rows.append(row)
    samples = np.array(rows, dtype=np.uint8).reshape(2, 4, 2)
    data, step = pack_rows(samples, pad)
    out = decode_image(data, 4, 2, step, encoding).astype(np.float64)
    expected = [bt601_video_rgb(*yuv) for yuv in [(16, 128, 128), (235, 128, 128)]]
    expected += [bt601_video_rgb(81, 128, 240)] * 2
    for column, rgb in enumerate(expected):
        np.testing.assert_allclose(out[:, column], np.broadcast_to(rgb, (2, 3)), atol=2.0)
    assert out[0, 2, 0] > 200 > out[0, 2, 2]


def test_rgb_and_rgba_are_zero_copy_views_and_bgr_is_a_copy() -> None:
    rgb = known_rgb()
    data = np.frombuffer(pack_rows(rgb, 3)[0], dtype=np.uint8)
    view = decode_image(data, WIDTH, HEIGHT, WIDTH * 3 + 3, 'rgb8')
    assert np.shares_memory(view, data)
    assert not view.flags.writeable  # the ROS buffer must not be written through the result

    rgba = np.concatenate([rgb, np.zeros((HEIGHT, WIDTH, 1), np.uint8)], axis=2)
    rgba_data = np.frombuffer(pack_rows(rgba, 0)[0], dtype=np.uint8)
    assert np.shares_memory(decode_image(rgba_data, WIDTH, HEIGHT, WIDTH * 4, 'rgba8'), rgba_data)

    bgr = decode_image(data, WIDTH, HEIGHT, WIDTH * 3 + 3, 'bgr8')
    assert not np.shares_memory(bgr, data)
    assert bgr.flags.c_contiguous


@pytest.mark.parametrize('kind', ['bytearray', 'memoryview', 'array', 'ndarray'])
def test_decode_accepts_the_buffer_types_rclpy_and_numpy_give(kind: str) -> None:
    raw = known_rgb().tobytes()
    data = {
        'bytearray': bytearray(raw),
        'memoryview': memoryview(raw),
        'array': array.array('B', raw),
        'ndarray': np.frombuffer(raw, np.uint8).copy(),
    }[kind]
    out = decode_image(data, WIDTH, HEIGHT, WIDTH * 3, 'rgb8')
    np.testing.assert_array_equal(out, known_rgb())


def test_encoding_name_is_case_and_space_insensitive() -> None:
    out = decode_image(known_rgb().tobytes(), WIDTH, HEIGHT, WIDTH * 3, ' RGB8 ')
    np.testing.assert_array_equal(out, known_rgb())


GOOD = {'width': WIDTH, 'height': HEIGHT, 'step': WIDTH * 3, 'encoding': 'rgb8'}


@pytest.mark.parametrize(
    ('changes', 'fragments'),
    [
        ({'encoding': '8UC3'}, ["'8UC3'", 'supported', 'rgb8', 'yuv422']),
        ({'encoding': 'bayer_rggb8'}, ['bayer_rggb8', 'supported']),
        ({'encoding': '32FC1'}, ['32FC1', 'supported']),
        ({'width': 0}, ['empty', '0x3']),
        ({'height': 0}, ['empty', '4x0']),
        ({'width': -4}, ['empty']),
        ({'width': 4.0}, ['width', 'integer']),
        ({'step': 11}, ['step of at least 12', 'got step 11']),
        ({'step': 12.0}, ['step', 'integer']),
        ({'data': bytes(35)}, ['needs 36 bytes', 'got 35']),
        ({'data': b''}, ['needs 36 bytes', 'got 0']),
        ({'width': 9000, 'step': 27000}, ['9000x3', 'limit of 8192']),
        ({'encoding': 'yuv422', 'width': 3, 'step': 6}, ['odd width 3', 'even']),
        ({'data': np.zeros((6, 12), np.uint8)[:, ::2]}, ['contiguous', 'ndarray']),
    ],
)
def test_bad_images_raise_with_a_message_saying_what_was_received(
    changes: dict, fragments: list[str]
) -> None:
    arguments = {'data': bytes(36), **GOOD, **changes}
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(**arguments)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_size_limit_is_configurable() -> None:
    data = bytes(36)
    decode_image(data, WIDTH, HEIGHT, WIDTH * 3, 'rgb8', max_side_px=4)
    with pytest.raises(ImageDecodeError, match='limit of 3'):
        decode_image(data, WIDTH, HEIGHT, WIDTH * 3, 'rgb8', max_side_px=3)


def test_decode_compressed_png_is_exact_and_rgb_ordered() -> None:
    """PNG is lossless: the decoded image must equal the original, in RGB order."""
    rgb = known_rgb()
    ok, png = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    out = decode_compressed(png.tobytes(), 'bgr8; png compressed bgr8')
    np.testing.assert_array_equal(out, rgb)


def test_decode_compressed_jpeg_keeps_red_red() -> None:
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(red, cv2.COLOR_RGB2BGR))
    assert ok
    out = decode_compressed(jpeg, 'jpeg')
    assert out.shape == (16, 16, 3)
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), [255, 0, 0], atol=4)


def test_decode_compressed_grey_png_becomes_rgb() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    ok, png = cv2.imencode('.png', gray)
    assert ok
    out = decode_compressed(png, 'mono8; png compressed ')
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


@pytest.mark.parametrize(
    ('data', 'format', 'fragment'),
    [
        (b'', 'jpeg', 'no data'),
        (b'not an image at all', 'jpeg', 'could not be decoded'),
        (b'\x89PNG\r\n\x1a\n' + bytes(20), 'png', 'could not be decoded'),
        (bytes(64), '16UC1; compressedDepth png', 'compressedDepth'),
    ],
)
def test_decode_compressed_errors(data: bytes, format: str, fragment: str) -> None:
    with pytest.raises(ImageDecodeError, match=fragment) as caught:
        decode_compressed(data, format)
    assert repr(format) in str(caught.value)


def test_decode_compressed_applies_the_size_limit() -> None:
    ok, png = cv2.imencode('.png', np.zeros((8, 10, 3), np.uint8))
    assert ok
    with pytest.raises(ImageDecodeError, match='10x8'):
        decode_compressed(png, 'png', max_side_px=9)


def test_intrinsics_from_k_matrix() -> None:
    k = [500.0, 0.0, 320.5, 0.0, 510.0, 240.25, 0.0, 0.0, 1.0]
    d = [0.1, -0.05, 0.0, 0.0, 0.01]
    intrinsics = CameraIntrinsics.from_k_matrix(k, 640, 480, 'plumb_bob', np.array(d))
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (
        500,
        510,
        320.5,
        240.25,
    )
    assert (intrinsics.width, intrinsics.height) == (640, 480)
    assert intrinsics.distortion == tuple(d)
    assert intrinsics.has_distortion
    np.testing.assert_array_equal(intrinsics.k_matrix, np.array(k).reshape(3, 3))
    assert CameraIntrinsics.from_k_matrix(np.array(k).reshape(3, 3), 640, 480) == (
        CameraIntrinsics(500.0, 510.0, 320.5, 240.25, 640, 480)
    )


def test_intrinsics_from_p_matrix_ignores_the_stereo_baseline_term() -> None:
    p = [400.0, 0.0, 300.0, -400.0 * 0.12, 0.0, 400.0, 200.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    intrinsics = CameraIntrinsics.from_p_matrix(p, 600, 400)
    assert intrinsics == CameraIntrinsics(400.0, 400.0, 300.0, 200.0, 600, 400)
    assert not intrinsics.has_distortion
    assert intrinsics.distortion_model == ''


@pytest.mark.parametrize(
    ('build', 'fragment'),
    [
        (lambda: CameraIntrinsics.from_k_matrix([0.0] * 9, 640, 480), 'not calibrated'),
        (lambda: CameraIntrinsics(float('nan'), 500, 320, 240, 640, 480), 'fx is nan'),
        (lambda: CameraIntrinsics(500, 500, float('inf'), 240, 640, 480), 'cx is inf'),
        (lambda: CameraIntrinsics(500, -500, 320, 240, 640, 480), 'fy=-500'),
        (lambda: CameraIntrinsics(500, 500, 320, 240, 0, 480), 'width must be a positive'),
        (lambda: CameraIntrinsics(500, 500, 320, 240, 640, 480.0), 'height must be a positive'),
        (
            lambda: CameraIntrinsics(
                500, 500, 320, 240, 640, 480, 'plumb_bob', (0.1, float('nan'))
            ),
            'distortion',
        ),
        (lambda: CameraIntrinsics('a', 500, 320, 240, 640, 480), 'must be a number'),
        (
            lambda: CameraIntrinsics.from_k_matrix([500.0, 0, 320, 0, 500, 240], 640, 480),
            'needs 9',
        ),
        (
            lambda: CameraIntrinsics.from_k_matrix([500, 2, 320, 0, 500, 240, 0, 0, 1], 640, 480),
            'skew',
        ),
        (
            lambda: CameraIntrinsics.from_k_matrix([500, 0, 320, 0, 500, 240, 0, 0, 2], 640, 480),
            '[0, 0, 1]',
        ),
        (
            lambda: CameraIntrinsics.from_k_matrix(
                [500, 0, 320, 0, 500, float('nan'), 0, 0, 1], 640, 480
            ),
            'non-finite',
        ),
        (
            lambda: CameraIntrinsics.from_p_matrix(
                [500, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 3], 640, 480
            ),
            'P[2, 3]',
        ),
    ],
)
def test_invalid_intrinsics_raise_with_a_clear_message(build, fragment: str) -> None:
    with pytest.raises(IntrinsicsError) as caught:
        build()
    assert fragment in str(caught.value)


def test_intrinsics_are_frozen() -> None:
    intrinsics = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
    with pytest.raises(AttributeError):
        intrinsics.fx = 1.0  # type: ignore[misc]


def test_frame_slot_keeps_only_the_newest_item_and_counts_drops() -> None:
    slot: FrameSlot[int] = FrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert (slot.received, slot.dropped, slot.consumed) == (3, 2, 0)
    assert slot.get(timeout=0.0) == 3
    assert slot.get(timeout=0.0) is None
    assert (slot.received, slot.dropped, slot.consumed) == (3, 2, 1)


def test_frame_slot_get_times_out_quickly_when_empty() -> None:
    slot: FrameSlot[int] = FrameSlot()
    start = time.monotonic()
    assert slot.get(timeout=0.02) is None
    assert 0.015 <= time.monotonic() - start < 0.5


def test_frame_slot_get_blocks_until_a_put_from_another_thread() -> None:
    slot: FrameSlot[str] = FrameSlot()
    threading.Timer(0.01, slot.put, args=('frame',)).start()
    assert slot.get(timeout=2.0) == 'frame'


def test_frame_slot_clear_and_close() -> None:
    slot: FrameSlot[int] = FrameSlot()
    slot.put(1)
    assert slot.clear() is True
    assert slot.clear() is False
    slot.put(2)
    results: list[int | None] = []
    waiter = threading.Thread(target=lambda: results.append(slot.get(timeout=5.0)))
    slot.get()  # take 2 so the waiter below really waits
    waiter.start()
    time.sleep(0.01)
    slot.close()
    waiter.join(timeout=2.0)
    assert not waiter.is_alive()
    assert results == [None]
    assert slot.closed
    assert slot.put(3) is False
    assert slot.get(timeout=0.0) is None
    assert (slot.received, slot.dropped, slot.consumed) == (3, 2, 1)


def test_frame_slot_under_a_producer_faster_than_the_consumer() -> None:
    """500 frames put back to back while the consumer spends ~1 ms per frame.

    Expectations: every frame is either consumed or dropped, at least one is dropped, the
    consumer sees frames in increasing order, and the last frame put is the last one consumed.
    """
    slot: FrameSlot[int] = FrameSlot()
    frames = 500
    consumed: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while True:
            item = slot.get(timeout=1.0)
            if item is None:
                return
            consumed.append(item)
            if item == frames - 1:
                done.set()
                return
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    drops_reported = sum(slot.put(frame) for frame in range(frames))
    assert done.wait(timeout=5.0)
    consumer.join(timeout=2.0)
    assert slot.received == frames
    assert slot.consumed == len(consumed)
    assert slot.dropped == drops_reported == frames - len(consumed)
    assert slot.dropped > 0
    assert consumed == sorted(set(consumed))
    assert consumed[-1] == frames - 1


# ---------------------------------------------------------------- decode memory


def _peak_bytes(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    """(result, peak bytes allocated while it ran; numpy and OpenCV outputs are traced)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ('encoding', 'bytes_per_pixel', 'bigendian'),
    [('bgr8', 3, False), ('rgb16', 6, False), ('bgr16', 6, True), ('mono16', 2, False)],
)
def test_raw_decode_allocates_the_result_once(encoding, bytes_per_pixel, bigendian) -> None:
    """A converted image costs one RGB array: no 16-bit temporaries, no second copy (a 64 MB
    image raised the node's memory by about 1 GB)."""
    width, height = 1024, 768
    data = np.random.default_rng(3).integers(0, 256, width * height * bytes_per_pixel, np.uint8)
    image, peak = _peak_bytes(
        decode_image, data.tobytes(), width, height, width * bytes_per_pixel, encoding, bigendian
    )
    assert image.shape == (height, width, 3)
    assert peak < 1.1 * image.nbytes
    if bytes_per_pixel == 6:  # the high byte of each sample, per the endianness
        samples = data.reshape(height, width, 3, 2)
        high = samples[..., 0] if bigendian else samples[..., 1]
        order = [2, 1, 0] if encoding.startswith('bgr') else [0, 1, 2]
        np.testing.assert_array_equal(image, high[..., order])


@pytest.mark.parametrize('extension', ['.png', '.jpg'])
def test_compressed_decode_converts_in_place(extension) -> None:
    bgr = np.random.default_rng(4).integers(0, 256, (600, 800, 3), np.uint8)
    encoded = cv2.imencode(extension, bgr)[1].tobytes()
    image, peak = _peak_bytes(decode_compressed, encoded, extension[1:])
    assert image.shape == (600, 800, 3)
    assert peak < 1.1 * image.nbytes + len(encoded)


@pytest.mark.parametrize('extension', ['.png', '.jpg'])
def test_compressed_header_size_matches_the_encoder(extension) -> None:
    """The size OpenCV's encoder wrote (outside fact) is read back from the header alone."""
    from hmr_ros.pipeline.frames import compressed_image_size

    encoded = cv2.imencode(extension, np.zeros((37, 91, 3), np.uint8))[1]
    assert compressed_image_size(encoded.ravel()) == (91, 37)
    assert compressed_image_size(np.frombuffer(b'GIF89a' + bytes(30), np.uint8)) is None


def test_oversized_compressed_images_are_refused_before_decoding() -> None:
    """A PNG whose IHDR declares 20000 x 20000 (1.2 GB as RGB) is refused from its header,
    allocating nothing of that size; raw images above the pixel budget likewise."""
    png = bytearray(cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    png[16:24] = (20000).to_bytes(4, 'big') * 2
    with pytest.raises(ImageDecodeError, match='20000x20000'):
        _peak_bytes(decode_compressed, bytes(png), 'png', max_side_px=30000)
    with pytest.raises(ImageDecodeError, match='Mpx'):
        decode_image(b'', 8000, 8000, 8000 * 3, 'rgb8')
