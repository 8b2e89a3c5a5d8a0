"""Hand adapter of HMR-Adapter: the body pose guides the frozen hand expert (paper section 3.3).

Direction: body -> hand. The arm joint group of the body pose (root to that side's wrist along
the SMPL-X kinematic chain, 8 joints) becomes body tokens F^B, and every frozen decoder block of
HaMeR's MANO head gets a parallel, trainable branch that attends to them (paper eqs. 2 and 3)::

    F^B   = Linear(theta_b) (+ joint embedding)                    (B, 8, context_dim)
    Z_sa  = Z + SA(Z)                        frozen
    Z_ca  = Z_sa + CA(Z_sa, F^H)             frozen    (HaMeR: Q = SA(Z) W_q, K, V from F^H)
          + CA'(Z + SA'(Z), F^B)             adapter   (Q' = SA'(Z) W'_q, K', V' from F^B)
    Z_new = Z_ca + FFN(Z_ca)                 frozen

(each SA/CA/FFN is HaMeR's pre-norm step, LayerNorm inside). Design decisions:

1. Initialisation (paper 3.3): SA' is a copy of the block's PreNorm(SelfAttention) and CA' a
   copy of its PreNorm(CrossAttention): W'_q from ``to_q``, W'_k and W'_v from ``to_kv``. That
   copy fits because F^B has the width of the image tokens F^H (``context_dim``, 1280 for HaMeR).
2. No-op start (ControlNet-style, our choice; the paper does not say how CA' is initialised
   beyond W'_q, W'_k, W'_v): CA''s output projection ``to_out`` starts at zero, so an untrained
   adapter returns exactly the base model's outputs (tested bitwise). At the first step only
   ``to_out`` receives gradient; everything upstream of it starts learning once it is non-zero.
3. Wrap, do not rewrite: the adapter holds only its own parameters. ``HandAdapter.forward`` takes
   the frozen ``MANOTransformerHead`` as an argument and runs its steps (``query_tokens``,
   ``attend_self``, ``attend_context``, ``feed_forward``, ``regress``) with the branches added;
   no base module is copied into, modified by or registered in the adapter, so the adapter's
   state dict is the adapter file (hmr_ros.checkpoints.adapter_files).
4. Joint identity: attention treats its keys as a set, so with one shared linear layer (the
   paper's design) CA' could not tell an elbow rotation from an equal spine rotation. A learned
   per-joint embedding (8 x context_dim, 10,240 values at HaMeR size) is added to F^B;
   ``HandAdapterConfig(joint_embedding=False)`` gives the paper's plain linear layer.
5. Unknown body pose (hand-only data, paper 3.3 "we set the additional body pose to zero"):
   ``has_body_pose`` False replaces theta_b by literal zeros before the linear layer (F^B is then
   the bias plus the joint embedding). Zero 6D vectors are not a rotation, so "unknown" stays
   distinct from a rest pose (identity = (1, 0, 0, 0, 1, 0) in the contiguous layout).
6. 6D layout: the adapter lives in the hand model, so theta_b uses HaMeR's contiguous layout
   (a1 = v[0:3], a2 = v[3:6]). The ``arm_guidance*`` functions convert from rotation matrices,
   axis-angle or SMPLer-X's interleaved 6D.
7. Left hands: the hand expert sees a flipped left hand as a right hand, so a left arm's
   rotations are mirrored, R -> M R M with M = diag(-1, 1, 1) (axis-angle (x, -y, -z)), exactly
   like the crop. ``arm_guidance(body, 'left')`` of a person equals ``arm_guidance(mirrored
   body, 'right')``: the adapter always sees right-arm-like guidance.
8. Skipping the adapter (ablation "no hand adapter"): ``GuidedHandExpert(hand_expert, None)``
   runs the plain hand expert and ignores the guidance; nothing else changes.
9. What the branches attend to (``HandAdapterConfig.guidance``, the paper's ablations of
   Tables 3 and 5): 'arm_pose' (the paper's design, above), 'whole_body_pose' (all 22 root and
   body rotations instead of the arm group, Table 5 "Whole-body pose": the same linear layer
   and a 22-joint embedding; for a left hand the whole body is mirrored, left and right joints
   swapped, as the flipped crop) or 'image_features' (Table 3 No.5: CA' attends to the hand
   image tokens F^H, HaMeR's own decoder input, instead of F^B; there is no body projection
   and the guidance is ignored). Callers get the adapter's input from a body pose with
   ``guidance_from_body`` / ``guidance_from_axis_angle`` rather than ``arm_guidance``.

Parameter count at HaMeR size (dim 1024, 8 x 64 heads, context 1280, 6 blocks): per block SA'
2,100,224 + CA' 2,362,368 = 4,462,592, times 6 = 26,775,552; plus the linear layer 8,960 and the
joint embedding 10,240: 26,794,752 (the paper's "about 27M in HaMeR").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, cast, get_args

import torch
from torch import Tensor, nn

from hmr_ros.body_models.joint_names import (
    BODY_POSE_FLIP_PERMUTATION,
    NUM_BODY_JOINTS,
    NUM_ROOT_JOINTS,
    SIDES,
    Side,
    arm_chain,
    arm_chain_indices,
)
from hmr_ros.geometry.constants import take
from hmr_ros.geometry.rotations import (
    Rot6dLayout,
    axis_angle_to_rotmat,
    mirror_rotmat,
    rot6d_to_rotmat,
    rotmat_to_rot6d,
)
from hmr_ros.models.components.pose_transformer import (
    CrossAttention,
    DecoderLayer,
    PreNorm,
    SelfAttention,
)
from hmr_ros.models.hand_expert import HandExpert, HandExpertOutput
from hmr_ros.models.heads.mano_head import (
    ROT6D_LAYOUT as HAMER_ROT6D_LAYOUT,
)
from hmr_ros.models.heads.mano_head import (
    MANOHeadConfig,
    MANOHeadOutput,
    MANOTransformerHead,
)

__all__ = [
    'GUIDANCE_INPUTS',
    'GUIDANCE_ROT6D_LAYOUT',
    'NUM_ARM_JOINTS',
    'NUM_BODY_ROTATIONS',
    'GuidanceBranch',
    'GuidedHandExpert',
    'HandAdapter',
    'HandAdapterConfig',
    'HeadAdapter',
    'arm_guidance',
    'arm_guidance_both_sides',
    'arm_guidance_from_axis_angle',
    'arm_guidance_from_smplerx_6d',
    'known_body_pose',
    'whole_body_guidance',
]

NUM_ARM_JOINTS = len(arm_chain('right'))
"""Joints of one arm group: pelvis, spine1, spine2, spine3, collar, shoulder, elbow, wrist (8)."""

NUM_BODY_ROTATIONS = NUM_ROOT_JOINTS + NUM_BODY_JOINTS
"""Rotations of a body pose as the guidance functions take it: root first, then 21 (22)."""

ROT6D_DIM = 6

GUIDANCE_ROT6D_LAYOUT: Rot6dLayout = HAMER_ROT6D_LAYOUT
"""Layout of the adapter's input theta_b: HaMeR's 'contiguous' (a1 = v[0:3], a2 = v[3:6])."""

GuidanceInput = Literal['arm_pose', 'whole_body_pose', 'image_features']
"""What the adapter's branches attend to (module docstring, point 9)."""

