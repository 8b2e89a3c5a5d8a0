"""The person detector named by ``detection.plugin``: a shipped one or a user's entry point.

Shipped detectors (:data:`BUILT_IN_DETECTORS`) run on a model file the user supplies
(``detection.weights``): ``'onnx'`` (:mod:`~hmr_ros.pipeline.detectors.onnx_detector`, YOLOX or
RTMDet exports through ONNX Runtime) and ``'torchvision'``
(:mod:`~hmr_ros.pipeline.detectors.torchvision_detector`). Anything else is an entry point
``'package.module:factory'``: the factory is called (with ``weights=`` when
``detection.weights`` is set) and must return an object with the
:class:`~hmr_ros.pipeline.detectors.base.PersonDetector` method ``detect``. Only modules the user
installed are imported; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from hmr_ros.pipeline.detectors.base import PersonDetector

BUILT_IN_DETECTORS: tuple[str, ...] = ('onnx', 'torchvision')
"""``detection.plugin`` names of the detectors that ship with the package."""


@dataclasses.dataclass(frozen=True)
class DetectorOptions:
    """Settings of the detector named by ``detection.plugin`` (``detection.*``).

    Attributes:
        weights: The detector's model file ('onnx': the .onnx export; 'torchvision': the state
            dict); passed as ``weights=`` to an entry point's factory when set.
        onnx_format: Output layout of the ONNX export
            (:data:`~hmr_ros.pipeline.detectors.onnx_detector.ONNX_FORMATS`).
        torchvision_model: torchvision architecture name.
        class_id: The person class in the model's labels; -1 uses the detector's COCO default
            (0 for the ONNX exports, 1 for torchvision).
        device: Where the detector runs ('auto', 'cpu', 'cuda[:N]'): the model's device.
    """

    weights: str = ''
    onnx_format: str = 'yolox'
    torchvision_model: str = 'fasterrcnn_resnet50_fpn_v2'
    class_id: int = -1
    device: str = 'auto'


def load_configured_detector(plugin: str, options: DetectorOptions) -> PersonDetector:
    """The detector ``detection.plugin`` names (a shipped one or an entry point).

    Raises:
        DetectorPluginError: a malformed entry point, its import or factory failing.
        hmr_ros.pipeline.detectors.onnx_detector.DetectorFileError: a shipped detector's file
            is missing or wrong (the message names ``detection.weights``).
        ImportError: the shipped detector's optional package is missing.
    """
    if plugin in BUILT_IN_DETECTORS and not options.weights:
        raise DetectorPluginError(
            f"detection.plugin '{plugin}' needs detection.weights: set it to the detector's "
            'model file (docs/teleoperation.md, Person detectors)'
        )
    if plugin == 'onnx':
        from hmr_ros.pipeline.detectors.onnx_detector import (
            COCO_PERSON_INDEX,
            OnnxPersonDetector,
        )

        return OnnxPersonDetector(
            options.weights,
            options.onnx_format,
            class_id=options.class_id if options.class_id >= 0 else COCO_PERSON_INDEX,
            use_cuda=options.device != 'cpu',
        )
    if plugin == 'torchvision':
        from hmr_ros.models.devices import resolve_device
        from hmr_ros.pipeline.detectors.torchvision_detector import (
            TORCHVISION_PERSON_LABEL,
            TorchvisionPersonDetector,
        )

        return TorchvisionPersonDetector(
            options.weights,
            options.torchvision_model,
            device=resolve_device(options.device, 'model.device'),
            class_id=options.class_id if options.class_id >= 0 else TORCHVISION_PERSON_LABEL,
        )
    kwargs = {'weights': options.weights} if options.weights else {}
    return load_detector(plugin, **kwargs)


class DetectorPluginError(RuntimeError):
    """The named detector could not be loaded or does not implement PersonDetector."""


def load_detector(entry_point: str, **kwargs: Any) -> PersonDetector:
    """Imports ``module:factory`` and calls the factory with kwargs.

    Args:
        entry_point: ``'package.module:factory'``.
        **kwargs: passed to the factory.

    Returns:
        The detector.

    Raises:
        DetectorPluginError: malformed name, import failure, missing factory, or a result
            without a ``detect`` method.
    """
    module_name, separator, factory_name = entry_point.partition(':')
    if not separator or not module_name or not factory_name:
        raise DetectorPluginError(
            f"detector plugin '{entry_point}' must look like 'package.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise DetectorPluginError(
            f"cannot import detector module '{module_name}': {error}; is its package installed "
            'in the environment the node runs in?'
        ) from error
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise DetectorPluginError(f"'{module_name}' has no callable '{factory_name}'")
    detector = factory(**kwargs)
    if not isinstance(detector, PersonDetector):
        raise DetectorPluginError(
            f"'{entry_point}' returned {type(detector).__name__}, which has no "
            'detect(image_rgb, stamp_s) method'
        )
    return detector
