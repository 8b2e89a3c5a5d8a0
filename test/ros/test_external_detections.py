"""Tests for hmr_ros.ros.external_detections: stamp matching of external person boxes."""

from __future__ import annotations

import threading
import time

import numpy as np

from hmr_ros.pipeline.detectors.base import Detections
from hmr_ros.ros.external_detections import DetectionBuffer, closest_detections

MS = 1_000_000  # nanoseconds


def boxes(x_min: float) -> Detections:
    """One box whose x_min tells the arrays apart."""
    return Detections(np.array([[x_min, 0.0, x_min + 10.0, 20.0]]), np.array([0.9]))


def x_min_of(detections: Detections | None) -> float | None:
    return None if detections is None else float(detections.boxes_px[0, 0])


def test_closest_within_the_slop_wins_and_nothing_outside_it() -> None:
    candidates = [(1000 * MS, boxes(1)), (1033 * MS, boxes(2)), (1066 * MS, boxes(3))]
    assert x_min_of(closest_detections(candidates, 1040 * MS, 50 * MS)) == 2
    assert x_min_of(closest_detections(reversed(candidates), 1060 * MS, 50 * MS)) == 3
    # Slop is inclusive: 1066 - 1016 = 50 ms exactly; 1000 -> 1016 is closer, though.
    assert x_min_of(closest_detections(candidates, 1016 * MS, 50 * MS)) == 1
    assert x_min_of(closest_detections(candidates, 1116 * MS, 50 * MS)) == 3
    assert closest_detections(candidates, 1117 * MS, 50 * MS) is None
    assert closest_detections([], 1000 * MS, 50 * MS) is None
    # A tie goes to the earlier array.
    assert x_min_of(closest_detections(candidates[:2], 1016 * MS + MS // 2, 50 * MS)) == 1


def test_match_waits_for_the_images_own_boxes_instead_of_the_previous_ones() -> None:
    """At 30 Hz the previous image's boxes (33 ms earlier) lie inside a 50 ms slop; the
    image's own boxes, arriving 30 ms later, must win."""
    buffer = DetectionBuffer()
    buffer.add(967 * MS, boxes(1))
    threading.Timer(0.03, buffer.add, args=(1000 * MS, boxes(2))).start()
    start = time.monotonic()
    assert x_min_of(buffer.match(1000 * MS, 50 * MS, wait_s=2.0)) == 2
    assert time.monotonic() - start < 1.5, 'returns when the later array arrives'


def test_match_after_the_wait_takes_the_best_earlier_array_or_none() -> None:
    buffer = DetectionBuffer()
    buffer.add(967 * MS, boxes(1))
    start = time.monotonic()
    assert x_min_of(buffer.match(1000 * MS, 50 * MS, wait_s=0.05)) == 1
    assert time.monotonic() - start >= 0.04
    assert buffer.match(1100 * MS, 50 * MS, wait_s=0.0) is None
    # An empty array with a matching stamp is a match (nobody in the image), not None.
    buffer.add(1100 * MS, Detections.empty())
    matched = buffer.match(1100 * MS, 50 * MS, wait_s=0.0)
    assert matched is not None and len(matched) == 0


def test_capacity_keeps_the_newest_and_close_releases_a_waiting_reader() -> None:
    buffer = DetectionBuffer(capacity=3)
    for index in range(5):
        buffer.add(index * 100 * MS, boxes(index))
    assert len(buffer) == 3
    assert buffer.match(0, 10 * MS, wait_s=0.0) is None  # the oldest two were dropped
    assert x_min_of(buffer.match(200 * MS, 10 * MS, wait_s=0.0)) == 2
    threading.Timer(0.05, buffer.close).start()
    start = time.monotonic()
    assert buffer.match(10_000 * MS, 10 * MS, wait_s=5.0) is None
    assert time.monotonic() - start < 2.0
