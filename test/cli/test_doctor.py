"""``hmr-ros doctor`` (hmr_ros/cli/doctor.py) on generated stand-in files, run in-process."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import yaml

from hmr_ros.cli.doctor import (
    check_dds,
    check_receive_buffer,
    read_parameter_file,
    run_doctor,
)
from hmr_ros.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hmr_ros.cli.assets import make_test_assets

    folder = tmp_path_factory.mktemp('doctor_assets')
    make_test_assets(folder, variants=('smplerx_tiny', 'hamer_tiny'))
    return folder


def _params_file(tmp_path: Path, assets: Path, **changes: object) -> Path:
    parameters: dict = {
        'model': {
            'whole_body_variant': 'smplerx_tiny',
            'hand_variant': 'hamer_tiny',
            'whole_body_checkpoint': str(assets / 'smplerx_tiny.safetensors'),
            'hand_checkpoint': str(assets / 'hamer_tiny.safetensors'),
            'body_model_dir': str(assets),
            'device': 'cpu',
        }
    }
    for dotted, value in changes.items():
        group, name = dotted.split('__')
        parameters.setdefault(group, {})[name] = value
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({'hmr_node': {'ros__parameters': parameters}}))
    return path


def test_good_configuration_passes_and_prints_every_files_sha256(
    tmp_path: Path, assets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params_file(tmp_path, assets)
    status = main(['doctor', '--params', str(params)])
    out = capsys.readouterr().out
    assert status == 0, out
    expected = hashlib.sha256((assets / 'hamer_tiny.safetensors').read_bytes()).hexdigest()
    assert f'SHA-256 {expected}' in out
    assert 'hmr_ros model file, hamer hamer_tiny' in out
    assert 'SMPLX_NEUTRAL.npz loads' in out
    assert '0 error(s)' in out


def test_missing_file_fails_naming_the_parameter(
    tmp_path: Path, assets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params_file(tmp_path, assets, model__hand_checkpoint=str(tmp_path / 'gone.ckpt'))
    assert main(['doctor', '--params', str(params)]) == 1
    out = capsys.readouterr().out
    assert '[error] model.hand_checkpoint:' in out
    assert 'gone.ckpt does not exist' in out


def test_unknown_and_out_of_range_parameters_are_errors(tmp_path: Path, assets: Path) -> None:
    params = _params_file(tmp_path, assets, detection__max_person=4)
    findings = run_doctor(params)
    (unknown,) = [f for f in findings if f.topic == 'detection.max_person']
    assert unknown.level == 'error'
    assert 'did you mean detection.max_persons?' in unknown.fix
    params = _params_file(tmp_path, assets, detection__person_threshold=1.5)
    errors = [f for f in run_doctor(params) if f.level == 'error']
    assert any('detection.person_threshold' in f.message for f in errors), errors


def test_corrupt_and_malicious_checkpoints_are_refused_without_running_code(
    tmp_path: Path, assets: Path
) -> None:
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'\x00' * 64)
    findings = run_doctor(_params_file(tmp_path, assets, model__hand_checkpoint=str(corrupt)))
    assert any(f.level == 'error' and f.topic == 'model.hand_checkpoint' for f in findings)

    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (exec, (f'open({str(marker)!r}, "w").write("x")',))

    evil = tmp_path / 'evil.ckpt'
    evil.write_bytes(pickle.dumps({'state_dict': Payload()}))
    findings = run_doctor(_params_file(tmp_path, assets, model__hand_checkpoint=str(evil)))
    (error,) = [f for f in findings if f.topic == 'model.hand_checkpoint' and f.level == 'error']
    assert not marker.exists()
    assert 'evil.ckpt' in error.message


def test_pins_detect_a_changed_file(tmp_path: Path, assets: Path) -> None:
    """sha256sum's line format: 64 hex digits, two spaces, the path."""
    params = _params_file(tmp_path, assets)
    pins = tmp_path / 'pins.sha256'
    run_doctor(params, write_pins=pins)
    lines = pins.read_text().splitlines()
    assert lines and all(len(line.split('  ')[0]) == 64 for line in lines)
    assert not [f for f in run_doctor(params, pins_file=pins) if f.level == 'error']

    copy = tmp_path / 'hand.safetensors'
    copy.write_bytes((assets / 'hamer_tiny.safetensors').read_bytes())
    moved = _params_file(tmp_path, assets, model__hand_checkpoint=str(copy))
    pins.write_text(f'{"0" * 64}  {copy}\n')
    errors = [f for f in run_doctor(moved, pins_file=pins) if f.level == 'error']
    assert any('changed' in f.message and 'pinned ' + '0' * 64 in f.message for f in errors)


def test_parameter_file_merges_wildcard_and_node_entries(tmp_path: Path) -> None:
    path = tmp_path / 'p.yaml'
    path.write_text(
        yaml.safe_dump(
            {
                '/**': {'ros__parameters': {'tf': {'enable': False}, 'model': {'device': 'cpu'}}},
                '/robot/hmr_node': {'ros__parameters': {'model': {'device': 'cuda'}}},
                'other_node': {'ros__parameters': {'x': 1}},
            }
        )
    )
    assert read_parameter_file(path) == {'tf.enable': False, 'model.device': 'cuda'}


def test_dds_profile_files_and_domain_are_checked(tmp_path: Path) -> None:
    good = tmp_path / 'fastdds.xml'
    good.write_text('<?xml version="1.0"?><dds><profiles/></dds>')
    findings = check_dds({'FASTRTPS_DEFAULT_PROFILES_FILE': str(good), 'ROS_DOMAIN_ID': '7'})
    assert not [f for f in findings if f.level == 'error']
    findings = check_dds(
        {'FASTRTPS_DEFAULT_PROFILES_FILE': str(tmp_path / 'none.xml'), 'ROS_DOMAIN_ID': '300'}
    )
    messages = [f.message for f in findings if f.level == 'error']
    assert any('no such file' in m for m in messages)
    assert any("ROS_DOMAIN_ID='300'" in m for m in messages)


def test_receive_buffer_limit_is_compared_with_the_profiles_buffers(tmp_path: Path) -> None:
    """config/fastdds_large_images.xml asks for 4 MiB (4,194,304-byte) socket buffers."""
    limit = tmp_path / 'rmem_max'
    limit.write_text('212992\n')  # Linux's usual default
    assert check_receive_buffer(limit).level == 'warn'
    limit.write_text('4194304\n')
    assert check_receive_buffer(limit).level == 'ok'
    profile = (REPO / 'config' / 'fastdds_large_images.xml').read_text()
    assert '<receiveBufferSize>4194304</receiveBufferSize>' in profile
