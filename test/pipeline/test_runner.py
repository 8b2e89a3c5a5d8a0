"""The real-time pipeline end to end on tiny models: boxes, dual path, tracks, smoothing."""

from __future__ import annotations

import dataclasses
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hmr_ros.checkpoints.project_format import sha256_file
from hmr_ros.checkpoints.safe_load import CheckpointNotFoundError
from hmr_ros.models.devices import DeviceUnavailableError, resolve_device, resolve_precision
from hmr_ros.pipeline.detectors.base import Detections
from hmr_ros.pipeline.frames import CameraIntrinsics
from hmr_ros.pipeline.protocol import Frame, ModelOptions, PipelineOptions, RuntimeSettings
from hmr_ros.pipeline.results import FrameResult
from hmr_ros.pipeline.runner import (
    HAND_KEYPOINT_ROWS,
    PUBLISHED_JOINT_NAMES,
    PipelineConfigurationError,
    PipelineRunner,
    build_pipeline,
)
from hmr_ros.pipeline.tracking import TrackState

REPO = Path(__file__).resolve().parents[2]
IMAGE = cv2.cvtColor(
    cv2.imread(str(REPO / 'resource' / 'data' / 'astronaut.jpg')), cv2.COLOR_BGR2RGB
)
INTRINSICS = CameraIntrinsics(fx=520.0, fy=520.0, cx=255.5, cy=255.5, width=512, height=512)


def frame(index: int, image: np.ndarray = IMAGE) -> Frame:
    return Frame(image, INTRINSICS, 100.0 + index / 30, 'camera_optical_frame', time.monotonic())


# Random stand-in weights give near-uniform heatmaps, hence presence scores near 0 (see
# test_stand_in_model_reports_nobody_at_the_default_threshold): tests of the rest of the pipeline
# on the built-in front-end accept every proposal.
ACCEPT_ALL = dataclasses.replace(RuntimeSettings(), person_threshold=0.0)


@pytest.fixture(scope='module')
def stand_in_pipeline() -> PipelineRunner:
    return build_pipeline(
        PipelineOptions(model=ModelOptions(use_test_assets=True), settings=ACCEPT_ALL)
    )


@pytest.fixture(scope='module')
def asset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hmr_ros.cli.assets import make_test_assets

    folder = tmp_path_factory.mktemp('assets')
    make_test_assets(folder, seed=3)
    return folder


def test_one_operator_keeps_one_id_and_gets_confirmed(stand_in_pipeline: PipelineRunner) -> None:
    stand_in_pipeline.reset_tracking()
    results = [stand_in_pipeline.process(frame(i)) for i in range(4)]
    assert [len(r.persons) for r in results] == [1, 1, 1, 1]
    assert len({r.persons[0].track_id for r in results}) == 1
    # min_hits 2: tentative on the first frame, tracked from the second on.
    states = [r.persons[0].tracking_state for r in results]
    assert states == [TrackState.TENTATIVE] + [TrackState.TRACKED] * 3
    indices = [r.frame_index for r in results]
    assert indices == list(range(indices[0], indices[0] + 4))
    last = results[-1]
    assert last.stamp_s == pytest.approx(100.0 + 3 / 30)
    assert last.frame_id == 'camera_optical_frame'
    assert set(last.stage_times_ms) >= {'detect', 'upload', 'model', 'track', 'smooth'}


