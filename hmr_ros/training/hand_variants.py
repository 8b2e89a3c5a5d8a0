"""Training the hand ablation variants of the paper's Tables 3 and 5 (docs/evaluation.md).

``HAND_VARIANT_TASKS`` maps each ``HandVariant`` other than 'hmr_adapter' to a task factory
``(config, device) -> TrainingTask``; ``AdapterTrainer`` looks the config's variant up here.
Every task keeps the trainer's contract: ``task.adapter`` holds exactly the parameters that
train (the trainer checks it against ``task.model``), checkpoints store it as an adapter
file, and ``save_final`` writes the result:

- weight-only variants (``HandWeightsTask``): a normal hand-expert model file
  ``<variant>_<base variant>.safetensors`` (card model 'hamer'), used as ``hand_expert:`` by
  the evaluator, the dual path and the node:
  'hamer_full_finetune' (No.1: every weight), 'hamer_from_scratch' (No.2: every weight from
  a fresh initialisation; the paper trains it for twice the steps, which its config sets),
  'hamer_decoder_finetune' (No.3: the MANO transformer head);
- adapter variants (``HandAdapterTask`` with another ``adapter.guidance``): a hand adapter file
  'hamer_adapter_image_input' (No.5: CA' attends to the image tokens F^H) and
  'hand_whole_body_pose' (Table 5: the 22 root and body rotations instead of the arm group);
- injection variants (``HandInjectionTask``): an adapter file holding the fine-tuned decoder
  and the new layers, used as ``hand_adapter:``: 'hamer_concatenation' and
  'hand_concatenation' (one model: Table 3 No.4 trained on ARCTIC, Table 5's on the paper's
  training mix; the paper describes both as HaMeR's decoder fed the concatenated body pose and
  image features, after Hand4Whole), 'hand_weighted_sum' (Table 5, PIXIE's moderator).

The losses are the hand adapter's (eq. 5) for every variant: the paper compares the variants
under one objective; so is the optimiser (AdamW with the config's learning rate over the
trained parameters).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from hmr_ros.body_models.smplx_layers import MANOHandModel
from hmr_ros.checkpoints.project_format import ModelCard, save_model_file
from hmr_ros.models.ablations.hand import (
    HAND_GUIDANCE_VARIANTS,
    HAND_INJECTION_VARIANTS,
    HAND_WEIGHT_ONLY_VARIANTS,
    BodyFeatureInjection,
    FineTunedHandExpert,
    FineTuneScope,
    InjectionMode,
    TrainedHandWeights,
    reinitialise_hand_expert,
)
from hmr_ros.models.adapters.hand_adapter import GuidanceInput, GuidedHandExpert
from hmr_ros.models.dual_path_builder import load_hand_expert
from hmr_ros.models.hand_expert import HandExpert
from hmr_ros.training.config import HandAdapterTrainConfig
from hmr_ros.training.losses import HandLossWeights
from hmr_ros.training.trainer import HandAdapterTask, TrainingTask

__all__ = [
    'HAND_VARIANT_TASKS',
    'HandInjectionTask',
    'HandWeightsTask',
]

_LOG = logging.getLogger(__name__)

HAND_MODEL_FAMILY = 'hamer'
"""Model-card family of the weight-only variants' files (load_hand_expert reads them)."""


def _load_base(
    config: HandAdapterTrainConfig, device: torch.device
) -> tuple[HandExpert, str, MANOHandModel]:
    hand_expert, info = load_hand_expert(config.hand_expert, device)
    mano = MANOHandModel.from_folder(config.body_model_dir, side='right').to(device)
    return hand_expert, info.variant, mano


class HandWeightsTask(HandAdapterTask):
    """A weight-only variant: HaMeR's own weights train (Table 3 No.1-3).

    Args:
        hand_expert: the loaded base model (re-initialised first for 'from scratch').
        base_variant: its registered variant.
        mano: right-hand MANO layer.
        scope: 'all' or 'decoder' (models/ablations/hand.FineTunedHandExpert).
        variant: the variant name (checkpoints and the final file's name).
        weights: lambda of eq. 5.
    """

    adapter: TrainedHandWeights
    model: FineTunedHandExpert  # type: ignore[assignment]

    def __init__(
        self,
        hand_expert: HandExpert,
        base_variant: str,
        mano: MANOHandModel,
        scope: FineTuneScope,
        variant: str,
        weights: HandLossWeights,
    ) -> None:
        self.base_variant = base_variant
        self.variant = variant
        self.model = FineTunedHandExpert(hand_expert, scope, variant)
        self.adapter = self.model.trained
        self.adapter_name = variant
        self.mano = mano
        self.weights = weights
        self.crop_size_px = hand_expert.config.crop_size_px
        self.device = hand_expert.mano_head.decpose.weight.device

    @property
    def final_file_name(self) -> str:
        """``<variant>_<base variant>.safetensors``: a hand-expert model file."""
        return f'{self.variant}_{self.base_variant}.safetensors'

    def save_final(self, path: Path, *, source_file: str = '') -> Path:
        """Write the whole hand expert as a model file (card model 'hamer', base variant).

        ``source_file`` is left out of the card: the weights are not converted from a file.
        """
        del source_file
        card = ModelCard(model=HAND_MODEL_FAMILY, variant=self.base_variant)
        return save_model_file(path, self.model.hand_expert.state_dict(), card)