GUIDANCE_INPUTS: tuple[str, ...] = get_args(GuidanceInput)

JOINT_EMBEDDING_INIT_STD = 0.02
"""Std of the truncated-normal joint embedding at initialisation (as ViT position embeddings)."""


# --- Guidance: the arm joint group as the adapter consumes it ------------------------------------


def _check_body_rotations(tensor: Tensor, trailing: tuple[int, ...], name: str) -> None:
    shape = (NUM_BODY_ROTATIONS, *trailing)
    if tensor.dim() < len(shape) + 1 or tuple(tensor.shape[-len(shape) :]) != shape:
        raise ValueError(
            f'{name} must be (B, {", ".join(map(str, shape))}): the root (global_orient) first, '
            f'then the 21 SMPL-X body joints; got {tuple(tensor.shape)}. For SMPL-X parameters '
            'use torch.cat((global_orient[:, None], body_pose.reshape(B, 21, 3)), dim=1).'
        )


def _arm_chain(joints: Tensor, side: Side, dim: int) -> Tensor:
    """The arm joint group of ``side`` along ``dim`` (Python indices: no host copy)."""
    if side not in SIDES:
        raise ValueError(f'side must be one of {SIDES}, got {side!r}')
    return take(joints, arm_chain_indices(side), dim)


