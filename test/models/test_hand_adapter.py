"""Tests for hmr_ros.models.adapters.hand_adapter (paper 3.3: body pose guides the hand expert)."""

import pytest
import torch
from hand_fixtures import BATCH, crops, tiny_expert

from hmr_ros.body_models.joint_names import BODY_JOINT_NAMES, SMPLX_JOINT_NAMES
from hmr_ros.geometry.rotations import (
    axis_angle_to_rotmat,
    mirror_axis_angle,
    mirror_rotmat,
    rot6d_to_rotmat,
    rotmat_to_rot6d,
)
from hmr_ros.models.adapters.hand_adapter import (
    NUM_ARM_JOINTS,
    GuidedHandExpert,
    HandAdapter,
    HandAdapterConfig,
    arm_guidance,
    arm_guidance_both_sides,
    arm_guidance_from_axis_angle,
    arm_guidance_from_smplerx_6d,
)
from hmr_ros.models.backbones.vit import count_parameters
from hmr_ros.models.hand_expert import build_hand_expert


def random_body_aa(batch: int = BATCH, seed: int = 2) -> torch.Tensor:
    """(B, 22, 3) axis-angles, root first, angles up to about 1.7 rad."""
    return torch.randn(batch, 22, 3, generator=torch.Generator().manual_seed(seed))


def guidance(batch: int = BATCH, seed: int = 2) -> torch.Tensor:
    return arm_guidance_from_axis_angle(random_body_aa(batch, seed), 'right')


def perturb_output_projections(adapter: HandAdapter, seed: int = 5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in adapter.blocks:
            layer = block.output_projection
            layer.weight.copy_(0.2 * torch.randn(layer.weight.shape, generator=g))
            layer.bias.copy_(0.2 * torch.randn(layer.bias.shape, generator=g))


def loss_of(output) -> torch.Tensor:
    return (output.pose_6d**2).sum() + output.betas.sum() + output.cam.sum()


# --- Sizes -------------------------------------------------------------------------------------


def test_full_size_parameter_count_on_meta():
    """HaMeR head: dim 1024, 8 heads x 64 (inner 512), context 1280, 6 blocks.

    SA' = LN 2*1024 + to_qkv 1024*1536 + to_out 512*1024 + 1024 = 2,100,224.
    CA' = LN 2048 + to_q 1024*512 + to_kv 1280*1024 + to_out 525,312 = 2,362,368.
    6 blocks: 6 * 4,462,592 = 26,775,552; linear 6*1280 + 1280 = 8,960; joint embedding
    8*1280 = 10,240. Total 26,794,752 (paper: about 27M); without the embedding 26,784,512.
    Tensors: 1 + 2 + 6 * (5 + 6) = 69.
    """
    with torch.device('meta'):
        head = build_hand_expert('hamer').mano_head
        adapter = HandAdapter(head)
        plain = HandAdapter(head, HandAdapterConfig(joint_embedding=False))
    assert count_parameters(adapter.blocks[0].self_attention) == 2_100_224
    assert count_parameters(adapter.blocks[0].cross_attention) == 2_362_368
    assert count_parameters(adapter.body_projection) == 8_960
    assert count_parameters(adapter) == 26_794_752
    assert count_parameters(plain) == 26_784_512
    assert len(adapter.state_dict()) == 69
    assert 'joint_embedding' not in plain.state_dict()
    assert adapter.body_projection.weight.shape == (1280, 6)
    assert adapter.file_config() == {
        'dim': 1024,
        'depth': 6,
        'heads': 8,
        'dim_head': 64,
        'context_dim': 1280,
        'guidance_joints': 8,
        'guidance_rot6d_layout': 'contiguous',
        'joint_embedding': True,
    }


def test_adapter_state_dict_holds_no_base_weights():
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head)
    keys = adapter.state_dict().keys()
    assert all(k.startswith(('body_projection.', 'joint_embedding', 'blocks.')) for k in keys)
    assert len(adapter.blocks) == expert.mano_head.config.depth


# --- Initialisation and the no-op start ---------------------------------------------------------


