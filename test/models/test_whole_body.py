"""Tests for hmr_ros.models.whole_body (SMPLer-X-compatible whole-body model)."""

import math

import pytest
import torch

from hmr_ros.geometry.cameras import project_points
from hmr_ros.geometry.rotations import (
    axis_angle_to_rotmat,
    mirror_axis_angle,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    rotmat_to_rot6d,
)
from hmr_ros.models.backbones.vit import vit_tiny
from hmr_ros.models.components.roi_align import roi_align
from hmr_ros.models.heads.smplx_head import (
    HAND_MCP_JOINT_INDICES,
    PositionOutput,
    heatmap_peak_mass,
    soft_argmax_3d,
)
from hmr_ros.models.whole_body import (
    CAMERA_DEPTH_RANGE_M,
    WHOLE_BODY_VARIANTS,
    WholeBodyConfig,
    WholeBodyOutput,
    WholeBodyPreprocessing,
    build_whole_body,
    camera_translation,
    virtual_crop_intrinsics,
    whole_body_config,
    whole_body_mesh,
)

MODULE_ORDER = (
    'encoder',
    'body_position_net',
    'body_regressor',
    'box_net',
    'hand_roi_net',
    'hand_position_net',
    'hand_regressor',
    'face_regressor',
)

# Reference B.7: totals, tensor counts (12 per ViT block + 79) and per-module parameter counts.
PARAMETER_COUNTS = {
    'smplerx_s32': (
        32_008_024,
        223,
        (21_675_648, 154_000, 1_901_757, 5_509_641, 1_512_384, 123_200, 1_125_234, 6_160),
    ),
    'smplerx_b32': (
        102_939_928,
        223,
        (85_818_624, 307_600, 2_103_357, 7_082_505, 6_047_616, 246_080, 1_321_842, 12_304),
    ),
    'smplerx_l32': (
        326_654_872,
        367,
        (303_328_256, 410_000, 2_237_757, 8_131_081, 10_750_464, 328_000, 1_452_914, 16_400),
    ),
    'smplerx_h32': (
        661_827_096,
        463,
        (630_951_680, 512_400, 2_372_157, 9_179_657, 16_796_800, 409_920, 1_583_986, 20_496),
    ),
}


@pytest.fixture(scope='module')
def tiny_model():
    torch.manual_seed(3)
    model = build_whole_body('smplerx_tiny').eval()
    # Fresh BatchNorm statistics are 0/1; give them non-trivial values so eval mode is tested.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope='module')
def crops():
    return torch.rand(2, 3, 512, 384, generator=torch.Generator().manual_seed(7))


