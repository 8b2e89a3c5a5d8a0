"""HaMeR's Lightning checkpoint layout <-> the hand expert's state dict (pure functions).

HaMeR saves ``hamer.ckpt`` with Lightning: the weights sit under ``state_dict`` with the
top-level prefixes ``initialized`` (a bool buffer), ``backbone.`` (389 tensors), ``mano_head.``
(114, including the ``init_*`` mean-parameter buffers the model needs), ``discriminator.``
(46, training only) and ``mano.`` (13 MANO_RIGHT buffers, rebuilt from the MANO file instead);
docs/model-reference.md, A.1, A.5, A.6. ``hmr_ros.models.hand_expert.HandExpert`` uses the same
``backbone.*`` / ``mano_head.*`` names, so conversion only selects keys, like timm's
``checkpoint_filter_fn``. ``official_hamer_checkpoint`` goes the other way and fills the
training-only parts with random tensors of the official shapes, so that small test files look
like the real one.
"""

from collections.abc import Mapping
from typing import Any

import torch

from hmr_ros.body_models.joint_names import (
    MANO_FINGERTIP_VERTICES,
    MANO_PARENTS,
    MANO_TO_OPENPOSE,
    NUM_HAND_JOINTS,
    NUM_MANO_JOINTS,
)
from hmr_ros.checkpoints.safe_load import CheckpointMismatchError

STATE_DICT_KEY = 'state_dict'
"""Where Lightning stores the weights."""

MODEL_PREFIXES = ('backbone.', 'mano_head.')
"""Prefixes the hand expert loads."""

INITIALIZED_KEY = 'initialized'
"""HaMeR's 0-dim bool buffer marking that the parameters were initialised."""

DROPPED_PREFIXES = ('discriminator.', 'mano.')
"""Training-only discriminator and the MANO layer's buffers (rebuilt from MANO_RIGHT.pkl)."""

MANO_NUM_VERTICES = 778
MANO_NUM_FACES = 1538
MANO_NUM_BETAS = 10
MANO_NUM_PCA_COMPONENTS = 6
"""smplx's default ``num_pca_comps``; HaMeR keeps it, forward ignores it."""

_POSE_FEATURES = 9 * NUM_HAND_JOINTS
"""Pose-corrective features: (R - I) entries of the 15 finger joints = 135."""

DISCRIMINATOR_SHAPES: dict[str, tuple[int, ...]] = {
    'D_conv1.weight': (32, 9, 1, 1),
    'D_conv1.bias': (32,),
    'D_conv2.weight': (32, 32, 1, 1),
    'D_conv2.bias': (32,),
    **{
        f'pose_out.{i}.{name}': shape
        for i in range(NUM_HAND_JOINTS)
        for name, shape in (('weight', (1, 32)), ('bias', (1,)))
    },
    'betas_fc1.weight': (10, 10),
    'betas_fc1.bias': (10,),
    'betas_fc2.weight': (5, 10),
    'betas_fc2.bias': (5,),
    'betas_out.weight': (1, 5),
    'betas_out.bias': (1,),
    'D_alljoints_fc1.weight': (1024, 32 * NUM_HAND_JOINTS),
    'D_alljoints_fc1.bias': (1024,),
    'D_alljoints_fc2.weight': (1024, 1024),
    'D_alljoints_fc2.bias': (1024,),
    'D_alljoints_out.weight': (1, 1024),
    'D_alljoints_out.bias': (1,),
}
"""HaMeR's HMR-style discriminator (A.5): 46 tensors, 1,545,211 parameters."""


def is_official_hamer_checkpoint(ckpt: Any) -> bool:
    """Whether a loaded file is HaMeR's Lightning checkpoint ('state_dict' with mano_head.*)."""
    if not isinstance(ckpt, Mapping):
        return False
    state = ckpt.get(STATE_DICT_KEY)
    return isinstance(state, Mapping) and any(str(k).startswith('mano_head.') for k in state)


