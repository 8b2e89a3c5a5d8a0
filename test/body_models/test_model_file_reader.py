"""Reading official-format SMPL-X / MANO files without chumpy, scipy or code execution.

Facts of the official files used here (MANO 1.2, SMPL-X 1.1 `.pkl`): Python 2 protocol-2
pickles, read with encoding='latin1'; `shapedirs` is a `chumpy.ch.Ch`, whose pickled state is its
__dict__ without `_parents` and `_cache` (chumpy's Ch.__getstate__) with the array under 'x';
`J_regressor` is a `scipy.sparse.csc.csc_matrix` (`scipy.sparse._csc` since scipy 1.8) whose
state holds data, indices, indptr, _shape and maxprint. CSC: the rows of column j are
indices[indptr[j]:indptr[j + 1]], their values the same slice of data.
"""

import os
import pickle
import struct

import numpy as np
import pytest
import torch

from hmr_ros.body_models import synthetic
from hmr_ros.body_models.model_files import (
    BodyModelFileError,
    UnsafeBodyModelFileError,
    read_body_model_file,
)
from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel

# --- Hand-written protocol-2 opcodes (no pickler involved) ------------------------------------


def _text(value: str) -> bytes:
    data = value.encode('latin1')
    return b'U' + bytes((len(data),)) + data  # SHORT_BINSTRING: a Python 2 str


def _value(value) -> bytes:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return b'\x88' if value else b'\x89'
    if isinstance(value, int):
        return b'J' + struct.pack('<i', value)
    if isinstance(value, float):
        return b'G' + struct.pack('>d', value)
    if isinstance(value, list):
        return b']' + b'(' + b''.join(_value(v) for v in value) + b'e'
    if isinstance(value, tuple):
        return b'(' + b''.join(_value(v) for v in value) + b't'
    if isinstance(value, dict):
        return b'}' + b'(' + b''.join(_value(k) + _value(v) for k, v in value.items()) + b'u'
    if isinstance(value, bytes):  # a raw opcode fragment
        return value
    raise TypeError(value)


def _object(global_name: str, state: dict) -> bytes:
    module, name = global_name.rsplit('.', 1)
    # GLOBAL, EMPTY_TUPLE, NEWOBJ, state, BUILD: how protocol 2 pickles a new-style object.
    return b'c' + f'{module}\n{name}\n'.encode() + b')\x81' + _value(state) + b'b'


def _pickle(members: dict) -> bytes:
    return b'\x80\x02' + _value(members) + b'.'


