"""One registry of the body and hand models hmr_ros can run, by name (docs/seed-models.md).

Every model family is one :class:`ModelEntry`: which side of the dual path it serves, how its
official checkpoint is recognised and converted, which variants it has, how a variant is built,
and through which interface it plugs into the dual path. The node parameters
``model.whole_body_variant`` / ``model.hand_variant``, ``hmr-ros convert-checkpoint``,
``hmr-ros make-test-assets``, the dual-path builder and the configs all read this table; nothing
else lists model families.

Entries name their functions as ``module`` + attribute strings, resolved only when used, so
that this module imports nothing heavy (the parameter layer reads it without torch) and a family
whose code is missing reports a clear error instead of failing at import.

How to add a model (one entry, nothing else to edit)::

    from hmr_ros.models.registry import ModelEntry, register_model

    register_model(ModelEntry(
        name='cmr',                          # model card 'model' value, --model choice
        title='CMR',                         # for messages
        role='hand',                         # 'body' or 'hand'
        interface='cmr',                     # how the dual path drives it (INTERFACES)
        layout_module='hmr_ros.checkpoints.cmr_layout',
        from_official='cmr_state_dict_from_official',   # (checkpoint) -> our state dict
        to_official='official_cmr_checkpoint',          # (module, ...) -> official layout
        is_official='is_official_cmr_checkpoint',       # (checkpoint) -> bool
        model_module='hmr_ros.models.alternatives.cmr',
        builder='build_cmr',                 # (variant) -> nn.Module, works on 'meta'
        variants='CMR_VARIANTS',             # mapping or collection of variant names
        variant_detector='detect_cmr_variant',  # (state_dict) -> variant, or None to match
        official_suffix='.pt',
        adapters=False,                      # the HMR-Adapters are defined for SMPLer-X/HaMeR
        light=True,                          # chosen by the embedded profile
    ))

Put the call at the end of this module (the ``_BUILT_IN`` tuple) so that every process sees
the same table. ``is_official`` must accept anything a safe load returns (mapping or not) and
must not raise; the first entry whose predicate accepts a checkpoint owns it, so make it
specific (look for keys only that family has).

Interfaces (what the dual path needs from each side, docs/seed-models.md, 'Interfaces'):

- body side: SMPL-X body pose (root + 21 joints), shape, a camera placing the body in the
  real camera, and hand boxes, or ``hand_boxes=False``: the pipeline then derives the hand
  boxes from the projected wrist and hand joints of the body mesh;
- hand side: MANO pose and shape, wrist-relative joints and vertices, 2D keypoints with
  confidences.

The HMR-Adapters (paper 3.3, 3.4) are defined only for SMPLer-X and HaMeR features
(``adapters=True``); with any other model they cannot run, and the dual path says so in
ModelInfo and the log.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any, Literal, get_args

__all__ = [
    'INTERFACES',
    'ModelEntry',
    'ModelRegistryError',
    'ModelRole',
    'adapters_note',
    'all_models',
    'detect_model',
    'entry_for_variant',
    'model_entry',
    'models_for_role',
    'register_model',
]

ModelRole = Literal['body', 'hand']
"""Which side of the dual path a model serves."""

INTERFACES: Mapping[str, str] = {
    'smplerx': 'body: SMPLer-X stages (6D body pose, betas, virtual-camera translation, hand '
    'boxes, hand features for the body adapter)',
    'fastmetro': 'body: SMPL mesh -> SMPL-X body pose by swing IK on the 22-joint tree (the '
    "regressor's SMPL rotations for parametric files), weak-perspective camera, no hand boxes "
    '(taken from projected wrist and hand joints)',
    'hamer': 'hand: MANO pose/shape, wrist-relative joints and vertices, 2D keypoints',
    'cmr': 'hand: MANO pose/shape fitted to its MANO-topology mesh (body_models/mano_fit.py), '
    'wrist-relative joints and vertices, 2D keypoints with heatmap confidences, silhouette; '
    'no hand adapter (models/alternatives/cmr_hand.py)',
}
"""Interface name -> what it gives the dual path."""


class ModelRegistryError(ValueError):
    """Unknown model or variant, or an entry that does not fit the registry."""


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """How one model family is recognised, converted, built and plugged in.

    Attributes:
        name: model card ``model`` value and ``--model`` choice, e.g. ``'smplerx'``.
        title: human-readable name for messages.
        role: 'body' (whole-body or body model) or 'hand'.
        interface: key of INTERFACES: how the dual path drives the model.
        layout_module: module holding the layout functions.
        from_official: ``(checkpoint) -> state_dict`` in ``layout_module``.
        to_official: ``(module-or-state-dict, ...) -> official checkpoint`` in
            ``layout_module`` (writes stand-ins in the official layout for tests).
        is_official: ``(checkpoint) -> bool`` in ``layout_module``: whether a loaded file has
            this family's official layout. Must not raise.
        model_module: module holding the builder and the variant registry.
        builder: ``(variant) -> nn.Module`` in ``model_module``.
        variants: mapping (or collection) of variant names in ``model_module``.
        variant_detector: optional ``(state_dict) -> variant`` in ``layout_module``; without one
            the variant is found by matching every registered variant's shapes.
        official_suffix: file name suffix of the official checkpoints.
        allowed_unexpected: ``fnmatch`` patterns of official keys the port does not use
            (dropped by ``from_official``; listed so the strict check can say so).
        adapters: whether the HMR-Adapters are defined for this model's features.
        hand_boxes: body models only: whether it predicts hand boxes.
        light: whether the embedded profile (``profile:=orin``) may choose it.
        test_variants: variants that exist only for tests (random, untrained weights).
    """

    name: str
    title: str
    role: ModelRole
    interface: str
    layout_module: str
    from_official: str
    to_official: str
    is_official: str
    model_module: str
    builder: str
    variants: str
    variant_detector: str | None
    official_suffix: str
    allowed_unexpected: tuple[str, ...] = ()
    adapters: bool = False
    hand_boxes: bool = True
    light: bool = False
    test_variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in get_args(ModelRole):
            raise ModelRegistryError(f'{self.name}: role must be body or hand, got {self.role!r}')
        if self.interface not in INTERFACES:
            raise ModelRegistryError(
                f'{self.name}: unknown interface {self.interface!r}; known: '
                f'{", ".join(INTERFACES)}'
            )

    def attribute(self, module: str, name: str) -> Any:
        """Imports ``module`` and returns its attribute ``name``.

        Raises:
            ModelRegistryError: the module or attribute is missing (the message names it).
        """
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            raise ModelRegistryError(
                f'This hmr_ros build cannot handle {self.title} models: {module}.{name} is '
                f'unavailable ({error}).'
            ) from error

    def variant_names(self) -> list[str]:
        """Registered variant names of this family (imports its model module)."""
        return list(self.attribute(self.model_module, self.variants))

    def build(self, variant: str) -> Any:
        """A fresh module of ``variant`` (call under ``torch.device('meta')`` for shapes only).

        Raises:
            ModelRegistryError: unknown variant (the message lists the known ones).
        """
        known = self.variant_names()
        if variant not in known:
            raise ModelRegistryError(
                f'Unknown {self.title} variant {variant!r}; known variants: {", ".join(known)}.'
            )
        return self.attribute(self.model_module, self.builder)(variant)

    def recognises(self, checkpoint: Any) -> bool:
        """Whether a loaded checkpoint has this family's official layout."""
        try:
            return bool(self.attribute(self.layout_module, self.is_official)(checkpoint))
        except ModelRegistryError:
            return False


_MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Adds an entry (see the module docstring); returns it.

    Raises:
        ModelRegistryError: another entry already has this name.
    """
    if entry.name in _MODELS and _MODELS[entry.name] != entry:
        raise ModelRegistryError(f'a model named {entry.name!r} is already registered')
    _MODELS[entry.name] = entry
    return entry


def all_models() -> dict[str, ModelEntry]:
    """Every registered family by name, body models first, in registration order."""
    ordered = sorted(_MODELS.values(), key=lambda e: e.role != 'body')
    return {entry.name: entry for entry in ordered}


def models_for_role(role: ModelRole) -> dict[str, ModelEntry]:
    """The registered families of one side: 'body' or 'hand'."""
    return {name: entry for name, entry in all_models().items() if entry.role == role}


def model_entry(name: str) -> ModelEntry:
    """The entry of a family name ('smplerx', 'fastmetro', 'hamer', ...).

    Raises:
        ModelRegistryError: unknown name; the message lists the known ones.
    """
    if name not in _MODELS:
        raise ModelRegistryError(f'unknown model {name!r}; known models: {", ".join(_MODELS)}')
    return _MODELS[name]


def entry_for_variant(variant: str, role: ModelRole | None = None) -> ModelEntry:
    """The family that registers ``variant`` (e.g. 'fastmetro_s_r50' -> the FastMETRO entry).

    Args:
        variant: a variant name.
        role: only look at body or hand models; None for both.

    Raises:
        ModelRegistryError: no family of that role has the variant; lists the known ones and
            any family whose code is unavailable in this build.
    """
    known: list[str] = []
    unavailable: list[str] = []
    for entry in all_models().values():
        if role is not None and entry.role != role:
            continue
        try:
            names = entry.variant_names()
        except ModelRegistryError as error:
            unavailable.append(str(error))
            continue
        if variant in names:
            return entry
        known += names
    side = f'{role} ' if role else ''
    raise ModelRegistryError(
        f'unknown {side}model variant {variant!r}; known: {", ".join(known) or "none"}'
        + ''.join(f' {reason}' for reason in unavailable)
    )


def detect_model(checkpoint: Any) -> ModelEntry | None:
    """The family whose official layout a loaded checkpoint has, or None."""
    for entry in all_models().values():
        if entry.recognises(checkpoint):
            return entry
    return None


def adapters_note(body: ModelEntry, hand: ModelEntry) -> str:
    """'' when the HMR-Adapters can run with these models, else one sentence saying why not."""
    unsupported = [entry.title for entry in (body, hand) if not entry.adapters]
    if not unsupported:
        return ''
    return (
        'the HMR-Adapters are defined for SMPLer-X and HaMeR features only; with '
        f'{" and ".join(unsupported)} they cannot run (adapters: none)'
    )


_BUILT_IN = (
    ModelEntry(
        name='hamer',
        title='HaMeR',
        role='hand',
        interface='hamer',
        layout_module='hmr_ros.checkpoints.hamer_layout',
        from_official='hamer_state_dict_from_official',
        to_official='official_hamer_checkpoint',
        is_official='is_official_hamer_checkpoint',
        model_module='hmr_ros.models.hand_expert',
        builder='build_hand_expert',
        variants='HAND_EXPERT_VARIANTS',
        variant_detector=None,
        official_suffix='.ckpt',
        adapters=True,
        test_variants=('hamer_tiny',),
    ),
    ModelEntry(
        name='smplerx',
        title='SMPLer-X',
        role='body',
        interface='smplerx',
        layout_module='hmr_ros.checkpoints.smplerx_layout',
        from_official='smplerx_state_dict_from_official',
        to_official='official_smplerx_checkpoint',
        is_official='is_official_smplerx_checkpoint',
        model_module='hmr_ros.models.whole_body',
        builder='build_whole_body',
        variants='WHOLE_BODY_VARIANTS',
        variant_detector='detect_smplerx_variant',
        official_suffix='.pth.tar',
        adapters=True,
        test_variants=('smplerx_tiny',),
    ),
    ModelEntry(
        name='fastmetro',
        title='FastMETRO',
        role='body',
        interface='fastmetro',
        layout_module='hmr_ros.checkpoints.fastmetro_layout',
        from_official='fastmetro_state_dict_from_official',
        to_official='official_fastmetro_checkpoint',
        is_official='is_official_fastmetro_checkpoint',
        model_module='hmr_ros.models.alternatives.fastmetro',
        builder='build_fastmetro',
        variants='FASTMETRO_VARIANTS',
        variant_detector='detect_fastmetro_variant',
        official_suffix='_state_dict.bin',
        hand_boxes=False,
        light=True,
        test_variants=('fastmetro_tiny',),
    ),
    ModelEntry(
        name='cmr',
        title='CMR',
        role='hand',
        interface='cmr',
        layout_module='hmr_ros.checkpoints.cmr_layout',
        from_official='cmr_state_dict_from_official',
        to_official='official_cmr_checkpoint',
        is_official='is_official_cmr_checkpoint',
        model_module='hmr_ros.models.alternatives.cmr',
        builder='build_cmr',
        variants='CMR_VARIANTS',
        variant_detector='detect_cmr_variant',
        official_suffix='.pt',
        light=True,
    ),
)
for _entry in _BUILT_IN:
    register_model(_entry)
