"""Hand -> body fusion: one SMPL-X pose from the whole-body path and the hand path.

Architecture step 5 (specs/architecture.md) and the last step of HMR-Adapter's overview
(papers/hmr-adapter.md, 3.1: "the refined body pose and hand pose are forwarded to the SMPL-X
layer"). The whole-body model gives the body (root + 21 joints, including both wrists) and its
own rough fingers; the hand expert gives, per hand, a global hand orientation and 15 finger
rotations. Fusion keeps the body chain down to the elbows and replaces, per hand:

- the fingers by the hand expert's (absolute, flat-hand MANO convention, which is what the
  SMPL-X layer takes: SMPL-X's hands are MANO hands, same joints and rest frames);
- the wrist's *local* rotation by the one that makes the wrist's *global* rotation equal the
  hand expert's global orientation. With G the global rotations of forward kinematics,
  G_wrist = G_elbow R_wrist, so R_wrist = G_elbow^T R_hand ("IK-style" wrist fusion: the
  analytic solution of the one-joint inverse kinematics problem).

Frames: both base models predict orientations in the camera of their crop. A crop is an
axis-aligned cut of the image (no rotation), so each crop camera has the real camera's axes
(OpenCV optical: x right, y down, z forward), and the hand orientation can be used directly as
a rotation in the body's camera frame. Left hands were processed as flipped right hands; their
outputs must be un-mirrored first (hand_expert.mirror_left_hands).

A hand whose crop is unreliable keeps the body's own wrist and fingers; ``hand_box_confidence``
is the (geometric) reliability measure used for that decision.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from hmr_ros.body_models.joint_names import (
    NUM_BODY_JOINTS,
    NUM_ROOT_JOINTS,
    SIDES,
    SMPLX_JOINT_INDEX,
    SMPLX_PARENTS,
)
from hmr_ros.geometry.constants import take
from hmr_ros.geometry.kinematics import global_rotations

__all__ = [
    'BODY_PARENTS',
    'FusedPose',
    'fuse_hands',
    'hand_box_confidence',
    'wrist_local_rotation',
]

NUM_BODY_ROTATIONS = NUM_ROOT_JOINTS + NUM_BODY_JOINTS
"""Root + 21 body joints: the rotations of the whole-body path (both wrists included)."""

BODY_PARENTS: tuple[int, ...] = SMPLX_PARENTS[:NUM_BODY_ROTATIONS]
"""Parents of the root and the 21 body joints (the body part of the SMPL-X tree)."""

WRIST_INDICES: tuple[int, ...] = tuple(SMPLX_JOINT_INDEX[f'{side}_wrist'] for side in SIDES)
"""(left, right) wrist rows of the 22 body rotations."""

ELBOW_INDICES: tuple[int, ...] = tuple(BODY_PARENTS[wrist] for wrist in WRIST_INDICES)
"""(left, right) parent of each wrist: the elbows, whose global rotation orients the forearm."""


def hand_box_confidence(
    boxes_px: torch.Tensor, image_wh: torch.Tensor, min_side_px: float, full_side_px: float
) -> torch.Tensor:
    """How usable a hand crop is, from its box alone: visible fraction x size score, in [0, 1].

    Neither base model scores its hands, and SMPLer-X predicts a hand box even for a hand that
    is outside the image or a few pixels large. This score measures what the hand expert can
    possibly see, not whether its answer is right:

    - visible fraction: area of the box inside the image ([-0.5, W - 0.5] x [-0.5, H - 0.5],
      pixel centres at integers) over the box area; the crop is zero-padded outside the image;
    - size score: 0 at a longer box side <= min_side_px, 1 at >= full_side_px, linear between:
      a crop upsampled from a few pixels holds no finger detail.

    Args:
        boxes_px: (..., 4) (x1, y1, x2, y2) hand boxes in image pixels.
        image_wh: (..., 2) image (W, H), broadcastable against the boxes.
        min_side_px: box side at and below which the score is 0.
        full_side_px: box side at and above which the size score is 1 (> min_side_px).

    Returns:
        (...) confidence in [0, 1].

    Raises:
        ValueError: full_side_px <= min_side_px.
    """
    if full_side_px <= min_side_px:
        raise ValueError(
            f'full_side_px ({full_side_px}) must be larger than min_side_px ({min_side_px})'
        )
    top_left, bottom_right = boxes_px[..., :2], boxes_px[..., 2:]
    size = (bottom_right - top_left).clamp_min(0.0)
    image_wh = image_wh.to(boxes_px)
    inside = (torch.minimum(bottom_right, image_wh - 0.5) - top_left.clamp_min(-0.5)).clamp_min(0)
    area = size.prod(dim=-1)
    visible = inside.prod(dim=-1) / area.clamp_min(torch.finfo(area.dtype).tiny)
    side = size.amax(dim=-1)
    size_score = ((side - min_side_px) / (full_side_px - min_side_px)).clamp(0.0, 1.0)
    return torch.where(area > 0, visible.clamp(0.0, 1.0) * size_score, torch.zeros_like(area))


def wrist_local_rotation(parent_global: torch.Tensor, hand_global: torch.Tensor) -> torch.Tensor:
    """Local wrist rotation that gives the wrist the global rotation of the hand.

    R_wrist = G_parent^T R_hand, from G_wrist = G_parent R_wrist (geometry.kinematics).

    Args:
        parent_global: (..., 3, 3) global rotation of the wrist's parent (the elbow joint,
            which orients the forearm), camera frame.
        hand_global: (..., 3, 3) global hand orientation (MANO global_orient), camera frame.

    Returns:
        (..., 3, 3) local wrist rotation for the SMPL-X layer.
    """
    return parent_global.transpose(-1, -2) @ hand_global


class FusedPose(NamedTuple):
    """One SMPL-X pose from both paths; side axis in (left, right) order.

    Attributes:
        body_rotmats: (P, 22, 3, 3) local rotations, root first, wrists fused.
        hand_rotmats: (P, 2, 15, 3, 3) absolute finger rotations (SMPL-X joint order).
        wrist_global_rotmats: (P, 2, 3, 3) global wrist rotations, camera frame.
        elbow_global_rotmats: (P, 2, 3, 3) global elbow rotations, camera frame.
    """

    body_rotmats: torch.Tensor
    hand_rotmats: torch.Tensor
    wrist_global_rotmats: torch.Tensor
    elbow_global_rotmats: torch.Tensor


def fuse_hands(
    body_rotmats: torch.Tensor,
    body_hand_rotmats: torch.Tensor,
    hand_global_orient: torch.Tensor,
    hand_finger_rotmats: torch.Tensor,
    use_hand: torch.Tensor,
) -> FusedPose:
    """Combine the body path's pose with the hand path's hands (module docstring).

    Steps:
        1. Forward kinematics of the body rotations: global elbow rotations (unchanged by
           the fusion, which only touches wrists and fingers).
        2. Per hand with use_hand: wrist local = G_elbow^T R_hand, fingers from the hand path.
        3. Otherwise: the body's own wrist and fingers.

    Args:
        body_rotmats: (P, 22, 3, 3) local root + body rotations (whole-body path, refined).
        body_hand_rotmats: (P, 2, 15, 3, 3) the whole-body path's absolute finger rotations
            (hands_mean already added), the fallback.
        hand_global_orient: (P, 2, 3, 3) hand expert global orientations, camera frame,
            un-mirrored (left hands are left-hand rotations).
        hand_finger_rotmats: (P, 2, 15, 3, 3) hand expert finger rotations, absolute,
            un-mirrored.
        use_hand: (P, 2) bool, True to take that hand from the hand path.

    Returns:
        FusedPose.

    Raises:
        ValueError: wrong shapes.
    """
    if tuple(body_rotmats.shape[-3:]) != (NUM_BODY_ROTATIONS, 3, 3):
        raise ValueError(
            f'body_rotmats must be (P, {NUM_BODY_ROTATIONS}, 3, 3); '
            f'got {tuple(body_rotmats.shape)}'
        )
    if hand_global_orient.shape[-3:] != (len(SIDES), 3, 3):
        raise ValueError(
            f'hand_global_orient must be (P, 2, 3, 3); got {tuple(hand_global_orient.shape)}'
        )
    globals_ = global_rotations(body_rotmats, BODY_PARENTS)
    elbow_global = take(globals_, ELBOW_INDICES, 1)  # (P, 2, 3, 3)
    body_wrist_local = take(body_rotmats, WRIST_INDICES, 1)
    hand_wrist_local = wrist_local_rotation(elbow_global, hand_global_orient.to(elbow_global))
    use = use_hand.to(device=body_rotmats.device, dtype=torch.bool)
    wrist_local = torch.where(use[..., None, None], hand_wrist_local, body_wrist_local)
    fingers = torch.where(
        use[..., None, None, None], hand_finger_rotmats.to(body_hand_rotmats), body_hand_rotmats
    )
    fused = body_rotmats.clone()
    for side, wrist in enumerate(WRIST_INDICES):
        fused[:, wrist] = wrist_local[:, side]
    return FusedPose(
        body_rotmats=fused,
        hand_rotmats=fingers,
        wrist_global_rotmats=elbow_global @ wrist_local,
        elbow_global_rotmats=elbow_global,
    )
