import pytest
import smplx
import torch
from smplx.lbs import batch_rodrigues
from torch import nn

from hmr_ros.body_models import joint_names
from hmr_ros.body_models.model_files import read_body_model_file
from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel


def _mano_struct(path):
    """smplx's model data from a MANO file in the official (chumpy/scipy) pickle format."""
    return smplx.utils.Struct(**read_body_model_file(path))


def _rotmats(axis_angle):
    """(B, K, 3) axis-angle -> (B, K, 3, 3) with smplx's own Rodrigues."""
    return batch_rodrigues(axis_angle.reshape(-1, 3)).reshape(*axis_angle.shape[:-1], 3, 3)


def _random_smplx_inputs(model, batch_size=2, scale=0.3):
    inputs = model.neutral_inputs(batch_size)
    for key, joints in (
        ('global_orient', 1),
        ('body_pose', 21),
        ('left_hand_pose', 15),
        ('right_hand_pose', 15),
        ('jaw_pose', 1),
    ):
        inputs[key] = _rotmats(torch.randn(batch_size, joints, 3) * scale)
    inputs['betas'] = torch.randn(batch_size, 10)
    inputs['expression'] = torch.randn(batch_size, 10)
    inputs['transl'] = torch.randn(batch_size, 3)
    return inputs


# ---------------------------------------------------------------- SMPL-X


def test_rest_pose_gives_the_template_and_official_sizes(smplx_body_model):
    """Zero pose, betas, expression and transl: LBS leaves v_template unchanged."""
    out = smplx_body_model(**smplx_body_model.neutral_inputs(2))
    assert out.vertices.shape == (2, 10475, 3)
    assert out.joints.shape == (2, 144, 3)
    assert smplx_body_model.faces.shape == (20908, 3)
    template = smplx_body_model.layer.v_template
    torch.testing.assert_close(out.vertices, template.expand(2, -1, -1), atol=1e-6, rtol=0)
    kinematic = smplx_body_model.layer.J_regressor @ template
    torch.testing.assert_close(out.joints[0, :55], kinematic, atol=1e-6, rtol=0)


def test_joint_names_and_indices_follow_the_output_order(smplx_body_model):
    """Kinematic joints keep their index; vertex keypoints are read from their vertices."""
    model = smplx_body_model
    assert model.num_joints == len(model.joint_names) == 144
    assert model.joint_index('pelvis') == 0 and model.joint_index('left_wrist') == 20
    out = model(**_random_smplx_inputs(model))
    thumb = model.joint_index('left_thumb')  # smplx vertex keypoint 5361
    torch.testing.assert_close(out.joints[:, thumb], out.vertices[:, 5361])
    with pytest.raises(KeyError, match='not an output joint'):
        model.joint_index('tail')


def test_transl_moves_vertices_and_joints(smplx_body_model):
    inputs = _random_smplx_inputs(smplx_body_model)
    transl = inputs['transl']
    moved = smplx_body_model(**inputs)
    still = smplx_body_model(**{**inputs, 'transl': torch.zeros_like(transl)})
    for field in ('vertices', 'joints'):
        shift = getattr(moved, field) - getattr(still, field)
        torch.testing.assert_close(shift, transl[:, None].expand_as(shift), atol=1e-5, rtol=0)


def test_bending_the_left_elbow_moves_only_that_arm(smplx_body_model):
    """The parent table in the file drives LBS: the elbow rotates the left wrist and fingers."""
    model = smplx_body_model
    inputs = model.neutral_inputs(1)
    rest = model(**inputs).joints
    elbow = model.joint_index('left_elbow') - 1  # body_pose excludes the root
    body_aa = torch.zeros(1, 21, 3)
    body_aa[0, elbow] = torch.tensor([0.0, 1.0, 0.0])
    inputs['body_pose'] = _rotmats(body_aa)
    bent = model(**inputs).joints
    moved = (bent - rest).norm(dim=-1)[0]
    assert moved[model.joint_index('left_wrist')] > 0.1
    assert moved[model.joint_index('left_index3')] > 0.1
    assert moved[model.joint_index('right_wrist')] < 1e-6
    assert moved[model.joint_index('left_elbow')] < 1e-6


def test_wrong_pose_shape_is_rejected(smplx_body_model):
    inputs = smplx_body_model.neutral_inputs(1)
    inputs['body_pose'] = torch.eye(3).expand(1, 23, 3, 3)  # SMPL's 23, not SMPL-X's 21
    with pytest.raises(ValueError, match='body_pose'):
        smplx_body_model(**inputs)


