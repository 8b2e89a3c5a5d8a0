"""SMPLer-X-compatible heads: joint positions, body and hand rotations, boxes, hand RoIs, face.

Cai et al., "SMPLer-X: Scaling Up Expressive Human Pose and Shape Estimation" (NeurIPS 2023).
Shapes, constants and the module tree follow docs/model-reference.md, B.4 and B.7. The
attribute names (``conv``, ``body_conv``, ``root_pose_out``, ``deconv``, ``bbox_center``,
``lhand_size``, ``hand_conv``, ``hand_pose_out``, ``expr_out``, ``jaw_pose_out``) and the
``nn.Sequential`` indices are the official ones, so official checkpoints load strictly; class
names are ours.

Coordinate frames used in names:

- ``_hm``: heatmap cells, x to the right, y down, z the depth bin; a cell's value sits at its
  integer index (body heatmap 16 x 16 x 12 = D x H x W over the 16 x 12 feature grid, hand
  heatmap 16 x 16 x 16 over a 16 x 16 hand RoI).
- ``_vit_px``: pixels of the 256 x 192 (H x W) image the ViT sees.

The 6D rotations here are SMPLer-X's interleaved layout (hmr_ros.geometry.rotations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmr_ros.geometry.constants import constant_like, scale_last_dim
from hmr_ros.models.components.roi_align import roi_align, sample_at_points

__all__ = [
    'BODY_HEATMAP_DHW',
    'BODY_POSITION_JOINT_NAMES',
    'BoxNet',
    'BoxNetOutput',
    'BodyRegressor',
    'BodyRegressorOutput',
    'FaceRegressor',
    'FaceRegressorOutput',
    'HAND_HEATMAP_DHW',
    'HAND_MCP_JOINT_INDICES',
    'HAND_POSITION_JOINT_NAMES',
    'HAND_SIDES',
    'HandRegressor',
    'HandRoI',
    'PART_BOX_ASPECT_WH',
    'PART_BOX_EXTENSION',
    'PART_NAMES',
    'PositionNet',
    'PositionOutput',
    'SMPLXHeadConfig',
    'heatmap_peak_mass',
    'restore_part_boxes',
    'soft_argmax_2d',
    'soft_argmax_3d',
]

# --- Sizes (docs/model-reference.md, B.1 and B.4) -------------------------------------------

ROT6D_DIM = 6
NUM_BETAS = 10
NUM_EXPRESSION = 10
NUM_BODY_POSE_JOINTS = 21
"""SMPL-X ``body_pose`` joints (pelvis excluded)."""
NUM_BODY_ROTATIONS = 1 + NUM_BODY_POSE_JOINTS
"""Root (``global_orient``) plus the body joints: the 22 rotations of the body regressor."""
NUM_HAND_POSE_JOINTS = 15
"""SMPL-X finger joints per hand, native order index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3."""
NUM_CAMERA_PARAMS = 3
"""(t_x, t_y, depth logit); see hmr_ros.models.whole_body.camera_translation."""

BODY_POSITION_JOINT_NAMES: tuple[str, ...] = (
    'pelvis',
    'left_hip',
    'right_hip',
    'left_knee',
    'right_knee',
    'left_ankle',
    'right_ankle',
    'neck',
    'left_shoulder',
    'right_shoulder',
    'left_elbow',
    'right_elbow',
    'left_wrist',
    'right_wrist',
    'left_big_toe',
    'left_small_toe',
    'left_heel',
    'right_big_toe',
    'right_small_toe',
    'right_heel',
    'left_ear',
    'right_ear',
    'left_eye',
    'right_eye',
    'nose',
)
"""The 25 joints of the body heatmaps, in SMPLer-X's order (one body-pose task token each)."""