def test_hand_written_official_objects_become_arrays(tmp_path):
    """A 2 x 3 CSC matrix [[1, 0, 2], [0, 3, 0]]: data (1, 3, 2), indices (0, 1, 0), indptr
    (0, 1, 2, 3); a chumpy array whose 'x' is [[0.5, -1.5]]; one new-style module path
    (scipy.sparse._csc) and the old 'shape' spelling in a CSR matrix [[0, 4], [5, 0]]:
    data (4, 5), indices (1, 0), indptr (0, 1, 2)."""
    path = tmp_path / 'MANO_TEST.pkl'
    chumpy_state = {'_dirty_vars': b'c__builtin__\nset\n(]tR', '_itr': b'N', 'x': [[0.5, -1.5]]}
    csc = {'_shape': (2, 3), 'maxprint': 50, 'indices': [0, 1, 0], 'indptr': [0, 1, 2, 3]}
    csc['data'] = [1.0, 3.0, 2.0]
    csr = {'shape': (2, 2), 'indices': [1, 0], 'indptr': [0, 1, 2], 'data': [4.0, 5.0]}
    members = {
        'shapedirs': _object('chumpy.ch.Ch', chumpy_state),
        'J_regressor': _object('scipy.sparse._csc.csc_matrix', csc),
        'other': _object('scipy.sparse.csr.csr_matrix', csr),
        'bs_style': 'lbs',
    }
    path.write_bytes(_pickle(members))
    model = read_body_model_file(path)
    np.testing.assert_array_equal(model['shapedirs'], [[0.5, -1.5]])
    np.testing.assert_array_equal(model['J_regressor'], [[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(model['other'], [[0.0, 4.0], [5.0, 0.0]])
    assert model['bs_style'] == 'lbs'


def test_inconsistent_sparse_matrix_is_an_error(tmp_path):
    path = tmp_path / 'MANO_BAD.pkl'
    bad = {'_shape': (2, 3), 'indices': [0], 'indptr': [0, 1], 'data': [1.0]}  # 3 columns
    path.write_bytes(_pickle({'J_regressor': _object('scipy.sparse.csc.csc_matrix', bad)}))
    with pytest.raises(BodyModelFileError, match='MANO_BAD.pkl.*inconsistent'):
        read_body_model_file(path)


def _malicious(marker) -> dict[str, bytes]:
    command = f'touch {marker}'
    call = b'(' + _text(command) + b'tR'  # MARK, arg, TUPLE, REDUCE
    return {
        'os.system': b'\x80\x02cposix\nsystem\n' + call + b'.',
        'builtins.eval': b'\x80\x02c__builtin__\neval\n('
        + _text(f'open({str(marker)!r}, "w")')
        + b'tR.',
        'inside a chumpy state': _pickle(
            {'shapedirs': _object('chumpy.ch.Ch', {'x': b'cposix\nsystem\n' + call})}
        ),
        'BUILD on an allowed class': b'\x80\x02cnumpy\ndtype\n}('
        + _text('__reduce__')
        + _text('x')
        + b'ub.',
    }


@pytest.mark.parametrize('case', list(_malicious('m')))
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, case):
    marker = tmp_path / 'marker'
    path = tmp_path / 'MANO_RIGHT.pkl'
    path.write_bytes(_malicious(marker)[case])
    with pytest.raises(UnsafeBodyModelFileError, match='MANO_RIGHT.pkl: refused'):
        read_body_model_file(path)
    with pytest.raises(UnsafeBodyModelFileError):
        MANOHandModel(path)
    assert not marker.exists()
    # The same bytes do run under a plain unpickler: the refusal is what protects.
    if case == 'os.system':
        pickle.loads(path.read_bytes(), encoding='latin1')
        assert marker.exists()


def test_npz_object_members_are_skipped_not_unpickled(tmp_path):
    marker = tmp_path / 'marker'

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    path = tmp_path / 'SMPLX_NEUTRAL.npz'
    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    np.savez(path, v_template=np.zeros((2, 3)), joint2num=evil)
    model = read_body_model_file(path)
    assert set(model) == {'v_template'}
    assert not marker.exists()


def test_stand_in_mano_pickles_use_the_official_classes(body_model_dir):
    """The generator's MANO files name chumpy and scipy like the official ones, so a plain
    pickle.load fails as it does on the official files without chumpy, and our reader gives
    back exactly the arrays that were written."""
    raw = (body_model_dir / 'MANO_RIGHT.pkl').read_bytes()
    assert raw[:2] == b'\x80\x02'
    assert b'cchumpy.ch\nCh\n' in raw and b'cscipy.sparse.csc\ncsc_matrix\n' in raw
    assert b'cnumpy.core.multiarray\n_reconstruct\n' in raw and b'_codecs' not in raw
    with pytest.raises(ModuleNotFoundError, match='chumpy'):
        pickle.loads(raw, encoding='latin1')
    model = read_body_model_file(body_model_dir / 'MANO_RIGHT.pkl')
    expected = synthetic._mano_right_data(seed=0)  # the session's files use seed 0 (conftest)
    for key in ('shapedirs', 'J_regressor', 'v_template', 'posedirs', 'weights'):
        np.testing.assert_array_equal(model[key], expected[key], err_msg=key)
    assert model['J_regressor'].shape == (16, 778)
    assert model['bs_style'] == 'lbs'


def test_official_format_smplx_pickle_gives_the_npz_model(tmp_path, body_model_dir):
    """SMPLX_NEUTRAL.pkl in the official format (chumpy shapedirs, sparse J_regressor) and the
    .npz of the same seed build the same SMPL-X layer."""
    npz = synthetic.write_smplx_model(tmp_path / 'npz', seed=3)
    pkl = synthetic.write_smplx_model(tmp_path / 'pkl', seed=3, ext='pkl')
    assert b'cchumpy.ch\nCh\n' in pkl.read_bytes()
    from_npz, from_pkl = SMPLXBodyModel(npz), SMPLXBodyModel(pkl)
    inputs = from_npz.neutral_inputs(1)
    inputs['betas'] = torch.linspace(-1, 1, 10)[None]
    torch.testing.assert_close(from_pkl(**inputs).vertices, from_npz(**inputs).vertices)
    torch.testing.assert_close(from_pkl(**inputs).joints, from_npz(**inputs).joints)
