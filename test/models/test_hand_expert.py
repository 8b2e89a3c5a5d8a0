"""Tests for hmr_ros.models.hand_expert (HaMeR-compatible hand expert)."""

from typing import NamedTuple

import pytest
import torch
from hand_fixtures import crops, tiny_expert
from torch import nn

from hmr_ros.body_models.smplx_layers import MANOHandModel
from hmr_ros.geometry.cameras import cam_crop_to_full
from hmr_ros.geometry.crops import crop_images
from hmr_ros.geometry.rotations import mirror_rotmat, rot6d_to_rotmat
from hmr_ros.models.backbones.vit import count_parameters, vit_tiny
from hmr_ros.models.hand_expert import (
    HAND_EXPERT_VARIANTS,
    HandExpertConfig,
    build_hand_expert,
    hamer_tiny,
    mirror_left_hands,
    normalize_hand_crops,
)
from hmr_ros.models.heads.mano_head import MANOHeadConfig

BATCH = 2


def test_full_size_parameter_counts_on_meta():
    """Backbone 630,912,000 + head 39,497,837 = 670,409,837; 389 + 114 = 503 tensors."""
    with torch.device('meta'):
        model = build_hand_expert('hamer')
    assert count_parameters(model.backbone) == 630_912_000
    assert count_parameters(model.mano_head) == 39_497_837
    assert count_parameters(model) == 670_409_837
    keys = model.state_dict().keys()
    assert len(keys) == 503
    assert all(k.startswith(('backbone.', 'mano_head.')) for k in keys)
    assert model.config.crop_columns == (32, 224)


def test_forward_shapes_and_crop_translation():
    """cam_translation_crop = (tx, ty, 2 * 5000 / (256 s))."""
    out = tiny_expert()(crops(BATCH))
    assert out.global_orient.shape == (2, 1, 3, 3)
    assert out.hand_pose.shape == (2, 15, 3, 3)
    assert out.betas.shape == (2, 10)
    assert out.cam.shape == (2, 3)
    assert out.cam_translation_crop.shape == (2, 3)
    assert out.pose_6d.shape == (2, 16, 6)
    s, tx, ty = out.cam.unbind(-1)
    expected = torch.stack((tx, ty, 2 * 5000.0 / (256 * s + 1e-9)), dim=-1)
    torch.testing.assert_close(out.cam_translation_crop, expected)
    assert all(torch.isfinite(t).all() for t in out)


def test_only_columns_32_to_224_reach_the_backbone():
    model = tiny_expert()
    x = crops(BATCH)
    reference = model(x)
    outside = x.clone()
    outside[..., :32] = 5.0
    outside[..., 224:] = -5.0
    torch.testing.assert_close(model(outside).token, reference.token)
    inside = x.clone()
    inside[..., 100] = 5.0
    assert not torch.allclose(model(inside).token, reference.token)


def test_wrong_crop_size_raises():
    with pytest.raises(ValueError, match='256, 256'):
        tiny_expert()(torch.zeros(1, 3, 256, 192))


