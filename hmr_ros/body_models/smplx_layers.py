"""SMPL-X and MANO layers: thin wrappers of `smplx.SMPLXLayer` and `smplx.MANOLayer`.

Both take rotation matrices, as HaMeR's MANO wrapper does (docs/model-reference.md A.6), and
return a NamedTuple of tensors (exportable, no None). They are built from the licensed model files
(`model_files.py`), never from a checkpoint: every buffer is registered as non-persistent, so a
model that contains them (hand expert, whole-body model) saves and loads none of them, and
`state_dict()` of these layers is empty.

Hand-pose conventions (reference PART D.6; architecture 'hands_mean'):

- `SMPLXLayer` and `MANOLayer` ignore the model's hand mean: the poses they take are the full
  finger articulation (the flat-hand convention, `flat_hand_mean=True`). HaMeR's MANO regresses
  poses in this convention, so they go in unchanged.
Model files are read by `model_files.read_body_model_file` (official chumpy/scipy pickles
included, never with an unrestricted unpickler), and smplx gets plain arrays: MANO through its
`data_struct` argument, SMPL-X (whose constructor always reads a file) through a temporary
`.npz` of those arrays.

- SMPLer-X builds `smplx.SMPLX` with `flat_hand_mean=False`, which adds the SMPL-X `hands_mean` to
  its axis-angle hand poses: SMPLer-X regresses poses *relative to the mean hand*. Before feeding
  them here, call `SMPLXBodyModel.add_hands_mean` (axis-angle, before converting to matrices);
  `remove_hands_mean` goes back, e.g. to compare with SMPLer-X outputs or ground truth.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import smplx
import smplx.utils
import torch
from smplx.lbs import (
    blend_shapes,
    find_dynamic_lmk_idx_and_bcoords,
    vertices2joints,
    vertices2landmarks,
)
from torch import Tensor, nn

from hmr_ros.body_models.joint_names import (
    MANO_FINGERTIP_VERTICES,
    MANO_TO_OPENPOSE,
    NUM_BODY_JOINTS,
    NUM_HAND_JOINTS,
    OPENPOSE_HAND_JOINT_NAMES,
    SIDES,
    Side,
    smplx_output_joint_names,
)
from hmr_ros.body_models.model_files import (
    find_mano_file,
    find_smplx_file,
    numeric_arrays,
    read_body_model_file,
)
from hmr_ros.geometry.kinematics import forward_kinematics

_LOG = logging.getLogger(__name__)

NUM_BETAS = 10  # shape coefficients used by SMPLer-X and HaMeR
NUM_EXPRESSION_COEFFS = 10  # SMPLer-X expression coefficients
SMPLX_NUM_VERTICES = 10475
MANO_NUM_VERTICES = 778
HAND_POSE_DIM = 3 * NUM_HAND_JOINTS  # 45 axis-angle values


def _make_buffers_non_persistent(module: nn.Module) -> None:
    """Keep every buffer of `module` (and its children) out of `state_dict()`.

    Re-registering an existing buffer with `persistent=False` is the public way to do this; the
    buffers still move with `.to()` and `.cuda()`.
    """
    for child in module.modules():
        for name, buffer in list(child.named_buffers(recurse=False)):
            child.register_buffer(name, buffer, persistent=False)


def _build_quietly(build: type[nn.Module], **kwargs: object) -> Any:
    """Construct an smplx layer, sending its stdout messages to the log instead of the terminal.

    smplx prints 'WARNING: You are using a MANO model, with only 10 shape coefficients.' for every
    MANO file (MANO has 10 shape coefficients, nothing is wrong), so the text goes to DEBUG.
    """
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        layer = build(**kwargs)
    for line in captured.getvalue().splitlines():
        _LOG.debug('smplx: %s', line)
    return layer


def _check_shape(name: str, tensor: Tensor, tail: tuple[int, ...]) -> None:
    if tuple(tensor.shape[-len(tail) :]) != tail:
        expected = ', '.join(['B', *map(str, tail)])
        raise ValueError(f'{name} must have shape ({expected}), got {tuple(tensor.shape)}')


class SMPLXOutput(NamedTuple):
    """SMPL-X layer output, in the frame of the inputs (camera frame when transl is camera).

    Attributes:
        vertices: (B, 10475, 3) metres.
        joints: (B, J, 3) metres; J = 144 with the face contour, 127 without. Order: 55 kinematic
            joints, 21 vertex keypoints, 51 facial landmarks, 17 contour landmarks; names in
            `SMPLXBodyModel.joint_names`.
    """

    vertices: Tensor
    joints: Tensor


class SMPLXBodyModel(nn.Module):
    """SMPL-X body model (neutral, 10 betas, 10 expression coefficients), rotation-matrix input.

    Wraps `smplx.SMPLXLayer` (`use_pca=False`); outputs are read by attribute only (the PyPI
    release returns a dataclass, the repository's master a namedtuple). Hand poses are in the
    flat-hand convention; see the module docstring and `add_hands_mean`.

    Args:
        model_path: an SMPL-X file (SMPLX_NEUTRAL.npz or .pkl; see `model_files.find_smplx_file`).
        num_betas: shape coefficients.
        num_expression_coeffs: expression coefficients.
        use_face_contour: also return the 17 face-contour landmarks (SMPLer-X does).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        num_betas: int = NUM_BETAS,
        num_expression_coeffs: int = NUM_EXPRESSION_COEFFS,
        use_face_contour: bool = True,
    ) -> None:
        super().__init__()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(
                f'SMPL-X model file {model_path} not found; use model_files.find_smplx_file to '
                'locate it (docs/licences.md)'
            )
        arrays = numeric_arrays(read_body_model_file(model_path))
        # smplx.SMPLX always reads a file (pickle or np.load with allow_pickle=True); give it a
        # plain-array .npz written here from what the restricted reader returned.
        with tempfile.TemporaryDirectory(prefix='hmr_ros_smplx_') as folder:
            plain = Path(folder) / 'SMPLX_PLAIN.npz'
            np.savez(plain, **arrays)  # type: ignore[arg-type]
            self.layer: Any = _build_quietly(
                smplx.SMPLXLayer,
                model_path=str(plain),
                ext='npz',
                num_betas=num_betas,
                num_expression_coeffs=num_expression_coeffs,
                use_pca=False,
                flat_hand_mean=False,  # only so the layer keeps hands_mean; forward ignores it
                use_face_contour=use_face_contour,
            )
        self.num_betas = num_betas
        self.num_expression_coeffs = num_expression_coeffs
        self.use_face_contour = use_face_contour
        # Python integers: smplx's batch_rigid_transform indexes a list with a tensor of
        # parents, one device-to-host read per joint (see pose_vertices).
        self.parents: list[int] = [int(p) for p in self.layer.parents.tolist()]
        self.joint_names = smplx_output_joint_names(use_face_contour)
        self._joint_index = {name: i for i, name in enumerate(self.joint_names)}
        _make_buffers_non_persistent(self)
        self.eval()

    @classmethod
    def from_folder(cls, folder: str | Path, gender: str = 'neutral') -> SMPLXBodyModel:
        """Build from the body-model folder (raises BodyModelFileNotFoundError if missing)."""
        return cls(find_smplx_file(folder, gender))

    @property
    def faces(self) -> Tensor:
        """(20908, 3) int64 vertex indices of the triangles."""
        faces: Tensor = self.layer.faces_tensor
        return faces

    @property
    def num_joints(self) -> int:
        """Number of joints in `SMPLXOutput.joints`."""
        return len(self.joint_names)

    def joint_index(self, name: str) -> int:
        """Index of a named joint in `SMPLXOutput.joints` (e.g. 'left_wrist' -> 20)."""
        try:
            return self._joint_index[name]
        except KeyError:
            raise KeyError(f'{name!r} is not an output joint of this SMPL-X model') from None

    def hands_mean(self, side: Side) -> Tensor:
        """(45,) the model file's mean hand pose (hands_meanl / hands_meanr), axis-angle."""
        if side not in SIDES:
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        mean: Tensor = self.layer.left_hand_mean if side == 'left' else self.layer.right_hand_mean
        return mean

    def _mean_like(self, hand_pose_aa: Tensor, side: Side) -> Tensor:
        mean = self.hands_mean(side).to(hand_pose_aa)
        if hand_pose_aa.shape[-1] == HAND_POSE_DIM:
            return mean
        if hand_pose_aa.shape[-2:] == (NUM_HAND_JOINTS, 3):
            return mean.view(NUM_HAND_JOINTS, 3)
        raise ValueError(
            'hand_pose_aa must have shape (..., 45) or (..., 15, 3), got '
            f'{tuple(hand_pose_aa.shape)}'
        )

    def add_hands_mean(self, hand_pose_aa: Tensor, side: Side) -> Tensor:
        """Mean-relative hand pose (SMPLer-X output) -> full articulation (this layer, HaMeR).

        This is what `smplx.SMPLX(flat_hand_mean=False)` does inside: it adds `hands_mean` to the
        axis-angle vectors before Rodrigues' formula.

        Args:
            hand_pose_aa: (..., 45) or (..., 15, 3) axis-angle, radians, relative to the mean.
            side: which hand ('left' uses hands_meanl).

        Returns:
            Same shape, full articulation.
        """
        return hand_pose_aa + self._mean_like(hand_pose_aa, side)

    def remove_hands_mean(self, hand_pose_aa: Tensor, side: Side) -> Tensor:
        """Full-articulation hand pose -> mean-relative (SMPLer-X); inverse of add_hands_mean."""
        return hand_pose_aa - self._mean_like(hand_pose_aa, side)

    def neutral_inputs(self, batch_size: int) -> dict[str, Tensor]:
        """Keyword arguments of `forward` for the rest pose: identity rotations and zeros."""
        like = self.layer.shapedirs

        def eye(joints: int) -> Tensor:
            return torch.eye(3, dtype=like.dtype, device=like.device).expand(
                batch_size, joints, 3, 3
            )

        def zeros(size: int) -> Tensor:
            return like.new_zeros(batch_size, size)

        return {
            'global_orient': eye(1),
            'body_pose': eye(NUM_BODY_JOINTS),
            'left_hand_pose': eye(NUM_HAND_JOINTS),
            'right_hand_pose': eye(NUM_HAND_JOINTS),
            'jaw_pose': eye(1),
            'betas': zeros(self.num_betas),
            'expression': zeros(self.num_expression_coeffs),
            'transl': zeros(3),
        }

    def forward(
        self,
        global_orient: Tensor,
        body_pose: Tensor,
        left_hand_pose: Tensor,
        right_hand_pose: Tensor,
        jaw_pose: Tensor,
        betas: Tensor,
        expression: Tensor,
        transl: Tensor,
    ) -> SMPLXOutput:
        """Pose the SMPL-X mesh; eyes stay at rest (as in SMPLer-X).

        Args:
            global_orient: (B, 1, 3, 3) or (B, 3, 3) root rotation.
            body_pose: (B, 21, 3, 3) local rotations of the body joints (root excluded).
            left_hand_pose: (B, 15, 3, 3) full articulation (flat-hand convention).
            right_hand_pose: (B, 15, 3, 3) full articulation (flat-hand convention).
            jaw_pose: (B, 1, 3, 3) or (B, 3, 3).
            betas: (B, num_betas) shape coefficients.
            expression: (B, num_expression_coeffs) expression coefficients.
            transl: (B, 3) metres, added to vertices and joints.

        Returns:
            SMPLXOutput(vertices (B, 10475, 3), joints (B, J, 3)).
        """
        _check_shape('body_pose', body_pose, (NUM_BODY_JOINTS, 3, 3))
        _check_shape('left_hand_pose', left_hand_pose, (NUM_HAND_JOINTS, 3, 3))
        _check_shape('right_hand_pose', right_hand_pose, (NUM_HAND_JOINTS, 3, 3))
        _check_shape('global_orient', global_orient, (3, 3))
        _check_shape('jaw_pose', jaw_pose, (3, 3))
        layer = self.layer
        batch = body_pose.shape[0]
        eye = torch.eye(3, dtype=body_pose.dtype, device=body_pose.device).expand(batch, 1, 3, 3)
        # smplx.SMPLXLayer's joint order: root, body, jaw, eyes (at rest), hands.
        full_pose = torch.cat(
            [
                global_orient.reshape(batch, 1, 3, 3),
                body_pose.reshape(batch, NUM_BODY_JOINTS, 3, 3),
                jaw_pose.reshape(batch, 1, 3, 3),
                eye,
                eye,
                left_hand_pose.reshape(batch, NUM_HAND_JOINTS, 3, 3),
                right_hand_pose.reshape(batch, NUM_HAND_JOINTS, 3, 3),
            ],
            dim=1,
        )
        vertices, joints = self.pose_vertices(full_pose, torch.cat([betas, expression], dim=-1))
        faces_index = layer.lmk_faces_idx[None].expand(batch, -1).contiguous()
        bary_coords = layer.lmk_bary_coords[None].expand(batch, -1, -1).contiguous()
        if self.use_face_contour:
            contour_faces, contour_coords = find_dynamic_lmk_idx_and_bcoords(
                vertices,
                full_pose,
                layer.dynamic_lmk_faces_idx,
                layer.dynamic_lmk_bary_coords,
                layer.neck_kin_chain,
                pose2rot=False,
            )
            faces_index = torch.cat([faces_index, contour_faces], 1)
            bary_coords = torch.cat([bary_coords, contour_coords], 1)
        landmarks = vertices2landmarks(vertices, layer.faces_tensor, faces_index, bary_coords)
        joints = torch.cat([layer.vertex_joint_selector(vertices, joints), landmarks], dim=1)
        offset = transl[:, None]
        return SMPLXOutput(vertices=vertices + offset, joints=joints + offset)

    def pose_vertices(self, full_pose: Tensor, shape_coeffs: Tensor) -> tuple[Tensor, Tensor]:
        """Linear blend skinning of SMPL-X (``smplx.lbs.lbs`` with rotation matrices).

        The same steps as smplx's ``lbs``, over the layer's own buffers, with the kinematic
        chain walked by geometry.kinematics.forward_kinematics over Python-integer parents: no
        value is read back from the device and every shape is static.

        Args:
            full_pose: (B, 55, 3, 3) local rotations in SMPL-X joint order.
            shape_coeffs: (B, num_betas + num_expression_coeffs) betas, then expression.

        Returns:
            vertices (B, 10475, 3) and the 55 posed kinematic joints (B, 55, 3), metres, in
            the frame of global_orient, no translation.
        """
        layer = self.layer
        batch = full_pose.shape[0]
        shapedirs = torch.cat([layer.shapedirs, layer.expr_dirs], dim=-1)
        v_shaped = layer.v_template + blend_shapes(shape_coeffs, shapedirs)
        rest_joints = vertices2joints(layer.J_regressor, v_shaped)  # (B, 55, 3)
        eye = torch.eye(3, dtype=full_pose.dtype, device=full_pose.device)
        pose_feature = (full_pose[:, 1:] - eye).reshape(batch, -1)
        v_posed = v_shaped + (pose_feature @ layer.posedirs).reshape(batch, -1, 3)
        posed = forward_kinematics(full_pose, rest_joints, self.parents)
        # Skinning transform of each joint: x -> G_j x + (p_j - G_j J_j), blended per vertex.
        shift = posed.joints - (posed.global_rotmats @ rest_joints[..., None])[..., 0]
        transforms = torch.cat([posed.global_rotmats, shift[..., None]], dim=-1)  # (B, 55, 3, 4)
        blended = (layer.lbs_weights @ transforms.reshape(batch, -1, 12)).reshape(batch, -1, 3, 4)
        vertices = (blended[..., :3] @ v_posed[..., None])[..., 0] + blended[..., 3]
        return vertices, posed.joints


