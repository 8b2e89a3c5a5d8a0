"""Tests for hmr_ros.models.heads.smplx_head (SMPLer-X heads, reference B.4 and B.7)."""

import pytest
import torch

from hmr_ros.models.components.roi_align import roi_align
from hmr_ros.models.heads.smplx_head import (
    BODY_HEATMAP_DHW,
    BODY_POSITION_JOINT_NAMES,
    HAND_MCP_JOINT_INDICES,
    HAND_POSITION_JOINT_NAMES,
    BodyRegressor,
    BoxNet,
    FaceRegressor,
    HandRegressor,
    HandRoI,
    PositionNet,
    SMPLXHeadConfig,
    heatmap_peak_mass,
    restore_part_boxes,
    soft_argmax_2d,
    soft_argmax_3d,
)

C = 384  # S32 width: the B.7 shapes below are written for it


def _shapes(module):
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def _bn(prefix, channels):
    return {
        f'{prefix}.weight': (channels,),
        f'{prefix}.bias': (channels,),
        f'{prefix}.running_mean': (channels,),
        f'{prefix}.running_var': (channels,),
        f'{prefix}.num_batches_tracked': (),
    }


def test_joint_name_tables():
    """25 body and 20 hand position joints; the MCP joints are the first joint of index to
    pinky: index1 = 4 * 1, middle1 = 4 * 2, ring1 = 4 * 3, pinky1 = 4 * 4 (thumb1..4 first)."""
    assert len(BODY_POSITION_JOINT_NAMES) == 25 == len(set(BODY_POSITION_JOINT_NAMES))
    assert len(HAND_POSITION_JOINT_NAMES) == 20
    assert HAND_POSITION_JOINT_NAMES[:4] == ('thumb1', 'thumb2', 'thumb3', 'thumb4')
    assert HAND_MCP_JOINT_INDICES == (4, 8, 12, 16)


