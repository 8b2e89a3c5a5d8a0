"""output.hand_root: mesh wrists or registered roots, reconciled with the body's wrists."""

from __future__ import annotations

import pytest
import torch

from hmr_ros.models.dual_path import DualPathOutput
from hmr_ros.pipeline.hand_roots import HAND_ROOT_MAX_OFFSET_M, with_hand_roots


def _output(registered: torch.Tensor, valid: torch.Tensor) -> DualPathOutput:
    empty = {name: torch.zeros(0) for name in DualPathOutput._fields}
    wrist = torch.tensor([[[0.2, 0.0, 1.0], [-0.2, 0.0, 1.0]]])  # (P=1, 2 sides, 3)
    keypoints = wrist[:, :, None] + torch.linspace(0, 0.1, 21)[None, None, :, None]
    return DualPathOutput(
        **{
            **empty,
            'hand_wrist_position': wrist,
            'hand_keypoints': keypoints,
            'hand_root_registered': registered,
            'hand_registration_valid': valid,
        }
    )


def test_mesh_keeps_the_output() -> None:
    output = _output(torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool))
    assert with_hand_roots(output, 'mesh') is output


def test_registered_roots_move_wrist_and_keypoints_when_valid_and_near() -> None:
    """Left: registered 3 cm from the body wrist, valid: moved there, keypoints by the same
    3 cm. Right: registered 30 cm away (beyond the 10 cm limit): the body's wrist is kept."""
    registered = torch.tensor([[[0.23, 0.0, 1.0], [0.1, 0.0, 1.0]]])
    output = _output(registered, torch.ones(1, 2, dtype=torch.bool))
    moved = with_hand_roots(output, 'registered')
    assert torch.allclose(moved.hand_wrist_position[0, 0], torch.tensor([0.23, 0.0, 1.0]))
    assert torch.equal(moved.hand_wrist_position[0, 1], output.hand_wrist_position[0, 1])
    delta = moved.hand_keypoints - output.hand_keypoints
    assert torch.allclose(delta[0, 0], torch.tensor([0.03, 0.0, 0.0]).expand(21, 3))
    assert torch.equal(delta[0, 1], torch.zeros(21, 3))
    assert HAND_ROOT_MAX_OFFSET_M == pytest.approx(0.10)


def test_invalid_registrations_are_ignored_and_unknown_sources_refused() -> None:
    registered = torch.tensor([[[0.21, 0.0, 1.0], [-0.21, 0.0, 1.0]]])
    output = _output(registered, torch.tensor([[False, True]]))
    moved = with_hand_roots(output, 'registered')
    assert torch.equal(moved.hand_wrist_position[0, 0], output.hand_wrist_position[0, 0])
    assert torch.allclose(moved.hand_wrist_position[0, 1], torch.tensor([-0.21, 0.0, 1.0]))
    with pytest.raises(ValueError, match='mesh'):
        with_hand_roots(output, 'silhouette')


def test_runner_applies_the_runtime_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner passes every model output through with_hand_roots with the current setting,
    and a settings update switches it from the next frame on."""
    import dataclasses
    import time
    from pathlib import Path

    import cv2

    from hmr_ros.pipeline import runner as runner_module
    from hmr_ros.pipeline.frames import CameraIntrinsics
    from hmr_ros.pipeline.protocol import Frame, ModelOptions, PipelineOptions

    seen: list[str] = []

    def recording(output: DualPathOutput, source: str) -> DualPathOutput:
        seen.append(source)
        return with_hand_roots(output, source)

    monkeypatch.setattr(runner_module, 'with_hand_roots', recording)
    pipeline = runner_module.build_pipeline(
        PipelineOptions(model=ModelOptions(use_test_assets=True))
    )
    image_path = Path(__file__).resolve().parents[2] / 'resource' / 'data' / 'astronaut.jpg'
    bgr = cv2.imread(str(image_path))
    assert bgr is not None
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    intrinsics = CameraIntrinsics(fx=520.0, fy=520.0, cx=255.5, cy=255.5, width=512, height=512)
    frame = Frame(image, intrinsics, 100.0, 'camera_optical_frame', time.monotonic())
    pipeline.process(frame)
    settings = pipeline._settings
    pipeline.update_settings(dataclasses.replace(settings, hand_root='registered'))
    pipeline.process(dataclasses.replace(frame, stamp_s=100.1))
    assert seen == ['mesh', 'registered']
