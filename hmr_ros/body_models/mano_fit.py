"""MANO parameters from a MANO-topology mesh: a fixed-step, batched, sync-free fit (docs/cmr.md).

Non-parametric hand models (CMR) predict the 778 MANO vertices, wrist-relative, but SMPL-X needs
MANO's global orientation, 15 finger rotations and 10 betas. :class:`ManoVertexFit` recovers
them in two stages, every shape static and no value read back to the host (the dual path's
sync-free rules, docs/performance-internals.md):

1. Initialisation by per-part Procrustes: for every MANO joint j, the rotation that best maps
   the rest-pose template (betas 0, flat hand, wrist at the origin) onto the target, with the
   vertices weighted by their skinning weight to j, is that part's global rotation G_j; the
   local rotations follow from ``G_parent^T G_j``. The rotation of each weighted cross-covariance
   is Horn's quaternion (the dominant eigenvector of his 4 x 4 matrix), found by repeated
   squaring instead of an eigen-solver, which would check its convergence on the host.
2. A fixed number of Levenberg-Marquardt steps on the wrist-relative vertex error over 48
   rotation increments (R_j <- R_j exp([d_j]x), no axis-angle singularity) and the 10 betas.
   The Jacobian is taken by central differences: every parameter is perturbed both ways in one
   batch through MANO's linear blend skinning (which this module runs over the layer's own
   buffers with Python-integer parents, as geometry.kinematics does). Forward-mode autograd
   would give the same Jacobian but does not run under ``torch.inference_mode``, where the
   pipeline calls models; the differences cost 117 skinning passes of 778 vertices per hand and
   step, a few MFLOP.

Frames and conventions: positions in metres, in whatever frame the target is given (for CMR,
the crop camera's axes); rotations are MANO's flat-hand convention (full finger articulation,
no ``hands_mean``), the same as HaMeR's outputs and hand_expert.HandExpertOutput.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from smplx.lbs import blend_shapes, vertices2joints
from torch import Tensor, nn

from hmr_ros.body_models.joint_names import NUM_HAND_JOINTS
from hmr_ros.body_models.smplx_layers import MANOHandModel
from hmr_ros.geometry.kinematics import forward_kinematics, local_rotations
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, quaternion_to_axis_angle

__all__ = ['ManoFitOutput', 'ManoVertexFit', 'rotation_from_cross_covariance']

NUM_MANO_JOINTS = NUM_HAND_JOINTS + 1
"""MANO's 16 kinematic joints: the wrist and 15 finger joints."""

DEFAULT_STEPS = 12
"""Levenberg-Marquardt steps: 8 leave 1 of 16 random test hands (0.4 rad per finger component)
unconverged from its start, 12 converge all of them (docs/cmr.md, "MANO fit")."""
DEFAULT_DAMPING = 1e-3
"""Marquardt damping: lambda * diag(J^T J) added to the normal equations."""
DEFAULT_ROTATION_STEP_RAD = 1e-3
DEFAULT_BETA_STEP = 1e-2
DEFAULT_BETA_PRIOR_M = 1e-4
"""Residual (metres) per unit of beta: a weak pull of the shape towards the mean."""
_SQUARINGS = 24
"""Repeated squarings of Horn's matrix: its power 2^24 isolates the dominant eigenvector."""
_RIDGE = 1e-12
"""Keeps the normal equations of a degenerate (e.g. all-zero) target solvable."""


class ManoFitOutput(NamedTuple):
    """MANO parameters fitted to a wrist-relative mesh.

    Attributes:
        global_orient: (B, 1, 3, 3) wrist rotation in the target's frame.
        hand_pose: (B, 15, 3, 3) finger rotations, MANO joint order, flat-hand convention.
        betas: (B, 10) shape.
        vertices: (B, 778, 3) fitted MANO mesh, metres, wrist (MANO joint 0) at the origin.
        joints: (B, 21, 3) its joints, OpenPose order (wrist first, fingertip vertices).
        rms_m: (B,) root-mean-square vertex distance to the target, metres.
    """

    global_orient: Tensor
    hand_pose: Tensor
    betas: Tensor
    vertices: Tensor
    joints: Tensor
    rms_m: Tensor


