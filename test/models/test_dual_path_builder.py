"""Tests for hmr_ros.models.dual_path_builder (the dual-path system from files)."""

from __future__ import annotations

import pytest
import torch

from hmr_ros.checkpoints.adapter_files import AdapterFileMismatchError, save_adapter_file
from hmr_ros.checkpoints.hamer_layout import official_hamer_checkpoint
from hmr_ros.checkpoints.project_format import ModelCard, save_model_file
from hmr_ros.checkpoints.safe_load import CheckpointError
from hmr_ros.checkpoints.smplerx_layout import official_smplerx_checkpoint
from hmr_ros.models.adapters.body_adapter import BodyAdapter, body_adapter_tiny
from hmr_ros.models.adapters.hand_adapter import HandAdapter
from hmr_ros.models.dual_path import DualPathConfig
from hmr_ros.models.dual_path_builder import build_dual_path
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.models.whole_body import build_whole_body


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Tiny base models and adapters (random, adapters with non-zero outputs) in every format."""
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(21)
    whole_body, hand_expert = build_whole_body('smplerx_tiny'), build_hand_expert('hamer_tiny')
    hand_adapter = HandAdapter(hand_expert.mano_head)
    body_adapter = BodyAdapter(body_adapter_tiny())
    with torch.no_grad():
        for branch in hand_adapter.branches:
            branch.output_projection.weight.normal_(std=0.1)
        body_adapter.output_layer.weight.normal_(std=0.1)
    paths = {
        'whole_body': save_model_file(
            folder / 'smplerx_tiny.safetensors',
            whole_body.state_dict(),
            ModelCard(model='smplerx', variant='smplerx_tiny'),
        ),
        'hand': save_model_file(
            folder / 'hamer_tiny.safetensors',
            hand_expert.state_dict(),
            ModelCard(model='hamer', variant='hamer_tiny'),
        ),
        'whole_body_official': folder / 'smpler_x_tiny.pth.tar',
        'hand_official': folder / 'hamer_tiny.ckpt',
        'hand_adapter': save_adapter_file(
            folder / 'hand_adapter.safetensors', hand_adapter, 'hamer_tiny'
        ),
        'body_adapter': save_adapter_file(
            folder / 'body_adapter.safetensors', body_adapter, 'smplerx_tiny'
        ),
        'hand_adapter_full_size_base': save_adapter_file(
            folder / 'hand_adapter_hamer.safetensors', hand_adapter, 'hamer'
        ),
    }
    torch.save(official_smplerx_checkpoint(whole_body.state_dict()), paths['whole_body_official'])
    torch.save(official_hamer_checkpoint(hand_expert.state_dict(), seed=0), paths['hand_official'])
    modules = {
        'whole_body': whole_body,
        'hand': hand_expert,
        'hand_adapter': hand_adapter,
        'body_adapter': body_adapter,
    }
    return paths, modules


def _assert_same_weights(module, reference):
    loaded, expected = module.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize('suffix', ['', '_official'])
def test_builds_the_baseline_from_model_files_or_official_checkpoints(
    files, body_model_dir, suffix
):
    paths, modules = files
    build = build_dual_path(paths['whole_body' + suffix], paths['hand' + suffix], body_model_dir)
    model = build.model
    _assert_same_weights(model.whole_body, modules['whole_body'])
    _assert_same_weights(model.hand_path.hand_expert, modules['hand'])
    assert build.model_version == 'smplerx_tiny+hamer_tiny'
    assert [info.converted for info in build.weights] == [bool(suffix)] * 2
    assert model.adapters == 'none'
    assert 'baseline' in model.mode_description
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_adapter_files_are_loaded_and_switched_on(files, body_model_dir):
    paths, modules = files
    build = build_dual_path(
        paths['whole_body'],
        paths['hand'],
        body_model_dir,
        hand_adapter_file=paths['hand_adapter'],
        body_adapter_file=paths['body_adapter'],
    )
    assert build.model.adapters == 'both'
    assert [info.model for info in build.weights] == [
        'smplerx',
        'hamer',
        'hand_adapter',
        'body_adapter',
    ]
    assert build.model.hand_path.hand_adapter is not None
    assert build.model.body_adapter is not None
    _assert_same_weights(build.model.hand_path.hand_adapter, modules['hand_adapter'])
    _assert_same_weights(build.model.body_adapter, modules['body_adapter'])
    image = torch.rand(1, 3, 120, 160)
    intrinsics = torch.tensor([[[150.0, 0.0, 79.5], [0.0, 150.0, 59.5], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        out = build.model(
            image,
            torch.tensor([[10.0, 5.0, 150.0, 115.0]]),
            torch.zeros(1, dtype=torch.long),
            intrinsics,
        )
    assert out.body_pose_offset_6d.abs().max() > 0


def test_adapter_trained_for_another_base_variant_is_refused(files, body_model_dir):
    paths, _ = files
    with pytest.raises(AdapterFileMismatchError, match='base_variant'):
        build_dual_path(
            paths['whole_body'],
            paths['hand'],
            body_model_dir,
            hand_adapter_file=paths['hand_adapter_full_size_base'],
        )


def test_swapped_files_are_refused_with_the_fix(files, body_model_dir):
    paths, _ = files
    with pytest.raises(CheckpointError, match='which file goes to which option'):
        build_dual_path(paths['hand'], paths['whole_body'], body_model_dir)


def test_requested_adapter_without_its_file_is_refused(files, body_model_dir):
    paths, _ = files
    with pytest.raises(ValueError, match='needs the body adapter'):
        build_dual_path(
            paths['whole_body'],
            paths['hand'],
            body_model_dir,
            hand_adapter_file=paths['hand_adapter'],
            config=DualPathConfig(adapters='both'),
        )
