"""Tests for ``hmr-ros convert-checkpoint`` (hmr_ros.cli.checkpoints), run in-process."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
import torch

from hmr_ros.checkpoints.project_format import load_model_file
from hmr_ros.checkpoints.safe_load import load_state_dict_strict, load_torch_file
from hmr_ros.checkpoints.smplerx_layout import official_smplerx_checkpoint
from hmr_ros.cli.checkpoints import FAMILIES, detect_variant
from hmr_ros.cli.main import main
from hmr_ros.models.whole_body import build_whole_body


@pytest.fixture
def smplerx_tiny() -> torch.nn.Module:
    return build_whole_body('smplerx_tiny').eval()


def _save_official_smplerx(
    model: torch.nn.Module, path: Path, *, legacy_names: bool = False
) -> Path:
    torch.save(official_smplerx_checkpoint(model.state_dict(), legacy_names=legacy_names), path)
    return path


@pytest.mark.parametrize('legacy_names', [False, True], ids=['current', 'legacy-names'])
def test_convert_smplerx_tiny_writes_model_file_with_card(
    tmp_path: Path,
    smplerx_tiny: torch.nn.Module,
    capsys: pytest.CaptureFixture[str],
    legacy_names: bool,
) -> None:
    src = _save_official_smplerx(
        smplerx_tiny, tmp_path / 'smpler_x_tiny.pth.tar', legacy_names=legacy_names
    )
    dst = tmp_path / 'out' / 'smplerx_tiny.safetensors'
    assert main(['convert-checkpoint', str(src), str(dst)]) == 0

    state, card = load_model_file(dst)
    expected = smplerx_tiny.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    source_sha256 = hashlib.sha256(src.read_bytes()).hexdigest()
    assert (card.model, card.variant) == ('smplerx', 'smplerx_tiny')
    assert (card.source_file, card.source_sha256) == (src.name, source_sha256)

    fresh = build_whole_body('smplerx_tiny')
    load_state_dict_strict(fresh, state)

    out = capsys.readouterr().out
    num_parameters = sum(p.numel() for p in smplerx_tiny.parameters())
    assert f'{num_parameters:,} parameters' in out
    assert f'{len(expected)} tensors' in out
    assert source_sha256 in out and 'smplerx_tiny' in out


def test_renamed_key_exits_nonzero_and_names_it(
    tmp_path: Path, smplerx_tiny: torch.nn.Module, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = official_smplerx_checkpoint(smplerx_tiny.state_dict())
    network = checkpoint['network']
    network['module.face_regressor.expr_out.0.weight_renamed'] = network.pop(
        'module.face_regressor.expr_out.0.weight'
    )
    src, dst = tmp_path / 'bad.pth.tar', tmp_path / 'bad.safetensors'
    torch.save(checkpoint, src)
    assert main(['convert-checkpoint', str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert 'missing (1):\n    face_regressor.expr_out.0.weight\n' in err
    assert 'unexpected (1):\n    face_regressor.expr_out.0.weight_renamed\n' in err
    assert 'Nothing was written' in err
    assert not dst.exists()


def test_wrong_shape_and_wrong_variant_are_listed(
    tmp_path: Path, smplerx_tiny: torch.nn.Module, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = official_smplerx_checkpoint(smplerx_tiny.state_dict())
    key = 'module.body_regressor.shape_out.0.bias'
    checkpoint['network'][key] = torch.zeros(11)  # official shape is (10,)
    src = tmp_path / 'shape.pth.tar'
    torch.save(checkpoint, src)
    assert main(['convert-checkpoint', str(src), str(tmp_path / 'a.safetensors')]) == 1
    assert 'body_regressor.shape_out.0.bias: [10] -> [11]' in capsys.readouterr().err

    good = _save_official_smplerx(smplerx_tiny, tmp_path / 'good.pth.tar')
    args = [str(good), str(tmp_path / 'b.safetensors'), '--variant', 'smplerx_s32']
    assert main(['convert-checkpoint', *args]) == 1
    err = capsys.readouterr().err
    assert "does not match SMPLer-X variant 'smplerx_s32'" in err
    # Spec B.7: body_position_net.conv.0.weight is (400, C, 1, 1), C = 384 for S32, 32 for tiny.
    assert 'body_position_net.conv.0.weight: [400, 384, 1, 1] -> [400, 32, 1, 1]' in err
    assert '... and ' in err  # more than MAX_LISTED_KEYS keys differ: the list is cut


def test_meta_matching_finds_exact_and_closest_variant(smplerx_tiny: torch.nn.Module) -> None:
    """Without a family detector, every variant is built on 'meta' and compared."""
    family = dataclasses.replace(FAMILIES['smplerx'], variant_detector=None)
    state = dict(smplerx_tiny.state_dict())
    assert detect_variant(family, state) == 'smplerx_tiny'
    state['extra.weight'] = torch.zeros(1)
    del state['box_net.deconv.1.running_mean']
    assert detect_variant(family, state) == 'smplerx_tiny'


def test_unknown_layout_asks_for_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / 'other.pt'
    torch.save({'weights': {'fc.weight': torch.zeros(2, 2)}}, src)
    assert main(['convert-checkpoint', str(src), str(tmp_path / 'o.safetensors')]) == 1
    err = capsys.readouterr().err
    assert "top-level keys 'weights'" in err and '--model' in err


def test_destination_rules(
    tmp_path: Path, smplerx_tiny: torch.nn.Module, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _save_official_smplerx(smplerx_tiny, tmp_path / 's.pth.tar')
    assert main(['convert-checkpoint', str(src), str(tmp_path / 'x.pth')]) == 1
    assert 'must end in .safetensors' in capsys.readouterr().err

    dst = tmp_path / 'x.safetensors'
    dst.write_bytes(b'keep me')
    broken = tmp_path / 'broken.pth.tar'
    broken.write_bytes(src.read_bytes()[:100])
    assert main(['convert-checkpoint', str(broken), str(dst)]) == 1
    assert 'download it again' in capsys.readouterr().err
    assert dst.read_bytes() == b'keep me'  # a failed conversion leaves DST alone
    assert main(['convert-checkpoint', str(src), str(dst)]) == 0
    assert load_model_file(dst)[1].variant == 'smplerx_tiny'

    same = tmp_path / 'same.safetensors'
    same.write_bytes(b'')
    assert main(['convert-checkpoint', str(same), str(same)]) == 1
    assert 'same file' in capsys.readouterr().err


def test_missing_and_malicious_sources_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / 'missing.pth.tar'
    assert main(['convert-checkpoint', str(missing), str(tmp_path / 'm.safetensors')]) == 1
    assert f'not found: {missing}' in capsys.readouterr().err

    marker = tmp_path / 'marker'

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f'touch {marker}',))

    evil = tmp_path / 'evil.pth.tar'
    torch.save({'network': {'module.encoder.pos_embed': torch.zeros(1)}, 'x': Payload()}, evil)
    assert main(['convert-checkpoint', str(evil), str(tmp_path / 'e.safetensors')]) == 1
    assert 'Refusing to load checkpoint' in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / 'e.safetensors').exists()


def test_forced_model_with_wrong_layout_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / 'lightning.ckpt'
    torch.save({'state_dict': {'mano_head.x': torch.zeros(1)}}, src)
    args = [str(src), str(tmp_path / 'l.safetensors'), '--model', 'smplerx']
    assert main(['convert-checkpoint', *args]) == 1
    assert "'network'" in capsys.readouterr().err


def test_convert_hamer_tiny_lightning_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hand_expert = pytest.importorskip('hmr_ros.models.hand_expert')
    pytest.importorskip('hmr_ros.checkpoints.hamer_layout')
    from hmr_ros.cli.assets import write_official_checkpoint

    src, model = write_official_checkpoint(tmp_path, 'hamer_tiny', seed=0)
    dst = tmp_path / 'hamer_tiny.safetensors'
    assert main(['convert-checkpoint', str(src), str(dst)]) == 0
    state, card = load_model_file(dst)
    assert (card.model, card.variant, card.source_file) == ('hamer', 'hamer_tiny', src.name)
    expected = model.state_dict()
    assert set(state) == set(expected)
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    assert not any(k.startswith(('discriminator.', 'mano.')) for k in state)
    load_state_dict_strict(hand_expert.build_hand_expert('hamer_tiny'), state)
    assert "variant 'hamer_tiny'" in capsys.readouterr().out


def test_hamer_renamed_key_is_named_against_the_closest_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """HaMeR has no variant detector: the closest variant built on 'meta' is checked strictly."""
    from hmr_ros.cli.assets import write_official_checkpoint

    src, _ = write_official_checkpoint(tmp_path, 'hamer_tiny', seed=0)
    checkpoint = load_torch_file(src)
    state = checkpoint['state_dict']
    state['mano_head.decpose.weight_old'] = state.pop('mano_head.decpose.weight')
    torch.save(checkpoint, src)
    dst = tmp_path / 'hamer_tiny.safetensors'
    assert main(['convert-checkpoint', str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert "does not match HaMeR variant 'hamer_tiny'" in err
    assert 'missing (1):\n    mano_head.decpose.weight\n' in err
    assert 'unexpected (1):\n    mano_head.decpose.weight_old\n' in err
    assert not dst.exists()
