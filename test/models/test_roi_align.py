"""Tests for hmr_ros.models.components.roi_align (mmcv RoIAlign semantics, point sampling)."""

import math

import pytest
import torch
import torch.nn.functional as F

from hmr_ros.models.components.roi_align import roi_align, sample_at_points


def _ramp(height=4, width=4):
    """One image, one channel, f(y, x) = 10 y + x + 1 (a linear function of the pixel)."""
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    xs = torch.arange(width, dtype=torch.float32)[None, :]
    return (10 * ys + xs + 1)[None, None]


def _delta(height=4, width=4, y=1, x=1):
    """One image, one channel, 1 at (y, x) and 0 elsewhere."""
    image = torch.zeros(1, 1, height, width)
    image[0, 0, y, x] = 1.0
    return image


def _reference_roi_align(features, rois, output_size, spatial_scale, sampling_ratio):
    """Point-by-point transcription of the mmcv/torchvision kernel (aligned=False, avg)."""

    def bilinear(channel_map, y, x):
        height, width = channel_map.shape
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return 0.0
        y, x = max(y, 0.0), max(x, 0.0)
        y_low, x_low = int(y), int(x)
        if y_low >= height - 1:
            y_low = y_high = height - 1
            y = float(y_low)
        else:
            y_high = y_low + 1
        if x_low >= width - 1:
            x_low = x_high = width - 1
            x = float(x_low)
        else:
            x_high = x_low + 1
        ly, lx = y - y_low, x - x_low
        hy, hx = 1.0 - ly, 1.0 - lx
        return (
            hy * hx * channel_map[y_low, x_low]
            + hy * lx * channel_map[y_low, x_high]
            + ly * hx * channel_map[y_high, x_low]
            + ly * lx * channel_map[y_high, x_high]
        )

    out_h, out_w = output_size
    features = features.double()
    out = torch.zeros(rois.shape[0], features.shape[1], out_h, out_w, dtype=torch.float64)
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (v * spatial_scale for v in (x1, y1, x2, y2))
        roi_w, roi_h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        bin_w, bin_h = roi_w / out_w, roi_h / out_h
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        for c in range(features.shape[1]):
            channel_map = features[int(b), c]
            for p in range(out_h):
                for q in range(out_w):
                    total = 0.0
                    for i in range(grid_h):
                        y = y1 + p * bin_h + (i + 0.5) * bin_h / grid_h
                        for j in range(grid_w):
                            x = x1 + q * bin_w + (j + 0.5) * bin_w / grid_w
                            total += float(bilinear(channel_map, y, x))
                    out[k, c, p, q] = total / max(grid_h * grid_w, 1)
    return out


def test_linear_map_gives_bin_centres():
    """f = 10y + x + 1 is reproduced exactly by bilinear interpolation inside the map.

    RoI (0, 0, 2, 2) into 2x2 bins: bin size 1, adaptive grid ceil(2/2) = 1, one sample at the
    bin centres y, x in {0.5, 1.5}: [[1 + 5 + 0.5, 1 + 5 + 1.5], [1 + 15 + 0.5, 1 + 15 + 1.5]]
    = [[6.5, 7.5], [16.5, 17.5]].
    """
    rois = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]])
    out = roi_align(_ramp(), rois, (2, 2))
    assert out.shape == (1, 1, 2, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[6.5, 7.5], [16.5, 17.5]]))


def test_border_rules_clamp_and_zero():
    """RoI (2, 2, 6, 6) on a 4x4 map into one bin: bin 4, adaptive grid ceil(4/1) = 4.

    Sample coordinates per axis: 2.5, 3.5, 4.5, 5.5. 2.5 interpolates normally; 3.5 is inside
    [-1, 4] but past the last pixel, so it clamps to 3; 4.5 and 5.5 are beyond 4 and read zero.
    The four valid samples are (y, x) in {2.5, 3}^2 of f = 10y + x + 1:
    sum = 10 * (2.5 + 3) * 2 + (2.5 + 3) * 2 + 4 = 110 + 11 + 4 = 125; divided by 16 = 7.8125.
    """
    rois = torch.tensor([[0.0, 2.0, 2.0, 6.0, 6.0]])
    out = roi_align(_ramp(), rois, (1, 1))
    torch.testing.assert_close(out.flatten(), torch.tensor([7.8125]))


