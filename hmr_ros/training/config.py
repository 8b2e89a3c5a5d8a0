"""Configuration of the two adapter trainings (paper 3.5 and 4.1), read from YAML overrides.

``hmr-ros train hand-adapter CONFIG`` reads ``HandAdapterTrainConfig``, ``hmr-ros train
body-adapter CONFIG`` reads ``BodyAdapterTrainConfig`` (hmr_ros.config.load_config: unknown keys
are rejected with the valid ones listed). Both share the data, optimiser, run and output
sections; each has its base model file, adapter options and loss weights. Relative paths are
relative to the working directory.

Defaults follow the paper where it says something (AdamW as HaMeR, 10K steps; the paper's batch
is 32 per GPU on 4 GPUs = 128) and HaMeR's training config otherwise (weight decay 1e-4,
gradient clipping at norm 1). The learning rate, warm-up and cosine decay are our choices for
zero-initialised adapter branches; the paper's supplementary, which gives its values, is not
available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from hmr_ros.datasets.augmentation import AugmentationConfig
from hmr_ros.models.adapters.body_adapter import BodyAdapterConfig
from hmr_ros.models.adapters.hand_adapter import HandAdapterConfig
from hmr_ros.models.alternatives.deformable_decoder import DeformableDecoderConfig
from hmr_ros.training.losses import BodyLossWeights, HandLossWeights

__all__ = [
    'PRECISIONS',
    'BodyAdapterTrainConfig',
    'DataConfig',
    'DeformableDecoderTrainConfig',
    'HandAdapterTrainConfig',
    'OptimizerConfig',
    'OutputConfig',
    'Precision',
    'RunConfig',
    'TrainConfig',
]

Precision = Literal['auto', 'fp32', 'fp16', 'bf16']
"""Training precision: 'auto' = bf16 on CUDA devices that support it, else fp16 on CUDA, fp32
on CPU; 'fp16' uses a gradient scaler, 'bf16' does not; CPU runs in fp32 whatever is asked."""

PRECISIONS: tuple[str, ...] = get_args(Precision)

LrSchedule = Literal['constant', 'cosine']

HandVariant = Literal[
    'hmr_adapter',
    'hamer_full_finetune',
    'hamer_from_scratch',
    'hamer_decoder_finetune',
    'hamer_concatenation',
    'hamer_adapter_image_input',
    'hand_concatenation',
    'hand_weighted_sum',
    'hand_whole_body_pose',
]
"""What the hand stage trains: 'hmr_adapter' (paper 3.3) or one of the paper's ablation
variants (Tables 3 and 5: full fine-tuning, from scratch, decoder only, concatenated body
features, the adapter fed image features, concatenation / moderator (weighted-sum) injection,
whole-body pose guidance; training/hand_variants.py, docs/evaluation.md)."""

BodyVariant = Literal[
    'hmr_adapter',
    'smplerx_full_finetune',
    'smplerx_from_scratch',
    'smplerx_head_finetune',
    'smplerx_concatenation',
    'smplerx_adapter_task_tokens',
    'body_concatenation',
    'body_weighted_sum',
]
"""What the body stage trains: 'hmr_adapter' (paper 3.4) or an ablation variant of Tables 4 and
6 (models/ablations/body.py, trained by training/body_variants.py)."""


@dataclass(frozen=True)
class DataConfig:
    """Training data: converted data sets (``.npz`` indexes) and how items are made.

    Attributes:
        indexes: index files written by the data-set converters (sample.save_index); their
            samples are concatenated.
        image_roots: one image folder per index ('' = the root stored in the index); empty for
            all stored roots.
        weights: one sampling weight per index (data-set mixing): each item of a batch comes
            from index i with probability weights[i] / sum(weights), drawn uniformly (with
            replacement) within it, as a pure function of (seed, step). Empty: the indexes
            are concatenated and walked in shuffled epochs (each item once per epoch).
        augmentation: flip / rotation / scale / colour ranges; null disables augmentation.
        num_workers: DataLoader worker processes (0 loads in the training process).
    """

    indexes: tuple[str, ...]
    image_roots: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    augmentation: AugmentationConfig | None = AugmentationConfig()
    num_workers: int = 4

    def __post_init__(self) -> None:
        if not self.indexes:
            raise ValueError('data.indexes must list at least one converted data set (.npz)')
        if self.image_roots and len(self.image_roots) != len(self.indexes):
            raise ValueError(
                f'data.image_roots must be empty or have one entry per index '
                f'({len(self.indexes)}); got {len(self.image_roots)}'
            )
        if self.num_workers < 0:
            raise ValueError(f'data.num_workers must be >= 0; got {self.num_workers}')
        if self.weights and (
            len(self.weights) != len(self.indexes)
            or any(w < 0 for w in self.weights)
            or not sum(self.weights) > 0
        ):
            raise ValueError(
                f'data.weights must be empty or {len(self.indexes)} non-negative numbers '
                f'(one per index) with a positive sum; got {list(self.weights)}'
            )


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW over the adapter's parameters only, with warm-up and a learning-rate schedule.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay.
        betas: AdamW (beta1, beta2).
        eps: AdamW epsilon.
        grad_clip_norm: clip the adapter gradients' global L2 norm to this; 0 disables.
        warmup_steps: linear warm-up from 0 to lr over this many steps.
        schedule: 'constant' after warm-up, or 'cosine' decay to min_lr_ratio * lr at the
            last step.
        min_lr_ratio: final learning rate of the cosine schedule, as a fraction of lr.
    """

    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip_norm: float = 1.0
    warmup_steps: int = 500
    schedule: LrSchedule = 'cosine'
    min_lr_ratio: float = 0.01

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.weight_decay < 0 or not self.eps > 0:
            raise ValueError('optimizer.lr and eps must be > 0 and weight_decay >= 0')
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f'optimizer.betas must be in [0, 1); got {self.betas}')
        if self.grad_clip_norm < 0 or self.warmup_steps < 0:
            raise ValueError('optimizer.grad_clip_norm and warmup_steps must be >= 0')
        if self.schedule not in get_args(LrSchedule):
            raise ValueError(f'optimizer.schedule must be one of {get_args(LrSchedule)}')
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f'optimizer.min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio}')


