"""Tests for hmr_ros.checkpoints.smplerx_layout (official SMPLer-X dicts <-> our state dicts)."""

import pytest
import torch

from hmr_ros.checkpoints.safe_load import (
    CheckpointMismatchError,
    CorruptCheckpointError,
    load_state_dict_strict,
    load_torch_file,
)
from hmr_ros.checkpoints.smplerx_layout import (
    SMPLERX_ENCODER_SIZES,
    SMPLERX_MODULE_NAMES,
    detect_smplerx_variant,
    official_smplerx_checkpoint,
    smplerx_state_dict_from_official,
)
from hmr_ros.models.whole_body import WHOLE_BODY_VARIANTS, build_whole_body


@pytest.fixture(scope='module')
def source_model():
    torch.manual_seed(11)
    model = build_whole_body('smplerx_tiny').eval()
    with torch.no_grad():  # non-default BatchNorm buffers, so forgetting them would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(1234)
    return model


def _outputs_equal(a, b, crops):
    with torch.no_grad():
        out_a, out_b = a(crops), b(crops)
    for name in out_a._fields:
        torch.testing.assert_close(getattr(out_a, name), getattr(out_b, name), rtol=0, atol=0)


@pytest.mark.parametrize('legacy_names', [False, True])
def test_round_trip_through_an_official_file(tmp_path, source_model, legacy_names):
    """tiny model -> official dict ('module.' keys, optionally legacy names) -> torch.save ->
    safe load -> our layout -> strict load into a fresh model -> identical outputs."""
    official = official_smplerx_checkpoint(
        source_model.state_dict(), epoch=7, legacy_names=legacy_names
    )
    assert official['epoch'] == 7
    keys = list(official['network'])
    assert all(key.startswith('module.') for key in keys)
    if legacy_names:
        assert any(key.startswith('module.backbone.blocks.') for key in keys)
        assert any(key.startswith('module.body_rotation_net.') for key in keys)
        assert any(key.startswith('module.hand_rotation_net.') for key in keys)
        assert not any(key.startswith('module.encoder.') for key in keys)
    path = tmp_path / 'smpler_x_tiny.pth.tar'
    torch.save(official, path)

    state = smplerx_state_dict_from_official(load_torch_file(path))
    assert list(state) == list(source_model.state_dict())
    target = build_whole_body(detect_smplerx_variant(state)).eval()
    load_state_dict_strict(target, state)
    assert int(target.hand_regressor.hand_conv[1].num_batches_tracked) == 1234
    _outputs_equal(source_model, target, torch.rand(1, 3, 512, 384))


def test_accepts_keys_without_module_prefix_and_drops_smplx_layer(source_model):
    """Non-DDP saves have no 'module.'; unfiltered saves still carry smplx_layer.* buffers."""
    network = dict(source_model.state_dict())
    network['smplx_layer.shapedirs'] = torch.zeros(10475, 3, 10)
    network['module.smplx_layer.expr_dirs'] = torch.zeros(10475, 3, 10)
    state = smplerx_state_dict_from_official(
        {'network': network, 'epoch': 1, 'optimizer': {'state': {}}}
    )
    assert list(state) == list(source_model.state_dict())


def test_top_level_modules_in_checkpoint_order(source_model):
    state = smplerx_state_dict_from_official(
        official_smplerx_checkpoint(source_model.state_dict())
    )
    assert list(dict.fromkeys(key.split('.')[0] for key in state)) == list(SMPLERX_MODULE_NAMES)


def test_misshaped_key_is_reported_by_name(source_model):
    official = official_smplerx_checkpoint(source_model.state_dict())
    key = 'module.body_regressor.cam_out.0.weight'
    official['network'][key] = torch.zeros(4, 32)
    state = smplerx_state_dict_from_official(official)
    target = build_whole_body('smplerx_tiny')
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(target, state)
    assert info.value.mismatched == [('body_regressor.cam_out.0.weight', (3, 32), (4, 32))]
    assert 'body_regressor.cam_out.0.weight' in str(info.value)


def test_missing_batchnorm_buffer_is_reported(source_model):
    official = official_smplerx_checkpoint(source_model.state_dict())
    del official['network']['module.box_net.deconv.1.running_var']
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(
            build_whole_body('smplerx_tiny'), smplerx_state_dict_from_official(official)
        )
    assert info.value.missing == ['box_net.deconv.1.running_var']


def test_legacy_and_current_names_together_are_rejected(source_model):
    official = official_smplerx_checkpoint(source_model.state_dict())
    official['network']['module.backbone.last_norm.weight'] = torch.ones(32)
    with pytest.raises(CheckpointMismatchError, match='legacy and current names') as info:
        smplerx_state_dict_from_official(official)
    assert 'module.backbone.last_norm.weight' in info.value.unexpected


@pytest.mark.parametrize(
    'ckpt', [{'state_dict': {}}, {'network': [1, 2]}, {'network': {'module.x': 'text'}}]
)
def test_non_smplerx_containers_are_rejected(ckpt):
    with pytest.raises(CorruptCheckpointError, match='network'):
        smplerx_state_dict_from_official(ckpt)


@pytest.mark.parametrize('name', sorted(WHOLE_BODY_VARIANTS))
def test_detect_variant_for_every_registered_variant(name):
    """The (width, depth) table agrees with the registered configs (built on 'meta')."""
    with torch.device('meta'):
        state = build_whole_body(name).state_dict()
    assert detect_smplerx_variant(state) == name
    config = WHOLE_BODY_VARIANTS[name]().encoder
    assert SMPLERX_ENCODER_SIZES[(config.embed_dim, config.depth)] == name


def test_detect_variant_errors():
    with pytest.raises(ValueError, match='smplerx_state_dict_from_official'):
        detect_smplerx_variant({'module.encoder.pos_embed': torch.zeros(1, 193, 384)})
    with pytest.raises(ValueError, match='width 100, depth 3'):
        detect_smplerx_variant(
            {
                'encoder.pos_embed': torch.zeros(1, 193, 100),
                **{f'encoder.blocks.{i}.norm1.weight': torch.zeros(100) for i in range(3)},
            }
        )


def test_meta_built_model_is_materialised_by_strict_loading(source_model):
    """Build on 'meta' (no memory), then load: every tensor comes from the checkpoint."""
    state = smplerx_state_dict_from_official(
        official_smplerx_checkpoint(source_model.state_dict())
    )
    with torch.device('meta'):
        target = build_whole_body(detect_smplerx_variant(state))
    load_state_dict_strict(target, state)
    assert not any(t.is_meta for t in [*target.parameters(), *target.buffers()])
    _outputs_equal(source_model, target.eval(), torch.rand(1, 3, 512, 384))