def test_negative_coordinates_and_minimum_size():
    """Left/top border and the legacy minimum RoI size of 1.

    RoI (-2, -2, 0, 0) into 2x2: samples at -1.5 (outside [-1, H]: zero) and -0.5 (clamped
    to 0), so only bin (1, 1) is non-zero and reads f(0, 0) = 1.
    RoI (1, 1, 1.2, 1.2) into 1x1: size max(0.2, 1) = 1, one sample at (1.5, 1.5):
    f = 15 + 1.5 + 1 = 17.5.
    """
    rois = torch.tensor([[0.0, -2.0, -2.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.2, 1.2]])
    out = roi_align(_ramp(), rois, (2, 2))
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    out_small = roi_align(_ramp(), rois[1:], (1, 1))
    torch.testing.assert_close(out_small.flatten(), torch.tensor([17.5]))


@pytest.mark.parametrize(
    ('sampling_ratio', 'expected'),
    [
        # adaptive: ceil(3 / 1) = 3 samples at 0.5, 1.5, 2.5; hat at pixel 1: 0.5, 0.5, 0.
        # Per axis mean 1/3, product 1/9.
        (0, 1.0 / 9.0),
        # one sample at 1.5: 0.5 per axis, 0.25.
        (1, 0.25),
        # two samples at 0.75 and 2.25: 0.75 and 0, mean 0.375 per axis, 0.140625.
        (2, 0.140625),
    ],
)
def test_sample_count_on_a_delta(sampling_ratio, expected):
    """A unit impulse at (1, 1) shows how many points sample the RoI (0, 0, 3, 3)."""
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    out = roi_align(_delta(), rois, (1, 1), sampling_ratio=sampling_ratio)
    torch.testing.assert_close(out.flatten(), torch.tensor([expected]))


def test_spatial_scale_and_batch_index():
    """spatial_scale multiplies the coordinates; the first column picks the image.

    Image 1 holds the ramp plus 100. RoI (0, 0, 8, 8) at scale 0.25 is (0, 0, 2, 2) in feature
    pixels, so image 1 gives the first test's values plus 100 and image 0 gives them unchanged.
    """
    features = torch.cat([_ramp(), _ramp() + 100.0])
    rois = torch.tensor([[1.0, 0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 0.0, 8.0, 8.0]])
    out = roi_align(features, rois, (2, 2), spatial_scale=0.25)
    base = torch.tensor([[6.5, 7.5], [16.5, 17.5]])
    torch.testing.assert_close(out[0, 0], base + 100.0)
    torch.testing.assert_close(out[1, 0], base)