@dataclass(frozen=True)
class RunConfig:
    """Length, batch, device, precision and seed of a run.

    Attributes:
        steps: optimiser steps (the paper: 10K).
        batch_size: items per step (hand crops or person crops).
        device: 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'.
        precision: see Precision.
        seed: seeds the adapter initialisation, the data order and the augmentation; the data
            order of step s is a function of (seed, s) only, so a resumed run sees the same
            batches.
        deterministic: ask torch for deterministic algorithms (slower on CUDA).
    """

    steps: int = 10_000
    batch_size: int = 128
    device: str = 'auto'
    precision: Precision = 'auto'
    seed: int = 0
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError('run.steps and run.batch_size must be >= 1')
        if self.precision not in PRECISIONS:
            raise ValueError(f'run.precision must be one of {PRECISIONS}; got {self.precision!r}')
        if not (self.device in ('auto', 'cpu', 'cuda') or self.device.startswith('cuda:')):
            raise ValueError(
                f"run.device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {self.device!r}"
            )


@dataclass(frozen=True)
class OutputConfig:
    """Where a run writes, and how often.

    The folder gets ``checkpoints/step_<N>/`` (adapter.safetensors + training_state.pt),
    ``losses.csv`` (every logged step), ``tensorboard/`` (when TensorBoard is installed),
    ``config.yaml`` (the effective configuration) and, at the end, the adapter file
    ``<adapter>_<base variant>.safetensors`` that the dual path loads.

    Attributes:
        dir: output folder (created).
        checkpoint_every: save a resumable checkpoint every this many steps (and at the end);
            0 only at the end.
        keep_checkpoints: newest checkpoints kept (older ones deleted); 0 keeps all.
        log_every: write losses every this many steps.
        tensorboard: also write TensorBoard event files when the package is installed.
        progress_bar: show a tqdm bar when stderr is a terminal.
    """

    dir: str
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    tensorboard: bool = True
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if not self.dir:
            raise ValueError('output.dir must name the run folder')
        if self.checkpoint_every < 0 or self.keep_checkpoints < 0 or self.log_every < 1:
            raise ValueError(
                'output.checkpoint_every and keep_checkpoints must be >= 0, log_every >= 1'
            )


