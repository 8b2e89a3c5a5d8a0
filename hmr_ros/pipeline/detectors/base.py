"""Person boxes for the pipeline: the detector interface and its result type.

Three sources of person boxes plug into the real-time pipeline (docs/ros-interface.md):

- the built-in front-end (:mod:`hmr_ros.pipeline.detectors.follow`), which needs no extra model:
  the whole image for a single operator, then a box around that person's joints from the previous
  frame;
- any person detector that implements :class:`PersonDetector` (for example a YOLO or RT-DETR
  model you already run), handed to the pipeline in Python or named by an entry point
  (:mod:`hmr_ros.pipeline.detectors.plugin`);
- boxes from outside, e.g. the node's optional ``detections`` input, passed per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class DetectionError(ValueError):
    """A detector returned boxes that cannot be used (wrong shape, NaN, inverted boxes)."""


@dataclass(frozen=True)
class Detections:
    """Person boxes of one image.

    Attributes:
        boxes_px: (N, 4) float32 x_min, y_min, x_max, y_max in image pixels, N >= 0.
        scores: (N,) float32 detection scores in [0, 1].
    """

    boxes_px: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes_px, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(scores) != len(boxes):
            raise DetectionError(f'{len(boxes)} boxes but {len(scores)} scores')
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise DetectionError('person boxes or scores contain NaN or infinity')
        if (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
            raise DetectionError('person boxes must have x_max > x_min and y_max > y_min')
        object.__setattr__(self, 'boxes_px', boxes)
        object.__setattr__(self, 'scores', scores)

    @classmethod
    def empty(cls) -> Detections:
        """No person in the image."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def filtered(self, min_score: float, min_side_px: float, max_count: int) -> Detections:
        """The boxes scoring at least min_score with both sides at least min_side_px, best first.

        Args:
            min_score: score threshold.
            min_side_px: smallest accepted box width and height, pixels.
            max_count: keep at most this many boxes.
        """
        keep = self.kept_indices(min_score, min_side_px, max_count)
        return Detections(self.boxes_px[keep], self.scores[keep])

    def kept_indices(self, min_score: float, min_side_px: float, max_count: int) -> np.ndarray:
        """Indices of the boxes :meth:`filtered` keeps, in its order (best score first)."""
        sides = np.minimum(
            self.boxes_px[:, 2] - self.boxes_px[:, 0], self.boxes_px[:, 3] - self.boxes_px[:, 1]
        )
        keep = np.flatnonzero((self.scores >= min_score) & (sides >= min_side_px))
        return keep[np.argsort(-self.scores[keep], kind='stable')][:max_count]


@runtime_checkable
class PersonDetector(Protocol):
    """What the pipeline needs from a person detector.

    ``detect`` receives the decoded RGB image and returns every person box it finds; the
    pipeline applies its own score, size and count limits (``detection.*`` parameters).
    """

    def detect(self, image_rgb: np.ndarray, stamp_s: float) -> Detections:
        """Finds people in one image.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            stamp_s: acquisition time of the image, seconds.

        Returns:
            The person boxes in image pixels with their scores.
        """
        ...
