"""HaMeR-compatible hand expert: ViT-H backbone + MANO transformer-decoder head.

Pavlakos et al., "Reconstructing Hands in 3D with Transformers" (CVPR 2024); the hand path of
HMR-Adapter (paper section 3.3) runs this model, with the hand adapter wrapping its decoder
layers. Conventions (docs/model-reference.md, A.7, A.8, PART D):

- Input: square 256x256 crops, RGB normalised with ImageNet mean/std (``normalize_hand_crops``
  on 0-255 values); only columns 32:224 reach the ViT, a 256x192 image.
- The network always sees a right hand. Left hands are flipped before cropping
  (``geometry.crops.crop_images(..., flip=...)``); ``mirror_left_hands`` turns the outputs back
  into left-hand parameters: rotations mirrored (x, -y, -z) and tx negated.
- Output rotations are matrices in the flat-hand MANO convention (no hands_mean), camera
  (s, tx, ty) for the 256x256 square crop, and its translation in the virtual crop camera
  (f = 5000 px). Use geometry.cameras.cam_crop_to_full for the real camera.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from hmr_ros.geometry.cameras import (
    HAMER_CROP_SIZE_PX,
    HAMER_FOCAL_LENGTH_PX,
    intrinsics_matrix,
    project_points,
    weak_perspective_to_translation,
)
from hmr_ros.geometry.constants import scale_last_dim
from hmr_ros.geometry.rotations import mirror_rotmat
from hmr_ros.models.backbones.vit import ViT, ViTConfig, vit_huge, vit_tiny
from hmr_ros.models.heads.mano_head import MANOHeadConfig, MANOHeadOutput, MANOTransformerHead

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
"""HaMeR's MODEL.IMAGE_MEAN, on [0, 1] RGB (multiply by 255 for 0-255 input)."""

IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
"""HaMeR's MODEL.IMAGE_STD, on [0, 1] RGB."""

PIXEL_RANGE = 255.0
"""HaMeR normalises 0-255 pixel values with 255 * mean and 255 * std."""

# Python numbers with the float32 values of mean * 255 and std * 255 (no tensor is built from
# Python data inside a forward; the same float32 operations as broadcasting a constant tensor).
_MEAN_0_255 = tuple((torch.tensor(IMAGENET_MEAN_RGB) * PIXEL_RANGE).tolist())
_STD_0_255 = tuple((torch.tensor(IMAGENET_STD_RGB) * PIXEL_RANGE).tolist())


@dataclass(frozen=True)
class HandExpertConfig:
    """Hand expert sizes and crop conventions.

    Attributes:
        backbone: ViT config; img_size (H, W) with H = crop_size_px and W <= crop_size_px (the
            central W columns of the square crop are used), no task tokens.
        head: MANO head config; context_dim must equal the backbone's embed_dim.
        crop_size_px: side S of the square input crop (256).
        focal_length_px: virtual focal length of the crop camera (5000).
    """

    backbone: ViTConfig
    head: MANOHeadConfig
    crop_size_px: int = HAMER_CROP_SIZE_PX
    focal_length_px: float = HAMER_FOCAL_LENGTH_PX

    def __post_init__(self) -> None:
        if self.head.context_dim != self.backbone.embed_dim:
            raise ValueError(
                f'head.context_dim ({self.head.context_dim}) must equal backbone.embed_dim '
                f'({self.backbone.embed_dim})'
            )
        if self.backbone.num_task_tokens:
            raise ValueError('the hand expert backbone has no task tokens; set num_task_tokens=0')
        height, width = self.backbone.img_size
        margin = self.crop_size_px - width
        if height != self.crop_size_px or margin < 0 or margin % 2:
            raise ValueError(
                f'backbone.img_size {self.backbone.img_size} must be (crop_size_px, W) with '
                f'crop_size_px - W even and >= 0 (crop_size_px = {self.crop_size_px})'
            )
        if self.focal_length_px <= 0:
            raise ValueError(f'focal_length_px must be positive, got {self.focal_length_px}')

    @property
    def crop_columns(self) -> tuple[int, int]:
        """Columns [start, stop) of the square crop fed to the backbone ((32, 224) for HaMeR)."""
        margin = (self.crop_size_px - self.backbone.img_size[1]) // 2
        return margin, self.crop_size_px - margin


