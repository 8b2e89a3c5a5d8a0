"""MANO fit to vertices: MANO forward of known parameters (smplx) -> vertices -> fit -> compare."""

from __future__ import annotations

import pytest
import torch

from hmr_ros.body_models.mano_fit import ManoVertexFit, rotation_from_cross_covariance
from hmr_ros.body_models.smplx_layers import MANOHandModel
from hmr_ros.geometry.procrustes import fit_similarity
from hmr_ros.geometry.rotations import axis_angle_to_rotmat


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cos = ((a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def _known_hands(mano: MANOHandModel, batch: int, finger_std_rad: float):
    """Random parameters and their mesh from smplx's MANOLayer (the outside reference)."""
    generator = torch.Generator().manual_seed(3)
    global_orient = axis_angle_to_rotmat(1.5 * torch.randn(batch, 1, 3, generator=generator))
    hand_pose = axis_angle_to_rotmat(
        finger_std_rad * torch.randn(batch, 15, 3, generator=generator)
    )
    betas = torch.randn(batch, 10, generator=generator)
    out = mano(global_orient, hand_pose, betas)  # smplx.MANOLayer underneath
    wrist = out.joints[:, :1]  # OpenPose joint 0 = MANO joint 0
    return global_orient, hand_pose, betas, out.vertices - wrist, out.joints - wrist


def test_skinning_matches_smplx_mano(mano_hand_model: MANOHandModel) -> None:
    go, hp, betas, vertices, joints = _known_hands(mano_hand_model, 3, 0.5)
    fit = ManoVertexFit(mano_hand_model)
    ours_v, ours_j = fit._relative(torch.cat([go, hp], dim=1), betas)
    torch.testing.assert_close(ours_v, vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours_j, joints, atol=1e-6, rtol=0)


def test_horn_rotation_matches_umeyama_svd() -> None:
    # Umeyama's SVD solution (geometry/procrustes.py) is an independent closed form.
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(6, 30, 3, generator=generator)
    truth = axis_angle_to_rotmat(3.0 * torch.randn(6, 3, generator=generator))
    target = source @ truth.transpose(1, 2) + 0.05 * torch.randn(6, 30, 3, generator=generator)
    xs, ys = source - source.mean(1, keepdim=True), target - target.mean(1, keepdim=True)
    covariance = ys.transpose(1, 2) @ xs
    expected = fit_similarity(source, target).rotation
    torch.testing.assert_close(
        rotation_from_cross_covariance(covariance), expected, atol=1e-4, rtol=0
    )


def test_fit_recovers_known_mano_hands(mano_hand_model: MANOHandModel) -> None:
    """Random poses (wrist any orientation, fingers 0.4 rad per component), random betas.

    A noise-free MANO mesh is exactly reachable, so the fit must reach it: bound 0.1 mm mean
    vertex error per hand (12 steps reach ~1e-5 mm on these hands; the bound leaves room for
    float32 and other hands). With all 778 vertices skinned to the 16 joints, every rotation
    and the betas are identifiable: bounds 0.5 degree and 0.01.
    """
    go, hp, betas, vertices, joints = _known_hands(mano_hand_model, 4, 0.4)
    with torch.inference_mode():
        fit = ManoVertexFit(mano_hand_model)(vertices)
    error_mm = 1000.0 * (fit.vertices - vertices).norm(dim=-1).mean(dim=-1)
    assert float(error_mm.max()) < 0.1
    assert float(1000.0 * fit.rms_m.max()) < 0.1
    assert float(_angle_deg(fit.global_orient, go).max()) < 0.5
    assert float(_angle_deg(fit.hand_pose, hp).max()) < 0.5
    assert float((fit.betas - betas).abs().max()) < 0.01
    torch.testing.assert_close(fit.joints, joints, atol=1e-4, rtol=0)


def test_noisy_mesh_fits_to_the_noise_level(mano_hand_model: MANOHandModel) -> None:
    """2 mm Gaussian noise per coordinate (3.5 mm rms per vertex): the fit stays at the noise
    floor (rms at most the noise) and within 1.5 mm mean of the clean mesh (58 parameters
    average the noise of 2334 coordinates)."""
    _, _, _, vertices, _ = _known_hands(mano_hand_model, 4, 0.4)
    noisy = vertices + 0.002 * torch.randn(
        vertices.shape, generator=torch.Generator().manual_seed(1)
    )
    fit = ManoVertexFit(mano_hand_model)(noisy)
    noise_rms = (noisy - vertices).square().sum(-1).mean(-1).sqrt()
    assert bool((fit.rms_m <= noise_rms + 1e-4).all())
    assert float(1000.0 * (fit.vertices - vertices).norm(dim=-1).mean(-1).max()) < 1.5


def test_fewer_steps_fit_worse(mano_hand_model: MANOHandModel) -> None:
    _, _, _, vertices, _ = _known_hands(mano_hand_model, 2, 0.4)
    errors = [float(ManoVertexFit(mano_hand_model, steps=s)(vertices).rms_m.max()) for s in (0, 8)]
    assert errors[1] < 0.1 * errors[0]


def test_wrong_target_shape_is_refused(mano_hand_model: MANOHandModel) -> None:
    with pytest.raises(ValueError, match='778'):
        ManoVertexFit(mano_hand_model)(torch.zeros(2, 100, 3))