def test_hands_mean_round_trip(smplx_body_model):
    """remove(add(p)) == p in both layouts; add really adds hands_meanl / hands_meanr."""
    pose = torch.randn(3, 45)
    for side in joint_names.SIDES:
        mean = smplx_body_model.hands_mean(side)
        assert mean.shape == (45,) and mean.abs().sum() > 0
        added = smplx_body_model.add_hands_mean(pose, side)
        torch.testing.assert_close(added - pose, mean.expand(3, -1))
        torch.testing.assert_close(smplx_body_model.remove_hands_mean(added, side), pose)
        per_joint = pose.view(3, 15, 3)
        round_trip = smplx_body_model.remove_hands_mean(
            smplx_body_model.add_hands_mean(per_joint, side), side
        )
        torch.testing.assert_close(round_trip, per_joint)
    assert not torch.equal(
        smplx_body_model.hands_mean('left'), smplx_body_model.hands_mean('right')
    )
    with pytest.raises(ValueError, match='45'):
        smplx_body_model.add_hands_mean(torch.zeros(3, 44), 'left')


def test_adding_hands_mean_matches_smplx_flat_hand_mean_false(body_model_dir, smplx_body_model):
    """SMPLer-X's layer (flat_hand_mean=False) with pose p == flat-hand layer with p + mean.

    Checked twice: against smplx.SMPLX(flat_hand_mean=True) fed p + mean, and against this
    wrapper fed Rodrigues(add_hands_mean(p)).
    """
    path = str(body_model_dir / 'SMPLX_NEUTRAL.npz')
    common = dict(use_pca=False, num_betas=10, num_expression_coeffs=10, batch_size=2)
    smplerx_layer = smplx.SMPLX(path, flat_hand_mean=False, **common)
    flat_layer = smplx.SMPLX(path, flat_hand_mean=True, **common)
    body_aa = torch.randn(2, 63) * 0.2
    left_aa, right_aa = torch.randn(2, 45) * 0.3, torch.randn(2, 45) * 0.3
    betas = torch.randn(2, 10)
    shared = dict(body_pose=body_aa, betas=betas, global_orient=torch.zeros(2, 3))
    reference = smplerx_layer(left_hand_pose=left_aa, right_hand_pose=right_aa, **shared)
    left_full = smplx_body_model.add_hands_mean(left_aa, 'left')
    right_full = smplx_body_model.add_hands_mean(right_aa, 'right')
    flat = flat_layer(left_hand_pose=left_full, right_hand_pose=right_full, **shared)
    torch.testing.assert_close(flat.vertices, reference.vertices, atol=1e-5, rtol=0)
    inputs = smplx_body_model.neutral_inputs(2)
    inputs['body_pose'] = _rotmats(body_aa.view(2, 21, 3))
    inputs['left_hand_pose'] = _rotmats(left_full.view(2, 15, 3))
    inputs['right_hand_pose'] = _rotmats(right_full.view(2, 15, 3))
    inputs['betas'] = betas
    ours = smplx_body_model(**inputs)
    torch.testing.assert_close(ours.vertices, reference.vertices, atol=1e-5, rtol=0)
    no_mean = smplx_body_model(
        **{**inputs, 'left_hand_pose': _rotmats(left_aa.view(2, 15, 3))}
    ).vertices
    assert (no_mean - reference.vertices).abs().max() > 1e-3  # forgetting the mean shows


def test_body_model_buffers_stay_out_of_checkpoints(smplx_body_model, mano_hand_model):
    """A model holding these layers saves only its own weights and loads strictly without them."""

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 2)
            self.body = smplx_body_model
            self.hand = mano_hand_model

    holder = Holder()
    assert set(holder.state_dict()) == {'head.weight', 'head.bias'}
    holder.load_state_dict({f'head.{k}': v for k, v in nn.Linear(2, 2).state_dict().items()})
    assert list(smplx_body_model.parameters()) == [] and list(mano_hand_model.parameters()) == []
    assert len(list(smplx_body_model.buffers())) > 0  # the data is there, just not persistent


def test_missing_model_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match='SMPLX_NEUTRAL'):
        SMPLXBodyModel.from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match='docs/licences.md'):
        SMPLXBodyModel(tmp_path / 'SMPLX_NEUTRAL.npz')


# ---------------------------------------------------------------- MANO


