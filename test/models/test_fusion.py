"""Tests for hmr_ros.models.fusion (hand -> body fusion)."""

import math

import pytest
import torch

from hmr_ros.body_models.joint_names import SMPLX_JOINT_INDEX
from hmr_ros.geometry.kinematics import global_rotations
from hmr_ros.geometry.rotations import axis_angle_to_rotmat, mirror_rotmat
from hmr_ros.models.fusion import (
    BODY_PARENTS,
    ELBOW_INDICES,
    WRIST_INDICES,
    fuse_hands,
    halfway_rotation,
    hand_box_confidence,
    wrist_local_rotation,
)


def _rotations(*shape: int) -> torch.Tensor:
    return axis_angle_to_rotmat(0.7 * torch.randn(*shape, 3, dtype=torch.float64))


def _inputs(persons=3):
    body = _rotations(persons, 22)
    body_hands = _rotations(persons, 2, 15)
    hand_orient = _rotations(persons, 2)
    hand_fingers = _rotations(persons, 2, 15)
    return body, body_hands, hand_orient, hand_fingers


def test_wrist_and_elbow_indices_are_named_joints():
    assert WRIST_INDICES == (SMPLX_JOINT_INDEX['left_wrist'], SMPLX_JOINT_INDEX['right_wrist'])
    assert ELBOW_INDICES == (SMPLX_JOINT_INDEX['left_elbow'], SMPLX_JOINT_INDEX['right_elbow'])


def test_hand_orientation_equal_to_the_body_wrist_reproduces_the_body_pose():
    """If the hand expert's global orientation equals the body's forward-kinematics wrist
    rotation, the fused local wrist rotation is the body's own."""
    body, body_hands, _, hand_fingers = _inputs()
    body_wrist_global = global_rotations(body, BODY_PARENTS)[:, list(WRIST_INDICES)]
    fused = fuse_hands(body, body_hands, body_wrist_global, hand_fingers, torch.ones(3, 2))
    torch.testing.assert_close(fused.body_rotmats, body)
    torch.testing.assert_close(fused.wrist_global_rotmats, body_wrist_global)
    torch.testing.assert_close(fused.hand_rotmats, hand_fingers)


def test_a_90_degree_twist_of_the_hand_shows_in_the_wrist_local_rotation():
    """Hand = body wrist global x Rx(90 deg) (a twist about the wrist's own x axis, the forearm
    direction of SMPL-X's T-pose arms): the fused local wrist rotation is R_wrist Rx(90 deg);
    nothing else in the body changes."""
    body, body_hands, _, hand_fingers = _inputs()
    twist = axis_angle_to_rotmat(torch.tensor([math.pi / 2, 0.0, 0.0], dtype=torch.float64))
    body_wrist_global = global_rotations(body, BODY_PARENTS)[:, list(WRIST_INDICES)]
    fused = fuse_hands(body, body_hands, body_wrist_global @ twist, hand_fingers, torch.ones(3, 2))
    torch.testing.assert_close(
        fused.body_rotmats[:, list(WRIST_INDICES)], body[:, list(WRIST_INDICES)] @ twist
    )
    others = [j for j in range(22) if j not in WRIST_INDICES]
    torch.testing.assert_close(fused.body_rotmats[:, others], body[:, others])
    angle = torch.arccos(
        (fused.body_rotmats[:, WRIST_INDICES[1]].transpose(-1, -2) @ body[:, WRIST_INDICES[1]])
        .diagonal(dim1=-2, dim2=-1)
        .sum(-1)
        .sub(1)
        .div(2)
        .clamp(-1, 1)
    )
    torch.testing.assert_close(angle, torch.full((3,), math.pi / 2, dtype=torch.float64))


def test_wrist_local_rotation_in_a_t_pose():
    """Elbow global = identity (T-pose arm): the wrist local rotation is the hand rotation."""
    hand = _rotations(4)
    torch.testing.assert_close(wrist_local_rotation(torch.eye(3).double(), hand), hand)
    elbow = _rotations(4)
    torch.testing.assert_close(elbow @ wrist_local_rotation(elbow, hand), hand)


def test_low_confidence_hands_keep_the_body_wrist_and_fingers():
    body, body_hands, hand_orient, hand_fingers = _inputs(2)
    use = torch.tensor([[True, False], [False, False]])
    fused = fuse_hands(body, body_hands, hand_orient, hand_fingers, use)
    torch.testing.assert_close(fused.wrist_global_rotmats[0, 0], hand_orient[0, 0])
    torch.testing.assert_close(fused.hand_rotmats[0, 0], hand_fingers[0, 0])
    torch.testing.assert_close(fused.hand_rotmats[0, 1], body_hands[0, 1])
    torch.testing.assert_close(fused.hand_rotmats[1], body_hands[1])
    torch.testing.assert_close(fused.body_rotmats[1], body[1])
    torch.testing.assert_close(fused.body_rotmats[0, WRIST_INDICES[1]], body[0, WRIST_INDICES[1]])


