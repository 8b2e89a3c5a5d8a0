"""Hand-expert baselines of the paper's Tables 3 and 5 (HMR-Adapter section 4.3).

Two kinds (docs/evaluation.md, "Ablation variants"):

1. Weight-only variants change HaMeR's weights, not its structure, and their result is a
   normal hand-expert model file (``load_hand_expert`` reads it): ``FineTunedHandExpert`` with
   scope 'all' (Table 3 No.1, full fine-tuning, 671M; No.2, the same from a fresh
   initialisation, ``reinitialise_hand_expert``) or 'decoder' (No.3, the MANO transformer
   head only, 39M). Full fine-tuning trains the network as HaMeR's own training does: the
   whole model in training mode, so the ViT-H's stochastic depth (drop-path 0.55, HaMeR's
   config) is active; decoder-only fine-tuning keeps the frozen ViT in eval mode (like the
   adapters: drop-path must not perturb frozen features). The decoder has no dropout or
   normalisation statistics (dropout 0, LayerNorm only), so its mode changes nothing.
2. Injection variants feed the body pose into a fine-tuned copy of HaMeR's decoder:
   ``BodyFeatureInjection`` with mode 'concatenation' (Table 3 No.4 and Table 5
   "Concatenation": the body pose tokens F^B of the adapter's projection, one per arm joint,
   appended to the 192 image tokens F^H as the decoder's cross-attention context, as the
   paper describes after Hand4Whole [24]; 39M) or 'weighted_sum' (Table 5 "Weighted sum":
   PIXIE's moderator [8], an MLP on the concatenated body and image features that predicts
   two confidences, softmax(MLP(.) * temperature), and the fused feature
   w_body f_B + w_image F^H_t, per image token). Their file is an adapter file
   (checkpoints.adapter_files) holding the decoder copy and the new layers.

The paper's HMR-Adapter variants that only change the adapter's input (Table 3 No.5, the
image features; Table 5, the whole-body pose) are ``HandAdapterConfig.guidance`` options of
models/adapters/hand_adapter.py, not models of their own.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal, get_args

import torch
from torch import Tensor, nn

from hmr_ros.body_models.joint_names import Side
from hmr_ros.models.adapters.hand_adapter import (
    JOINT_EMBEDDING_INIT_STD,
    NUM_ARM_JOINTS,
    ROT6D_DIM,
    GuidanceInput,
    arm_guidance,
    arm_guidance_from_axis_angle,
    known_body_pose,
)
from hmr_ros.models.hand_expert import HandExpert, HandExpertOutput
from hmr_ros.models.heads.mano_head import MANOHeadOutput, MANOTransformerHead

__all__ = [
    'FINE_TUNE_SCOPES',
    'HAND_ABLATION_VARIANTS',
    'HAND_GUIDANCE_VARIANTS',
    'HAND_INJECTION_VARIANTS',
    'HAND_WEIGHT_ONLY_VARIANTS',
    'INJECTION_ADAPTER_NAMES',
    'INJECTION_MODES',
    'MODERATOR_HIDDEN_DIMS',
    'BodyFeatureInjection',
    'FineTuneScope',
    'FineTunedHandExpert',
    'InjectionMode',
    'TrainedHandWeights',
    'reinitialise_hand_expert',
]

FineTuneScope = Literal['all', 'decoder']
"""What a weight-only variant trains: the whole hand expert or its MANO head."""

FINE_TUNE_SCOPES: tuple[str, ...] = get_args(FineTuneScope)

InjectionMode = Literal['concatenation', 'weighted_sum']
"""How ``BodyFeatureInjection`` combines the body pose feature with the image features."""

INJECTION_MODES: tuple[str, ...] = get_args(InjectionMode)

INJECTION_ADAPTER_NAMES: dict[str, str] = {
    'concatenation': 'hand_concatenation',
    'weighted_sum': 'hand_weighted_sum',
}
"""Model-card ``model`` of each injection mode's adapter file."""

HAND_WEIGHT_ONLY_VARIANTS: dict[str, FineTuneScope] = {
    'hamer_full_finetune': 'all',
    'hamer_from_scratch': 'all',
    'hamer_decoder_finetune': 'decoder',
}
"""Variants that only change the hand expert's weights -> what they train; their trained file
is a hand-expert model file (used in place of HaMeR)."""