def hamer() -> HandExpertConfig:
    """Released HaMeR: ViT-H (C 1280, 32 blocks) + 6-layer decoder of width 1024."""
    return HandExpertConfig(backbone=vit_huge(), head=MANOHeadConfig())


def hamer_tiny() -> HandExpertConfig:
    """Test-only size with HaMeR's structure and input size (C 32, 2 + 2 layers)."""
    return HandExpertConfig(
        backbone=vit_tiny(),
        head=MANOHeadConfig(dim=32, depth=2, heads=2, dim_head=16, mlp_dim=32, context_dim=32),
    )


HAND_EXPERT_VARIANTS: dict[str, Callable[[], HandExpertConfig]] = {
    'hamer': hamer,
    'hamer_tiny': hamer_tiny,
}
"""Named hand-expert configurations."""


def hand_expert_config(name: str) -> HandExpertConfig:
    """Config of a named variant.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in HAND_EXPERT_VARIANTS:
        raise ValueError(
            f'unknown hand expert variant {name!r}; known: {sorted(HAND_EXPERT_VARIANTS)}'
        )
    return HAND_EXPERT_VARIANTS[name]()


class HandExpertOutput(NamedTuple):
    """Hand expert outputs for a batch of (right-hand-looking) crops.

    Attributes:
        global_orient: (B, 1, 3, 3) hand root rotation, crop camera frame (OpenCV axes).
        hand_pose: (B, 15, 3, 3) finger rotations, MANO joint order, flat-hand convention.
        betas: (B, 10) MANO shape.
        cam: (B, 3) weak-perspective camera (s, tx, ty) of the square crop.
        cam_translation_crop: (B, 3) (tx, ty, 2 f / (S s)) metres, virtual crop camera.
        pose_6d: (B, 16, 6) global orientation + finger rotations, contiguous 6D layout.
        token: (B, dim) decoder output token.
    """

    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    cam_translation_crop: torch.Tensor
    pose_6d: torch.Tensor
    token: torch.Tensor


class HandMeshOutput(NamedTuple):
    """MANO mesh of hand-expert outputs.

    Attributes:
        vertices: (B, 778, 3) metres, MANO model frame (not root-centred, no translation).
        joints: (B, 21, 3) OpenPose order, MANO model frame.
        keypoints_crop_px: (B, 21, 2) joints + cam_translation_crop projected with the virtual
            crop camera (f, principal point (S/2, S/2)), pixels of the square crop.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    keypoints_crop_px: torch.Tensor