def test_branches_are_copies_of_the_frozen_blocks_with_zero_output():
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head)
    base_pointers = {p.data_ptr() for p in expert.parameters()}
    for layer, block in zip(expert.mano_head.transformer.layers, adapter.blocks, strict=True):
        for key, value in layer.self_attention.state_dict().items():
            assert torch.equal(block.self_attention.state_dict()[key], value), key
        copied = block.cross_attention.state_dict()
        for key, value in layer.cross_attention.state_dict().items():
            if key.startswith('fn.to_out.'):
                assert torch.count_nonzero(copied[key]) == 0, key
            else:
                assert torch.equal(copied[key], value), key
    assert not base_pointers & {p.data_ptr() for p in adapter.parameters()}
    assert all(p.requires_grad for p in adapter.parameters())


@pytest.mark.parametrize('fused', [True, False])
def test_untrained_adapter_is_bitwise_no_op(fused):
    """Zero to_out of CA' makes every branch add exact zeros, so outputs equal HandExpert's."""
    expert = tiny_expert()
    expert.set_fused_attention(fused)
    adapter = HandAdapter(expert.mano_head)
    adapter.set_fused_attention(fused)
    guided = GuidedHandExpert(expert, adapter)
    x = crops()
    reference = expert(x)
    has_body_pose = torch.tensor([True, False, True])
    output = guided(x, guidance(), has_body_pose)
    for name, ref, out in zip(reference._fields, reference, output, strict=True):
        assert torch.equal(ref, out), name


def test_trained_branch_uses_the_guidance():
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head)
    perturb_output_projections(adapter)
    guided = GuidedHandExpert(expert, adapter)
    x = crops()
    base = expert(x)
    first = guided(x, guidance(seed=2))
    second = guided(x, guidance(seed=3))
    assert not torch.allclose(first.pose_6d, base.pose_6d)
    assert not torch.allclose(first.pose_6d, second.pose_6d)
    # Items are independent: changing item 0's guidance leaves item 1 alone.
    mixed = guidance(seed=2).clone()
    mixed[0] = guidance(seed=3)[0]
    both = guided(x, mixed)
    torch.testing.assert_close(both.pose_6d[0], second.pose_6d[0])
    torch.testing.assert_close(both.pose_6d[1:], first.pose_6d[1:])


def test_unknown_body_pose_is_zero_guidance_and_ignores_the_values():
    """has_body_pose False == theta_b = 0 (paper 3.3), whatever the tensor holds (even NaN)."""
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head)
    perturb_output_projections(adapter)
    guided = GuidedHandExpert(expert, adapter)
    x = crops()
    arm = guidance()
    arm[1] = float('nan')
    known = torch.tensor([True, False, True])
    masked = guided(x, arm, known)
    zeros = guided(x, torch.where(known[:, None, None], arm, 0.0))
    for name, a, b in zip(masked._fields, masked, zeros, strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert all(torch.isfinite(t).all() for t in masked)
    tokens = adapter.body_tokens(arm, known)
    expected = adapter.body_projection.bias + adapter.joint_embedding[0]
    torch.testing.assert_close(tokens[1], expected)


def test_joint_embedding_tells_the_arm_joints_apart():
    """Attention treats keys as a set: without the embedding, permuting theta_b's joints changes
    nothing; with it, the adapter knows which rotation is the elbow (module docstring, point 4)."""
    expert = tiny_expert()
    x = crops()
    arm = guidance()
    permuted = arm.flip(1)
    for embedding in (False, True):
        torch.manual_seed(4)
        adapter = HandAdapter(expert.mano_head, HandAdapterConfig(joint_embedding=embedding))
        perturb_output_projections(adapter)
        guided = GuidedHandExpert(expert, adapter)
        same = torch.allclose(guided(x, arm).pose_6d, guided(x, permuted).pose_6d, atol=1e-6)
        assert same == (not embedding)


# --- Training: frozen base, gradients ------------------------------------------------------------


def test_base_gets_no_gradient_and_stays_bitwise_unchanged_through_adamw():
    expert = tiny_expert()
    before = {k: v.clone() for k, v in expert.state_dict().items()}
    adapter = HandAdapter(expert.mano_head)
    guided = GuidedHandExpert(expert, adapter).train()
    assert not expert.training and adapter.training
    assert not any(p.requires_grad for p in expert.parameters())
    adapter_before = {k: v.clone() for k, v in adapter.state_dict().items()}
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3, weight_decay=0.05)
    for _ in range(2):
        optimizer.zero_grad()
        loss_of(guided(crops(), guidance())).backward()
        assert all(p.grad is None for p in expert.parameters())
        optimizer.step()
    for key, value in expert.state_dict().items():
        assert torch.equal(value, before[key]), key
    changed = [k for k, v in adapter.state_dict().items() if not torch.equal(v, adapter_before[k])]
    assert 'blocks.0.cross_attention.fn.to_out.0.weight' in changed


