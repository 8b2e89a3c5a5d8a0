"""Mesh-recovery metrics of the paper and of CMR/FreiHAND, batched torch, results in millimetres.

Inputs are metres (the SMPL-X / MANO unit); every error function returns millimetres per sample,
(B,), and its name says so. Averaging over a data set is `report.MetricAccumulator`'s job.

Conventions (HMR-Adapter section 4.1, following SMPLer-X's EHF/ARCTIC evaluation):

- MPJPE / PVE: mean Euclidean distance after aligning the translation of a root joint: the pelvis
  for the whole body, the wrist for a hand. The root of a mesh is regressed from that mesh.
- PA-MPJPE / PA-PVE: mean distance after the best similarity transform (rotation, uniform scale,
  translation; `hmr_ros.geometry.procrustes`), fitted on the points being measured.
- Joints for MPJPE and PA-MPJPE are regressed from the mesh with a joint-regressor matrix
  (`regress_joints`), as the paper does, so predictions and ground truth use the same joints.
- Hands on whole-body meshes: each hand's vertex subset (and joints) is measured on its own,
  then the left and right errors are averaged ("Hands" columns of Tables 1, 3-5).

Hand metrics of CMR's supplementary (Tables 2 and 3) follow FreiHAND's evaluation script
(`lmb-freiburg/freihand: eval.py`):

- J-AUC / V-AUC: area under the PCK curve of joint / vertex errors for thresholds
  `AUC_THRESHOLDS_MM` = 100 evenly spaced values from 0 to 50 mm (np.linspace(0, 0.05, 100) m),
  trapezoid rule, divided by the 50 mm range, so 1.0 means every point within 0 mm. A point
  counts as correct when its error is <= the threshold. FreiHAND pools PCK per keypoint over the
  data set and then averages keypoints; by linearity that equals the mean over samples of the
  per-sample AUC returned here (same number of points per sample).
- F@5 mm / F@15 mm: precision = fraction of predicted vertices closer than the threshold
  (strictly) to some ground-truth vertex, recall = fraction of ground-truth vertices closer than
  the threshold to some predicted vertex, F = 2 P R / (P + R) (0 when both are 0). FreiHAND's
  script names the two fractions the other way round; F is symmetric so scores agree.
- Root-relative results (CMR Table 2: PA-MPJPE, J-AUC, PA-MPVPE, V-AUC, F-scores) are computed
  after Procrustes alignment, each point set aligned on its own as FreiHAND does for MANO-topology
  predictions; camera-space results (CMR Table 3) use no alignment at all.

One difference from FreiHAND: its alignment (scipy's orthogonal_procrustes) may return a
reflection; ours never does, so a mirrored prediction keeps its error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from hmr_ros.body_models.joint_names import SIDES, SMPLX_JOINT_INDEX, Side
from hmr_ros.geometry.procrustes import procrustes_align

MM_PER_M = 1000.0

AUC_MIN_MM = 0.0
AUC_MAX_MM = 50.0
AUC_STEPS = 100
AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(
    AUC_MIN_MM + (AUC_MAX_MM - AUC_MIN_MM) * i / (AUC_STEPS - 1) for i in range(AUC_STEPS)
)
"""PCK thresholds of J-AUC and V-AUC: FreiHAND's get_measures(0.0, 0.05, 100), in mm."""

F_SCORE_THRESHOLDS_MM = (5.0, 15.0)
"""Distance thresholds of CMR's F@5 mm and F@15 mm."""

_NEAREST_CHUNK = 1024
"""Rows per block of the pairwise-distance matrix in `nearest_distances_m` (bounds memory)."""


def _check_points(name: str, points: torch.Tensor) -> None:
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f'{name} must have shape (B, N, 3); got {tuple(points.shape)}')


def _check_pair(pred: torch.Tensor, gt: torch.Tensor) -> None:
    _check_points('pred', pred)
    _check_points('gt', gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f'pred and gt must have the same shape; got {tuple(pred.shape)} and '
            f'{tuple(gt.shape)} (regress both with the same regressor)'
        )


