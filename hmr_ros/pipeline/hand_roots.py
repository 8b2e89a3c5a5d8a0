"""Which camera-space hand roots the pipeline publishes: the mesh's or the registered ones.

The dual path reports two wrist positions per hand (models/dual_path.py, steps (h) and (i)):
the wrist joint of the fused SMPL-X mesh, and the root found by CMR-style 2D registration of
the hand onto its own 2D keypoints (geometry/hand_root.py; geometry/hand_root_silhouette.py
adds CMR's 1D silhouette step for models that predict a mask). ``output.hand_root`` chooses:

- 'mesh' (default): hands stay attached to the body mesh (TF wrist == mesh wrist joint);
- 'registered': each hand whose registration is valid and lies within
  ``HAND_ROOT_MAX_OFFSET_M`` of the body's wrist is moved, wrist and keypoints together, to
  the registered root. Further away, the two estimates disagree beyond what a hand's size or
  depth error explains (a wrong 2D hand, a swapped side), and the body's wrist is kept. The
  skeleton joints stay the mesh's: one connected SMPL-X mesh cannot move a hand on its own.

Everything stays on the device (``torch.where``), so the choice adds no host synchronisation.
"""

from __future__ import annotations

import torch

from hmr_ros.models.dual_path import DualPathOutput
from hmr_ros.pipeline.protocol import HAND_ROOT_SOURCES

__all__ = ['HAND_ROOT_MAX_OFFSET_M', 'with_hand_roots']

HAND_ROOT_MAX_OFFSET_M = 0.10
"""Largest registered-to-body wrist distance accepted: about half a hand length (MANO's
wrist-to-middle-tip is about 0.18 m), several times the registration's depth error from a 5 %
hand-size error at 0.6 m (3 cm, seed-systems study)."""


def with_hand_roots(
    output: DualPathOutput,
    source: str,
    max_offset_m: float = HAND_ROOT_MAX_OFFSET_M,
) -> DualPathOutput:
    """The output with the hand roots of ``source`` (module docstring).

    Args:
        output: dual-path output; reads ``hand_wrist_position`` (P, 2, 3),
            ``hand_keypoints`` (P, 2, 21, 3), ``hand_root_registered`` (P, 2, 3) and
            ``hand_registration_valid`` (P, 2).
        source: 'mesh' (unchanged) or 'registered'.
        max_offset_m: largest accepted distance between registered and body wrist, metres.

    Returns:
        The same output, or one whose ``hand_wrist_position`` and ``hand_keypoints`` are
        moved to the accepted registered roots.

    Raises:
        ValueError: unknown source.
    """
    if source not in HAND_ROOT_SOURCES:
        raise ValueError(f'hand root source must be one of {HAND_ROOT_SOURCES}; got {source!r}')
    if source == 'mesh':
        return output
    wrist = output.hand_wrist_position
    registered = output.hand_root_registered.to(wrist.dtype)
    shift = registered - wrist
    accepted = output.hand_registration_valid & (shift.norm(dim=-1) <= max_offset_m)
    shift = torch.where(accepted[..., None], shift, torch.zeros_like(shift))
    return output._replace(
        hand_wrist_position=wrist + shift,
        hand_keypoints=output.hand_keypoints + shift[:, :, None],
    )
