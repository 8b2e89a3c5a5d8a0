import numpy as np
import pytest
import smplx
import torch

from hmr_ros.body_models import joint_names, synthetic
from hmr_ros.body_models.model_files import read_body_model_file


@pytest.fixture(scope='module')
def smplx_data(body_model_dir):
    with np.load(body_model_dir / 'SMPLX_NEUTRAL.npz', allow_pickle=False) as data:
        return dict(data)


def _load_mano(path):
    # The stand-ins hold chumpy/scipy objects like the official files: read them as users do.
    return read_body_model_file(path)


@pytest.fixture(scope='module')
def mano_right(body_model_dir):
    return _load_mano(body_model_dir / 'MANO_RIGHT.pkl')


@pytest.fixture(scope='module')
def mano_left(body_model_dir):
    return _load_mano(body_model_dir / 'MANO_LEFT.pkl')


def test_smplx_file_has_official_keys_and_shapes(smplx_data):
    expected = {
        'v_template': (10475, 3),
        'f': (20908, 3),
        'shapedirs': (10475, 3, 400),
        'posedirs': (10475, 3, 486),
        'J_regressor': (55, 10475),
        'kintree_table': (2, 55),
        'weights': (10475, 55),
        'hands_componentsl': (45, 45),
        'hands_componentsr': (45, 45),
        'hands_meanl': (45,),
        'hands_meanr': (45,),
        'lmk_faces_idx': (51,),
        'lmk_bary_coords': (51, 3),
        'dynamic_lmk_faces_idx': (79, 17),
        'dynamic_lmk_bary_coords': (79, 17, 3),
    }
    assert {key: smplx_data[key].shape for key in expected} == expected


def test_mano_files_have_official_keys_and_shapes(mano_right, mano_left):
    expected = {
        'v_template': (778, 3),
        'f': (1538, 3),
        'shapedirs': (778, 3, 10),
        'posedirs': (778, 3, 135),
        'J_regressor': (16, 778),
        'J': (16, 3),
        'kintree_table': (2, 16),
        'weights': (778, 16),
        'hands_components': (45, 45),
        'hands_mean': (45,),
        'hands_coeffs': (1554, 45),
    }
    for data in (mano_right, mano_left):
        assert {key: np.shape(data[key]) for key in expected} == expected
        assert all(isinstance(data[key], np.ndarray) for key in expected)


