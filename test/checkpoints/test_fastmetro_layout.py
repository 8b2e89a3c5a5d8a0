"""FastMETRO's released state dicts: detection, strict checking, conversion (fastmetro_layout)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from hmr_ros.checkpoints.fastmetro_layout import (
    FASTMETRO_SIZES,
    detect_fastmetro_variant,
    fastmetro_state_dict_from_official,
    is_official_fastmetro_checkpoint,
    official_fastmetro_checkpoint,
)
from hmr_ros.checkpoints.project_format import load_model_file
from hmr_ros.checkpoints.safe_load import CheckpointMismatchError
from hmr_ros.cli.checkpoints import convert_checkpoint
from hmr_ros.cli.main import main
from hmr_ros.models.alternatives.fastmetro import FASTMETRO_VARIANTS, build_fastmetro
from hmr_ros.models.registry import detect_model


def _meta_state(variant: str) -> dict[str, torch.Tensor]:
    with torch.device('meta'):
        return build_fastmetro(variant).state_dict()


def test_size_table_agrees_with_the_registered_variants() -> None:
    assert set(FASTMETRO_SIZES.values()) == set(FASTMETRO_VARIANTS)
    for (_, width, layers), name in FASTMETRO_SIZES.items():
        state = _meta_state(name)
        assert state['cam_token_embed.weight'].shape[-1] == width
        assert f'transformer_1.encoder.layers.{layers - 1}.norm1.weight' in state
        assert detect_fastmetro_variant(state) == name


def test_released_layout_is_recognised_only_as_fastmetro() -> None:
    state = _meta_state('fastmetro_s_r50')
    assert is_official_fastmetro_checkpoint(state)
    entry = detect_model(state)
    assert entry is not None and entry.name == 'fastmetro'
    assert not is_official_fastmetro_checkpoint({'state_dict': state})
    assert not is_official_fastmetro_checkpoint(None)


def test_ddp_prefix_is_removed() -> None:
    state = {f'module.{k}': v for k, v in _meta_state('fastmetro_tiny').items()}
    assert is_official_fastmetro_checkpoint(state)
    assert set(fastmetro_state_dict_from_official(state)) == set(_meta_state('fastmetro_tiny'))


def test_hand_and_hrnet_files_are_refused_with_the_reason() -> None:
    hand = dict(_meta_state('fastmetro_tiny'))
    hand['joint_token_embed.weight'] = torch.empty(21, 32, device='meta')
    hand['vertex_token_embed.weight'] = torch.empty(195, 32, device='meta')
    with pytest.raises(CheckpointMismatchError, match='hand'):
        fastmetro_state_dict_from_official(hand)
    # HRNet-W64 files: backbone.conv1/stage*/... and the unused ImageNet classifier.
    hrnet = {
        k: v for k, v in _meta_state('fastmetro_tiny').items() if not k.startswith('backbone')
    }
    hrnet['backbone.stage2.0.branches.0.0.conv1.weight'] = torch.empty(64, 64, 3, 3)
    hrnet['backbone.classifier.weight'] = torch.empty(1000, 2048)
    with pytest.raises(CheckpointMismatchError, match='HRNet-W64'):
        fastmetro_state_dict_from_official(hrnet)


def test_parametric_regressor_without_a_released_file_is_refused() -> None:
    state = dict(_meta_state('fastmetro_tiny'))
    state['smpl_parameter_regressor.regressor.3.weight'] = torch.empty(226, 1024)
    with pytest.raises(ValueError, match='SMPL parameter regressor'):
        detect_fastmetro_variant(state)


def _write_released(path: Path, variant: str = 'fastmetro_tiny', seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_fastmetro(variant)
    torch.save(official_fastmetro_checkpoint(model.state_dict()), path)
    return path


def test_convert_checkpoint_accepts_the_released_layout(tmp_path: Path) -> None:
    src = _write_released(tmp_path / 'FastMETRO-tiny_state_dict.bin')
    result = convert_checkpoint(src, tmp_path / 'fastmetro_tiny.safetensors')
    assert (result.card.model, result.card.variant) == ('fastmetro', 'fastmetro_tiny')
    state, _ = load_model_file(result.destination)
    original = torch.load(src, weights_only=True)
    assert set(state) == set(original)
    assert all(torch.equal(state[k], original[k]) for k in original)


@pytest.mark.parametrize(
    ('mutation', 'named'),
    [
        ('drop', 'transformer_2.decoder.norm.weight'),
        ('extra', 'transformer_1.encoder.layers.0.extra_scale'),
        ('reshape', 'vertex_token_embed.weight'),
    ],
)
def test_a_mutated_file_is_refused_naming_the_key(
    tmp_path: Path, mutation: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    state = OrderedDict(build_fastmetro('fastmetro_tiny').state_dict())
    if mutation == 'drop':
        del state[named]
    elif mutation == 'extra':
        state[named] = torch.ones(1)
    else:
        state[named] = torch.zeros(430, 32)  # one vertex token short of the 431-vertex mesh
    src = tmp_path / 'FastMETRO-tiny_state_dict.bin'
    torch.save(state, src)
    dst = tmp_path / 'out.safetensors'
    assert main(['convert-checkpoint', str(src), str(dst), '--variant', 'fastmetro_tiny']) == 1
    assert named in capsys.readouterr().err
    assert not dst.exists()