HAND_INJECTION_VARIANTS: dict[str, InjectionMode] = {
    'hamer_concatenation': 'concatenation',
    'hand_concatenation': 'concatenation',
    'hand_weighted_sum': 'weighted_sum',
}
"""Variants that inject body features into a fine-tuned decoder copy -> how; their file is a
hand adapter file (BodyFeatureInjection)."""

HAND_GUIDANCE_VARIANTS: dict[str, GuidanceInput] = {
    'hamer_adapter_image_input': 'image_features',
    'hand_whole_body_pose': 'whole_body_pose',
}
"""Variants that are the HMR-Adapter fed another input -> that input; their file is a hand
adapter file (HandAdapter)."""

HAND_ABLATION_VARIANTS: tuple[str, ...] = (
    *HAND_WEIGHT_ONLY_VARIANTS,
    *HAND_INJECTION_VARIANTS,
    *HAND_GUIDANCE_VARIANTS,
)
"""Every hand ablation variant (training/config.py HandVariant names but 'hmr_adapter')."""

MODERATOR_HIDDEN_DIMS: tuple[int, ...] = (1024, 1024)
"""Hidden widths of the moderator MLP: PIXIE's hand moderator (TempSoftmaxFusion with its
config's channels [1024, 1024]: 2 C -> 1024 -> 1024 -> 2, ReLU between)."""


# --- Weight-only variants (Table 3 No.1-3) ------------------------------------------------------


def reinitialise_hand_expert(hand_expert: HandExpert, seed: int | None = None) -> HandExpert:
    """Replace every learned weight by a fresh initialisation (Table 3 No.2, "from scratch").

    The weights are those of a newly built model of the same variant: the ViT as ViTPose
    initialises it (trunc-normal std 0.02 linear layers and position embedding, zero biases,
    unit LayerNorms; PyTorch's default for the patch convolution), the decoder with PyTorch's
    defaults (HaMeR's own head constructor). The MANO mean parameters (buffers ``init_*``)
    are kept: they are data HaMeR's training starts from (mano_mean_params.npz), not weights.

    Args:
        hand_expert: the loaded model (changed in place and returned).
        seed: seeds the initialisation; None uses torch's current RNG.

    Returns:
        ``hand_expert``.
    """
    reference = hand_expert.mano_head.decpose.weight
    rng = torch.random.fork_rng(devices=[], enabled=seed is not None)
    with rng, torch.device(reference.device):
        if seed is not None:
            torch.manual_seed(seed)
        fresh = HandExpert(hand_expert.config)
    buffers = {name for name, _ in hand_expert.named_buffers()}
    weights = {k: v for k, v in fresh.state_dict().items() if k not in buffers}
    with torch.no_grad():
        missing, unexpected = hand_expert.load_state_dict(weights, strict=False)
    if set(missing) != buffers or unexpected:  # every weight replaced, every buffer kept
        raise RuntimeError(f're-initialisation left {missing} / {unexpected}')
    return hand_expert


class TrainedHandWeights(nn.Module):
    """The trained part of a weight-only variant, as training checkpoints store it.

    A wrapper with an ``adapter_name`` and a ``file_config`` (checkpoints.adapter_files), so
    checkpoints and resume work as for the adapters; the final file of the variant is the
    whole hand expert's model file (``FineTunedHandExpert.hand_expert``).

    Attributes:
        adapter_name: the variant (``'hamer_full_finetune'``, ...).
        scope: 'all' or 'decoder'.
        part: the trained module (the hand expert or its ``mano_head``).
    """

    def __init__(self, part: nn.Module, variant: str, scope: FineTuneScope) -> None:
        super().__init__()
        self.adapter_name = variant
        self.scope = scope
        self.part = part

    def file_config(self) -> dict[str, int | float | bool | str]:
        """The scope and the parameter count fix the stored tensors."""
        return {
            'scope': self.scope,
            'parameters': sum(p.numel() for p in self.part.parameters()),
        }


