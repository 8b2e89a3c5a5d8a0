"""Where the body adapter samples the HandRoI maps: checked against outside facts.

Two independent references for the MCP sampling points (paper 3.4 / 3.5.2) and the hand joints
the whole-body model reports:

1. A construction: feature maps whose channels are the feature-pixel column and row, run
   through the real ``HandRoI`` (RoIAlign, left-hand flip, its 1x1 conv set to identity) and the
   adapter's real sampler (``BodyAdapter.joint_features``). What the sampler reads back is the
   image position it actually looks at, so it can be compared with the ground-truth point in
   crop pixels. The expected values are worked out by hand from RoIAlign's documented
   semantics, not from the project's formula.
2. The official SMPLer-X formulas, transcribed here as facts (caizhongang/SMPLer-X,
   main/SMPLer_X.py and common/utils/preprocessing.py, commit d3e3c10), for the joints the
   model reports and for where training puts a ground-truth hand joint in the hand heatmap.

The convention and its half-bin offset are written down in docs/model-notes.md ("Hand joints
and MCP sampling points").
"""

import pytest
import torch
from torch import nn

from hmr_ros.models.adapters.body_adapter import (
    BodyAdapter,
    BodyAdapterConfig,
    hand_feature_points_from_crop_px,
)
from hmr_ros.models.heads.smplx_head import PART_NAMES, HandRoI
from hmr_ros.models.whole_body import build_whole_body

# SMPLer-X config (main/config/config_smpler_x_h32.py): input_img_shape (512, 384) is the person
# crop, input_body_shape (256, 192) the ViT image, output_hm_shape (16, 16, 12) the body heatmap,
# output_hand_hm_shape (16, 16, 16) the hand heatmap; upscale 4 gives 64 x 48 HandRoI features.
CROP_HW = (512, 384)
VIT_HW = (256, 192)
BODY_HM_HW = (16, 12)
HAND_HM_HW = (16, 16)
FEATURE_HW = (64, 48)
CROP_PX_PER_FEATURE_PX = CROP_HW[1] / FEATURE_HW[1]  # 8 = 2 (crop / ViT) * 4 (ViT / feature)

# Hand boxes (x1, y1, x2, y2) in ViT pixels, (left, right), two crops; not square and of
# different sizes, so a swapped x / y or a mirrored axis cannot pass by symmetry. RoIAlign's
# adaptive grid is ceil(box / 16) samples per bin: 1 for the small boxes (8 x 12 feature px),
# 3 x 4 for the large ones (40 x 60 feature px). All lie inside the 64 x 48 map.
BOXES_VIT_PX = torch.tensor(
    [
        [[30.5, 70.25, 62.5, 118.25], [120.0, 90.0, 168.0, 126.0]],
        [[4.0, 8.0, 164.0, 248.0], [40.0, 20.0, 176.0, 132.0]],
    ]
)
# Ground-truth MCP points as fractions (fx, fy) of their hand box (x and y differ per point).
FRACTIONS = torch.tensor([[0.13, 0.77], [0.42, 0.25], [0.66, 0.58], [0.91, 0.05]])


def _ground_truth_points_crop_px() -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, 4, 2) ground-truth points and (B, 2, 4) hand boxes, both in crop pixels."""
    boxes_crop = BOXES_VIT_PX * (CROP_HW[1] / VIT_HW[1])  # the crop is the ViT image x 2
    corner, size = boxes_crop[..., None, :2], boxes_crop[..., None, 2:] - boxes_crop[..., None, :2]
    return corner + FRACTIONS * size, boxes_crop


def _coordinate_maps(batch: int) -> torch.Tensor:
    """(B, 2, 64, 48): channel 0 holds each feature pixel's column, channel 1 its row."""
    rows, cols = torch.meshgrid(
        torch.arange(FEATURE_HW[0], dtype=torch.float32),
        torch.arange(FEATURE_HW[1], dtype=torch.float32),
        indexing='ij',
    )
    return torch.stack((cols, rows))[None].expand(batch, -1, -1, -1).contiguous()


def _identity_hand_roi() -> HandRoI:
    """The real HandRoI with its learned parts made transparent.

    The deconvolutions are replaced by the identity (the coordinate maps are given at their
    output size, 64 x 48); they are learned layers with no fixed geometry. The 1x1 conv back to
    C = 8 channels copies channels 0 and 1 and zeroes the rest.
    """
    roi = HandRoI(embed_dim=8)
    roi.deconv = nn.Sequential()
    conv = roi.conv[0]
    assert isinstance(conv, nn.Conv2d) and len(roi.conv) == 1 and conv.bias is not None
    with torch.no_grad():
        conv.weight.copy_(torch.eye(8, 2)[..., None, None])  # (8, 2, 1, 1)
        conv.bias.zero_()
    return roi.eval()