def arm_guidance(body_rotmat: Tensor, side: Side) -> Tensor:
    """The hand adapter's input theta_b for one hand from a body pose's rotation matrices.

    Selects the arm joint group (pelvis, spine1-3, collar, shoulder, elbow, wrist of ``side``),
    mirrors it for the left hand (R -> M R M, M = diag(-1, 1, 1), as the flipped left-hand crop)
    and writes it in HaMeR's contiguous 6D layout.

    Args:
        body_rotmat: (B, 22, 3, 3) local rotations, root (SMPL-X ``global_orient``, camera
            frame) first, then the 21 body joints in SMPL-X order.
        side: 'left' or 'right'.

    Returns:
        (B, 8, 6) contiguous 6D, root first.

    Raises:
        ValueError: wrong shape or side.
    """
    _check_body_rotations(body_rotmat, (3, 3), 'body_rotmat')
    chain = _arm_chain(body_rotmat, side, -3)
    if side == 'left':
        chain = mirror_rotmat(chain)
    return rotmat_to_rot6d(chain, GUIDANCE_ROT6D_LAYOUT)


def arm_guidance_from_axis_angle(body_pose_aa: Tensor, side: Side) -> Tensor:
    """``arm_guidance`` for axis-angle body poses (training data in SMPL-X parameters).

    Args:
        body_pose_aa: (B, 22, 3) axis-angle (radians), root first, then the 21 body joints.
        side: 'left' or 'right'.

    Returns:
        (B, 8, 6) contiguous 6D; for the left hand the axis-angles are mirrored (x, -y, -z).
    """
    _check_body_rotations(body_pose_aa, (3,), 'body_pose_aa')
    chain = _arm_chain(body_pose_aa, side, -2)
    return _chain_to_guidance(axis_angle_to_rotmat(chain), side)


def arm_guidance_from_smplerx_6d(body_pose_6d: Tensor, side: Side) -> Tensor:
    """``arm_guidance`` for the whole-body model's pose (``WholeBodyStages.body_pose_6d``).

    Args:
        body_pose_6d: (B, 22, 6) SMPLer-X interleaved 6D, root first (e.g. the refined body
            pose theta_0 + delta-theta of the body adapter).
        side: 'left' or 'right'.

    Returns:
        (B, 8, 6) contiguous 6D (Gram-Schmidt-normalised, so a raw network output is fine).
    """
    _check_body_rotations(body_pose_6d, (ROT6D_DIM,), 'body_pose_6d')
    chain = _arm_chain(body_pose_6d, side, -2)
    return _chain_to_guidance(rot6d_to_rotmat(chain, 'interleaved'), side)


def _chain_to_guidance(chain_rotmat: Tensor, side: Side) -> Tensor:
    if side == 'left':
        chain_rotmat = mirror_rotmat(chain_rotmat)
    return rotmat_to_rot6d(chain_rotmat, GUIDANCE_ROT6D_LAYOUT)


def whole_body_guidance(body_rotmat: Tensor, side: Side) -> Tensor:
    """The input of the 'whole_body_pose' adapter (Table 5): all 22 root and body rotations.

    For the left hand the whole body is mirrored as its flipped crop is: every rotation
    R -> M R M and left and right joints swapped (the flip of datasets.augmentation), so a
    left hand sees the body a right hand would see in the mirror image.

    Args:
        body_rotmat: (B, 22, 3, 3) local rotations, root first, then the 21 body joints.
        side: 'left' or 'right'.

    Returns:
        (B, 22, 6) contiguous 6D, root first.
    """
    _check_body_rotations(body_rotmat, (3, 3), 'body_rotmat')
    if side not in SIDES:
        raise ValueError(f'side must be one of {SIDES}, got {side!r}')
    if side == 'left':
        order = (0, *(NUM_ROOT_JOINTS + i for i in BODY_POSE_FLIP_PERMUTATION))
        body_rotmat = mirror_rotmat(take(body_rotmat, order, -3))
    return rotmat_to_rot6d(body_rotmat, GUIDANCE_ROT6D_LAYOUT)