def test_person_fields_have_the_documented_shapes(stand_in_pipeline: PipelineRunner) -> None:
    person = stand_in_pipeline.process(frame(10)).persons[0]
    assert person.joints_m.shape == (len(PUBLISHED_JOINT_NAMES), 3) == (65, 3)
    assert person.keypoints_2d_px.shape == (65, 2)
    assert person.vertices_m.shape == (0, 3), 'vertices only when publish_vertices is set'
    assert person.body_pose.shape == (21, 3) and person.left_hand_pose.shape == (15, 3)
    for hand in (person.left_hand, person.right_hand):
        assert hand.keypoints_m.shape == (21, 3) and hand.finger_pose_aa.shape == (15, 3)
        assert hand.wrist_rotation.shape == (3, 3)
        np.testing.assert_allclose(
            hand.wrist_rotation @ hand.wrist_rotation.T, np.eye(3), atol=1e-4
        )
    assert all(np.isfinite(person.joints_m).ravel())
    # A hand's keypoints are the skeleton's hand rows (wrist included), after smoothing too.
    for side, hand in (('left', person.left_hand), ('right', person.right_hand)):
        np.testing.assert_allclose(hand.keypoints_m, person.joints_m[HAND_KEYPOINT_ROWS[side]])
        np.testing.assert_allclose(hand.wrist_position_m, hand.keypoints_m[0])


def test_description_states_stand_in_weights_and_a_valid_skeleton(
    stand_in_pipeline: PipelineRunner,
) -> None:
    description = stand_in_pipeline.describe()
    assert description.synthetic_weights
    assert 'meaningless' in description.weights_note
    assert description.joint_names == PUBLISHED_JOINT_NAMES
    parents = description.joint_parents
    assert parents[0] == -1 and all(-1 < p < i for i, p in enumerate(parents) if i > 0)
    assert description.faces.shape == (20908, 3)
    left, right = description.left_hand_vertex_ids, description.right_hand_vertex_ids
    assert len(left) > 0 and len(right) > 0 and not set(left) & set(right)


def test_vertices_follow_the_runtime_setting(stand_in_pipeline: PipelineRunner) -> None:
    settings = stand_in_pipeline._settings
    stand_in_pipeline.update_settings(dataclasses.replace(settings, publish_vertices=True))
    try:
        person = stand_in_pipeline.process(frame(20)).persons[0]
        assert person.vertices_m.shape == (10475, 3)
    finally:
        stand_in_pipeline.update_settings(settings)


def test_external_boxes_give_one_tracked_person_per_confident_box(
    stand_in_pipeline: PipelineRunner,
) -> None:
    stand_in_pipeline.reset_tracking()
    boxes = Detections(
        np.array([[0, 0, 250, 500], [260, 0, 511, 500], [10, 10, 200, 200]]),
        np.array([0.9, 0.8, 0.2]),  # the last is below detection.person_threshold (0.5)
    )
    stand_in_pipeline.update_settings(RuntimeSettings())  # person_threshold 0.5
    try:
        result = stand_in_pipeline.process(frame(30), detections=boxes)
    finally:
        stand_in_pipeline.update_settings(ACCEPT_ALL)
    assert len(result.persons) == 2
    assert len({p.track_id for p in result.persons}) == 2
    np.testing.assert_allclose(result.persons[0].box_px, [0, 0, 250, 500])


class TwoPersonDetector:
    """Two confident side-by-side boxes in any image (a stand-in for a user's detector)."""

    def __init__(self, score: float) -> None:
        self.score = score
        self.calls = 0

    def detect(self, image_rgb: np.ndarray, stamp_s: float) -> Detections:
        self.calls += 1
        return Detections(
            np.array([[0, 0, 250, 500], [260, 0, 511, 500]]), np.array([self.score, self.score])
        )


def test_detector_plugin_named_in_the_options_finds_two_persons(monkeypatch) -> None:
    made: list[TwoPersonDetector] = []

    def make_detector() -> TwoPersonDetector:
        made.append(TwoPersonDetector(0.9))
        return made[-1]

    module = types.ModuleType('user_detectors_for_test')
    module.make_detector = make_detector  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, 'user_detectors_for_test', module)
    options = PipelineOptions(
        model=ModelOptions(use_test_assets=True),
        detector_plugin='user_detectors_for_test:make_detector',
    )
    pipeline = build_pipeline(options)
    result = pipeline.process(frame(50))
    assert len(made) == 1 and made[0].calls == 1
    assert len(result.persons) == 2
    assert sorted(p.box_px[0] for p in result.persons) == [0, 260]
    # Boxes passed per frame take precedence over the plugin.
    one_box = Detections(np.array([[100, 50, 400, 500]]), np.array([0.8]))
    assert len(pipeline.process(frame(51), detections=one_box).persons) >= 1
    assert made[0].calls == 1
    pipeline.close()


