"""Tests for ``hmr-ros make-test-assets`` (hmr_ros.cli.assets), run in-process."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.body_models.model_files import read_body_model_file
from hmr_ros.checkpoints.project_format import load_model_file
from hmr_ros.checkpoints.safe_load import load_torch_file
from hmr_ros.checkpoints.smplerx_layout import smplerx_state_dict_from_official
from hmr_ros.cli.main import main

BODY_MODEL_FILES = ('SMPLX_NEUTRAL.npz', 'MANO_RIGHT.pkl', 'MANO_LEFT.pkl', 'mano_mean_params.npz')


def test_smplerx_assets_are_written_converted_and_described(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / 'assets'
    assert (
        main(['make-test-assets', str(folder), '--seed', '1', '--variants', 'smplerx_tiny']) == 0
    )
    names = [*BODY_MODEL_FILES, 'smpler_x_tiny.pth.tar', 'smplerx_tiny.safetensors', 'README.txt']
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)

    out = capsys.readouterr().out
    assert 'not real models' in out
    assert all(name in out for name in names)
    readme = (folder / 'README.txt').read_text()
    assert readme.startswith('RANDOM STAND-INS, NOT REAL MODELS')
    assert '--seed 1 --variants smplerx_tiny' in readme
    assert all(f'  {name}\n' in readme for name in names)

    official = load_torch_file(folder / 'smpler_x_tiny.pth.tar')
    assert all(key.startswith('module.') for key in official['network'])
    state, card = load_model_file(folder / 'smplerx_tiny.safetensors')
    assert (card.model, card.variant, card.source_file) == (
        'smplerx',
        'smplerx_tiny',
        'smpler_x_tiny.pth.tar',
    )
    converted = smplerx_state_dict_from_official(official)
    assert set(state) == set(converted)
    assert all(torch.equal(state[k], v) for k, v in converted.items())

    with np.load(folder / 'SMPLX_NEUTRAL.npz') as smplx_file:
        assert smplx_file['v_template'].shape == (10475, 3)
    # Official format (chumpy shapedirs, scipy J_regressor): read as users' files are read.
    assert read_body_model_file(folder / 'MANO_RIGHT.pkl')['v_template'].shape == (778, 3)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    for name, seed in (('a', '0'), ('b', '0'), ('c', '5')):
        args = ['make-test-assets', str(tmp_path / name), '--seed', seed]
        assert main([*args, '--variants', 'smplerx_tiny']) == 0
    a, b, c = (load_model_file(tmp_path / name / 'smplerx_tiny.safetensors')[0] for name in 'abc')
    key = 'encoder.blocks.0.attn.qkv.weight'
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a[key], c[key])


def test_body_models_only_and_unknown_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / 'bodies'
    assert main(['make-test-assets', str(folder), '--variants']) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BODY_MODEL_FILES, 'README.txt'])

    bad = tmp_path / 'bad'
    assert main(['make-test-assets', str(bad), '--variants', 'smplerx_xxl']) == 1
    err = capsys.readouterr().err
    assert "Unknown variant 'smplerx_xxl'" in err and 'smplerx_tiny' in err
    assert not bad.exists()  # validated before anything is written


def test_default_assets_include_hamer_lightning_checkpoint(tmp_path: Path) -> None:
    """The HaMeR stand-in pickles its config as yacs.config.CfgNode, as HaMeR's file does.

    So weights_only refuses it, and load_torch_file's restricted path must return the config as a
    plain dict, without yacs being importable afterwards.
    """
    pytest.importorskip('hmr_ros.models.hand_expert')
    pytest.importorskip('hmr_ros.checkpoints.hamer_layout')
    yacs_before = sys.modules.get('yacs.config')
    assert main(['make-test-assets', str(tmp_path)]) == 0
    assert sys.modules.get('yacs.config') is yacs_before
    for name in ('hamer_tiny.ckpt', 'hamer_tiny.safetensors', 'smplerx_tiny.safetensors'):
        assert (tmp_path / name).is_file()

    ckpt_path = tmp_path / 'hamer_tiny.ckpt'
    if yacs_before is None:
        with pytest.raises(pickle.UnpicklingError, match='yacs.config.CfgNode'):
            torch.load(ckpt_path, weights_only=True)
    official = load_torch_file(ckpt_path)
    config = official['hyper_parameters']['cfg']
    assert type(config) is dict and type(config['MODEL']) is dict
    assert config['MODEL']['IMAGE_SIZE'] == 256
    assert any(key.startswith('discriminator.') for key in official['state_dict'])
    state, card = load_model_file(tmp_path / 'hamer_tiny.safetensors')
    assert (card.model, card.variant) == ('hamer', 'hamer_tiny')
    assert not any(key.startswith(('discriminator.', 'mano.')) for key in state)


def test_convert_body_model_writes_plain_arrays(body_model_dir, tmp_path, capsys):
    """The official-format MANO stand-in (chumpy shapedirs, scipy J_regressor) becomes an .npz
    that numpy reads without pickle, with the reader's arrays."""
    destination = tmp_path / 'out' / 'MANO_RIGHT.npz'
    assert (
        main(['convert-body-model', str(body_model_dir / 'MANO_RIGHT.pkl'), str(destination)]) == 0
    )
    assert 'J_regressor: (16, 778)' in capsys.readouterr().out
    expected = read_body_model_file(body_model_dir / 'MANO_RIGHT.pkl')
    with np.load(destination, allow_pickle=False) as converted:
        assert 'bs_style' not in converted.files  # strings are not arrays
        for key in ('shapedirs', 'J_regressor', 'v_template', 'hands_mean'):
            np.testing.assert_array_equal(converted[key], expected[key])


def test_convert_body_model_refuses_a_malicious_pickle(tmp_path, capsys):
    marker = tmp_path / 'marker'
    source = tmp_path / 'MANO_RIGHT.pkl'
    command = f'touch {marker}'.encode()
    source.write_bytes(b'\x80\x02cposix\nsystem\n(U' + bytes((len(command),)) + command + b'tR.')
    assert main(['convert-body-model', str(source), str(tmp_path / 'x.npz')]) == 1
    message = capsys.readouterr().err
    assert 'MANO_RIGHT.pkl' in message and 'posix.system' in message
    assert not marker.exists() and not (tmp_path / 'x.npz').exists()