def test_mano_output_shapes_and_openpose_order(mano_hand_model, body_model_dir):
    """joints[:, k] is MANO joint/tip MANO_TO_OPENPOSE[k]; e.g. 4 = thumb tip = vertex 744."""
    hand_aa = torch.randn(2, 15, 3) * 0.3
    orient = _rotmats(torch.randn(2, 1, 3) * 0.5)
    betas = torch.randn(2, 10)
    out = mano_hand_model(orient, _rotmats(hand_aa), betas)
    assert out.vertices.shape == (2, 778, 3) and out.joints.shape == (2, 21, 3)
    assert mano_hand_model.faces.shape == (1538, 3)
    raw = smplx.MANOLayer(
        str(body_model_dir / 'MANO_RIGHT.pkl'),
        data_struct=_mano_struct(body_model_dir / 'MANO_RIGHT.pkl'),
        use_pca=False,
        flat_hand_mean=True,
    )(global_orient=orient, hand_pose=_rotmats(hand_aa), betas=betas)
    names = mano_hand_model.joint_names
    native = joint_names.MANO_JOINT_NAMES
    for name in ('wrist', 'thumb1', 'index3', 'pinky2', 'ring1'):
        torch.testing.assert_close(
            out.joints[:, names.index(name)], raw.joints[:, native.index(name)]
        )
    for finger, vertex in joint_names.MANO_FINGERTIP_VERTICES.items():
        torch.testing.assert_close(
            out.joints[:, names.index(f'{finger}_tip')], raw.vertices[:, vertex]
        )
    torch.testing.assert_close(out.joints[:, 4], out.vertices[:, 744])


def test_mano_ignores_hands_mean(mano_hand_model):
    """Flat-hand convention (HaMeR): identity finger rotations give the flat template."""
    assert mano_hand_model.hands_mean.abs().sum() > 0
    out = mano_hand_model(
        torch.eye(3).expand(1, 1, 3, 3), torch.eye(3).expand(1, 15, 3, 3), torch.zeros(1, 10)
    )
    torch.testing.assert_close(
        out.vertices[0], mano_hand_model.layer.v_template, atol=1e-6, rtol=0
    )


def test_left_hand_mirrors_the_right_after_shapedirs_repair(body_model_dir, mano_hand_model):
    """Left hand with mirrored rotations M R M and the same betas == right hand with x negated.

    This holds only once the left file's non-mirrored shapedirs have been repaired.
    """
    left = MANOHandModel.from_folder(body_model_dir, side='left')
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    orient = _rotmats(torch.randn(2, 1, 3) * 0.5)
    hand_pose = _rotmats(torch.randn(2, 15, 3) * 0.3)
    betas = torch.randn(2, 10)
    right_out = mano_hand_model(orient, hand_pose, betas)
    left_out = left(mirror @ orient @ mirror, mirror @ hand_pose @ mirror, betas)
    torch.testing.assert_close(left_out.vertices, right_out.vertices @ mirror, atol=1e-5, rtol=0)
    torch.testing.assert_close(left_out.joints, right_out.joints @ mirror, atol=1e-5, rtol=0)
    unrepaired = smplx.MANOLayer(
        str(body_model_dir / 'MANO_LEFT.pkl'),
        data_struct=_mano_struct(body_model_dir / 'MANO_LEFT.pkl'),
        is_rhand=False,
        use_pca=False,
        flat_hand_mean=True,
    )(global_orient=mirror @ orient @ mirror, hand_pose=mirror @ hand_pose @ mirror, betas=betas)
    assert (unrepaired.vertices - right_out.vertices @ mirror).abs().max() > 1e-3


def test_left_hand_needs_the_right_file(body_model_dir):
    with pytest.raises(ValueError, match='MANO_RIGHT'):
        MANOHandModel(body_model_dir / 'MANO_LEFT.pkl', side='left')
    with pytest.raises(ValueError, match='side'):
        MANOHandModel(body_model_dir / 'MANO_RIGHT.pkl', side='up')


@pytest.mark.parametrize('use_face_contour', [True, False])
def test_sync_free_skinning_equals_the_smplx_package(body_model_dir, use_face_contour):
    """Our forward (forward kinematics over Python-integer parents) reproduces
    smplx.SMPLXLayer, the outside reference, within 1e-5 m on random poses and shapes
    (rotations up to about 2 rad per joint, betas and expression of 2 standard deviations), and
    reads nothing back from the device, where smplx's batch_rigid_transform reads one parent
    per joint."""
    from hmr_ros.models.sync_audit import SyncAudit

    model = SMPLXBodyModel.from_folder(body_model_dir)
    model.use_face_contour = use_face_contour
    model.layer.use_face_contour = use_face_contour
    inputs = _random_smplx_inputs(model, batch_size=5, scale=1.2)
    inputs['betas'] = inputs['betas'] * 2
    inputs['expression'] = inputs['expression'] * 2
    with torch.no_grad():
        with SyncAudit() as audit:
            ours = model(**inputs)
        expected = model.layer(**inputs)
        with SyncAudit() as reference_audit:
            model.layer(**inputs)
    assert not audit.events, audit.summary()
    assert len(reference_audit.events) == 54  # one per non-root joint: why this exists
    assert ours.joints.shape == expected.joints.shape
    assert (ours.vertices - expected.vertices).abs().max() < 1e-5
    assert (ours.joints - expected.joints).abs().max() < 1e-5