def test_gradients_reach_every_adapter_parameter_after_one_step():
    """Step 0: every branch adds to_out(...) with to_out = 0, so d loss / d (anything upstream of
    to_out) is exactly zero and only the output projections learn. After one AdamW step they are
    non-zero and every adapter tensor gets a gradient. (Within SA' the query/key rows of to_qkv
    stay at zero gradient: with HaMeR's single query token, softmax over one key is always 1.)"""
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head)
    guided = GuidedHandExpert(expert, adapter).train()
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    loss_of(guided(crops(), guidance())).backward()
    for name, param in adapter.named_parameters():
        nonzero = bool(torch.count_nonzero(param.grad))
        assert nonzero is ('.to_out.' in name and 'cross_attention' in name), name
    optimizer.step()
    optimizer.zero_grad()
    loss_of(guided(crops(), guidance())).backward()
    for name, param in adapter.named_parameters():
        assert torch.count_nonzero(param.grad) > 0, name
    inner = expert.mano_head.config.heads * expert.mano_head.config.dim_head
    qkv_grad = adapter.blocks[0].self_attention.fn.to_qkv.weight.grad
    assert qkv_grad[: 2 * inner].abs().max() <= 1e-6 * qkv_grad[2 * inner :].abs().max()


def test_without_adapter_runs_the_plain_hand_expert():
    expert = tiny_expert()
    x = crops()
    reference = expert(x)
    output = GuidedHandExpert(expert, None)(x, torch.full((BATCH, 8, 6), float('nan')))
    for name, a, b in zip(reference._fields, reference, output, strict=True):
        assert torch.equal(a, b), name


def test_rejects_bad_guidance_and_foreign_heads():
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head)
    guided = GuidedHandExpert(expert, adapter)
    with pytest.raises(ValueError, match='arm_guidance'):
        guided(crops(), torch.zeros(BATCH, 22, 6))
    with pytest.raises(ValueError, match='one flag per hand'):
        guided(crops(), guidance(), torch.ones(BATCH + 1, dtype=torch.bool))
    with torch.device('meta'):
        other = build_hand_expert('hamer').mano_head
    with pytest.raises(ValueError, match='built for a MANO head'):
        adapter(other, torch.zeros(1, 32, 16, 12), guidance(1))


# --- Guidance: arm joint group, layouts and mirroring -------------------------------------------


def test_arm_group_is_root_to_wrist():
    """SMPL-X indices: pelvis 0, spine1 3, spine2 6, spine3 9, collars 13/14, shoulders 16/17,
    elbows 18/19, wrists 20/21 (left/right); each joint gets a rotation about x by 0.1 * index."""
    angles = 0.1 * torch.arange(22.0)
    body_aa = torch.zeros(1, 22, 3)
    body_aa[0, :, 0] = angles
    right = arm_guidance_from_axis_angle(body_aa, 'right')
    expected = rotmat_to_rot6d(
        axis_angle_to_rotmat(body_aa[0, [0, 3, 6, 9, 14, 17, 19, 21]]), 'contiguous'
    )
    torch.testing.assert_close(right[0], expected)
    assert right.shape == (1, NUM_ARM_JOINTS, 6)
    names = ('pelvis', 'spine1', 'spine2', 'spine3', 'left_collar', 'left_shoulder')
    assert [SMPLX_JOINT_NAMES.index(n) for n in names] == [0, 3, 6, 9, 13, 16]