def _official_b7_shapes(c, depth):
    """Every key and shape of reference B.7 for width c and depth blocks."""
    shapes = {
        'encoder.task_tokens': (1, 31, c),
        'encoder.pos_embed': (1, 193, c),
        'encoder.patch_embed.proj.weight': (c, 3, 16, 16),
        'encoder.patch_embed.proj.bias': (c,),
        'encoder.last_norm.weight': (c,),
        'encoder.last_norm.bias': (c,),
    }
    for i in range(depth):
        block = f'encoder.blocks.{i}'
        shapes |= {
            f'{block}.norm1.weight': (c,),
            f'{block}.norm1.bias': (c,),
            f'{block}.attn.qkv.weight': (3 * c, c),
            f'{block}.attn.qkv.bias': (3 * c,),
            f'{block}.attn.proj.weight': (c, c),
            f'{block}.attn.proj.bias': (c,),
            f'{block}.norm2.weight': (c,),
            f'{block}.norm2.bias': (c,),
            f'{block}.mlp.fc1.weight': (4 * c, c),
            f'{block}.mlp.fc1.bias': (4 * c,),
            f'{block}.mlp.fc2.weight': (c, 4 * c),
            f'{block}.mlp.fc2.bias': (c,),
        }

    def bn(prefix, n):
        return {
            f'{prefix}.{name}': (n,) for name in ('weight', 'bias', 'running_mean', 'running_var')
        } | {f'{prefix}.num_batches_tracked': ()}

    shapes |= {
        'body_position_net.conv.0.weight': (400, c, 1, 1),
        'body_position_net.conv.0.bias': (400,),
        'body_regressor.body_conv.0.weight': (512, c),
        'body_regressor.body_conv.0.bias': (512,),
        'body_regressor.root_pose_out.0.weight': (6, 12875),
        'body_regressor.root_pose_out.0.bias': (6,),
        'body_regressor.body_pose_out.0.weight': (126, 12875),
        'body_regressor.body_pose_out.0.bias': (126,),
        'body_regressor.shape_out.0.weight': (10, c),
        'body_regressor.shape_out.0.bias': (10,),
        'body_regressor.cam_out.0.weight': (3, c),
        'body_regressor.cam_out.0.bias': (3,),
        'box_net.deconv.0.weight': (c + 400, 256, 4, 4),
        **bn('box_net.deconv.1', 256),
        'box_net.deconv.3.weight': (256, 256, 4, 4),
        **bn('box_net.deconv.4', 256),
        'box_net.deconv.6.weight': (256, 256, 4, 4),
        **bn('box_net.deconv.7', 256),
        'box_net.bbox_center.0.weight': (3, 256, 1, 1),
        'box_net.bbox_center.0.bias': (3,),
        'hand_roi_net.deconv.0.weight': (c, c // 2, 4, 4),
        **bn('hand_roi_net.deconv.1', c // 2),
        'hand_roi_net.deconv.3.weight': (c // 2, c // 4, 4, 4),
        **bn('hand_roi_net.deconv.4', c // 4),
        'hand_roi_net.conv.0.weight': (c, c // 4, 1, 1),
        'hand_roi_net.conv.0.bias': (c,),
        'hand_position_net.conv.0.weight': (320, c, 1, 1),
        'hand_position_net.conv.0.bias': (320,),
        'hand_regressor.hand_conv.0.weight': (512, c, 1, 1),
        'hand_regressor.hand_conv.0.bias': (512,),
        **bn('hand_regressor.hand_conv.1', 512),
        'hand_regressor.hand_pose_out.0.weight': (90, 10300),
        'hand_regressor.hand_pose_out.0.bias': (90,),
        'face_regressor.expr_out.0.weight': (10, c),
        'face_regressor.expr_out.0.bias': (10,),
        'face_regressor.jaw_pose_out.0.weight': (6, c),
        'face_regressor.jaw_pose_out.0.bias': (6,),
    }
    for part in ('lhand', 'rhand', 'face'):
        shapes |= {
            f'box_net.{part}_size.0.weight': (256, 256),
            f'box_net.{part}_size.0.bias': (256,),
            f'box_net.{part}_size.2.weight': (2, 256),
            f'box_net.{part}_size.2.bias': (2,),
        }
    return shapes


def _meta_model(name):
    with torch.device('meta'):
        return build_whole_body(name)


@pytest.mark.parametrize('name', sorted(PARAMETER_COUNTS))
def test_full_size_parameter_and_tensor_counts(name):
    """Counts of reference B.7 (they match the README's 32M / 103M / 327M / 662M), on 'meta'."""
    total, tensors, per_module = PARAMETER_COUNTS[name]
    model = _meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == total
    assert len(model.state_dict()) == tensors
    counts = tuple(
        sum(p.numel() for p in getattr(model, module).parameters()) for module in MODULE_ORDER
    )
    assert counts == per_module


@pytest.mark.parametrize(
    ('name', 'width', 'depth'), [('smplerx_s32', 384, 12), ('smplerx_h32', 1280, 32)]
)
def test_state_dict_matches_official_keys_shapes_and_module_order(name, width, depth):
    state = _meta_model(name).state_dict()
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    assert shapes == _official_b7_shapes(width, depth)
    top_level = list(dict.fromkeys(key.split('.')[0] for key in state))
    assert top_level == list(MODULE_ORDER)


def test_variants_registry_and_unknown_name():
    assert set(WHOLE_BODY_VARIANTS) == {
        'smplerx_s32',
        'smplerx_b32',
        'smplerx_l32',
        'smplerx_h32',
        'smplerx_tiny',
    }
    for name in WHOLE_BODY_VARIANTS:
        assert whole_body_config(name).name == name
    with pytest.raises(ValueError, match='smplerx_h32'):
        whole_body_config('smplerx_xl')


def test_preprocessing_contract_of_the_official_weights():
    """The SMPLer-X crop contract (reference B.2, D.7, D.9) travels with every variant."""
    prep = whole_body_config('smplerx_h32').preprocessing
    assert prep.crop_hw_px == (512, 384)
    assert prep.vit_hw_px == (256, 192)
    assert prep.downsample_mode == 'nearest'
    assert prep.pixel_range == (0.0, 1.0)
    assert prep.mean_rgb is None and prep.std_rgb is None
    assert prep.rot6d_layout == 'interleaved'
    assert prep.crop_aspect_wh == 0.75 and prep.crop_scale == 1.25
    assert whole_body_config('smplerx_h32').official_checkpoint == 'smpler_x_h32.pth.tar'


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'crop_aspect_wh': 1.0}, 'crop_aspect_wh'),
        ({'mean_rgb': (0.5, 0.5, 0.5)}, 'without mean/std'),
        ({'std_rgb': (0.2, 0.2, 0.2)}, 'without mean/std'),
        ({'rot6d_layout': 'contiguous'}, 'interleaved'),
        ({'downsample_mode': 'bicubic'}, 'downsample_mode'),
    ],
)
def test_preprocessing_rejects_unsupported_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WholeBodyPreprocessing(**kwargs)


def test_config_requires_31_task_tokens():
    with pytest.raises(ValueError, match='num_task_tokens=31'):
        WholeBodyConfig('bad', vit_tiny(num_task_tokens=0))


def test_forward_shapes_and_finite_values(tiny_model, crops):
    with torch.no_grad():
        out = tiny_model(crops)
    assert isinstance(out, WholeBodyOutput)
    c = tiny_model.config.encoder.embed_dim
    expected = {
        'global_orient': (2, 3),
        'body_pose': (2, 63),
        'left_hand_pose': (2, 45),
        'right_hand_pose': (2, 45),
        'jaw_pose': (2, 3),
        'betas': (2, 10),
        'expression': (2, 10),
        'cam_translation': (2, 3),
        'hand_boxes_crop_px': (2, 2, 4),
        'face_box_crop_px': (2, 4),
        'body_joints_crop_px': (2, 25, 2),
        'hand_joints_crop_px': (2, 2, 20, 2),
        'body_joints_hm': (2, 25, 3),
        'body_pose_6d': (2, 22, 6),
        'hand_features': (2, 2, c, 16, 16),
        'hand_joints_hm': (2, 2, 20, 3),
        'body_joint_confidence': (2, 25),
        'hand_joint_confidence': (2, 2, 20),
        'person_score': (2,),
    }
    assert {k: tuple(v.shape) for k, v in out._asdict().items()} == expected
    for name, value in out._asdict().items():
        assert torch.isfinite(value).all(), name
    assert 0 < out.cam_translation[:, 2].min() and out.cam_translation[:, 2].max() < 56.39


def test_nearest_downsampling_takes_even_rows_and_columns(tiny_model, crops):
    """B.2 step 5: F.interpolate's default 'nearest' at scale 0.5 reads rows/columns 0, 2, ..."""
    with torch.no_grad():
        encoded = tiny_model.encode(crops)
        direct = tiny_model.encoder(crops[:, :, ::2, ::2])
    torch.testing.assert_close(encoded.feature_map, direct.feature_map)
    torch.testing.assert_close(encoded.task_tokens, direct.task_tokens)


def test_rejects_wrong_crop_size_and_integer_crops(tiny_model):
    with pytest.raises(ValueError, match='512, 384'):
        tiny_model(torch.rand(1, 3, 256, 192))
    with pytest.raises(ValueError, match='255'):
        tiny_model(torch.zeros(1, 3, 512, 384, dtype=torch.uint8))


def test_forward_is_stages_then_assemble_and_offset_only_moves_the_body(tiny_model, crops):
    """The dual path adds a 6D offset between the body regressor and the conversion."""
    with torch.no_grad():
        out = tiny_model(crops)
        stages = tiny_model.run_stages(crops)
        same = tiny_model.assemble(stages, stages.body_pose_6d)
        offset = torch.zeros_like(stages.body_pose_6d)
        offset[:, 3] = 0.3  # joint 3 = body_pose joint 2
        moved = tiny_model.assemble(stages, stages.body_pose_6d + offset)
    for name in WholeBodyOutput._fields:
        torch.testing.assert_close(getattr(same, name), getattr(out, name))
    assert not torch.allclose(moved.body_pose[:, 6:9], out.body_pose[:, 6:9])
    torch.testing.assert_close(moved.body_pose[:, :6], out.body_pose[:, :6])
    torch.testing.assert_close(moved.global_orient, out.global_orient)
    for name in ('left_hand_pose', 'right_hand_pose', 'jaw_pose', 'cam_translation'):
        torch.testing.assert_close(getattr(moved, name), getattr(out, name))


def test_body_rotations_use_the_interleaved_6d_layout(tiny_model, crops):
    """6D built from known rotations with the interleaved layout comes back as those rotations;
    read as contiguous it would not (the two layouts disagree for a generic rotation)."""
    generator = torch.Generator().manual_seed(1)
    axis_angle = torch.randn(2, 22, 3, generator=generator) * 0.8
    rot6d = rotmat_to_rot6d(axis_angle_to_rotmat(axis_angle), 'interleaved')
    with torch.no_grad():
        stages = tiny_model.run_stages(crops)
        out = tiny_model.assemble(stages, rot6d)
    torch.testing.assert_close(out.global_orient, axis_angle[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out.body_pose, axis_angle[:, 1:].reshape(2, 63), atol=1e-5, rtol=1e-5
    )
    wrong = rotmat_to_axis_angle(rot6d_to_rotmat(rot6d, 'contiguous'))
    assert not torch.allclose(wrong, axis_angle, atol=1e-2)


def test_camera_translation_formula():
    """k = sqrt(5000 * 5000 * 2.5^2 / (256 * 192)) = 12500 / sqrt(49152) = 56.3819 m;
    c = (0.1, -0.2, 0): t = (0.1, -0.2, k / 2); c2 = ln 3: sigmoid = 0.75, t_z = 0.75 k."""
    assert CAMERA_DEPTH_RANGE_M == pytest.approx(12500 / math.sqrt(49152))
    assert CAMERA_DEPTH_RANGE_M == pytest.approx(56.3819, abs=1e-4)
    camera = torch.tensor([[0.1, -0.2, 0.0], [0.0, 0.0, math.log(3.0)]])
    expected = torch.tensor(
        [[0.1, -0.2, CAMERA_DEPTH_RANGE_M / 2], [0.0, 0.0, 0.75 * CAMERA_DEPTH_RANGE_M]]
    )
    torch.testing.assert_close(camera_translation(camera), expected)


def test_left_hand_is_the_mirrored_right_hand_path(tiny_model, crops):
    """With the same box for both hands, the left RoI is the right RoI flipped along W, the
    right hand does not depend on the left box, and left joints found in the mirrored frame map
    back mirrored inside the box: x_crop = x1 + (15 - x_hm) * w / 16, y_crop = y1 + y_hm * h / 16.
    (The rotation mirroring is checked against the per-side reference below.)"""
    with torch.no_grad():
        stages = tiny_model.run_stages(crops)
        boxes = stages.part_boxes_vit_px.clone()
        boxes[:, 0] = torch.tensor([40.0, 60.0, 104.0, 124.0])
        boxes[:, 1] = boxes[:, 0]
        hands = tiny_model.regress_hands(stages.feature_map, boxes[:, :2])
        out = tiny_model.assemble(
            stages._replace(part_boxes_vit_px=boxes, hands=hands), stages.body_pose_6d
        )
    left, right = hands.features[:, 0], hands.features[:, 1]
    torch.testing.assert_close(left, right.flip(-1))
    right_only = tiny_model.regress_hands(stages.feature_map, boxes[:, 1:2].expand(2, 2, 4))
    torch.testing.assert_close(hands.joints_hm[:, 1], right_only.joints_hm[:, 1])
    # Crop-pixel joints: box in crop pixels is (80, 120, 208, 248), 128 px wide, 8 px per cell.
    x_left = out.hand_joints_crop_px[:, 0, :, 0]
    expected_x_left = 80.0 + (15.0 - hands.joints_hm[:, 0, :, 0]) * 8.0
    torch.testing.assert_close(x_left, expected_x_left)
    expected_y = 120.0 + hands.joints_hm[..., 1] * 8.0
    torch.testing.assert_close(out.hand_joints_crop_px[..., 1], expected_y)
    torch.testing.assert_close(
        out.hand_boxes_crop_px, torch.tensor([80.0, 120.0, 208.0, 248.0]).expand(2, 2, 4)
    )


def test_hand_branch_matches_a_per_side_reference(tiny_model, crops):
    """The batched hand branch equals SMPLer-X's two-halves recipe written out per side:
    RoIAlign of the deconvolved map at box * 0.25, flip the left crop, 1x1 conv, joints,
    regressor, 6D (interleaved) -> axis-angle, mirror the left rotations back."""
    with torch.no_grad():
        stages = tiny_model.run_stages(crops)
        out = tiny_model.assemble(stages, stages.body_pose_6d)
        roi_net = tiny_model.hand_roi_net
        upsampled = roi_net.deconv(stages.feature_map)
        for side, name in enumerate(('left_hand_pose', 'right_hand_pose')):
            boxes = stages.part_boxes_vit_px[:, side] * 0.25
            rois = torch.cat([torch.arange(2.0)[:, None], boxes], dim=1)
            crop = roi_align(upsampled, rois, (16, 16), 1.0, 0)
            if side == 0:
                crop = crop.flip(3)
            features = roi_net.conv(crop)
            torch.testing.assert_close(features, out.hand_features[:, side])
            joints = tiny_model.hand_position_net(features).joints_hm
            torch.testing.assert_close(joints, out.hand_joints_hm[:, side])
            rot6d = tiny_model.hand_regressor(features, joints)
            axis_angle = rotmat_to_axis_angle(rot6d_to_rotmat(rot6d, 'interleaved'))
            if side == 0:
                axis_angle = mirror_axis_angle(axis_angle)
            torch.testing.assert_close(getattr(out, name), axis_angle.reshape(2, 45))


def test_boxes_and_body_joints_in_crop_pixels(tiny_model, crops):
    """Crop pixels are ViT pixels times 2 (512 x 384 vs 256 x 192); body joints are heatmap
    cells times 32 (384 / 12 and 512 / 16)."""
    with torch.no_grad():
        stages = tiny_model.run_stages(crops)
        out = tiny_model.assemble(stages, stages.body_pose_6d)
    torch.testing.assert_close(out.hand_boxes_crop_px, stages.part_boxes_vit_px[:, :2] * 2)
    torch.testing.assert_close(out.face_box_crop_px, stages.part_boxes_vit_px[:, 2] * 2)
    torch.testing.assert_close(out.body_joints_crop_px, stages.body_joints_hm[..., :2] * 32)


def test_body_position_net_gets_no_gradient_through_the_body_pose(tiny_model, crops):
    """SMPLer-X detaches the joints and heatmaps it passes on (B.4, B.8)."""
    model = build_whole_body('smplerx_tiny').eval()
    out = model(crops[:1])
    out.body_pose_6d.sum().backward()
    assert model.body_position_net.conv[0].weight.grad is None
    assert model.body_regressor.body_pose_out[0].weight.grad is not None


def test_mcp_rows_index_the_hand_joints(tiny_model, crops):
    """The body adapter samples hand_features at hand_joints_hm[:, :, MCP]; same frame."""
    with torch.no_grad():
        out = tiny_model(crops)
    mcp = out.hand_joints_hm[:, :, list(HAND_MCP_JOINT_INDICES), :2]
    assert mcp.shape == (2, 2, 4, 2)
    assert (mcp >= 0).all() and (mcp <= 15).all()


def test_runs_under_cpu_bf16_autocast(tiny_model, crops):
    """Mixed precision: poses, camera and boxes stay float32 and finite; close to fp32."""
    with torch.no_grad():
        reference = tiny_model(crops)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = tiny_model(crops)
    assert out.body_pose.dtype == torch.float32 and out.cam_translation.dtype == torch.float32
    for name, value in out._asdict().items():
        assert torch.isfinite(value.float()).all(), name
    torch.testing.assert_close(out.betas, reference.betas, atol=0.1, rtol=0.1)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_runs_under_cuda_autocast(dtype, crops):
    if not torch.cuda.is_available():
        pytest.skip('needs CUDA')
    model = build_whole_body('smplerx_tiny').eval().cuda()
    with torch.no_grad():
        reference = model(crops.cuda())
        with torch.autocast('cuda', dtype=dtype):
            out = model(crops.cuda())
    for name, value in out._asdict().items():
        assert torch.isfinite(value.float()).all(), name
    assert out.body_pose.dtype == torch.float32
    torch.testing.assert_close(out.betas, reference.betas, atol=0.05, rtol=0.05)


def test_mesh_adds_hands_mean_and_camera_translation(
    tiny_model, crops, body_model_dir, smplx_body_model
):
    """Reference: smplx.SMPLX built as SMPLer-X builds its layer (flat_hand_mean=False, no PCA,
    axis-angle inputs, face contour), fed the outputs directly with transl = cam_translation."""
    import smplx

    from hmr_ros.body_models.model_files import find_smplx_file

    reference_layer = smplx.SMPLX(
        str(find_smplx_file(body_model_dir)),
        ext='npz',
        num_betas=10,
        num_expression_coeffs=10,
        use_pca=False,
        flat_hand_mean=False,
        use_face_contour=True,
    )
    with torch.no_grad():
        out = tiny_model(crops)
        mesh = whole_body_mesh(out, smplx_body_model)
        reference = reference_layer(
            global_orient=out.global_orient,
            body_pose=out.body_pose,
            left_hand_pose=out.left_hand_pose,
            right_hand_pose=out.right_hand_pose,
            jaw_pose=out.jaw_pose,
            leye_pose=torch.zeros(2, 3),
            reye_pose=torch.zeros(2, 3),
            betas=out.betas,
            expression=out.expression,
            transl=out.cam_translation,
        )
    assert mesh.vertices.shape == (2, 10475, 3)
    torch.testing.assert_close(mesh.vertices, reference.vertices, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mesh.joints, reference.joints, atol=1e-5, rtol=1e-5)
    # The mean hand matters (the stand-in file has a non-zero one): without it, fingers move.
    assert smplx_body_model.hands_mean('left').abs().sum() > 0
    without_mean = smplx_body_model(
        **{
            **smplx_body_model.neutral_inputs(2),
            'global_orient': axis_angle_to_rotmat(out.global_orient[:, None]),
            'body_pose': axis_angle_to_rotmat(out.body_pose.reshape(2, 21, 3)),
            'left_hand_pose': axis_angle_to_rotmat(out.left_hand_pose.reshape(2, 15, 3)),
            'right_hand_pose': axis_angle_to_rotmat(out.right_hand_pose.reshape(2, 15, 3)),
            'jaw_pose': axis_angle_to_rotmat(out.jaw_pose[:, None]),
            'betas': out.betas,
            'expression': out.expression,
            'transl': out.cam_translation,
        }
    )
    assert not torch.allclose(without_mean.vertices, mesh.vertices, atol=1e-4)


def test_virtual_crop_intrinsics_match_smplerx_projection():
    """SMPLer-X projects to ViT pixels with x = X / Z * 5000 + 96, y = Y / Z * 5000 + 128; the
    512 x 384 crop is twice as large: K has f = 10000 and principal point (192, 256).
    Point (0.1, -0.2, 10): ViT (146, 28), crop (292, 56)."""
    intrinsics = virtual_crop_intrinsics()
    torch.testing.assert_close(
        intrinsics,
        torch.tensor([[10000.0, 0.0, 192.0], [0.0, 10000.0, 256.0], [0.0, 0.0, 1.0]]),
    )
    point = torch.tensor([[[0.1, -0.2, 10.0]]])
    torch.testing.assert_close(
        project_points(point, intrinsics[None]), torch.tensor([[[292.0, 56.0]]])
    )


def _scripted_body_heatmaps(model, logits):
    """Forward hook: the body position net returns the heatmaps of ``logits`` instead."""

    def hook(_module, _inputs, _output):
        heatmap, joints_hm = soft_argmax_3d(logits)
        return PositionOutput(heatmap, joints_hm, heatmap_peak_mass(heatmap))

    return model.body_position_net.register_forward_hook(hook)


def test_person_score_is_high_for_peaked_and_zero_for_flat_body_heatmaps(tiny_model, crops):
    """Scripted body heatmaps: flat logits give every joint m = 9/192 = m_u -> score 0; one
    logit of 100 per joint (all mass in one cell) gives 1 per joint, so the mean is 1; peaked
    for 10 of the 25 joints and flat for 15 gives 10/25 = 0.4."""
    flat = torch.zeros(2, 25, 16, 16, 12)
    peaked = flat.clone()
    for j in range(25):
        peaked[:, j, j % 16, (3 * j) % 16, j % 12] = 100.0
    half = flat.clone()
    half[:, :10] = peaked[:, :10]
    scores = {}
    for name, logits in (('flat', flat), ('peaked', peaked), ('partial', half)):
        handle = _scripted_body_heatmaps(tiny_model, logits)
        try:
            with torch.no_grad():
                out = tiny_model(crops)
        finally:
            handle.remove()
        assert out.person_score.shape == (2,)
        assert out.body_joint_confidence.shape == (2, 25)
        assert out.hand_joint_confidence.shape == (2, 2, 20)
        scores[name] = out.person_score
    torch.testing.assert_close(scores['flat'], torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(scores['peaked'], torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(scores['partial'], torch.full((2,), 0.4), atol=1e-5, rtol=0)


def test_person_score_of_the_real_heads_is_the_mean_body_joint_confidence(tiny_model, crops):
    """With the network's own heatmaps every score stays in [0, 1]."""
    with torch.no_grad():
        out = tiny_model(crops)
        assert ((out.person_score >= 0) & (out.person_score <= 1)).all()
        assert ((out.hand_joint_confidence >= 0) & (out.hand_joint_confidence <= 1)).all()
        torch.testing.assert_close(out.person_score, out.body_joint_confidence.mean(-1))
