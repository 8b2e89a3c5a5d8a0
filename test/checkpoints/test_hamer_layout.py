"""Tests for hmr_ros.checkpoints.hamer_layout (HaMeR Lightning layout <-> HandExpert)."""

import pytest
import torch

from hmr_ros.checkpoints.hamer_layout import (
    DISCRIMINATOR_SHAPES,
    hamer_state_dict_from_official,
    official_hamer_checkpoint,
)
from hmr_ros.checkpoints.safe_load import CheckpointMismatchError, load_state_dict_strict
from hmr_ros.models.hand_expert import build_hand_expert

MANO_BUFFER_SHAPES = {
    'shapedirs': (778, 3, 10),
    'faces_tensor': (1538, 3),
    'v_template': (778, 3),
    'J_regressor': (16, 778),
    'posedirs': (135, 2334),
    'parents': (16,),
    'lbs_weights': (778, 16),
    'vertex_joint_selector.extra_joints_idxs': (5,),
    'hand_components': (6, 45),
    'hand_mean': (45,),
    'pose_mean': (48,),
    'extra_joints_idxs': (5,),
    'joint_map': (21,),
}
"""Reference A.6 table."""


def tiny_model(seed: int):
    torch.manual_seed(seed)
    return build_hand_expert('hamer_tiny').eval()


def test_round_trip_gives_identical_outputs():
    """tiny HandExpert -> official layout -> back -> strict load into a differently seeded
    model -> identical outputs (including the init_* mean buffers)."""
    source = tiny_model(0)
    with torch.no_grad():
        source.mano_head.init_cam.copy_(torch.tensor([[0.7, 0.05, -0.02]]))
    official = official_hamer_checkpoint(source.state_dict(), seed=1)
    ours = hamer_state_dict_from_official(official)
    assert set(ours) == set(source.state_dict())
    target = tiny_model(1)
    load_state_dict_strict(target, ours)
    x = torch.randn(2, 3, 256, 256)
    for a, b in zip(source(x), target(x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_official_layout_of_full_model_on_meta():
    """1 + 389 + 114 + 46 + 13 = 563 tensors with the official prefixes and shapes."""
    with torch.device('meta'):
        model = build_hand_expert('hamer')
    official = official_hamer_checkpoint(model.state_dict(), seed=0)
    state = official['state_dict']
    assert len(state) == 563
    assert state['initialized'].dtype == torch.bool and state['initialized'].dim() == 0
    assert sum(k.startswith('backbone.') for k in state) == 389
    assert sum(k.startswith('mano_head.') for k in state) == 114
    disc = {
        k[len('discriminator.') :]: tuple(v.shape)
        for k, v in state.items()
        if k.startswith('discriminator.')
    }
    assert disc == DISCRIMINATOR_SHAPES
    assert sum(torch.Size(s).numel() for s in disc.values()) == 1_545_211
    mano = {k[len('mano.') :]: tuple(v.shape) for k, v in state.items() if k.startswith('mano.')}
    assert mano == MANO_BUFFER_SHAPES
    assert state['mano.faces_tensor'].dtype == torch.long
    assert int(state['mano.faces_tensor'].max()) < 778
    assert state['mano.joint_map'].tolist() == [
        0,
        13,
        14,
        15,
        16,
        1,
        2,
        3,
        17,
        4,
        5,
        6,
        18,
        10,
        11,
        12,
        19,
        7,
        8,
        9,
        20,
    ]
    assert state['mano.extra_joints_idxs'].tolist() == [744, 320, 443, 554, 671]
    ours = hamer_state_dict_from_official(official)
    assert len(ours) == 503


def test_filler_is_reproducible_by_seed():
    state = tiny_model(0).state_dict()
    a = official_hamer_checkpoint(state, seed=3)['state_dict']
    b = official_hamer_checkpoint(state, seed=3)['state_dict']
    c = official_hamer_checkpoint(state, seed=4)['state_dict']
    key = 'discriminator.D_alljoints_fc1.weight'
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_missing_key_is_reported_by_name():
    official = official_hamer_checkpoint(tiny_model(0).state_dict(), seed=0)
    del official['state_dict']['mano_head.deccam.weight']
    ours = hamer_state_dict_from_official(official)
    with pytest.raises(CheckpointMismatchError, match='mano_head.deccam.weight') as info:
        load_state_dict_strict(tiny_model(1), ours)
    assert info.value.missing == ['mano_head.deccam.weight']


def test_shape_mismatch_is_reported():
    """Full-size head weights do not fit the tiny variant."""
    official = official_hamer_checkpoint(tiny_model(0).state_dict(), seed=0)
    official['state_dict']['mano_head.decshape.weight'] = torch.zeros(10, 1024)
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(tiny_model(1), hamer_state_dict_from_official(official))
    assert info.value.mismatched == [('mano_head.decshape.weight', (10, 32), (10, 1024))]


def test_unknown_part_and_missing_container_raise():
    official = official_hamer_checkpoint(tiny_model(0).state_dict(), seed=0)
    official['state_dict']['renderer.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match='renderer.weight'):
        hamer_state_dict_from_official(official)
    with pytest.raises(CheckpointMismatchError, match="'state_dict'"):
        hamer_state_dict_from_official({'network': {}})
    only_backbone = {'state_dict': {'backbone.pos_embed': torch.zeros(1)}}
    with pytest.raises(CheckpointMismatchError, match=r'mano_head\.\*'):
        hamer_state_dict_from_official(only_backbone)
    with pytest.raises(CheckpointMismatchError, match='discriminator.x'):
        official_hamer_checkpoint({'discriminator.x': torch.zeros(1)}, seed=0)