def test_guidance_is_contiguous_6d_and_identity_pose_is_1_0_0_0_1_0():
    body = axis_angle_to_rotmat(random_body_aa())
    g = arm_guidance(body, 'right')
    chain = body[:, [0, 3, 6, 9, 14, 17, 19, 21]]
    torch.testing.assert_close(rot6d_to_rotmat(g, 'contiguous'), chain)
    torch.testing.assert_close(g[..., :3], chain[..., :, 0])  # a1 = first column
    identity = arm_guidance(torch.eye(3).expand(2, 22, 3, 3), 'left')
    torch.testing.assert_close(identity, torch.tensor([1.0, 0, 0, 0, 1, 0]).expand(2, 8, 6))


def test_guidance_from_every_representation_agrees():
    aa = random_body_aa()
    rotmat = axis_angle_to_rotmat(aa)
    smplerx_6d = rotmat_to_rot6d(rotmat, 'interleaved') * 1.7  # unnormalised network output
    for side in ('left', 'right'):
        reference = arm_guidance(rotmat, side)
        torch.testing.assert_close(arm_guidance_from_axis_angle(aa, side), reference)
        torch.testing.assert_close(arm_guidance_from_smplerx_6d(smplerx_6d, side), reference)
    both = arm_guidance_both_sides(rotmat)
    assert both.shape == (BATCH, 2, 8, 6)
    torch.testing.assert_close(both[:, 0], arm_guidance(rotmat, 'left'))
    torch.testing.assert_close(both[:, 1], arm_guidance(rotmat, 'right'))


def test_left_arm_is_mirrored_x_minus_y_minus_z():
    aa = random_body_aa()
    left_chain = aa[:, [0, 3, 6, 9, 13, 16, 18, 20]]
    expected = rotmat_to_rot6d(axis_angle_to_rotmat(mirror_axis_angle(left_chain)), 'contiguous')
    torch.testing.assert_close(arm_guidance_from_axis_angle(aa, 'left'), expected)


def _mirror_body(body_rotmat: torch.Tensor) -> torch.Tensor:
    """The person's mirror image: swap left/right joints and mirror every rotation."""
    names = ('pelvis', *BODY_JOINT_NAMES)
    swapped = [
        names.index(n.replace('left_', 'right_') if 'left_' in n else n.replace('right_', 'left_'))
        for n in names
    ]
    return mirror_rotmat(body_rotmat[:, swapped])


def test_left_arm_of_a_mirrored_body_equals_the_right_arm():
    """A flipped left-hand crop shows the mirrored person's right hand; its guidance must be the
    right-arm guidance of that mirrored person, and mirroring twice is the identity."""
    body = axis_angle_to_rotmat(random_body_aa())
    mirrored = _mirror_body(body)
    torch.testing.assert_close(_mirror_body(mirrored), body)
    torch.testing.assert_close(arm_guidance(mirrored, 'left'), arm_guidance(body, 'right'))
    torch.testing.assert_close(arm_guidance(mirrored, 'right'), arm_guidance(body, 'left'))
    # Mirroring the guidance itself twice gives it back (sign pattern on both 6D columns).
    left = arm_guidance(body, 'left')
    twice = rotmat_to_rot6d(
        mirror_rotmat(mirror_rotmat(rot6d_to_rotmat(left, 'contiguous'))), 'contiguous'
    )
    torch.testing.assert_close(twice, left)


def test_guidance_rejects_wrong_shapes_and_sides():
    with pytest.raises(ValueError, match='root'):
        arm_guidance(torch.eye(3).expand(1, 21, 3, 3), 'right')
    with pytest.raises(ValueError, match='body_pose_aa'):
        arm_guidance_from_axis_angle(torch.zeros(1, 63), 'right')
    with pytest.raises(ValueError, match='side'):
        arm_guidance(torch.eye(3).expand(1, 22, 3, 3), 'middle')  # type: ignore[arg-type]


