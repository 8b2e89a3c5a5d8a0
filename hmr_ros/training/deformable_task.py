"""Training the DeforHMR-style body decoder on the frozen whole-body ViT (docs/deforhmr.md).

The trainer (training/trainer.py) trains one module against a frozen base model; here the module
is ``DeformableBodyDecoder`` and the base is the whole-body model, which gives the 16 x 12
feature map (DeforHMR freezes its ViT too). The decoder's body pose (22 interleaved 6D
rotations), betas and SMPLer-X camera replace the whole-body model's; its hands, jaw,
expression and boxes are kept, so the predictions and the losses are those of the body adapter
training (``BodyAdapterTask``), computed on top of the decoder's output.

The initial estimate of the iterative error feedback: identity rotations, zero betas, and a
zero raw camera (SMPLer-X's depth k * sigmoid(0), the middle of its range). DeforHMR starts from
the SMPL mean of Human3.6M, which has no SMPL-X counterpart here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.geometry.rotations import rotmat_to_rot6d
from hmr_ros.models.alternatives.deformable_decoder import (
    DeformableBodyDecoder,
    DeformableDecoderConfig,
)
from hmr_ros.models.dual_path_builder import load_whole_body
from hmr_ros.models.whole_body import WholeBodyModel, virtual_crop_intrinsics
from hmr_ros.training.config import DeformableDecoderTrainConfig
from hmr_ros.training.losses import BodyLossWeights, BodyPrediction
from hmr_ros.training.trainer import BodyAdapterTask, _autocast

__all__ = ['DecodedWholeBody', 'DeformableDecoderTask', 'initial_estimate']

_LOG = logging.getLogger(__name__)

NUM_BODY_ROTATIONS = 22
"""SMPL-X global orientation + 21 body joints."""


def initial_estimate() -> tuple[Tensor, Tensor, Tensor]:
    """(22, 6) identity rotations (interleaved 6D), (10,) zero betas, (3,) zero raw camera."""
    identity = rotmat_to_rot6d(torch.eye(3).expand(NUM_BODY_ROTATIONS, 3, 3), 'interleaved')
    return identity, torch.zeros(10), torch.zeros(3)


class DecodedWholeBody(nn.Module):
    """The frozen whole-body model and the trainable decoder, as the trainer sees them.

    The whole-body model is frozen (``requires_grad_(False)``) and stays in eval mode.
    """

    def __init__(self, whole_body: WholeBodyModel, decoder: DeformableBodyDecoder) -> None:
        super().__init__()
        self.whole_body = whole_body.requires_grad_(False).eval()
        self.decoder = decoder

    def train(self, mode: bool = True) -> DecodedWholeBody:
        """Training mode on the decoder only."""
        super().train(mode)
        self.whole_body.eval()
        return self


class DeformableDecoderTask(BodyAdapterTask):
    """``BodyAdapterTask`` whose trained module is the deformable decoder (module docstring).

    Args:
        whole_body: the frozen base model.
        base_variant: its registered variant (written into the decoder files).
        smplx: SMPL-X layer on the same device.
        decoder_config: decoder sizes; ``context_dim`` and ``feature_hw`` follow the
            whole-body model.
        weights: body loss weights.
    """

    adapter_name = DeformableBodyDecoder.adapter_name
    # The base task's attributes, holding the decoder instead of the body adapter.
    adapter: DeformableBodyDecoder
    model: DecodedWholeBody  # type: ignore[assignment]

    def __init__(
        self,
        whole_body: WholeBodyModel,
        base_variant: str,
        smplx: SMPLXBodyModel,
        decoder_config: DeformableDecoderConfig,
        weights: BodyLossWeights,
    ) -> None:
        self.base_variant = base_variant
        self.device = next(whole_body.parameters()).device
        encoder = whole_body.config.encoder
        height, width = encoder.grid_size
        config = dataclasses.replace(
            decoder_config, context_dim=encoder.embed_dim, feature_hw=(height, width)
        )
        if config != decoder_config:
            _LOG.info(
                'decoder context -> %d channels, %s cells (the whole-body model)',
                config.context_dim,
                config.feature_hw,
            )
        self.adapter = DeformableBodyDecoder(config, *initial_estimate()).to(self.device)
        self.model = DecodedWholeBody(whole_body, self.adapter)
        self.smplx = smplx
        self.weights = weights
        self.crop_hw = whole_body.config.preprocessing.crop_hw_px
        self.intrinsics = virtual_crop_intrinsics(self.crop_hw).to(self.device)

    @classmethod
    def from_config(  # type: ignore[override]
        cls, config: DeformableDecoderTrainConfig, device: torch.device
    ) -> DeformableDecoderTask:
        """Load the whole-body file and the SMPL-X layer of a training configuration."""
        whole_body, info = load_whole_body(config.whole_body, device)
        smplx = SMPLXBodyModel.from_folder(config.body_model_dir).to(device)
        return cls(whole_body, info.variant, smplx, config.decoder, config.loss)

    def predict(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> BodyPrediction:
        """Decoder prediction of a batch of person crops (every IEF iteration's last)."""
        whole_body = self.model.whole_body
        with torch.no_grad(), _autocast(self.device, dtype):
            stages = whole_body.run_stages(batch['image'])
        with _autocast(self.device, dtype):
            decoded = self.adapter(stages.feature_map)
        stages = stages._replace(betas=decoded.betas.float(), camera=decoded.cam.float())
        return self.prediction_from(stages, decoded.pose_6d.float())