def _weights_task(
    scope: FineTuneScope, variant: str, from_scratch: bool = False
) -> Callable[[HandAdapterTrainConfig, torch.device], TrainingTask]:
    def factory(config: HandAdapterTrainConfig, device: torch.device) -> TrainingTask:
        hand_expert, base_variant, mano = _load_base(config, device)
        if from_scratch:
            # Seeded by run.seed (the trainer seeds torch before building the task).
            reinitialise_hand_expert(hand_expert)
            _LOG.info('%s: every weight re-initialised (the mean parameters kept)', variant)
        return HandWeightsTask(hand_expert, base_variant, mano, scope, variant, config.loss)

    return factory


def _adapter_task(
    guidance: GuidanceInput,
) -> Callable[[HandAdapterTrainConfig, torch.device], TrainingTask]:
    def factory(config: HandAdapterTrainConfig, device: torch.device) -> TrainingTask:
        if config.adapter.guidance not in ('arm_pose', guidance):
            raise ValueError(
                f'variant {config.variant} sets adapter.guidance {guidance!r}; the config asks '
                f'for {config.adapter.guidance!r} (leave it out)'
            )
        adapter_config = dataclasses.replace(config.adapter, guidance=guidance)
        hand_expert, base_variant, mano = _load_base(config, device)
        return HandAdapterTask(hand_expert, base_variant, mano, adapter_config, config.loss)

    return factory


class HandInjectionTask(HandAdapterTask):
    """A body feature injection: fine-tuned decoder copy + new layers (Table 3 No.4, Table 5).

    Args:
        hand_expert: the frozen base model (its ViT gives the image features).
        base_variant: its registered variant.
        mano: right-hand MANO layer.
        mode: 'concatenation' or 'weighted_sum'.
        joint_embedding: per-joint embedding of the concatenated body tokens.
        weights: lambda of eq. 5.
    """

    adapter: BodyFeatureInjection

    def __init__(
        self,
        hand_expert: HandExpert,
        base_variant: str,
        mano: MANOHandModel,
        mode: InjectionMode,
        joint_embedding: bool,
        weights: HandLossWeights,
    ) -> None:
        self.base_variant = base_variant
        self.adapter = BodyFeatureInjection(hand_expert.mano_head, mode, joint_embedding)
        self.adapter_name = self.adapter.adapter_name
        self.model = GuidedHandExpert(hand_expert, self.adapter)
        self.mano = mano
        self.weights = weights
        self.crop_size_px = hand_expert.config.crop_size_px
        self.device = hand_expert.mano_head.decpose.weight.device


def _injection_task(
    mode: InjectionMode,
) -> Callable[[HandAdapterTrainConfig, torch.device], TrainingTask]:
    def factory(config: HandAdapterTrainConfig, device: torch.device) -> TrainingTask:
        hand_expert, base_variant, mano = _load_base(config, device)
        return HandInjectionTask(
            hand_expert, base_variant, mano, mode, config.adapter.joint_embedding, config.loss
        )

    return factory


HAND_VARIANT_TASKS: dict[str, Callable[[HandAdapterTrainConfig, torch.device], TrainingTask]] = {
    **{
        variant: _weights_task(scope, variant, from_scratch=variant == 'hamer_from_scratch')
        for variant, scope in HAND_WEIGHT_ONLY_VARIANTS.items()
    },
    **{variant: _injection_task(mode) for variant, mode in HAND_INJECTION_VARIANTS.items()},
    **{variant: _adapter_task(kind) for variant, kind in HAND_GUIDANCE_VARIANTS.items()},
}
"""Task factory of each hand ablation variant (training/config.py HandVariant)."""
