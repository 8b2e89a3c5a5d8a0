"""Tests for hmr_ros.checkpoints.project_format: safetensors model files with a model card."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import hmr_ros
from hmr_ros.checkpoints.project_format import (
    FORMAT_VERSION,
    ModelCard,
    load_model_file,
    save_model_file,
    sha256_file,
)
from hmr_ros.checkpoints.safe_load import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
)

SHA = 'ab' * 32


def _card(**overrides: object) -> ModelCard:
    values: dict[str, object] = dict(
        model='hamer', variant='hamer_tiny', source_file='hamer.ckpt', source_sha256=SHA
    )
    values.update(overrides)
    return ModelCard(**values)  # type: ignore[arg-type]


def _state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        'backbone.pos_embed': torch.randn(1, 4, 8, generator=generator),
        'mano_head.init_betas': torch.randn(1, 10, generator=generator),
        'box_net.deconv.1.num_batches_tracked': torch.tensor(12, dtype=torch.int64),
        'half': torch.randn(3, generator=generator).half(),
    }


def test_round_trip_keeps_tensors_dtypes_and_card(tmp_path: Path) -> None:
    state, card = _state(), _card()
    path = save_model_file(tmp_path / 'sub' / 'hamer_tiny.safetensors', state, card)
    assert path.is_file()
    loaded, loaded_card = load_model_file(path)
    assert loaded_card == card
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype
        assert torch.equal(loaded[key], value)
    assert not list(path.parent.glob('*.tmp'))  # the temporary file was renamed away


def test_views_and_non_contiguous_tensors_are_stored_as_their_values(tmp_path: Path) -> None:
    """qkv-style views of one storage and a transposed tensor are saved as separate copies."""
    base = torch.arange(12.0).reshape(3, 4)
    state = {'q': base[0], 'k': base[1], 'transposed': base.t()}
    loaded, _ = load_model_file(save_model_file(tmp_path / 'v.safetensors', state, _card()))
    assert torch.equal(loaded['q'], base[0]) and torch.equal(loaded['k'], base[1])
    assert torch.equal(loaded['transposed'], base.t())


def test_card_defaults_and_metadata_strings() -> None:
    card = ModelCard(model='smplerx', variant='smplerx_h32')
    assert card.format_version == FORMAT_VERSION
    assert card.hmr_ros_version == hmr_ros.__version__
    assert card.source_file == '' and card.source_sha256 == ''
    assert datetime.fromisoformat(card.created).tzinfo is not None
    metadata = card.to_metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    assert metadata['hmr_ros.model'] == 'smplerx'
    assert metadata['hmr_ros.format_version'] == str(FORMAT_VERSION)
    assert ModelCard.from_metadata(metadata) == card
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.model = 'hamer'  # type: ignore[misc]


@pytest.mark.parametrize(
    ('field', 'value', 'message'),
    [
        ('model', 'HaMeR!', 'lowercase identifier'),
        ('variant', '', 'variant'),
        ('source_file', 'dir/hamer.ckpt', 'without folders'),
        ('source_sha256', 'xyz', '64 lowercase'),
        ('format_version', FORMAT_VERSION + 1, 'update hmr_ros'),
        ('created', 'yesterday', 'ISO 8601'),
    ],
)
def test_card_rejects_invalid_fields(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _card(**{field: value})


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    """A 10,000-byte file hashed in 1,000-byte chunks gives hashlib's one-shot digest."""
    data = bytes(range(256)) * 39 + b'x' * 16
    path = tmp_path / 'blob'
    path.write_bytes(data)
    assert sha256_file(path, chunk_bytes=1000) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_missing_model_file_names_path_and_command(tmp_path: Path) -> None:
    path = tmp_path / 'absent.safetensors'
    with pytest.raises(CheckpointNotFoundError) as info:
        load_model_file(path)
    assert str(path) in str(info.value) and 'convert-checkpoint' in str(info.value)


@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_damaged_model_file_raises_corrupt_error(tmp_path: Path, damage: str) -> None:
    path = save_model_file(tmp_path / 'm.safetensors', _state(), _card())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7] if damage == 'truncated' else b'\x00garbage' * 9)
    with pytest.raises(CorruptCheckpointError) as info:
        load_model_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, CheckpointError)


def test_safetensors_without_card_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'foreign.safetensors'
    save_file({'w': torch.zeros(2)}, str(path), metadata={'format': 'pt'})
    with pytest.raises(CorruptCheckpointError, match='model card') as info:
        load_model_file(path)
    assert 'model, variant' in str(info.value)


def test_non_tensor_entry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'epoch'"):
        save_model_file(tmp_path / 'x.safetensors', {'epoch': 3}, _card())  # type: ignore[dict-item]
    assert not list(tmp_path.iterdir())


def test_extra_metadata_is_stored_but_may_not_overwrite_the_card(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = save_model_file(
        tmp_path / 'a.safetensors', _state(), _card(), extra_metadata={'hmr_ros.note': 'x'}
    )
    with safe_open(str(path), framework='pt') as reader:
        assert (reader.metadata() or {})['hmr_ros.note'] == 'x'
    assert load_model_file(path)[1] == _card()
    with pytest.raises(ValueError, match='hmr_ros.variant'):
        save_model_file(
            tmp_path / 'b.safetensors', _state(), _card(), {'hmr_ros.variant': 'forged'}
        )
    assert not (tmp_path / 'b.safetensors').exists()
