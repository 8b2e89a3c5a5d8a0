"""The shipped person detectors on tiny model files built here in the official output layouts.

The ONNX graphs are written with onnx.helper: constant outputs in the exact layout of a YOLOX
export (tools/export_onnx.py: (1, N, 5 + C) rows for the strides 8, 16, 32, raw offsets and log
sizes, sigmoid scores) and of an mmdeploy RTMDet export (dets (1, N, 5), labels (1, N)), with
one score wired to an input pixel so the preprocessing (BGR order, 0..255 or mean/std,
top-left letterbox) is checked too. Expected boxes are decoded by hand from those layouts.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

from onnx import TensorProto, helper  # noqa: E402

from hmr_ros.pipeline.detectors.onnx_detector import (  # noqa: E402
    DetectorFileError,
    OnnxPersonDetector,
)
from hmr_ros.pipeline.detectors.plugin import (  # noqa: E402
    DetectorOptions,
    DetectorPluginError,
    load_configured_detector,
)
from hmr_ros.pipeline.protocol import ModelOptions, PipelineOptions  # noqa: E402
from hmr_ros.pipeline.runner import PipelineConfigurationError, build_pipeline  # noqa: E402

INPUT = 64  # network input side
ROWS = sum((INPUT // s) ** 2 for s in (8, 16, 32))  # 64 + 16 + 4 = 84 grid cells
CLASSES = 2  # 0 person, 1 something else
# Source image 128 wide, 96 high: ratio = min(64 / 96, 64 / 128) = 0.5, image at the top left.
IMAGE_RGB = np.zeros((96, 128, 3), np.uint8)
IMAGE_RGB[..., 0], IMAGE_RGB[..., 1], IMAGE_RGB[..., 2] = 40, 20, 230  # R, G, B
PROBE = (10, 12)  # input pixel (y, x) whose blue value feeds a score


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def probe_nodes(output_name: str) -> list[onnx.NodeProto]:
    """Nodes computing (1, 1, 1) = input[0, 0, y, x] (channel 0: blue in BGR input)."""
    y, x = PROBE
    constants = {
        'starts': [0, 0, y, x],
        'ends': [1, 1, y + 1, x + 1],
        'shape': [1, 1, 1],
    }
    nodes = [
        helper.make_node(
            'Constant',
            [],
            [name],
            value=helper.make_tensor(name, TensorProto.INT64, [len(v)], v),
        )
        for name, v in constants.items()
    ]
    nodes.append(helper.make_node('Slice', ['images', 'starts', 'ends'], ['pixel']))
    nodes.append(helper.make_node('Reshape', ['pixel', 'shape'], [output_name]))
    return nodes


def yolox_file(tmp_path: Path) -> Path:
    """Rows: cell (3, 2) of stride 8 holds a person (offsets 0.5, log size ln 4, objectness =
    blue / 255 at the probe, person 0.8); the next cell a weaker duplicate (NMS drops it); a
    stride-16 cell a confident non-person."""
    rows = np.zeros((1, ROWS, 5 + CLASSES), np.float32)
    rows[..., 2:4] = -10.0  # tiny boxes elsewhere
    person = 2 * (INPUT // 8) + 3
    rows[0, person, :4] = [0.5, 0.5, math.log(4.0), math.log(4.0)]
    rows[0, person, 5:] = [0.8, 0.1]
    rows[0, person + 1, :] = [-0.4, 0.5, math.log(4.0), math.log(4.0), 0.3, 0.5, 0.1]
    other = 64 + 1 * (INPUT // 16) + 1
    rows[0, other, :] = [0.5, 0.5, math.log(2.0), math.log(2.0), 0.99, 0.05, 0.95]
    mask = np.zeros_like(rows)
    mask[0, person, 4] = 1.0 / 255.0
    nodes = [
        *probe_nodes('blue'),
        helper.make_node(
            'Constant',
            [],
            ['rows'],
            value=helper.make_tensor('rows', TensorProto.FLOAT, rows.shape, rows.ravel()),
        ),
        helper.make_node(
            'Constant',
            [],
            ['mask'],
            value=helper.make_tensor('mask', TensorProto.FLOAT, mask.shape, mask.ravel()),
        ),
        helper.make_node('Mul', ['blue', 'mask'], ['probed']),
        helper.make_node('Add', ['rows', 'probed'], ['output']),
    ]
    graph = helper.make_graph(
        nodes,
        'yolox_layout',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, INPUT, INPUT])],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT, [1, ROWS, 5 + CLASSES])],
    )
    return save(graph, tmp_path / 'yolox_tiny.onnx')


def rtmdet_file(tmp_path: Path) -> Path:
    """dets (x1, y1, x2, y2, score) in input pixels: a person whose score is 0.5 + 0.1 * the
    normalised blue value at the probe, a person at 0.01 (below the candidate floor), a
    non-person at 0.9."""
    dets = np.array([[[4, 6, 36, 46, 0.5], [0, 0, 8, 8, 0.01], [40, 40, 60, 60, 0.9]]], np.float32)
    labels = np.array([[0, 0, 1]], np.int64)
    mask = np.zeros_like(dets)
    mask[0, 0, 4] = 0.1
    nodes = [
        *probe_nodes('blue'),
        helper.make_node(
            'Constant',
            [],
            ['dets_c'],
            value=helper.make_tensor('dets_c', TensorProto.FLOAT, dets.shape, dets.ravel()),
        ),
        helper.make_node(
            'Constant',
            [],
            ['mask'],
            value=helper.make_tensor('mask', TensorProto.FLOAT, mask.shape, mask.ravel()),
        ),
        helper.make_node(
            'Constant',
            [],
            ['labels'],
            value=helper.make_tensor('labels', TensorProto.INT64, labels.shape, labels.ravel()),
        ),
        helper.make_node('Mul', ['blue', 'mask'], ['probed']),
        helper.make_node('Add', ['dets_c', 'probed'], ['dets']),
    ]
    graph = helper.make_graph(
        nodes,
        'rtmdet_layout',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, INPUT, INPUT])],
        [
            helper.make_tensor_value_info('dets', TensorProto.FLOAT, [1, 3, 5]),
            helper.make_tensor_value_info('labels', TensorProto.INT64, [1, 3]),
        ],
    )
    return save(graph, tmp_path / 'end2end.onnx')


def test_yolox_export_layout_is_decoded_like_yolox(tmp_path: Path) -> None:
    """YOLOX decode: centre = (0.5 + (3, 2)) * 8 = (28, 20), size = exp(ln 4) * 8 = 32, so the
    box is (12, 4, 44, 36) input pixels = (24, 8, 88, 72) source pixels (ratio 0.5). Score =
    objectness (blue 230 / 255, BGR and 0..255 input) * 0.8. The duplicate (IoU > 0.45) and the
    non-person are dropped."""
    detector = OnnxPersonDetector(yolox_file(tmp_path), 'yolox')
    detections = detector.detect(IMAGE_RGB, 0.0)
    np.testing.assert_allclose(detections.boxes_px, [[24, 8, 88, 72]], atol=1e-4)
    np.testing.assert_allclose(detections.scores, [230 / 255 * 0.8], atol=1e-5)


def test_rtmdet_export_layout_with_mean_std_input(tmp_path: Path) -> None:
    """Box (4, 6, 36, 46) input px -> (8, 12, 72, 92) source px; score 0.5 + 0.1 * (230 -
    103.53) / 57.375 (RTMDet's BGR mean and std); the 0.01 person and the non-person dropped."""
    detector = OnnxPersonDetector(rtmdet_file(tmp_path), 'rtmdet')
    detections = detector.detect(IMAGE_RGB, 0.0)
    np.testing.assert_allclose(detections.boxes_px, [[8, 12, 72, 92]], atol=1e-4)
    np.testing.assert_allclose(detections.scores, [0.5 + 0.1 * (230 - 103.53) / 57.375], atol=1e-5)


def test_padding_is_114_below_a_wide_image(tmp_path: Path) -> None:
    """A 128 x 16 image fills input rows 0..7 only; the probe (row 10) reads the 114 canvas."""
    detector = OnnxPersonDetector(yolox_file(tmp_path), 'yolox')
    wide = np.zeros((16, 128, 3), np.uint8)
    detections = detector.detect(wide, 0.0)
    np.testing.assert_allclose(detections.scores, [114 / 255 * 0.8], atol=1e-5)


def test_wrong_files_fail_naming_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(DetectorFileError, match="detection.weights '.*missing.onnx' is not a"):
        OnnxPersonDetector(tmp_path / 'missing.onnx')
    junk = tmp_path / 'junk.onnx'
    junk.write_bytes(b'not a protobuf')
    with pytest.raises(DetectorFileError, match='detection.weights .* cannot be loaded'):
        OnnxPersonDetector(junk)
    with pytest.raises(DetectorFileError, match='not a YOLOX export'):
        OnnxPersonDetector(rtmdet_file(tmp_path), 'yolox')
    with pytest.raises(DetectorFileError, match='not an mmdeploy detection export'):
        OnnxPersonDetector(yolox_file(tmp_path), 'rtmdet')
    with pytest.raises(DetectorPluginError, match='needs detection.weights'):
        load_configured_detector('onnx', DetectorOptions())


def test_configure_fails_naming_the_parameter(tmp_path: Path) -> None:
    """Through build_pipeline (what hmr_node's configure calls), before any model loads."""
    options = PipelineOptions(
        model=ModelOptions(use_test_assets=True),
        detector_plugin='onnx',
        detector=DetectorOptions(weights=str(tmp_path / 'absent.onnx')),
    )
    with pytest.raises(PipelineConfigurationError, match='detection.weights') as raised:
        build_pipeline(options)
    assert "detection.plugin 'onnx'" in str(raised.value)


def test_the_onnx_plugin_finds_the_person(tmp_path: Path) -> None:
    detector = load_configured_detector(
        'onnx', DetectorOptions(weights=str(yolox_file(tmp_path)), device='cpu')
    )
    assert len(detector.detect(IMAGE_RGB, 0.0)) == 1


def test_torchvision_detector_needs_torchvision(tmp_path: Path) -> None:
    """torchvision is optional: without it, configure says so and names the parameter."""
    if 'torchvision' in sys.modules or _importable('torchvision'):
        pytest.skip('torchvision is installed here; the missing-package path cannot be shown')
    weights = tmp_path / 'frcnn.pth'
    weights.write_bytes(b'')
    with pytest.raises(ImportError, match="detection.plugin 'torchvision' needs"):
        load_configured_detector('torchvision', DetectorOptions(weights=str(weights)))
    options = PipelineOptions(
        model=ModelOptions(use_test_assets=True),
        detector_plugin='torchvision',
        detector=DetectorOptions(weights=str(weights)),
    )
    with pytest.raises(PipelineConfigurationError, match='torchvision'):
        build_pipeline(options)


def test_torchvision_detector_loads_a_state_dict_safely(tmp_path: Path) -> None:
    """With torchvision: a randomly initialised model's state dict loads weights_only and runs;
    a pickle that is not a plain state dict is refused."""
    torchvision = pytest.importorskip('torchvision')
    import torch

    from hmr_ros.pipeline.detectors.torchvision_detector import TorchvisionPersonDetector

    model = torchvision.models.get_model(
        'ssdlite320_mobilenet_v3_large', weights=None, weights_backbone=None
    )
    weights = tmp_path / 'ssdlite.pth'
    torch.save(model.state_dict(), weights)
    detector = TorchvisionPersonDetector(weights, 'ssdlite320_mobilenet_v3_large')
    assert detector.detect(IMAGE_RGB, 0.0).boxes_px.shape[1] == 4
    evil = tmp_path / 'evil.pth'
    torch.save({'model': model}, evil)  # a pickled module, not tensors
    with pytest.raises(DetectorFileError, match='detection.weights'):
        TorchvisionPersonDetector(evil, 'ssdlite320_mobilenet_v3_large')


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