def normalize_hand_crops(crops_rgb: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of 0-255 RGB crops, as HaMeR's data pipeline does.

    Args:
        crops_rgb: (B, 3, H, W) RGB with values in [0, 255].

    Returns:
        (B, 3, H, W) (x - 255 mean) / (255 std), same dtype.
    """
    channels = [
        (crops_rgb[:, channel] - mean) / std
        for channel, (mean, std) in enumerate(zip(_MEAN_0_255, _STD_0_255, strict=True))
    ]
    return torch.stack(channels, dim=1)


def mirror_left_hands(output: HandExpertOutput, is_left: torch.Tensor) -> HandExpertOutput:
    """Turn outputs of flipped left-hand crops into left-hand parameters (selected items only).

    For items with is_left: rotations R -> M R M (M = diag(-1, 1, 1), axis-angle (x, -y, -z)),
    cam tx -> -tx and the crop translation's x negated. The crop must have been flipped as
    geometry.crops.crop_images(flip=True) does (HaMeR: crop of the mirrored image around the
    mirrored box centre); cam_crop_to_full with the original, unflipped box centre then gives
    the left hand's real-camera translation. The function is its own inverse.

    Args:
        output: network outputs, right-hand convention.
        is_left: (B,) bool, True for crops that were flipped.

    Returns:
        HandExpertOutput with left items mirrored (pose_6d with the matching sign pattern);
        betas and token unchanged.
    """
    flip = is_left.to(device=output.cam.device, dtype=torch.bool)
    rot_mask = flip[:, None, None, None]
    global_orient = torch.where(
        rot_mask, mirror_rotmat(output.global_orient), output.global_orient
    )
    hand_pose = torch.where(rot_mask, mirror_rotmat(output.hand_pose), output.hand_pose)
    tx_sign = (1.0, -1.0, 1.0)  # (s, tx, ty)
    x_sign = (-1.0, 1.0, 1.0)  # (x, y, z)
    # M R M on the first two columns: column 0 gets (1, -1, -1), column 1 gets (-1, 1, 1); the
    # same signs on raw 6D outputs give the mirrored matrix after Gram-Schmidt.
    sixd_sign = (1.0, -1.0, -1.0, -1.0, 1.0, 1.0)
    item = flip[:, None]
    return HandExpertOutput(
        global_orient=global_orient,
        hand_pose=hand_pose,
        betas=output.betas,
        cam=torch.where(item, scale_last_dim(output.cam, tx_sign), output.cam),
        cam_translation_crop=torch.where(
            item,
            scale_last_dim(output.cam_translation_crop, x_sign),
            output.cam_translation_crop,
        ),
        pose_6d=torch.where(
            item[..., None], scale_last_dim(output.pose_6d, sixd_sign), output.pose_6d
        ),
        token=output.token,
    )


class HandExpert(nn.Module):
    """HaMeR: ``backbone`` (ViT) + ``mano_head`` (transformer decoder), official names."""

    def __init__(self, config: HandExpertConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ViT(config.backbone)
        self.mano_head = MANOTransformerHead(config.head)

    def backbone_input(self, crops: torch.Tensor) -> torch.Tensor:
        """The central columns of the square crops that the ViT sees.

        Args:
            crops: (B, 3, S, S) normalised crops.

        Returns:
            (B, 3, S, W) view (columns 32:224 for HaMeR).

        Raises:
            ValueError: crops are not (B, 3, S, S).
        """
        size = self.config.crop_size_px
        if crops.dim() != 4 or tuple(crops.shape[1:]) != (3, size, size):
            raise ValueError(
                f'hand crops must be (B, 3, {size}, {size}) ImageNet-normalised RGB; '
                f'got {tuple(crops.shape)}'
            )
        start, stop = self.config.crop_columns
        return crops[:, :, :, start:stop]

    def forward(self, crops: torch.Tensor) -> HandExpertOutput:
        """Predict MANO parameters and the crop camera.

        Args:
            crops: (B, 3, 256, 256) ImageNet-normalised RGB square crops of right hands
                (left hands flipped).

        Returns:
            HandExpertOutput.
        """
        features = self.backbone(self.backbone_input(crops)).feature_map
        return self.output_from_head(self.mano_head(features))

    def output_from_head(self, head: MANOHeadOutput) -> HandExpertOutput:
        """The expert's output from a MANO head output (plain or adapter-guided decoder).

        Adds the crop-frame translation of the weak-perspective camera.
        """
        translation = weak_perspective_to_translation(
            head.cam, self.config.focal_length_px, self.config.crop_size_px
        )
        return HandExpertOutput(
            global_orient=head.global_orient,
            hand_pose=head.hand_pose,
            betas=head.betas,
            cam=head.cam,
            cam_translation_crop=translation,
            pose_6d=head.pose_6d,
            token=head.token,
        )

    def set_fused_attention(self, enabled: bool) -> None:
        """Switch backbone and decoder attention between fused and reference paths."""
        self.backbone.set_fused_attention(enabled)
        self.mano_head.transformer.set_fused_attention(enabled)

    def mano_outputs(self, output: HandExpertOutput, mano_model: nn.Module) -> HandMeshOutput:
        """Run a MANO layer on the outputs and project the joints into the crop.

        Args:
            output: outputs in the right-hand convention (before mirror_left_hands; mirror the
                resulting points with x -> -x for left hands).
            mano_model: body_models.smplx_layers.MANOHandModel (right hand) or any module with
                forward(global_orient, hand_pose, betas) returning .vertices and .joints.

        Returns:
            HandMeshOutput.
        """
        mano = mano_model(output.global_orient, output.hand_pose, output.betas)
        joints = mano.joints
        batch = joints.shape[0]
        half = 0.5 * self.config.crop_size_px
        focal = joints.new_full((batch, 2), self.config.focal_length_px)
        principal = joints.new_full((batch, 2), half)
        keypoints = project_points(
            joints + output.cam_translation_crop[:, None, :].to(joints.dtype),
            intrinsics_matrix(focal, principal),
        )
        return HandMeshOutput(vertices=mano.vertices, joints=joints, keypoints_crop_px=keypoints)


def build_hand_expert(name: str) -> HandExpert:
    """A fresh (randomly initialised) hand expert of a named variant; load weights separately.

    Raises:
        ValueError: unknown name.
    """
    return HandExpert(hand_expert_config(name))
