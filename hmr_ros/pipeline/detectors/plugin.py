"""Loading a user's person detector named by an entry point ``'package.module:factory'``.

This is how the node's ``detection.plugin`` parameter plugs in a detector: the factory is called
with the keyword arguments given (e.g. a model path) and must return an object with the
:class:`~hmr_ros.pipeline.detectors.base.PersonDetector` method ``detect``. Only modules the user
installed are imported; nothing is downloaded.
"""

from __future__ import annotations

import importlib
from typing import Any

from hmr_ros.pipeline.detectors.base import PersonDetector


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