def test_fused_and_reference_paths_agree():
    model = tiny_expert()
    x = crops(BATCH)
    fused = model(x)
    model.set_fused_attention(False)
    reference = model(x)
    for a, b in zip(fused, reference, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_normalize_hand_crops_imagenet_values():
    """A pixel equal to 255 * mean maps to 0; 255 * (mean + std) maps to 1."""
    mean = torch.tensor([0.485, 0.456, 0.406]) * 255
    std = torch.tensor([0.229, 0.224, 0.225]) * 255
    x = torch.stack((mean, mean + std), dim=-1).reshape(1, 3, 1, 2)
    expected = torch.tensor([0.0, 1.0]).expand(1, 3, 1, 2)
    torch.testing.assert_close(normalize_hand_crops(x), expected)


def test_mirror_left_hands_twice_is_identity_and_negates_tx():
    out = tiny_expert()(crops(batch=3))
    is_left = torch.tensor([True, False, True])
    once = mirror_left_hands(out, is_left)
    twice = mirror_left_hands(once, is_left)
    for a, b in zip(twice, out, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(once.cam[:, 1], out.cam[:, 1] * torch.tensor([-1.0, 1.0, -1.0]))
    torch.testing.assert_close(once.cam[:, ::2], out.cam[:, ::2])
    torch.testing.assert_close(
        once.cam_translation_crop[:, 0],
        out.cam_translation_crop[:, 0] * torch.tensor([-1.0, 1, -1]),
    )
    torch.testing.assert_close(once.global_orient[0], mirror_rotmat(out.global_orient[0]))
    torch.testing.assert_close(once.hand_pose[1], out.hand_pose[1])
    torch.testing.assert_close(once.betas, out.betas)
    # The mirrored 6D vectors decode to the mirrored matrices.
    decoded = rot6d_to_rotmat(once.pose_6d, 'contiguous')
    torch.testing.assert_close(decoded[:, :1], once.global_orient)
    torch.testing.assert_close(decoded[:, 1:], once.hand_pose)


def test_left_hand_at_mirrored_place_of_symmetric_image_gets_mirrored_result():
    """In an image symmetric about its centre column x = (W - 1) / 2, a right hand box at cx
    and a left hand box at W - 1 - cx give identical crops (the left one flipped), hence the
    same network output; after mirror_left_hands the left hand has mirrored rotations, -tx,
    and, with the principal point on the symmetry axis, the mirrored 3D root (-X, Y, Z)."""
    g = torch.Generator().manual_seed(5)
    w, h = 200, 150
    image = torch.rand(1, 3, h, w, generator=g) * 255
    image = (image + image.flip(-1)) / 2
    cx = 60.0
    centers = torch.tensor([[cx, 70.0], [w - 1 - cx, 70.0]])
    sides = torch.tensor([90.0, 90.0])
    is_left = torch.tensor([False, True])
    hand_crops = crop_images(image, centers, sides, (256, 256), flip=is_left)
    torch.testing.assert_close(hand_crops[0], hand_crops[1], atol=1e-2, rtol=0)  # of 255

    model = tiny_expert()
    out = mirror_left_hands(model(normalize_hand_crops(hand_crops)), is_left)
    tol = {'atol': 1e-4, 'rtol': 1e-4}
    torch.testing.assert_close(out.global_orient[1], mirror_rotmat(out.global_orient[0]), **tol)
    torch.testing.assert_close(out.hand_pose[1], mirror_rotmat(out.hand_pose[0]), **tol)
    torch.testing.assert_close(out.cam[1], out.cam[0] * torch.tensor([1.0, -1.0, 1.0]), **tol)

    focal = torch.tensor([[800.0, 800.0]]).expand(2, 2)
    principal = torch.tensor([[(w - 1) / 2, h / 2]]).expand(2, 2)
    transl = cam_crop_to_full(out.cam, centers, sides, focal, principal)
    torch.testing.assert_close(transl[1], transl[0] * torch.tensor([-1.0, 1.0, 1.0]), **tol)


class FakeMANOOutput(NamedTuple):
    vertices: torch.Tensor
    joints: torch.Tensor


class FakeMANO(nn.Module):
    """Test double with the MANOHandModel call signature: joints fixed offsets, no LBS."""

    def forward(self, global_orient, hand_pose, betas):
        batch = betas.shape[0]
        joints = torch.linspace(-0.05, 0.05, 21 * 3).reshape(1, 21, 3).expand(batch, -1, -1)
        vertices = torch.zeros(batch, 778, 3)
        return FakeMANOOutput(vertices=vertices, joints=joints)


def test_mano_outputs_projects_with_virtual_crop_camera():
    """u = 5000 (X + tx) / (Z + tz) + 128, v likewise, in pixels of the 256 crop."""
    model = tiny_expert()
    out = model(crops(BATCH))
    mesh = model.mano_outputs(out, FakeMANO())
    assert mesh.vertices.shape == (2, 778, 3) and mesh.joints.shape == (2, 21, 3)
    p = mesh.joints + out.cam_translation_crop[:, None]
    expected = 5000.0 * p[..., :2] / p[..., 2:] + 128.0
    torch.testing.assert_close(mesh.keypoints_crop_px, expected)


def test_config_validation_and_variants():
    assert set(HAND_EXPERT_VARIANTS) == {'hamer', 'hamer_tiny'}
    with pytest.raises(ValueError, match='hamer_tiny'):
        build_hand_expert('hamer_xl')
    with pytest.raises(ValueError, match='context_dim'):
        HandExpertConfig(backbone=vit_tiny(), head=MANOHeadConfig(context_dim=64))
    with pytest.raises(ValueError, match='task tokens'):
        HandExpertConfig(backbone=vit_tiny(num_task_tokens=2), head=hamer_tiny().head)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_on_cuda(dtype):
    model = tiny_expert().cuda()
    x = crops(BATCH).cuda()
    reference = model(x)
    with torch.autocast('cuda', dtype=dtype):
        out = model(x)
    assert all(torch.isfinite(t).all() for t in out)
    torch.testing.assert_close(out.hand_pose.float(), reference.hand_pose, atol=5e-2, rtol=5e-2)


def test_mano_outputs_with_mano_layer(mano_hand_model):
    model = tiny_expert()
    out = model(crops(BATCH))
    mesh = model.mano_outputs(out, mano_hand_model)
    assert mesh.vertices.shape == (2, 778, 3)
    assert mesh.joints.shape == (2, 21, 3)
    assert mesh.keypoints_crop_px.shape == (2, 21, 2)
    direct = mano_hand_model(out.global_orient, out.hand_pose, out.betas)
    torch.testing.assert_close(mesh.vertices, direct.vertices)
    assert torch.isfinite(mesh.keypoints_crop_px).all()


def test_mirrored_parameters_on_left_mano_equal_mirrored_right_mesh(body_model_dir):
    """HaMeR's demo shows a left hand as the right-hand mesh with x negated. The left-hand
    parameters from mirror_left_hands, run through the left MANO model, give that mesh."""
    right = MANOHandModel.from_folder(body_model_dir, side='right')
    left = MANOHandModel.from_folder(body_model_dir, side='left')
    out = tiny_expert()(crops(BATCH))
    as_left = mirror_left_hands(out, torch.tensor([True, True]))
    right_mesh = right(out.global_orient, out.hand_pose, out.betas)
    left_mesh = left(as_left.global_orient, as_left.hand_pose, as_left.betas)
    mirror_x = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left_mesh.vertices, right_mesh.vertices * mirror_x)
    torch.testing.assert_close(left_mesh.joints, right_mesh.joints * mirror_x)