def rotation_from_cross_covariance(covariance: Tensor) -> Tensor:
    """The rotation R maximising trace(R^T Sigma): Horn's closed form, without an eigen-solver.

    For Sigma = sum_i w_i y_i x_i^T (target y, source x, both centred), Horn (1987) writes the
    best rotation as the unit quaternion of the largest eigenvalue of a symmetric 4 x 4 matrix N.
    N + c I with c = ||N||_F has eigenvalues in [0, 2c] and the same eigenvectors; its power
    2^24 (repeated squaring, renormalised each time) is q q^T up to scale, and its column with
    the largest diagonal entry (|q_i| >= 1/2) gives q. No host read, static shapes.

    Args:
        covariance: (..., 3, 3) Sigma, target-by-source.

    Returns:
        (..., 3, 3) proper rotations.
    """
    s = covariance.transpose(-1, -2)  # s[a, b] = sum x_a y_b (Horn's S)
    sxx, sxy, sxz = s[..., 0, 0], s[..., 0, 1], s[..., 0, 2]
    syx, syy, syz = s[..., 1, 0], s[..., 1, 1], s[..., 1, 2]
    szx, szy, szz = s[..., 2, 0], s[..., 2, 1], s[..., 2, 2]
    rows = (
        (sxx + syy + szz, syz - szy, szx - sxz, sxy - syx),
        (syz - szy, sxx - syy - szz, sxy + syx, szx + sxz),
        (szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy),
        (sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz),
    )
    horn = torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
    scale = horn.square().sum(dim=(-1, -2)).sqrt().clamp_min(torch.finfo(horn.dtype).tiny)
    power = horn / scale[..., None, None] + torch.eye(4, dtype=horn.dtype, device=horn.device)
    for _ in range(_SQUARINGS):
        power = power @ power
        power = power / power.abs().amax(dim=(-1, -2), keepdim=True)
    best = power.diagonal(dim1=-2, dim2=-1).argmax(dim=-1)  # (...,)
    column = torch.gather(power, -1, best[..., None, None].expand(*best.shape, 4, 1))[..., 0]
    quat = column / column.norm(dim=-1, keepdim=True)
    return axis_angle_to_rotmat(quaternion_to_axis_angle(quat))


