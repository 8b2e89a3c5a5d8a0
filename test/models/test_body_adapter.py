"""Tests for hmr_ros.models.adapters.body_adapter (paper 3.4: hand features refine the body)."""

import pytest
import torch

from hmr_ros.geometry.rotations import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_rot6d
from hmr_ros.models.adapters.body_adapter import (
    NUM_JOINT_TOKENS,
    BodyAdapter,
    BodyAdapterConfig,
    RefinedWholeBody,
    apply_body_pose_offset,
    body_adapter_tiny,
    hand_feature_points_from_crop_px,
    mcp_points_hm,
)
from hmr_ros.models.backbones.vit import count_parameters
from hmr_ros.models.heads.smplx_head import HAND_POSITION_JOINT_NAMES
from hmr_ros.models.whole_body import WholeBodyModel, build_whole_body

BATCH = 2


@pytest.fixture(scope='module')
def whole_body() -> WholeBodyModel:
    """Tiny whole-body model in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(3)
    model = build_whole_body('smplerx_tiny').eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope='module')
def crops() -> torch.Tensor:
    return torch.rand(BATCH, 3, 512, 384, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope='module')
def stages(whole_body, crops):
    with torch.no_grad():
        return whole_body.run_stages(crops)


def tiny_adapter(seed: int = 0, **overrides) -> BodyAdapter:
    torch.manual_seed(seed)
    config = body_adapter_tiny()
    if overrides:
        config = BodyAdapterConfig(**{**config.__dict__, **overrides})
    return BodyAdapter(config)


def perturb_output_layer(adapter: BodyAdapter, seed: int = 5) -> None:
    g = torch.Generator().manual_seed(seed)
    layer = adapter.output_layer
    with torch.no_grad():
        layer.weight.copy_(0.2 * torch.randn(layer.weight.shape, generator=g))
        layer.bias.copy_(0.2 * torch.randn(layer.bias.shape, generator=g))


def random_maps(batch: int = BATCH, channels: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 2, channels, 16, 16, generator=torch.Generator().manual_seed(seed))


def random_points(batch: int = BATCH, seed: int = 2) -> torch.Tensor:
    return 15 * torch.rand(batch, 2, 4, 2, generator=torch.Generator().manual_seed(seed))


# --- Sizes -------------------------------------------------------------------------------------


def test_full_size_parameter_count_on_meta():
    """SMPLer-X-H (C 1280), width 1024, 8 x 64 heads, MLP 1024, context 512, 6 blocks.

    SA'' = 2048 + 1024*1536 + 512*1024 + 1024 = 2,100,224; CA'' = 2048 + 1024*512 + 512*1024
    + 525,312 = 1,575,936; FFN = 2048 + 2 * (1024*1024 + 1024) = 2,101,248; 6 blocks 34,664,448.
    Conv 1280*512 + 512 = 655,872; embedding 8*512 = 4,096; begin token 1,024; regressor
    LN 2,048 + 1024*1024 + 1024 + 1024*132 + 132 = 1,186,948. Total 36,512,388 (paper: 37M).
    Tensors: 2 + 2 + 6 * 17 + 6 = 112.
    """
    with torch.device('meta'):
        adapter = BodyAdapter(BodyAdapterConfig(in_channels=1280))
        plain = BodyAdapter(BodyAdapterConfig(joint_embedding=False))
    block = adapter.transformer.layers[0]
    assert [count_parameters(step) for step in block] == [2_100_224, 1_575_936, 2_101_248]
    assert count_parameters(adapter.feature_proj) == 655_872
    assert count_parameters(adapter.offset_regressor) == 1_186_948
    assert count_parameters(adapter) == 36_512_388
    assert count_parameters(plain) == 36_508_292
    assert len(adapter.state_dict()) == 112
    assert adapter.file_config()['in_channels'] == 1280
    assert adapter.file_config()['offset_rot6d_layout'] == 'interleaved'


def test_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match='depth'):
        BodyAdapterConfig(depth=0)
    with pytest.raises(ValueError, match='dropout'):
        BodyAdapterConfig(dropout=1.0)


# --- Sampling points and F^J -------------------------------------------------------------------


def test_mcp_points_are_index_middle_ring_pinky_roots():
    joints = torch.randn(BATCH, 2, 20, 3, requires_grad=True)
    points = mcp_points_hm(joints)
    rows = [HAND_POSITION_JOINT_NAMES.index(n) for n in ('index1', 'middle1', 'ring1', 'pinky1')]
    assert rows == [4, 8, 12, 16]
    torch.testing.assert_close(points, joints[:, :, rows, :2].detach())
    assert not points.requires_grad


def test_joint_features_read_the_conv_map_at_x_column_y_row():
    """Integer points read pixel (row y, column x) of the 1x1-conv map exactly; a point halfway
    between two columns reads their mean. Tokens: left hand's 4 points, then the right's."""
    adapter = tiny_adapter()
    maps = random_maps()
    points = torch.tensor([[3.0, 5.0], [0.0, 0.0], [15.0, 15.0], [7.5, 2.0]]).expand(
        BATCH, 2, 4, 2
    )
    features = adapter.joint_features(maps, points)
    assert features.shape == (BATCH, NUM_JOINT_TOKENS, 16)
    conv = adapter.feature_proj(maps.flatten(0, 1)).reshape(BATCH, 2, 16, 16, 16)
    for side in range(2):
        tokens = features[:, 4 * side : 4 * side + 4]
        torch.testing.assert_close(tokens[:, 0], conv[:, side, :, 5, 3])
        torch.testing.assert_close(tokens[:, 1], conv[:, side, :, 0, 0])
        torch.testing.assert_close(tokens[:, 2], conv[:, side, :, 15, 15])
        mean = 0.5 * (conv[:, side, :, 2, 7] + conv[:, side, :, 2, 8])
        torch.testing.assert_close(tokens[:, 3], mean)


def test_crop_points_invert_the_models_hand_joint_mapping(whole_body, stages):
    """Predicted joints reported in crop pixels by assemble map back onto joints_hm (both sides):
    the two mappings are inverses. (Both are checked against SMPLer-X's own formulas and an
    independent construction in test_hand_feature_points.py.)"""
    output = whole_body.assemble(stages, stages.body_pose_6d)
    mapped = hand_feature_points_from_crop_px(
        output.hand_joints_crop_px, output.hand_boxes_crop_px
    )
    torch.testing.assert_close(mapped, stages.hands.joints_hm[..., :2], atol=1e-4, rtol=1e-5)
    refined = RefinedWholeBody(whole_body, None)
    torch.testing.assert_close(refined.hand_boxes_crop_px(stages), output.hand_boxes_crop_px)


# --- The no-op start and the refinement ----------------------------------------------------------


def test_untrained_adapter_is_bitwise_no_op(whole_body, crops, stages):
    """Zero regressor output layer: delta == 0 exactly, so assemble(stages, theta_0 + delta)
    equals forward(crops) field by field."""
    adapter = tiny_adapter()
    output = adapter(stages.hands.features, mcp_points_hm(stages.hands.joints_hm))
    assert output.delta_body_pose_6d.shape == (BATCH, 22, 6)
    assert torch.count_nonzero(output.delta_body_pose_6d) == 0
    reference = whole_body(crops)
    refined = whole_body.assemble(stages, stages.body_pose_6d + output.delta_body_pose_6d)
    wrapped = RefinedWholeBody(whole_body, adapter)(crops)
    for name, ref, a, b in zip(reference._fields, reference, refined, wrapped, strict=True):
        assert torch.equal(ref, a), name
        assert torch.equal(ref, b), name


def test_trained_adapter_moves_only_the_body_pose(whole_body, crops, stages):
    adapter = tiny_adapter()
    perturb_output_layer(adapter)
    reference = whole_body(crops)
    refined = RefinedWholeBody(whole_body, adapter)(crops)
    body_fields = {'global_orient', 'body_pose', 'body_pose_6d'}
    for name, ref, out in zip(reference._fields, reference, refined, strict=True):
        assert torch.equal(ref, out) is (name not in body_fields), name
    delta = adapter(stages.hands.features, mcp_points_hm(stages.hands.joints_hm))
    # The offset acts on the normalised 6D: rotation of GS(theta_0) + delta.
    normalised = rotmat_to_rot6d(
        rot6d_to_rotmat(stages.body_pose_6d, 'interleaved'), 'interleaved'
    )
    torch.testing.assert_close(
        rot6d_to_rotmat(refined.body_pose_6d, 'interleaved'),
        rot6d_to_rotmat(normalised + delta.delta_body_pose_6d, 'interleaved'),
    )


def test_ground_truth_points_are_used_when_given(whole_body, crops, stages):
    """Passing the predicted MCP joints in crop pixels as 'ground truth' reproduces the run-time
    path; other points change the offset."""
    adapter = tiny_adapter()
    perturb_output_layer(adapter)
    model = RefinedWholeBody(whole_body, adapter)
    predicted = model(crops)
    mcp_rows = [4, 8, 12, 16]
    as_ground_truth = model(crops, predicted.hand_joints_crop_px[:, :, mcp_rows])
    torch.testing.assert_close(as_ground_truth.body_pose_6d, predicted.body_pose_6d)
    moved = model(crops, predicted.hand_joints_crop_px[:, :, mcp_rows] + 6.0)
    assert not torch.allclose(moved.body_pose_6d, predicted.body_pose_6d)


def test_token_embedding_tells_the_hands_apart():
    """The left map is mirrored to look right; without the embedding, swapping the hands'
    features and points gives the same offset (attention over a set), with it a different one."""
    maps, points = random_maps(), random_points()
    for embedding in (False, True):
        adapter = tiny_adapter(seed=4, joint_embedding=embedding)
        perturb_output_layer(adapter)
        delta = adapter(maps, points).delta_body_pose_6d
        swapped = adapter(maps.flip(1), points.flip(1)).delta_body_pose_6d
        assert torch.allclose(delta, swapped, atol=1e-6) == (not embedding)


# --- Training: frozen base, gradients ------------------------------------------------------------


def test_base_gets_no_gradient_and_stays_bitwise_unchanged_through_adamw(whole_body, crops):
    before = {k: v.clone() for k, v in whole_body.state_dict().items()}
    adapter = tiny_adapter()
    model = RefinedWholeBody(whole_body, adapter).train()
    assert not whole_body.training and adapter.training
    assert not any(p.requires_grad for p in whole_body.parameters())
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3, weight_decay=0.05)
    for _ in range(2):
        optimizer.zero_grad()
        output = model(crops)
        (output.body_pose**2).sum().backward()
        assert all(p.grad is None for p in whole_body.parameters())
        optimizer.step()
    for key, value in whole_body.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics included
    assert torch.count_nonzero(adapter.output_layer.weight) > 0


def test_gradients_reach_every_adapter_parameter_after_one_step(whole_body, crops):
    """Step 0: delta = W h + b with W = 0, so only W and b get gradient (d loss / d h = W^T g
    = 0). After one AdamW step W != 0 and every tensor gets a gradient. (SA'' acts on one begin
    token, so its query/key rows of to_qkv keep a zero gradient: softmax over one key is 1.)"""
    adapter = tiny_adapter()
    model = RefinedWholeBody(whole_body, adapter).train()
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    (model(crops).body_pose ** 2).sum().backward()
    for name, param in adapter.named_parameters():
        nonzero = bool(torch.count_nonzero(param.grad))
        assert nonzero is name.startswith('offset_regressor.3.'), name
    optimizer.step()
    optimizer.zero_grad()
    (model(crops).body_pose ** 2).sum().backward()
    for name, param in adapter.named_parameters():
        assert torch.count_nonzero(param.grad) > 0, name


def test_without_adapter_is_the_plain_model(whole_body, crops):
    reference = whole_body(crops)
    output = RefinedWholeBody(whole_body, None)(crops, torch.zeros(BATCH, 2, 4, 2))
    for name, a, b in zip(reference._fields, reference, output, strict=True):
        assert torch.equal(a, b), name


def test_rejects_bad_shapes_and_widths(whole_body):
    adapter = tiny_adapter()
    with pytest.raises(ValueError, match='hand_features'):
        adapter(random_maps(channels=8), random_points())
    with pytest.raises(ValueError, match='points_hm'):
        adapter(random_maps(), torch.zeros(BATCH, 2, 20, 2))
    with pytest.raises(ValueError, match='hand_joints_hm'):
        mcp_points_hm(torch.zeros(BATCH, 2, 21, 3))
    with pytest.raises(ValueError, match='in_channels'):
        RefinedWholeBody(whole_body, BodyAdapter(body_adapter_tiny(in_channels=64)))


# --- Where the offset is added --------------------------------------------------------------


def _raw_6d(rotmat: torch.Tensor, scale: float, skew: float = 0.0) -> torch.Tensor:
    """A raw interleaved 6D vector of rotation R: columns (s r1, s (r2 + skew r1))."""
    a1 = scale * rotmat[..., :, 0]
    a2 = scale * (rotmat[..., :, 1] + skew * rotmat[..., :, 0])
    return torch.stack((a1, a2), dim=-1).flatten(-2)


def test_offset_rotates_the_same_whatever_the_raw_norm():
    """The same offset on raw vectors of one rotation with norms x0.3, x1 and x10 (and a
    non-orthogonal second column) gives one rotation: that of the normalised 6D plus the
    offset, Gram-Schmidt again (the reference composed here from rot6d_to_rotmat /
    rotmat_to_rot6d only). Added to the raw vector instead, it would not."""
    torch.manual_seed(5)
    rotation = axis_angle_to_rotmat(torch.randn(4, 22, 3, dtype=torch.float64))
    delta = 0.2 * torch.randn(4, 22, 6, dtype=torch.float64)
    expected = rot6d_to_rotmat(rotmat_to_rot6d(rotation, 'interleaved') + delta, 'interleaved')
    raw_results = []
    for scale, skew in ((0.3, 0.0), (1.0, 0.0), (10.0, 0.0), (2.0, 0.7)):
        raw = _raw_6d(rotation, scale, skew)
        torch.testing.assert_close(rot6d_to_rotmat(raw, 'interleaved'), rotation)
        refined = rot6d_to_rotmat(apply_body_pose_offset(raw, delta), 'interleaved')
        torch.testing.assert_close(refined, expected)
        raw_results.append(rot6d_to_rotmat(raw + delta, 'interleaved'))
    assert not torch.allclose(raw_results[0], raw_results[2], atol=1e-3)  # the old behaviour


def test_zero_offset_returns_the_raw_vector_bitwise_and_has_a_gradient():
    """A zero offset gives back theta_0 exactly (the untrained adapter stays a no-op), and the
    refined vector still depends on the offset there (training can start from zero)."""
    raw = torch.randn(3, 22, 6) * 4.0
    delta = torch.zeros(3, 22, 6, requires_grad=True)
    refined = apply_body_pose_offset(raw, delta)
    assert torch.equal(refined, raw)
    rot6d_to_rotmat(refined, 'interleaved')[..., 0, 0].sum().backward()
    assert delta.grad is not None and delta.grad.abs().sum() > 0