_FINGERS = ('thumb', 'index', 'middle', 'ring', 'pinky')
_JOINTS_PER_FINGER = 4
HAND_POSITION_JOINT_NAMES: tuple[str, ...] = tuple(
    f'{finger}{i}' for finger in _FINGERS for i in range(1, _JOINTS_PER_FINGER + 1)
)
"""The 20 joints of each hand heatmap (no wrist): thumb1..thumb4, index1..index4, ... pinky4;
1 is the finger root (the MCP joint for index to pinky, CMC for the thumb), 4 the tip."""

HAND_MCP_JOINT_INDICES: tuple[int, ...] = tuple(
    HAND_POSITION_JOINT_NAMES.index(name) for name in ('index1', 'middle1', 'ring1', 'pinky1')
)
"""Positions of the four MCP joints in HAND_POSITION_JOINT_NAMES (paper 3.4's F^J rows)."""

NUM_BODY_POSITION_JOINTS = len(BODY_POSITION_JOINT_NAMES)
NUM_HAND_POSITION_JOINTS = len(HAND_POSITION_JOINT_NAMES)

BODY_HEATMAP_DHW = (16, 16, 12)
"""Body heatmap (depth, height, width); H x W is the ViT's 16 x 12 feature grid."""
HAND_HEATMAP_DHW = (16, 16, 16)
"""Hand heatmap (depth, height, width); H x W is the HandRoI output size."""
VIT_INPUT_HW_PX = (256, 192)
"""Image size the ViT sees; the ``_vit_px`` frame."""
VIT_PX_PER_HM_CELL = (
    VIT_INPUT_HW_PX[1] / BODY_HEATMAP_DHW[2],
    VIT_INPUT_HW_PX[0] / BODY_HEATMAP_DHW[1],
)
"""(x, y) ViT pixels per body heatmap cell: (16, 16)."""

BOX_NET_DECONV_LAYERS = 3
BOX_NET_UPSCALE = 2**BOX_NET_DECONV_LAYERS
"""BoxNet's three stride-2 deconvolutions: its maps are 8x the 16 x 12 grid (128 x 96)."""
HAND_ROI_UPSCALE = 4
"""HandRoI's two stride-2 deconvolutions: 64 x 48 features to crop hands from (``upscale``)."""

PART_NAMES = ('left_hand', 'right_hand', 'face')
"""Order of BoxNet's centre heatmaps and of the part boxes."""
HAND_SIDES = ('left', 'right')
"""Order of the side axis of every batched hand tensor; the left hand is the flipped one."""
PART_BOX_ASPECT_WH = (1.0, 1.0, 1.0)
"""Box aspect (width / height) per part: the hand crop 256 x 256, the face crop 192 x 192."""
PART_BOX_EXTENSION = (2.0, 2.0, 1.5)
"""Factor applied to both box sides after the aspect fix, per part (SMPLer-X restore_bbox)."""


@dataclass(frozen=True)
class SMPLXHeadConfig:
    """Head widths that do not follow from the encoder width C.

    The official SMPLer-X checkpoints use the defaults; the tiny test variant shrinks them so
    CPU tests stay fast (the module tree and key names do not change).

    Attributes:
        box_channels: BoxNet deconvolution width (official 256).
        joint_feature_dim: per-joint feature width of the body and hand regressors (official
            512; the regressors read joint_feature_dim + 3 values per joint).
    """

    box_channels: int = 256
    joint_feature_dim: int = 512

    def __post_init__(self) -> None:
        for name in ('box_channels', 'joint_feature_dim'):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f'SMPLXHeadConfig.{name} must be positive, got {getattr(self, name)}'
                )


# --- Layer stacks with the official Sequential indices -----------------------------------------