def regress_joints(vertices_m: torch.Tensor, regressor: torch.Tensor) -> torch.Tensor:
    """Joints as fixed linear combinations of mesh vertices: J = W V.

    Args:
        vertices_m: (B, V, 3) metres.
        regressor: (J, V) dense or sparse (COO/CSR) weights, e.g. the SMPL-X `J_regressor`.

    Returns:
        (B, J, 3) joints, metres.
    """
    _check_points('vertices_m', vertices_m)
    if regressor.dim() != 2 or regressor.shape[1] != vertices_m.shape[1]:
        raise ValueError(
            f'regressor must have shape (J, {vertices_m.shape[1]}) for meshes of '
            f'{vertices_m.shape[1]} vertices; got {tuple(regressor.shape)}'
        )
    weights = regressor.to(device=vertices_m.device, dtype=vertices_m.dtype)
    if weights.is_sparse or weights.layout != torch.strided:
        weights = weights.to_dense()
    return torch.einsum('jv,bvc->bjc', weights, vertices_m)


def point_errors_mm(pred_m: torch.Tensor, gt_m: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of corresponding points, (B, N) millimetres."""
    _check_pair(pred_m, gt_m)
    return (pred_m - gt_m).norm(dim=-1) * MM_PER_M


def _mean(errors_mm: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return errors_mm.mean(dim=-1)
    if weights.shape != errors_mm.shape:
        raise ValueError(
            f'weights must have shape {tuple(errors_mm.shape)}; got {tuple(weights.shape)}'
        )
    w = weights.to(errors_mm.dtype)
    return (w * errors_mm).sum(dim=-1) / w.sum(dim=-1).clamp_min(torch.finfo(w.dtype).tiny)


def root_align(points_m: torch.Tensor, root_m: torch.Tensor) -> torch.Tensor:
    """Subtract a root position from every point: (B, N, 3) - (B, 3)."""
    _check_points('points_m', points_m)
    if root_m.shape != (points_m.shape[0], 3):
        raise ValueError(f'root_m must have shape ({points_m.shape[0]}, 3); got {root_m.shape}')
    return points_m - root_m[:, None]


def mpjpe_mm(
    pred_joints_m: torch.Tensor,
    gt_joints_m: torch.Tensor,
    root_index: int | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean per-joint position error, optionally after aligning a root joint's translation.

    Args:
        pred_joints_m: (B, J, 3) metres.
        gt_joints_m: (B, J, 3) metres.
        root_index: joint whose position is subtracted from each set first (pelvis for bodies,
            wrist for hands); None measures positions as given (camera-space error).
        weights: (B, J) per-joint weights (e.g. visibility); None weighs joints equally.

    Returns:
        (B,) millimetres.
    """
    _check_pair(pred_joints_m, gt_joints_m)
    if root_index is not None:
        pred_joints_m = root_align(pred_joints_m, pred_joints_m[:, root_index])
        gt_joints_m = root_align(gt_joints_m, gt_joints_m[:, root_index])
    return _mean(point_errors_mm(pred_joints_m, gt_joints_m), weights)


def pa_mpjpe_mm(
    pred_joints_m: torch.Tensor, gt_joints_m: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean per-joint error after Procrustes alignment of the prediction to the ground truth.

    Args:
        pred_joints_m: (B, J, 3) metres.
        gt_joints_m: (B, J, 3) metres.
        weights: (B, J) weights of the fit and of the mean; None weighs joints equally.

    Returns:
        (B,) millimetres.
    """
    aligned = procrustes_align(pred_joints_m, gt_joints_m, weights)
    return _mean(point_errors_mm(aligned, gt_joints_m), weights)


def pve_mm(
    pred_vertices_m: torch.Tensor,
    gt_vertices_m: torch.Tensor,
    pred_root_m: torch.Tensor | None = None,
    gt_root_m: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean per-vertex position error, optionally after aligning root translations.

    Args:
        pred_vertices_m: (B, V, 3) metres.
        gt_vertices_m: (B, V, 3) metres.
        pred_root_m: (B, 3) root joint of the predicted mesh (pelvis or wrist, regressed from
            the whole predicted mesh); give both roots or neither.
        gt_root_m: (B, 3) the same root joint of the ground-truth mesh.

    Returns:
        (B,) millimetres.
    """
    if (pred_root_m is None) != (gt_root_m is None):
        raise ValueError('give both pred_root_m and gt_root_m, or neither')
    _check_pair(pred_vertices_m, gt_vertices_m)
    if pred_root_m is not None and gt_root_m is not None:
        pred_vertices_m = root_align(pred_vertices_m, pred_root_m)
        gt_vertices_m = root_align(gt_vertices_m, gt_root_m)
    return point_errors_mm(pred_vertices_m, gt_vertices_m).mean(dim=-1)


def pa_pve_mm(pred_vertices_m: torch.Tensor, gt_vertices_m: torch.Tensor) -> torch.Tensor:
    """Mean per-vertex error after Procrustes alignment on the vertices; (B,) millimetres."""
    aligned = procrustes_align(pred_vertices_m, gt_vertices_m)
    return point_errors_mm(aligned, gt_vertices_m).mean(dim=-1)


def pck_curve(
    errors_mm: torch.Tensor, thresholds_mm: tuple[float, ...] = AUC_THRESHOLDS_MM
) -> torch.Tensor:
    """Fraction of points with error <= each threshold.

    Args:
        errors_mm: (B, N) per-point errors.
        thresholds_mm: T increasing thresholds.

    Returns:
        (B, T) fractions in [0, 1].
    """
    thresholds = errors_mm.new_tensor(thresholds_mm)
    return (errors_mm[..., None] <= thresholds).to(errors_mm.dtype).mean(dim=-2)


def auc(
    errors_mm: torch.Tensor, thresholds_mm: tuple[float, ...] = AUC_THRESHOLDS_MM
) -> torch.Tensor:
    """Area under the PCK curve, normalised by the threshold range (CMR's J-AUC / V-AUC).

    Trapezoid rule over the thresholds, divided by (last - first) threshold, as FreiHAND's
    `get_measures` does with np.trapz.

    Args:
        errors_mm: (B, N) per-point errors.
        thresholds_mm: T >= 2 increasing thresholds (default 0..50 mm, 100 steps).

    Returns:
        (B,) in [0, 1].
    """
    if len(thresholds_mm) < 2 or thresholds_mm[-1] <= thresholds_mm[0]:
        raise ValueError('thresholds_mm needs at least two increasing values')
    curve = pck_curve(errors_mm, thresholds_mm)
    thresholds = errors_mm.new_tensor(thresholds_mm)
    area = torch.trapezoid(curve, thresholds, dim=-1)
    return area / (thresholds[-1] - thresholds[0])


def nearest_distances_m(from_m: torch.Tensor, to_m: torch.Tensor) -> torch.Tensor:
    """Distance from each point of one set to the closest point of another set.

    The (N, M) distance matrix is built in blocks of rows, so two SMPL-X meshes (10,475 points
    each) need a few tens of MB, not 440 MB.

    Args:
        from_m: (B, N, 3).
        to_m: (B, M, 3).

    Returns:
        (B, N) distances in the input unit.
    """
    _check_points('from_m', from_m)
    _check_points('to_m', to_m)
    blocks = [
        torch.cdist(from_m[:, start : start + _NEAREST_CHUNK], to_m).amin(dim=-1)
        for start in range(0, from_m.shape[1], _NEAREST_CHUNK)
    ]
    return torch.cat(blocks, dim=1)


class FScore(NamedTuple):
    """F-score of two point sets at one distance threshold, each (B,) in [0, 1].

    Attributes:
        f_score: 2 precision recall / (precision + recall), 0 where both are 0.
        precision: fraction of predicted points within the threshold of the ground truth.
        recall: fraction of ground-truth points within the threshold of the prediction.
    """

    f_score: torch.Tensor
    precision: torch.Tensor
    recall: torch.Tensor


def f_score(pred_m: torch.Tensor, gt_m: torch.Tensor, threshold_mm: float) -> FScore:
    """FreiHAND's F-score of predicted vs ground-truth vertices (no correspondence needed).

    Args:
        pred_m: (B, N, 3) predicted points, metres.
        gt_m: (B, M, 3) ground-truth points, metres.
        threshold_mm: distance below which (strictly) a point counts as matched.

    Returns:
        FScore of (B,) tensors.
    """
    threshold_m = threshold_mm / MM_PER_M
    precision = (nearest_distances_m(pred_m, gt_m) < threshold_m).to(pred_m.dtype).mean(dim=-1)
    recall = (nearest_distances_m(gt_m, pred_m) < threshold_m).to(pred_m.dtype).mean(dim=-1)
    total = precision + recall
    f = torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-12), 0.0)
    return FScore(f, precision, recall)


