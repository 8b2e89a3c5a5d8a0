"""The hand baselines of the paper's Tables 3 and 5 (models/ablations/hand.py and the
HandAdapterConfig.guidance inputs of models/adapters/hand_adapter.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hand_fixtures import BATCH, crops, tiny_expert

from hmr_ros.body_models.joint_names import arm_chain_indices
from hmr_ros.checkpoints.hamer_layout import DISCRIMINATOR_SHAPES
from hmr_ros.datasets.augmentation import flip_sample
from hmr_ros.datasets.sample import Sample, SMPLXParams
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, rotmat_to_rot6d
from hmr_ros.models.ablations.hand import (
    BodyFeatureInjection,
    FineTunedHandExpert,
    reinitialise_hand_expert,
)
from hmr_ros.models.adapters.hand_adapter import (
    GuidedHandExpert,
    HandAdapter,
    HandAdapterConfig,
    arm_guidance,
    whole_body_guidance,
)
from hmr_ros.models.backbones.vit import count_parameters
from hmr_ros.models.hand_expert import HandExpert, build_hand_expert


def body_rotmat(batch: int = BATCH, seed: int = 2) -> torch.Tensor:
    aa = torch.randn(batch, 22, 3, generator=torch.Generator().manual_seed(seed))
    return axis_angle_to_rotmat(aa)


def features(expert: HandExpert, images: torch.Tensor) -> torch.Tensor:
    return expert.backbone(expert.backbone_input(images)).feature_map


# --- Trainable-parameter counts at full size (the paper's Table 3 column) ------------------------


def test_trainable_counts_match_table_3_on_meta():
    """Table 3 prints 671M (No.1, No.2), 39M (No.3, No.4) and 27M (No.5).

    Hand arithmetic of the MANO head (dim 1024, 6 blocks, 8 x 64 heads, context 1280, MLP
    1024): per block SA 2,100,224 + CA 2,362,368 + FFN (2 x (1024 * 1024 + 1024) + LN 2048)
    2,101,248 = 6,563,840; 6 blocks 39,383,040; token embedding 2,048, position 1,024,
    decpose 1024 * 96 + 96 = 98,400, decshape 10,250, deccam 3,075: 39,497,837 (39M).
    No.4 adds the body projection 6 * 1280 + 1280 = 8,960 and the joint embedding 8 * 1280 =
    10,240: 39,517,037, 39.5M, printed 39M (the leading digits).
    No.1/No.2: the released HaMeR network has 670,409,837 values (670.4M), 0.6M short of the
    printed 671M. HaMeR's training module also holds its pose discriminator (1,545,211 values,
    the official checkpoint's ``discriminator.*``, not trained here: eq. 5 has no adversarial
    term): with it, 671,955,048, printed 671M. The paper's count is evidently that module's.
    """
    with torch.device('meta'):
        expert = build_hand_expert('hamer')
        full = FineTunedHandExpert(expert, 'all', 'hamer_full_finetune')
        head = count_parameters(expert.mano_head)
        concatenation = BodyFeatureInjection(expert.mano_head, 'concatenation')
        image_input = HandAdapter(expert.mano_head, HandAdapterConfig(guidance='image_features'))
    discriminator = sum(math.prod(shape) for shape in DISCRIMINATOR_SHAPES.values())
    assert discriminator == 1_545_211
    assert count_parameters(full.trained) == 670_409_837
    assert int((count_parameters(full.trained) + discriminator) / 1e6) == 671
    assert head == 39_497_837 and int(head / 1e6) == 39
    assert count_parameters(concatenation) == 39_517_037
    assert int(count_parameters(concatenation) / 1e6) == 39
    # No.5: SA' + CA' of 6 blocks (26,775,552), no body projection: "about 27M".
    assert count_parameters(image_input) == 26_775_552
    assert round(count_parameters(image_input) / 1e6) == 27


def test_decoder_fine_tuning_trains_the_head_only():
    expert = tiny_expert()
    model = FineTunedHandExpert(expert, 'decoder', 'hamer_decoder_finetune').train()
    assert not expert.backbone.training and expert.mano_head.training
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in expert.mano_head.parameters()}
    assert trainable == {id(p) for p in model.trained.parameters()}
    before = {k: v.clone() for k, v in expert.state_dict().items()}
    optimiser = torch.optim.AdamW(model.trained.parameters(), lr=1e-2)
    for _ in range(3):
        output = model(crops(), torch.zeros(BATCH, 8, 6))
        (output.pose_6d.square().sum() + output.betas.sum()).backward()
        optimiser.step()
        optimiser.zero_grad()
    after = expert.state_dict()
    for key, value in before.items():
        if key.startswith('backbone.'):
            assert torch.equal(after[key], value), key
    changed = [
        k for k in before if k.startswith('mano_head.') and not torch.equal(after[k], before[k])
    ]
    assert 'mano_head.decpose.weight' in changed and len(changed) > 10


def test_full_fine_tuning_runs_the_vit_in_training_mode():
    """HaMeR trains its ViT-H with stochastic depth; full fine-tuning keeps that mode."""
    expert = tiny_expert()
    model = FineTunedHandExpert(expert, 'all', 'hamer_full_finetune').train()
    assert expert.backbone.training
    assert {id(p) for p in model.parameters() if p.requires_grad} == {
        id(p) for p in expert.parameters()
    }


def test_from_scratch_replaces_every_weight_and_keeps_the_mean_parameters():
    """ViTPose's init of the ViT: linear weights trunc-normal std 0.02 (bounds +-2, i.e. no
    truncation at that std), zero biases, unit LayerNorms; HaMeR's mean parameters stay."""
    expert = tiny_expert()
    with torch.no_grad():  # "trained" weights: nothing left at its initial value
        for parameter in expert.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    before = {k: v.clone() for k, v in expert.state_dict().items()}
    reinitialise_hand_expert(expert, seed=7)
    after = expert.state_dict()
    buffers = {name for name, _ in expert.named_buffers()}
    for key, value in before.items():
        if key in buffers:
            assert torch.equal(after[key], value), key
        else:
            assert not torch.equal(after[key], value), key
    linear = torch.cat(
        [
            module.weight.detach().flatten()
            for module in expert.backbone.modules()
            if isinstance(module, torch.nn.Linear)
        ]
    )
    assert abs(float(linear.std()) - 0.02) < 0.001 and abs(float(linear.mean())) < 0.001
    norms = [m for m in expert.backbone.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    # Seeded: the same seed gives the same weights.
    again = reinitialise_hand_expert(tiny_expert(), seed=7).state_dict()
    assert all(torch.equal(again[k], after[k]) for k in after)


# --- Adapter inputs: whole-body pose (Table 5), image features (Table 3 No.5) -------------------


def test_whole_body_guidance_of_a_left_hand_is_the_flipped_sample_right_hand():
    """The data pipeline's horizontal flip (datasets.augmentation.flip_sample: rotations
    mirrored, left and right joints swapped) turns a left hand into a right one; the whole-body
    guidance of the left hand must equal the flipped body's right-hand guidance."""
    rng = np.random.default_rng(0)
    smplx = SMPLXParams(
        global_orient_aa=rng.normal(size=3),
        body_pose_aa=rng.normal(scale=0.5, size=(21, 3)),
        left_hand_pose_aa=np.zeros((15, 3)),
        right_hand_pose_aa=np.zeros((15, 3)),
        jaw_pose_aa=np.zeros(3),
        betas=np.zeros(10),
        expression=np.zeros(10),
        transl_m=np.zeros(3),
        rest_pelvis_m=np.zeros(3),
    )
    sample = Sample(
        dataset='t',
        sample_id='0',
        image_size_wh=(8, 8),
        image=np.zeros((8, 8, 3), np.uint8),
        smplx=smplx,
    )
    flipped = flip_sample(sample).smplx
    assert flipped is not None

    def rotmats(params: SMPLXParams) -> torch.Tensor:
        aa = np.concatenate((params.global_orient_aa[None], params.body_pose_aa))
        return axis_angle_to_rotmat(torch.from_numpy(aa).float())[None]

    left = whole_body_guidance(rotmats(smplx), 'left')
    assert torch.allclose(left, whole_body_guidance(rotmats(flipped), 'right'), atol=1e-6)
    # The right hand sees the body as it is, and the arm group is a subset of the whole body.
    right = whole_body_guidance(rotmats(smplx), 'right')
    assert torch.allclose(right, rotmat_to_rot6d(rotmats(smplx), 'contiguous'))
    arm = list(arm_chain_indices('right'))
    assert torch.allclose(left[:, arm], arm_guidance(rotmats(smplx), 'left'), atol=1e-6)


def test_whole_body_adapter_takes_22_rotations_and_uses_the_lower_body():
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head, HandAdapterConfig(guidance='whole_body_pose'))
    with torch.no_grad():
        for branch in adapter.branches:
            branch.output_projection.weight.normal_(0.0, 0.5)
    model = GuidedHandExpert(expert, adapter).eval()
    body = body_rotmat()
    guidance = model.guidance(body, 'right')
    assert guidance.shape == (BATCH, 22, 6) and model.guidance_joints == 22
    assert adapter.joint_embedding is not None and adapter.joint_embedding.shape[1] == 22
    moved = body.clone()
    moved[:, 4] = torch.eye(3)  # the left knee (SMPL-X joint 4): not in any arm group
    with torch.no_grad():
        a = model(crops(), guidance).pose_6d
        b = model(crops(), model.guidance(moved, 'right')).pose_6d
        c = model(crops(), arm_guidance_like(body)).pose_6d
    assert not torch.allclose(a, b)  # the lower body reaches the hand
    assert torch.equal(a, c)
    assert adapter.file_config()['guidance'] == 'whole_body_pose'
    assert adapter.file_config()['guidance_joints'] == 22
    with pytest.raises(ValueError, match='whole_body_guidance'):
        model(crops(), torch.zeros(BATCH, 8, 6))


