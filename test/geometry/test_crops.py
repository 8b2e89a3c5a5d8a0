"""Tests for hmr_ros.geometry.crops: box helpers and GPU-style crops against cv2."""

import cv2
import numpy as np
import pytest
import torch

from hmr_ros.geometry.crops import (
    apply_affine,
    body_crop_boxes,
    boxes_xyxy_to_center_size,
    center_size_to_boxes_xyxy,
    clip_boxes_xyxy,
    crop_images,
    crop_to_image_affine,
    expand_to_aspect_ratio,
    hand_crop_boxes,
    image_to_crop_affine,
    sanitize_person_boxes,
)


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """Random (h, w, 3) float32 image in [0, 255] with gradients of a few levels per pixel,
    so cv2's 1/32-pixel weight quantisation stays well below the test tolerance."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def cv2_crop(image: np.ndarray, center, size_wh, out_hw, flip: bool) -> np.ndarray:
    """HaMeR/SMPLer-X style crop: 3-point affine (centre, centre + half height down,
    centre + half width right) -> output centre and its edge midpoints; left hands crop the
    horizontally flipped image around W - 1 - cx."""
    h_img, w_img = image.shape[:2]
    cx, cy = center
    if flip:
        image = image[:, ::-1].copy()
        cx = w_img - 1 - cx
    bw, bh = size_wh
    oh, ow = out_hw
    src = np.array([[cx, cy], [cx, cy + bh / 2], [cx + bw / 2, cy]], dtype=np.float32)
    dst = np.array([[ow / 2, oh / 2], [ow / 2, oh], [ow, oh / 2]], dtype=np.float32)
    trans = cv2.getAffineTransform(src, dst)
    return cv2.warpAffine(
        image,
        trans,
        (ow, oh),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


CASES = [
    # centre (x, y), size (w, h), out (h, w), flip
    ((60.3, 45.7), (50.0, 50.0), (64, 64), False),
    ((60.3, 45.7), (50.0, 50.0), (64, 64), True),
    ((10.0, 90.0), (80.0, 106.7), (48, 36), False),  # partly outside: zero border
    ((118.2, 20.5), (37.0, 37.0), (40, 40), True),  # upsampling, outside on the right
]


def test_crop_images_matches_cv2_warp_affine():
    image = smooth_image(100, 128, seed=0)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None]
    for center, size, out_hw, flip in CASES:
        expected = cv2_crop(image, center, size, out_hw, flip)
        got = (
            crop_images(
                batch,
                torch.tensor([center]),
                torch.tensor([size]),
                out_hw,
                flip=torch.tensor([flip]),
            )[0]
            .permute(1, 2, 0)
            .numpy()
        )
        diff = np.abs(got - expected)
        assert diff.max() < 1.0, (center, flip, diff.max())
        assert diff.mean() < 0.1, (center, flip, diff.mean())


def test_crop_images_batched_over_several_images_matches_single_crops():
    """Crops of two images in one call (uneven counts per image, shuffled order) equal the
    crops taken one by one."""
    images = torch.stack(
        [torch.from_numpy(smooth_image(90, 120, seed=s)).permute(2, 0, 1) for s in (1, 2)]
    )
    centers = torch.tensor([[30.0, 40.0], [80.5, 50.0], [60.0, 45.0], [20.0, 70.0]])
    sizes = torch.tensor([[40.0, 40.0], [30.0, 40.0], [90.0, 90.0], [25.0, 25.0]])
    batch_index = torch.tensor([1, 0, 1, 1])
    flip = torch.tensor([False, True, True, False])
    crops = crop_images(images, centers, sizes, (32, 24), batch_index=batch_index, flip=flip)
    assert crops.shape == (4, 3, 32, 24)
    for i in range(4):
        single = crop_images(
            images[batch_index[i] : batch_index[i] + 1],
            centers[i : i + 1],
            sizes[i : i + 1],
            (32, 24),
            flip=flip[i : i + 1],
        )
        torch.testing.assert_close(crops[i : i + 1], single)


def test_crop_images_square_sizes_uint8_and_empty():
    image = torch.randint(0, 256, (1, 3, 40, 50), dtype=torch.uint8)
    crops = crop_images(image, torch.tensor([[25.0, 20.0]]), torch.tensor([10.0]), (10, 10))
    assert crops.dtype == torch.float32 and crops.shape == (1, 3, 10, 10)
    # Side 10 into 10 pixels: an identity resampling of rows 15..24, columns 20..29.
    # Normalised grid coordinates round in float32: exact up to ~1e-3 of 255.
    torch.testing.assert_close(crops[0], image[0, :, 15:25, 20:30].float(), atol=2e-3, rtol=0)
    empty = crop_images(image, torch.zeros(0, 2), torch.zeros(0, 2), (8, 8))
    assert empty.shape == (0, 3, 8, 8)


def test_flipped_crop_is_crop_of_flipped_image():
    """flip=True equals cropping the mirrored image around W - 1 - cx (HaMeR left hands)."""
    image = torch.from_numpy(smooth_image(60, 80, seed=3)).permute(2, 0, 1)[None]
    center = torch.tensor([[30.0, 28.0]])
    size = torch.tensor([[24.0, 24.0]])
    flipped = crop_images(image, center, size, (16, 16), flip=torch.tensor([True]))
    mirrored_center = torch.tensor([[80 - 1 - 30.0, 28.0]])
    expected = crop_images(image.flip(-1), mirrored_center, size, (16, 16))
    torch.testing.assert_close(flipped, expected, atol=2e-3, rtol=0)


def test_affines_map_keypoints_consistently_with_crop():
    """A bright dot at image pixel (x, y) appears in the crop at image_to_crop(x, y)."""
    image = torch.zeros(1, 1, 80, 100)
    image[0, 0, 30, 42] = 1.0
    centers = torch.tensor([[50.0, 40.0], [50.0, 40.0]])
    sizes = torch.tensor([[40.0, 40.0], [40.0, 40.0]])
    flip = torch.tensor([False, True])
    # 40 px box -> 40 px crop: integer mapping, the dot stays a single pixel.
    crops = crop_images(image, centers, sizes, (40, 40), flip=flip)
    to_crop = image_to_crop_affine(centers, sizes, (40, 40), flip)
    uv = apply_affine(torch.tensor([[[42.0, 30.0]], [[42.0, 30.0]]]), to_crop)
    for i in range(2):
        u, v = uv[i, 0].round().long().tolist()
        assert crops[i, 0, v, u] == pytest.approx(1.0)
        assert crops[i, 0].sum() == pytest.approx(1.0)
    # Unflipped: u = 42 - 50 + 20 = 12; flipped: u = -(42 - 50) + 20 = 28.
    torch.testing.assert_close(uv[:, 0, 0], torch.tensor([12.0, 28.0]))
    back = apply_affine(uv, crop_to_image_affine(centers, sizes, (40, 40), flip))
    torch.testing.assert_close(back, torch.tensor([[[42.0, 30.0]], [[42.0, 30.0]]]))


def test_image_to_crop_affine_equals_cv2_transform():
    center, size, out_hw = (60.3, 45.7), (50.0, 80.0), (64, 48)
    src = np.array(
        [[center[0], center[1]], [center[0], center[1] + 40.0], [center[0] + 25.0, center[1]]],
        dtype=np.float32,
    )
    dst = np.array([[24.0, 32.0], [24.0, 64.0], [48.0, 32.0]], dtype=np.float32)
    expected = cv2.getAffineTransform(src, dst)
    got = image_to_crop_affine(torch.tensor([center]), torch.tensor([size]), out_hw)[0]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_hand_crop_boxes_square_side():
    """side = max(2 h, 2 w 4/3): a 30x60 box -> max(120, 80) = 120; a 60x30 box ->
    max(60, 160) = 160."""
    boxes = torch.tensor([[10.0, 20.0, 40.0, 80.0], [0.0, 0.0, 60.0, 30.0]])
    centers, side = hand_crop_boxes(boxes)
    torch.testing.assert_close(centers, torch.tensor([[25.0, 50.0], [30.0, 15.0]]))
    torch.testing.assert_close(side, torch.tensor([120.0, 160.0]))


def test_body_crop_boxes_aspect_then_scale():
    """100x100 -> aspect 0.75 grows h to 133.33 -> x1.25 = (125, 166.67);
    30x100 -> w grows to 75 -> (93.75, 125)."""
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0], [10.0, 10.0, 40.0, 110.0]])
    centers, sizes = body_crop_boxes(boxes)
    torch.testing.assert_close(centers, torch.tensor([[50.0, 50.0], [25.0, 60.0]]))
    torch.testing.assert_close(sizes, torch.tensor([[125.0, 500.0 / 3.0], [93.75, 125.0]]))
    torch.testing.assert_close(sizes[:, 0] / sizes[:, 1], torch.full((2,), 0.75))


def test_body_crop_boxes_follow_smplerx_sanitize_bbox():
    """Official SMPLer-X (common/utils/preprocessing.py) on x, y, w, h in a 640 x 480 image:
    sanitize_bbox: x1 = max(0, x), x2 = min(W - 1, x1 + max(0, w - 1)) (y likewise), w' = x2 - x1;
    process_bbox: c = x1 + w' / 2, grow to w / h = 0.75, times 1.25. By hand:

    - (100, 50, 300, 450), w, h = 200, 400 -> (100, 50, 299, 449), w', h' = 199, 399, centre
      (199.5, 249.5); 199 < 0.75 * 399 -> w = 299.25; x1.25 -> (374.0625, 498.75);
    - (-20, 10, 180, 110), w, h = 200, 100 -> x1 = 0, x2 = 0 + 199 (follows x1, not 180),
      (0, 10, 199, 109), centre (99.5, 59.5); h = 199 / 0.75 = 265.33 -> (248.75, 331.6667);
    - (600, 400, 700, 500) -> x2 = min(639, 699), y2 = min(479, 499): (600, 400, 639, 479),
      w', h' = 39, 79, centre (619.5, 439.5); w = 59.25 -> (74.0625, 98.75).
    """
    boxes = torch.tensor(
        [[100.0, 50.0, 300.0, 450.0], [-20.0, 10.0, 180.0, 110.0], [600.0, 400.0, 700.0, 500.0]]
    )
    image_wh = torch.tensor([640, 480])
    torch.testing.assert_close(
        sanitize_person_boxes(boxes, image_wh),
        torch.tensor(
            [[100.0, 50.0, 299.0, 449.0], [0.0, 10.0, 199.0, 109.0], [600.0, 400.0, 639.0, 479.0]]
        ),
    )
    centers, sizes = body_crop_boxes(boxes, image_wh=image_wh)
    torch.testing.assert_close(
        centers, torch.tensor([[199.5, 249.5], [99.5, 59.5], [619.5, 439.5]])
    )
    torch.testing.assert_close(
        sizes, torch.tensor([[374.0625, 498.75], [248.75, 995.0 / 3.0], [74.0625, 98.75]])
    )


def test_sanitize_keeps_an_empty_box_empty():
    """A box narrower than 1 px: max(0, w - 1) = 0, so x2 = x1 (the official code drops it)."""
    out = sanitize_person_boxes(torch.tensor([[10.0, 10.0, 10.5, 50.0]]), torch.tensor([64, 64]))
    torch.testing.assert_close(out, torch.tensor([[10.0, 10.0, 10.0, 49.0]]))


def test_box_conversions_and_clip():
    boxes = torch.tensor([[-5.0, 3.0, 20.0, 300.0]])
    c, s = boxes_xyxy_to_center_size(boxes)
    torch.testing.assert_close(center_size_to_boxes_xyxy(c, s), boxes)
    clipped = clip_boxes_xyxy(boxes, torch.tensor([100, 200]))
    torch.testing.assert_close(clipped, torch.tensor([[0.0, 3.0, 20.0, 199.0]]))
    torch.testing.assert_close(
        expand_to_aspect_ratio(torch.tensor([[10.0, 10.0]]), (1.0, 2.0)),
        torch.tensor([[10.0, 20.0]]),
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_crop_images_cuda_half_matches_cpu():
    image = torch.from_numpy(smooth_image(720, 1280, seed=4)).permute(2, 0, 1)[None]
    centers = torch.tensor([[1000.3, 500.2], [200.0, 100.0]])
    sizes = torch.tensor([[300.0, 300.0], [120.0, 160.0]])
    flip = torch.tensor([True, False])
    cpu = crop_images(image, centers, sizes, (256, 256), flip=flip)
    gpu = crop_images(
        image.cuda().half(), centers.cuda(), sizes.cuda(), (256, 256), flip=flip.cuda()
    )
    assert gpu.dtype == torch.float16
    torch.testing.assert_close(gpu.float().cpu(), cpu, atol=0.5, rtol=1e-2)


def test_antialias_sigmas_follow_hamer() -> None:
    """d = side / 256 / 2; blur with sigma (d - 1) / 2 only when d > 1.1 (side > 563.2 px)."""
    from hmr_ros.geometry.crops import antialias_sigmas

    sides = torch.tensor([256.0, 563.0, 640.0, 1024.0])
    expected = torch.tensor([0.0, 0.0, (1.25 - 1) / 2, (2.0 - 1) / 2])
    torch.testing.assert_close(antialias_sigmas(sides, 256), expected)


def test_gaussian_blur_matches_cv2_with_edge_replication() -> None:
    from hmr_ros.geometry.crops import gaussian_blur

    image = np.random.default_rng(5).uniform(0, 255, (40, 52, 3)).astype(np.float32)
    sigma = 1.3
    radius = int(4.0 * sigma + 0.5)
    expected = cv2.GaussianBlur(
        image, (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REPLICATE
    )
    got = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1)[None], sigma)[0]
    np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), expected, atol=1e-3)


def test_antialiased_crops_equal_blur_then_warp() -> None:
    """A big hand crop equals HaMeR's recipe (blur the image, then warpAffine); a small one is
    the plain crop; a flipped one is the mirror recipe. On this textured image the blur of the
    1000 px crop (sigma 0.48) changes it by about 1.5 grey levels on average, so a crop without
    it fails the 0.05 bound."""
    from hmr_ros.geometry.crops import crop_images_antialiased

    noise = np.random.default_rng(3).uniform(0, 255, (720, 900, 3)).astype(np.float32)
    image = cv2.GaussianBlur(noise, (0, 0), 0.8)
    images = torch.from_numpy(image).permute(2, 0, 1)[None]
    centers = torch.tensor([[450.0, 360.0], [300.0, 200.0], [500.0, 380.0]])
    sides = torch.tensor([1000.0, 200.0, 800.0])
    flip = torch.tensor([False, False, True])
    crops = crop_images_antialiased(images, centers, sides, 256, None, flip)
    plain = crop_images(images, centers, sides, (256, 256), None, flip)
    for index in range(3):
        side = float(sides[index])
        d = side / 256 / 2
        source = image
        if d > 1.1:
            sigma = (d - 1) / 2
            radius = int(4.0 * sigma + 0.5)
            source = cv2.GaussianBlur(
                image, (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REPLICATE
            )
        expected = cv2_crop(
            source, centers[index].tolist(), (side, side), (256, 256), bool(flip[index])
        )
        assert np.abs(crops[index].permute(1, 2, 0).numpy() - expected).mean() < 0.05, index
    assert np.abs(plain[0].permute(1, 2, 0).numpy() - crops[0].permute(1, 2, 0).numpy()).mean() > 1
