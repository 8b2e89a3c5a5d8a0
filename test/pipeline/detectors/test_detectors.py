"""Person box sources: validation, the built-in follow front-end, plugin loading."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from hmr_ros.pipeline.detectors.base import DetectionError, Detections, PersonDetector
from hmr_ros.pipeline.detectors.follow import FollowConfig, FollowFrontEnd
from hmr_ros.pipeline.detectors.plugin import DetectorPluginError, load_detector


def test_detections_reject_unusable_boxes() -> None:
    with pytest.raises(DetectionError, match='NaN'):
        Detections(np.array([[0, 0, np.nan, 10]]), np.array([0.9]))
    with pytest.raises(DetectionError, match='x_max > x_min'):
        Detections(np.array([[10, 0, 5, 10]]), np.array([0.9]))
    with pytest.raises(DetectionError, match='2 boxes but 1 scores'):
        Detections(np.zeros((2, 4)) + [0, 0, 1, 1], np.array([0.9]))
    assert len(Detections.empty()) == 0


def test_filtered_keeps_confident_large_boxes_best_first() -> None:
    detections = Detections(
        np.array([[0, 0, 100, 200], [0, 0, 20, 200], [5, 5, 105, 205], [0, 0, 90, 90]]),
        np.array([0.6, 0.99, 0.9, 0.3]),
    )
    kept = detections.filtered(min_score=0.5, min_side_px=48, max_count=4)
    # Box 1 is too narrow (20 px), box 3 scores too low; 2 (0.9) then 0 (0.6).
    np.testing.assert_array_equal(kept.scores, np.array([0.9, 0.6], np.float32))
    assert len(detections.filtered(0.5, 48, max_count=1)) == 1


def test_follow_starts_with_the_whole_image_then_follows_the_joints() -> None:
    front_end = FollowFrontEnd(FollowConfig(margin=0.5, min_box_px=10))
    first = front_end.propose((480, 640))
    np.testing.assert_array_equal(first.boxes_px, [[0, 0, 640, 480]])
    # Joints spanning x 100..200, y 50..250: size (100, 200), margin 0.5 -> 50 and 100 px.
    joints = np.array([[100, 50], [200, 250], [150, 150]], np.float32)
    front_end.observe(joints, (480, 640))
    assert front_end.following
    np.testing.assert_allclose(front_end.propose((480, 640)).boxes_px, [[50, 0, 250, 350]])


def test_follow_falls_back_to_the_whole_image_when_the_person_leaves() -> None:
    front_end = FollowFrontEnd(FollowConfig(min_visible_fraction=0.5, min_box_px=10))
    front_end.observe(np.array([[100, 50], [200, 250]], np.float32), (480, 640))
    assert front_end.following
    # Three of four joints outside the image: below the visible fraction.
    outside = np.array([[-5, 10], [700, 10], [100, 900], [100, 100]], np.float32)
    front_end.observe(outside, (480, 640))
    assert not front_end.following
    front_end.observe(np.array([[100, 100], [104, 300]], np.float32), (480, 640))
    assert not front_end.following, 'a 4 px wide box is no person'


def test_load_detector_calls_the_factory_and_checks_the_protocol(monkeypatch) -> None:
    class BoxEverywhere:
        def __init__(self, score: float) -> None:
            self.score = score

        def detect(self, image_rgb: np.ndarray, stamp_s: float) -> Detections:
            height, width = image_rgb.shape[:2]
            return Detections(np.array([[0, 0, width, height]]), np.array([self.score]))

    module = types.ModuleType('fake_detectors')
    module.make = BoxEverywhere  # type: ignore[attr-defined]
    module.not_a_detector = lambda: object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, 'fake_detectors', module)

    detector = load_detector('fake_detectors:make', score=0.7)
    assert isinstance(detector, PersonDetector)
    result = detector.detect(np.zeros((20, 30, 3), np.uint8), 0.0)
    np.testing.assert_allclose(result.scores, [0.7])
    with pytest.raises(DetectorPluginError, match='no detect'):
        load_detector('fake_detectors:not_a_detector')
    with pytest.raises(DetectorPluginError, match="has no callable 'missing'"):
        load_detector('fake_detectors:missing')
    with pytest.raises(DetectorPluginError, match='cannot import'):
        load_detector('no_such_module_here:make')
    with pytest.raises(DetectorPluginError, match='package.module:factory'):
        load_detector('fake_detectors')