class MANOOutput(NamedTuple):
    """MANO layer output in MANO model coordinates (not root-centred, no translation).

    Attributes:
        vertices: (B, 778, 3) metres.
        joints: (B, 21, 3) metres, OpenPose/MediaPipe hand order (`OPENPOSE_HAND_JOINT_NAMES`):
            16 regressed joints plus fingertip vertices 744, 320, 443, 554, 671.
    """

    vertices: Tensor
    joints: Tensor


class MANOHandModel(nn.Module):
    """MANO hand model as HaMeR uses it: flat-hand convention, rotation matrices, 21 joints.

    Wraps `smplx.MANOLayer`. The right hand is what HaMeR runs (left hands are flipped images).
    A left-hand model loads MANO_LEFT.pkl and needs MANO_RIGHT.pkl too: the official left file's
    `shapedirs` are not mirrored (x components equal the right hand's), a known defect that HaMeR
    repairs by negating them when they match the right hand's; this class does the same.

    Args:
        model_path: MANO_RIGHT.pkl, or MANO_LEFT.pkl for side='left'.
        side: 'right' or 'left'.
        right_model_path: MANO_RIGHT.pkl, required when side='left' (see above).
        num_betas: shape coefficients (MANO has 10).
    """

    joint_names = OPENPOSE_HAND_JOINT_NAMES
    fingertip_vertices: Tensor
    openpose_order: Tensor

    def __init__(
        self,
        model_path: str | Path,
        *,
        side: Side = 'right',
        right_model_path: str | Path | None = None,
        num_betas: int = NUM_BETAS,
    ) -> None:
        super().__init__()
        if side not in SIDES:
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        self.side = side
        self.layer: Any = self._load(Path(model_path), side, num_betas)
        if side == 'left':
            if right_model_path is None:
                raise ValueError(
                    'a left MANO model needs right_model_path (MANO_RIGHT.pkl) to repair the '
                    'official MANO_LEFT.pkl shapedirs; use MANOHandModel.from_folder(folder, '
                    "side='left')"
                )
            right = self._load(Path(right_model_path), 'right', num_betas)
            self._repair_left_shapedirs(right.shapedirs)
        self.register_buffer(
            'fingertip_vertices', torch.tensor(list(MANO_FINGERTIP_VERTICES.values()))
        )
        self.register_buffer('openpose_order', torch.tensor(MANO_TO_OPENPOSE))
        _make_buffers_non_persistent(self)
        self.eval()

    @staticmethod
    def _load(path: Path, side: Side, num_betas: int) -> Any:
        if not path.is_file():
            raise FileNotFoundError(
                f'MANO model file {path} not found; use model_files.find_mano_file to locate it '
                '(docs/licences.md)'
            )
        model = read_body_model_file(path)
        return _build_quietly(
            smplx.MANOLayer,
            model_path=str(path),
            data_struct=smplx.utils.Struct(**model),  # arrays from the restricted reader
            is_rhand=side == 'right',
            num_betas=num_betas,
            create_body_pose=False,  # MANOLayer would otherwise add a `body_pose` parameter
            use_pca=False,
            flat_hand_mean=False,  # only so the layer keeps hands_mean; its forward ignores it
        )

    @torch.no_grad()
    def _repair_left_shapedirs(self, right_shapedirs: Tensor) -> None:
        """Negate the x components of the left shapedirs when they equal the right hand's.

        Mirroring a hand negates x, so correct left-hand x shape directions are minus the right
        hand's; a summed absolute difference below 1 means the file holds the right hand's.
        """
        left_x = self.layer.shapedirs[:, 0, :]
        if torch.sum(torch.abs(left_x - right_shapedirs[:, 0, :])) < 1:
            _LOG.debug('MANO_LEFT shapedirs are not mirrored (known defect); negating x')
            self.layer.shapedirs[:, 0, :] *= -1

    @classmethod
    def from_folder(cls, folder: str | Path, side: Side = 'right') -> MANOHandModel:
        """Build from the body-model folder (raises BodyModelFileNotFoundError if missing)."""
        right = find_mano_file(folder, 'right')
        if side == 'right':
            return cls(right, side='right')
        return cls(find_mano_file(folder, 'left'), side='left', right_model_path=right)

    @property
    def faces(self) -> Tensor:
        """(1538, 3) int64 vertex indices of the triangles."""
        faces: Tensor = self.layer.faces_tensor
        return faces

    @property
    def hands_mean(self) -> Tensor:
        """(45,) the file's mean hand pose (axis-angle); not applied by `forward`."""
        mean: Tensor = self.layer.hand_mean
        return mean

    def forward(self, global_orient: Tensor, hand_pose: Tensor, betas: Tensor) -> MANOOutput:
        """Pose the hand (HaMeR's MANO: flat-hand convention, no translation).

        Args:
            global_orient: (B, 1, 3, 3) wrist rotation.
            hand_pose: (B, 15, 3, 3) finger joint rotations, full articulation.
            betas: (B, num_betas) shape coefficients.

        Returns:
            MANOOutput(vertices (B, 778, 3), joints (B, 21, 3) OpenPose order).
        """
        _check_shape('global_orient', global_orient, (1, 3, 3))
        _check_shape('hand_pose', hand_pose, (NUM_HAND_JOINTS, 3, 3))
        output = self.layer(global_orient=global_orient, hand_pose=hand_pose, betas=betas)
        vertices = output.vertices
        tips = vertices.index_select(1, self.fingertip_vertices)
        joints = torch.cat([output.joints, tips], dim=1).index_select(1, self.openpose_order)
        return MANOOutput(vertices=vertices, joints=joints)
