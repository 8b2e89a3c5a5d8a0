import pytest

from hmr_ros.body_models.model_files import (
    BodyModelFileNotFoundError,
    BodyModelFiles,
    find_mano_file,
    find_smplx_file,
)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'')
    return path


def test_finds_the_files_in_the_folder(body_model_dir):
    files = BodyModelFiles.from_folder(body_model_dir)
    assert files.smplx == body_model_dir / 'SMPLX_NEUTRAL.npz'
    assert files.mano_right == body_model_dir / 'MANO_RIGHT.pkl'
    assert files.mano_left == body_model_dir / 'MANO_LEFT.pkl'


def test_npz_preferred_pkl_accepted_subfolders_searched(tmp_path):
    pkl = _touch(tmp_path / 'smplx' / 'SMPLX_NEUTRAL.pkl')
    assert find_smplx_file(tmp_path) == pkl
    npz = _touch(tmp_path / 'smplx' / 'SMPLX_NEUTRAL.npz')
    assert find_smplx_file(tmp_path) == npz
    top = _touch(tmp_path / 'SMPLX_NEUTRAL.npz')
    assert find_smplx_file(tmp_path) == top  # the folder itself is searched first
    mano = _touch(tmp_path / 'mano' / 'MANO_LEFT.pkl')
    assert find_mano_file(tmp_path, 'left') == mano


def test_home_folder_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    path = _touch(tmp_path / 'models' / 'MANO_RIGHT.pkl')
    assert find_mano_file('~/models', 'right') == path


def test_missing_file_error_names_file_folder_website_and_readme(tmp_path):
    with pytest.raises(BodyModelFileNotFoundError) as caught:
        find_smplx_file(tmp_path, 'male')
    message = str(caught.value)
    for part in ('SMPLX_MALE.npz', 'SMPLX_MALE.pkl', str(tmp_path), 'smpl-x.is.tue.mpg.de'):
        assert part in message
    assert 'docs/licences.md' in message
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.expected == ('SMPLX_MALE.npz', 'SMPLX_MALE.pkl')
    assert caught.value.searched == (tmp_path, tmp_path / 'smplx')
    with pytest.raises(BodyModelFileNotFoundError, match='mano.is.tue.mpg.de'):
        find_mano_file(tmp_path, 'right')


def test_all_missing_files_reported_at_once(tmp_path):
    _touch(tmp_path / 'MANO_RIGHT.pkl')
    with pytest.raises(BodyModelFileNotFoundError) as caught:
        BodyModelFiles.from_folder(tmp_path)
    message = str(caught.value)
    assert 'SMPLX_NEUTRAL.npz' in message and 'MANO_LEFT.pkl' in message
    assert 'MANO_RIGHT.pkl' not in message
    assert message.startswith('2 body model files are missing')


def test_invalid_gender_or_side(tmp_path):
    with pytest.raises(ValueError, match='gender'):
        find_smplx_file(tmp_path, 'kid')
    with pytest.raises(ValueError, match='side'):
        find_mano_file(tmp_path, 'middle')
