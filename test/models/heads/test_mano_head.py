"""Tests for hmr_ros.models.heads.mano_head (HaMeR-compatible MANO decoder head)."""

import numpy as np
import pytest
import torch

from hmr_ros.geometry.rotations import rot6d_to_rotmat
from hmr_ros.models.backbones.vit import count_parameters
from hmr_ros.models.heads.mano_head import (
    MANOHeadConfig,
    MANOTransformerHead,
    identity_pose_6d,
)

TINY = MANOHeadConfig(dim=32, depth=2, heads=2, dim_head=16, mlp_dim=32, context_dim=24)


def tiny_head() -> MANOTransformerHead:
    torch.manual_seed(0)
    return MANOTransformerHead(TINY).eval()


def features(batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(batch, 24, 16, 12, generator=g)


def test_full_size_parameter_count_and_keys_on_meta():
    """39,497,837 parameters; 6 layers x 17 tensors + 12 others = 114 state-dict tensors."""
    with torch.device('meta'):
        head = MANOTransformerHead(MANOHeadConfig())
    assert count_parameters(head) == 39_497_837
    sd = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert len(sd) == 114
    assert sd['init_hand_pose'] == (1, 96)
    assert sd['init_betas'] == (1, 10)
    assert sd['init_cam'] == (1, 3)
    assert sd['transformer.pos_embedding'] == (1, 1, 1024)
    assert sd['transformer.to_token_embedding.weight'] == (1024, 1)
    assert sd['transformer.transformer.layers.5.0.fn.to_qkv.weight'] == (1536, 1024)
    assert sd['transformer.transformer.layers.5.1.fn.to_kv.weight'] == (1024, 1280)
    assert sd['transformer.transformer.layers.5.1.fn.to_q.weight'] == (512, 1024)
    assert sd['transformer.transformer.layers.5.2.fn.net.3.weight'] == (1024, 1024)
    assert sd['decpose.weight'] == (96, 1024)
    assert sd['decshape.weight'] == (10, 1024)
    assert sd['deccam.weight'] == (3, 1024)
    assert not any('to_qkv.bias' in k or 'to_kv.bias' in k or 'to_q.bias' in k for k in sd)


def test_output_shapes_and_valid_rotations():
    out = tiny_head()(features())
    assert out.global_orient.shape == (2, 1, 3, 3)
    assert out.hand_pose.shape == (2, 15, 3, 3)
    assert out.betas.shape == (2, 10)
    assert out.cam.shape == (2, 3)
    assert out.pose_6d.shape == (2, 16, 6)
    assert out.token.shape == (2, 32)
    rot = torch.cat((out.global_orient, out.hand_pose), dim=1)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), torch.eye(3).expand(2, 16, 3, 3))


def test_one_ief_step_adds_readouts_to_mean_params():
    """With zero read-out layers the outputs are exactly the init_* buffers; rotations come
    from the contiguous 6D layout."""
    head = tiny_head()
    pose = torch.randn(96)
    betas = torch.randn(10)
    cam = torch.tensor([0.8, 0.1, -0.1])
    head.set_mean_params(pose, betas, cam)
    with torch.no_grad():
        for layer in (head.decpose, head.decshape, head.deccam):
            layer.weight.zero_()
            layer.bias.zero_()
    out = head(features())
    torch.testing.assert_close(out.betas, betas.expand(2, 10))
    torch.testing.assert_close(out.cam, cam.expand(2, 3))
    expected = rot6d_to_rotmat(pose.reshape(16, 6), 'contiguous')
    torch.testing.assert_close(out.global_orient[0, 0], expected[0])
    torch.testing.assert_close(out.hand_pose[1], expected[1:])


def test_read_outs_are_linear_in_the_token():
    head = tiny_head()
    out = head(features())
    torch.testing.assert_close(out.betas, head.decshape(out.token) + head.init_betas)
    torch.testing.assert_close(out.cam, head.deccam(out.token) + head.init_cam)


def test_default_mean_pose_is_identity():
    head = tiny_head()
    torch.testing.assert_close(head.init_hand_pose, identity_pose_6d())
    eye = rot6d_to_rotmat(identity_pose_6d().reshape(16, 6), 'contiguous')
    torch.testing.assert_close(eye, torch.eye(3).expand(16, 3, 3))


def test_query_is_zero_so_token_embedding_weight_is_unused():
    head = tiny_head()
    before = head(features())
    with torch.no_grad():
        head.transformer.to_token_embedding.weight.add_(1.0)
    torch.testing.assert_close(head(features()).token, before.token)


def test_context_tokens_are_row_major():
    fmap = torch.arange(2 * 3 * 4).reshape(1, 2, 3, 4).float()
    tokens = MANOTransformerHead.context_tokens(fmap)
    assert tokens.shape == (1, 12, 2)
    # Token 5 is row 1, column 1 of the grid.
    torch.testing.assert_close(tokens[0, 5], fmap[0, :, 1, 1])


def test_load_mean_params_from_npz(body_model_dir):
    head = tiny_head()
    head.load_mean_params(body_model_dir / 'mano_mean_params.npz')
    with np.load(body_model_dir / 'mano_mean_params.npz') as data:
        torch.testing.assert_close(head.init_hand_pose[0], torch.from_numpy(data['pose']))
        torch.testing.assert_close(head.init_betas[0], torch.from_numpy(data['shape']))
        torch.testing.assert_close(head.init_cam[0], torch.from_numpy(data['cam']))


def test_load_mean_params_errors(tmp_path):
    head = tiny_head()
    with pytest.raises(FileNotFoundError, match='mano_mean_params'):
        head.load_mean_params(tmp_path / 'missing.npz')
    np.savez(tmp_path / 'bad.npz', pose=np.zeros(96), shape=np.zeros(10))
    with pytest.raises(ValueError, match='cam'):
        head.load_mean_params(tmp_path / 'bad.npz')
    with pytest.raises(ValueError, match='96'):
        head.set_mean_params(torch.zeros(90), torch.zeros(10), torch.zeros(3))


def test_config_validation():
    with pytest.raises(ValueError, match='depth'):
        MANOHeadConfig(depth=0)