def hamer_state_dict_from_official(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Select the hand expert's weights from a loaded HaMeR Lightning checkpoint.

    Args:
        ckpt: the loaded file (hmr_ros.checkpoints.safe_load.load_torch_file), a mapping with
            'state_dict'.

    Returns:
        ``backbone.*`` and ``mano_head.*`` tensors, in file order, for
        load_state_dict_strict(HandExpert, ...).

    Raises:
        CheckpointMismatchError: no 'state_dict', no ``backbone.``/``mano_head.`` keys, or keys
            of an unknown part (listed by name).
    """
    state = ckpt.get(STATE_DICT_KEY) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        found = sorted(map(str, ckpt))[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointMismatchError(
            missing=[STATE_DICT_KEY],
            context=(
                f"Not a HaMeR Lightning checkpoint: no '{STATE_DICT_KEY}' mapping (found {found})"
            ),
        )
    ours: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if key.startswith(MODEL_PREFIXES):
            ours[key] = value
        elif key != INITIALIZED_KEY and not key.startswith(DROPPED_PREFIXES):
            unknown.append(key)
    absent = [p + '*' for p in MODEL_PREFIXES if not any(k.startswith(p) for k in ours)]
    if unknown or absent:
        raise CheckpointMismatchError(
            missing=absent,
            unexpected=unknown,
            context='HaMeR checkpoint has an unexpected layout',
        )
    return ours


def official_hamer_checkpoint(
    model_state: Mapping[str, torch.Tensor], *, seed: int
) -> dict[str, Any]:
    """A Lightning-layout dict holding the hand expert's weights, like HaMeR's ``hamer.ckpt``.

    The training-only ``discriminator.*`` and the ``mano.*`` buffers get random contents of the
    official shapes and dtypes (MANO index buffers hold valid indices), so the result has the
    official key set (563 tensors for the full model).

    Args:
        model_state: HandExpert.state_dict() (``backbone.*``, ``mano_head.*``).
        seed: seed of the random filler tensors.

    Returns:
        {'state_dict': ..., 'epoch': 0, 'global_step': 0}.

    Raises:
        CheckpointMismatchError: model_state has keys outside ``backbone.``/``mano_head.``.
    """
    foreign = [k for k in model_state if not k.startswith(MODEL_PREFIXES)]
    if foreign:
        raise CheckpointMismatchError(unexpected=foreign, context='Not a HandExpert state dict')
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {INITIALIZED_KEY: torch.tensor(True)}
    state.update(model_state)
    for key, shape in DISCRIMINATOR_SHAPES.items():
        state['discriminator.' + key] = 0.02 * torch.randn(shape, generator=generator)
    for key, value in _mano_buffers(generator).items():
        state['mano.' + key] = value
    return {STATE_DICT_KEY: state, 'epoch': 0, 'global_step': 0}


def _mano_buffers(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """MANO_RIGHT buffers as smplx.MANOLayer + HaMeR's wrapper register them (A.6)."""
    tips = torch.tensor(list(MANO_FINGERTIP_VERTICES.values()), dtype=torch.long)
    weights = torch.rand(MANO_NUM_VERTICES, NUM_MANO_JOINTS, generator=generator)
    regressor = torch.rand(NUM_MANO_JOINTS, MANO_NUM_VERTICES, generator=generator)

    def noise(*shape: int, scale: float = 0.01) -> torch.Tensor:
        return scale * torch.randn(shape, generator=generator)

    hand_mean = noise(3 * NUM_HAND_JOINTS, scale=0.1)

    return {
        'shapedirs': noise(MANO_NUM_VERTICES, 3, MANO_NUM_BETAS),
        'faces_tensor': torch.randint(
            MANO_NUM_VERTICES, (MANO_NUM_FACES, 3), generator=generator, dtype=torch.long
        ),
        'v_template': noise(MANO_NUM_VERTICES, 3, scale=0.05),
        'J_regressor': regressor / regressor.sum(dim=1, keepdim=True),
        'posedirs': noise(_POSE_FEATURES, MANO_NUM_VERTICES * 3),
        'parents': torch.tensor(MANO_PARENTS, dtype=torch.long),
        'lbs_weights': weights / weights.sum(dim=1, keepdim=True),
        'vertex_joint_selector.extra_joints_idxs': tips.clone(),
        'hand_components': noise(MANO_NUM_PCA_COMPONENTS, 3 * NUM_HAND_JOINTS, scale=0.1),
        'hand_mean': hand_mean,
        'pose_mean': torch.cat((torch.zeros(3), hand_mean)),  # global orientation mean, then hands
        'extra_joints_idxs': tips.clone(),
        'joint_map': torch.tensor(MANO_TO_OPENPOSE, dtype=torch.long),
    }