def test_weights_and_regressors_are_convex_and_faces_valid(smplx_data, mano_right):
    for data, num_vertices in ((smplx_data, 10475), (mano_right, 778)):
        np.testing.assert_allclose(data['weights'].sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(data['J_regressor'].sum(axis=1), 1.0, atol=1e-5)
        assert data['weights'].min() >= 0 and data['J_regressor'].min() >= 0
        faces = data['f'].astype(np.int64)
        assert faces.min() == 0 and faces.max() == num_vertices - 1
        distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
        assert np.all(distinct & (faces[:, 0] != faces[:, 2]))
        # Non-degenerate: every triangle has a positive area.
        v = data['v_template'].astype(np.float64)
        cross = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
        assert np.linalg.norm(cross, axis=1).min() > 0


def test_kintree_table_holds_official_parents(smplx_data, mano_right):
    """Root parent is stored as 2**32 - 1 (-1 as uint32); the others are the official parents.

    SMPL-X: left_wrist (20) hangs on left_elbow (18), left_index1 (25) on left_wrist (20).
    """
    table = smplx_data['kintree_table']
    assert table[0, 0] == 2**32 - 1
    assert table[0, 20] == 18 and table[0, 25] == 20 and table[0, 40] == 21
    assert list(table[0, 1:]) == list(joint_names.SMPLX_PARENTS[1:])
    assert list(table[1]) == list(range(55))
    assert list(mano_right['kintree_table'][0, 1:]) == list(joint_names.MANO_PARENTS[1:])


def test_j_regressor_recovers_a_body_sized_skeleton(smplx_data):
    """Joints regressed from the template: wrists far apart, head above pelvis above ankles."""
    joints = smplx_data['J_regressor'] @ smplx_data['v_template']
    index = joint_names.SMPLX_JOINT_INDEX
    span = joints[index['left_wrist'], 0] - joints[index['right_wrist'], 0]
    assert 1.0 < span < 2.0
    assert joints[index['head'], 1] > joints[index['pelvis'], 1] > joints[index['left_ankle'], 1]
    extent = smplx_data['v_template'].max(axis=0) - smplx_data['v_template'].min(axis=0)
    assert 1.4 < extent[1] < 2.0  # height in metres


def test_generated_files_load_through_smplx(body_model_dir):
    body = smplx.SMPLXLayer(
        str(body_model_dir / 'SMPLX_NEUTRAL.npz'), ext='npz', use_pca=False, use_face_contour=True
    )
    out = body()
    assert out.vertices.shape == (1, 10475, 3)
    assert out.joints.shape == (1, 55 + 21 + 51 + 17, 3)
    assert body.faces.shape == (20908, 3)
    assert body.expr_dirs.abs().sum() > 0  # expression space found at component 300
    torch.testing.assert_close(out.vertices[0], body.v_template, atol=1e-6, rtol=0)
    for name in ('MANO_RIGHT.pkl', 'MANO_LEFT.pkl'):
        path = body_model_dir / name
        hand = smplx.MANOLayer(
            str(path),
            data_struct=smplx.utils.Struct(**read_body_model_file(path)),
            is_rhand=name == 'MANO_RIGHT.pkl',
            use_pca=False,
            flat_hand_mean=True,
        )
        hand_out = hand()
        assert hand_out.vertices.shape == (1, 778, 3)
        assert hand_out.joints.shape == (1, 16, 3)
        assert hand.faces.shape == (1538, 3)


def test_fingertip_vertices_are_beyond_the_last_finger_joint(mano_right, smplx_data):
    """Vertex 744 (thumb tip) is farther from the wrist than thumb3, and so on for each finger."""
    joints = mano_right['J']
    for finger, vertex in joint_names.MANO_FINGERTIP_VERTICES.items():
        last = joint_names.MANO_JOINT_NAMES.index(f'{finger}3')
        tip = mano_right['v_template'][vertex]
        assert np.linalg.norm(tip - joints[0]) > np.linalg.norm(joints[last] - joints[0])
        assert np.linalg.norm(tip - joints[last]) < 0.05
    smplx_joints = smplx_data['J_regressor'] @ smplx_data['v_template']
    left_thumb3 = smplx_joints[joint_names.SMPLX_JOINT_INDEX['left_thumb3']]
    tip = smplx_data['v_template'][synthetic.SMPLX_VERTEX_IDS['lthumb']]
    assert np.linalg.norm(tip - left_thumb3) < 0.05


def test_left_hand_is_the_mirror_of_the_right_except_shapedirs(mano_right, mano_left):
    """Left = right with x negated; shapedirs keep the official quirk (not mirrored)."""
    mirror = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mano_left['v_template'], mano_right['v_template'] * mirror)
    np.testing.assert_allclose(mano_left['J'], mano_right['J'] * mirror)
    np.testing.assert_array_equal(mano_left['shapedirs'], mano_right['shapedirs'])
    aa_mirror = np.tile([1.0, -1.0, -1.0], 15)
    np.testing.assert_allclose(mano_left['hands_mean'], mano_right['hands_mean'] * aa_mirror)


def test_hands_mean_is_shared_by_smplx_and_mano(smplx_data, mano_right):
    np.testing.assert_allclose(smplx_data['hands_meanr'], mano_right['hands_mean'], atol=1e-6)
    components = smplx_data['hands_componentsr'].astype(np.float64)
    np.testing.assert_allclose(components @ components.T, np.eye(45), atol=1e-5)


def test_mano_mean_params_are_valid_contiguous_6d(body_model_dir):
    """Each 6D block is two orthonormal columns (contiguous: first 3 = column 1)."""
    with np.load(body_model_dir / 'mano_mean_params.npz') as data:
        pose, shape, cam = data['pose'], data['shape'], data['cam']
    assert pose.shape == (96,) and shape.shape == (10,) and cam.shape == (3,)
    assert cam[0] > 0
    columns = pose.reshape(16, 2, 3).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(columns, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose((columns[:, 0] * columns[:, 1]).sum(-1), 0.0, atol=1e-5)
    assert np.all(columns[:, 0, 0] > 0.8)  # identity-ish: first column close to (1, 0, 0)


def test_same_seed_same_files_other_seed_differs(tmp_path, mano_right):
    right, _ = synthetic.write_mano_models(tmp_path / 'a', seed=0)
    again = _load_mano(right)
    for key in ('v_template', 'f', 'shapedirs', 'posedirs', 'weights', 'hands_mean'):
        np.testing.assert_array_equal(again[key], mano_right[key])
    other = _load_mano(synthetic.write_mano_models(tmp_path / 'b', seed=1)[0])
    assert not np.array_equal(other['shapedirs'], mano_right['shapedirs'])


def test_unknown_gender_is_rejected(tmp_path):
    with pytest.raises(ValueError, match='neutral'):
        synthetic.write_smplx_model(tmp_path, gender='child')