class FineTunedHandExpert(nn.Module):
    """HaMeR whose own weights train (Table 3 No.1-3): the model the trainer runs.

    Takes the hand path's arguments (crops, guidance, has_body_pose) and ignores the guidance:
    these baselines have no body input. ``trained`` is the module whose parameters train;
    everything else has ``requires_grad`` False.

    Args:
        hand_expert: the loaded (or re-initialised) model.
        scope: 'all' (No.1, No.2) or 'decoder' (No.3: the MANO head; the ViT stays frozen and
            in eval mode).
        variant: the variant name written into checkpoints.
    """

    guidance_joints: ClassVar[int] = NUM_ARM_JOINTS

    def __init__(self, hand_expert: HandExpert, scope: FineTuneScope, variant: str) -> None:
        super().__init__()
        if scope not in FINE_TUNE_SCOPES:
            raise ValueError(f'scope must be one of {FINE_TUNE_SCOPES}; got {scope!r}')
        self.hand_expert = hand_expert.requires_grad_(False)
        part: nn.Module = hand_expert if scope == 'all' else hand_expert.mano_head
        part.requires_grad_(True)
        self.trained = TrainedHandWeights(part, variant, scope)
        self.scope = scope

    def train(self, mode: bool = True) -> FineTunedHandExpert:
        """Training mode on the trained part; a frozen ViT stays in eval mode."""
        super().train(mode)
        if self.scope == 'decoder':
            self.hand_expert.backbone.eval()
        return self

    def guidance(self, body_rotmat: Tensor, side: Side) -> Tensor:
        """The arm group (ignored by the forward; the hand path's interface)."""
        return arm_guidance(body_rotmat, side)

    def guidance_from_axis_angle(self, body_pose_aa: Tensor, side: Side) -> Tensor:
        """The arm group from axis-angles (ignored by the forward)."""
        return arm_guidance_from_axis_angle(body_pose_aa, side)

    def forward(
        self, crops: Tensor, arm_pose_6d: Tensor, has_body_pose: Tensor | None = None
    ) -> HandExpertOutput:
        """HaMeR on the crops; the guidance arguments are ignored."""
        del arm_pose_6d, has_body_pose
        return self.hand_expert(crops)


# --- Body feature injection (Table 3 No.4, Table 5) ---------------------------------------------


