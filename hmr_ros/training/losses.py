"""Training losses of the two HMR-Adapters (paper 3.5, eqs. 5-8), as pure functions.

Hand adapter (eq. 5), body adapter (eqs. 7 and 8)::

    L_hand = l_2d L_2d + l_3d L_3d + l_v L_v + l_theta L_theta + l_beta L_beta
    L_body = l_2d (L_img + L_proj) + l_3d L_3d + l_theta L_theta + l_beta L_beta
    L_theta = ||theta - theta*||^2 + (1 - cos(theta, theta*))                     (eq. 6)

Every term is a per-sample value averaged over the samples that carry its label, so a batch
mixing data sets (FreiHAND has no body pose, EHF no MANO shape) supervises each sample with what
it has. Absent labels are marked, never guessed:

- keypoints carry a confidence in their last column (0 = absent; the canonical sample format's
  convention), used as a weight;
- whole-sample labels (pose, shape, vertices) carry a (B,) bool ``has_*`` flag; pose also takes a
  per-joint flag, since a data set may know a hand's fingers but not its global orientation;
- a term no sample of the batch can measure is exactly 0 (no NaN, no gradient).

Choices the paper leaves open (written down here because they change the numbers):

1. Keypoints and vertices use the L1 distance (sum of absolute coordinate differences) per
   point, as HaMeR's keypoint losses do, averaged over the points of a sample (confidence-
   weighted). 2D keypoints are in normalised crop coordinates, pixel / crop size - 0.5, so a
   value of 0.01 is 1 % of the crop side; 3D keypoints are metres after subtracting the root
   joint of each set (wrist for hands, pelvis for bodies), as HaMeR and SMPLer-X do.
2. Vertices are compared after subtracting each mesh's centroid: the hand expert's MANO mesh
   has no translation, and the centroid needs no joint labels.
3. Eq. 6 on rotation matrices flattened per sample (HaMeR supervises rotation matrices, not
   axis-angle, which wraps at pi and has no direction at the rest pose). For one joint with
   relative rotation angle a: ||R - R*||_F^2 = 4 (1 - cos a), and the cosine of the flattened
   matrices is tr(R^T R*) / 3 = (1 + 2 cos a) / 3; over several joints the cosine of the
   concatenated vectors is the mean of the per-joint cosines (every rotation matrix has norm
   sqrt 3). Both terms vanish exactly at the target. Any other representation can be passed;
   the functions only flatten it.
4. Shape: squared L2 of the coefficients (HaMeR's parameter loss).

Default weights keep HaMeR's balance between terms for these normalisations; the paper gives no
values (they live in the training config, hmr_ros.training.config).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    'BodyLossTerms',
    'BodyLossWeights',
    'BodyPrediction',
    'BodyTarget',
    'HandLossTerms',
    'HandLossWeights',
    'HandPrediction',
    'HandTarget',
    'body_adapter_loss',
    'centred_vertex_loss',
    'hand_adapter_loss',
    'keypoint_2d_loss',
    'keypoint_3d_loss',
    'masked_mean',
    'pose_loss',
    'shape_loss',
]


# --- Per-sample terms ---------------------------------------------------------------------------


class SampleLoss(NamedTuple):
    """A loss term per sample and whether the sample can be measured by it.

    Attributes:
        values: (B,) per-sample loss (0 where not valid).
        valid: (B,) bool.
    """

    values: Tensor
    valid: Tensor


def masked_mean(loss: SampleLoss) -> Tensor:
    """Mean of the valid samples' values; exactly 0 (and no gradient) when none is valid.

    Args:
        loss: per-sample values and validity.

    Returns:
        () scalar.
    """
    weights = loss.valid.to(loss.values.dtype)
    total = (loss.values * weights).sum()
    return total / weights.sum().clamp_min(1.0)


def _check_points(pred: Tensor, target: Tensor, dims: int, name: str) -> None:
    if pred.dim() != 3 or pred.shape[-1] != dims:
        raise ValueError(f'{name}: prediction must be (B, K, {dims}); got {tuple(pred.shape)}')
    if tuple(target.shape) != (*pred.shape[:2], dims + 1):
        raise ValueError(
            f'{name}: target must be (B, K, {dims + 1}) = {(*pred.shape[:2], dims + 1)} with a '
            f'confidence column (0 = absent); got {tuple(target.shape)}'
        )


def _known_points(pred: Tensor, points: Tensor, confidence: Tensor) -> Tensor:
    """Target points with absent ones replaced by the (detached) prediction.

    Absent targets may hold anything, NaN included; a NaN that only a masked-out branch sees
    still poisons the gradient (0 * NaN), so it is removed before any arithmetic.
    """
    return torch.where(confidence[..., None] > 0, points, pred.detach())


def _weighted_point_mean(distances: Tensor, confidence: Tensor) -> SampleLoss:
    """Confidence-weighted mean over points of (B, K) distances."""
    total = confidence.sum(dim=-1)
    valid = total > 0
    values = (distances * confidence).sum(dim=-1) / total.clamp_min(torch.finfo(total.dtype).tiny)
    return SampleLoss(torch.where(valid, values, torch.zeros_like(values)), valid)


def keypoint_2d_loss(pred: Tensor, target: Tensor) -> SampleLoss:
    """L1 error of 2D keypoints, confidence-weighted mean over keypoints.

    Args:
        pred: (B, K, 2) normalised crop coordinates (pixel / crop size - 0.5).
        target: (B, K, 3) the same coordinates and a confidence in [0, 1] (0 = absent).

    Returns:
        SampleLoss; a sample is valid when any keypoint has confidence > 0.
    """
    _check_points(pred, target, 2, 'keypoint_2d_loss')
    confidence = target[..., 2].clamp_min(0.0)
    distances = (pred - _known_points(pred, target[..., :2], confidence)).abs().sum(dim=-1)
    return _weighted_point_mean(distances, confidence)


def keypoint_3d_loss(pred: Tensor, target: Tensor, root_index: int) -> SampleLoss:
    """L1 error of root-relative 3D keypoints, confidence-weighted mean over keypoints.

    Each set is translated so that its root keypoint is at the origin; a sample whose target
    root is absent (confidence 0) cannot be aligned and is not valid.

    Args:
        pred: (B, K, 3) metres.
        target: (B, K, 4) metres and a confidence.
        root_index: the root keypoint (wrist for hands, pelvis for bodies).

    Returns:
        SampleLoss.
    """
    _check_points(pred, target, 3, 'keypoint_3d_loss')
    confidence = target[..., 3].clamp_min(0.0)
    points = _known_points(pred, target[..., :3], confidence)
    pred_rel = pred - pred[:, root_index : root_index + 1]
    target_rel = points - points[:, root_index : root_index + 1]
    distances = (pred_rel - target_rel).abs().sum(dim=-1)
    loss = _weighted_point_mean(distances, confidence)
    valid = loss.valid & (confidence[:, root_index] > 0)
    return SampleLoss(torch.where(valid, loss.values, torch.zeros_like(loss.values)), valid)


def centred_vertex_loss(pred: Tensor, target: Tensor, has_vertices: Tensor) -> SampleLoss:
    """L1 error of mesh vertices after subtracting each mesh's centroid (module point 2).

    Args:
        pred: (B, V, 3) metres.
        target: (B, V, 3) metres (any values where has_vertices is False).
        has_vertices: (B,) bool.

    Returns:
        SampleLoss: mean over vertices of the per-vertex L1 distance.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(
            f'vertices must be (B, V, 3) alike; got {tuple(pred.shape)} and {tuple(target.shape)}'
        )
    valid = has_vertices.to(torch.bool)
    # where, not a product: absent targets may hold NaN.
    target = torch.where(valid[:, None, None], target, pred.detach())
    pred_c = pred - pred.mean(dim=1, keepdim=True)
    target_c = target - target.mean(dim=1, keepdim=True)
    values = (pred_c - target_c).abs().sum(dim=-1).mean(dim=-1)
    return SampleLoss(torch.where(valid, values, torch.zeros_like(values)), valid)