def test_official_keys_and_shapes_of_each_head():
    """Keys, shapes and BatchNorm buffers of reference B.7 for C = 384 (S32)."""
    with torch.device('meta'):
        body_position = PositionNet(C, 25, BODY_HEATMAP_DHW)
        body_regressor = BodyRegressor(C)
        box_net = BoxNet(C)
        hand_roi = HandRoI(C)
        hand_position = PositionNet(C, 20, (16, 16, 16))
        hand_regressor = HandRegressor(C)
        face = FaceRegressor(C)
    assert _shapes(body_position) == {'conv.0.weight': (400, C, 1, 1), 'conv.0.bias': (400,)}
    assert _shapes(body_regressor) == {
        'body_conv.0.weight': (512, C),
        'body_conv.0.bias': (512,),
        'root_pose_out.0.weight': (6, 12875),
        'root_pose_out.0.bias': (6,),
        'body_pose_out.0.weight': (126, 12875),
        'body_pose_out.0.bias': (126,),
        'shape_out.0.weight': (10, C),
        'shape_out.0.bias': (10,),
        'cam_out.0.weight': (3, C),
        'cam_out.0.bias': (3,),
    }
    expected_box = {
        'deconv.0.weight': (C + 400, 256, 4, 4),
        **_bn('deconv.1', 256),
        'deconv.3.weight': (256, 256, 4, 4),
        **_bn('deconv.4', 256),
        'deconv.6.weight': (256, 256, 4, 4),
        **_bn('deconv.7', 256),
        'bbox_center.0.weight': (3, 256, 1, 1),
        'bbox_center.0.bias': (3,),
    }
    for part in ('lhand', 'rhand', 'face'):
        expected_box |= {
            f'{part}_size.0.weight': (256, 256),
            f'{part}_size.0.bias': (256,),
            f'{part}_size.2.weight': (2, 256),
            f'{part}_size.2.bias': (2,),
        }
    assert _shapes(box_net) == expected_box
    assert _shapes(hand_roi) == {
        'deconv.0.weight': (C, C // 2, 4, 4),
        **_bn('deconv.1', C // 2),
        'deconv.3.weight': (C // 2, C // 4, 4, 4),
        **_bn('deconv.4', C // 4),
        'conv.0.weight': (C, C // 4, 1, 1),
        'conv.0.bias': (C,),
    }
    assert _shapes(hand_position) == {'conv.0.weight': (320, C, 1, 1), 'conv.0.bias': (320,)}
    assert _shapes(hand_regressor) == {
        'hand_conv.0.weight': (512, C, 1, 1),
        'hand_conv.0.bias': (512,),
        **_bn('hand_conv.1', 512),
        'hand_pose_out.0.weight': (90, 10300),
        'hand_pose_out.0.bias': (90,),
    }
    assert _shapes(face) == {
        'expr_out.0.weight': (10, C),
        'expr_out.0.bias': (10,),
        'jaw_pose_out.0.weight': (6, C),
        'jaw_pose_out.0.bias': (6,),
    }


def test_soft_argmax_3d_on_peaked_and_flat_heatmaps():
    """A logit of 100 at (d, h, w) = (3, 5, 7) puts all mass there: (x, y, z) = (7, 5, 3).
    Flat logits give the grid centre ((W - 1) / 2, (H - 1) / 2, (D - 1) / 2) = (5.5, 7.5, 7.5)
    for D, H, W = 16, 16, 12."""
    logits = torch.zeros(1, 2, 16, 16, 12)
    logits[0, 0, 3, 5, 7] = 100.0
    probs, coords = soft_argmax_3d(logits)
    torch.testing.assert_close(coords[0, 0], torch.tensor([7.0, 5.0, 3.0]))
    torch.testing.assert_close(coords[0, 1], torch.tensor([5.5, 7.5, 7.5]))
    torch.testing.assert_close(probs.sum(dim=(2, 3, 4)), torch.ones(1, 2))


def test_soft_argmax_2d_weights_two_peaks():
    """Equal logits at (x, y) = (1, 2) and (5, 0), -inf elsewhere: mean (3, 1)."""
    logits = torch.full((1, 1, 4, 8), float('-inf'))
    logits[0, 0, 2, 1] = 0.0
    logits[0, 0, 0, 5] = 0.0
    torch.testing.assert_close(soft_argmax_2d(logits)[0, 0], torch.tensor([3.0, 1.0]))


def test_position_net_reads_channels_as_joint_major_depth():
    """Channel j * D + d is joint j at depth d: a bias of 50 on channel 1 * 16 + 9 (joint 1,
    depth 9) with zero weights gives joint 1 a flat 16 x 12 plane at z = 9, so
    (x, y, z) = (5.5, 7.5, 9)."""
    net = PositionNet(8, 25, BODY_HEATMAP_DHW)
    with torch.no_grad():
        net.conv[0].weight.zero_()
        net.conv[0].bias.zero_()
        net.conv[0].bias[1 * 16 + 9] = 50.0
    out = net(torch.randn(2, 8, 16, 12))
    assert out.heatmap.shape == (2, 25, 16, 16, 12)
    torch.testing.assert_close(out.joints_hm[:, 1], torch.tensor([[5.5, 7.5, 9.0]] * 2))


def _body_heatmap(cells: dict[tuple[int, int, int], float]) -> torch.Tensor:
    """(1, 1, 16, 16, 12) heatmap with the given (d, h, w) -> probability entries."""
    heatmap = torch.zeros(1, 1, *BODY_HEATMAP_DHW)
    for (d, h, w), p in cells.items():
        heatmap[0, 0, d, h, w] = p
    return heatmap


def test_peak_mass_of_peaked_flat_and_split_heatmaps():
    """Hand derivation on the 16 x 12 body grid with a 3 x 3 window, m_u = 9 / 192 = 0.046875:

    - all mass in one cell: m = 1 -> score (1 - m_u) / (1 - m_u) = 1;
    - uniform over the 3072 cells: every interior block holds 9 * 16 / 3072 = 9/192 = m_u -> 0;
    - half the mass at (h, w) = (2, 2), half at (12, 9) (> 3 cells apart): m = 0.5 ->
      (0.5 - 0.046875) / 0.953125 = 0.475410; depth does not matter (2D marginal);
    - mass spread evenly over a 3 x 3 block in one depth slice: m = 1 -> 1 (a block, not a cell);
    - 0.6 in one cell and 0.4 spread uniformly: m = 0.6 + 0.4 * 9/192 = 0.61875 ->
      (0.61875 - 0.046875) / 0.953125 = 0.6.
    """
    one = _body_heatmap({(4, 7, 5): 1.0})
    flat = torch.full((1, 1, *BODY_HEATMAP_DHW), 1.0 / (16 * 16 * 12))
    split = _body_heatmap({(0, 2, 2): 0.5, (15, 12, 9): 0.5})
    block = _body_heatmap({(8, 6 + i, 4 + k): 1.0 / 9 for i in range(3) for k in range(3)})
    mixed = 0.6 * _body_heatmap({(3, 10, 3): 1.0}) + 0.4 * flat
    scores = heatmap_peak_mass(torch.cat((one, flat, split, block, mixed), dim=1))
    expected = torch.tensor([[1.0, 0.0, 0.475410, 1.0, 0.6]])
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)


def test_peak_mass_corner_peak_and_hand_grid():
    """A single-cell peak in the corner still scores 1 (zero padding only lowers blocks that hang
    over the edge, the block centred on the corner holds the cell); on a 16 x 16 hand grid a
    uniform heatmap gives m_u = 9/256 -> 0. NaN heatmaps score 0."""
    corner = _body_heatmap({(0, 0, 0): 1.0})
    hand_flat = torch.full((1, 1, 16, 16, 16), 1.0 / 16**3)
    nan = torch.full((1, 1, *BODY_HEATMAP_DHW), float('nan'))
    assert heatmap_peak_mass(corner).item() == pytest.approx(1.0)
    assert heatmap_peak_mass(hand_flat).item() == pytest.approx(0.0, abs=1e-6)
    assert heatmap_peak_mass(nan).item() == 0.0


def test_position_net_confidence_from_scripted_logits():
    """Zero weights, bias 100 on channel 2 * 16 + 5 (joint 2, depth 5): joint 2's mass all lies
    at depth 5 but evenly over the 16 x 12 plane, so its image-plane peak mass is m_u -> 0, like
    the flat joints. Weights 1 and features 10 in one grid cell (h, w) = (9, 4): every channel's
    logit is 80 there and 0 elsewhere, so every joint's image-plane mass sits in that cell -> 1,
    at (x, y) = (4, 9)."""
    net = PositionNet(8, 25, BODY_HEATMAP_DHW)
    with torch.no_grad():
        net.conv[0].weight.zero_()
        net.conv[0].bias.zero_()
        net.conv[0].bias[2 * 16 + 5] = 100.0
    out = net(torch.randn(2, 8, 16, 12))
    assert out.confidence.shape == (2, 25)
    torch.testing.assert_close(out.confidence, torch.zeros(2, 25), atol=1e-5, rtol=0)
    with torch.no_grad():
        net.conv[0].weight.fill_(1.0)
    features = torch.zeros(1, 8, 16, 12)
    features[0, :, 9, 4] = 10.0  # logits 80 at (h, w) = (9, 4), 0 elsewhere
    peaked = net(features)
    torch.testing.assert_close(peaked.confidence, torch.ones(1, 25), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        peaked.joints_hm[0, 0, :2], torch.tensor([4.0, 9.0]), atol=1e-4, rtol=0
    )


def test_restore_part_boxes_by_hand():
    """Centres (6, 8) cells = (96, 128) ViT px (16 px per cell).

    Left hand, size (2, 1) cells = (32, 16) px: w > h so h = 32; x2 ext 2: 64 x 64 around the
    centre: (64, 96, 128, 160).
    Right hand, size (-2, 1) = (-32, 16) px: w < h so w = 16; x2: 32 x 32: (80, 112, 112, 144).
    Face, size (1, 3) = (16, 48) px: w < h so w = 48; x1.5: 72 x 72: (60, 92, 132, 164).
    """
    centers = torch.tensor([[[6.0, 8.0]] * 3])
    sizes = torch.tensor([[[2.0, 1.0], [-2.0, 1.0], [1.0, 3.0]]])
    boxes = restore_part_boxes(centers, sizes)
    expected = torch.tensor(
        [[[64.0, 96.0, 128.0, 160.0], [80.0, 112.0, 112.0, 144.0], [60.0, 92.0, 132.0, 164.0]]]
    )
    torch.testing.assert_close(boxes, expected)


def test_box_net_uniform_centre_heatmap_gives_grid_centre():
    """Zero centre logits: a uniform 128 x 96 map, centre ((96 - 1) / 2, (128 - 1) / 2) =
    (47.5, 63.5) px of BoxNet, divided by 8: (5.9375, 7.9375) body heatmap cells."""
    net = BoxNet(16, box_channels=8).eval()
    with torch.no_grad():
        net.bbox_center[0].weight.zero_()
        net.bbox_center[0].bias.zero_()
    out = net(torch.randn(2, 16, 16, 12), torch.rand(2, 25, 16, 16, 12))
    torch.testing.assert_close(
        out.centers_hm, torch.full((2, 3, 2), 0.0) + torch.tensor([5.9375, 7.9375])
    )
    assert out.sizes_hm.shape == (2, 3, 2)


def test_hand_roi_flips_left_and_scales_boxes_to_feature_pixels():
    """Both sides get the same box: the left crop is the right crop mirrored along W.

    The boxes are in 256 x 192 ViT pixels and the deconvolved map is 64 x 48, so the RoI is the
    box times 0.25; the right crop equals roi_align of the deconv output followed by the 1x1
    conv.
    """
    roi = HandRoI(16).eval()
    features = torch.randn(2, 16, 16, 12)
    boxes = torch.tensor([[20.0, 40.0, 84.0, 104.0], [100.0, 120.0, 150.0, 170.0]])
    out = roi(features, boxes[:, None].expand(2, 2, 4))
    assert out.shape == (2, 2, 16, 16, 16)
    torch.testing.assert_close(out[:, 0], out[:, 1].flip(-1))
    upsampled = roi.deconv(features)
    rois = torch.cat([torch.arange(2.0)[:, None], boxes * 0.25], dim=1)
    expected = roi.conv(roi_align(upsampled, rois, (16, 16)))
    torch.testing.assert_close(out[:, 1], expected)


def test_hand_roi_static_grid_is_exact_for_boxes_within_the_crop():
    """Boxes up to 64 feature pixels per side need at most ceil(64 / 16) = 4 points per bin."""
    roi = HandRoI(16).eval()
    features = torch.randn(1, 16, 16, 12)
    boxes = torch.tensor([[[0.0, 0.0, 192.0, 256.0], [10.0, 30.0, 90.0, 75.0]]])
    exact = roi(features, boxes)
    roi.max_adaptive_grid = 4
    torch.testing.assert_close(roi(features, boxes), exact)


def test_hand_roi_needs_width_divisible_by_four():
    with pytest.raises(ValueError, match='divisible by 4'):
        HandRoI(30)


def test_regressors_detach_joint_coordinates():
    """SMPLer-X feeds joint coordinates detached: no gradient reaches them."""
    body = BodyRegressor(16, joint_feature_dim=8)
    joints = torch.rand(2, 25, 3, requires_grad=True)
    out = body(torch.randn(2, 25, 16), torch.randn(2, 16), torch.randn(2, 16), joints)
    assert out.body_pose_6d.shape == (2, 22, 6)
    assert out.betas.shape == (2, 10) and out.camera.shape == (2, 3)
    out.body_pose_6d.sum().backward()
    assert joints.grad is None

    hand = HandRegressor(16, joint_feature_dim=8)
    hand_joints = (torch.rand(3, 20, 3) * 15).requires_grad_()
    pose = hand(torch.randn(3, 16, 16, 16), hand_joints)
    assert pose.shape == (3, 15, 6)
    pose.sum().backward()
    assert hand_joints.grad is None


def test_body_regressor_root_reads_features_then_coordinates():
    """The flattened input is [feature(512), x, y, z] per joint: a root weight of 1 only on
    joint 2's z column (index 2 * (F + 3) + F + 2) makes every root 6D value equal to z_2."""
    feature_dim = 8
    body = BodyRegressor(16, joint_feature_dim=feature_dim)
    with torch.no_grad():
        body.root_pose_out[0].weight.zero_()
        body.root_pose_out[0].bias.zero_()
        body.root_pose_out[0].weight[:, 2 * (feature_dim + 3) + feature_dim + 2] = 1.0
    joints = torch.rand(2, 25, 3)
    out = body(torch.randn(2, 25, 16), torch.randn(2, 16), torch.randn(2, 16), joints)
    torch.testing.assert_close(out.body_pose_6d[:, 0], joints[:, 2, 2:3].expand(2, 6))


def test_face_regressor_shapes():
    face = FaceRegressor(16)
    out = face(torch.randn(4, 16), torch.randn(4, 16))
    assert out.expression.shape == (4, 10) and out.jaw_pose_6d.shape == (4, 6)


def test_head_config_validates():
    with pytest.raises(ValueError, match='box_channels'):
        SMPLXHeadConfig(box_channels=0)
