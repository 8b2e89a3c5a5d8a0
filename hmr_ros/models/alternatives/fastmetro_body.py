"""FastMETRO as the dual path's body model: SMPL mesh -> SMPL-X body pose, camera, hand boxes.

The dual path (models/dual_path.py) drives its body model through the BodyPathModel protocol
(models/body_path.py): ``config.preprocessing`` (the crop it wants), ``run_stages(crops)`` and
``assemble(stages, body_pose_6d)`` returning a WholeBodyOutput. ``FastMetroWholeBody`` fills that
contract from FastMETRO's outputs (docs/seed-models.md, 'FastMETRO in the dual path'):

- crop: square 224 x 224 around the person box grown 1.2 times (the SPIN/METRO box
  convention the released weights were trained with), ImageNet-normalised here;
- body pose: SMPL joints regressed from the 6890-vertex mesh with the user's SMPL J_regressor,
  then swing IK onto the SMPL-X rest skeleton (body_models/smpl_mapping.py); parametric models
  (the ``_smpl`` files) give SMPL's own rotations of the 22 shared joints instead;
- shape, expression, jaw, body fingers: zero (SMPL betas do not transfer to SMPL-X; fingers and
  wrists come from the hand path);
- camera: FastMETRO's weak-perspective (s, tx, ty) becomes the SMPL-X ``transl`` in the virtual
  camera of the crop (whole_body.virtual_crop_intrinsics) such that the pelvis lands on the
  crop pixel 112 (1 + s t) with the crop's image scale 112 s px per metre; the dual path then
  moves it to the real camera like SMPLer-X's;
- hand boxes: FastMETRO has none, so each is derived from the projected wrist and SMPL hand
  joint of its mesh (a square of HAND_BOX_PER_WRIST_TO_HAND times their 3D distance, centred on
  the hand joint), in the same "tight box extended 2x" convention as SMPLer-X's boxes;
- 2D hand joints for the hand-root registration: none (NaN), so the registration reports no
  independent root for FastMETRO bodies (``hand_registration_valid`` False).

The HMR-Adapters read SMPLer-X features this model does not have: they cannot run with it, and
``dual_path_note`` says so for the log and ModelInfo.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hmr_ros.body_models.smpl_mapping import NUM_SHARED_JOINTS, SMPL_JOINT_NAMES, swing_ik
from hmr_ros.geometry.rotations import rotmat_to_axis_angle, rotmat_to_rot6d
from hmr_ros.models.alternatives.fastmetro import (
    FastMetroBody,
    FastMetroOutput,
    smpl_parameters,
)
from hmr_ros.models.heads.smplx_head import (
    HAND_HEATMAP_DHW,
    NUM_BODY_POSITION_JOINTS,
    NUM_HAND_POSITION_JOINTS,
)
from hmr_ros.models.whole_body import (
    WholeBodyOutput,
    WholeBodyPreprocessing,
    virtual_crop_intrinsics,
)

__all__ = [
    'FASTMETRO_CROP_SCALE',
    'HAND_BOX_PER_WRIST_TO_HAND',
    'FastMetroStages',
    'FastMetroWholeBody',
    'fastmetro_preprocessing',
    'random_fastmetro_whole_body',
]

FASTMETRO_CROP_SCALE = 1.2
"""Person box side -> crop side (SPIN/METRO annotations: scale = 1.2 max(w, h) / 200)."""
HAND_BOX_PER_WRIST_TO_HAND = 4.4
"""Hand box side / |wrist - SMPL hand joint|: an adult hand is about 0.19 m long (wrist crease
to middle fingertip) and SMPL's hand joint sits about 0.085 m from its wrist, so 2.2 times that
distance spans the hand; SMPLer-X's boxes are the hand box extended 2x, hence 4.4."""
_SIDES = ('left', 'right')
_WRISTS = tuple(SMPL_JOINT_NAMES.index(f'{side}_wrist') for side in _SIDES)
_HANDS = tuple(SMPL_JOINT_NAMES.index(f'{side}_hand') for side in _SIDES)


@dataclass(frozen=True)
class AdapterFeatures:
    """Width of the hand features the body adapter would read: 0, FastMETRO has none."""

    embed_dim: int = 0


def fastmetro_preprocessing(input_size_px: int = 224) -> WholeBodyPreprocessing:
    """The crop contract: square, person box x 1.2, [0, 1] RGB (normalised inside)."""
    return WholeBodyPreprocessing(
        crop_hw_px=(input_size_px, input_size_px),
        vit_hw_px=(input_size_px, input_size_px),
        crop_aspect_wh=1.0,
        crop_scale=FASTMETRO_CROP_SCALE,
    )


@dataclass(frozen=True)
class FastMetroWholeBodyConfig:
    """What the dual path reads of its body model's config.

    Attributes:
        name: the FastMETRO variant.
        preprocessing: fastmetro_preprocessing().
        encoder: AdapterFeatures (no features for the body adapter).
    """

    name: str
    preprocessing: WholeBodyPreprocessing
    encoder: AdapterFeatures = AdapterFeatures()