class ManoVertexFit(nn.Module):
    """Fits MANO (global orientation, 15 finger rotations, betas) to wrist-relative vertices.

    Args:
        mano: right-hand MANO layer (the network sees right hands; mirror left hands' results).
        steps: Levenberg-Marquardt steps (fixed; no convergence test, so no host sync).
        damping: Marquardt lambda.
        rotation_step_rad: central-difference step of the rotation increments.
        beta_step: central-difference step of the betas.
        beta_prior_m: weight (metres of residual per unit beta) pulling betas towards 0.

    Shapes: forward takes (B, 778, 3) and returns ManoFitOutput.
    """

    perturb_rotations: Tensor
    perturb_betas: Tensor

    def __init__(
        self,
        mano: MANOHandModel,
        *,
        steps: int = DEFAULT_STEPS,
        damping: float = DEFAULT_DAMPING,
        rotation_step_rad: float = DEFAULT_ROTATION_STEP_RAD,
        beta_step: float = DEFAULT_BETA_STEP,
        beta_prior_m: float = DEFAULT_BETA_PRIOR_M,
    ) -> None:
        super().__init__()
        if steps < 0:
            raise ValueError(f'steps must be >= 0; got {steps}')
        self.mano = mano
        self.steps = steps
        self.damping = damping
        self.rotation_step_rad = rotation_step_rad
        self.beta_step = beta_step
        self.beta_prior_m = beta_prior_m
        self.parents: list[int] = [int(p) for p in mano.layer.parents.tolist()]
        self.num_betas = int(mano.layer.shapedirs.shape[-1])
        num_rot = 3 * NUM_MANO_JOINTS
        self.num_params = num_rot + self.num_betas
        # Perturbation table: row 0 is the unperturbed state, then +step and -step of each
        # parameter. Rotations are right-multiplied (local increments), betas added.
        eye = torch.eye(3).expand(1 + 2 * self.num_params, NUM_MANO_JOINTS, 3, 3).clone()
        betas = torch.zeros(1 + 2 * self.num_params, self.num_betas)
        for p in range(self.num_params):
            for k, sign in enumerate((1.0, -1.0)):
                row = 1 + 2 * p + k
                if p < num_rot:
                    vector = torch.zeros(3)
                    vector[p % 3] = sign * rotation_step_rad
                    eye[row, p // 3] = axis_angle_to_rotmat(vector)
                else:
                    betas[row, p - num_rot] = sign * beta_step
        self.register_buffer('perturb_rotations', eye, persistent=False)
        self.register_buffer('perturb_betas', betas, persistent=False)

    # --- MANO skinning over Python-integer parents ----------------------------------------------

    def pose(self, rotmats: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
        """MANO's linear blend skinning (smplx.lbs.lbs with rotation matrices), sync-free.

        Args:
            rotmats: (N, 16, 3, 3) local rotations, wrist first.
            betas: (N, num_betas).

        Returns:
            vertices (N, 778, 3) and the 16 posed joints (N, 16, 3), metres, MANO frame.
        """
        layer = self.mano.layer
        batch = rotmats.shape[0]
        v_shaped = layer.v_template + blend_shapes(betas, layer.shapedirs)
        rest_joints = vertices2joints(layer.J_regressor, v_shaped)
        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        pose_feature = (rotmats[:, 1:] - eye).reshape(batch, -1)
        v_posed = v_shaped + (pose_feature @ layer.posedirs).reshape(batch, -1, 3)
        posed = forward_kinematics(rotmats, rest_joints, self.parents)
        shift = posed.joints - (posed.global_rotmats @ rest_joints[..., None])[..., 0]
        transforms = torch.cat([posed.global_rotmats, shift[..., None]], dim=-1)
        blended = (layer.lbs_weights @ transforms.reshape(batch, -1, 12)).reshape(batch, -1, 3, 4)
        vertices = (blended[..., :3] @ v_posed[..., None])[..., 0] + blended[..., 3]
        return vertices, posed.joints

    def _relative(self, rotmats: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
        """Wrist-relative vertices and 21 OpenPose joints."""
        vertices, joints16 = self.pose(rotmats, betas)
        tips = vertices.index_select(1, self.mano.fingertip_vertices)
        joints = torch.cat([joints16, tips], dim=1).index_select(1, self.mano.openpose_order)
        wrist = joints16[:, :1]
        return vertices - wrist, joints - wrist

    # --- Fit ------------------------------------------------------------------------------------

    def initial_rotations(self, target: Tensor) -> Tensor:
        """Local rotations (B, 16, 3, 3) from per-part Procrustes of the rest template."""
        layer = self.mano.layer
        template = (
            layer.v_template - vertices2joints(layer.J_regressor, layer.v_template[None])[0, :1]
        )
        weights = layer.lbs_weights.to(target.dtype).transpose(0, 1)  # (16, 778)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        source_mean = weights @ template  # (16, 3)
        target_mean = weights @ target  # (B, 16, 3)
        # Sigma_j = sum_i w_ij (y_i - ybar_j)(x_i - xbar_j)^T = sum w y x^T - ybar xbar^T.
        yx = torch.einsum('jv,bva,vc->bjac', weights, target, template)
        covariance = yx - target_mean[..., :, None] * source_mean[None, :, None, :]
        global_rotmats = rotation_from_cross_covariance(covariance)
        return local_rotations(global_rotmats, self.parents)

    def forward(self, target_vertices: Tensor) -> ManoFitOutput:
        """Fit MANO to (B, 778, 3) wrist-relative vertices (metres).

        Raises:
            ValueError: the target is not (B, 778, 3).
        """
        num_vertices = self.mano.layer.v_template.shape[0]
        if target_vertices.dim() != 3 or tuple(target_vertices.shape[1:]) != (num_vertices, 3):
            raise ValueError(
                f'target vertices must be (B, {num_vertices}, 3) wrist-relative MANO-topology '
                f'meshes; got {tuple(target_vertices.shape)}'
            )
        target = target_vertices.float()
        batch = target.shape[0]
        rotmats = self.initial_rotations(target)
        betas = target.new_zeros(batch, self.num_betas)
        num_states = self.perturb_betas.shape[0]
        num_rot = 3 * NUM_MANO_JOINTS
        steps = target.new_ones(self.num_params)
        steps = torch.cat(
            [steps[:num_rot] * self.rotation_step_rad, steps[num_rot:] * self.beta_step]
        )
        prior = target.new_zeros(self.num_params)
        prior = torch.cat([prior[:num_rot], prior[num_rot:] + self.beta_prior_m**2])
        eye = torch.eye(self.num_params, dtype=target.dtype, device=target.device)
        for _ in range(self.steps):
            states = rotmats[:, None] @ self.perturb_rotations  # (B, S, 16, 3, 3)
            state_betas = betas[:, None] + self.perturb_betas  # (B, S, 10)
            vertices, _ = self._relative(states.flatten(0, 1), state_betas.flatten(0, 1))
            vertices = vertices.reshape(batch, num_states, -1)
            residual = vertices[:, 0] - target.reshape(batch, -1)  # (B, 2334)
            plus, minus = vertices[:, 1::2], vertices[:, 2::2]  # (B, P, 2334)
            jacobian_t = (plus - minus) / (2.0 * steps[None, :, None])  # J^T, (B, P, 2334)
            normal = jacobian_t @ jacobian_t.transpose(1, 2)  # (B, P, P)
            diagonal = normal.diagonal(dim1=-2, dim2=-1)
            system = normal + torch.diag_embed(self.damping * diagonal + prior) + _RIDGE * eye
            gradient = (jacobian_t @ residual[..., None])[..., 0] + prior * torch.cat(
                [betas.new_zeros(batch, num_rot), betas], dim=1
            )
            delta = -torch.linalg.solve_ex(system, gradient[..., None]).result[..., 0]
            increments = axis_angle_to_rotmat(delta[:, :num_rot].reshape(batch, -1, 3))
            rotmats = rotmats @ increments
            betas = betas + delta[:, num_rot:]
        vertices, joints = self._relative(rotmats, betas)
        rms = (vertices - target).square().sum(-1).mean(-1).sqrt()
        return ManoFitOutput(
            global_orient=rotmats[:, :1],
            hand_pose=rotmats[:, 1:],
            betas=betas,
            vertices=vertices,
            joints=joints,
            rms_m=rms,
        )
