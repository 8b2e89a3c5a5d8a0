"""Training the whole-body ablation variants of Tables 4 and 6 (models/ablations/body.py).

``hmr-ros train body-adapter config/train_ablation_<variant>.yaml`` trains them with the body
adapter's data, losses (eqs. 7-8), optimiser and loop (training/trainer.py): "the experiment
settings are identical for No.1-No.6" (paper 4.3). What differs is what trains and what is
written:

- weight-only variants (``WholeBodyFineTuneTask``: full fine-tuning, from scratch, neck + head
  fine-tuning): the trained modules run with gradients; checkpoints are adapter files of
  ``WholeBodyParts``; the final file ``<variant>_<base variant>.safetensors`` is an ordinary
  whole-body model file (card model 'smplerx'), used as ``whole_body:`` anywhere;
- added-module variants (``BodyVariantTask``: concatenation, moderator, task-token adapter):
  the variant module trains (with the neck and head it holds); the final file is its adapter
  file ``<adapter_name>_<base variant>.safetensors`` (models.ablations.body.load_body_variant).

``BODY_VARIANT_TASKS`` maps each variant to its task factory; the trainer looks it up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.checkpoints.project_format import ModelCard, save_model_file
from hmr_ros.models.ablations.body import (
    MODULE_VARIANTS,
    WEIGHT_ONLY_VARIANTS,
    BodyVariantWholeBody,
    FineTunedWholeBody,
    WholeBodyParts,
    build_variant_module,
    reset_to_scratch,
)
from hmr_ros.models.adapters.body_adapter import BodyAdapterConfig
from hmr_ros.models.dual_path_builder import load_whole_body
from hmr_ros.models.whole_body import WholeBodyModel, virtual_crop_intrinsics
from hmr_ros.training.config import BodyAdapterTrainConfig
from hmr_ros.training.losses import BodyLossWeights, BodyPrediction
from hmr_ros.training.trainer import (
    BodyAdapterTask,
    TrainingTask,
    _autocast,
    body_mcp_points_hm,
)

__all__ = ['BODY_VARIANT_TASKS', 'BodyVariantTask', 'WholeBodyFineTuneTask']

FROM_SCRATCH = 'smplerx_from_scratch'
WHOLE_BODY_MODEL = 'smplerx'
"""Model-card family of whole-body model files (what load_whole_body reads)."""


class WholeBodyFineTuneTask(BodyAdapterTask):
    """Fine-tune (or train from scratch) modules of the whole-body model itself.

    Args:
        whole_body: the loaded base model (for 'smplerx_from_scratch' re-initialised here).
        base_variant: its registered variant.
        smplx: SMPL-X layer on the same device.
        variant: a key of WEIGHT_ONLY_VARIANTS.
        weights: body loss weights.
        source_file: name of the base file (written into the final file's card).
    """

    adapter: WholeBodyParts
    model: FineTunedWholeBody  # type: ignore[assignment]

    def __init__(
        self,
        whole_body: WholeBodyModel,
        base_variant: str,
        smplx: SMPLXBodyModel,
        variant: str,
        weights: BodyLossWeights,
        source_file: str = '',
    ) -> None:
        if variant not in WEIGHT_ONLY_VARIANTS:
            raise ValueError(f'{variant!r} is not one of {sorted(WEIGHT_ONLY_VARIANTS)}')
        self.base_variant = base_variant
        self.device = next(whole_body.parameters()).device
        if variant == FROM_SCRATCH:
            reset_to_scratch(whole_body)
            source_file = ''  # the file only fixed the architecture
        self.variant = variant
        self.adapter_name = variant
        self.source_file = source_file
        self.adapter = WholeBodyParts(whole_body, WEIGHT_ONLY_VARIANTS[variant], variant)
        self.model = FineTunedWholeBody(whole_body, self.adapter)
        self.smplx = smplx
        self.weights = weights
        self.crop_hw = whole_body.config.preprocessing.crop_hw_px
        self.intrinsics = virtual_crop_intrinsics(self.crop_hw).to(self.device)

    @classmethod
    def from_config(
        cls, config: BodyAdapterTrainConfig, device: torch.device
    ) -> WholeBodyFineTuneTask:
        """Load the whole-body file and the SMPL-X layer of a training configuration."""
        whole_body, info = load_whole_body(config.whole_body, device)
        smplx = SMPLXBodyModel.from_folder(config.body_model_dir).to(device)
        return cls(
            whole_body, info.variant, smplx, config.variant, config.loss, Path(info.path).name
        )

    @property
    def final_file_name(self) -> str:
        """``<variant>_<base variant>.safetensors``."""
        return f'{self.variant}_{self.base_variant}.safetensors'

    def save_final(self, path: Path, *, source_file: str = '') -> Path:
        """Write the trained whole-body model as a model file (card model 'smplerx').

        The card names the base file it started from; ``source_file`` (the step) is not used.
        """
        del source_file
        card = ModelCard(
            model=WHOLE_BODY_MODEL, variant=self.base_variant, source_file=self.source_file
        )
        return save_model_file(path, self.model.whole_body.state_dict(), card)

    def predict(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> BodyPrediction:
        """The whole-body prediction, with gradients through the trained modules."""
        with _autocast(self.device, dtype):
            stages = self.model.whole_body.run_stages(batch['image'])
        return self.prediction_from(stages, stages.body_pose_6d.float())


class BodyVariantTask(BodyAdapterTask):
    """Train an added-module variant (concatenation, moderator, task-token adapter).

    Args:
        whole_body: the loaded base model.
        base_variant: its registered variant.
        smplx: SMPL-X layer on the same device.
        module_name: the module's adapter_name (MODULE_VARIANTS values).
        adapter_config: the task-token adapter's sizes (ignored by the others).
        weights: body loss weights.
    """

    model: BodyVariantWholeBody

    def __init__(
        self,
        whole_body: WholeBodyModel,
        base_variant: str,
        smplx: SMPLXBodyModel,
        module_name: str,
        adapter_config: BodyAdapterConfig,
        weights: BodyLossWeights,
    ) -> None:
        self.base_variant = base_variant
        self.device = next(whole_body.parameters()).device
        self.adapter_name = module_name
        self.adapter = build_variant_module(module_name, whole_body, adapter_config)
        self.model = BodyVariantWholeBody(whole_body, self.adapter)
        # The neck and head run with gradients only where the variant trains them.
        self.stages_need_grad = any(p.requires_grad for p in whole_body.parameters())
        self.smplx = smplx
        self.weights = weights
        self.crop_hw = whole_body.config.preprocessing.crop_hw_px
        self.intrinsics = virtual_crop_intrinsics(self.crop_hw).to(self.device)

    @classmethod
    def from_config(cls, config: BodyAdapterTrainConfig, device: torch.device) -> BodyVariantTask:
        """Load the whole-body file and the SMPL-X layer of a training configuration."""
        whole_body, info = load_whole_body(config.whole_body, device)
        smplx = SMPLXBodyModel.from_folder(config.body_model_dir).to(device)
        return cls(
            whole_body,
            info.variant,
            smplx,
            MODULE_VARIANTS[config.variant],
            config.adapter,
            config.loss,
        )

    def predict(self, batch: Mapping[str, Tensor], dtype: torch.dtype | None) -> BodyPrediction:
        """The variant's prediction; MCP points as the body adapter's (ground truth)."""
        with torch.set_grad_enabled(self.stages_need_grad), _autocast(self.device, dtype):
            stages = self.model.whole_body.run_stages(batch['image'])
        points, _ = body_mcp_points_hm(self.model, stages, batch['hand_keypoints_2d'])
        with _autocast(self.device, dtype):
            body_pose_6d = self.model.variant_body_pose_6d(stages, points)
        return self.prediction_from(stages, body_pose_6d.float())


TaskFactory = Callable[[BodyAdapterTrainConfig, torch.device], TrainingTask]

BODY_VARIANT_TASKS: dict[str, TaskFactory] = {
    **{name: WholeBodyFineTuneTask.from_config for name in WEIGHT_ONLY_VARIANTS},
    **{name: BodyVariantTask.from_config for name in MODULE_VARIANTS},
}
"""Task factory of each whole-body ablation variant (the trainer's lookup)."""
