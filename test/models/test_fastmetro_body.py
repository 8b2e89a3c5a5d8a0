"""FastMETRO behind the dual path's body interface (models/alternatives/fastmetro_body.py)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.checkpoints.fastmetro_assets import (
    load_fastmetro_mesh_assets,
    write_stand_in_mesh_npz,
)
from hmr_ros.checkpoints.fastmetro_layout import official_fastmetro_checkpoint
from hmr_ros.checkpoints.hamer_layout import official_hamer_checkpoint
from hmr_ros.checkpoints.safe_load import CheckpointError
from hmr_ros.geometry.cameras import cam_crop_to_full, intrinsics_matrix, project_points
from hmr_ros.geometry.crops import crop_to_image_affine
from hmr_ros.geometry.virtual_camera import crop_camera_in_image, virtual_to_real_camera
from hmr_ros.models.alternatives.fastmetro import FastMetroOutput, build_fastmetro
from hmr_ros.models.alternatives.fastmetro_body import (
    HAND_BOX_PER_WRIST_TO_HAND,
    FastMetroStages,
    FastMetroWholeBody,
)
from hmr_ros.models.dual_path import DualPathConfig
from hmr_ros.models.dual_path_builder import build_dual_path, smplx_rest_joints
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.models.whole_body import virtual_crop_intrinsics


def _regressor(seed: int = 0) -> torch.Tensor:
    """A stand-in SMPL J_regressor: each joint the mean of 8 random vertices (rows sum to 1)."""
    rng = np.random.default_rng(seed)
    regressor = np.zeros((24, 6890), dtype=np.float32)
    for joint in range(24):
        regressor[joint, rng.choice(6890, 8, replace=False)] = 1 / 8
    return torch.from_numpy(regressor)


@pytest.fixture(scope='module')
def mesh_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stand_in_mesh_npz(tmp_path_factory.mktemp('fm') / 'mesh_downsampling.npz')


@pytest.fixture
def body(mesh_file: Path, smplx_body_model: SMPLXBodyModel) -> FastMetroWholeBody:
    network = build_fastmetro('fastmetro_tiny').eval()
    network.set_mesh_assets(load_fastmetro_mesh_assets(mesh_file, expected_sha256=None))
    rest = smplx_rest_joints(smplx_body_model)[:22]
    return FastMetroWholeBody(network, _regressor(), rest).eval()


def _stages(joints: torch.Tensor, camera: torch.Tensor) -> FastMetroStages:
    batch = joints.shape[0]
    out = FastMetroOutput(
        camera=camera,
        joints=torch.zeros(batch, 14, 3),
        vertices_coarse=torch.zeros(batch, 431, 3),
        vertices_intermediate=torch.zeros(batch, 1723, 3),
        vertices=torch.zeros(batch, 6890, 3),
    )
    return FastMetroStages(torch.zeros(batch, 22, 6), out, joints)


def test_pelvis_lands_where_the_weak_perspective_camera_puts_it(
    body: FastMetroWholeBody,
) -> None:
    # HaMeR's crop-to-full conversion (geometry.cameras.cam_crop_to_full, the same weak-
    # perspective convention as FastMETRO's orthographic projection) is the reference: the
    # root must project to box_centre + (b/2) s t at depth (fx + fy) / (b s). (With fx != fy
    # the dual path's depth rescaling averages per-axis ratios: about 0.1 % per 2 % focal
    # anisotropy apart; fx = fy here.)
    camera = torch.tensor([[0.9, 0.05, -0.1], [1.3, -0.2, 0.15]])
    stages = _stages(torch.zeros(2, 24, 3), camera)
    rest_pelvis = body.smplx_rest_joints[0]
    output = body.assemble(stages, torch.eye(3)[:, :2].T.reshape(1, 1, 6).expand(2, 22, 6))
    centres, sides = (
        torch.tensor([[400.0, 300.0], [150.0, 260.0]]),
        torch.tensor([[320.0], [96.0]]),
    )
    crop_to_image = crop_to_image_affine(centres, sides.expand(2, 2), (224, 224))
    virtual = crop_camera_in_image(virtual_crop_intrinsics((224, 224)), crop_to_image)
    real = intrinsics_matrix(torch.tensor([[900.0, 900.0]]), torch.tensor([[330.0, 250.0]]))
    real = real.expand(2, 3, 3)
    pelvis = virtual_to_real_camera(rest_pelvis + output.cam_translation, virtual, real)
    expected = cam_crop_to_full(
        camera,
        centres,
        sides[:, 0],
        torch.tensor([[900.0, 900.0]]).expand(2, 2),
        torch.tensor([[330.0, 250.0]]).expand(2, 2),
    )
    torch.testing.assert_close(pelvis, expected, rtol=1e-4, atol=1e-4)


def test_hand_boxes_from_projected_wrist_and_hand_joints(body: FastMetroWholeBody) -> None:
    joints = torch.zeros(1, 24, 3)
    joints[0, 20] = torch.tensor([0.30, 0.0, 0.0])  # left wrist
    joints[0, 22] = torch.tensor([0.38, 0.06, 0.0])  # left hand joint, 0.1 m away
    joints[0, 21] = torch.tensor([-0.30, 0.0, 0.0])
    joints[0, 23] = torch.tensor([-0.36, 0.08, 0.0])
    camera = torch.tensor([[1.0, 0.0, 0.0]])  # s = 1: 112 px per metre, centred
    boxes = body.assemble(_stages(joints, camera), torch.zeros(1, 22, 6)).hand_boxes_crop_px
    # Left box centred on the projected hand joint 112 (1 + (0.38, 0.06)) = (154.56, 118.72),
    # side 4.4 x 0.1 m x 112 px/m = 49.28 px.
    side = HAND_BOX_PER_WRIST_TO_HAND * 0.1 * 112
    expected = torch.tensor(
        [154.56 - side / 2, 118.72 - side / 2, 154.56 + side / 2, 118.72 + side / 2]
    )
    torch.testing.assert_close(boxes[0, 0], expected, rtol=0, atol=1e-3)
    assert boxes[0, 1, 0] < 112 < boxes[0, 0, 0]  # the right hand is on the image's left


def test_run_stages_poses_smplx_from_the_mesh(body: FastMetroWholeBody) -> None:
    crops = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        stages = body.run_stages(crops)
        output = body.assemble(stages, stages.body_pose_6d)
    assert tuple(stages.body_pose_6d.shape) == (2, 22, 6)
    assert tuple(output.body_pose.shape) == (2, 63)
    assert torch.isfinite(output.cam_translation).all()
    assert torch.isnan(output.hand_joints_crop_px).all()  # no independent 2D hand joints


@pytest.fixture(scope='module')
def fastmetro_files(
    tmp_path_factory: pytest.TempPathFactory, body_model_dir: Path
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp('fastmetro_dual')
    for name in ('SMPLX_NEUTRAL.npz', 'MANO_RIGHT.pkl', 'MANO_LEFT.pkl', 'mano_mean_params.npz'):
        (folder / name).write_bytes((body_model_dir / name).read_bytes())
    write_stand_in_mesh_npz(folder / 'mesh_downsampling.npz')
    np.savez(folder / 'SMPL_NEUTRAL.npz', J_regressor=_regressor().numpy())
    torch.manual_seed(5)
    torch.save(
        official_fastmetro_checkpoint(build_fastmetro('fastmetro_tiny').state_dict()),
        folder / 'FastMETRO-tiny_state_dict.bin',
    )
    torch.save(
        official_hamer_checkpoint(build_hand_expert('hamer_tiny').state_dict(), seed=0),
        folder / 'hamer_tiny.ckpt',
    )
    return {
        'body': folder / 'FastMETRO-tiny_state_dict.bin',
        'hand': folder / 'hamer_tiny.ckpt',
        'dir': folder,
    }


def test_dual_path_runs_with_fastmetro_and_says_adapters_cannot(
    fastmetro_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        build = build_dual_path(
            fastmetro_files['body'],
            fastmetro_files['hand'],
            fastmetro_files['dir'],
            hand_adapter_file=fastmetro_files['dir'] / 'never_read.safetensors',
        )
    assert build.model_version == 'fastmetro_tiny+hamer_tiny'
    assert 'cannot run with FastMETRO' in build.model.mode_description
    assert 'HMR-Adapters' in caplog.text and 'never_read' in caplog.text
    image = torch.rand(1, 3, 240, 320)
    boxes = torch.tensor([[100.0, 20.0, 220.0, 230.0]])
    intrinsics = intrinsics_matrix(torch.tensor([[300.0, 300.0]]), torch.tensor([[160.0, 120.0]]))
    with torch.no_grad():
        out = build.model(image, boxes, torch.zeros(1, dtype=torch.long), intrinsics)
    assert torch.isfinite(out.vertices).all() and torch.isfinite(out.transl).all()
    assert not out.hand_registration_valid.any()
    # The hand boxes came from the body's projected joints and the hands were cut from them.
    assert torch.isfinite(out.hand_boxes_px).all()
    # The mesh is in front of the camera and projects onto the image near the person box.
    pixel = project_points(out.joints[:, :1], intrinsics)[0, 0]
    assert out.transl[0, 2] > 0 and 0 < pixel[0] < 320


def test_adapters_asked_for_explicitly_are_refused(fastmetro_files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match='SMPLer-X and HaMeR'):
        build_dual_path(
            fastmetro_files['body'],
            fastmetro_files['hand'],
            fastmetro_files['dir'],
            config=DualPathConfig(adapters='hand'),
        )


def test_requested_variant_must_match_the_file(fastmetro_files: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match="'fastmetro_s_r50' was asked for"):
        build_dual_path(
            fastmetro_files['body'],
            fastmetro_files['hand'],
            fastmetro_files['dir'],
            whole_body_variant='fastmetro_s_r50',
        )


def test_unknown_variant_names_fail_before_reading_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='unknown body model variant .*known: .*fastmetro_s_r50'):
        build_dual_path(
            tmp_path / 'none.bin', tmp_path / 'none.ckpt', tmp_path, whole_body_variant='metro'
        )


def test_random_body_for_benchmarks_runs_in_the_dual_path(
    smplx_body_model: SMPLXBodyModel,
) -> None:
    from hmr_ros.models.alternatives.fastmetro_body import random_fastmetro_whole_body
    from hmr_ros.models.dual_path import DualPathModel

    rest = smplx_rest_joints(smplx_body_model)
    body = random_fastmetro_whole_body('fastmetro_tiny', rest, seed=3)
    model = DualPathModel(body, build_hand_expert('hamer_tiny').eval(), smplx_body_model).eval()
    image = torch.rand(1, 3, 200, 200)
    intrinsics = intrinsics_matrix(torch.tensor([[250.0, 250.0]]), torch.tensor([[100.0, 100.0]]))
    with torch.no_grad():
        out = model(
            image, torch.tensor([[40.0, 10.0, 160.0, 190.0]]), torch.zeros(1).long(), intrinsics
        )
    assert torch.isfinite(out.vertices).all()
    assert model.mode_description == body.dual_path_note


def test_pipeline_on_make_test_assets_files_reports_fastmetro(tmp_path: Path) -> None:
    import time as time_module

    from hmr_ros.cli.assets import make_test_assets
    from hmr_ros.pipeline.frames import CameraIntrinsics
    from hmr_ros.pipeline.protocol import Frame, ModelOptions, PipelineOptions
    from hmr_ros.pipeline.runner import build_pipeline

    names = {p.name for p in make_test_assets(tmp_path, variants=('fastmetro_tiny', 'hamer_tiny'))}
    assert {'mesh_downsampling.npz', 'SMPL_NEUTRAL.npz', 'fastmetro_tiny.safetensors'} <= names
    options = PipelineOptions(
        model=ModelOptions(
            whole_body_variant='fastmetro_tiny',
            whole_body_checkpoint=str(tmp_path / 'fastmetro_tiny.safetensors'),
            hand_checkpoint=str(tmp_path / 'hamer_tiny.safetensors'),
            body_model_dir=str(tmp_path),
            device='cpu',
        )
    )
    pipeline = build_pipeline(options)
    description = pipeline.describe()
    assert description.model_version == 'fastmetro_tiny+hamer_tiny'
    assert description.synthetic_weights  # test-only variant: stand-ins, said loudly
    assert 'cannot run with FastMETRO' in description.weights_note
    image = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    intrinsics = CameraIntrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=320, height=240)
    result = pipeline.process(
        Frame(image, intrinsics, 1.0, 'camera_optical_frame', time_module.monotonic())
    )
    # FastMETRO has no heatmaps and so no presence score (0): the built-in front-end reports
    # nobody at the default detection.person_threshold (no phantom operator) ...
    assert result.persons == ()
    # ... and the frame runs through every stage once the threshold admits score 0.
    pipeline.update_settings(dataclasses.replace(options.settings, person_threshold=0.0))
    result = pipeline.process(
        Frame(image, intrinsics, 2.0, 'camera_optical_frame', time_module.monotonic())
    )
    assert len(result.persons) == 1


def test_pose_is_solved_in_float32_under_autocast(body: FastMetroWholeBody) -> None:
    # The pipeline runs the body model under fp16 autocast on a GPU; bf16 on the CPU stands in.
    crops = torch.rand(2, 3, 224, 224)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        stages = body.run_stages(crops)
    assert stages.body_pose_6d.dtype == torch.float32
    from hmr_ros.geometry.rotations import rot6d_to_rotmat

    rotations = rot6d_to_rotmat(stages.body_pose_6d, 'interleaved').reshape(-1, 3, 3)
    eye = torch.eye(3).expand_as(rotations)
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), eye, atol=1e-5, rtol=0)