def pose_loss(pred: Tensor, target: Tensor, joint_valid: Tensor) -> SampleLoss:
    """Paper eq. 6: ||theta - theta*||^2 + (1 - cos(theta, theta*)) per sample.

    theta is the concatenation of the valid joints' parameters (rotation matrices in training,
    module point 3); absent joints are left out of both terms.

    Args:
        pred: (B, J, ...) per-joint parameters (e.g. (B, J, 3, 3) rotation matrices).
        target: same shape (any values at absent joints).
        joint_valid: (B, J) bool.

    Returns:
        SampleLoss; a sample is valid when any joint is.
    """
    if pred.shape != target.shape or pred.dim() < 2:
        raise ValueError(
            f'pose prediction and target must have the same (B, J, ...) shape; got '
            f'{tuple(pred.shape)} and {tuple(target.shape)}'
        )
    if tuple(joint_valid.shape) != tuple(pred.shape[:2]):
        raise ValueError(
            f'joint_valid must be (B, J) = {tuple(pred.shape[:2])}; got {tuple(joint_valid.shape)}'
        )
    batch, joints = pred.shape[:2]
    mask = joint_valid.to(torch.bool)[:, :, None]
    pred_v = torch.where(mask, pred.reshape(batch, joints, -1), 0.0).reshape(batch, -1)
    target_v = torch.where(mask, target.reshape(batch, joints, -1), 0.0).reshape(batch, -1)
    squared = (pred_v - target_v).square().sum(dim=-1)
    cosine = torch.nn.functional.cosine_similarity(pred_v, target_v, dim=-1, eps=1e-8)
    valid = mask[:, :, 0].any(dim=-1)
    values = squared + (1.0 - cosine)
    return SampleLoss(torch.where(valid, values, torch.zeros_like(values)), valid)