@pytest.mark.parametrize(
    'entry_point, reason',
    [
        ('no_colon_here', "must look like 'package.module:factory'"),
        ('hmr_ros_no_such_module:make', 'cannot import detector module'),
        ('user_detectors_for_test:missing', "has no callable 'missing'"),
        ('user_detectors_for_test:not_a_detector', 'has no detect'),
    ],
)
def test_bad_detector_plugin_names_the_parameter(monkeypatch, entry_point, reason) -> None:
    module = types.ModuleType('user_detectors_for_test')
    module.not_a_detector = lambda: object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, 'user_detectors_for_test', module)
    options = PipelineOptions(
        model=ModelOptions(use_test_assets=True), detector_plugin=entry_point
    )
    with pytest.raises(PipelineConfigurationError, match='detection.plugin') as raised:
        build_pipeline(options)
    assert reason in str(raised.value)


def test_smoothing_moves_toward_the_new_measurement(stand_in_pipeline: PipelineRunner) -> None:
    """One-Euro output lies between the previous output and the new raw estimate."""
    shifted = np.roll(IMAGE, 24, axis=1)
    raw_options = PipelineOptions(
        model=ModelOptions(use_test_assets=True),
        settings=dataclasses.replace(ACCEPT_ALL, smoothing_enable=False),
    )
    raw = build_pipeline(raw_options)
    raw_results = [raw.process(frame(i, img)) for i, img in enumerate((IMAGE, shifted))]
    stand_in_pipeline.reset_tracking()
    smooth_results = [
        stand_in_pipeline.process(frame(i, img)) for i, img in enumerate((IMAGE, shifted))
    ]
    first_raw, second_raw = (r.persons[0].transl for r in raw_results)
    first_smooth, second_smooth = (r.persons[0].transl for r in smooth_results)
    np.testing.assert_allclose(first_smooth, first_raw, atol=1e-6)  # first sample passes
    assert np.linalg.norm(second_raw - first_raw) > 1e-3, 'the shift must change the estimate'
    step = np.dot(second_smooth - first_raw, second_raw - first_raw)
    assert 0 < step < np.dot(second_raw - first_raw, second_raw - first_raw)


def test_pipeline_from_official_layout_files(asset_dir: Path) -> None:
    options = PipelineOptions(
        model=ModelOptions(
            whole_body_variant='smplerx_tiny',
            hand_variant='hamer_tiny',
            whole_body_checkpoint=str(asset_dir / 'smpler_x_tiny.pth.tar'),
            hand_checkpoint=str(asset_dir / 'hamer_tiny.safetensors'),
            body_model_dir=str(asset_dir),
        ),
        settings=ACCEPT_ALL,
    )
    pipeline = build_pipeline(options)
    result: FrameResult = pipeline.process(frame(0))
    assert len(result.persons) == 1
    description = pipeline.describe()
    # Files of the test-only tiny variants can only be stand-ins: reported as such.
    assert description.synthetic_weights
    assert description.weights_note.startswith('STAND-IN WEIGHTS')
    assert description.model_version == 'smplerx_tiny+hamer_tiny'
    assert description.checkpoint_sha256[1] == sha256_file(asset_dir / 'hamer_tiny.safetensors')
    assert 'baseline' in description.weights_note.lower()
    pipeline.close()