def _float32(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Autocast off on devices that have it (a no-op context elsewhere, e.g. 'meta')."""
    if device.type in ('cuda', 'cpu'):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class FastMetroStages(NamedTuple):
    """run_stages result.

    Attributes:
        body_pose_6d: (B, 22, 6) interleaved 6D SMPL-X root + body rotations (swing IK).
        fastmetro: the network's output.
        smpl_joints: (B, 24, 3) SMPL joints of its mesh (root-relative metres, crop axes).
    """

    body_pose_6d: Tensor
    fastmetro: FastMetroOutput
    smpl_joints: Tensor


class FastMetroWholeBody(nn.Module):
    """FastMETRO behind the dual path's body interface (module docstring).

    Args:
        fastmetro: the network, mesh assets set.
        smpl_joint_regressor: (24, 6890) SMPL J_regressor (smpl_mapping.load_smpl_joint_regressor).
        smplx_rest_joints: (22, 3) SMPL-X rest joints at betas 0 (joints 0..21 of the SMPL-X
            layer in the zero pose, no translation).
    """

    dual_path_note = (
        'FastMETRO body + hand expert: body pose by swing IK from the FastMETRO SMPL mesh '
        '(neutral SMPL-X shape), hand boxes from its projected wrists and hand joints, no '
        'independent 2D hand joints for the root registration; the HMR-Adapters are defined '
        'for SMPLer-X and HaMeR features only and cannot run with FastMETRO'
    )

    def __init__(
        self, fastmetro: FastMetroBody, smpl_joint_regressor: Tensor, smplx_rest_joints: Tensor
    ) -> None:
        super().__init__()
        if tuple(smpl_joint_regressor.shape) != (len(SMPL_JOINT_NAMES), 6890):
            raise ValueError(
                f'smpl_joint_regressor must be (24, 6890); got {tuple(smpl_joint_regressor.shape)}'
            )
        if tuple(smplx_rest_joints.shape) != (NUM_SHARED_JOINTS, 3):
            raise ValueError(
                f'smplx_rest_joints must be (22, 3); got {tuple(smplx_rest_joints.shape)}'
            )
        self.fastmetro = fastmetro
        size = fastmetro.config.input_size_px
        self.config = FastMetroWholeBodyConfig(
            fastmetro.config.name, fastmetro_preprocessing(size)
        )
        self.smpl_joint_regressor: Tensor
        self.smplx_rest_joints: Tensor
        self.mean_rgb: Tensor
        self.std_rgb: Tensor
        self.register_buffer('smpl_joint_regressor', smpl_joint_regressor.float(), False)
        self.register_buffer('smplx_rest_joints', smplx_rest_joints.float(), False)
        self.register_buffer(
            'mean_rgb', torch.tensor(fastmetro.config.mean_rgb)[:, None, None], False
        )
        self.register_buffer(
            'std_rgb', torch.tensor(fastmetro.config.std_rgb)[:, None, None], False
        )

    def run_stages(self, crops: Tensor) -> FastMetroStages:
        """FastMETRO on [0, 1] crops, then SMPL joints and swing IK.

        Args:
            crops: (B, 3, 224, 224) RGB in [0, 1] (fastmetro_preprocessing).
        """
        out = self.fastmetro((crops - self.mean_rgb) / self.std_rgb)
        # Joints, IK and SVD in float32 even under fp16 autocast (SVD has no fp16 kernel, and
        # chained rotation products lose the precision the pose needs).
        with _float32(crops.device):
            vertices = out.vertices.float()
            smpl_joints = torch.einsum('jv,bvc->bjc', self.smpl_joint_regressor, vertices)
            if self.fastmetro.smpl_parameter_regressor is not None:
                # Parametric files: SMPL's own rotations of the 22 joints SMPL-X shares.
                local = smpl_parameters(self.fastmetro, out)[0][:, :NUM_SHARED_JOINTS].float()
            else:
                local = swing_ik(smpl_joints[:, :NUM_SHARED_JOINTS], self.smplx_rest_joints)
            pose_6d = rotmat_to_rot6d(local, 'interleaved')
        return FastMetroStages(pose_6d, out, smpl_joints)

    def _crop_px(self, points: Tensor, camera: Tensor) -> Tensor:
        """Weak-perspective projection to crop pixels: S/2 (1 + s (X_xy + t))."""
        half = self.config.preprocessing.crop_hw_px[0] / 2
        scale, offset = camera[:, None, :1], camera[:, None, 1:]
        return half * (1 + scale * (points[..., :2] + offset))

    def assemble(self, stages: FastMetroStages, body_pose_6d: Tensor) -> WholeBodyOutput:
        """The WholeBodyOutput fields the dual path reads (module docstring)."""
        from hmr_ros.geometry.rotations import rot6d_to_rotmat

        batch = body_pose_6d.shape[0]
        camera = stages.fastmetro.camera.float()
        body_aa = rotmat_to_axis_angle(rot6d_to_rotmat(body_pose_6d.float(), 'interleaved'))
        zeros = body_aa.new_zeros

        # Camera: pelvis (root-relative 0) at crop pixel S/2 (1 + s t), scale S/2 s px per metre,
        # in the virtual crop camera; depth uses the harmonic mean focal because the dual path
        # rescales depth by the mean of f_real / f_virtual over both axes.
        intrinsics = virtual_crop_intrinsics(self.config.preprocessing.crop_hw_px).to(camera)
        focal = intrinsics.diagonal()[:2]
        principal = intrinsics[:2, 2]
        half = self.config.preprocessing.crop_hw_px[0] / 2
        depth = 2 / (half * camera[:, :1] * (1 / focal).sum()).clamp_min(1e-9)
        pixel = half * (1 + camera[:, :1] * camera[:, 1:])
        pelvis_virtual = torch.cat(((pixel - principal) * depth / focal, depth), dim=1)
        cam_translation = pelvis_virtual - self.smplx_rest_joints[0]

        # Hand boxes from the projected wrist and hand joints (FastMETRO predicts none).
        joints = stages.smpl_joints
        wrists, hands = joints[:, list(_WRISTS)], joints[:, list(_HANDS)]
        side_px = HAND_BOX_PER_WRIST_TO_HAND * (hands - wrists).norm(dim=-1) * half * camera[:, :1]
        centre_px = self._crop_px(hands, camera)
        hand_boxes = torch.cat(
            (centre_px - side_px[..., None] / 2, centre_px + side_px[..., None] / 2), -1
        )
        head = self._crop_px(joints[:, SMPL_JOINT_NAMES.index('head')][:, None], camera)[:, 0]
        nan = torch.full(
            (batch, 2, NUM_HAND_POSITION_JOINTS, 2), float('nan'), device=camera.device
        )
        return WholeBodyOutput(
            global_orient=body_aa[:, 0],
            body_pose=body_aa[:, 1:].reshape(batch, -1),
            left_hand_pose=zeros(batch, 45),
            right_hand_pose=zeros(batch, 45),
            jaw_pose=zeros(batch, 3),
            betas=zeros(batch, 10),
            expression=zeros(batch, 10),
            cam_translation=cam_translation,
            hand_boxes_crop_px=hand_boxes,
            face_box_crop_px=torch.cat((head, head), dim=-1),
            body_joints_crop_px=zeros(batch, NUM_BODY_POSITION_JOINTS, 2),
            hand_joints_crop_px=nan,
            body_joints_hm=zeros(batch, NUM_BODY_POSITION_JOINTS, 3),
            body_pose_6d=body_pose_6d,
            hand_features=zeros(batch, 2, 0, *HAND_HEATMAP_DHW[1:]),
            hand_joints_hm=zeros(batch, 2, NUM_HAND_POSITION_JOINTS, 3),
            # FastMETRO has no joint heatmaps, so no presence evidence: a score of 0 keeps the
            # built-in front-end from reporting anyone (no phantom operator); a person detector
            # plugin's scores decide instead (docs/seed-models.md, docs/teleoperation.md).
            body_joint_confidence=zeros(batch, NUM_BODY_POSITION_JOINTS),
            hand_joint_confidence=zeros(batch, 2, NUM_HAND_POSITION_JOINTS),
            person_score=zeros(batch),
        )

    def forward(self, crops: Tensor) -> WholeBodyOutput:
        """assemble(run_stages(crops)) without a body adapter offset."""
        stages = self.run_stages(crops)
        return self.assemble(stages, stages.body_pose_6d)


def random_fastmetro_whole_body(
    variant: str,
    smplx_rest_joints: Tensor,
    *,
    seed: int = 0,
    device: str | torch.device = 'cpu',
) -> FastMetroWholeBody:
    """A FastMETRO body model with random weights and stand-in mesh and SMPL assets.

    For benchmarks (``hmr-ros bench`` rows) and tests: the work a forward does is that of the
    real model, its outputs are meaningless.

    Args:
        variant: a registered FastMETRO variant.
        smplx_rest_joints: (22, 3) rest joints of the SMPL-X layer (dual_path_builder.
            smplx_rest_joints()[:22]).
        seed: seeds weights and stand-ins.
        device: where it runs.
    """
    from hmr_ros.checkpoints.fastmetro_assets import stand_in_mesh_assets
    from hmr_ros.models.alternatives.fastmetro import build_fastmetro

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = build_fastmetro(variant)
    network.set_mesh_assets(stand_in_mesh_assets(seed=seed))
    # Stand-in SMPL J_regressor: each joint the mean of 8 random vertices.
    picks = torch.rand(len(SMPL_JOINT_NAMES), 6890, generator=generator).argsort(dim=1)[:, :8]
    regressor = torch.zeros(len(SMPL_JOINT_NAMES), 6890).scatter_(1, picks, 1 / 8)
    body = FastMetroWholeBody(network, regressor, smplx_rest_joints[:NUM_SHARED_JOINTS].cpu())
    return body.to(device).eval()