def arm_guidance_both_sides(body_rotmat: Tensor) -> Tensor:
    """Guidance of both hands, (B, 2, 8, 6), sides in SIDES order (left mirrored, right)."""
    return torch.stack([arm_guidance(body_rotmat, side) for side in SIDES], dim=-3)


def known_body_pose(
    pose_6d: Tensor, has_body_pose: Tensor | None, joints: int = NUM_ARM_JOINTS
) -> Tensor:
    """The guidance with unknown body poses replaced by zeros (paper 3.3, hand-only data).

    Args:
        pose_6d: (B, J, 6) contiguous 6D guidance (``HandAdapter.guidance_from_body``).
        has_body_pose: (B,) bool, False where no body pose is known; None: all known.
        joints: the J the caller takes.

    Returns:
        (B, J, 6), zero rows for unknown poses (``where``: NaN fillers do not leak).

    Raises:
        ValueError: wrong shapes.
    """
    if pose_6d.dim() != 3 or tuple(pose_6d.shape[1:]) != (joints, ROT6D_DIM):
        names, maker = (
            (', '.join(arm_chain('right')), 'arm_guidance')
            if joints == NUM_ARM_JOINTS
            else ('the root and 21 body joints', 'whole_body_guidance')
        )
        raise ValueError(
            f'arm_pose_6d must be (B, {joints}, {ROT6D_DIM}) contiguous 6D rotations '
            f'of {names} (see {maker}); got {tuple(pose_6d.shape)}'
        )
    if has_body_pose is None:
        return pose_6d
    if tuple(has_body_pose.shape) != (pose_6d.shape[0],):
        raise ValueError(
            f'has_body_pose must be ({pose_6d.shape[0]},) bool, one flag per hand; '
            f'got {tuple(has_body_pose.shape)}'
        )
    known = has_body_pose.to(device=pose_6d.device, dtype=torch.bool)[:, None, None]
    return torch.where(known, pose_6d, torch.zeros_like(pose_6d))


# --- Adapter ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandAdapterConfig:
    """Choices of the hand adapter; all sizes come from the MANO head it wraps.

    Attributes:
        joint_embedding: add a learned per-joint embedding to F^B (module docstring, point 4);
            False is the paper's plain shared linear layer.
        guidance: what the branches attend to: 'arm_pose' (the paper's HMR-Adapter),
            'whole_body_pose' or 'image_features' (ablations; module docstring, point 9).
    """

    joint_embedding: bool = True
    guidance: GuidanceInput = 'arm_pose'

    def __post_init__(self) -> None:
        if self.guidance not in GUIDANCE_INPUTS:
            raise ValueError(
                f'adapter.guidance must be one of {GUIDANCE_INPUTS}; got {self.guidance!r}'
            )

    @property
    def guidance_joints(self) -> int:
        """Rotations of the adapter's input theta_b: 8 (arm), 22 (whole body), 0 (image)."""
        return {'arm_pose': NUM_ARM_JOINTS, 'whole_body_pose': NUM_BODY_ROTATIONS}.get(
            self.guidance, 0
        )


def _decoder_layers(head: MANOTransformerHead) -> list[DecoderLayer]:
    """The head's frozen decoder blocks, typed."""
    return [cast(DecoderLayer, layer) for layer in head.transformer.layers]