def arm_guidance_like(body: torch.Tensor) -> torch.Tensor:
    return whole_body_guidance(body, 'right')


def test_image_input_adapter_is_the_decoder_with_doubled_cross_attention():
    """Table 3 No.5: CA' attends to F^H. SA' and CA' start as copies of the block's SA and
    CA (paper 3.3), so with CA''s output layer also copied, the branch adds the block's own
    cross-attention update again: eq. 3 becomes Z + SA(Z) + 2 CA(...). That is the plain
    decoder with every cross-attention output layer doubled (a linear layer), built here
    from the base head alone."""
    expert = tiny_expert()
    adapter = HandAdapter(expert.mano_head, HandAdapterConfig(guidance='image_features'))
    assert adapter.body_projection is None and adapter.joint_embedding is None
    model = GuidedHandExpert(expert, adapter).eval()
    empty = model.guidance(body_rotmat(), 'right')
    assert empty.shape == (BATCH, 0, 6)
    with torch.no_grad():
        untrained = model(crops(), empty)
        plain = expert(crops())
    assert torch.equal(untrained.pose_6d, plain.pose_6d)  # zero output layers: a no-op
    doubled = tiny_expert()
    with torch.no_grad():
        for branch, layer, twin in zip(
            adapter.branches,
            expert.mano_head.transformer.layers,
            doubled.mano_head.transformer.layers,
            strict=True,
        ):
            out = layer.cross_attention.fn.to_out[0]
            branch.output_projection.weight.copy_(out.weight)
            branch.output_projection.bias.copy_(out.bias)
            twin.cross_attention.fn.to_out[0].weight.mul_(2.0)
            twin.cross_attention.fn.to_out[0].bias.mul_(2.0)
        guided = model(crops(), empty)
        reference = doubled(crops())
    assert torch.allclose(guided.pose_6d, reference.pose_6d, atol=1e-5)
    assert not torch.allclose(guided.pose_6d, plain.pose_6d, atol=1e-3)