def _linear_stack(dims: tuple[int, ...]) -> nn.Sequential:
    """Linear layers with ReLU between them and none after the last (keys .0, .2, ...)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv1x1_stack(dims: tuple[int, ...], bn_relu_last: bool) -> nn.Sequential:
    """1x1 convolutions, each followed by BatchNorm and ReLU except the last unless asked."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Conv2d(d_in, d_out, kernel_size=1))
        if i < len(dims) - 2 or bn_relu_last:
            layers += [nn.BatchNorm2d(d_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _deconv_stack(dims: tuple[int, ...]) -> nn.Sequential:
    """Stride-2 4x4 transposed convolutions (no bias), each followed by BatchNorm and ReLU.

    The last one included; each doubles H and W (keys .0 deconv, .1 BN, .2 ReLU, .3 ...).
    """
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        layers += [
            nn.ConvTranspose2d(d_in, d_out, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(d_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


# --- Soft-argmax --------------------------------------------------------------------------------


def soft_argmax_3d(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Expected cell of 3D heatmaps after a softmax over all cells.

    Computed in float32 (softmax of fp16 logits loses the small cells).

    Args:
        logits: (N, J, D, H, W) unnormalised heatmaps.

    Returns:
        probabilities (N, J, D, H, W) summing to 1 per joint, and coordinates (N, J, 3) as
        (x, y, z) in cells: x in [0, W - 1], y in [0, H - 1], z in [0, D - 1].
    """
    n, j, d, h, w = logits.shape
    probs = torch.softmax(logits.float().reshape(n, j, d * h * w), dim=-1).reshape(n, j, d, h, w)
    x = (probs.sum(dim=(2, 3)) * torch.arange(w, device=probs.device)).sum(-1)
    y = (probs.sum(dim=(2, 4)) * torch.arange(h, device=probs.device)).sum(-1)
    z = (probs.sum(dim=(3, 4)) * torch.arange(d, device=probs.device)).sum(-1)
    return probs, torch.stack((x, y, z), dim=-1)


def soft_argmax_2d(logits: Tensor) -> Tensor:
    """Expected pixel (x, y) of 2D heatmaps (N, K, H, W) -> (N, K, 2), in float32."""
    n, k, h, w = logits.shape
    probs = torch.softmax(logits.float().reshape(n, k, h * w), dim=-1).reshape(n, k, h, w)
    x = (probs.sum(dim=2) * torch.arange(w, device=probs.device)).sum(-1)
    y = (probs.sum(dim=3) * torch.arange(h, device=probs.device)).sum(-1)
    return torch.stack((x, y), dim=-1)


PEAK_WINDOW_CELLS = 3
"""Side of the square window of image-plane cells whose probability mass heatmap_peak_mass
reads: 3 x 3 cells (48 x 48 ViT pixels on the body grid, 3/16 of a hand box)."""


def heatmap_peak_mass(heatmap: Tensor, window: int = PEAK_WINDOW_CELLS) -> Tensor:
    """How concentrated each softmax heatmap is in the image plane, in [0, 1].

    The heatmap is marginalised over depth to an H x W image-plane distribution; its peak mass
    m is the largest probability held by any ``window`` x ``window`` block of cells. A uniform
    heatmap gives m_u = window^2 / (H W) (9/192 on the 16 x 12 body grid, 9/256 on a 16 x 16
    hand), a heatmap whose mass sits in one block gives 1, two equal far-apart peaks give 1/2.
    The result rescales that range: ``clamp((m - m_u) / (1 - m_u), 0, 1)``, so uniform -> 0 and
    one peak -> 1. It only reads the tensor (no host sync, static shapes).

    Args:
        heatmap: (N, J, D, H, W) probabilities summing to 1 per joint (PositionNet's).
        window: odd block side in cells.

    Returns:
        (N, J) float32 concentration scores; NaN heatmaps give 0.
    """
    n, j, _, h, w = heatmap.shape
    image_plane = heatmap.float().sum(dim=2).reshape(n * j, 1, h, w)
    block_mass = F.avg_pool2d(
        image_plane, window, stride=1, padding=window // 2, count_include_pad=True
    ) * float(window * window)  # sums over each block (zero padding at the borders)
    peak = block_mass.amax(dim=(-2, -1)).reshape(n, j)
    uniform = window * window / (h * w)
    score = ((peak - uniform) / (1.0 - uniform)).clamp(0.0, 1.0)
    return torch.nan_to_num(score, nan=0.0)


# --- Heads --------------------------------------------------------------------------------------


class PositionOutput(NamedTuple):
    """Joint positions from 3D heatmaps.

    Attributes:
        heatmap: (N, J, D, H, W) softmax-normalised heatmaps, float32.
        joints_hm: (N, J, 3) expected (x, y, z) heatmap cells, float32.
        confidence: (N, J) heatmap_peak_mass of each joint's heatmap, in [0, 1] (ours; the
            official code computes none).
    """

    heatmap: Tensor
    joints_hm: Tensor
    confidence: Tensor


class PositionNet(nn.Module):
    """Joint heatmaps from a feature map: a 1x1 conv to J x D channels, then 3D soft-argmax.

    Official ``PositionNet`` (``body_position_net``: 25 joints on the 16 x 12 grid;
    ``hand_position_net``: 20 joints on the 16 x 16 hand RoI).
    """

    def __init__(self, in_channels: int, num_joints: int, heatmap_dhw: tuple[int, int, int]):
        super().__init__()
        self.num_joints = num_joints
        self.heatmap_dhw = heatmap_dhw
        self.conv = _conv1x1_stack((in_channels, num_joints * heatmap_dhw[0]), bn_relu_last=False)

    def forward(self, features: Tensor) -> PositionOutput:
        """Predict joint heatmaps.

        Args:
            features: (N, C, H, W) with (H, W) = heatmap_dhw[1:].

        Returns:
            PositionOutput with heatmap (N, J, D, H, W), joints_hm (N, J, 3) and
            confidence (N, J).
        """
        d, h, w = self.heatmap_dhw
        logits = self.conv(features).reshape(features.shape[0], self.num_joints, d, h, w)
        heatmap, joints_hm = soft_argmax_3d(logits)
        return PositionOutput(
            heatmap=heatmap, joints_hm=joints_hm, confidence=heatmap_peak_mass(heatmap)
        )


class BodyRegressorOutput(NamedTuple):
    """Body regressor outputs.

    Attributes:
        body_pose_6d: (B, 22, 6) interleaved 6D rotations, root (``global_orient``) first, then
            the 21 ``body_pose`` joints in SMPL-X order; the space the body adapter offsets.
        betas: (B, 10) SMPL-X shape coefficients.
        camera: (B, 3) raw camera parameters (t_x m, t_y m, depth logit).
    """

    body_pose_6d: Tensor
    betas: Tensor
    camera: Tensor


class BodyRegressor(nn.Module):
    """Root and body rotations, shape and camera from task tokens and body joints.

    Official ``BodyRotationNet`` (key prefix ``body_regressor``, legacy ``body_rotation_net``):
    each body-pose token is projected to ``joint_feature_dim`` values, its joint's detached
    heatmap coordinates are appended, and two linear layers read the flattened result.
    """

    def __init__(self, embed_dim: int, joint_feature_dim: int = 512):
        super().__init__()
        flat_dim = NUM_BODY_POSITION_JOINTS * (joint_feature_dim + 3)  # 25 * 515 = 12875
        self.body_conv = _linear_stack((embed_dim, joint_feature_dim))
        self.root_pose_out = _linear_stack((flat_dim, ROT6D_DIM))
        self.body_pose_out = _linear_stack((flat_dim, NUM_BODY_POSE_JOINTS * ROT6D_DIM))
        self.shape_out = _linear_stack((embed_dim, NUM_BETAS))
        self.cam_out = _linear_stack((embed_dim, NUM_CAMERA_PARAMS))

    def forward(
        self, pose_tokens: Tensor, shape_token: Tensor, camera_token: Tensor, joints_hm: Tensor
    ) -> BodyRegressorOutput:
        """Regress the body.

        Args:
            pose_tokens: (B, 25, C) body-pose task tokens.
            shape_token: (B, C).
            camera_token: (B, C).
            joints_hm: (B, 25, 3) body joints in heatmap cells (detached here, as SMPLer-X).

        Returns:
            BodyRegressorOutput.
        """
        betas = self.shape_out(shape_token)
        camera = self.cam_out(camera_token)
        body_pose_6d = self.pose_from_joint_features(self.body_conv(pose_tokens), joints_hm)
        return BodyRegressorOutput(body_pose_6d=body_pose_6d, betas=betas, camera=camera)

    def pose_from_joint_features(self, joint_features: Tensor, joints_hm: Tensor) -> Tensor:
        """Root and body rotations from per-joint features (the regressor's second half).

        Args:
            joint_features: (B, 25, joint_feature_dim) ``body_conv`` of the body-pose tokens
                (the moderator ablation, models/ablations/body.py, passes fused ones).
            joints_hm: (B, 25, 3) body joints in heatmap cells (detached here).

        Returns:
            (B, 22, 6) interleaved 6D, root first.
        """
        batch = joint_features.shape[0]
        coords = joints_hm.detach().to(joint_features.dtype)
        flat = torch.cat((joint_features, coords), dim=2).reshape(batch, -1)
        root = self.root_pose_out(flat).reshape(batch, 1, ROT6D_DIM)
        body = self.body_pose_out(flat).reshape(batch, NUM_BODY_POSE_JOINTS, ROT6D_DIM)
        return torch.cat((root, body), dim=1)


class BoxNetOutput(NamedTuple):
    """Part box centres and sizes, parts in PART_NAMES order (left hand, right hand, face).

    Attributes:
        centers_hm: (B, 3, 2) box centres (x, y) in body heatmap cells (16 x 12 grid).
        sizes_hm: (B, 3, 2) raw box sizes (w, h) in the same units (may be negative before
            restore_part_boxes, as in SMPLer-X).
    """

    centers_hm: Tensor
    sizes_hm: Tensor


class BoxNet(nn.Module):
    """Hand and face boxes from the feature map and the detached body heatmaps.

    Official ``BoxNet``: three deconvolutions to 8x resolution, one centre heatmap per part
    with 2D soft-argmax, then a per-part MLP reads the size from the feature at the (detached)
    centre.
    """

    def __init__(self, embed_dim: int, box_channels: int = 256):
        super().__init__()
        heatmap_channels = NUM_BODY_POSITION_JOINTS * BODY_HEATMAP_DHW[0]  # 400
        dims = (embed_dim + heatmap_channels,) + (box_channels,) * BOX_NET_DECONV_LAYERS
        self.deconv = _deconv_stack(dims)
        self.bbox_center = _conv1x1_stack((box_channels, len(PART_NAMES)), bn_relu_last=False)
        self.lhand_size = _linear_stack((box_channels, box_channels, 2))
        self.rhand_size = _linear_stack((box_channels, box_channels, 2))
        self.face_size = _linear_stack((box_channels, box_channels, 2))

    def forward(self, features: Tensor, body_heatmap: Tensor) -> BoxNetOutput:
        """Predict part boxes.

        Args:
            features: (B, C, 16, 12) ViT feature map.
            body_heatmap: (B, 25, 16, 16, 12) softmax-normalised body heatmaps (detached here).

        Returns:
            BoxNetOutput.
        """
        batch, _, height, width = features.shape
        heatmap = body_heatmap.detach().reshape(batch, -1, height, width).to(features.dtype)
        box_features = self.deconv(torch.cat((features, heatmap), dim=1))  # (B, 256, 128, 96)
        centers_px = soft_argmax_2d(self.bbox_center(box_features))  # (B, 3, 2) in 128 x 96
        at_centers = sample_at_points(box_features, centers_px.detach())  # (B, 3, 256)
        size_heads = (self.lhand_size, self.rhand_size, self.face_size)
        sizes = torch.stack(
            [head(at_centers[:, i]) for i, head in enumerate(size_heads)], dim=1
        ).float()
        return BoxNetOutput(centers_hm=centers_px / BOX_NET_UPSCALE, sizes_hm=sizes)


def restore_part_boxes(
    centers_hm: Tensor,
    sizes_hm: Tensor,
    aspect_wh: tuple[float, ...] = PART_BOX_ASPECT_WH,
    extension: tuple[float, ...] = PART_BOX_EXTENSION,
) -> Tensor:
    """Part boxes in ViT pixels from BoxNet outputs (SMPLer-X ``restore_bbox``).

    Steps, per part p:

    1. Box = centre -/+ size / 2 in heatmap cells, scaled to ViT pixels (16 px per cell).
    2. The short side grows to the aspect ratio ``aspect_wh[p]``: if w > a h, h = w / a;
       if w < a h, w = a h (comparisons on signed sizes, as the original).
    3. Both sides are multiplied by ``extension[p]`` around the centre.

    Args:
        centers_hm: (B, P, 2) centres (x, y) in body heatmap cells.
        sizes_hm: (B, P, 2) sizes (w, h) in body heatmap cells.
        aspect_wh: P target aspect ratios (width / height).
        extension: P side factors.

    Returns:
        (B, P, 4) boxes (x1, y1, x2, y2) in ViT pixels (256 x 192 frame), detached.
    """
    centers_hm, sizes_hm = centers_hm.detach().float(), sizes_hm.detach().float()
    # Corners first, then width/height/centre, in the original order of operations.
    top_left = scale_last_dim(centers_hm - sizes_hm / 2, VIT_PX_PER_HM_CELL)
    bottom_right = scale_last_dim(centers_hm + sizes_hm / 2, VIT_PX_PER_HM_CELL)
    size = bottom_right - top_left
    center = top_left + size / 2
    w, h = size.unbind(-1)
    aspect = constant_like(aspect_wh, centers_hm)
    h_fixed = torch.where(w > aspect * h, w / aspect, h)
    w_fixed = torch.where(w < aspect * h, h * aspect, w)
    size = torch.stack((w_fixed, h_fixed), dim=-1) * constant_like(extension, centers_hm)[:, None]
    return torch.cat((center - size / 2, center - size / 2 + size), dim=-1)


class HandRoI(nn.Module):
    """Hand feature maps cropped from the upsampled body features, left hands flipped.

    Official ``HandRoI`` with ``upscale=4``: two deconvolutions C -> C/2 -> C/4 (to 64 x 48),
    RoIAlign of each hand box into 16 x 16 bins (mmcv, aligned=False, adaptive sampling), the
    left-hand crops flipped along W so both hands look like right hands, and a 1x1 conv back to
    C channels. Both sides run as one batch.

    Attributes:
        max_adaptive_grid: None (default) samples exactly as mmcv for any box, with static
            shapes (see roi_align); an integer caps the points per bin instead (cheaper; 4 is
            exact for any box up to 64 feature pixels, the full 256-pixel crop height).
    """

    def __init__(self, embed_dim: int, max_adaptive_grid: int | None = None):
        super().__init__()
        self.max_adaptive_grid = max_adaptive_grid
        if embed_dim % HAND_ROI_UPSCALE:
            raise ValueError(
                f'HandRoI needs an embed_dim divisible by {HAND_ROI_UPSCALE}; got {embed_dim}'
            )
        dims = tuple(embed_dim // 2**i for i in range(3))  # C, C/2, C/4
        self.deconv = _deconv_stack(dims)
        self.conv = _conv1x1_stack((dims[-1], embed_dim), bn_relu_last=False)

    def forward(self, features: Tensor, hand_boxes_vit_px: Tensor) -> Tensor:
        """Crop hand features.

        Args:
            features: (B, C, 16, 12) ViT feature map.
            hand_boxes_vit_px: (B, 2, 4) boxes (x1, y1, x2, y2) in ViT pixels, sides in
                HAND_SIDES order (left, right).

        Returns:
            (B, 2, C, 16, 16) hand feature maps; [:, 0] is the left hand mirrored along W
            (column j holds the left hand's column 15 - j), [:, 1] the right hand as cropped.
        """
        batch, num_sides = hand_boxes_vit_px.shape[:2]
        upsampled = self.deconv(features)  # (B, C/4, 64, 48)
        scale = (
            upsampled.shape[-1] / VIT_INPUT_HW_PX[1],
            upsampled.shape[-2] / VIT_INPUT_HW_PX[0],
        )  # (x, y) ViT pixels -> feature pixels: 48/192 = 64/256 = 0.25
        boxes = scale_last_dim(hand_boxes_vit_px, scale * 2).reshape(batch * num_sides, 4)
        batch_index = torch.arange(batch, device=boxes.device).repeat_interleave(num_sides)
        rois = torch.cat((batch_index[:, None].to(boxes.dtype), boxes), dim=1)
        out_hw = HAND_HEATMAP_DHW[1:]
        crops = roi_align(
            upsampled,
            rois,
            out_hw,
            spatial_scale=1.0,
            sampling_ratio=0,
            max_adaptive_grid=self.max_adaptive_grid,
        )
        crops = crops.reshape(batch, num_sides, *crops.shape[1:])
        is_left = torch.arange(num_sides, device=crops.device) == HAND_SIDES.index('left')
        crops = torch.where(is_left[None, :, None, None, None], crops.flip(-1), crops)
        hand_features = self.conv(crops.flatten(0, 1))
        return hand_features.reshape(batch, num_sides, *hand_features.shape[1:])


class HandRegressor(nn.Module):
    """Finger rotations of right-looking hands from hand feature maps and hand joints.

    Official ``HandRotationNet`` (key prefix ``hand_regressor``, legacy ``hand_rotation_net``):
    a 1x1 conv + BN + ReLU to ``joint_feature_dim`` channels, bilinear samples at the 20
    joints, the detached joint coordinates appended, one linear layer on the flattened result.
    """

    def __init__(self, embed_dim: int, joint_feature_dim: int = 512):
        super().__init__()
        flat_dim = NUM_HAND_POSITION_JOINTS * (joint_feature_dim + 3)  # 20 * 515 = 10300
        self.hand_conv = _conv1x1_stack((embed_dim, joint_feature_dim), bn_relu_last=True)
        self.hand_pose_out = _linear_stack((flat_dim, NUM_HAND_POSE_JOINTS * ROT6D_DIM))

    def forward(self, hand_features: Tensor, joints_hm: Tensor) -> Tensor:
        """Regress finger rotations.

        Args:
            hand_features: (N, C, 16, 16) HandRoI features.
            joints_hm: (N, 20, 3) hand joints in hand heatmap cells (detached here).

        Returns:
            (N, 15, 6) interleaved 6D finger rotations in the frame of the (flipped) crop.
        """
        batch = hand_features.shape[0]
        joints_hm = joints_hm.detach()
        features = self.hand_conv(hand_features)
        at_joints = sample_at_points(features, joints_hm[..., :2])
        flat = torch.cat((at_joints, joints_hm.to(at_joints.dtype)), dim=2).reshape(batch, -1)
        return self.hand_pose_out(flat).reshape(batch, NUM_HAND_POSE_JOINTS, ROT6D_DIM)


class FaceRegressorOutput(NamedTuple):
    """Face regressor outputs.

    Attributes:
        expression: (B, 10) SMPL-X expression coefficients.
        jaw_pose_6d: (B, 6) interleaved 6D jaw rotation.
    """

    expression: Tensor
    jaw_pose_6d: Tensor


class FaceRegressor(nn.Module):
    """Expression and jaw rotation from two task tokens (official ``FaceRegressor``)."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.expr_out = _linear_stack((embed_dim, NUM_EXPRESSION))
        self.jaw_pose_out = _linear_stack((embed_dim, ROT6D_DIM))

    def forward(self, expression_token: Tensor, jaw_token: Tensor) -> FaceRegressorOutput:
        """Regress the face from tokens (B, C) each."""
        return FaceRegressorOutput(
            expression=self.expr_out(expression_token), jaw_pose_6d=self.jaw_pose_out(jaw_token)
        )