class GuidanceBranch(nn.Module):
    """SA' and CA' of one decoder block: CA'(Z + SA'(Z), F^B) (paper eq. 2).

    Attributes:
        self_attention: PreNorm(SelfAttention), initialised from the block's SA.
        cross_attention: PreNorm(CrossAttention) over F^B, initialised from the block's
            cross-attention (``to_q`` = W'_q, ``to_kv`` = [W'_k; W'_v]), ``to_out`` zeroed.
    """

    def __init__(self, block: DecoderLayer, config: MANOHeadConfig) -> None:
        super().__init__()
        c = config
        self.self_attention = PreNorm(c.dim, SelfAttention(c.dim, c.heads, c.dim_head, c.dropout))
        self.cross_attention = PreNorm(
            c.dim, CrossAttention(c.dim, c.context_dim, c.heads, c.dim_head, c.dropout)
        )
        reference = block.self_attention.norm.weight
        self.to(device=reference.device, dtype=reference.dtype)
        # Copies of values (load_state_dict copies), never shared tensors with the frozen block.
        self.self_attention.load_state_dict(block.self_attention.state_dict())
        self.cross_attention.load_state_dict(block.cross_attention.state_dict())
        output = self.output_projection
        nn.init.zeros_(output.weight)
        nn.init.zeros_(output.bias)
        self.set_fused_attention(c.fused_attention)

    @property
    def output_projection(self) -> nn.Linear:
        """CA''s output projection (``cross_attention.fn.to_out.0``), zero at initialisation."""
        attention = cast(CrossAttention, self.cross_attention.fn)
        return cast(nn.Linear, attention.to_out[0])

    def set_fused_attention(self, enabled: bool) -> None:
        """Switch both attentions between the fused and the reference path."""
        cast(SelfAttention, self.self_attention.fn).fused = enabled
        cast(CrossAttention, self.cross_attention.fn).fused = enabled

    def forward(self, block_input: Tensor, body_tokens: Tensor) -> Tensor:
        """The branch's residual update, to add to the block's cross-attention output.

        Args:
            block_input: (B, N, dim) the block's input tokens Z (before its self-attention).
            body_tokens: (B, J, context_dim) F^B.

        Returns:
            (B, N, dim) CA'(Z + SA'(Z), F^B); exactly zero while ``to_out`` is zero.
        """
        query = block_input + self.self_attention(block_input)
        return self.cross_attention(query, body_tokens)


