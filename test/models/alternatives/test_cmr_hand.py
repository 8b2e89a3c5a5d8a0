"""CMR as the dual path's hand model: CMR -> MANO fit -> the hand expert's interface."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.body_models.model_files import read_body_model_file
from hmr_ros.body_models.smplx_layers import MANOHandModel
from hmr_ros.checkpoints.cmr_layout import load_cmr_transforms, official_cmr_checkpoint
from hmr_ros.checkpoints.project_format import ModelCard, save_model_file
from hmr_ros.models.alternatives.cmr import cmr_from_hierarchy
from hmr_ros.models.alternatives.cmr_hand import CmrHandExpert
from hmr_ros.models.alternatives.cmr_stand_in import (
    stand_in_cmr_hierarchy,
    write_cmr_transform_file,
)
from hmr_ros.models.dual_path import DualPathConfig, DualPathModel, DualPathOutput
from hmr_ros.models.dual_path_builder import build_dual_path
from hmr_ros.models.hand_expert import HandExpertOutput
from hmr_ros.models.whole_body import build_whole_body

INTRINSICS = torch.tensor([[[300.0, 0.0, 159.5], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]]])
BOXES = torch.tensor([[20.0, 30.0, 150.0, 230.0], [160.0, 20.0, 300.0, 235.0]])


@pytest.fixture(scope='module')
def hierarchy(body_model_dir: Path):
    mano = read_body_model_file(body_model_dir / 'MANO_RIGHT.pkl')
    return stand_in_cmr_hierarchy(np.asarray(mano['v_template']), np.asarray(mano['f']))


@pytest.fixture(scope='module')
def cmr_hand(hierarchy, mano_hand_model: MANOHandModel) -> CmrHandExpert:
    torch.manual_seed(4)
    return CmrHandExpert(cmr_from_hierarchy('cmr_sg_r18', hierarchy), mano_hand_model).eval()


@pytest.fixture(scope='module')
def crops() -> torch.Tensor:
    return torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def test_outputs_have_the_hand_expert_interface(cmr_hand, crops, mano_hand_model) -> None:
    with torch.inference_mode():
        out = cmr_hand.predict(crops)
    assert isinstance(out.expert, HandExpertOutput)
    shapes = {
        'global_orient': (2, 1, 3, 3),
        'hand_pose': (2, 15, 3, 3),
        'betas': (2, 10),
        'cam': (2, 3),
        'cam_translation_crop': (2, 3),
        'pose_6d': (2, 16, 6),
    }
    for name, shape in shapes.items():
        value = getattr(out.expert, name)
        assert tuple(value.shape) == shape, name
        assert torch.isfinite(value).all(), name
    assert tuple(out.vertices.shape) == (2, 778, 3)
    assert tuple(out.keypoints_crop_px.shape) == (2, 21, 2)
    assert tuple(out.keypoint_confidence.shape) == (2, 21)
    # The MANO parameters reproduce the reported mesh through smplx's MANOLayer.
    mano = mano_hand_model(out.expert.global_orient, out.expert.hand_pose, out.expert.betas)
    torch.testing.assert_close(out.vertices, mano.vertices - mano.joints[:, :1], atol=1e-5, rtol=0)
    # The fit reports its own distance to CMR's mesh.
    rms = (out.vertices - out.cmr_vertices).square().sum(-1).mean(-1).sqrt()
    torch.testing.assert_close(out.fit_rms_m, rms, atol=1e-6, rtol=0)
    # HaMeR's weak-perspective convention: s = 2 f / (S t_z), (tx, ty) = t_xy.
    t = out.expert.cam_translation_crop
    torch.testing.assert_close(out.expert.cam[:, 0], 2 * 5000.0 / (224 * t[:, 2]))
    torch.testing.assert_close(cmr_hand(crops).global_orient, out.expert.global_orient)


def test_cmr_joints_use_the_official_fingertip_vertices(cmr_hand) -> None:
    # Official Runner.set_demo: tips 744 (thumb), 333, 444, 555, 672 (index ... pinky);
    # OpenPose order puts each tip after its finger's three joints: rows 4, 8, 12, 16, 20.
    vertices = torch.zeros(1, 778, 3)
    for row, vertex in zip((4, 8, 12, 16, 20), (744, 333, 444, 555, 672), strict=True):
        vertices[0, vertex] = float(row)
    joints = cmr_hand.cmr_joints(vertices)
    assert joints[0, [4, 8, 12, 16, 20], 0].tolist() == [4.0, 8.0, 12.0, 16.0, 20.0]


def test_cmr_hand_forward_is_free_of_host_syncs(cmr_hand, crops) -> None:
    audit_module = pytest.importorskip('hmr_ros.models.sync_audit')
    with torch.inference_mode(), audit_module.SyncAudit() as audit:
        cmr_hand.predict(crops)
    assert not audit.events, audit.summary()


def _dual_path(cmr_hand, smplx_body_model, **config) -> DualPathModel:
    torch.manual_seed(5)
    return DualPathModel(
        build_whole_body('smplerx_tiny').eval(),
        cmr_hand,
        smplx_body_model,
        config=DualPathConfig(hand_confidence_threshold=0.0, **config),
    ).eval()


def test_dual_path_runs_with_cmr_as_the_hand_model(cmr_hand, smplx_body_model) -> None:
    model = _dual_path(cmr_hand, smplx_body_model, wrist_source='hand')
    image = torch.rand(1, 3, 240, 320, generator=torch.Generator().manual_seed(1))
    seen: list[torch.Tensor] = []
    handle = model.hand_path.hand_expert.register_forward_hook(
        lambda module, args, output: seen.append(args[0])
    )
    with torch.inference_mode():
        out = model(image, BOXES, torch.zeros(2, dtype=torch.long), INTRINSICS)
    handle.remove()
    assert isinstance(out, DualPathOutput)
    assert tuple(out.right_hand_pose.shape) == (2, 15, 3)
    assert tuple(out.vertices.shape) == (2, 10475, 3)
    for name, value in out._asdict().items():
        assert torch.isfinite(value.float()).all(), name
    # CMR gets 224-pixel [0, 1] crops (it normalises them itself), all four hands at once.
    assert tuple(seen[0].shape) == (4, 3, 224, 224)
    assert float(seen[0].min()) >= 0.0 and float(seen[0].max()) <= 1.0
    # The fused fingers are CMR's fitted MANO fingers (left hands mirrored back).
    with torch.inference_mode():
        direct = cmr_hand(seen[0])
    from hmr_ros.geometry.rotations import rotmat_to_axis_angle

    right = rotmat_to_axis_angle(direct.hand_pose[1::2])
    torch.testing.assert_close(out.right_hand_pose, right, atol=1e-4, rtol=0)


def test_the_hand_adapter_is_refused_and_the_mode_says_why(
    cmr_hand, smplx_body_model, caplog
) -> None:
    with caplog.at_level(logging.INFO, logger='hmr_ros.models.dual_path'):
        model = _dual_path(cmr_hand, smplx_body_model)
    assert model.adapters == 'none'
    assert 'hand adapter cannot run with the cmr_sg_r18 hand model' in model.mode_description
    assert 'hand adapter cannot run' in caplog.text
    with pytest.raises(ValueError, match='hand adapter cannot run with the cmr_sg_r18'):
        model.set_adapters('hand')
    with pytest.raises(ValueError, match='hand adapter cannot run'):
        _dual_path(cmr_hand, smplx_body_model, adapters='both')


def test_build_dual_path_loads_an_official_cmr_checkpoint(
    tmp_path, cmr_hand, hierarchy, body_model_dir, caplog
) -> None:
    whole_body = build_whole_body('smplerx_tiny')
    whole_body_file = save_model_file(
        tmp_path / 'smplerx_tiny.safetensors',
        whole_body.state_dict(),
        ModelCard(model='smplerx', variant='smplerx_tiny'),
    )
    hand_file = tmp_path / 'cmr_sg_res18_freihand.pt'
    torch.save(official_cmr_checkpoint(cmr_hand.cmr.state_dict()), hand_file)
    with pytest.raises(FileNotFoundError, match='transform.pkl'):
        build_dual_path(whole_body_file, hand_file, body_model_dir)
    write_cmr_transform_file(tmp_path / 'transform.pkl', hierarchy)
    with caplog.at_level(logging.INFO):
        build = build_dual_path(whole_body_file, hand_file, body_model_dir)
    expert = build.model.hand_path.hand_expert
    assert isinstance(expert, CmrHandExpert)
    assert build.weights[1].model == 'cmr' and build.weights[1].variant == 'cmr_sg_r18'
    assert build.model_version == 'smplerx_tiny+cmr_sg_r18'
    for name, value in expert.cmr.state_dict().items():
        assert torch.equal(value, cmr_hand.cmr.state_dict()[name]), name
    assert 'the hand adapter cannot run' in caplog.text
    # A hand adapter file is not loaded with CMR, and the log says why.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build = build_dual_path(
            whole_body_file, hand_file, body_model_dir, hand_adapter_file=tmp_path / 'absent'
        )
    assert build.model.hand_path.hand_adapter is None
    assert 'not loading' in caplog.text and 'CMR' in caplog.text


def test_stand_in_hierarchy_round_trips_through_the_official_reader(tmp_path, hierarchy) -> None:
    loaded = load_cmr_transforms(write_cmr_transform_file(tmp_path / 'transform.pkl', hierarchy))
    assert [len(v) for v in loaded.vertices] == [778, 389, 195, 98, 49]
    for ours, theirs in zip(hierarchy.up_transforms, loaded.up_transforms, strict=True):
        torch.testing.assert_close(theirs.to_dense(), ours.to_dense())
        # Interpolation weights: every fine vertex's row sums to 1.
        torch.testing.assert_close(theirs.to_dense().sum(1), torch.ones(theirs.shape[0]))


def test_silhouette_directions_are_the_published_pairs() -> None:
    import math

    from hmr_ros.geometry.hand_root_silhouette import DIRECTION_PAIRS_DEG, _directions

    expected = [
        [math.cos(math.radians(a)), math.sin(math.radians(a))]
        for pair in DIRECTION_PAIRS_DEG
        for a in pair
    ]
    torch.testing.assert_close(
        _directions(torch.float64, torch.device('cpu')),
        torch.tensor(expected, dtype=torch.float64),
        atol=1e-15,
        rtol=0,
    )


def test_pipeline_runs_with_hand_variant_cmr_on_test_assets() -> None:
    """model.hand_variant: cmr_sg_r18 with model.use_test_assets, end to end on CPU."""
    import cv2

    from hmr_ros.pipeline.protocol import (
        CameraIntrinsics,
        Frame,
        ModelOptions,
        PipelineOptions,
        RuntimeSettings,
    )
    from hmr_ros.pipeline.runner import build_pipeline

    # Random weights give no presence score worth gating on: admit every score.
    options = PipelineOptions(
        model=ModelOptions(use_test_assets=True, hand_variant='cmr_sg_r18', device='cpu'),
        settings=RuntimeSettings(person_threshold=0.0),
    )
    pipeline = build_pipeline(options)
    description = pipeline.describe()
    assert description.model_version == 'smplerx_tiny+cmr_sg_r18'
    assert description.hand_input_size == 224
    assert description.adapters == 'none'
    assert 'hand adapter cannot run with the cmr_sg_r18' in description.weights_note
    photo = Path(__file__).resolve().parents[3] / 'resource' / 'data' / 'astronaut.jpg'
    image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    intrinsics = CameraIntrinsics(fx=520.0, fy=520.0, cx=255.5, cy=255.5, width=512, height=512)
    result = pipeline.process(Frame(image, intrinsics, 100.0, 'camera_optical_frame', 0.0))
    assert len(result.persons) == 1
    assert np.isfinite(result.persons[0].transl).all()
    pipeline.close()
