"""A person detector on an ONNX model the user supplies, run with ONNX Runtime.

``detection.plugin: onnx`` with ``detection.weights`` naming the ``.onnx`` file. Two families of
exports are read, each exactly as its official tools write it (docs/teleoperation.md says how
to export one):

- ``yolox``: ``tools/export_onnx.py`` of Megvii-BaseDetection/YOLOX (its default, without
  ``--decode_in_inference``). Input ``(1, 3, H, W)`` float32 BGR in 0..255, no mean or std; the
  image is resized keeping its aspect ratio into the top-left corner of an ``H x W`` canvas
  filled with 114 (YOLOX's ``preproc``). Output ``(1, N, 5 + C)``, one row per grid cell of the
  strides 8, 16 and 32 (``N = sum (H / s) (W / s)``): ``x, y`` offsets in cells, ``log w, log h``
  in strides, objectness and C class probabilities (sigmoids already applied). Decoding, as
  YOLOX's ``demo_postprocess``: centre = (offset + cell) * stride, size = exp(log size) *
  stride, score = objectness * class probability, then NMS.
- ``yolox_decoded``: the same export with ``--decode_in_inference``: rows already hold centre
  and size in input pixels.
- ``rtmdet``: an mmdeploy ``end2end.onnx`` of an MMDetection RTMDet (or any mmdet detector with
  that deploy config). Input as mmdet's RTMDet test pipeline: BGR, the same keep-ratio resize
  and 114 padding, then ``(pixel - mean) / std`` with mean (103.53, 116.28, 123.675) and std
  (57.375, 57.12, 58.395) in BGR order. Outputs ``dets`` ``(1, N, 5)`` = x1, y1, x2, y2 (input
  pixels), score after NMS, and ``labels`` ``(1, N)`` class indices.

Boxes are mapped back to the source image by the resize ratio and clipped to it. Only the
person class is kept (``class_id``; 0 in COCO's 80-class order that both families use).
Loading an ONNX file builds a graph of standard operators; no code from the file runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hmr_ros.pipeline.detectors.base import Detections

ONNX_FORMATS: tuple[str, ...] = ('yolox', 'yolox_decoded', 'rtmdet')
"""``detection.onnx_format`` values."""

YOLOX_STRIDES = (8, 16, 32)
LETTERBOX_FILL = 114
"""Canvas value of YOLOX's ``preproc`` and mmdet's RTMDet ``Pad``."""
RTMDET_MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
RTMDET_STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
COCO_PERSON_INDEX = 0
NMS_IOU = 0.45
"""YOLOX demo's NMS threshold."""
MIN_CANDIDATE_SCORE = 0.05
"""Candidates below this never reach NMS; the pipeline applies detection.person_threshold."""


class DetectorFileError(ValueError):
    """The detector's model file is missing, unreadable or not in the declared layout."""


@dataclasses.dataclass(frozen=True)
class _Letterbox:
    """How the source image sits in the network input."""

    ratio: float  # input pixels per source pixel
    image_hw: tuple[int, int]


