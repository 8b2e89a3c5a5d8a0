"""The ``eager`` backend: the PyTorch module as it is, under inference mode and autocast."""

from __future__ import annotations

import torch
from torch import Tensor

from hmr_ros.models.dual_path import DualPathOutput
from hmr_ros.pipeline.backends.base import InferenceBackend, autocast_for


class EagerBackend(InferenceBackend):
    """Runs ``DualPathModel.forward`` per frame on exactly the boxes given (no padding)."""

    name = 'eager'

    def run(
        self, images: Tensor, boxes_xyxy: Tensor, batch_index: Tensor, intrinsics: Tensor
    ) -> DualPathOutput:
        """See InferenceBackend.run."""
        with torch.inference_mode(), autocast_for(self.device, self.precision):
            return self.model(images, boxes_xyxy, batch_index, intrinsics)

    @staticmethod
    def available(device: torch.device) -> str | None:
        """None: eager runs on every device."""
        return None