class BodyFeatureInjection(nn.Module):
    """A fine-tuned copy of HaMeR's decoder fed the body pose with the image features.

    Built from the frozen head (its copy ``decoder`` starts with HaMeR's weights; the base
    model's head is not modified and not used). It runs in the hand path where the hand
    adapter would (``GuidedHandExpert``): ``forward(head, feature_map, pose_6d,
    has_body_pose)`` with the same guidance (the arm joint group, zero for hand-only data).

    - 'concatenation': F^B = Linear(theta_b) (+ joint embedding), (B, 8, C), the adapter's
      body projection; the decoder's context is [F^H; F^B], (B, 192 + 8, C).
    - 'weighted_sum': f_B = Linear(flatten theta_b), (B, C), the body pose feature; per image
      token, w = softmax(MLP([f_B, F^H_t]) * temperature) (PIXIE's moderator: 2C -> 1024 ->
      1024 -> 2 with ReLUs, temperature initialised to 1) and the context token is
      w_0 f_B + w_1 F^H_t.

    Attributes:
        adapter_name: 'hand_concatenation' or 'hand_weighted_sum' (INJECTION_ADAPTER_NAMES).
        mode: the injection mode.
        decoder: the fine-tuned MANO head.
    """

    joint_embedding: nn.Parameter | None

    def __init__(
        self, head: MANOTransformerHead, mode: InjectionMode, joint_embedding: bool = True
    ) -> None:
        super().__init__()
        if mode not in INJECTION_MODES:
            raise ValueError(f'mode must be one of {INJECTION_MODES}; got {mode!r}')
        self.mode = mode
        self.adapter_name = INJECTION_ADAPTER_NAMES[mode]
        self.use_joint_embedding = joint_embedding
        self.decoder = copy.deepcopy(head).requires_grad_(True)
        c = head.config.context_dim
        reference = head.decpose.weight
        self.moderator: nn.Sequential | None = None
        self.temperature: nn.Parameter | None = None
        if mode == 'concatenation':
            self.body_projection = nn.Linear(ROT6D_DIM, c)
            if joint_embedding:
                self.joint_embedding = nn.Parameter(torch.empty(1, NUM_ARM_JOINTS, c))
                nn.init.trunc_normal_(self.joint_embedding, std=JOINT_EMBEDDING_INIT_STD)
            else:
                self.register_parameter('joint_embedding', None)
        else:
            self.body_projection = nn.Linear(NUM_ARM_JOINTS * ROT6D_DIM, c)
            self.register_parameter('joint_embedding', None)
            layers: list[nn.Module] = []
            width = 2 * c  # [f_B, F^H_t]
            for hidden in MODERATOR_HIDDEN_DIMS:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
            layers.append(nn.Linear(width, 2))  # (body, image) logits
            self.moderator = nn.Sequential(*layers)
            self.temperature = nn.Parameter(torch.ones(1))
        self.to(device=reference.device, dtype=reference.dtype)

    @property
    def guidance_joints(self) -> int:
        """The arm joint group (8), as the paper's adapter."""
        return NUM_ARM_JOINTS

    def guidance_from_body(self, body_rotmat: Tensor, side: Side) -> Tensor:
        """(B, 8, 6) arm group of one side (``arm_guidance``)."""
        return arm_guidance(body_rotmat, side)

    def guidance_from_axis_angle(self, body_pose_aa: Tensor, side: Side) -> Tensor:
        """(B, 8, 6) arm group from axis-angles (``arm_guidance_from_axis_angle``)."""
        return arm_guidance_from_axis_angle(body_pose_aa, side)

    def file_config(self) -> dict[str, int | float | bool | str]:
        """Sizes and choices that fix the stored tensors."""
        c = self.decoder.config
        return {
            'mode': self.mode,
            'dim': c.dim,
            'depth': c.depth,
            'heads': c.heads,
            'dim_head': c.dim_head,
            'mlp_dim': c.mlp_dim,
            'context_dim': c.context_dim,
            'guidance_joints': NUM_ARM_JOINTS,
            'joint_embedding': self.use_joint_embedding,
        }

    def body_tokens(self, pose_6d: Tensor, has_body_pose: Tensor | None = None) -> Tensor:
        """Concatenation: F^B (B, 8, C); weighted sum: f_B (B, 1, C).

        Unknown body poses are zeros (paper 3.3), as for the adapter.
        """
        pose_6d = known_body_pose(pose_6d, has_body_pose)
        if self.mode == 'weighted_sum':
            return self.body_projection(pose_6d.flatten(1))[:, None]
        tokens = self.body_projection(pose_6d)
        if self.joint_embedding is not None:
            tokens = tokens + self.joint_embedding
        return tokens

    def moderator_weights(self, body_feature: Tensor, image_tokens: Tensor) -> Tensor:
        """(B, N, 2) confidences (body, image) of each image token; they sum to 1."""
        assert self.moderator is not None and self.temperature is not None
        body = body_feature.expand(-1, image_tokens.shape[1], -1)
        logits = self.moderator(torch.cat((body, image_tokens), dim=-1))
        return torch.softmax(logits * self.temperature, dim=-1)

    def context(self, image_tokens: Tensor, body: Tensor) -> Tensor:
        """The decoder's context from image tokens (B, N, C) and ``body_tokens``."""
        if self.mode == 'concatenation':
            return torch.cat((image_tokens, body), dim=1)
        weights = self.moderator_weights(body, image_tokens)
        return weights[..., :1] * body + weights[..., 1:] * image_tokens

    def forward(
        self,
        head: MANOTransformerHead,
        feature_map: Tensor,
        arm_pose_6d: Tensor,
        has_body_pose: Tensor | None = None,
    ) -> MANOHeadOutput:
        """The fine-tuned decoder on the injected context.

        Args:
            head: the base model's (frozen) head; unused (the decoder copy runs), taken for
                the hand path's interface.
            feature_map: (B, C, H', W') hand ViT features.
            arm_pose_6d: (B, 8, 6) arm group guidance (contiguous 6D, left arms mirrored).
            has_body_pose: (B,) bool or None.

        Returns:
            MANOHeadOutput.
        """
        del head
        decoder = self.decoder
        image_tokens = decoder.context_tokens(feature_map)
        body = self.body_tokens(arm_pose_6d, has_body_pose).to(image_tokens.dtype)
        context = self.context(image_tokens, body)
        x = decoder.query_tokens(context.shape[0], context)
        for layer in decoder.transformer.layers:
            x = layer(x, context)
        return decoder.regress(x[:, 0])