def hand_errors(
    pred_vertices_m: torch.Tensor,
    gt_vertices_m: torch.Tensor,
    pred_joints_m: torch.Tensor,
    gt_joints_m: torch.Tensor,
    wrist_index: int = 0,
) -> dict[str, torch.Tensor]:
    """All hand metrics of the paper and of CMR's FreiHAND tables for one batch of hands.

    Keys (each (B,)):
        mpjpe_mm, pve_mm: wrist-aligned (paper);
        pa_mpjpe_mm, pa_pve_mm, pa_j_auc, pa_v_auc, pa_f_score_5mm, pa_f_score_15mm: after
            Procrustes alignment of joints and vertices separately (CMR Table 2, root-relative);
        cs_mpjpe_mm, cs_pve_mm, cs_j_auc, cs_v_auc, cs_f_score_5mm, cs_f_score_15mm: no
            alignment, camera space (CMR Table 3).

    Args:
        pred_vertices_m: (B, 778, 3) predicted MANO vertices, metres, camera frame.
        gt_vertices_m: (B, 778, 3) ground-truth vertices.
        pred_joints_m: (B, J, 3) predicted joints (e.g. 21 in OpenPose order).
        gt_joints_m: (B, J, 3) ground-truth joints in the same order.
        wrist_index: index of the wrist among the joints (0 in OpenPose order).

    Returns:
        Dict of metric name -> (B,) tensor.
    """
    _check_pair(pred_vertices_m, gt_vertices_m)
    _check_pair(pred_joints_m, gt_joints_m)
    pred_wrist, gt_wrist = pred_joints_m[:, wrist_index], gt_joints_m[:, wrist_index]
    results = {
        'mpjpe_mm': mpjpe_mm(pred_joints_m, gt_joints_m, root_index=wrist_index),
        'pve_mm': pve_mm(pred_vertices_m, gt_vertices_m, pred_wrist, gt_wrist),
    }
    aligned_joints = procrustes_align(pred_joints_m, gt_joints_m)
    aligned_vertices = procrustes_align(pred_vertices_m, gt_vertices_m)
    for prefix, joints, vertices in (
        ('pa', aligned_joints, aligned_vertices),
        ('cs', pred_joints_m, pred_vertices_m),
    ):
        joint_errors = point_errors_mm(joints, gt_joints_m)
        vertex_errors = point_errors_mm(vertices, gt_vertices_m)
        results[f'{prefix}_mpjpe_mm'] = joint_errors.mean(dim=-1)
        results[f'{prefix}_pve_mm'] = vertex_errors.mean(dim=-1)
        results[f'{prefix}_j_auc'] = auc(joint_errors)
        results[f'{prefix}_v_auc'] = auc(vertex_errors)
        for threshold in F_SCORE_THRESHOLDS_MM:
            name = f'{prefix}_f_score_{threshold:g}mm'
            results[name] = f_score(vertices, gt_vertices_m, threshold).f_score
    return results


