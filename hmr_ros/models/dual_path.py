"""The dual-path system of HMR-Adapter: images and person boxes in, one SMPL-X body per person out.

Paper: HMR-Adapter (docs/method.md), sections 3.1 (overview), 3.3 (hand adapter), 3.4 (body
adapter), 4.3 (ablations); dataflow: docs/architecture.md, "One frame, end to end".
``DualPathModel.forward`` is that dataflow, top to bottom, one short block per step:

(a) Person crops: each person box is sanitised (clipped, 1 px narrower and shorter), grown to
    aspect 0.75 and scaled by 1.25 (SMPLer-X's ``sanitize_bbox`` and ``process_bbox``), and cut
    to 512 x 384 on the device, [0, 1] RGB.
(b) Whole-body path: SMPLer-X stages (body rotations theta_0 in interleaved 6D, betas, camera,
    hand boxes, hand features and joints, face).
(c) Body adapter (paper 3.4, eq. 4): refined = theta_0 (+) delta_theta, the offset added to
    the Gram-Schmidt-normalised 6D (adapters/body_adapter.apply_body_pose_offset); then the
    whole-body outputs are assembled from the refined pose.
(d) Hand crops: both hand boxes of every person, mapped from crop to image pixels, become
    HaMeR's square 256 x 256 crops (left hands flipped; blurred first where a crop shrinks
    more than 2.2 times, as HaMeR's preprocessing); all 2P hands go through the hand expert in
    one batch, ImageNet-normalised.
(e) Hand path with body guidance (paper 3.3): the arm joint group (pelvis ... wrist) of the
    refined body pose, mirrored for left hands, guides the hand expert through the hand
    adapter; left-hand outputs are mirrored back.
(f) Fusion (models/fusion.py): fingers from the hand path; the wrist's local rotation per
    ``wrist_source``: the refined body's own ('body', default), G_elbow^T R_hand (IK-style,
    'hand') or halfway ('blend'); the body's own wrist and fingers for hands whose box
    confidence is below the threshold.
(g) SMPL-X layer: vertices and joints in the real camera's optical frame with a metric
    translation from the real intrinsics (geometry/virtual_camera.py), 2D keypoints with K.
(h) Hands per person and side: wrist pose, 21 keypoints (MediaPipe order) of the fused mesh,
    finger pose, confidence and box.
(i) Hand-root registration (CMR's 2D step, geometry/hand_root.py): the fused hand, relative to
    its wrist, is placed so that it projects onto the whole-body model's own 2D hand joints;
    an independent camera-space wrist estimate reported beside the mesh's wrist.

Conventions of the outputs (shared with hmr_ros.pipeline.results):

- Frames: metres in the camera optical frame of the input image (x right, y down, z forward).
  Both base models predict orientations in the camera of their crop, and a crop is an
  axis-aligned cut of the image, so their rotations are already rotations in the real camera's
  axes; only positions need the real intrinsics.
- Hand poses are absolute: SMPL-X's ``hands_mean`` is included (SMPLer-X's mean-relative finger
  poses get it added; HaMeR's flat-hand MANO poses already are absolute), so the poses feed a
  ``flat_hand_mean=True`` SMPL-X layer or ``SMPLXLayer`` unchanged.
- Hand roots come from the fused SMPL-X body (the wrist joint of the mesh), so a hand's TF wrist
  equals the mesh's wrist joint. The registered root of step (i) is reported separately
  (``hand_root_registered``): one connected SMPL-X mesh cannot move a hand on its own. CMR's 1D
  silhouette step needs a hand mask and is not done.

Adapters are switchable at inference time for the paper's ablations: 'none' (the baseline
"SMPLer-X + HaMeR" with IK-style wrist fusion), 'hand', 'body' or 'both'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, NamedTuple, cast, get_args

import torch
from torch import Tensor, nn

from hmr_ros.body_models.joint_names import (
    NUM_HAND_JOINTS,
    OPENPOSE_HAND_JOINT_NAMES,
    SIDES,
    smplx_hand_to_openpose,
)
from hmr_ros.geometry.cameras import project_points
from hmr_ros.geometry.constants import constant_like
from hmr_ros.geometry.crops import (
    apply_affine,
    body_crop_boxes,
    center_size_to_boxes_xyxy,
    crop_images,
    crop_images_antialiased,
    crop_to_image_affine,
    hand_crop_boxes,
)
from hmr_ros.geometry.hand_root import minimal_sets, register_hand_root
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_axis_angle
from hmr_ros.geometry.virtual_camera import crop_camera_in_image, virtual_to_real_camera
from hmr_ros.models.adapters.body_adapter import (
    BodyAdapter,
    apply_body_pose_offset,
    mcp_points_hm,
)
from hmr_ros.models.adapters.hand_adapter import GuidedHandExpert, HeadAdapter
from hmr_ros.models.alternatives.cmr_hand import CmrHandExpert
from hmr_ros.models.fusion import (
    DEFAULT_WRIST_SOURCE,
    NUM_BODY_ROTATIONS,
    WRIST_SOURCES,
    WristSource,
    fuse_hands,
    hand_box_confidence,
)
from hmr_ros.models.hand_expert import HandExpert, mirror_left_hands, normalize_hand_crops
from hmr_ros.models.heads.smplx_head import BODY_POSITION_JOINT_NAMES, HAND_POSITION_JOINT_NAMES
from hmr_ros.models.stage_timing import StageTimer, mark_stage
from hmr_ros.models.whole_body import virtual_crop_intrinsics

if TYPE_CHECKING:
    from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
    from hmr_ros.models.body_path import BodyPathModel

__all__ = [
    'ADAPTER_MODES',
    'AdapterMode',
    'DualPathConfig',
    'DualPathModel',
    'DualPathOutput',
]

_LOG = logging.getLogger(__name__)

AdapterMode = Literal['none', 'hand', 'body', 'both']
"""Which HMR-Adapters run: none (baseline), hand only, body only, or both (full system)."""

ADAPTER_MODES: tuple[str, ...] = get_args(AdapterMode)

AdapterRequest = Literal['auto', 'none', 'hand', 'body', 'both']
"""An AdapterMode, or 'auto': every adapter the model holds."""

PIXEL_SCALE = 255.0
"""The pipeline's images are [0, 1]; HaMeR's normalisation expects 0-255 values."""

_MODE_DESCRIPTIONS: dict[str, str] = {
    'none': (
        'baseline SMPLer-X + HaMeR without adapters: body from the whole-body model, hands from '
        'the hand expert, wrists by IK-style fusion'
    ),
    'hand': (
        'HMR-Adapter, hand adapter only: the body pose guides the hand expert (paper 3.3); the '
        "body pose is the whole-body model's own"
    ),
    'body': (
        'HMR-Adapter, body adapter only: hand features refine the body pose (paper 3.4); the '
        'hand expert runs without guidance'
    ),
    'both': ('HMR-Adapter with both adapters (paper 3.3 and 3.4): dual-path cross augmentation'),
}


@dataclass(frozen=True)
class DualPathConfig:
    """Choices of the dual-path orchestration (the models bring their own preprocessing).

    Attributes:
        adapters: which adapters run; 'auto' runs every adapter the model holds. Asking for an
            adapter the model does not hold is an error at construction.
        hand_box_rescale: factor applied to SMPLer-X's hand box before HaMeR's square crop
            (geometry.crops.hand_crop_boxes). SMPLer-X's box is already the hand's box
            extended 2x to a square (PART_BOX_EXTENSION); HaMeR extends a tight box 2x and grows
            it to 3:4, so 1.0 reproduces HaMeR's crop (side 8/3 of a square tight box).
        hand_confidence_threshold: hands whose box confidence (fusion.hand_box_confidence) is
            below this keep the body's wrist and fingers; 0 always uses the hand path, above 1
            never.
        hand_min_side_px: hand box side (image pixels) at and below which confidence is 0.
        hand_full_side_px: hand box side from which the size part of the confidence is 1.
        registration_threshold_px: inlier threshold of the hand-root registration for a
            256-pixel hand crop (CMR/MobRecon scale), scaled with each hand's crop side.
        registration_depth_m: (min, max) depth of a registered hand root, metres.
        hand_antialias: blur the image before cutting a hand crop it shrinks more than 2.2
            times, as HaMeR's preprocessing does (geometry.crops.antialias_sigmas), batched
            and static (geometry.crops.crop_images_antialiased). It costs about
            2 * 3 * H * W * 256 multiply-adds per hand; turn it off where that matters
            (small GPUs) and crops are small.
        wrist_source: local wrist rotation of a fused hand: 'body' (the whole-body path's,
            adapter-refined; the paper's reading, see models/fusion.py), 'hand' (IK-style from
            the hand expert's orientation, the paper's baseline) or 'blend' (halfway).
    """

    adapters: AdapterRequest = 'auto'
    hand_box_rescale: float = 1.0
    hand_confidence_threshold: float = 0.5
    hand_min_side_px: float = 16.0
    hand_full_side_px: float = 48.0
    registration_threshold_px: float = 6.0
    registration_depth_m: tuple[float, float] = (0.05, 10.0)
    hand_antialias: bool = True
    wrist_source: WristSource = DEFAULT_WRIST_SOURCE

    def __post_init__(self) -> None:
        if self.wrist_source not in WRIST_SOURCES:
            raise ValueError(
                f'wrist_source must be one of {WRIST_SOURCES}; got {self.wrist_source!r}'
            )
        if self.adapters not in get_args(AdapterRequest):
            raise ValueError(
                f'adapters must be one of {get_args(AdapterRequest)}; got {self.adapters!r}'
            )
        if self.hand_box_rescale <= 0:
            raise ValueError(f'hand_box_rescale must be positive; got {self.hand_box_rescale}')
        if not 0 < self.hand_min_side_px < self.hand_full_side_px:
            raise ValueError(
                'need 0 < hand_min_side_px < hand_full_side_px; got '
                f'{self.hand_min_side_px} and {self.hand_full_side_px}'
            )
        if self.registration_threshold_px <= 0:
            raise ValueError(
                f'registration_threshold_px must be positive; got {self.registration_threshold_px}'
            )
        if not 0 < self.registration_depth_m[0] < self.registration_depth_m[1]:
            raise ValueError(
                f'registration_depth_m must be 0 < min < max; got {self.registration_depth_m}'
            )


class DualPathOutput(NamedTuple):
    """One SMPL-X body per person box; P persons, side axis (left, right).

    Positions are metres in the input image's camera optical frame; rotations are axis-angle
    (radians) or 3x3 matrices mapping the local frame into that camera frame.

    Attributes:
        global_orient: (P, 3) root rotation, axis-angle.
        body_pose: (P, 21, 3) local body joint rotations, fused wrists included.
        left_hand_pose: (P, 15, 3) absolute finger rotations (hands_mean included).
        right_hand_pose: (P, 15, 3) absolute finger rotations.
        jaw_pose: (P, 3).
        betas: (P, 10).
        expression: (P, 10).
        transl: (P, 3) SMPL-X ``transl`` placing the mesh in the real camera.
        vertices: (P, 10475, 3) mesh.
        joints: (P, J, 3) SMPL-X output joints (J = 144 with the face contour), names in
            SMPLXBodyModel.joint_names.
        keypoints_2d_px: (P, J, 2) joints projected with the real intrinsics.
        root_rotation: (P, 3, 3) pelvis global rotation (= global_orient as a matrix).
        person_boxes_px: (P, 4) the input person boxes (x1, y1, x2, y2), image pixels.
        body_crop_boxes_px: (P, 4) the 512 x 384 crop's box in the image.
        body_pose_offset_6d: (P, 22, 6) body adapter offset delta_theta (interleaved 6D, root
            first); zeros without the body adapter.
        hand_boxes_px: (P, 2, 4) hand boxes of the whole-body path, image pixels.
        hand_crop_boxes_px: (P, 2, 4) the square hand crops given to the hand expert.
        hand_confidence: (P, 2) box confidence in [0, 1] (fusion.hand_box_confidence).
        hand_fused: (P, 2) bool, True where wrist and fingers come from the hand path.
        hand_wrist_position: (P, 2, 3) wrist joint of the fused mesh.
        hand_wrist_rotation: (P, 2, 3, 3) global wrist rotation of the fused body.
        hand_keypoints: (P, 2, 21, 3) hand joints of the fused mesh, MediaPipe/OpenPose order
            (wrist first; fingertips are the SMPL-X fingertip vertices).
        hand_keypoints_2d_px: (P, 2, 21, 2) their projections with the real intrinsics.
        hand_finger_pose: (P, 2, 15, 3) absolute finger rotations, SMPL-X/MANO joint order
            (the same values as left_hand_pose and right_hand_pose).
        hand_root_registered: (P, 2, 3) wrist position from the 2D registration (step (i)).
        hand_registration_rms_px: (P, 2) its reprojection RMS over the inlier keypoints.
        hand_registration_valid: (P, 2) bool, at least 3 inlier keypoints.
        person_score: (P,) person-presence score in [0, 1] from the whole-body model's body
            joint heatmaps (whole_body.person_presence_score; docs/model-notes.md).
        joint_confidence: (P, J) per output joint (rows of ``joints`` and
            ``keypoints_2d_px``) in [0, 1]: the concentration of the heatmap that located it
            (heatmap_peak_mass). Covered: the 25 body position joints and the 20 joints of
            each hand (finger joints 1-3 and the fingertips; the wrists are body joints); 0
            for the others (spine1-3, collars, head, jaw, eyeballs, face landmarks).
    """

    global_orient: Tensor
    body_pose: Tensor
    left_hand_pose: Tensor
    right_hand_pose: Tensor
    jaw_pose: Tensor
    betas: Tensor
    expression: Tensor
    transl: Tensor
    vertices: Tensor
    joints: Tensor
    keypoints_2d_px: Tensor
    root_rotation: Tensor
    person_boxes_px: Tensor
    body_crop_boxes_px: Tensor
    body_pose_offset_6d: Tensor
    hand_boxes_px: Tensor
    hand_crop_boxes_px: Tensor
    hand_confidence: Tensor
    hand_fused: Tensor
    hand_wrist_position: Tensor
    hand_wrist_rotation: Tensor
    hand_keypoints: Tensor
    hand_keypoints_2d_px: Tensor
    hand_finger_pose: Tensor
    hand_root_registered: Tensor
    hand_registration_rms_px: Tensor
    hand_registration_valid: Tensor
    person_score: Tensor
    joint_confidence: Tensor


def heatmap_joint_rows(joint_names: tuple[str, ...] | list[str]) -> Tensor:
    """Where each SMPL-X output joint's confidence is read from the stacked heatmap scores.

    The stacked scores are ``[0, body (25), left hand (20), right hand (20)]``; a joint no
    heatmap covers reads the leading 0.

    Args:
        joint_names: the SMPL-X layer's output joint names.

    Returns:
        (J,) long index into the 66 stacked scores.
    """
    sources = {name: 1 + i for i, name in enumerate(BODY_POSITION_JOINT_NAMES)}
    for s, side in enumerate(SIDES):
        for i, name in enumerate(HAND_POSITION_JOINT_NAMES):
            smplx_name = f'{side}_{name[:-1]}' if name.endswith('4') else f'{side}_{name}'
            sources[smplx_name] = (
                1 + len(BODY_POSITION_JOINT_NAMES) + s * len(HAND_POSITION_JOINT_NAMES) + i
            )
    return torch.tensor([sources.get(name, 0) for name in joint_names], dtype=torch.long)


class DualPathModel(nn.Module):
    """Whole-body model + hand expert + optional HMR-Adapters + SMPL-X layer, as one module.

    Submodules: ``whole_body`` (SMPLer-X), ``hand_path`` (GuidedHandExpert: the frozen
    ``hand_path.hand_expert`` and ``hand_path.hand_adapter`` or None), ``body_adapter`` (or
    None) and ``smplx_model`` (buffers only, not saved). Call ``eval()`` before inference.

    Args:
        whole_body: the body model (models/body_path.BodyPathModel): SMPLer-X, or another
            registered body model such as FastMETRO.
        hand_expert: HaMeR-compatible hand expert, or CMR behind the same interface
            (alternatives/cmr_hand.py; no hand adapter).
        smplx_model: SMPL-X layer (neutral, 10 betas, 10 expression coefficients).
        hand_adapter: hand adapter built for ``hand_expert``'s head (or an ablation's
            HeadAdapter, models/ablations/hand.py), or None.
        body_adapter: body adapter for ``whole_body``, or None.
        config: DualPathConfig.

    Raises:
        ValueError: config.adapters asks for an adapter that is not given.
    """

    def __init__(
        self,
        whole_body: BodyPathModel,
        hand_expert: HandExpert | CmrHandExpert,
        smplx_model: SMPLXBodyModel,
        hand_adapter: HeadAdapter | None = None,
        body_adapter: BodyAdapter | None = None,
        config: DualPathConfig = DualPathConfig(),
    ) -> None:
        super().__init__()
        width = whole_body.config.encoder.embed_dim
        if body_adapter is not None and body_adapter.config.in_channels != width:
            raise ValueError(
                f'the body adapter takes {body_adapter.config.in_channels}-channel hand features '
                f'but the whole-body model gives {width}; use the body adapter trained for '
                f'{whole_body.config.name}'
            )
        if hand_adapter is not None and not getattr(hand_expert, 'supports_hand_adapter', True):
            raise ValueError(_no_hand_adapter_note(hand_expert))
        self.whole_body = whole_body
        # CMR is driven through HandExpert's interface; without an adapter the wrapper only
        # calls it (GuidedHandExpert.forward).
        self.hand_path = GuidedHandExpert(cast(HandExpert, hand_expert), hand_adapter)
        self.body_adapter = body_adapter
        self.smplx_model = smplx_model
        self.config = config
        self._adapters: AdapterMode = self._resolve(config.adapters)
        hand_joint_names = [smplx_hand_to_openpose(side) for side in SIDES]
        self.hand_keypoint_index: Tensor
        self.register_buffer(
            'hand_keypoint_index',
            torch.tensor(
                [[smplx_model.joint_index(n) for n in names] for names in hand_joint_names]
            ),
            persistent=False,
        )
        # SMPLer-X's 20 hand joints (thumb1 ... pinky4, 4 = tip) are OpenPose joints 1..20.
        openpose_of_smplerx = [
            OPENPOSE_HAND_JOINT_NAMES.index(name[:-1] + '_tip' if name.endswith('4') else name)
            for name in HAND_POSITION_JOINT_NAMES
        ]
        self.smplerx_hand_keypoints: Tensor
        self.register_buffer(
            'smplerx_hand_keypoints', torch.tensor(openpose_of_smplerx), persistent=False
        )
        self.wrist_joint_index: Tensor
        self.register_buffer(
            'wrist_joint_index',
            torch.tensor([smplx_model.joint_index(f'{side}_wrist') for side in SIDES]),
            persistent=False,
        )
        # Constants of the forward kept on the model's device (no host copy per frame).
        self.virtual_crop_camera: Tensor
        self.register_buffer(
            'virtual_crop_camera',
            virtual_crop_intrinsics(whole_body.config.preprocessing.crop_hw_px),
            persistent=False,
        )
        self.registration_sets: Tensor
        self.register_buffer(
            'registration_sets', minimal_sets(len(HAND_POSITION_JOINT_NAMES)), persistent=False
        )
        # Per-stage timing for benchmarks (models/stage_timing.py); None: no timing, no cost.
        self.stage_timer: StageTimer | None = None
        self.joint_confidence_rows: Tensor
        self.register_buffer(
            'joint_confidence_rows',
            heatmap_joint_rows(smplx_model.joint_names),
            persistent=False,
        )
        _LOG.info('dual path: %s', self.mode_description)

    # --- Adapter switch (paper 4.3 ablations) ---------------------------------------------------

    @property
    def available_adapters(self) -> AdapterMode:
        """The adapters this model holds, as a mode ('none' when it holds none)."""
        has_hand = self.hand_path.hand_adapter is not None
        has_body = self.body_adapter is not None
        return {(False, False): 'none', (True, False): 'hand', (False, True): 'body'}.get(
            (has_hand, has_body), 'both'
        )  # type: ignore[return-value]

    def _resolve(self, request: str) -> AdapterMode:
        if request == 'auto':
            return self.available_adapters
        if request not in ADAPTER_MODES:
            raise ValueError(f"adapters must be 'auto' or one of {ADAPTER_MODES}; got {request!r}")
        missing = [
            name
            for name, module in (
                ('hand', self.hand_path.hand_adapter),
                ('body', self.body_adapter),
            )
            if request in (name, 'both') and module is None
        ]
        if missing:
            if 'hand' in missing and not self._hand_adapter_supported:
                raise ValueError(
                    f'adapters={request!r}: {_no_hand_adapter_note(self.hand_path.hand_expert)}'
                )
            raise ValueError(
                f'adapters={request!r} needs the {" and ".join(missing)} adapter, which this '
                'model does not hold; load its adapter file, or choose none or auto (adapters '
                f'held: {self.available_adapters})'
            )
        return request  # type: ignore[return-value]

    @property
    def adapters(self) -> AdapterMode:
        """The adapters that run: 'none', 'hand', 'body' or 'both'."""
        return self._adapters

    def set_adapters(self, mode: AdapterRequest) -> None:
        """Switch adapters at inference time (ablations); 'auto' = all held adapters.

        Raises:
            ValueError: unknown mode, or an adapter the model does not hold.
        """
        self._adapters = self._resolve(mode)
        self.config = replace(self.config, adapters=mode)
        _LOG.info('dual path: %s', self.mode_description)

    @property
    def mode_description(self) -> str:
        """One sentence saying what runs (for logs, ModelInfo and the CLI's output)."""
        # Body models other than SMPLer-X describe their own dual path (registry.adapters_note).
        body_note = getattr(self.whole_body, 'dual_path_note', '')
        if body_note:
            return body_note
        text = _MODE_DESCRIPTIONS[self._adapters]
        if not self._hand_adapter_supported:
            text = (
                text.replace('HaMeR', 'CMR')
                + '; '
                + _no_hand_adapter_note(self.hand_path.hand_expert)
            )
        elif self.available_adapters == 'none':
            text += ' (no adapter files loaded)'
        return text

    @property
    def _hand_adapter_supported(self) -> bool:
        return bool(getattr(self.hand_path.hand_expert, 'supports_hand_adapter', True))

    @property
    def _hand_adapter_on(self) -> bool:
        return self._adapters in ('hand', 'both')

    @property
    def _body_adapter_on(self) -> bool:
        return self._adapters in ('body', 'both')

    # --- Forward --------------------------------------------------------------------------------

    def forward(
        self, images: Tensor, boxes_xyxy: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> DualPathOutput:
        """Recover one SMPL-X body per person box (steps (a)-(i) of the module docstring).

        Args:
            images: (N, 3, H, W) float RGB in [0, 1], on the model's device.
            boxes_xyxy: (P, 4) person boxes (x1, y1, x2, y2), image pixels (integer
                coordinates are pixel centres, as cv2).
            batch_index: (P,) long, the image of each box.
            intrinsics: (N, 3, 3) camera matrix K of each image (pixels).

        Returns:
            DualPathOutput for the P boxes.

        Raises:
            ValueError: wrong shapes or integer images.
        """
        _check_inputs(images, boxes_xyxy, batch_index, intrinsics)
        mark_stage(self.stage_timer, 'start')
        device = images.device
        num_persons = boxes_xyxy.shape[0]
        boxes_xyxy = boxes_xyxy.to(device=device, dtype=torch.float32)
        batch_index = batch_index.to(device=device, dtype=torch.long)
        camera = intrinsics.to(device=device, dtype=torch.float32)[batch_index]  # (P, 3, 3)
        image_wh = constant_like((images.shape[-1], images.shape[-2]), boxes_xyxy)

        # (a) Person crops, 512 x 384, [0, 1] RGB (SMPLer-X process_bbox + warp), on the device.
        prep = self.whole_body.config.preprocessing
        body_centers, body_sizes = body_crop_boxes(
            boxes_xyxy, prep.crop_scale, (prep.crop_aspect_wh, 1.0), image_wh=image_wh
        )
        body_crops = crop_images(images, body_centers, body_sizes, prep.crop_hw_px, batch_index)
        body_crop_to_image = crop_to_image_affine(body_centers, body_sizes, prep.crop_hw_px)

        mark_stage(self.stage_timer, 'crops')

        # (b) Whole-body path: theta_0, shape, camera, hand boxes and hand features.
        stages = self.whole_body.run_stages(body_crops)

        mark_stage(self.stage_timer, 'whole_body')

        # (c) Body adapter: refined = theta_0 (+) delta_theta (offset on the normalised 6D),
        # from the hand feature maps sampled at the predicted MCP joints of both hands.
        offset_6d = torch.zeros_like(stages.body_pose_6d)
        if self._body_adapter_on and self.body_adapter is not None:
            mcp_points = mcp_points_hm(stages.hands.joints_hm)
            offset = self.body_adapter(stages.hands.features, mcp_points).delta_body_pose_6d
            offset_6d = offset.to(offset_6d.dtype)
        body_pose_6d = apply_body_pose_offset(stages.body_pose_6d, offset_6d)
        body = self.whole_body.assemble(stages, body_pose_6d)

        mark_stage(self.stage_timer, 'body_adapter')

        # (d) Hand crops: every hand of every person, one batch of 2P; left hands flipped.
        hand_boxes_px = apply_affine(
            body.hand_boxes_crop_px.reshape(num_persons, 2 * len(SIDES), 2), body_crop_to_image
        ).reshape(num_persons, len(SIDES), 4)
        hand_centers, hand_sides_px = hand_crop_boxes(
            hand_boxes_px.reshape(-1, 4), self.config.hand_box_rescale
        )
        is_left = (torch.arange(len(SIDES), device=device) == SIDES.index('left')).repeat(
            num_persons
        )
        hand_crop_px = self.hand_path.hand_expert.config.crop_size_px
        hand_batch_index = batch_index.repeat_interleave(len(SIDES))
        if self.config.hand_antialias:  # HaMeR blurs before shrinking a crop > 2.2 times
            hand_crops = crop_images_antialiased(
                images, hand_centers, hand_sides_px, hand_crop_px, hand_batch_index, is_left
            )
        else:
            hand_crops = crop_images(
                images,
                hand_centers,
                hand_sides_px,
                (hand_crop_px, hand_crop_px),
                hand_batch_index,
                flip=is_left,
            )
        if isinstance(self.hand_path.hand_expert, CmrHandExpert):
            hand_input = hand_crops  # CMR normalises [0, 1] crops itself (mean 0.5, std 0.5)
        else:
            hand_input = normalize_hand_crops(hand_crops * PIXEL_SCALE)

        mark_stage(self.stage_timer, 'hand_crops')

        # (e) Hand path: the refined arm joint group guides the hand expert (left arms
        # mirrored like the left crops); outputs are mirrored back into left-hand parameters.
        body_rotmats = rot6d_to_rotmat(body_pose_6d.float(), 'interleaved')  # (P, 22, 3, 3)
        if self._hand_adapter_on:
            guidance = torch.stack(
                [self.hand_path.guidance(body_rotmats, side) for side in SIDES], dim=1
            )
            hands_seen = self.hand_path(hand_input, guidance.flatten(0, 1))
        else:
            hands_seen = self.hand_path.hand_expert(hand_input)
        hands = mirror_left_hands(hands_seen, is_left)

        mark_stage(self.stage_timer, 'hand_expert')

        # (f) Fusion: fingers and wrist from the hand path where the hand box is usable. Both
        # models predict orientations in their crop's camera; the crops are axis-aligned cuts
        # of the image (no rotation), so those cameras have the real camera's axes and the
        # hand's global orientation is used as is in the body's camera frame.
        hand_confidence = hand_box_confidence(
            hand_boxes_px, image_wh, self.config.hand_min_side_px, self.config.hand_full_side_px
        )
        hand_fused = hand_confidence >= self.config.hand_confidence_threshold
        body_fingers_aa = torch.stack(
            [
                self.smplx_model.add_hands_mean(body.left_hand_pose, 'left'),
                self.smplx_model.add_hands_mean(body.right_hand_pose, 'right'),
            ],
            dim=1,
        ).reshape(num_persons, len(SIDES), NUM_HAND_JOINTS, 3)
        fused = fuse_hands(
            body_rotmats,
            axis_angle_to_rotmat(body_fingers_aa),
            hands.global_orient.float().reshape(num_persons, len(SIDES), 3, 3),
            hands.hand_pose.float().reshape(num_persons, len(SIDES), NUM_HAND_JOINTS, 3, 3),
            hand_fused,
            wrist_source=self.config.wrist_source,
        )

        mark_stage(self.stage_timer, 'fusion')

        # (g) SMPL-X mesh in the real camera: the pelvis of SMPLer-X's virtual f = 5000 crop
        # camera is moved to the real camera (same pixel, same image scale), the mesh with it.
        mesh = self.smplx_model(
            global_orient=fused.body_rotmats[:, :1],
            body_pose=fused.body_rotmats[:, 1:NUM_BODY_ROTATIONS],
            left_hand_pose=fused.hand_rotmats[:, SIDES.index('left')],
            right_hand_pose=fused.hand_rotmats[:, SIDES.index('right')],
            jaw_pose=axis_angle_to_rotmat(body.jaw_pose)[:, None],
            betas=body.betas,
            expression=body.expression,
            transl=body.betas.new_zeros(num_persons, 3),
        )
        pelvis_model = mesh.joints[:, 0]
        virtual_camera = crop_camera_in_image(self.virtual_crop_camera, body_crop_to_image)
        pelvis_cam = virtual_to_real_camera(
            pelvis_model + body.cam_translation, virtual_camera, camera
        )
        transl = pelvis_cam - pelvis_model
        vertices = mesh.vertices + transl[:, None]
        joints = mesh.joints + transl[:, None]
        keypoints_2d = project_points(joints, camera)

        # (h) Hands per person and side, read from the fused mesh (TF wrist == mesh joint).
        hand_keypoints = joints[:, self.hand_keypoint_index]  # (P, 2, 21, 3)

        # (i) Hand roots by 2D registration: the fused hand relative to its wrist, onto the
        # whole-body model's own 2D hand joints (independent of the hand expert's camera).
        hand_points = hand_keypoints[:, :, self.smplerx_hand_keypoints] - hand_keypoints[:, :, :1]
        hand_joints_px = apply_affine(
            body.hand_joints_crop_px.flatten(1, 2), body_crop_to_image
        ).reshape(num_persons * len(SIDES), -1, 2)
        registration = register_hand_root(
            hand_points.flatten(0, 1),
            hand_joints_px,
            camera.repeat_interleave(len(SIDES), dim=0),
            inlier_threshold_px=self.config.registration_threshold_px
            * hand_sides_px
            / hand_crop_px,
            depth_bounds_m=self.config.registration_depth_m,
            sets=self.registration_sets,
        )
        # Presence and per-joint confidence from the heatmaps (gathered, no host sync).
        heatmap_scores = torch.cat(
            (
                body.body_joint_confidence.new_zeros(num_persons, 1),
                body.body_joint_confidence,
                body.hand_joint_confidence.flatten(1, 2),
            ),
            dim=1,
        )
        joint_confidence = heatmap_scores[:, self.joint_confidence_rows]
        finger_pose = rotmat_to_axis_angle(fused.hand_rotmats)  # (P, 2, 15, 3)
        body_aa = rotmat_to_axis_angle(fused.body_rotmats)  # (P, 22, 3)
        mark_stage(self.stage_timer, 'smplx')  # SMPL-X layer, camera placement, registration
        return DualPathOutput(
            global_orient=body_aa[:, 0],
            body_pose=body_aa[:, 1:],
            left_hand_pose=finger_pose[:, SIDES.index('left')],
            right_hand_pose=finger_pose[:, SIDES.index('right')],
            jaw_pose=body.jaw_pose,
            betas=body.betas,
            expression=body.expression,
            transl=transl,
            vertices=vertices,
            joints=joints,
            keypoints_2d_px=keypoints_2d,
            root_rotation=fused.body_rotmats[:, 0],
            person_boxes_px=boxes_xyxy,
            body_crop_boxes_px=center_size_to_boxes_xyxy(body_centers, body_sizes),
            body_pose_offset_6d=offset_6d,
            hand_boxes_px=hand_boxes_px,
            hand_crop_boxes_px=center_size_to_boxes_xyxy(
                hand_centers, hand_sides_px[:, None].expand(-1, 2)
            ).reshape(num_persons, len(SIDES), 4),
            hand_confidence=hand_confidence,
            hand_fused=hand_fused,
            hand_wrist_position=joints[:, self.wrist_joint_index],
            hand_wrist_rotation=fused.wrist_global_rotmats,
            hand_keypoints=hand_keypoints,
            hand_keypoints_2d_px=project_points(hand_keypoints.flatten(1, 2), camera).reshape(
                num_persons, len(SIDES), len(OPENPOSE_HAND_JOINT_NAMES), 2
            ),
            hand_finger_pose=finger_pose,
            hand_root_registered=registration.translation.reshape(num_persons, len(SIDES), 3),
            hand_registration_rms_px=registration.rms_px.reshape(num_persons, len(SIDES)),
            hand_registration_valid=registration.valid.reshape(num_persons, len(SIDES)),
            person_score=body.person_score,
            joint_confidence=joint_confidence,
        )


def _no_hand_adapter_note(hand_expert: nn.Module) -> str:
    name = getattr(hand_expert, 'variant', type(hand_expert).__name__)
    return (
        f'the hand adapter cannot run with the {name} hand model: it is defined for HaMeR '
        'features only'
    )


def _check_inputs(images: Tensor, boxes: Tensor, batch_index: Tensor, intrinsics: Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(
            f'images must be (N, 3, H, W) float RGB in [0, 1]; got {tuple(images.shape)} '
            f'{images.dtype} (divide uint8 images by 255)'
        )
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f'boxes_xyxy must be (P, 4) image pixels; got {tuple(boxes.shape)}')
    if tuple(batch_index.shape) != (boxes.shape[0],):
        raise ValueError(
            f'batch_index must be (P,) = ({boxes.shape[0]},), one image index per box; got '
            f'{tuple(batch_index.shape)}'
        )
    if tuple(intrinsics.shape) != (images.shape[0], 3, 3):
        raise ValueError(
            f'intrinsics must be (N, 3, 3) = ({images.shape[0]}, 3, 3), one K per image; got '
            f'{tuple(intrinsics.shape)}'
        )
    if boxes.shape[0] == 0:
        raise ValueError('no person boxes: skip the model for frames without persons')