def test_missing_files_name_the_parameter(asset_dir: Path) -> None:
    with pytest.raises(PipelineConfigurationError, match='model.whole_body_checkpoint'):
        build_pipeline(PipelineOptions(model=ModelOptions()))
    with pytest.raises(PipelineConfigurationError, match='model.body_model_dir'):
        build_pipeline(
            PipelineOptions(
                model=ModelOptions(
                    whole_body_checkpoint=str(asset_dir / 'smplerx_tiny.safetensors'),
                    hand_checkpoint=str(asset_dir / 'hamer_tiny.safetensors'),
                )
            )
        )
    with pytest.raises(CheckpointNotFoundError, match='no_such.safetensors'):
        build_pipeline(
            PipelineOptions(
                model=ModelOptions(
                    whole_body_checkpoint=str(asset_dir / 'no_such.safetensors'),
                    hand_checkpoint=str(asset_dir / 'hamer_tiny.safetensors'),
                    body_model_dir=str(asset_dir),
                )
            )
        )


def test_device_and_precision_resolution() -> None:
    assert resolve_precision('auto', torch.device('cpu')) == torch.float32
    assert resolve_precision('fp16', torch.device('cpu')) == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match='model.device'):
            resolve_device('cuda:0', 'model.device')
        assert resolve_device('auto') == torch.device('cpu')


@pytest.mark.parametrize(
    'device',
    [
        'cpu',
        pytest.param(
            'cuda',
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA'),
            ],
        ),
    ],
)
def test_uploader_prefetch_gives_the_same_tensor_and_keeps_the_newest(device: str) -> None:
    from hmr_ros.pipeline.runner import FrameUploader

    uploader = FrameUploader(torch.device(device), capacity=2)
    images = [np.roll(IMAGE, shift, axis=1) for shift in (0, 5, 9)]
    for image in images:
        uploader.prefetch(image)
    expected = torch.from_numpy(images[2]).permute(2, 0, 1)[None].float() / 255
    got = uploader.upload(images[2])
    torch.testing.assert_close(got.cpu(), expected)
    assert (uploader.prefetch_hits, uploader.prefetch_misses) == (1, 0)
    uploader.upload(images[0])  # evicted: capacity 2 keeps the two newest prefetches
    assert (uploader.prefetch_hits, uploader.prefetch_misses) == (1, 1)
    assert got.shape == (1, 3, 512, 512) and got.device.type == device


def test_prefetched_frames_give_the_same_result(stand_in_pipeline: PipelineRunner) -> None:
    stand_in_pipeline.reset_tracking()
    plain = stand_in_pipeline.process(frame(40)).persons[0]
    stand_in_pipeline.reset_tracking()
    prefetched_frame = frame(40)
    stand_in_pipeline.prefetch(prefetched_frame)
    prefetched = stand_in_pipeline.process(prefetched_frame).persons[0]
    np.testing.assert_array_equal(plain.joints_m, prefetched.joints_m)


# ---------------------------------------------------------------------- person presence

BLANK = np.full_like(IMAGE, 128)
NOISE = np.random.default_rng(0).integers(0, 256, IMAGE.shape, dtype=np.uint8)


class ScriptedPresence(torch.nn.Module):
    """The stand-in dual path with its person_score replaced by a scripted one per image.

    Stands for a trained model: blank and noise images get the low scores of flat heatmaps,
    the astronaut a confident one.
    """

    def __init__(self, model: torch.nn.Module, scores: dict[int, float]) -> None:
        super().__init__()
        self.model = model
        self.scores = scores  # image_key -> score

    def forward(self, image, boxes, batch_index, intrinsics):  # type: ignore[no-untyped-def]
        output = self.model(image, boxes, batch_index, intrinsics)
        key = round(float(image.double().mul(255).std()))
        return output._replace(person_score=torch.full_like(output.person_score, self.scores[key]))


def image_key(image: np.ndarray) -> int:
    """Tells the test images apart: their pixel standard deviation, rounded (0, 74, ...)."""
    return round(float(image.astype(np.float64).std()))