# --- Paper eq. 3, recomputed from the weights ----------------------------------------------------


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, H*D) -> (B, H, N, D): each head a contiguous slice of D features."""
    b, n, hd = x.shape
    return x.view(b, n, heads, hd // heads).transpose(1, 2)


def _attention(
    query_in: torch.Tensor,
    context: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    heads: int,
) -> torch.Tensor:
    """Softmax(Q K^T / sqrt(d)) V per head, then the output projection (paper eqs. 1-2)."""
    q, k, v = (_heads(t, heads) for t in (query_in @ w_q.T, context @ w_k.T, context @ w_v.T))
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    merged = (weights @ v).transpose(1, 2).flatten(2)
    return merged @ w_out.T + b_out


def _layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def test_guided_head_is_paper_eq_3_recomputed_from_the_weights():
    """Z_new = CA(Q, K, V) + CA(Q', K', V') with Q' = SA'(Z) W'_q, K' = F^B W'_k, V' = F^B W'_v
    and F^B = theta_b W_B (+ the joint embedding): every adapter term is computed here from the
    raw weight matrices (pre-norm as in HaMeR's decoder), the frozen head's own terms from its
    modules; the adapter's forward must give the same pose, shape and camera."""
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head)
    perturb_output_projections(adapter)
    with torch.no_grad():  # make SA' differ from SA, so a swapped branch input would show
        for branch in adapter.branches:
            qkv = branch.self_attention.fn.to_qkv.weight
            qkv.add_(0.3 * torch.randn(qkv.shape, generator=torch.Generator().manual_seed(9)))
    head = expert.mano_head
    config = head.config
    feature_map = torch.randn(BATCH, config.context_dim, 4, 3)
    theta_b = guidance()
    with torch.no_grad():
        expected_fb = theta_b @ adapter.body_projection.weight.T + adapter.body_projection.bias
        if adapter.joint_embedding is not None:
            expected_fb = expected_fb + adapter.joint_embedding
        context = feature_map.flatten(2).transpose(1, 2)
        z = head.query_tokens(BATCH, context)
        for layer, branch in zip(head.transformer.layers, adapter.branches, strict=True):
            block_in = z
            z = z + layer.attend_self(z)  # frozen SA
            hand_term = layer.attend_context(z, context)  # frozen CA(Q, K, V) over F^H
            sa_prime = branch.self_attention
            w_qkv = sa_prime.fn.to_qkv.weight
            inner = w_qkv.shape[0] // 3
            sa_out = _attention(
                _layer_norm(block_in, sa_prime.norm),
                _layer_norm(block_in, sa_prime.norm),
                w_qkv[:inner],
                w_qkv[inner : 2 * inner],
                w_qkv[2 * inner :],
                sa_prime.fn.to_out[0].weight,
                sa_prime.fn.to_out[0].bias,
                config.heads,
            )
            ca_prime = branch.cross_attention
            w_kv = ca_prime.fn.to_kv.weight
            body_term = _attention(
                _layer_norm(block_in + sa_out, ca_prime.norm),
                expected_fb,
                ca_prime.fn.to_q.weight,
                w_kv[:inner],
                w_kv[inner:],
                ca_prime.fn.to_out[0].weight,
                ca_prime.fn.to_out[0].bias,
                config.heads,
            )
            z = z + hand_term + body_term  # eq. 3: the two cross-attentions add
            z = z + layer.feed_forward(z)
        expected = head.regress(z[:, 0])
        got = adapter(head, feature_map, theta_b)
        assert torch.allclose(adapter.body_tokens(theta_b), expected_fb, atol=1e-6)
    for name in ('pose_6d', 'betas', 'cam'):
        torch.testing.assert_close(
            getattr(got, name), getattr(expected, name), atol=1e-5, rtol=1e-4
        )
    assert not torch.allclose(got.pose_6d, head(feature_map).pose_6d, atol=1e-4)
