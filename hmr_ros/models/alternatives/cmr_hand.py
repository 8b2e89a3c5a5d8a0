"""CMR as the dual path's hand model: crops -> CMR -> MANO fit -> the hand expert's outputs.

The dual path drives its hand model through ``hand_expert.HandExpertOutput`` (MANO rotations in
the flat-hand convention, betas, a weak-perspective crop camera). CMR (models/alternatives/
cmr.py) predicts a wrist-relative 778-vertex MANO-topology mesh, 21 heatmaps and a silhouette,
but no MANO parameters, so :class:`CmrHandExpert` adds the two missing steps (docs/cmr.md):

1. MANO fit (body_models/mano_fit.py): global orientation, 15 finger rotations and 10 betas
   from CMR's mesh, a fixed number of batched Levenberg-Marquardt steps, no host sync.
2. Crop camera by CMR's own adaptive 2D-1D registration (geometry/hand_root_silhouette.py):
   CMR's mesh joints (its official joint regressor: MANO's 16 joints and fingertip vertices
   744, 333, 444, 555, 672) onto its heatmap keypoints, and the mesh's extent onto its
   silhouette, in a virtual crop camera with HaMeR's f = 5000 px and the principal point at the
   crop centre; the translation becomes (s, tx, ty) with s = 2 f / (S t_z), HaMeR's convention,
   so ``geometry.cameras.cam_crop_to_full`` applies unchanged.

Input: the dual path's square hand crops of 224 x 224 pixels, [0, 1] RGB, left hands mirrored
as for HaMeR (CMR, like HaMeR, sees right hands); CMR normalises them itself (mean 0.5, std 0.5,
as the official ``base_transform``). ``mirror_left_hands`` turns the parameters back into left
hands. The HMR-Adapters' hand adapter wraps HaMeR's transformer decoder, which CMR does not
have: it cannot run with this model (``supports_hand_adapter``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hmr_ros.body_models.joint_names import MANO_TO_OPENPOSE
from hmr_ros.body_models.mano_fit import DEFAULT_STEPS, ManoVertexFit
from hmr_ros.body_models.smplx_layers import MANOHandModel
from hmr_ros.geometry.cameras import HAMER_FOCAL_LENGTH_PX, intrinsics_matrix
from hmr_ros.geometry.hand_root_silhouette import register_hand_root_2d1d, silhouette_pixels
from hmr_ros.geometry.rotations import rotmat_to_rot6d
from hmr_ros.models.alternatives.cmr import CMR_INPUT_SIZE_PX, CmrModel
from hmr_ros.models.hand_expert import HandExpertOutput

__all__ = [
    'CMR_FINGERTIP_VERTICES',
    'CmrHandConfig',
    'CmrHandExpert',
    'CmrHandOutput',
]

CMR_FINGERTIP_VERTICES: dict[str, int] = {
    'thumb': 744,
    'index': 333,
    'middle': 444,
    'ring': 555,
    'pinky': 672,
}
"""Fingertip vertices of CMR's joint regressor (official ``Runner.set_demo``: MANO joints 16-20
are vertices 333, 444, 672, 555, 744 in MANO's index, middle, pinky, ring, thumb order). They
differ from HaMeR's (744, 320, 443, 554, 671); CMR's keypoints were trained against these."""

REGISTRATION_DEPTH_M = (0.05, 100.0)
"""t_z range in the f = 5000 px virtual crop camera (a hand filling a crop sits at ~5 m)."""


@dataclass(frozen=True)
class CmrHandConfig:
    """Crop and fit settings of the CMR hand model.

    Attributes:
        crop_size_px: side S of the square input crop (CMR: 224).
        focal_length_px: focal length of the virtual crop camera of ``cam`` (HaMeR's 5000).
        fit_steps: Levenberg-Marquardt steps of the MANO fit.
        registration_threshold_px: inlier threshold of the 2D step, crop pixels.
    """

    crop_size_px: int = CMR_INPUT_SIZE_PX
    focal_length_px: float = HAMER_FOCAL_LENGTH_PX
    fit_steps: int = DEFAULT_STEPS
    registration_threshold_px: float = 6.0

    def __post_init__(self) -> None:
        if self.crop_size_px != CMR_INPUT_SIZE_PX:
            raise ValueError(
                f'CMR takes {CMR_INPUT_SIZE_PX}-pixel crops; got crop_size_px={self.crop_size_px}'
            )
        if self.focal_length_px <= 0 or self.fit_steps < 0 or self.registration_threshold_px <= 0:
            raise ValueError(
                'focal_length_px and registration_threshold_px must be positive and fit_steps '
                f'>= 0; got {self.focal_length_px}, {self.registration_threshold_px}, '
                f'{self.fit_steps}'
            )


class CmrHandOutput(NamedTuple):
    """Everything the CMR hand model gives, right-hand convention (crops as the network saw them).

    Attributes:
        expert: the hand expert's interface (MANO rotations, betas, cam, crop translation,
            contiguous 6D pose); ``token`` is (B, 0): CMR has no decoder token.
        vertices: (B, 778, 3) fitted MANO mesh, wrist-relative, metres, crop-camera axes.
        joints: (B, 21, 3) its joints, OpenPose order, wrist-relative.
        cmr_vertices: (B, 778, 3) CMR's own (non-parametric) mesh, wrist-relative.
        keypoints_crop_px: (B, 21, 2) CMR's heatmap keypoints, OpenPose order, crop pixels.
        keypoint_confidence: (B, 21) their heatmap peaks.
        silhouette: (B, 112, 112) hand mask probability.
        fit_rms_m: (B,) RMS vertex distance of the MANO fit to CMR's mesh, metres.
        registration_valid: (B,) bool, the 2D-1D registration found the crop translation.
    """

    expert: HandExpertOutput
    vertices: Tensor
    joints: Tensor
    cmr_vertices: Tensor
    keypoints_crop_px: Tensor
    keypoint_confidence: Tensor
    silhouette: Tensor
    fit_rms_m: Tensor
    registration_valid: Tensor


class CmrHandExpert(nn.Module):
    """CMR + MANO fit behind the hand expert's interface (module docstring).

    Args:
        cmr: a CMR model with its mesh hierarchy installed.
        mano: right-hand MANO layer (from the user's MANO_RIGHT.pkl).
        config: CmrHandConfig.
    """

    supports_hand_adapter = False
    """The hand adapter wraps HaMeR's decoder layers; CMR has none."""

    fingertip_vertices: Tensor
    openpose_order: Tensor

    def __init__(
        self, cmr: CmrModel, mano: MANOHandModel, config: CmrHandConfig = CmrHandConfig()
    ) -> None:
        super().__init__()
        if mano.side != 'right':
            raise ValueError('CMR sees right hands (left crops are mirrored): pass MANO_RIGHT')
        self.config = config
        self.cmr = cmr
        self.mano_fit = ManoVertexFit(mano, steps=config.fit_steps)
        self.register_buffer(
            'fingertip_vertices',
            torch.tensor(list(CMR_FINGERTIP_VERTICES.values())),
            persistent=False,
        )
        self.register_buffer('openpose_order', torch.tensor(MANO_TO_OPENPOSE), persistent=False)

    @property
    def variant(self) -> str:
        """'sg' or 'pg' and the backbone, e.g. 'cmr_sg_r18'."""
        backbone = 'r18' if self.cmr.config.backbone == 'resnet18' else 'r50'
        return f'cmr_{self.cmr.config.variant}_{backbone}'

    def cmr_joints(self, vertices: Tensor) -> Tensor:
        """CMR's 21 joints of a mesh (official regressor), OpenPose order, (B, 21, 3)."""
        layer = self.mano_fit.mano.layer
        regressed = torch.einsum('jv,bvc->bjc', layer.J_regressor.to(vertices.dtype), vertices)
        tips = vertices.index_select(1, self.fingertip_vertices)
        return torch.cat([regressed, tips], dim=1).index_select(1, self.openpose_order)

    def predict(self, crops: Tensor) -> CmrHandOutput:
        """Run CMR, the MANO fit and the registration on right-hand-looking crops.

        Args:
            crops: (B, 3, 224, 224) [0, 1] RGB, left hands mirrored.

        Returns:
            CmrHandOutput.

        Raises:
            ValueError: crops are not (B, 3, 224, 224).
        """
        size = self.config.crop_size_px
        if crops.dim() != 4 or tuple(crops.shape[1:]) != (3, size, size):
            raise ValueError(
                f'CMR hand crops must be (B, 3, {size}, {size}) RGB in [0, 1]; got '
                f'{tuple(crops.shape)}'
            )
        out = self.cmr(crops)
        mesh = out.vertices_m.float()
        fit = self.mano_fit(mesh)
        batch = mesh.shape[0]
        focal = mesh.new_full((batch, 2), self.config.focal_length_px)
        camera = intrinsics_matrix(focal, mesh.new_full((batch, 2), 0.5 * size))
        points, valid = silhouette_pixels(out.silhouette.float())
        registration = register_hand_root_2d1d(
            self.cmr_joints(mesh),
            out.keypoints_crop_px.float(),
            camera,
            out.keypoint_confidence.float(),
            vertices=mesh,
            silhouette_px=points * (size / out.silhouette.shape[-1]),
            silhouette_valid=valid,
            # Tensors, not Python floats: as_tensor of a float is a host copy per call.
            size_px=mesh.new_full((batch,), float(size)),
            inlier_threshold_px=mesh.new_full((batch,), self.config.registration_threshold_px),
            depth_bounds_m=REGISTRATION_DEPTH_M,
        )
        translation = registration.translation
        scale = 2.0 * self.config.focal_length_px / (size * translation[:, 2])
        rotmats = torch.cat([fit.global_orient, fit.hand_pose], dim=1)
        expert = HandExpertOutput(
            global_orient=fit.global_orient,
            hand_pose=fit.hand_pose,
            betas=fit.betas,
            cam=torch.cat([scale[:, None], translation[:, :2]], dim=1),
            cam_translation_crop=translation,
            pose_6d=rotmat_to_rot6d(rotmats, 'contiguous'),
            token=mesh.new_zeros(batch, 0),
        )
        return CmrHandOutput(
            expert=expert,
            vertices=fit.vertices,
            joints=fit.joints,
            cmr_vertices=mesh,
            keypoints_crop_px=out.keypoints_crop_px,
            keypoint_confidence=out.keypoint_confidence,
            silhouette=out.silhouette,
            fit_rms_m=fit.rms_m,
            registration_valid=registration.valid,
        )

    def forward(self, crops: Tensor) -> HandExpertOutput:
        """The hand expert's interface: ``predict(crops).expert``."""
        return self.predict(crops).expert
