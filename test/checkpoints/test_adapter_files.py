"""Tests for hmr_ros.checkpoints.adapter_files (adapter weights apart from base checkpoints)."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hmr_ros.checkpoints.adapter_files import (
    ADAPTER_CONFIG_KEY,
    AdapterFileMismatchError,
    load_adapter_file,
    read_adapter_file,
    save_adapter_file,
)
from hmr_ros.checkpoints.project_format import ModelCard, load_model_file, save_model_file
from hmr_ros.checkpoints.safe_load import CheckpointMismatchError, CorruptCheckpointError
from hmr_ros.models.adapters.body_adapter import BodyAdapter, BodyAdapterConfig, body_adapter_tiny
from hmr_ros.models.adapters.hand_adapter import HandAdapter, HandAdapterConfig
from hmr_ros.models.hand_expert import build_hand_expert


@pytest.fixture(scope='module')
def head():
    torch.manual_seed(0)
    return build_hand_expert('hamer_tiny').eval().mano_head


def trained_hand_adapter(head, seed: int = 1) -> HandAdapter:
    """A hand adapter whose every tensor differs from a fresh one (as after training)."""
    adapter = HandAdapter(head)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in adapter.parameters():
            param.add_(torch.randn(param.shape, generator=g))
    return adapter


def body_adapter(seed: int = 0, **overrides) -> BodyAdapter:
    torch.manual_seed(seed)
    return BodyAdapter(BodyAdapterConfig(**{**body_adapter_tiny().__dict__, **overrides}))


def test_hand_adapter_round_trip_with_card_and_config(head, tmp_path):
    source = trained_hand_adapter(head)
    path = save_adapter_file(
        tmp_path / 'sub' / 'hand_adapter_hamer_tiny.safetensors', source, 'hamer_tiny'
    )
    target = HandAdapter(head)
    card = load_adapter_file(path, target, base_variant='hamer_tiny')
    assert card.model == 'hand_adapter'
    assert card.variant == 'hamer_tiny'
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    contents = read_adapter_file(path)
    assert contents.config == source.file_config()
    assert contents.card == card
    assert set(contents.state_dict) == set(source.state_dict())
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_file_holds_only_adapter_tensors_and_readable_metadata(head, tmp_path):
    """The base head's weights are not in the file; the card and config are plain metadata."""
    path = save_adapter_file(tmp_path / 'a.safetensors', HandAdapter(head), 'hamer_tiny')
    state_dict, card = load_model_file(path)
    assert not any(key.startswith(('transformer.', 'dec', 'init_')) for key in state_dict)
    assert card.model == 'hand_adapter'
    with safe_open(str(path), framework='pt') as reader:
        metadata = reader.metadata()
    config = json.loads(metadata[ADAPTER_CONFIG_KEY])
    assert config['depth'] == head.config.depth
    assert config['guidance_rot6d_layout'] == 'contiguous'


def test_body_adapter_round_trip_into_a_meta_module(tmp_path):
    source = body_adapter(seed=1)
    path = save_adapter_file(tmp_path / 'body.safetensors', source, 'smplerx_tiny')
    with torch.device('meta'):
        target = body_adapter()
    load_adapter_file(path, target, base_variant='smplerx_tiny')
    maps = torch.randn(2, 2, 32, 16, 16)
    points = 15 * torch.rand(2, 2, 4, 2)
    torch.testing.assert_close(target(maps, points), source(maps, points))
    assert all(p.device.type == 'cpu' for p in target.parameters())


def test_configuration_mismatch_is_reported_by_key(head, tmp_path):
    path = save_adapter_file(tmp_path / 'a.safetensors', HandAdapter(head), 'hamer_tiny')
    other = HandAdapter(head, HandAdapterConfig(joint_embedding=False))
    with pytest.raises(AdapterFileMismatchError, match='joint_embedding: file True') as error:
        load_adapter_file(path, other)
    assert error.value.differences == [('joint_embedding', 'True', 'False')]


def test_body_adapter_size_mismatch_lists_every_key(tmp_path):
    path = save_adapter_file(tmp_path / 'b.safetensors', body_adapter(), 'smplerx_tiny')
    with pytest.raises(AdapterFileMismatchError) as error:
        load_adapter_file(path, body_adapter(depth=3, feature_dim=8))
    assert [key for key, _, _ in error.value.differences] == ['depth', 'feature_dim']


def test_type_and_base_variant_mismatches(head, tmp_path):
    path = save_adapter_file(tmp_path / 'a.safetensors', HandAdapter(head), 'hamer_tiny')
    with pytest.raises(AdapterFileMismatchError, match='base_variant: file hamer_tiny') as error:
        load_adapter_file(path, HandAdapter(head), base_variant='hamer')
    assert error.value.differences == [('base_variant', 'hamer_tiny', 'hamer')]
    with pytest.raises(AdapterFileMismatchError, match='model: file hand_adapter'):
        load_adapter_file(path, body_adapter())
    load_adapter_file(path, HandAdapter(head))  # no base variant given: not checked


def test_tensor_mismatch_is_reported_by_key(head, tmp_path):
    """A file whose config matches but whose tensors do not (edited by hand) fails strictly."""
    path = save_adapter_file(tmp_path / 'a.safetensors', HandAdapter(head), 'hamer_tiny')
    with safe_open(str(path), framework='pt') as reader:
        metadata = reader.metadata()
        tensors = {key: reader.get_tensor(key) for key in reader.keys()}
    del tensors['blocks.1.cross_attention.fn.to_q.weight']
    tensors['extra'] = torch.zeros(1)
    save_file(tensors, str(path), metadata=metadata)
    target = HandAdapter(head)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as error:
        load_adapter_file(path, target)
    assert error.value.missing == ['blocks.1.cross_attention.fn.to_q.weight']
    assert error.value.unexpected == ['extra']
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key  # nothing copied


def test_base_model_files_and_foreign_files_are_refused(head, tmp_path):
    base_file = save_model_file(
        tmp_path / 'hamer.safetensors', head.state_dict(), ModelCard('hamer', 'hamer_tiny')
    )
    with pytest.raises(AdapterFileMismatchError, match='model: file hamer'):
        load_adapter_file(base_file, HandAdapter(head))
    no_config = save_model_file(
        tmp_path / 'x.safetensors',
        HandAdapter(head).state_dict(),
        ModelCard('hand_adapter', 'hamer'),
    )
    with pytest.raises(CorruptCheckpointError, match='adapter_config'):
        read_adapter_file(no_config)
    foreign = tmp_path / 'foreign.safetensors'
    save_file({'w': torch.zeros(2)}, str(foreign))
    with pytest.raises(CorruptCheckpointError, match='model card'):
        read_adapter_file(foreign)


def test_save_rejects_non_adapters_and_bad_variants(head, tmp_path):
    with pytest.raises(TypeError, match='not an adapter'):
        save_adapter_file(tmp_path / 'h.safetensors', head, 'hamer_tiny')
    with pytest.raises(ValueError, match='variant'):
        save_adapter_file(tmp_path / 'h.safetensors', HandAdapter(head), 'HaMeR tiny')