class HandAdapter(nn.Module):
    """HMR-Adapter for the hand expert: body pose guides HaMeR's frozen decoder (paper 3.3).

    Built from the frozen head it will wrap (for the sizes and the SA'/CA' initialisation) but
    does not keep it: ``forward`` takes the head. Parameter names: ``body_projection`` (the
    linear layer theta_b -> F^B), ``joint_embedding`` (1, 8, context_dim) if configured,
    ``blocks.{i}.self_attention.*`` (SA') and ``blocks.{i}.cross_attention.*`` (CA').

    Attributes:
        adapter_name: model family written in adapter files ('hand_adapter').
        config: HandAdapterConfig.
        head_config: the MANO head sizes the adapter was built for.
    """

    adapter_name: ClassVar[str] = 'hand_adapter'
    joint_embedding: nn.Parameter | None

    def __init__(
        self, head: MANOTransformerHead, config: HandAdapterConfig = HandAdapterConfig()
    ) -> None:
        super().__init__()
        self.config = config
        self.head_config = head.config
        context_dim = head.config.context_dim
        reference = head.decpose.weight
        joints = config.guidance_joints
        self.body_projection: nn.Linear | None = None
        if joints:  # 'image_features' attends to F^H: no body tokens to project
            self.body_projection = nn.Linear(
                ROT6D_DIM, context_dim, device=reference.device, dtype=reference.dtype
            )
        if config.joint_embedding and joints:
            self.joint_embedding = nn.Parameter(
                torch.empty(1, joints, context_dim, device=reference.device, dtype=reference.dtype)
            )
            nn.init.trunc_normal_(self.joint_embedding, std=JOINT_EMBEDDING_INIT_STD)
        else:
            self.register_parameter('joint_embedding', None)
        self.blocks = nn.ModuleList(
            GuidanceBranch(layer, head.config) for layer in _decoder_layers(head)
        )

    @property
    def branches(self) -> list[GuidanceBranch]:
        """The per-block branches (``blocks``), typed."""
        return [cast(GuidanceBranch, block) for block in self.blocks]

    def file_config(self) -> dict[str, int | float | bool | str]:
        """Everything that fixes this adapter's state-dict shapes, for the adapter file's card."""
        c = self.head_config
        config: dict[str, int | float | bool | str] = {
            'dim': c.dim,
            'depth': c.depth,
            'heads': c.heads,
            'dim_head': c.dim_head,
            'context_dim': c.context_dim,
            'guidance_joints': self.config.guidance_joints,
            'guidance_rot6d_layout': GUIDANCE_ROT6D_LAYOUT,
            'joint_embedding': self.config.joint_embedding,
        }
        if self.config.guidance != 'arm_pose':  # files of the paper's adapter stay as they were
            config['guidance'] = self.config.guidance
        return config

    @property
    def guidance_joints(self) -> int:
        """Rotations J of the input theta_b (B, J, 6): 8, 22, or 0 (image features)."""
        return self.config.guidance_joints

    def guidance_from_body(self, body_rotmat: Tensor, side: Side) -> Tensor:
        """This adapter's input for one hand from a body pose's rotation matrices.

        Args:
            body_rotmat: (B, 22, 3, 3) local rotations, root first (as ``arm_guidance``).
            side: 'left' or 'right' (left: mirrored as the flipped crop).

        Returns:
            (B, J, 6) contiguous 6D, J = ``guidance_joints`` (an empty (B, 0, 6) for
            'image_features', which takes no body pose).
        """
        if self.config.guidance == 'whole_body_pose':
            return whole_body_guidance(body_rotmat, side)
        if self.config.guidance == 'image_features':
            _check_body_rotations(body_rotmat, (3, 3), 'body_rotmat')
            return body_rotmat.new_zeros(body_rotmat.shape[0], 0, ROT6D_DIM)
        return arm_guidance(body_rotmat, side)

    def guidance_from_axis_angle(self, body_pose_aa: Tensor, side: Side) -> Tensor:
        """``guidance_from_body`` for (B, 22, 3) axis-angle body poses (training data)."""
        if self.config.guidance == 'arm_pose':
            return arm_guidance_from_axis_angle(body_pose_aa, side)
        _check_body_rotations(body_pose_aa, (3,), 'body_pose_aa')
        return self.guidance_from_body(axis_angle_to_rotmat(body_pose_aa), side)

    def set_fused_attention(self, enabled: bool) -> None:
        """Switch every branch between fused and reference attention."""
        for branch in self.branches:
            branch.set_fused_attention(enabled)

    def body_tokens(self, arm_pose_6d: Tensor, has_body_pose: Tensor | None = None) -> Tensor:
        """F^B from the arm joint group.

        Args:
            arm_pose_6d: (B, J, 6) theta_b in the contiguous layout (``guidance_from_body``;
                J = 8 for the arm group), left arms already mirrored.
            has_body_pose: (B,) bool; False where no body pose is known: theta_b is replaced by
                zeros (paper 3.3). None means all known.

        Returns:
            (B, J, context_dim).

        Raises:
            ValueError: wrong shapes.
        """
        if self.body_projection is None:
            raise ValueError("an 'image_features' adapter attends to the image tokens, not F^B")
        arm_pose_6d = known_body_pose(arm_pose_6d, has_body_pose, self.guidance_joints)
        tokens = self.body_projection(arm_pose_6d)
        if self.joint_embedding is not None:
            tokens = tokens + self.joint_embedding
        return tokens

    def _check_head(self, head: MANOTransformerHead) -> None:
        sizes = ('dim', 'depth', 'heads', 'dim_head', 'context_dim')
        if any(getattr(head.config, k) != getattr(self.head_config, k) for k in sizes):
            raise ValueError(
                f'this hand adapter was built for a MANO head with {self.head_config}, not '
                f'{head.config}; build the adapter from the head it wraps'
            )

    def forward(
        self,
        head: MANOTransformerHead,
        feature_map: Tensor,
        arm_pose_6d: Tensor,
        has_body_pose: Tensor | None = None,
    ) -> MANOHeadOutput:
        """Run the frozen head with the body-guided branches (paper eq. 3).

        Args:
            head: the frozen MANO head the adapter was built from (not modified).
            feature_map: (B, context_dim, H', W') hand ViT features.
            arm_pose_6d: (B, J, 6) theta_b, contiguous 6D (see body_tokens; ignored for
                'image_features').
            has_body_pose: (B,) bool or None (see body_tokens).

        Returns:
            MANOHeadOutput, as ``head(feature_map)`` returns it; equal to it while the branches'
            output projections are zero.
        """
        self._check_head(head)
        context = head.context_tokens(feature_map)
        if self.config.guidance == 'image_features':
            body_tokens = context  # Table 3 No.5: CA' attends to HaMeR's decoder input F^H
        else:
            body_tokens = self.body_tokens(arm_pose_6d, has_body_pose).to(context.dtype)
        x = head.query_tokens(context.shape[0], context)
        for layer, branch in zip(_decoder_layers(head), self.branches, strict=True):
            block_input = x
            x = x + layer.attend_self(x)
            x = x + layer.attend_context(x, context) + branch(block_input, body_tokens)
            x = x + layer.feed_forward(x)
        return head.regress(x[:, 0])


