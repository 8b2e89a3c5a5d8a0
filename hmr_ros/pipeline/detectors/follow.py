"""The built-in person front-end: no detector model, one operator.

For a robot with one person in front of it (the common teleoperation case) a person detector
costs latency and a model file for little gain. This front-end proposes the whole image until the
pipeline has seen the person, then a box around the joints it found in the previous frame,
expanded by a margin (people move between frames). When the person is lost (too few joints inside
the image, or a box too small to be a person) it falls back to the whole image.

More than one person needs a real detector (a ``PersonDetector``, see ``base.py``)
or boxes from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hmr_ros.pipeline.detectors.base import Detections

WHOLE_IMAGE_SCORE = 1.0
"""Score of the whole-image proposal: it is a region to look at, not a detection."""


@dataclass(frozen=True)
class FollowConfig:
    """Settings of the built-in front-end.

    Attributes:
        margin: fraction of the joints' box size added on every side.
        min_box_px: a joints' box with a side shorter than this counts as lost, pixels.
        min_visible_fraction: fewer of the joints inside the image than this counts as lost.
    """

    margin: float = 0.25
    min_box_px: float = 48.0
    min_visible_fraction: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 2.0:
            raise ValueError(f'FollowConfig.margin must be in [0, 2], got {self.margin}')
        if self.min_box_px < 1.0:
            raise ValueError(f'FollowConfig.min_box_px must be >= 1, got {self.min_box_px}')
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise ValueError(
                'FollowConfig.min_visible_fraction must be in (0, 1], '
                f'got {self.min_visible_fraction}'
            )


def points_in_image(points_px: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(K,) bool: which of (K, 2) pixel points are finite and inside an image of this size."""
    height, width = image_hw
    x, y = points_px[:, 0], points_px[:, 1]
    return np.isfinite(points_px).all(axis=1) & (x >= 0) & (x < width) & (y >= 0) & (y < height)


class FollowFrontEnd:
    """Whole image first, then the previous frame's person box (one operator)."""

    def __init__(self, config: FollowConfig | None = None) -> None:
        self._config = config or FollowConfig()
        self._box_px: np.ndarray | None = None

    @property
    def following(self) -> bool:
        """True once a person was seen and their box is proposed instead of the whole image."""
        return self._box_px is not None

    def set_config(self, config: FollowConfig) -> None:
        """Changes the settings; the followed box is kept."""
        self._config = config

    def reset(self) -> None:
        """Forgets the person: the next proposal is the whole image."""
        self._box_px = None

    def propose(self, image_hw: tuple[int, int]) -> Detections:
        """The box to run the body model on for the next image.

        Args:
            image_hw: image height and width, pixels.

        Returns:
            One box: the followed person's, or the whole image.
        """
        height, width = image_hw
        if self._box_px is None:
            box = np.array([0.0, 0.0, width, height], np.float32)
        else:
            box = self._box_px.copy()
        return Detections(box[None], np.array([WHOLE_IMAGE_SCORE], np.float32))

    def observe(self, keypoints_px: np.ndarray, image_hw: tuple[int, int]) -> None:
        """Updates the followed box from the person's 2D joints in the image just processed.

        Args:
            keypoints_px: (K, 2) projected joints of the person, pixels; NaN rows are ignored.
            image_hw: image height and width, pixels.
        """
        height, width = image_hw
        points = np.asarray(keypoints_px, dtype=np.float64).reshape(-1, 2)
        inside = points_in_image(points, image_hw)
        if len(points) == 0 or inside.mean() < self._config.min_visible_fraction:
            self._box_px = None
            return
        lower, upper = points[inside].min(axis=0), points[inside].max(axis=0)
        size = upper - lower
        if size.min() < self._config.min_box_px:
            self._box_px = None
            return
        lower = np.maximum(lower - self._config.margin * size, 0.0)
        upper = np.minimum(upper + self._config.margin * size, [width, height])
        self._box_px = np.concatenate([lower, upper]).astype(np.float32)