@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_matches_pointwise_reference_on_random_rois(sampling_ratio):
    """Random maps and RoIs (some partly outside, some tiny, some inverted) vs the loop kernel."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 7, 6, generator=generator)
    corners = torch.rand(12, 2, 2, generator=generator) * torch.tensor([30.0, 36.0]) - 4.0
    rois = torch.cat(
        [
            torch.randint(0, 2, (12, 1), generator=generator).float(),
            corners[:, 0],
            corners[:, 0] + corners[:, 1].abs() * 0.8 - 1.0,
        ],
        dim=1,
    )
    expected = _reference_roi_align(features, rois, (3, 4), 0.25, sampling_ratio)
    out = roi_align(features, rois, (3, 4), spatial_scale=0.25, sampling_ratio=sampling_ratio)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_static_grid_cap_is_exact_for_small_rois_and_capped_for_large_ones():
    """max_adaptive_grid keeps shapes static; it only changes RoIs needing more points.

    RoI (0, 0, 3, 3) needs 3 points per bin (output 1x1): a cap of 4 gives the exact 1/9 of the
    delta test, a cap of 2 samples with 2 points (0.140625, the sampling_ratio=2 value).
    """
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    exact = roi_align(_delta(), rois, (1, 1), max_adaptive_grid=4)
    capped = roi_align(_delta(), rois, (1, 1), max_adaptive_grid=2)
    torch.testing.assert_close(exact.flatten(), torch.tensor([1.0 / 9.0]))
    torch.testing.assert_close(capped.flatten(), torch.tensor([0.140625]))


def test_adaptive_grid_is_exact_for_rois_larger_than_and_outside_the_map():
    """The static window of adaptive_slots(size) slots holds every contributing sample.

    An 8 x 6 map and RoIs up to 90 feature pixels (grids up to ceil(90 / 2) = 45 points per
    bin, far more than the map's 6 or 8 pixels), some starting far left of or above the map:
    the result equals the point-by-point mmcv transcription, which enumerates all points.
    """
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(1, 2, 8, 6, generator=generator)
    rois = torch.tensor(
        [
            [0.0, -40.0, -30.0, 50.0, 60.0],
            [0.0, -80.0, 2.0, -10.0, 5.0],
            [0.0, 3.0, -70.0, 4.5, 20.0],
            [0.0, 1.0, 1.0, 5.0, 7.0],
        ]
    )
    expected = _reference_roi_align(features, rois, (2, 2), 1.0, 0)
    torch.testing.assert_close(roi_align(features, rois, (2, 2)).double(), expected)


def test_roi_align_reads_nothing_back_and_exports_to_onnx(tmp_path):
    """No op of the forward synchronises with a device (SyncAudit), and ONNX Runtime's run
    of the exported graph equals eager for boxes inside and beyond the map."""
    from hmr_ros.models.sync_audit import SyncAudit

    ort = pytest.importorskip('onnxruntime')
    features = torch.randn(2, 3, 16, 12)
    rois = torch.tensor([[0.0, 1.0, 2.0, 9.0, 15.0], [1.0, -20.0, -5.0, 40.0, 30.0]])
    with SyncAudit() as audit:
        eager = roi_align(features, rois, (4, 4), 0.5)
    assert not audit.events, audit.summary()

    class Pool(torch.nn.Module):
        def forward(self, features, rois):
            return roi_align(features, rois, (4, 4), 0.5)

    path = tmp_path / 'roi_align.onnx'
    torch.onnx.export(Pool(), (features, rois), str(path), dynamo=True, optimize=False)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    (out,) = session.run(None, dict(zip(names, (features.numpy(), rois.numpy()), strict=True)))
    torch.testing.assert_close(torch.from_numpy(out), eager, atol=1e-5, rtol=1e-4)


def test_empty_rois_and_gradients():
    features = torch.randn(1, 2, 5, 5, requires_grad=True)
    empty = roi_align(features, torch.zeros(0, 5), (2, 2))
    assert empty.shape == (0, 2, 2, 2)
    out = roi_align(features, torch.tensor([[0.0, 0.5, 0.5, 3.5, 4.0]]), (2, 2))
    out.sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ('rois', 'message'),
    [(torch.zeros(2, 4), r'\(K, 5\)'), (torch.zeros(5), r'\(K, 5\)')],
)
def test_rejects_bad_roi_shapes(rois, message):
    with pytest.raises(ValueError, match=message):
        roi_align(torch.zeros(1, 1, 4, 4), rois, (2, 2))


def test_matches_torchvision_when_available():
    """torchvision.ops.roi_align(aligned=False) follows the same kernel as mmcv."""
    ops = pytest.importorskip(
        'torchvision.ops', reason='torchvision is not installed (not a hmr_ros dependency)'
    )
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 4, 12, 10, generator=generator)
    xy = torch.rand(8, 2, generator=generator) * 40.0 - 4.0
    wh = torch.rand(8, 2, generator=generator) * 30.0
    rois = torch.cat([torch.tensor([0.0, 1.0] * 4)[:, None], xy, xy + wh], dim=1)
    expected = ops.roi_align(features, rois, (5, 5), 0.25, 0, aligned=False)
    torch.testing.assert_close(roi_align(features, rois, (5, 5), 0.25), expected)


def test_sample_at_points_reads_pixels_and_interpolates():
    """On the ramp, x = 3 (the last column) and y = 0 read f = 4 exactly, (1.5, 2.25) reads
    the linear value 10 * 2.25 + 1.5 + 1 = 25, and a point half a pixel past the last column
    mixes it with zero padding: x = 3.5, y = 0 gives 0.5 * (10 * 0 + 3 + 1) = 2."""
    points = torch.tensor([[[3.0, 0.0], [1.5, 2.25], [3.5, 0.0]]])
    sampled = sample_at_points(_ramp(), points)
    assert sampled.shape == (1, 3, 1)
    torch.testing.assert_close(sampled[0, :, 0], torch.tensor([4.0, 25.0, 2.0]))


def test_sample_at_points_matches_grid_sample_convention():
    """Same as F.grid_sample with x_norm = 2 x / (W - 1) - 1 (SMPLer-X sample_joint_features)."""
    features = torch.randn(2, 5, 16, 12)
    points = torch.rand(2, 7, 2) * torch.tensor([11.0, 15.0])
    grid = torch.stack([points[..., 0] / 11.0 * 2 - 1, points[..., 1] / 15.0 * 2 - 1], dim=-1)[
        :, :, None
    ]
    expected = F.grid_sample(features, grid, align_corners=True)[..., 0].transpose(1, 2)
    torch.testing.assert_close(sample_at_points(features, points), expected)