@dataclass(frozen=True, eq=False)
class WholeBodyEvalSpec:
    """Regressors and vertex subsets that define the whole-body metrics.

    They come from licensed model files (SMPL-X `J_regressor`, SMPLer-X's body and hand joint
    regressors, the MANO-to-SMPL-X vertex map), so the caller loads them; nothing is built in.

    Attributes:
        root_regressor: (R, V) regressor of the kinematic joints (the SMPL-X `J_regressor`, 55
            joints) used for the pelvis and wrist roots.
        body_joint_regressor: (Jb, V) joints of the body MPJPE / PA-MPJPE ("All"; SMPLer-X uses
            14 LSP-style joints on EHF, 3DPW uses the 14 H36M joints of SMPL).
        hand_joint_regressors: side -> (Jh, V) regressor of that hand's joints.
        hand_vertex_indices: side -> (Vh,) int64 indices of that hand's vertices (778 for
            SMPL-X's MANO part).
        pelvis_index: row of the pelvis in root_regressor.
        wrist_indices: side -> row of that wrist in root_regressor.
    """

    root_regressor: torch.Tensor
    body_joint_regressor: torch.Tensor
    hand_joint_regressors: dict[Side, torch.Tensor]
    hand_vertex_indices: dict[Side, torch.Tensor]
    pelvis_index: int = SMPLX_JOINT_INDEX['pelvis']
    wrist_indices: tuple[int, int] = (
        SMPLX_JOINT_INDEX['left_wrist'],
        SMPLX_JOINT_INDEX['right_wrist'],
    )

    def __post_init__(self) -> None:
        for table in (self.hand_joint_regressors, self.hand_vertex_indices):
            if set(table) != set(SIDES):
                raise ValueError(f'hand tables need exactly the keys {SIDES}; got {set(table)}')