@dataclass(frozen=True)
class HandAdapterTrainConfig:
    """``hmr-ros train hand-adapter``: hand adapter on the frozen hand expert (paper 3.5.1).

    Attributes:
        hand_expert: HaMeR model file (``hmr-ros convert-checkpoint``) or official checkpoint.
        body_model_dir: folder with MANO_RIGHT.pkl (docs/licences.md): the MANO
            layer gives the predicted (and ground-truth) meshes and joints.
        data: training data (hand crops, left hands flipped; see datasets.loader).
        output: run folder.
        variant: 'hmr_adapter' or an ablation variant (HandVariant; its task:
            training/hand_variants.py).
        adapter: hand adapter options (sizes come from the hand expert's head).
        loss: lambda of eq. 5.
        optimizer: AdamW and schedule.
        run: steps, batch, device, precision, seed.
    """

    hand_expert: str
    body_model_dir: str
    data: DataConfig
    output: OutputConfig
    variant: HandVariant = 'hmr_adapter'
    adapter: HandAdapterConfig = HandAdapterConfig()
    loss: HandLossWeights = HandLossWeights()
    optimizer: OptimizerConfig = OptimizerConfig()
    run: RunConfig = RunConfig()


@dataclass(frozen=True)
class BodyAdapterTrainConfig:
    """``hmr-ros train body-adapter``: body adapter on the frozen whole-body model (3.5.2).

    Attributes:
        whole_body: SMPLer-X model file or official checkpoint.
        body_model_dir: folder with SMPLX_NEUTRAL.npz (docs/licences.md).
        data: training data (person crops).
        output: run folder.
        variant: 'hmr_adapter' or an ablation variant (BodyVariant; its task:
            training/body_variants.py).
        adapter: body adapter sizes; ``in_channels`` is always taken from the whole-body
            model's width.
        loss: lambda of eqs. 7 and 8.
        optimizer: AdamW and schedule.
        run: steps, batch, device, precision, seed.
    """

    whole_body: str
    body_model_dir: str
    data: DataConfig
    output: OutputConfig
    variant: BodyVariant = 'hmr_adapter'
    adapter: BodyAdapterConfig = BodyAdapterConfig()
    loss: BodyLossWeights = BodyLossWeights()
    optimizer: OptimizerConfig = OptimizerConfig()
    run: RunConfig = RunConfig()


@dataclass(frozen=True)
class DeformableDecoderTrainConfig:
    """``hmr-ros train deforhmr-decoder``: DeforHMR-style body decoder on the frozen ViT.

    The decoder (models/alternatives/deformable_decoder.py) regresses SMPL-X body pose, shape
    and camera from the frozen whole-body model's feature map; its hands, face and boxes stay
    SMPLer-X's. DeforHMR trains with AdamW, lr 1e-4 and weight decay 1e-3 (paper, supp. A);
    the losses are this project's body losses (docs/deforhmr.md says how they differ).

    Attributes:
        whole_body: SMPLer-X model file or official checkpoint (frozen; gives the feature map).
        body_model_dir: folder with SMPLX_NEUTRAL.npz.
        data: training data (person crops).
        output: run folder.
        decoder: decoder sizes; ``context_dim`` and ``feature_hw`` always follow the
            whole-body model.
        loss: weights of the body losses.
        optimizer: AdamW and schedule.
        run: steps, batch, device, precision, seed.
    """

    whole_body: str
    body_model_dir: str
    data: DataConfig
    output: OutputConfig
    decoder: DeformableDecoderConfig = DeformableDecoderConfig()
    loss: BodyLossWeights = BodyLossWeights()
    optimizer: OptimizerConfig = OptimizerConfig(weight_decay=1e-3)
    run: RunConfig = RunConfig()


TrainConfig = HandAdapterTrainConfig | BodyAdapterTrainConfig | DeformableDecoderTrainConfig
"""Any training configuration."""
