"""Build the dual-path system from files: base checkpoints, adapter files, body-model folder.

Base checkpoints may be the project's model files (``.safetensors`` with a model card, written
by ``hmr-ros convert-checkpoint``) or the official files, converted in memory with the same
pure layout functions (HaMeR ``.ckpt``: hamer_layout; SMPLer-X ``.pth.tar``: smplerx_layout;
both read without running code by safe_load.load_torch_file). The variant is read from the
model card, or detected from the official weights' shapes. Every load is strict: all keys and
shapes must match the variant.

The body model may be any body family of the model registry (models/registry.py): SMPLer-X,
or FastMETRO (an official ``*_state_dict.bin`` or its converted model file), which also needs
``mesh_downsampling.npz`` (SHA-256 checked) and ``SMPL_NEUTRAL.npz`` (its joint regressor) in the
body-model folder and runs behind models/alternatives/fastmetro_body.FastMetroWholeBody.

Adapter files (checkpoints.adapter_files) are optional: without them the system is the paper's
baseline "SMPLer-X + HaMeR" (DualPathModel.mode_description says so). An adapter file names the
base variant it was trained against, which must be the loaded base model's. They are defined
for SMPLer-X and HaMeR only: with another body or hand model they are not loaded, and the log
and ModelInfo say so (registry.adapters_note).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import cast

import torch
from torch import nn

from hmr_ros.body_models.smpl_mapping import NUM_SHARED_JOINTS, load_smpl_joint_regressor
from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.checkpoints.adapter_files import load_adapter_file, read_adapter_file
from hmr_ros.checkpoints.fastmetro_assets import (
    MESH_FILE_NAME,
    PUBLISHED_MESH_SHA256,
    load_fastmetro_mesh_assets,
)
from hmr_ros.checkpoints.hamer_layout import hamer_state_dict_from_official
from hmr_ros.checkpoints.project_format import load_model_file, sha256_file
from hmr_ros.checkpoints.safe_load import (
    CheckpointError,
    load_state_dict_strict,
    load_torch_file,
    state_dict_shapes,
)
from hmr_ros.checkpoints.smplerx_layout import (
    detect_smplerx_variant,
    smplerx_state_dict_from_official,
)
from hmr_ros.models.ablations.hand import (
    INJECTION_ADAPTER_NAMES,
    BodyFeatureInjection,
    InjectionMode,
)
from hmr_ros.models.adapters.body_adapter import BodyAdapter, BodyAdapterConfig
from hmr_ros.models.adapters.hand_adapter import HandAdapter, HandAdapterConfig
from hmr_ros.models.alternatives.cmr_hand import CmrHandExpert
from hmr_ros.models.alternatives.fastmetro_body import FastMetroWholeBody
from hmr_ros.models.body_path import BodyPathModel
from hmr_ros.models.dual_path import DualPathConfig, DualPathModel
from hmr_ros.models.hand_expert import HAND_EXPERT_VARIANTS, HandExpert, build_hand_expert
from hmr_ros.models.registry import (
    ModelEntry,
    adapters_note,
    detect_model,
    entry_for_variant,
    model_entry,
)
from hmr_ros.models.whole_body import WholeBodyModel, build_whole_body

__all__ = [
    'DualPathBuild',
    'WeightsInfo',
    'build_dual_path',
    'load_body_adapter',
    'load_cmr_hand',
    'load_hand_adapter',
    'load_hand_expert',
    'load_whole_body',
]

_LOG = logging.getLogger(__name__)

MODEL_FILE_SUFFIX = '.safetensors'


@dataclass(frozen=True)
class WeightsInfo:
    """Where one part's weights came from.

    Attributes:
        path: the file read.
        model: 'smplerx', 'hamer', 'cmr', 'hand_adapter' or 'body_adapter'.
        variant: registered variant (for adapters: the base variant they were trained on).
        converted: True for an official checkpoint converted in memory.
        sha256: SHA-256 of the file.
    """

    path: Path
    model: str
    variant: str
    converted: bool
    sha256: str


@dataclass(frozen=True)
class DualPathBuild:
    """A built system and the files it came from.

    Attributes:
        model: the DualPathModel, in eval mode, gradients off.
        weights: whole-body, hand expert, then any adapters, in that order.
    """

    model: DualPathModel
    weights: tuple[WeightsInfo, ...]

    @property
    def model_version(self) -> str:
        """'<whole-body variant>+<hand variant>', e.g. 'smplerx_h32+hamer'."""
        return '+'.join(info.variant for info in self.weights[:2])


def _load_into(module: nn.Module, state_dict: dict[str, torch.Tensor], context: str) -> None:
    load_state_dict_strict(module, state_dict, context=context)


def _read_base_file(
    path: Path, family: str, device: torch.device
) -> tuple[dict[str, torch.Tensor], str | None, bool]:
    """State dict, variant from the card (None for official files) and whether converted."""
    if path.name.endswith(MODEL_FILE_SUFFIX):
        state_dict, card = load_model_file(path, device=device)
        if card.model != family:
            raise CheckpointError(
                f'{path} holds {card.model!r} weights (variant {card.variant}), not '
                f'{family!r}; check which file goes to which option'
            )
        return state_dict, card.variant, False
    checkpoint = load_torch_file(path, hint=f'pass the {family} checkpoint or model file')
    if family == 'smplerx':
        return smplerx_state_dict_from_official(checkpoint), None, True
    return hamer_state_dict_from_official(checkpoint), None, True


def load_whole_body(
    path: str | Path, device: str | torch.device = 'cpu'
) -> tuple[WholeBodyModel, WeightsInfo]:
    """The whole-body model from a model file or an official SMPLer-X checkpoint.

    Args:
        path: ``<variant>.safetensors`` (model card 'smplerx') or ``smpler_x_*.pth.tar``.
        device: where to put the weights.

    Returns:
        (model in eval mode, WeightsInfo).

    Raises:
        CheckpointError: unreadable file, wrong family or keys/shapes not matching the variant.
    """
    path, device = Path(path), torch.device(device)
    state_dict, variant, converted = _read_base_file(path, 'smplerx', device)
    return _whole_body_from_state(path, state_dict, variant, converted, device)


def _whole_body_from_state(
    path: Path,
    state_dict: dict[str, torch.Tensor],
    variant: str | None,
    converted: bool,
    device: torch.device,
) -> tuple[WholeBodyModel, WeightsInfo]:
    variant = variant or detect_smplerx_variant(state_dict)
    with torch.device('meta'):
        model = build_whole_body(variant)
    _load_into(model, state_dict, f'{path.name} does not match whole-body variant {variant!r}')
    info = WeightsInfo(path, 'smplerx', variant, converted, sha256_file(path))
    return model.to(device).eval(), info


def _body_entry_and_state(
    path: Path, device: torch.device
) -> tuple[ModelEntry, dict[str, torch.Tensor], str | None, bool]:
    """(registry entry, state dict, variant from the card or None, converted) of a body file."""
    if path.name.endswith(MODEL_FILE_SUFFIX):
        state_dict, card = load_model_file(path, device=device)
        entry = model_entry(card.model)
        if entry.role != 'body':
            raise CheckpointError(
                f'{path} holds {entry.title} weights (a {entry.role} model), not a body model; '
                'check which file goes to which option'
            )
        return entry, state_dict, card.variant, False
    checkpoint = load_torch_file(path, hint='pass a body model checkpoint or model file')
    detected = detect_model(checkpoint)
    if detected is None or detected.role != 'body':
        # Not a recognised body layout: SMPLer-X's converter explains what it expected.
        return model_entry('smplerx'), smplerx_state_dict_from_official(checkpoint), None, True
    from_official = detected.attribute(detected.layout_module, detected.from_official)
    return detected, dict(from_official(checkpoint)), None, True


def load_body_model(
    path: str | Path,
    body_model_dir: str | Path,
    smplx_model: SMPLXBodyModel,
    device: str | torch.device = 'cpu',
    *,
    variant: str = 'auto',
) -> tuple[BodyPathModel, WeightsInfo, ModelEntry]:
    """The dual path's body model from any registered body family's file.

    Args:
        path: SMPLer-X or FastMETRO model file or official checkpoint.
        body_model_dir: body-model folder (FastMETRO: mesh_downsampling.npz, SMPL_NEUTRAL.npz).
        smplx_model: the SMPL-X layer (FastMETRO's IK uses its rest skeleton).
        device: where to put the weights.
        variant: the variant the file must hold, or 'auto' (model.whole_body_variant).

    Returns:
        (body model in eval mode, WeightsInfo, registry entry).

    Raises:
        CheckpointError: unreadable file, a hand model, or keys/shapes not matching, or
            another variant than ``variant``.
    """
    path, device = Path(path), torch.device(device)
    entry, state_dict, card_variant, converted = _body_entry_and_state(path, device)
    if entry.interface == 'smplerx':
        whole_body, info = _whole_body_from_state(
            path, state_dict, card_variant, converted, device
        )
        _check_requested_variant(info, variant)
        return whole_body, info, entry
    found = card_variant or str(
        entry.attribute(entry.layout_module, str(entry.variant_detector))(state_dict)
    )
    with torch.device('meta'):
        network = entry.build(found)
    _load_into(network, state_dict, f'{path.name} does not match {entry.title} variant {found!r}')
    info = WeightsInfo(path, entry.name, found, converted, sha256_file(path))
    _check_requested_variant(info, variant)
    # Before .to(): the mask and gather buffers are still on 'meta' until set here.
    # Released weights are tied to the published mesh file; test-only variants have random
    # weights, so their (stand-in) mesh file is not checked against the published hash.
    expected = None if found in entry.test_variants else PUBLISHED_MESH_SHA256
    mesh_file = Path(body_model_dir) / MESH_FILE_NAME
    network.set_mesh_assets(load_fastmetro_mesh_assets(mesh_file, expected_sha256=expected))
    network = network.to(device).eval()
    rest = smplx_rest_joints(smplx_model)[:NUM_SHARED_JOINTS]
    body = FastMetroWholeBody(network, load_smpl_joint_regressor(body_model_dir), rest)
    return body.to(device).eval(), info, entry


def smplx_rest_joints(smplx_model: SMPLXBodyModel) -> torch.Tensor:
    """(J, 3) joints of the SMPL-X layer in the zero pose at betas 0, no translation."""
    device = smplx_model.faces.device
    eye = torch.eye(3, device=device)
    with torch.no_grad():
        out = smplx_model(
            global_orient=eye[None],
            body_pose=eye.expand(1, 21, 3, 3),
            left_hand_pose=eye.expand(1, 15, 3, 3),
            right_hand_pose=eye.expand(1, 15, 3, 3),
            jaw_pose=eye[None],
            betas=torch.zeros(1, smplx_model.num_betas, device=device),
            expression=torch.zeros(1, smplx_model.num_expression_coeffs, device=device),
            transl=torch.zeros(1, 3, device=device),
        )
    return out.joints[0]


def _check_requested_variant(info: WeightsInfo, variant: str) -> None:
    if variant not in ('', 'auto') and variant != info.variant:
        raise CheckpointError(
            f'{info.path} holds {info.model} variant {info.variant!r}, but variant {variant!r} '
            "was asked for (model.whole_body_variant / model.hand_variant); set it to 'auto' "
            "or to the file's variant"
        )


def _detect_hand_variant(state_dict: dict[str, torch.Tensor]) -> str:
    """The registered hand-expert variant whose keys and shapes the weights have."""
    found = state_dict_shapes(state_dict)
    for name in HAND_EXPERT_VARIANTS:
        with torch.device('meta'):
            expected = state_dict_shapes(build_hand_expert(name))
        if expected == found:
            return name
    raise CheckpointError(
        'the HaMeR weights match no registered hand-expert variant '
        f'({", ".join(HAND_EXPERT_VARIANTS)}); convert the file with hmr-ros '
        'convert-checkpoint to see which keys differ'
    )


def load_hand_expert(
    path: str | Path, device: str | torch.device = 'cpu'
) -> tuple[HandExpert, WeightsInfo]:
    """The hand expert from a model file or an official HaMeR checkpoint (``hamer.ckpt``).

    Raises:
        CheckpointError: unreadable file, wrong family or keys/shapes not matching a variant.
    """
    path, device = Path(path), torch.device(device)
    state_dict, variant, converted = _read_base_file(path, 'hamer', device)
    variant = variant or _detect_hand_variant(state_dict)
    with torch.device('meta'):
        model = build_hand_expert(variant)
    _load_into(model, state_dict, f'{path.name} does not match hand-expert variant {variant!r}')
    info = WeightsInfo(path, 'hamer', variant, converted, sha256_file(path))
    return model.to(device).eval(), info


CMR_TRANSFORM_FILE = 'transform.pkl'
"""CMR's mesh hierarchy (template/transform.pkl of SeanChenxy/HandMesh), next to the checkpoint
or in the body-model folder."""


def load_cmr_hand(
    path: str | Path,
    body_model_dir: str | Path,
    device: str | torch.device = 'cpu',
    *,
    transform_file: str | Path | None = None,
) -> tuple[CmrHandExpert, WeightsInfo]:
    """CMR as the hand model (alternatives/cmr_hand.py) from an official checkpoint.

    Args:
        path: ``cmr_{sg,pg}_res18_freihand.pt`` (raw state dict or training checkpoint).
        body_model_dir: folder with MANO_RIGHT.pkl (the MANO fit) and possibly transform.pkl.
        device: where the model runs.
        transform_file: CMR's transform.pkl; None looks next to the checkpoint, then in
            body_model_dir.

    Raises:
        CheckpointError: unreadable file, not CMR, or keys/shapes not matching its variant.
        FileNotFoundError: no transform.pkl (the message names where it was looked for).
        BodyModelFileNotFoundError: MANO_RIGHT.pkl is missing.
    """
    from hmr_ros.body_models.smplx_layers import MANOHandModel
    from hmr_ros.checkpoints.cmr_layout import (
        check_cmr_state_dict,
        cmr_state_dict_from_official,
        detect_cmr_variant,
        is_official_cmr_checkpoint,
        load_cmr_transforms,
    )
    from hmr_ros.models.alternatives.cmr import cmr_from_hierarchy

    path, device = Path(path), torch.device(device)
    checkpoint = load_torch_file(path, hint='pass the CMR checkpoint (cmr_*_freihand.pt)')
    if not is_official_cmr_checkpoint(checkpoint):
        raise CheckpointError(f'{path} is not a CMR checkpoint (no CMR decoder keys)')
    state_dict = cmr_state_dict_from_official(checkpoint)
    variant = detect_cmr_variant(state_dict)
    if transform_file is None:
        candidates = [path.parent / CMR_TRANSFORM_FILE, Path(body_model_dir) / CMR_TRANSFORM_FILE]
        transform_file = next((c for c in candidates if c.is_file()), candidates[0])
        if not Path(transform_file).is_file():
            raise FileNotFoundError(
                f'CMR mesh hierarchy not found: looked for {candidates[0]} and {candidates[1]}. '
                'It is template/transform.pkl of SeanChenxy/HandMesh (MANO-derived, supplied by '
                'the user; docs/cmr.md).'
            )
    cmr = cmr_from_hierarchy(variant, load_cmr_transforms(transform_file))
    # Strict, as the official loader; only BatchNorm counters may be absent (old PyTorch).
    check_cmr_state_dict(state_dict_shapes(cmr), state_dict, name=f'CMR {variant}')
    cmr.load_state_dict(state_dict, strict=False)
    mano = MANOHandModel.from_folder(body_model_dir, side='right')
    model = CmrHandExpert(cmr, mano).to(device).eval()
    _LOG.info(
        'hand model %s: CMR + MANO fit; the hand adapter cannot run with it (HaMeR only)', variant
    )
    return model, WeightsInfo(path, 'cmr', variant, True, sha256_file(path))


def load_hand_adapter(
    path: str | Path, hand_expert: HandExpert, base_variant: str
) -> tuple[HandAdapter | BodyFeatureInjection, WeightsInfo]:
    """A hand adapter file for the given (loaded) hand expert.

    Also reads the files of the paper's hand-path ablations (Tables 3 and 5): adapters with
    another input (``guidance`` in the file's configuration) and the body feature injections
    (models/ablations/hand.py, model 'hand_concatenation' or 'hand_weighted_sum'), so every
    user of a hand adapter file runs them unchanged.

    Raises:
        AdapterFileMismatchError: the file is for another adapter, base variant or size.
    """
    path = Path(path)
    file = read_adapter_file(path)
    adapter: HandAdapter | BodyFeatureInjection
    if file.card.model in INJECTION_ADAPTER_NAMES.values():
        mode = next(m for m, n in INJECTION_ADAPTER_NAMES.items() if n == file.card.model)
        adapter = BodyFeatureInjection(
            hand_expert.mano_head,
            cast(InjectionMode, mode),
            bool(file.config.get('joint_embedding', True)),
        )
    else:
        config = HandAdapterConfig(
            joint_embedding=bool(file.config.get('joint_embedding', True)),
            guidance=file.config.get('guidance', 'arm_pose'),  # type: ignore[arg-type]
        )
        adapter = HandAdapter(hand_expert.mano_head, config)
    load_adapter_file(
        path, adapter, base_variant, device=hand_expert.mano_head.decpose.weight.device
    )
    info = WeightsInfo(path, file.card.model, base_variant, False, sha256_file(path))
    return adapter.eval(), info


def load_body_adapter(
    path: str | Path, base_variant: str, device: str | torch.device = 'cpu'
) -> tuple[BodyAdapter, WeightsInfo]:
    """A body adapter file for the given whole-body variant.

    Raises:
        AdapterFileMismatchError: the file is for another adapter, base variant or size.
    """
    path = Path(path)
    file = read_adapter_file(path)
    names = {field.name for field in fields(BodyAdapterConfig)}
    config = BodyAdapterConfig(**{k: v for k, v in file.config.items() if k in names})  # type: ignore[arg-type]
    adapter = BodyAdapter(config).to(device)
    load_adapter_file(path, adapter, base_variant, device=device)
    info = WeightsInfo(path, 'body_adapter', base_variant, False, sha256_file(path))
    return adapter.eval(), info


def _is_cmr_file(path: Path) -> bool:
    """Official CMR checkpoints end in '.pt' (HaMeR's in '.ckpt'; model files '.safetensors')."""
    from hmr_ros.models.registry import model_entry

    return path.name.endswith(model_entry('cmr').official_suffix)


def build_dual_path(
    whole_body_file: str | Path,
    hand_file: str | Path,
    body_model_dir: str | Path,
    *,
    hand_adapter_file: str | Path | None = None,
    body_adapter_file: str | Path | None = None,
    config: DualPathConfig | None = None,
    device: str | torch.device = 'cpu',
    whole_body_variant: str = 'auto',
    hand_variant: str = 'auto',
) -> DualPathBuild:
    """Load every part and assemble the dual-path system for inference.

    Args:
        whole_body_file: body model file or official checkpoint (SMPLer-X, FastMETRO).
        hand_file: HaMeR model file or official checkpoint, or an official CMR checkpoint
            (``.pt``; then MANO_RIGHT.pkl and CMR's transform.pkl are needed, see
            load_cmr_hand).
        body_model_dir: folder with SMPLX_NEUTRAL.npz (docs/licences.md); for
            FastMETRO also mesh_downsampling.npz and SMPL_NEUTRAL.npz (docs/seed-models.md).
        hand_adapter_file: optional hand adapter file.
        body_adapter_file: optional body adapter file.
        config: DualPathConfig (its ``adapters`` is checked against the files given); None
            for the defaults.
        device: where the system runs.
        whole_body_variant: the registered body variant the file must hold, or 'auto'.
        hand_variant: the registered hand variant the file must hold, or 'auto'.

    Returns:
        DualPathBuild with the model in eval mode and gradients off.

    Raises:
        CheckpointError: a file is unreadable, does not match, or holds another variant.
        BodyModelFileNotFoundError: the SMPL-X file (or FastMETRO's SMPL file) is missing.
        ValueError: config.adapters asks for an adapter without its file, or for adapters
            the models cannot run; a variant name no registered model has.
    """
    device = torch.device(device)
    config = config or DualPathConfig()
    # Unknown names fail before any file is read; the message lists the registered variants.
    for requested, role in ((whole_body_variant, 'body'), (hand_variant, 'hand')):
        if requested not in ('', 'auto'):
            entry_for_variant(requested, role)  # type: ignore[arg-type]
    smplx_model = SMPLXBodyModel.from_folder(body_model_dir).to(device)
    whole_body, whole_body_info, body_entry = load_body_model(
        whole_body_file, body_model_dir, smplx_model, device, variant=whole_body_variant
    )
    hand_expert: HandExpert | CmrHandExpert
    if _is_cmr_file(Path(hand_file)):
        hand_expert, hand_info = load_cmr_hand(hand_file, body_model_dir, device)
    else:
        hand_expert, hand_info = load_hand_expert(hand_file, device)
    _check_requested_variant(hand_info, hand_variant)
    weights = [whole_body_info, hand_info]
    note = adapters_note(body_entry, model_entry(hand_info.model))
    if note:
        if config.adapters not in ('auto', 'none'):
            raise ValueError(f'adapters={config.adapters!r} cannot run: {note}')
        skipped = [str(f) for f in (hand_adapter_file, body_adapter_file) if f is not None]
        if skipped:
            _LOG.warning('not loading the adapter files %s: %s', ', '.join(skipped), note)
        hand_adapter_file = body_adapter_file = None
    hand_adapter = body_adapter = None
    if hand_adapter_file is not None:
        if isinstance(hand_expert, CmrHandExpert):
            _LOG.warning(
                'not loading the hand adapter file %s: the hand adapter cannot run with the '
                'CMR hand model %s (it is defined for HaMeR features only)',
                hand_adapter_file,
                hand_info.variant,
            )
        else:
            hand_adapter, info = load_hand_adapter(
                hand_adapter_file, hand_expert, hand_info.variant
            )
            weights.append(info)
    if body_adapter_file is not None:
        body_adapter, info = load_body_adapter(body_adapter_file, whole_body_info.variant, device)
        weights.append(info)
    model = DualPathModel(
        whole_body,
        hand_expert,
        smplx_model,
        hand_adapter,
        body_adapter,
        config,
    )
    model.requires_grad_(False).eval()
    for info in weights:
        how = 'converted from the official file' if info.converted else 'model file'
        _LOG.info('loaded %s %s from %s (%s)', info.model, info.variant, info.path, how)
    if note:
        _LOG.warning('%s', note)
    return DualPathBuild(model=model, weights=tuple(weights))