class HeadAdapter(Protocol):
    """What the hand path runs in place of the plain MANO head.

    ``HandAdapter``, or a body feature injection of the paper's ablations
    (models/ablations/hand.py).
    """

    @property
    def guidance_joints(self) -> int:
        """Rotations J of the input (B, J, 6)."""
        ...

    def guidance_from_body(self, body_rotmat: Tensor, side: Side) -> Tensor:
        """(B, J, 6) input from (B, 22, 3, 3) body rotations."""
        ...

    def guidance_from_axis_angle(self, body_pose_aa: Tensor, side: Side) -> Tensor:
        """(B, J, 6) input from (B, 22, 3) axis-angles."""
        ...

    def __call__(
        self,
        head: MANOTransformerHead,
        feature_map: Tensor,
        arm_pose_6d: Tensor,
        has_body_pose: Tensor | None = None,
    ) -> MANOHeadOutput:
        """The head's output with the guidance injected."""
        ...


class GuidedHandExpert(nn.Module):
    """The hand path of HMR-Adapter: frozen hand expert + hand adapter (paper 3.3 and 3.5).

    The constructor freezes the hand expert (``requires_grad_(False)``), and ``train()`` keeps it
    in eval mode: ViT-H's drop-path (rate 0.55 in HaMeR's config) must not run on frozen
    weights while the adapter trains. Submodules ``hand_expert`` and ``hand_adapter`` (None:
    plain hand expert, the guidance is ignored).
    """

    def __init__(self, hand_expert: HandExpert, hand_adapter: HeadAdapter | None) -> None:
        super().__init__()
        self.hand_expert = hand_expert.requires_grad_(False).eval()
        self.hand_adapter = hand_adapter

    @property
    def guidance_joints(self) -> int:
        """Rotations J of the guidance the adapter takes (8 without an adapter: ignored)."""
        return NUM_ARM_JOINTS if self.hand_adapter is None else self.hand_adapter.guidance_joints

    def guidance(self, body_rotmat: Tensor, side: Side) -> Tensor:
        """The adapter's guidance for one hand from body rotations, (B, 22, 3, 3) -> (B, J, 6).

        ``arm_guidance`` for the paper's adapter and without an adapter.
        """
        if self.hand_adapter is None:
            return arm_guidance(body_rotmat, side)
        return self.hand_adapter.guidance_from_body(body_rotmat, side)

    def guidance_from_axis_angle(self, body_pose_aa: Tensor, side: Side) -> Tensor:
        """``guidance`` for (B, 22, 3) axis-angle body poses."""
        if self.hand_adapter is None:
            return arm_guidance_from_axis_angle(body_pose_aa, side)
        return self.hand_adapter.guidance_from_axis_angle(body_pose_aa, side)

    def train(self, mode: bool = True) -> GuidedHandExpert:
        """Set training mode on the adapter only; the frozen hand expert stays in eval mode."""
        super().train(mode)
        self.hand_expert.eval()
        return self

    def forward(
        self, crops: Tensor, arm_pose_6d: Tensor, has_body_pose: Tensor | None = None
    ) -> HandExpertOutput:
        """Predict MANO parameters of right-looking hand crops with body guidance.

        Args:
            crops: (B, 3, 256, 256) ImageNet-normalised RGB, left hands flipped (HandExpert).
            arm_pose_6d: (B, J, 6) contiguous 6D guidance of each crop's side (``guidance``;
                the arm joint group for the paper's adapter), left arms mirrored; ignored
                without an adapter.
            has_body_pose: (B,) bool or None (see HandAdapter.body_tokens).

        Returns:
            HandExpertOutput in the right-hand convention (apply mirror_left_hands after).
        """
        expert = self.hand_expert
        if self.hand_adapter is None:
            return expert(crops)
        features = expert.backbone(expert.backbone_input(crops)).feature_map
        head = self.hand_adapter(expert.mano_head, features, arm_pose_6d, has_body_pose)
        return expert.output_from_head(head)
