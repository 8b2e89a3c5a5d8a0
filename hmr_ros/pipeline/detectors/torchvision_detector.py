"""A person detector from torchvision's detection models, on a weights file the user supplies.

``detection.plugin: torchvision``, ``detection.torchvision_model`` naming the architecture
(``fasterrcnn_resnet50_fpn_v2``, ``retinanet_resnet50_fpn_v2``, ``fcos_resnet50_fpn``,
``ssdlite320_mobilenet_v3_large`` ...) and ``detection.weights`` its state dict (the ``.pth``
file torchvision's weight enums download, saved once on a machine with network access: see
docs/teleoperation.md). The file is read with ``torch.load(weights_only=True)``, which builds
tensors only and never runs code from the file; nothing is downloaded (the model is built with
``weights=None, weights_backbone=None``).

torchvision is optional: it is imported only here, and configure fails with a message naming the
parameter when it is absent. The models read RGB float images in [0, 1] and normalise and
resize internally; their ``labels`` use COCO category ids, where a person is 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hmr_ros.pipeline.detectors.base import Detections
from hmr_ros.pipeline.detectors.onnx_detector import DetectorFileError

TORCHVISION_PERSON_LABEL = 1
"""COCO category id of 'person' in torchvision's detection outputs."""

TORCHVISION_MISSING = (
    "detection.plugin 'torchvision' needs the torchvision package, which is not importable "
    'here ({error}); install the torchvision release that matches the installed torch, or use '
    "detection.plugin 'onnx' with an ONNX export (docs/teleoperation.md)"
)


class TorchvisionPersonDetector:
    """Person boxes from a torchvision detection model (see the module docstring).

    Args:
        weights_file: The model's state dict (``.pth``).
        model_name: A name ``torchvision.models.get_model`` knows.
        device: Where the model runs.
        class_id: The person label (COCO id 1).
        parameter: Parameter name used in error messages.

    Raises:
        ImportError: torchvision is missing (the message names the parameter and the fix).
        DetectorFileError: The file is missing, not a state dict, or does not fit the model.
        ValueError: Unknown model name.
    """

    def __init__(
        self,
        weights_file: str | Path,
        model_name: str = 'fasterrcnn_resnet50_fpn_v2',
        *,
        device: torch.device | str = 'cpu',
        class_id: int = TORCHVISION_PERSON_LABEL,
        parameter: str = 'detection.weights',
    ) -> None:
        try:
            import torchvision  # type: ignore[import-not-found, unused-ignore]
        except ImportError as error:
            raise ImportError(TORCHVISION_MISSING.format(error=error)) from error
        path = Path(weights_file)
        if not path.is_file():
            raise DetectorFileError(
                f"{parameter} '{path}' is not a file: set it to the state dict (.pth) of "
                f"torchvision's {model_name} (docs/teleoperation.md, Person detectors)"
            )
        try:
            model = torchvision.models.get_model(model_name, weights=None, weights_backbone=None)
        except ValueError as error:
            raise ValueError(
                f'detection.torchvision_model {model_name!r} is not a torchvision model: {error}'
            ) from error
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
            model.load_state_dict(state)
        except Exception as error:  # unpickling refused, wrong keys or shapes
            raise DetectorFileError(
                f"{parameter} '{path}' is not a state dict of torchvision's {model_name}: "
                f'{type(error).__name__}: {error}'
            ) from error
        self._device = torch.device(device)
        self._model = model.to(self._device).eval()
        self._class_id = class_id

    def detect(self, image_rgb: np.ndarray, stamp_s: float) -> Detections:
        """Person boxes in one image.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            stamp_s: Unused (the model is stateless).
        """
        image = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(self._device)
        with torch.inference_mode():
            (output,) = self._model([image.permute(2, 0, 1).float().div_(255.0)])
        keep = output['labels'] == self._class_id
        boxes = output['boxes'][keep].float().cpu().numpy()
        return Detections(boxes, output['scores'][keep].float().cpu().numpy())