def whole_body_errors(
    pred_vertices_m: torch.Tensor, gt_vertices_m: torch.Tensor, spec: WholeBodyEvalSpec
) -> dict[str, torch.Tensor]:
    """Whole-body and hand errors of SMPL-X meshes as in the paper's Tables 1-6.

    Keys (each (B,) mm):
        pa_pve_all_mm, pve_all_mm (pelvis-aligned), pa_mpjpe_all_mm, mpjpe_all_mm
        (pelvis-aligned body joints), and for hands '{metric}_{side}_hand_mm' and their L/R
        average '{metric}_hands_mm' for metric in pa_pve, pve (wrist-aligned), pa_mpjpe,
        mpjpe (wrist-aligned).

    Args:
        pred_vertices_m: (B, V, 3) predicted mesh, metres.
        gt_vertices_m: (B, V, 3) ground-truth mesh, metres.
        spec: regressors and hand vertex subsets.

    Returns:
        Dict of metric name -> (B,) tensor.
    """
    _check_pair(pred_vertices_m, gt_vertices_m)
    pred_roots = regress_joints(pred_vertices_m, spec.root_regressor)
    gt_roots = regress_joints(gt_vertices_m, spec.root_regressor)
    pred_pelvis, gt_pelvis = pred_roots[:, spec.pelvis_index], gt_roots[:, spec.pelvis_index]
    pred_body = regress_joints(pred_vertices_m, spec.body_joint_regressor)
    gt_body = regress_joints(gt_vertices_m, spec.body_joint_regressor)
    results = {
        'pa_pve_all_mm': pa_pve_mm(pred_vertices_m, gt_vertices_m),
        'pve_all_mm': pve_mm(pred_vertices_m, gt_vertices_m, pred_pelvis, gt_pelvis),
        'pa_mpjpe_all_mm': pa_mpjpe_mm(pred_body, gt_body),
        'mpjpe_all_mm': point_errors_mm(
            root_align(pred_body, pred_pelvis), root_align(gt_body, gt_pelvis)
        ).mean(dim=-1),
    }
    for side, wrist_index in zip(SIDES, spec.wrist_indices, strict=True):
        index = spec.hand_vertex_indices[side].to(pred_vertices_m.device)
        pred_hand = pred_vertices_m.index_select(1, index)
        gt_hand = gt_vertices_m.index_select(1, index)
        pred_wrist, gt_wrist = pred_roots[:, wrist_index], gt_roots[:, wrist_index]
        regressor = spec.hand_joint_regressors[side]
        pred_joints = regress_joints(pred_vertices_m, regressor)
        gt_joints = regress_joints(gt_vertices_m, regressor)
        results[f'pa_pve_{side}_hand_mm'] = pa_pve_mm(pred_hand, gt_hand)
        results[f'pve_{side}_hand_mm'] = pve_mm(pred_hand, gt_hand, pred_wrist, gt_wrist)
        results[f'pa_mpjpe_{side}_hand_mm'] = pa_mpjpe_mm(pred_joints, gt_joints)
        results[f'mpjpe_{side}_hand_mm'] = point_errors_mm(
            root_align(pred_joints, pred_wrist), root_align(gt_joints, gt_wrist)
        ).mean(dim=-1)
    for metric in ('pa_pve', 'pve', 'pa_mpjpe', 'mpjpe'):
        left, right = (results[f'{metric}_{side}_hand_mm'] for side in SIDES)
        results[f'{metric}_hands_mm'] = (left + right) / 2.0
    return results


