"""External person boxes (``detection.source: external``) matched to images by header stamp.

The ``detections`` topic carries boxes computed by another node, usually from the same camera
images, so an image's boxes arrive *after* the image. The node keeps the most recent arrays in a
:class:`DetectionBuffer` (the subscription callback adds, the worker thread reads) and, just
before processing an image, waits at most ``detection.external_wait_s`` until an array stamped
at or after the image has arrived; it then takes the array closest in stamp within
``detection.external_slop_s`` (:func:`closest_detections`). Waiting for a later array matters:
at 30 Hz the previous image's boxes are 33 ms away, inside the default 50 ms slop, and would
otherwise win over the boxes of this image that are still on their way.

No array within the slop means no boxes for this image: the node then processes it with an empty
:class:`~hmr_ros.pipeline.detectors.base.Detections` (no persons; tracks coast, then are lost)
and counts it in the diagnostics. It never falls back to the built-in front-end, which would
mix two box sources in one track history.

No ROS types here: stamps are integer nanoseconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from hmr_ros.pipeline.detectors.base import Detections

BUFFER_CAPACITY = 10
"""Arrays kept: a third of a second at 30 Hz, more than any sensible slop covers."""


def closest_detections(
    candidates: Iterable[tuple[int, Detections]], stamp_ns: int, slop_ns: int
) -> Detections | None:
    """The detections whose stamp is closest to ``stamp_ns``, if within ``slop_ns``.

    Args:
        candidates: ``(stamp_ns, detections)`` pairs in any order.
        stamp_ns: The image's header stamp, nanoseconds.
        slop_ns: Largest accepted stamp difference, nanoseconds (inclusive).

    Returns:
        The closest detections (the earlier one on a tie), or None when none is within the slop.
    """
    best: Detections | None = None
    best_gap = slop_ns + 1
    for candidate_ns, detections in sorted(candidates, key=lambda pair: pair[0]):
        gap = abs(candidate_ns - stamp_ns)
        if gap < best_gap:
            best, best_gap = detections, gap
    return best


class DetectionBuffer:
    """The most recent external detection arrays, thread-safe (one writer, one reader).

    Args:
        capacity: Arrays kept; older ones are dropped.
    """

    def __init__(self, capacity: int = BUFFER_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f'capacity must be at least 1, got {capacity}')
        self._arrays: deque[tuple[int, Detections]] = deque(maxlen=capacity)
        self._condition = threading.Condition()
        self._closed = False

    def add(self, stamp_ns: int, detections: Detections) -> None:
        """Keep one array (subscription callback) and wake a waiting reader."""
        with self._condition:
            self._arrays.append((stamp_ns, detections))
            self._condition.notify_all()

    def close(self) -> None:
        """Wake and release a waiting reader for good (deactivation)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return len(self._arrays)

    def match(self, stamp_ns: int, slop_ns: int, wait_s: float) -> Detections | None:
        """The detections of one image, after waiting for an array stamped at or after it.

        The wait ends when such an array arrives, after ``wait_s``, or on :meth:`close` (see
        the module docstring).

        Args:
            stamp_ns: The image's header stamp, nanoseconds.
            slop_ns: Largest accepted stamp difference, nanoseconds.
            wait_s: Longest wait, seconds; 0 matches against what has arrived.

        Returns:
            The closest detections within the slop, or None.
        """
        deadline = time.monotonic() + wait_s
        with self._condition:
            while not self._closed:
                if any(candidate_ns >= stamp_ns for candidate_ns, _ in self._arrays):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    break
                self._condition.wait(remaining)
            return closest_detections(list(self._arrays), stamp_ns, slop_ns)