def scripted_runner(stand_in: PipelineRunner, scores: dict[int, float]) -> PipelineRunner:
    return PipelineRunner(
        ScriptedPresence(stand_in._model, scores),
        stand_in.describe(),
        PipelineOptions(model=ModelOptions(use_test_assets=True)),
        torch.device('cpu'),
        torch.float32,
    )


def test_blank_and_noise_images_give_no_persons(stand_in_pipeline: PipelineRunner) -> None:
    """Built-in front-end, default detection.person_threshold 0.5: images whose presence score
    is low report nobody, on every frame (no track, hence no operator); a person image whose
    score passes is reported with that score as its confidence."""
    scores = {image_key(BLANK): 0.03, image_key(NOISE): 0.2, image_key(IMAGE): 0.9}
    runner = scripted_runner(stand_in_pipeline, scores)
    for index in range(6):
        image = BLANK if index % 2 == 0 else NOISE
        assert runner.process(frame(index, image)).persons == ()
    results = [runner.process(frame(10 + i)) for i in range(3)]
    assert [len(r.persons) for r in results] == [1, 1, 1]
    person = results[-1].persons[0]
    assert person.tracking_state == TrackState.TRACKED
    assert person.confidence == pytest.approx(0.9)
    assert person.joint_confidence.shape == (len(PUBLISHED_JOINT_NAMES),)
    for side, hand in (('left', person.left_hand), ('right', person.right_hand)):
        np.testing.assert_array_equal(
            hand.keypoint_confidence, person.joint_confidence[HAND_KEYPOINT_ROWS[side]]
        )
    assert person.root_velocity_mps.shape == (3,)


def test_a_person_whose_score_drops_is_no_longer_tracked(
    stand_in_pipeline: PipelineRunner,
) -> None:
    """The first frame below the threshold turns the track PREDICTED (not observed), then LOST."""
    scores = {image_key(IMAGE): 0.9, image_key(BLANK): 0.1}
    runner = scripted_runner(stand_in_pipeline, scores)
    states = [runner.process(frame(i)).persons[0].tracking_state for i in range(3)]
    assert states[-1] == TrackState.TRACKED
    after = [runner.process(frame(3 + i, BLANK)).persons for i in range(12)]
    assert after[0][0].tracking_state == TrackState.PREDICTED
    assert [p.tracking_state for persons in after for p in persons][-1] == TrackState.LOST
    assert after[-1] == ()


def test_stand_in_model_reports_nobody_at_the_default_threshold() -> None:
    """Random weights give near-uniform heatmaps (peak mass near the uniform value), so their
    presence score is far below 0.5: the stand-ins never invent a TRACKED operator."""
    pipeline = build_pipeline(PipelineOptions(model=ModelOptions(use_test_assets=True)))
    for index in range(3):
        assert pipeline.process(frame(index, BLANK)).persons == ()
        assert pipeline.process(frame(index + 3)).persons == ()
    pipeline.close()


def test_uploader_does_not_hold_copies_of_huge_images() -> None:
    """An image whose float copy exceeds the prefetch budget is not prefetched (one float copy
    at upload instead of one per prefetch slot); smaller ones within the budget are."""
    from hmr_ros.pipeline.runner import FrameUploader

    small = np.zeros((10, 10, 3), np.uint8)
    budget = small.size * 4 * 2  # room for two small frames
    uploader = FrameUploader(torch.device('cpu'), capacity=4, max_prefetch_bytes=budget)
    huge = np.zeros((100, 100, 3), np.uint8)
    uploader.prefetch(huge)
    assert uploader._ready == []
    frames = [small.copy() for _ in range(3)]
    for image in frames:
        uploader.prefetch(image)
    kept = [entry[0] for entry in uploader._ready]
    assert len(kept) == 2 and kept[0] is frames[1] and kept[1] is frames[2]
    assert uploader.upload(huge).shape == (1, 3, 100, 100)
    assert (uploader.prefetch_hits, uploader.prefetch_misses) == (0, 1)