def test_fusion_commutes_with_mirroring():
    """Mirroring every rotation (M R M) and swapping the sides of the inputs gives the mirrored,
    swapped outputs: the fusion treats left and right alike."""
    body, body_hands, hand_orient, hand_fingers = _inputs()
    use = torch.tensor([[True, False], [True, True], [False, True]])
    names = ('pelvis', 'left_hip', 'right_hip', 'spine1', 'left_knee', 'right_knee', 'spine2')
    names += ('left_ankle', 'right_ankle', 'spine3', 'left_foot', 'right_foot', 'neck')
    names += ('left_collar', 'right_collar', 'head', 'left_shoulder', 'right_shoulder')
    names += ('left_elbow', 'right_elbow', 'left_wrist', 'right_wrist')
    swap = {'left': 'right', 'right': 'left'}
    mirrored_names = [
        f'{swap[n.split("_")[0]]}_{n.split("_", 1)[1]}' if n.split('_')[0] in swap else n
        for n in names
    ]
    body_swap = [names.index(n) for n in mirrored_names]
    fused = fuse_hands(body, body_hands, hand_orient, hand_fingers, use)
    mirrored = fuse_hands(
        mirror_rotmat(body[:, body_swap]),
        mirror_rotmat(body_hands.flip(1)),
        mirror_rotmat(hand_orient.flip(1)),
        mirror_rotmat(hand_fingers.flip(1)),
        use.flip(1),
    )
    torch.testing.assert_close(
        mirrored.body_rotmats, mirror_rotmat(fused.body_rotmats[:, body_swap])
    )
    torch.testing.assert_close(mirrored.hand_rotmats, mirror_rotmat(fused.hand_rotmats.flip(1)))
    torch.testing.assert_close(
        mirrored.wrist_global_rotmats, mirror_rotmat(fused.wrist_global_rotmats.flip(1))
    )


def test_hand_box_confidence_values():
    """Image 640 x 480 covers [-0.5, 639.5] x [-0.5, 479.5]; ramp 10 px -> 0, 40 px -> 1.

    - 60 px box fully inside: 1.
    - 60 px box with its left half outside (x1 = -30.5): visible 0.5, size 1 -> 0.5.
    - 25 px box inside: size (25 - 10) / 30 = 0.5 -> 0.5.
    - 8 px box: 0.  Box entirely outside: 0.  Degenerate box: 0.
    """
    boxes = torch.tensor(
        [
            [100.0, 100.0, 160.0, 160.0],
            [-30.5, 100.0, 29.5, 160.0],
            [300.0, 200.0, 325.0, 225.0],
            [10.0, 10.0, 18.0, 18.0],
            [700.0, 10.0, 760.0, 70.0],
            [50.0, 50.0, 50.0, 90.0],
        ]
    )
    confidence = hand_box_confidence(boxes, torch.tensor([640.0, 480.0]), 10.0, 40.0)
    torch.testing.assert_close(confidence, torch.tensor([1.0, 0.5, 0.5, 0.0, 0.0, 0.0]))


def test_hand_box_confidence_is_mirror_symmetric():
    """x -> W - 1 - x maps the image extent onto itself, so mirrored boxes score the same."""
    boxes = torch.tensor([[-20.0, 5.0, 30.0, 60.0], [600.0, 400.0, 660.0, 470.0]])
    width = 640.0
    mirrored = torch.stack(
        (width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]), dim=-1
    )
    image = torch.tensor([width, 480.0])
    torch.testing.assert_close(
        hand_box_confidence(mirrored, image, 10.0, 40.0),
        hand_box_confidence(boxes, image, 10.0, 40.0),
    )


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='full_side_px'):
        hand_box_confidence(torch.zeros(1, 4), torch.tensor([10.0, 10.0]), 40.0, 10.0)
    body, body_hands, hand_orient, hand_fingers = _inputs()
    with pytest.raises(ValueError, match='body_rotmats'):
        fuse_hands(body[:, :21], body_hands, hand_orient, hand_fingers, torch.ones(3, 2))


def test_wrist_source_body_keeps_the_body_wrist_and_blend_goes_halfway():
    """Hand = body wrist global x Rx(90 deg): 'hand' gives the local wrist R_wrist Rx(90), 'body'
    keeps R_wrist (fingers still from the hand path), 'blend' gives R_wrist Rx(45): the
    geodesic midpoint of R and R Rx(90) is R Rx(45) (half the angle about the same axis)."""
    body, body_hands, _, hand_fingers = _inputs()
    twist = axis_angle_to_rotmat(torch.tensor([math.pi / 2, 0.0, 0.0], dtype=torch.float64))
    half = axis_angle_to_rotmat(torch.tensor([math.pi / 4, 0.0, 0.0], dtype=torch.float64))
    hand_orient = global_rotations(body, BODY_PARENTS)[:, list(WRIST_INDICES)] @ twist
    wrists = list(WRIST_INDICES)
    use = torch.ones(3, 2)
    for source, expected in (
        ('hand', body[:, wrists] @ twist),
        ('body', body[:, wrists]),
        ('blend', body[:, wrists] @ half),
    ):
        fused = fuse_hands(body, body_hands, hand_orient, hand_fingers, use, wrist_source=source)
        torch.testing.assert_close(fused.body_rotmats[:, wrists], expected, msg=source)
        torch.testing.assert_close(fused.hand_rotmats, hand_fingers, msg=source)
        torch.testing.assert_close(
            fused.wrist_global_rotmats, fused.elbow_global_rotmats @ expected, msg=source
        )
    with pytest.raises(ValueError, match='wrist_source'):
        fuse_hands(body, body_hands, hand_orient, hand_fingers, use, wrist_source='elbow')


def test_halfway_rotation_is_symmetric_and_exact_for_a_known_pair():
    """Rz(0.2) and Rz(1.0): halfway is Rz(0.6), from either end."""
    a = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64))
    b = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    mid = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64))
    torch.testing.assert_close(halfway_rotation(a, b), mid)
    torch.testing.assert_close(halfway_rotation(b, a), mid)


def test_pipeline_choices_match_the_fusion_module():
    """pipeline.protocol lists the wrist sources without importing torch; they must agree."""
    from hmr_ros.models.fusion import DEFAULT_WRIST_SOURCE, WRIST_SOURCES
    from hmr_ros.pipeline import protocol

    assert protocol.WRIST_SOURCE_CHOICES == WRIST_SOURCES
    assert protocol.DEFAULT_WRIST_SOURCE == DEFAULT_WRIST_SOURCE