def smpl_body_errors(
    pred_vertices_m: torch.Tensor,
    gt_joints_m: torch.Tensor,
    smplx_joint_regressor: torch.Tensor,
    eval_joints: tuple[int, ...],
    gt_joints_valid: torch.Tensor | None = None,
    pred_smpl_vertices_m: torch.Tensor | None = None,
    gt_smpl_vertices_m: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Body errors of SMPL-X predictions against SMPL ground truth (3DPW, Table 2).

    As SMPLer-X's 3DPW evaluation (see `protocols`): joints of the prediction from the SMPL-X
    `J_regressor`, of the ground truth from SMPL's; the scored rows `eval_joints` of both.
    MPJPE moves the prediction so its pelvis (row 0) lies on the ground-truth pelvis;
    PA-MPJPE fits a similarity on the scored joints. PVE (pelvis-aligned) only when both
    meshes are given on the SMPL topology.

    Args:
        pred_vertices_m: (B, 10475, 3) predicted SMPL-X meshes.
        gt_joints_m: (B, 24, 3) ground-truth SMPL joints, row 0 the pelvis.
        smplx_joint_regressor: (55, 10475) SMPL-X `J_regressor`.
        eval_joints: rows scored (`protocols.PW3D_EVAL_JOINTS`).
        gt_joints_valid: (B,) bool; invalid samples get NaN (not averaged).
        pred_smpl_vertices_m: (B, 6890, 3) the prediction on the SMPL topology, or None.
        gt_smpl_vertices_m: (B, 6890, 3) ground-truth SMPL mesh, or None.

    Returns:
        'mpjpe_all_mm', 'pa_mpjpe_all_mm' and, with both SMPL meshes, 'pve_all_mm'; (B,) each.
    """
    pred_joints = regress_joints(pred_vertices_m, smplx_joint_regressor)
    rows = list(eval_joints)
    pred_pelvis, gt_pelvis = pred_joints[:, 0], gt_joints_m[:, 0]
    pred_scored, gt_scored = pred_joints[:, rows], gt_joints_m[:, rows]
    results = {
        'mpjpe_all_mm': point_errors_mm(
            root_align(pred_scored, pred_pelvis), root_align(gt_scored, gt_pelvis)
        ).mean(dim=-1),
        'pa_mpjpe_all_mm': pa_mpjpe_mm(pred_scored, gt_scored),
    }
    if pred_smpl_vertices_m is not None and gt_smpl_vertices_m is not None:
        results['pve_all_mm'] = pve_mm(
            pred_smpl_vertices_m, gt_smpl_vertices_m, pred_pelvis, gt_pelvis
        )
    if gt_joints_valid is not None:
        valid = gt_joints_valid.to(pred_vertices_m.device)
        results = {k: torch.where(valid, v, torch.nan) for k, v in results.items()}
    return results