def _identity_adapter() -> BodyAdapter:
    """A body adapter whose 1x1 projection keeps channels 0 and 1 (the coordinates)."""
    config = BodyAdapterConfig(
        in_channels=8, feature_dim=2, dim=8, depth=1, heads=1, dim_head=8, mlp_dim=8,
        regressor_dim=8,
    )  # fmt: skip
    adapter = BodyAdapter(config)
    proj = adapter.feature_proj
    assert proj.bias is not None
    with torch.no_grad():
        proj.weight.copy_(torch.eye(2, 8)[..., None, None])  # (2, 8, 1, 1)
        proj.bias.zero_()
    return adapter.eval()


def _read_back_crop_px(roi: HandRoI, points_hm: torch.Tensor) -> torch.Tensor:
    """(B, 2, 4, 2) the crop-pixel position each sampling point reads in the coordinate maps."""
    with torch.no_grad():
        hand_maps = roi(_coordinate_maps(BOXES_VIT_PX.shape[0]), BOXES_VIT_PX)
        tokens = _identity_adapter().joint_features(hand_maps, points_hm)  # (B, 8, 2)
    return tokens.reshape(points_hm.shape) * CROP_PX_PER_FEATURE_PX


def test_ground_truth_points_read_the_image_half_a_bin_past_themselves_on_both_hands():
    """The sampler reads the ground-truth point shifted by half an RoIAlign bin, the same for
    both hands: +W/32 in x and +H/32 in y (W, H: hand box size in crop pixels).

    Derivation (mmcv ``roi_align``, aligned=False, as SMPLer-X calls it; torchvision documents
    the same legacy rule): a box x1..x2 in feature pixels (ViT pixels x 0.25, ``spatial_scale``
    applied before) is cut into 16 bins of b = (x2 - x1) / 16; bin q averages bilinear samples
    at x1 + q b + (i + 1/2) b / g, i < g, and a feature pixel's value sits at its integer
    coordinate. On a linear ramp bilinear reads are exact, so bin q holds x1 + (q + 1/2) b.
    The left map is flipped along W (torch.flip): its column j holds bin 15 - j. The sampler
    (grid_sample, align_corners=True) reads column j at x = j and interpolates linearly, so at
    a point p it reads x1 + (p + 1/2) b on the right map and x1 + (15 - p + 1/2) b on the left.

    A ground-truth point X in crop pixels is the box-relative cell u = (X - X1) 16 / W in
    SMPLer-X's training targets (SMPLer_X.py lines 281-288); the network is trained to put a
    right joint at p = u and a left joint at 15 - p = u (line 201 restores it, line 347
    compares). Either way the read-back is x1 + (u + 1/2) b, in crop pixels X + W / 32.
    A flip by 16 - u instead would read X - W / 32 on the left hand; no flip, or x and y
    swapped, read far off.
    """
    points_crop, boxes_crop = _ground_truth_points_crop_px()
    points_hm = hand_feature_points_from_crop_px(points_crop, boxes_crop)
    read_back = _read_back_crop_px(_identity_hand_roi(), points_hm)

    half_bin = (boxes_crop[..., None, 2:] - boxes_crop[..., None, :2]) / 32.0  # (B, 2, 1, 2)
    torch.testing.assert_close(read_back, points_crop + half_bin, atol=2e-3, rtol=0)
    # Half a bin is 2 to 15 crop px for these boxes: far above the tolerance.
    assert half_bin.min() >= 2.0


def test_predicted_joints_read_the_image_half_a_bin_past_where_the_model_reports_them():
    """The run-time sampling points (the predicted joints in map cells, left mirrored) and the
    crop-pixel joints ``assemble`` reports for them describe the same place up to the same
    half bin: a predicted cell (right p, left mirrored p) is reported at X1 + p W / 16 and
    X1 + (15 - p) W / 16 (SMPLer-X lines 201 and 356-366); the sampler reads it at
    X1 + (p + 1/2) W / 16 and X1 + (15 - p + 1/2) W / 16 (derivation above)."""
    cells = torch.tensor([[0.0, 15.0], [3.25, 7.5], [8.0, 0.5], [14.75, 11.0]])
    points_hm = cells.expand(BOXES_VIT_PX.shape[0], 2, 4, 2)
    read_back = _read_back_crop_px(_identity_hand_roi(), points_hm)

    boxes_crop = BOXES_VIT_PX * (CROP_HW[1] / VIT_HW[1])
    corner, size = boxes_crop[..., None, :2], boxes_crop[..., None, 2:] - boxes_crop[..., None, :2]
    image_cells = points_hm.clone()
    image_cells[:, 0, :, 0] = 15.0 - image_cells[:, 0, :, 0]  # left map mirrored
    torch.testing.assert_close(
        read_back, corner + (image_cells + 0.5) * size / 16.0, atol=2e-3, rtol=0
    )


# --- The official formulas -----------------------------------------------------------------------


