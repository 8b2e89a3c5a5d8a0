"""SMPLer-X-compatible whole-body model (S32/B32/L32/H32): one person crop to SMPL-X parameters.

Cai et al., "SMPLer-X: Scaling Up Expressive Human Pose and Shape Estimation" (NeurIPS 2023);
the whole-body path of HMR-Adapter (docs/method.md; paper section 3.2.3). The module tree, key
names, shapes and the forward order follow docs/model-reference.md, B.1-B.8, so the released
checkpoints load strictly after hmr_ros.checkpoints.smplerx_layout strips ``module.``.

Forward, as stages (each a method, so the dual path can insert the body adapter between the body
regressor and the 6D -> axis-angle conversion without copying this file):

1. ``encode``: nearest 512 x 384 -> 256 x 192 downsampling, ViT with 31 task tokens.
2. ``regress_body``: body joint heatmaps, then root + 21 body rotations (6D), betas, camera.
3. ``predict_part_boxes``: left hand, right hand and face boxes.
4. ``regress_hands``: HandRoI features of both hands (left mirrored), hand joints, finger
   rotations; one batch for both sides.
5. ``regress_face``: expression and jaw.
6. ``assemble``: 6D -> axis-angle (left hand un-mirrored), camera translation, boxes and joints
   in crop pixels.

``forward(crops) == assemble(stages, stages.body_pose_6d)`` with ``stages = run_stages(crops)``;
the dual path calls ``assemble(stages, stages.body_pose_6d + delta_6d)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmr_ros.geometry.cameras import intrinsics_matrix
from hmr_ros.geometry.constants import divide_last_dim, scale_last_dim, take
from hmr_ros.geometry.rotations import (
    Rot6dLayout,
    axis_angle_to_rotmat,
    mirror_axis_angle,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
)
from hmr_ros.models.backbones.vit import (
    SMPLERX_NUM_TASK_TOKENS,
    ViT,
    ViTConfig,
    ViTOutput,
    vit_base,
    vit_huge,
    vit_large,
    vit_small,
    vit_tiny,
)
from hmr_ros.models.heads.smplx_head import (
    BODY_HEATMAP_DHW,
    HAND_HEATMAP_DHW,
    HAND_SIDES,
    NUM_BODY_POSE_JOINTS,
    NUM_BODY_POSITION_JOINTS,
    NUM_HAND_POSE_JOINTS,
    NUM_HAND_POSITION_JOINTS,
    PART_NAMES,
    VIT_INPUT_HW_PX,
    BodyRegressor,
    BodyRegressorOutput,
    BoxNet,
    FaceRegressor,
    FaceRegressorOutput,
    HandRegressor,
    HandRoI,
    PositionNet,
    PositionOutput,
    SMPLXHeadConfig,
    restore_part_boxes,
)

if TYPE_CHECKING:  # the body model is passed in, never built or owned here
    from hmr_ros.body_models.smplx_layers import SMPLXBodyModel, SMPLXOutput

__all__ = [
    'CAMERA_DEPTH_RANGE_M',
    'PERSON_SCORE_JOINTS',
    'WHOLE_BODY_VARIANTS',
    'HandStage',
    'WholeBodyConfig',
    'WholeBodyModel',
    'WholeBodyOutput',
    'WholeBodyPreprocessing',
    'WholeBodyStages',
    'build_whole_body',
    'camera_translation',
    'person_presence_score',
    'smplerx_b32',
    'smplerx_h32',
    'smplerx_l32',
    'smplerx_s32',
    'smplerx_tiny',
    'virtual_crop_intrinsics',
    'whole_body_config',
    'whole_body_mesh',
]

# --- Task tokens (docs/model-reference.md, B.3) ----------------------------------------------

SHAPE_TOKEN = 0
CAMERA_TOKEN = 1
EXPRESSION_TOKEN = 2
JAW_TOKEN = 3
NUM_UNUSED_HAND_TOKENS = 2
"""Tokens 4 and 5 are trained as 'hand' tokens but never read."""
BODY_POSE_TOKENS = slice(
    JAW_TOKEN + 1 + NUM_UNUSED_HAND_TOKENS,
    JAW_TOKEN + 1 + NUM_UNUSED_HAND_TOKENS + NUM_BODY_POSITION_JOINTS,
)
"""Tokens 6..30: one per body position joint."""
if BODY_POSE_TOKENS.stop != SMPLERX_NUM_TASK_TOKENS:  # pragma: no cover - constant check
    raise ImportError('SMPLer-X task-token layout does not add up to 31 tokens')

# --- Virtual camera (docs/model-reference.md, B.1, B.4 and D.10) ----------------------------

VIRTUAL_FOCAL_PX = (5000.0, 5000.0)
"""(fx, fy) of the virtual camera of the 256 x 192 ViT image."""
VIRTUAL_PRINCIPAL_POINT_PX = (VIT_INPUT_HW_PX[1] / 2, VIT_INPUT_HW_PX[0] / 2)
"""(cx, cy) = (96, 128) in ViT pixels."""
CAMERA_3D_SIZE_M = 2.5
"""Assumed metric extent of the person, fixing the depth range."""
CAMERA_DEPTH_RANGE_M = math.sqrt(
    VIRTUAL_FOCAL_PX[0]
    * VIRTUAL_FOCAL_PX[1]
    * CAMERA_3D_SIZE_M**2
    / (VIT_INPUT_HW_PX[0] * VIT_INPUT_HW_PX[1])
)
"""k = sqrt(fx fy s^2 / (H W)) = 5000 * 2.5 / sqrt(256 * 192) ~ 56.382 m; t_z = k sigmoid(c2)."""


def camera_translation(camera: Tensor) -> Tensor:
    """SMPL-X translation from SMPLer-X's camera parameters (``get_camera_trans``).

    Args:
        camera: (B, 3) raw (c0, c1, c2) from the body regressor.

    Returns:
        (B, 3) (t_x, t_y, t_z) metres in the virtual camera of the crop (OpenCV axes):
        t_x = c0, t_y = c1, t_z = CAMERA_DEPTH_RANGE_M * sigmoid(c2), so 0 < t_z < 56.382.
    """
    depth = CAMERA_DEPTH_RANGE_M * torch.sigmoid(camera[:, 2:3])
    return torch.cat((camera[:, :2], depth), dim=1)


def virtual_crop_intrinsics(crop_hw_px: tuple[int, int] = (512, 384)) -> Tensor:
    """Camera matrix of SMPLer-X's virtual camera in the pixels of the person crop.

    The virtual camera is defined on the 256 x 192 ViT image (f = 5000, principal point
    (96, 128)); a crop of another size scales both by crop / ViT size: for 512 x 384,
    f = 10000 px and principal point (192, 256). Projecting ``whole_body_mesh`` with it gives
    SMPLer-X's ``x = X / Z * 5000 + 96`` in crop pixels (its 1e-4 added to Z aside).

    Args:
        crop_hw_px: (H, W) of the crop.

    Returns:
        (3, 3) float32 K.
    """
    scale = torch.tensor((crop_hw_px[1] / VIT_INPUT_HW_PX[1], crop_hw_px[0] / VIT_INPUT_HW_PX[0]))
    focal = torch.tensor(VIRTUAL_FOCAL_PX) * scale
    principal_point = torch.tensor(VIRTUAL_PRINCIPAL_POINT_PX) * scale
    return intrinsics_matrix(focal[None], principal_point[None])[0]


# --- Configuration ------------------------------------------------------------------------------

DownsampleMode = Literal['nearest', 'bilinear', 'area']


@dataclass(frozen=True)
class WholeBodyPreprocessing:
    """What a crop must look like for these weights (timm's ``PretrainedCfg`` idea).

    Defaults are SMPLer-X's (docs/model-reference.md, B.2 and D.9); they travel with the
    config so the pipeline builds crops from the model's own contract.

    Attributes:
        crop_hw_px: (H, W) of the person crop given to ``forward``: 512 x 384.
        vit_hw_px: (H, W) the crop is resized to inside ``forward``: 256 x 192.
        downsample_mode: ``F.interpolate`` mode for that resize; SMPLer-X uses the default
            'nearest' (at scale 0.5: the even rows and columns).
        pixel_range: value range of the crop's RGB channels: [0, 1] (image / 255).
        mean_rgb: per-channel mean to subtract: None, SMPLer-X uses none (HaMeR does; do not
            reuse its normalisation here). Stated for the contract; other values are rejected.
        std_rgb: per-channel std to divide by: None (SMPLer-X), likewise.
        rot6d_layout: 6D layout of every regressed rotation: 'interleaved' (SPIN/SMPLer-X).
        crop_aspect_wh: width / height of the crop box in the image: 384 / 512 = 0.75; a
            detector box grows its short side around the centre to reach it.
        crop_scale: factor applied to both sides of that box: 1.25.
    """

    crop_hw_px: tuple[int, int] = (512, 384)
    vit_hw_px: tuple[int, int] = VIT_INPUT_HW_PX
    downsample_mode: DownsampleMode = 'nearest'
    pixel_range: tuple[float, float] = (0.0, 1.0)
    mean_rgb: tuple[float, float, float] | None = None
    std_rgb: tuple[float, float, float] | None = None
    rot6d_layout: Rot6dLayout = 'interleaved'
    crop_aspect_wh: float = 0.75
    crop_scale: float = 1.25

    def __post_init__(self) -> None:
        if min(self.crop_hw_px) <= 0 or min(self.vit_hw_px) <= 0:
            raise ValueError(
                f'crop_hw_px {self.crop_hw_px} and vit_hw_px {self.vit_hw_px} must be positive'
            )
        if self.downsample_mode not in get_args(DownsampleMode):
            raise ValueError(
                f'downsample_mode must be one of {get_args(DownsampleMode)}; '
                f'got {self.downsample_mode!r}'
            )
        if self.mean_rgb is not None or self.std_rgb is not None:
            raise ValueError(
                'the whole-body weights take [0, 1] RGB without mean/std normalisation; leave '
                f'mean_rgb and std_rgb None (got {self.mean_rgb}, {self.std_rgb})'
            )
        if self.rot6d_layout != 'interleaved':
            raise ValueError(
                f"the SMPLer-X heads regress 'interleaved' 6D rotations; got {self.rot6d_layout!r}"
            )
        aspect = self.crop_hw_px[1] / self.crop_hw_px[0]
        if not math.isclose(self.crop_aspect_wh, aspect, rel_tol=1e-6):
            raise ValueError(
                f'crop_aspect_wh {self.crop_aspect_wh} must equal crop W / H = {aspect} of '
                f'crop_hw_px {self.crop_hw_px}'
            )
        if self.crop_scale <= 0:
            raise ValueError(f'crop_scale must be positive; got {self.crop_scale}')


@dataclass(frozen=True)
class WholeBodyConfig:
    """A whole-body model variant.

    Attributes:
        name: variant name (a key of WHOLE_BODY_VARIANTS for the registered ones).
        encoder: ViT sizes; must have 31 task tokens and a 256 x 192 input (16 x 12 grid).
        heads: head widths (official defaults).
        preprocessing: the crop contract of the weights.
        official_checkpoint: file name of the released weights, '' for test variants.
    """

    name: str
    encoder: ViTConfig
    heads: SMPLXHeadConfig = SMPLXHeadConfig()
    preprocessing: WholeBodyPreprocessing = WholeBodyPreprocessing()
    official_checkpoint: str = ''

    def __post_init__(self) -> None:
        if self.encoder.num_task_tokens != SMPLERX_NUM_TASK_TOKENS:
            raise ValueError(
                f'the SMPLer-X heads read {SMPLERX_NUM_TASK_TOKENS} task tokens; build the '
                f'encoder with num_task_tokens={SMPLERX_NUM_TASK_TOKENS} '
                f'(got {self.encoder.num_task_tokens})'
            )
        if tuple(self.encoder.img_size) != tuple(self.preprocessing.vit_hw_px):
            raise ValueError(
                f'encoder img_size {self.encoder.img_size} must equal preprocessing.vit_hw_px '
                f'{self.preprocessing.vit_hw_px}'
            )
        if self.encoder.grid_size != BODY_HEATMAP_DHW[1:]:
            raise ValueError(
                f'the SMPLer-X heads need a {BODY_HEATMAP_DHW[1:]} feature grid; the encoder '
                f'gives {self.encoder.grid_size} (use a 256 x 192 input and patch size 16)'
            )


def smplerx_s32() -> WholeBodyConfig:
    """SMPLer-X-S32: ViT-S encoder (C 384), 32.0M parameters."""
    return WholeBodyConfig(
        'smplerx_s32',
        vit_small(SMPLERX_NUM_TASK_TOKENS),
        official_checkpoint='smpler_x_s32.pth.tar',
    )


def smplerx_b32() -> WholeBodyConfig:
    """SMPLer-X-B32: ViT-B encoder (C 768), 102.9M parameters."""
    return WholeBodyConfig(
        'smplerx_b32',
        vit_base(SMPLERX_NUM_TASK_TOKENS),
        official_checkpoint='smpler_x_b32.pth.tar',
    )


def smplerx_l32() -> WholeBodyConfig:
    """SMPLer-X-L32: ViT-L encoder (C 1024), 326.7M parameters."""
    return WholeBodyConfig(
        'smplerx_l32',
        vit_large(SMPLERX_NUM_TASK_TOKENS),
        official_checkpoint='smpler_x_l32.pth.tar',
    )


def smplerx_h32() -> WholeBodyConfig:
    """SMPLer-X-H32: ViT-H encoder (C 1280), 661.8M parameters."""
    return WholeBodyConfig(
        'smplerx_h32',
        vit_huge(SMPLERX_NUM_TASK_TOKENS),
        official_checkpoint='smpler_x_h32.pth.tar',
    )


def smplerx_tiny() -> WholeBodyConfig:
    """Test-only: ViT-tiny encoder (C 32, 2 blocks) and narrow heads; same module tree."""
    return WholeBodyConfig(
        'smplerx_tiny',
        vit_tiny(SMPLERX_NUM_TASK_TOKENS),
        heads=SMPLXHeadConfig(box_channels=16, joint_feature_dim=24),
    )


WHOLE_BODY_VARIANTS: dict[str, Callable[[], WholeBodyConfig]] = {
    'smplerx_s32': smplerx_s32,
    'smplerx_b32': smplerx_b32,
    'smplerx_l32': smplerx_l32,
    'smplerx_h32': smplerx_h32,
    'smplerx_tiny': smplerx_tiny,
}
"""Registered whole-body variants by name."""


def whole_body_config(name: str) -> WholeBodyConfig:
    """Config of a registered variant.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name not in WHOLE_BODY_VARIANTS:
        raise ValueError(
            f'unknown whole-body variant {name!r}; known: {sorted(WHOLE_BODY_VARIANTS)}'
        )
    return WHOLE_BODY_VARIANTS[name]()


# --- Outputs ------------------------------------------------------------------------------------


class HandStage(NamedTuple):
    """Hand branch results, both hands batched; side axis in HAND_SIDES order (left, right).

    Left-hand entries are in the mirrored frame the network sees (the left hand looks like a
    right hand): its feature columns are flipped and its joints and rotations are those of the
    mirrored hand.

    Attributes:
        features: (B, 2, C, 16, 16) HandRoI feature maps (after the 1x1 conv back to C).
        joints_hm: (B, 2, 20, 3) hand joints (x, y, z) in hand heatmap cells of ``features``
            (x, y in [0, 15] index its columns and rows), HAND_POSITION_JOINT_NAMES order.
        pose_6d: (B, 2, 15, 6) interleaved 6D finger rotations of the (mirrored) hands.
        joint_confidence: (B, 2, 20) heatmap_peak_mass of each hand joint's heatmap, [0, 1].
    """

    features: Tensor
    joints_hm: Tensor
    pose_6d: Tensor
    joint_confidence: Tensor


class WholeBodyStages(NamedTuple):
    """Every stage result of one forward pass, before the final conversions.

    Attributes:
        task_tokens: (B, 31, C) encoder task tokens.
        feature_map: (B, C, 16, 12) encoder feature map.
        body_heatmap: (B, 25, 16, 16, 12) softmax-normalised body joint heatmaps.
        body_joints_hm: (B, 25, 3) body joints (x, y, z) in body heatmap cells.
        body_joint_confidence: (B, 25) heatmap_peak_mass of each body joint's heatmap.
        body_pose_6d: (B, 22, 6) interleaved 6D, root first then the 21 body joints.
        betas: (B, 10).
        camera: (B, 3) raw camera parameters.
        part_boxes_vit_px: (B, 3, 4) boxes (x1, y1, x2, y2) in ViT pixels, PART_NAMES order.
        hands: HandStage.
        expression: (B, 10).
        jaw_pose_6d: (B, 6) interleaved 6D.
    """

    task_tokens: Tensor
    feature_map: Tensor
    body_heatmap: Tensor
    body_joints_hm: Tensor
    body_joint_confidence: Tensor
    body_pose_6d: Tensor
    betas: Tensor
    camera: Tensor
    part_boxes_vit_px: Tensor
    hands: HandStage
    expression: Tensor
    jaw_pose_6d: Tensor


class WholeBodyOutput(NamedTuple):
    """Whole-body prediction for a batch of person crops.

    SMPL-X parameters use the ``smplx`` keyword names and feed ``smplx.SMPLXLayer`` after
    axis-angle -> matrix conversion. Hand poses are relative to the SMPL-X ``hands_mean``
    (SMPLer-X's layer uses ``flat_hand_mean=False``); add the mean before a flat-hand layer.
    Pose and camera fields are float32 even under autocast.

    Attributes:
        global_orient: (B, 3) root rotation, axis-angle (radians).
        body_pose: (B, 63) 21 body joints, axis-angle.
        left_hand_pose: (B, 45) 15 left finger joints, axis-angle, hands_mean-relative.
        right_hand_pose: (B, 45) 15 right finger joints, axis-angle, hands_mean-relative.
        jaw_pose: (B, 3) axis-angle.
        betas: (B, 10) shape.
        expression: (B, 10) expression.
        cam_translation: (B, 3) metres, SMPL-X ``transl`` in the crop's virtual camera
            (f = 5000 px at 256 x 192, OpenCV axes); see camera_translation.
        hand_boxes_crop_px: (B, 2, 4) (x1, y1, x2, y2) in 512 x 384 crop pixels, (left, right).
        face_box_crop_px: (B, 4) (x1, y1, x2, y2) in crop pixels.
        body_joints_crop_px: (B, 25, 2) body position joints (x, y) in crop pixels
            (heatmap cell index times crop pixels per cell, as SMPLer-X).
        hand_joints_crop_px: (B, 2, 20, 2) hand position joints (x, y) in crop pixels,
            un-mirrored: box corner + cell index * box size / 16, as SMPLer-X.
        body_joints_hm: (B, 25, 3) body joints (x, y, z) in body heatmap cells.
        body_pose_6d: (B, 22, 6) the interleaved 6D rotations (root first) that gave
            global_orient and body_pose; the body adapter's offset space (paper 3.4).
        hand_features: (B, 2, C, 16, 16) HandRoI maps, left hand mirrored (see HandStage).
        hand_joints_hm: (B, 2, 20, 3) hand joints in the cells of ``hand_features`` (left
            mirrored, matching its features); MCP rows at HAND_MCP_JOINT_INDICES.
        body_joint_confidence: (B, 25) concentration of each body joint's heatmap in [0, 1]
            (heatmap_peak_mass), BODY_POSITION_JOINT_NAMES order.
        hand_joint_confidence: (B, 2, 20) the same for the hand joints, (left, right),
            HAND_POSITION_JOINT_NAMES order.
        person_score: (B,) person_presence_score of the body joint confidences, in [0, 1].
    """

    global_orient: Tensor
    body_pose: Tensor
    left_hand_pose: Tensor
    right_hand_pose: Tensor
    jaw_pose: Tensor
    betas: Tensor
    expression: Tensor
    cam_translation: Tensor
    hand_boxes_crop_px: Tensor
    face_box_crop_px: Tensor
    body_joints_crop_px: Tensor
    hand_joints_crop_px: Tensor
    body_joints_hm: Tensor
    body_pose_6d: Tensor
    hand_features: Tensor
    hand_joints_hm: Tensor
    body_joint_confidence: Tensor
    hand_joint_confidence: Tensor
    person_score: Tensor


PERSON_SCORE_JOINTS = 13
"""How many of the 25 body joints person_presence_score averages: the most concentrated half."""


def person_presence_score(body_joint_confidence: Tensor) -> Tensor:
    """Person-presence score of a crop: mean heatmap concentration of its sharpest 13 joints.

    The whole-body model has no objectness output; what it does produce for every crop is one
    softmax heatmap per body joint. Where it sees a person those are sharp; where nothing
    person-like is in the crop nothing pulls the mass together and they spread out
    (heatmap_peak_mass -> 0 for a uniform heatmap). Averaging the best half asks for a body's
    worth of sharp joints, not one blob, while a person cut off at the hips (a seated
    operator) still scores: SMPLer-X masks joints outside the crop out of its training loss,
    so their heatmaps carry no trained meaning. It is a heuristic of the trained model, not a
    calibrated probability: a detector's score is the better gate (docs/model-notes.md).

    Args:
        body_joint_confidence: (B, 25) heatmap_peak_mass of the body joints.

    Returns:
        (B,) score in [0, 1].
    """
    k = min(PERSON_SCORE_JOINTS, body_joint_confidence.shape[-1])
    return body_joint_confidence.topk(k, dim=-1).values.mean(dim=-1)


# --- Model --------------------------------------------------------------------------------------


def _rot6d_to_axis_angle(rot6d: Tensor) -> Tensor:
    """Interleaved 6D (..., 6) -> axis-angle (..., 3), in float32."""
    return rotmat_to_axis_angle(rot6d_to_rotmat(rot6d.float(), 'interleaved'))


class WholeBodyModel(nn.Module):
    """SMPLer-X-compatible whole-body model; submodule names are the official ones.

    Submodules, in checkpoint order: ``encoder`` (ViT, 31 task tokens), ``body_position_net``,
    ``body_regressor``, ``box_net``, ``hand_roi_net``, ``hand_position_net``,
    ``hand_regressor``, ``face_regressor``. The SMPL-X layer is not part of it (nor of the
    checkpoint); whole_body_mesh runs it on an output.

    Use ``eval()`` for inference: BatchNorm layers must use their running statistics.
    """

    def __init__(self, config: WholeBodyConfig):
        super().__init__()
        self.config = config
        c = config.encoder.embed_dim
        joint_dim = config.heads.joint_feature_dim
        self.encoder = ViT(config.encoder)
        self.body_position_net = PositionNet(c, NUM_BODY_POSITION_JOINTS, BODY_HEATMAP_DHW)
        self.body_regressor = BodyRegressor(c, joint_dim)
        self.box_net = BoxNet(c, config.heads.box_channels)
        self.hand_roi_net = HandRoI(c)
        self.hand_position_net = PositionNet(c, NUM_HAND_POSITION_JOINTS, HAND_HEATMAP_DHW)
        self.hand_regressor = HandRegressor(c, joint_dim)
        self.face_regressor = FaceRegressor(c)

    # Stage 1 ------------------------------------------------------------------------------------
    def encode(self, crops: Tensor) -> ViTOutput:
        """Resize the crops for the ViT and encode them.

        Args:
            crops: (B, 3, 512, 384) RGB person crops as preprocessing says ([0, 1], no mean/std
                for SMPLer-X).

        Returns:
            ViTOutput with task_tokens (B, 31, C) and feature_map (B, C, 16, 12).

        Raises:
            ValueError: wrong crop shape or an integer tensor.
        """
        prep = self.config.preprocessing
        if crops.dim() != 4 or crops.shape[1] != 3 or tuple(crops.shape[2:]) != prep.crop_hw_px:
            raise ValueError(
                f'crops must be (B, 3, {prep.crop_hw_px[0]}, {prep.crop_hw_px[1]}) RGB; got '
                f'{tuple(crops.shape)}. Crop with aspect {prep.crop_aspect_wh} and scale '
                f'{prep.crop_scale} around the person box (WholeBodyPreprocessing).'
            )
        if not crops.is_floating_point():
            raise ValueError(
                f'crops must be floating point in {prep.pixel_range} (divide uint8 images by '
                f'255); got {crops.dtype}'
            )
        images = F.interpolate(crops, size=prep.vit_hw_px, mode=prep.downsample_mode)
        return self.encoder(images)

    # Stage 2 ------------------------------------------------------------------------------------
    def regress_body(
        self, task_tokens: Tensor, feature_map: Tensor
    ) -> tuple[PositionOutput, BodyRegressorOutput]:
        """Body joint heatmaps, then body rotations (6D), betas and camera."""
        positions = self.body_position_net(feature_map)
        body = self.body_regressor(
            task_tokens[:, BODY_POSE_TOKENS],
            task_tokens[:, SHAPE_TOKEN],
            task_tokens[:, CAMERA_TOKEN],
            positions.joints_hm,
        )
        return positions, body

    # Stage 3 ------------------------------------------------------------------------------------
    def predict_part_boxes(self, feature_map: Tensor, body_heatmap: Tensor) -> Tensor:
        """(B, 3, 4) left hand, right hand and face boxes in ViT pixels (detached)."""
        boxes = self.box_net(feature_map, body_heatmap)
        return restore_part_boxes(boxes.centers_hm, boxes.sizes_hm)

    # Stage 4 ------------------------------------------------------------------------------------
    def regress_hands(self, feature_map: Tensor, hand_boxes_vit_px: Tensor) -> HandStage:
        """Both hands in one batch: RoI features, joints, finger rotations.

        Args:
            feature_map: (B, C, 16, 12).
            hand_boxes_vit_px: (B, 2, 4) (left, right) boxes in ViT pixels.

        Returns:
            HandStage (left hand mirrored).
        """
        features = self.hand_roi_net(feature_map, hand_boxes_vit_px)  # (B, 2, C, 16, 16)
        flat = features.flatten(0, 1)
        hand_positions = self.hand_position_net(flat)
        joints_hm = hand_positions.joints_hm
        pose_6d = self.hand_regressor(flat, joints_hm)
        batch, sides = features.shape[:2]
        return HandStage(
            features=features,
            joints_hm=joints_hm.reshape(batch, sides, *joints_hm.shape[1:]),
            pose_6d=pose_6d.reshape(batch, sides, *pose_6d.shape[1:]),
            joint_confidence=hand_positions.confidence.reshape(batch, sides, -1),
        )

    # Stage 5 ------------------------------------------------------------------------------------
    def regress_face(self, task_tokens: Tensor) -> FaceRegressorOutput:
        """Expression (B, 10) and jaw 6D (B, 6) from their task tokens."""
        return self.face_regressor(task_tokens[:, EXPRESSION_TOKEN], task_tokens[:, JAW_TOKEN])

    def run_stages(self, crops: Tensor) -> WholeBodyStages:
        """Stages 1-5 in SMPLer-X's order (docs/model-reference.md, B.8)."""
        encoded = self.encode(crops)
        positions, body = self.regress_body(encoded.task_tokens, encoded.feature_map)
        part_boxes = self.predict_part_boxes(encoded.feature_map, positions.heatmap)
        hand_boxes = take(
            part_boxes, (PART_NAMES.index('left_hand'), PART_NAMES.index('right_hand')), 1
        )
        hands = self.regress_hands(encoded.feature_map, hand_boxes)
        face = self.regress_face(encoded.task_tokens)
        return WholeBodyStages(
            task_tokens=encoded.task_tokens,
            feature_map=encoded.feature_map,
            body_heatmap=positions.heatmap,
            body_joints_hm=positions.joints_hm,
            body_joint_confidence=positions.confidence,
            body_pose_6d=body.body_pose_6d,
            betas=body.betas,
            camera=body.camera,
            part_boxes_vit_px=part_boxes,
            hands=hands,
            expression=face.expression,
            jaw_pose_6d=face.jaw_pose_6d,
        )

    # Stage 6 ------------------------------------------------------------------------------------
    def assemble(self, stages: WholeBodyStages, body_pose_6d: Tensor) -> WholeBodyOutput:
        """Final conversions: rotations to axis-angle, camera, boxes and joints to crop pixels.

        Args:
            stages: run_stages output.
            body_pose_6d: (B, 22, 6) interleaved root + body rotations to convert; pass
                ``stages.body_pose_6d`` (plain SMPLer-X) or it plus the body adapter's offset.

        Returns:
            WholeBodyOutput.
        """
        batch = body_pose_6d.shape[0]
        body_aa = _rot6d_to_axis_angle(body_pose_6d)  # (B, 22, 3)

        # Hands: the network saw the left hand mirrored; mirror its rotations and columns back.
        hands = stages.hands
        is_left = torch.arange(len(HAND_SIDES), device=body_aa.device) == HAND_SIDES.index('left')
        hand_aa = _rot6d_to_axis_angle(hands.pose_6d)  # (B, 2, 15, 3)
        hand_aa = torch.where(is_left[None, :, None, None], mirror_axis_angle(hand_aa), hand_aa)
        last_cell = HAND_HEATMAP_DHW[2] - 1
        hand_xy_hm = hands.joints_hm[..., :2].float()
        unflipped_x = torch.where(
            is_left[None, :, None], last_cell - hand_xy_hm[..., 0], hand_xy_hm[..., 0]
        )
        hand_xy_hm = torch.stack((unflipped_x, hand_xy_hm[..., 1]), dim=-1)

        crop_h, crop_w = self.config.preprocessing.crop_hw_px
        vit_h, vit_w = self.config.preprocessing.vit_hw_px
        crop_per_vit = (crop_w / vit_w, crop_h / vit_h)
        boxes_crop_px = scale_last_dim(stages.part_boxes_vit_px.float(), crop_per_vit * 2)
        hand_boxes = take(
            boxes_crop_px, (PART_NAMES.index('left_hand'), PART_NAMES.index('right_hand')), 1
        )
        hand_box_size = hand_boxes[..., 2:] - hand_boxes[..., :2]  # (B, 2, 2)
        hand_cell_px = divide_last_dim(hand_box_size, (HAND_HEATMAP_DHW[2], HAND_HEATMAP_DHW[1]))
        hand_joints_crop_px = hand_boxes[:, :, None, :2] + hand_xy_hm * hand_cell_px[:, :, None]
        # Integer ratios (exact in float32, as the division of the constant tensors was).
        body_cell_px = (crop_w / BODY_HEATMAP_DHW[2], crop_h / BODY_HEATMAP_DHW[1])
        body_joints_crop_px = scale_last_dim(stages.body_joints_hm[..., :2].float(), body_cell_px)

        return WholeBodyOutput(
            global_orient=body_aa[:, 0],
            body_pose=body_aa[:, 1:].reshape(batch, -1),
            left_hand_pose=hand_aa[:, HAND_SIDES.index('left')].reshape(batch, -1),
            right_hand_pose=hand_aa[:, HAND_SIDES.index('right')].reshape(batch, -1),
            jaw_pose=_rot6d_to_axis_angle(stages.jaw_pose_6d),
            betas=stages.betas.float(),
            expression=stages.expression.float(),
            cam_translation=camera_translation(stages.camera.float()),
            hand_boxes_crop_px=hand_boxes,
            face_box_crop_px=boxes_crop_px[:, PART_NAMES.index('face')],
            body_joints_crop_px=body_joints_crop_px,
            hand_joints_crop_px=hand_joints_crop_px,
            body_joints_hm=stages.body_joints_hm,
            body_pose_6d=body_pose_6d,
            hand_features=hands.features,
            hand_joints_hm=hands.joints_hm,
            body_joint_confidence=stages.body_joint_confidence,
            hand_joint_confidence=hands.joint_confidence,
            person_score=person_presence_score(stages.body_joint_confidence),
        )

    def forward(self, crops: Tensor) -> WholeBodyOutput:
        """Predict SMPL-X parameters for person crops.

        Args:
            crops: (B, 3, 512, 384) RGB in [0, 1] (see WholeBodyPreprocessing).

        Returns:
            WholeBodyOutput.
        """
        stages = self.run_stages(crops)
        return self.assemble(stages, stages.body_pose_6d)


def build_whole_body(name: str) -> WholeBodyModel:
    """Build a registered variant with fresh weights (load a checkpoint next).

    Build under ``with torch.device('meta'):`` to inspect sizes without memory.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    return WholeBodyModel(whole_body_config(name))


def whole_body_mesh(output: WholeBodyOutput, body_model: SMPLXBodyModel) -> SMPLXOutput:
    """SMPL-X mesh and joints of a whole-body prediction, in the crop's virtual camera.

    SMPLer-X's ``mesh_cam = vertices + cam_trans`` with its layer's ``flat_hand_mean=False``
    (docs/model-reference.md, B.5 and B.8 step 10):

    1. Add the model's ``hands_mean`` to both mean-relative hand poses.
    2. Convert every axis-angle rotation to a matrix.
    3. Run the SMPL-X layer with ``transl = cam_translation``; eyes stay at rest.

    Args:
        output: WholeBodyModel output.
        body_model: the SMPL-X layer (hmr_ros.body_models.smplx_layers.SMPLXBodyModel),
            neutral, 10 betas and 10 expression coefficients, built from the model file.

    Returns:
        SMPLXOutput with vertices (B, 10475, 3) and joints (B, J, 3), metres, camera optical
        frame of virtual_crop_intrinsics.
    """
    batch = output.global_orient.shape[0]

    def matrices(axis_angle: Tensor, joints: int) -> Tensor:
        return axis_angle_to_rotmat(axis_angle.reshape(batch, joints, 3))

    left = body_model.add_hands_mean(output.left_hand_pose, 'left')
    right = body_model.add_hands_mean(output.right_hand_pose, 'right')
    return body_model(
        global_orient=matrices(output.global_orient, 1),
        body_pose=matrices(output.body_pose, NUM_BODY_POSE_JOINTS),
        left_hand_pose=matrices(left, NUM_HAND_POSE_JOINTS),
        right_hand_pose=matrices(right, NUM_HAND_POSE_JOINTS),
        jaw_pose=matrices(output.jaw_pose, 1),
        betas=output.betas,
        expression=output.expression,
        transl=output.cam_translation,
    )