class OnnxPersonDetector:
    """Person boxes from a YOLOX or RTMDet ONNX export (see the module docstring).

    Args:
        model_file: The ``.onnx`` file.
        output_format: One of :data:`ONNX_FORMATS`.
        class_id: Class index of 'person' in the model's classes.
        use_cuda: Prefer ONNX Runtime's CUDA provider when it is available.
        parameter: Parameter name used in error messages.

    Raises:
        DetectorFileError: The file is missing, not ONNX, or its inputs/outputs do not have the
            declared layout (the message names ``parameter`` and what was found).
        ImportError: onnxruntime is not installed.
    """

    def __init__(
        self,
        model_file: str | Path,
        output_format: str = 'yolox',
        *,
        class_id: int = COCO_PERSON_INDEX,
        use_cuda: bool = False,
        parameter: str = 'detection.weights',
    ) -> None:
        import onnxruntime  # type: ignore[import-untyped]

        if output_format not in ONNX_FORMATS:
            raise ValueError(
                f'onnx format {output_format!r} is not valid; choose one of '
                f'{", ".join(ONNX_FORMATS)}'
            )
        path = Path(model_file)
        if not path.is_file():
            raise DetectorFileError(
                f"{parameter} '{path}' is not a file: set it to the person detector's .onnx "
                'export (docs/teleoperation.md, Person detectors)'
            )
        providers = ['CPUExecutionProvider']
        if use_cuda and 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        try:
            self._session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise DetectorFileError(
                f"{parameter} '{path}' cannot be loaded as an ONNX model: {error}"
            ) from error
        self._format = output_format
        self._class_id = class_id
        inputs = self._session.get_inputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or not all(isinstance(v, int) for v in shape[2:]):
            raise DetectorFileError(
                f"{parameter} '{path}': expected one (1, 3, H, W) input with a fixed H and W, "
                f'got {[(i.name, i.shape) for i in inputs]}; export with a static input size'
            )
        self._input_name = inputs[0].name
        self._input_hw = (int(shape[2]), int(shape[3]))
        self._check_outputs(path, parameter)

    @property
    def input_hw(self) -> tuple[int, int]:
        """Network input height and width, pixels."""
        return self._input_hw

    def _check_outputs(self, path: Path, parameter: str) -> None:
        outputs = self._session.get_outputs()
        found = [(o.name, o.shape) for o in outputs]
        if self._format == 'rtmdet':
            if len(outputs) < 2 or len(outputs[0].shape) != 3 or outputs[0].shape[2] != 5:
                raise DetectorFileError(
                    f"{parameter} '{path}' is not an mmdeploy detection export (outputs dets "
                    f'(1, N, 5) and labels (1, N)): found {found}'
                )
            return
        shape = outputs[0].shape
        cells = sum((self._input_hw[0] // s) * (self._input_hw[1] // s) for s in YOLOX_STRIDES)
        rows = shape[1] if len(shape) == 3 else None
        if len(shape) != 3 or not isinstance(shape[2], int) or shape[2] < 6 or rows != cells:
            raise DetectorFileError(
                f"{parameter} '{path}' is not a YOLOX export for a {self._input_hw} input "
                f'(one output (1, {cells}, 5 + classes)): found {found}'
            )

    def detect(self, image_rgb: np.ndarray, stamp_s: float) -> Detections:
        """Person boxes in one image (see the module docstring).

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            stamp_s: Unused (the model is stateless).
        """
        tensor, letterbox = self._preprocess(image_rgb)
        outputs = self._session.run(None, {self._input_name: tensor})
        if self._format == 'rtmdet':
            boxes, scores = self._rtmdet_boxes(outputs)
        else:
            boxes, scores = self._yolox_boxes(outputs[0][0])
        return _to_source_image(boxes, scores, letterbox)

    def _preprocess(self, image_rgb: np.ndarray) -> tuple[np.ndarray, _Letterbox]:
        """The letterboxed BGR input tensor (1, 3, H, W) float32 and where the image sits."""
        height, width = image_rgb.shape[:2]
        input_h, input_w = self._input_hw
        ratio = min(input_h / height, input_w / width)
        size = (int(width * ratio), int(height * ratio))  # YOLOX preproc truncates
        canvas = np.full((input_h, input_w, 3), LETTERBOX_FILL, np.uint8)
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])
        canvas[: size[1], : size[0]] = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        pixels = canvas.astype(np.float32)
        if self._format == 'rtmdet':
            pixels = (pixels - RTMDET_MEAN_BGR) / RTMDET_STD_BGR
        tensor = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])
        return tensor, _Letterbox(ratio, (height, width))

    def _yolox_boxes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 5 + C) rows -> person boxes (x1, y1, x2, y2) in input pixels and scores, NMSed."""
        rows = rows.astype(np.float64)
        if self._format == 'yolox':
            grids, strides = _yolox_grid(self._input_hw)
            centre = (rows[:, :2] + grids) * strides
            size = np.exp(np.minimum(rows[:, 2:4], 20.0)) * strides  # no overflow on junk
        else:
            centre, size = rows[:, :2], rows[:, 2:4]
        classes = rows[:, 5:]
        scores = rows[:, 4] * classes[:, self._class_id]
        best = classes.argmax(axis=1) == self._class_id
        keep = np.flatnonzero((scores >= MIN_CANDIDATE_SCORE) & best)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)[keep]
        return _nms(boxes, scores[keep])

    def _rtmdet_boxes(self, outputs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        dets = np.asarray(outputs[0][0], np.float64).reshape(-1, 5)
        labels = np.asarray(outputs[1][0]).reshape(-1)
        keep = (labels == self._class_id) & (dets[:, 4] >= MIN_CANDIDATE_SCORE)
        return dets[keep, :4], dets[keep, 4]


def _yolox_grid(input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell (x, y) and stride of every YOLOX output row, strides 8, 16, 32, row-major."""
    grids, strides = [], []
    for stride in YOLOX_STRIDES:
        rows, columns = input_hw[0] // stride, input_hw[1] // stride
        y, x = np.mgrid[0:rows, 0:columns]
        grids.append(np.stack([x.ravel(), y.ravel()], axis=1))
        strides.append(np.full((rows * columns, 1), stride))
    return np.concatenate(grids).astype(np.float64), np.concatenate(strides).astype(np.float64)


def _nms(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression at :data:`NMS_IOU` (OpenCV's, boxes as x, y, w, h)."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4), scores.reshape(0)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), MIN_CANDIDATE_SCORE, NMS_IOU)
    keep = np.asarray(kept, dtype=np.int64).reshape(-1)
    return boxes[keep], scores[keep]


def _to_source_image(boxes: np.ndarray, scores: np.ndarray, letterbox: _Letterbox) -> Detections:
    """Input-pixel boxes -> source-image pixels, clipped; degenerate boxes dropped."""
    height, width = letterbox.image_hw
    boxes = boxes / letterbox.ratio
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, height)
    valid = (
        (boxes[:, 2] > boxes[:, 0])
        & (boxes[:, 3] > boxes[:, 1])
        & np.isfinite(boxes).all(axis=1)
        & np.isfinite(scores)
    )
    return Detections(boxes[valid], np.clip(scores[valid], 0.0, 1.0))