def shape_loss(pred: Tensor, target: Tensor, has_shape: Tensor) -> SampleLoss:
    """Squared L2 of shape coefficients.

    Args:
        pred: (B, N) betas.
        target: (B, N).
        has_shape: (B,) bool.

    Returns:
        SampleLoss.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f'shape prediction and target differ: {tuple(pred.shape)} vs {tuple(target.shape)}'
        )
    valid = has_shape.to(torch.bool)
    target = torch.where(valid[:, None], target, pred.detach())
    values = (pred - target).square().sum(dim=-1)
    return SampleLoss(torch.where(valid, values, torch.zeros_like(values)), valid)


# --- Hand adapter (eq. 5) -----------------------------------------------------------------------


class HandPrediction(NamedTuple):
    """What the guided hand expert predicts for a batch of right-looking hand crops.

    Attributes:
        keypoints_2d: (B, 21, 2) MANO joints projected into the crop, normalised crop
            coordinates (``HandMeshOutput.keypoints_crop_px`` / crop size - 0.5).
        keypoints_3d_m: (B, 21, 3) MANO joints, OpenPose order, metres.
        vertices_m: (B, 778, 3) MANO vertices, metres.
        pose_rotmat: (B, 16, 3, 3) global orientation, then the 15 finger rotations.
        betas: (B, 10) MANO shape.
    """

    keypoints_2d: Tensor
    keypoints_3d_m: Tensor
    vertices_m: Tensor
    pose_rotmat: Tensor
    betas: Tensor


class HandTarget(NamedTuple):
    """Ground truth of the same crops, in the right-hand convention (left hands mirrored).

    Attributes:
        keypoints_2d: (B, 21, 3) normalised crop coordinates and confidence.
        keypoints_3d_m: (B, 21, 4) metres (any translation) and confidence, OpenPose order.
        vertices_m: (B, 778, 3) MANO mesh (any translation).
        has_vertices: (B,) bool.
        pose_rotmat: (B, 16, 3, 3) as HandPrediction.pose_rotmat.
        pose_valid: (B, 16) bool.
        betas: (B, 10) MANO shape.
        has_betas: (B,) bool.
    """

    keypoints_2d: Tensor
    keypoints_3d_m: Tensor
    vertices_m: Tensor
    has_vertices: Tensor
    pose_rotmat: Tensor
    pose_valid: Tensor
    betas: Tensor
    has_betas: Tensor


@dataclass(frozen=True)
class HandLossWeights:
    """lambda of paper eq. 5 (module docstring for the normalisation of each term).

    Attributes:
        keypoints_2d: lambda_2D.
        keypoints_3d: lambda_3D.
        vertices: lambda_v.
        pose: lambda_theta.
        betas: lambda_beta.
    """

    keypoints_2d: float = 0.2
    keypoints_3d: float = 1.0
    vertices: float = 1.0
    pose: float = 0.001
    betas: float = 0.005

    def __post_init__(self) -> None:
        _check_weights(self)


class HandLossTerms(NamedTuple):
    """Weighted total and the unweighted terms of eq. 5, each a () tensor."""

    total: Tensor
    keypoints_2d: Tensor
    keypoints_3d: Tensor
    vertices: Tensor
    pose: Tensor
    betas: Tensor


WRIST_INDEX = 0
"""Root of the hand keypoints (OpenPose order)."""


def hand_adapter_loss(
    pred: HandPrediction, target: HandTarget, weights: HandLossWeights
) -> HandLossTerms:
    """Paper eq. 5 for a batch of hand crops.

    Args:
        pred: predictions (float32 recommended; compute them outside autocast or cast).
        target: ground truth with absence masks.
        weights: lambda values.

    Returns:
        HandLossTerms.
    """
    terms = {
        'keypoints_2d': masked_mean(keypoint_2d_loss(pred.keypoints_2d, target.keypoints_2d)),
        'keypoints_3d': masked_mean(
            keypoint_3d_loss(pred.keypoints_3d_m, target.keypoints_3d_m, WRIST_INDEX)
        ),
        'vertices': masked_mean(
            centred_vertex_loss(pred.vertices_m, target.vertices_m, target.has_vertices)
        ),
        'pose': masked_mean(pose_loss(pred.pose_rotmat, target.pose_rotmat, target.pose_valid)),
        'betas': masked_mean(shape_loss(pred.betas, target.betas, target.has_betas)),
    }
    total = (
        weights.keypoints_2d * terms['keypoints_2d']
        + weights.keypoints_3d * terms['keypoints_3d']
        + weights.vertices * terms['vertices']
        + weights.pose * terms['pose']
        + weights.betas * terms['betas']
    )
    return HandLossTerms(total=total, **terms)


# --- Body adapter (eqs. 7 and 8) ----------------------------------------------------------------


class BodyPrediction(NamedTuple):
    """What the refined whole-body model predicts for a batch of person crops.

    Attributes:
        keypoints_2d_img: (B, K_img, 2) the model's own 2D joints (its position heatmaps),
            normalised crop coordinates. The body adapter cannot change them (they come from the
            frozen position network), so L_img is a constant of the adapter's training: it is
            computed and logged for eq. 8's sake and carries no gradient.
        keypoints_2d_proj: (B, K, 2) SMPL-X joints projected with the crop's virtual camera,
            normalised crop coordinates.
        keypoints_3d_m: (B, K, 3) SMPL-X joints, metres.
        pose_rotmat: (B, 22, 3, 3) root and body rotations (the refined pose).
        betas: (B, 10) SMPL-X shape.
    """

    keypoints_2d_img: Tensor
    keypoints_2d_proj: Tensor
    keypoints_3d_m: Tensor
    pose_rotmat: Tensor
    betas: Tensor


class BodyTarget(NamedTuple):
    """Ground truth of the same person crops.

    Attributes:
        keypoints_2d_img: (B, K_img, 3) normalised crop coordinates and confidence, in the
            order of BodyPrediction.keypoints_2d_img.
        keypoints_2d_proj: (B, K, 3) the same for the projected joints' order.
        keypoints_3d_m: (B, K, 4) metres (any translation) and confidence.
        pose_rotmat: (B, 22, 3, 3).
        pose_valid: (B, 22) bool.
        betas: (B, 10).
        has_betas: (B,) bool.
    """

    keypoints_2d_img: Tensor
    keypoints_2d_proj: Tensor
    keypoints_3d_m: Tensor
    pose_rotmat: Tensor
    pose_valid: Tensor
    betas: Tensor
    has_betas: Tensor


@dataclass(frozen=True)
class BodyLossWeights:
    """lambda of paper eq. 7 (L_2D = L_img + L_proj, eq. 8, shares lambda_2D).

    Attributes:
        keypoints_2d: lambda_2D.
        keypoints_3d: lambda_3D.
        pose: lambda_theta.
        betas: lambda_beta.
    """

    keypoints_2d: float = 0.2
    keypoints_3d: float = 1.0
    pose: float = 0.001
    betas: float = 0.005

    def __post_init__(self) -> None:
        _check_weights(self)


class BodyLossTerms(NamedTuple):
    """Weighted total and the unweighted terms of eqs. 7 and 8, each a () tensor."""

    total: Tensor
    keypoints_2d_img: Tensor
    keypoints_2d_proj: Tensor
    keypoints_3d: Tensor
    pose: Tensor
    betas: Tensor


PELVIS_INDEX = 0
"""Root of the body keypoints (SMPL-X order)."""


def body_adapter_loss(
    pred: BodyPrediction, target: BodyTarget, weights: BodyLossWeights
) -> BodyLossTerms:
    """Paper eqs. 7 and 8 for a batch of person crops.

    Args:
        pred: predictions (float32).
        target: ground truth with absence masks.
        weights: lambda values.

    Returns:
        BodyLossTerms.
    """
    terms = {
        'keypoints_2d_img': masked_mean(
            keypoint_2d_loss(pred.keypoints_2d_img, target.keypoints_2d_img)
        ),
        'keypoints_2d_proj': masked_mean(
            keypoint_2d_loss(pred.keypoints_2d_proj, target.keypoints_2d_proj)
        ),
        'keypoints_3d': masked_mean(
            keypoint_3d_loss(pred.keypoints_3d_m, target.keypoints_3d_m, PELVIS_INDEX)
        ),
        'pose': masked_mean(pose_loss(pred.pose_rotmat, target.pose_rotmat, target.pose_valid)),
        'betas': masked_mean(shape_loss(pred.betas, target.betas, target.has_betas)),
    }
    total = (
        weights.keypoints_2d * (terms['keypoints_2d_img'] + terms['keypoints_2d_proj'])
        + weights.keypoints_3d * terms['keypoints_3d']
        + weights.pose * terms['pose']
        + weights.betas * terms['betas']
    )
    return BodyLossTerms(total=total, **terms)


def _check_weights(weights: HandLossWeights | BodyLossWeights) -> None:
    for field in fields(weights):
        value = getattr(weights, field.name)
        if not value >= 0.0:
            raise ValueError(
                f'{type(weights).__name__}.{field.name} must be a weight >= 0; got {value}'
            )