def _official_hand_joints_crop_px(
    joints_hm: torch.Tensor, boxes_vit: torch.Tensor
) -> torch.Tensor:
    """SMPLer-X's test-time hand joints, transcribed (main/SMPLer_X.py).

    Line 201: the left hand's x is restored as ``output_hand_hm_shape[2] - 1 - x`` = 15 - x.
    Lines 356-366: per hand, x * ((x2 - x1) / 192 * 12) / 16 + x1 / 192 * 12 and
    y * ((y2 - y1) / 256 * 16) / 16 + y1 / 256 * 16, boxes in ViT pixels: body heatmap cells.
    common/utils/preprocessing.py lines 205-206 define those cells as crop px / 384 * 12 and
    / 512 * 16, so crop px = cells * 384 / 12 and * 512 / 16.
    """
    x, y = joints_hm[..., 0].clone(), joints_hm[..., 1]
    x[:, 0] = (HAND_HM_HW[1] - 1) - x[:, 0]
    x1, y1, x2, y2 = (boxes_vit[..., None, i] for i in range(4))
    x_cells = x * ((x2 - x1) / VIT_HW[1] * BODY_HM_HW[1]) / HAND_HM_HW[1]
    x_cells = x_cells + x1 / VIT_HW[1] * BODY_HM_HW[1]
    y_cells = y * ((y2 - y1) / VIT_HW[0] * BODY_HM_HW[0]) / HAND_HM_HW[0]
    y_cells = y_cells + y1 / VIT_HW[0] * BODY_HM_HW[0]
    return torch.stack(
        (x_cells * CROP_HW[1] / BODY_HM_HW[1], y_cells * CROP_HW[0] / BODY_HM_HW[0]), dim=-1
    )


def _official_hand_targets(points_crop: torch.Tensor, boxes_vit: torch.Tensor) -> torch.Tensor:
    """SMPLer-X's ground-truth hand joints in hand heatmap cells, transcribed.

    common/utils/preprocessing.py lines 205-206: joint_img = crop px / 384 * 12 (x) and
    / 512 * 16 (y). main/SMPLer_X.py lines 281-288, for both hands alike (no flip):
    x -= x1 / 192 * 12; x *= 16 / ((x2 - x1) / 192 * 12); y likewise with 256 and 16.
    """
    x = points_crop[..., 0] / CROP_HW[1] * BODY_HM_HW[1]
    y = points_crop[..., 1] / CROP_HW[0] * BODY_HM_HW[0]
    x1, y1, x2, y2 = (boxes_vit[..., None, i] for i in range(4))
    x = (x - x1 / VIT_HW[1] * BODY_HM_HW[1]) * (
        HAND_HM_HW[1] / ((x2 - x1) / VIT_HW[1] * BODY_HM_HW[1])
    )
    y = (y - y1 / VIT_HW[0] * BODY_HM_HW[0]) * (
        HAND_HM_HW[0] / ((y2 - y1) / VIT_HW[0] * BODY_HM_HW[0])
    )
    return torch.stack((x, y), dim=-1)


@pytest.fixture(scope='module')
def model_run():
    torch.manual_seed(11)
    model = build_whole_body('smplerx_tiny').eval()
    crops = torch.rand(2, 3, 512, 384, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        stages = model.run_stages(crops)
    return stages, model.assemble(stages, stages.body_pose_6d)


def _hand_boxes_vit(stages) -> torch.Tensor:
    sides = [PART_NAMES.index('left_hand'), PART_NAMES.index('right_hand')]
    return stages.part_boxes_vit_px[:, sides].float()


def test_reported_hand_joints_follow_smplerx_test_time_formula(model_run):
    """``hand_joints_crop_px`` equals the official test-time mapping of the predicted cells,
    left hand restored by 15 - x, for both hands."""
    stages, output = model_run
    expected = _official_hand_joints_crop_px(
        stages.hands.joints_hm[..., :2], _hand_boxes_vit(stages)
    )
    torch.testing.assert_close(output.hand_joints_crop_px, expected, atol=1e-3, rtol=1e-5)


def test_ground_truth_points_land_where_training_puts_the_predicted_joints(model_run):
    """Ground-truth points (not the model's own joints) map to the official training target
    on the right hand and to 15 - target on the left: SMPLer-X compares the left prediction
    restored by 15 - x (SMPLer_X.py line 201) with the unflipped target (line 347), so its
    network learns to put a left joint at 15 - target in the mirrored map. The body adapter's
    ground-truth points must land there, where it samples the predicted joints at run time."""
    stages, output = model_run
    boxes_vit = _hand_boxes_vit(stages)
    generator = torch.Generator().manual_seed(13)
    fractions = 0.05 + 0.9 * torch.rand(2, 2, 4, 2, generator=generator)
    corner, far = boxes_vit[..., None, :2] * 2.0, boxes_vit[..., None, 2:] * 2.0
    points_crop = corner + fractions * (far - corner)

    target = _official_hand_targets(points_crop, boxes_vit)
    expected = target.clone()
    expected[:, 0, :, 0] = (HAND_HM_HW[1] - 1) - target[:, 0, :, 0]
    mapped = hand_feature_points_from_crop_px(points_crop, output.hand_boxes_crop_px)
    torch.testing.assert_close(mapped, expected, atol=1e-4, rtol=1e-5)