# --- Body feature injection (Table 3 No.4, Table 5) ---------------------------------------------


def test_concatenation_is_the_base_decoder_on_image_and_body_tokens():
    """The paper's definition: HaMeR's decoder fed [F^H; F^B]. The untrained copy of the
    decoder equals HaMeR's head run on a feature map made of the 192 image tokens and the 8
    body tokens (any grid: the head flattens it)."""
    expert = tiny_expert()
    injection = BodyFeatureInjection(expert.mano_head, 'concatenation')
    model = GuidedHandExpert(expert, injection).eval()
    guidance = model.guidance(body_rotmat(), 'right')
    with torch.no_grad():
        fmap = features(expert, crops())
        tokens = torch.cat(
            (fmap.flatten(2).transpose(1, 2), injection.body_tokens(guidance)), dim=1
        )
        reference = expert.mano_head(tokens.transpose(1, 2)[..., None])  # (B, C, 200, 1)
        output = model(crops(), guidance)
    assert torch.allclose(output.pose_6d, reference.pose_6d, atol=1e-6)
    # The base head is not the one that trains: the decoder is a copy.
    assert injection.decoder is not expert.mano_head
    assert {id(p) for p in injection.parameters()}.isdisjoint(id(p) for p in expert.parameters())
    assert all(p.requires_grad for p in injection.parameters())
    assert not any(p.requires_grad for p in expert.parameters())


def test_one_hot_moderator_reduces_the_weighted_sum_to_one_input():
    """PIXIE's moderator: w = softmax(MLP(.) * t); one-hot weights select one feature. All
    weight on the image: HaMeR itself. All weight on the body: the output no longer depends
    on the image."""
    expert = tiny_expert()
    injection = BodyFeatureInjection(expert.mano_head, 'weighted_sum')
    assert injection.moderator is not None
    last = injection.moderator[-1]
    assert [m.out_features for m in injection.moderator if isinstance(m, torch.nn.Linear)] == [
        1024,
        1024,
        2,
    ]  # PIXIE's hand moderator: channels [1024, 1024], then the 2 confidences
    model = GuidedHandExpert(expert, injection).eval()
    guidance = model.guidance(body_rotmat(), 'right')
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor((-1e4, 0.0)))  # all weight on the image tokens
        image_only = model(crops(), guidance)
        plain = expert(crops())
        last.bias.copy_(torch.tensor((0.0, -1e4)))  # all weight on the body feature
        body_a = model(crops(seed=1), guidance)
        body_b = model(crops(seed=9), guidance)
        other_pose = model(crops(seed=1), model.guidance(body_rotmat(seed=4), 'right'))
    assert torch.allclose(image_only.pose_6d, plain.pose_6d, atol=1e-6)
    assert torch.allclose(body_a.pose_6d, body_b.pose_6d, atol=1e-6)
    assert not torch.allclose(body_a.pose_6d, other_pose.pose_6d, atol=1e-4)
    weights = injection.moderator_weights(
        injection.body_tokens(guidance), torch.randn(BATCH, 5, 32)
    )
    assert torch.allclose(weights.sum(-1), torch.ones(BATCH, 5))
