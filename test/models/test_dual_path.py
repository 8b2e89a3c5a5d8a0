"""Tests for hmr_ros.models.dual_path (the dual-path orchestrator), with tiny random models."""

from __future__ import annotations

import logging

import pytest
import torch

from hmr_ros.body_models.joint_names import (
    OPENPOSE_HAND_JOINT_NAMES,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
)
from hmr_ros.geometry.crops import apply_affine, body_crop_boxes, crop_images, image_to_crop_affine
from hmr_ros.geometry.kinematics import global_rotations
from hmr_ros.geometry.rotations import (
    axis_angle_to_rotmat,
    mirror_rotmat,
    rot6d_to_rotmat,
    rotmat_to_rot6d,
)
from hmr_ros.models.adapters.body_adapter import BodyAdapter, body_adapter_tiny
from hmr_ros.models.adapters.hand_adapter import HandAdapter
from hmr_ros.models.dual_path import DualPathConfig, DualPathModel, DualPathOutput
from hmr_ros.models.hand_expert import (
    build_hand_expert,
    mirror_left_hands,
    normalize_hand_crops,
)
from hmr_ros.models.heads.smplx_head import HAND_POSITION_JOINT_NAMES as HAND_JOINT_NAMES
from hmr_ros.models.whole_body import build_whole_body

WIDTH, HEIGHT = 320, 240
# Principal point at the image's mirror centre (W - 1) / 2, so flipping keeps K.
INTRINSICS = torch.tensor([[[300.0, 0.0, (WIDTH - 1) / 2], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]]])
BOXES = torch.tensor([[20.0, 30.0, 150.0, 230.0], [160.0, 20.0, 300.0, 235.0]])
# IK-style wrists ('hand'), so the fused wrists can be checked against the hand expert alone.
ALWAYS_FUSE = DualPathConfig(hand_confidence_threshold=0.0, wrist_source='hand')


def _mirror_name(name: str) -> str:
    for side, other in (('left_', 'right_'), ('right_', 'left_')):
        if name.startswith(side):
            return other + name[len(side) :]
    return name


# Row j of a mirrored skeleton holds the mirror image of row MIRROR_JOINTS[j] (left <-> right).
MIRROR_JOINTS = [SMPLX_JOINT_NAMES.index(_mirror_name(n)) for n in SMPLX_JOINT_NAMES]
MIRROR_BODY = MIRROR_JOINTS[:22]
X_SIGN = torch.tensor([-1.0, 1.0, 1.0])


@pytest.fixture(scope='module')
def base_models():
    torch.manual_seed(11)
    return build_whole_body('smplerx_tiny').eval(), build_hand_expert('hamer_tiny').eval()


@pytest.fixture(scope='module')
def trained_hand_adapter(base_models):
    """A hand adapter whose zero-initialised output projections were given random values, so
    that (unlike a fresh adapter) it changes the hand expert's outputs."""
    torch.manual_seed(12)
    adapter = HandAdapter(base_models[1].mano_head)
    with torch.no_grad():
        for branch in adapter.branches:
            branch.output_projection.weight.normal_(std=0.2)
    return adapter.eval()


@pytest.fixture(scope='module')
def trained_body_adapter():
    """A body adapter with a random (instead of zero) output layer: a non-zero offset."""
    torch.manual_seed(13)
    adapter = BodyAdapter(body_adapter_tiny())
    with torch.no_grad():
        adapter.output_layer.weight.normal_(std=0.3)
    return adapter.eval()


def _model(
    base_models, smplx_body_model, hand_adapter=None, config=ALWAYS_FUSE, body_adapter=None
):
    whole_body, hand_expert = base_models
    return DualPathModel(
        whole_body, hand_expert, smplx_body_model, hand_adapter, body_adapter, config
    )


def _image(seed=5):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, HEIGHT, WIDTH, generator=generator)


def _run(model, image=None, boxes=BOXES):
    image = _image() if image is None else image
    with torch.no_grad():
        return model(image, boxes, torch.zeros(len(boxes), dtype=torch.long), INTRINSICS)


def test_forward_gives_finite_outputs_of_documented_shapes(
    base_models, smplx_body_model, trained_hand_adapter, trained_body_adapter
):
    model = _model(
        base_models, smplx_body_model, trained_hand_adapter, body_adapter=trained_body_adapter
    )
    assert model.adapters == 'both'
    out = _run(model)
    p, j = 2, smplx_body_model.num_joints
    expected = {
        'global_orient': (p, 3),
        'body_pose': (p, 21, 3),
        'left_hand_pose': (p, 15, 3),
        'right_hand_pose': (p, 15, 3),
        'jaw_pose': (p, 3),
        'betas': (p, 10),
        'expression': (p, 10),
        'transl': (p, 3),
        'vertices': (p, 10475, 3),
        'joints': (p, j, 3),
        'keypoints_2d_px': (p, j, 2),
        'root_rotation': (p, 3, 3),
        'person_boxes_px': (p, 4),
        'body_crop_boxes_px': (p, 4),
        'body_pose_offset_6d': (p, 22, 6),
        'hand_boxes_px': (p, 2, 4),
        'hand_crop_boxes_px': (p, 2, 4),
        'hand_confidence': (p, 2),
        'hand_fused': (p, 2),
        'hand_wrist_position': (p, 2, 3),
        'hand_wrist_rotation': (p, 2, 3, 3),
        'hand_keypoints': (p, 2, 21, 3),
        'hand_keypoints_2d_px': (p, 2, 21, 2),
        'hand_finger_pose': (p, 2, 15, 3),
        'hand_root_registered': (p, 2, 3),
        'hand_registration_rms_px': (p, 2),
        'hand_registration_valid': (p, 2),
        'person_score': (p,),
        'joint_confidence': (p, j),
    }
    assert set(expected) == set(DualPathOutput._fields)
    for name, shape in expected.items():
        value = getattr(out, name)
        assert tuple(value.shape) == shape, name
        assert torch.isfinite(value.float()).all(), name
    assert out.hand_fused.all()  # threshold 0
    assert (out.joints[..., 2] > 0).all()
    # The hands are read from the fused mesh: wrist rows of the keypoints are the wrist joints.
    torch.testing.assert_close(out.hand_keypoints[:, :, 0], out.hand_wrist_position)
    torch.testing.assert_close(out.left_hand_pose, out.hand_finger_pose[:, 0])


def test_all_hands_of_all_persons_go_through_the_hand_expert_once(
    base_models, smplx_body_model, trained_hand_adapter, trained_body_adapter
):
    """3 persons in 2 images: one hand-expert backbone call with a batch of 2 x 3 = 6 crops."""
    model = _model(
        base_models, smplx_body_model, trained_hand_adapter, body_adapter=trained_body_adapter
    )
    batches = []
    hook = model.hand_path.hand_expert.backbone.register_forward_hook(
        lambda module, args, output: batches.append(args[0].shape[0])
    )
    try:
        images = torch.cat((_image(1), _image(2)))
        boxes = torch.cat((BOXES, BOXES[:1] + 5.0))
        with torch.no_grad():
            out = model(images, boxes, torch.tensor([0, 0, 1]), INTRINSICS.expand(2, 3, 3))
    finally:
        hook.remove()
    assert batches == [6]
    assert out.joints.shape[0] == 3


def test_fused_hands_follow_the_hand_expert_and_the_rest_follows_the_body(
    base_models, smplx_body_model
):
    """Adapters off: (1) body rotations except the wrists, betas and expression equal the
    whole-body model run on the same 512 x 384 crops; (2) fused fingers and the global wrist
    rotations equal the hand expert run on the reported hand crops (left flipped, outputs
    mirrored back). Tolerance 1e-4: the crops are re-cut from the reported corners (float32
    rounding of centre and side) and the fingers come back through axis-angle."""
    whole_body, hand_expert = base_models
    model = _model(base_models, smplx_body_model)
    assert model.adapters == 'none'
    image = _image()
    out = _run(model, image)
    centers, sizes = body_crop_boxes(BOXES, image_wh=torch.tensor([WIDTH, HEIGHT]))
    with torch.no_grad():
        body = whole_body(crop_images(image, centers, sizes, (512, 384)))
    wrists = [
        SMPLX_JOINT_NAMES.index('left_wrist') - 1,
        SMPLX_JOINT_NAMES.index('right_wrist') - 1,
    ]
    others = [j for j in range(21) if j not in wrists]
    torch.testing.assert_close(
        axis_angle_to_rotmat(out.body_pose[:, others]),
        axis_angle_to_rotmat(body.body_pose.reshape(2, 21, 3)[:, others]),
    )
    torch.testing.assert_close(
        axis_angle_to_rotmat(out.global_orient), axis_angle_to_rotmat(body.global_orient)
    )
    torch.testing.assert_close(out.betas, body.betas)
    torch.testing.assert_close(out.expression, body.expression)

    crop_boxes = out.hand_crop_boxes_px.reshape(-1, 4)
    is_left = torch.tensor([True, False]).repeat(2)
    crops = crop_images(
        image,
        (crop_boxes[:, :2] + crop_boxes[:, 2:]) / 2,
        crop_boxes[:, 2] - crop_boxes[:, 0],
        (256, 256),
        flip=is_left,
    )
    with torch.no_grad():
        hands = mirror_left_hands(hand_expert(normalize_hand_crops(crops * 255.0)), is_left)
    torch.testing.assert_close(
        axis_angle_to_rotmat(out.hand_finger_pose),
        hands.hand_pose.reshape(2, 2, 15, 3, 3),
        atol=1e-4,
        rtol=0,
    )
    torch.testing.assert_close(
        out.hand_wrist_rotation, hands.global_orient.reshape(2, 2, 3, 3), atol=1e-4, rtol=0
    )


def test_unusable_hands_keep_the_body_wrist_and_fingers_with_hands_mean(
    base_models, smplx_body_model
):
    """Threshold above 1: no hand is fused; the wrists are SMPLer-X's own and the fingers are
    SMPLer-X's mean-relative poses plus hands_mean (the absolute convention)."""
    whole_body = base_models[0]
    model = _model(
        base_models, smplx_body_model, config=DualPathConfig(hand_confidence_threshold=2)
    )
    image = _image()
    out = _run(model, image)
    assert not out.hand_fused.any()
    centers, sizes = body_crop_boxes(BOXES, image_wh=torch.tensor([WIDTH, HEIGHT]))
    with torch.no_grad():
        body = whole_body(crop_images(image, centers, sizes, (512, 384)))
    torch.testing.assert_close(
        axis_angle_to_rotmat(out.body_pose), axis_angle_to_rotmat(body.body_pose.reshape(2, 21, 3))
    )
    expected_left = smplx_body_model.add_hands_mean(body.left_hand_pose, 'left')
    torch.testing.assert_close(
        axis_angle_to_rotmat(out.left_hand_pose),
        axis_angle_to_rotmat(expected_left.reshape(2, 15, 3)),
    )


def test_wrist_rotation_is_the_forward_kinematics_of_the_output_pose(
    base_models, smplx_body_model, trained_hand_adapter
):
    out = _run(_model(base_models, smplx_body_model, trained_hand_adapter))
    local = axis_angle_to_rotmat(torch.cat((out.global_orient[:, None], out.body_pose), dim=1))
    globals_ = global_rotations(local, SMPLX_PARENTS[:22])
    wrists = [SMPLX_JOINT_NAMES.index('left_wrist'), SMPLX_JOINT_NAMES.index('right_wrist')]
    torch.testing.assert_close(globals_[:, wrists], out.hand_wrist_rotation, atol=1e-5, rtol=1e-4)


def test_metric_translation_puts_the_pelvis_on_the_person_box_centre(
    base_models, smplx_body_model, monkeypatch
):
    """Scripted camera (c0, c1) = -(pelvis x, y) puts the pelvis on the virtual camera's axis
    at depth Z_v = pelvis z + t_z. The virtual camera's principal point is the crop centre, the
    centre of the sanitised person box, so the pelvis must project there with the real K; its
    real depth is Z_v f / f_v with f = (300 + 310) / 2 and f_v = 10000 * crop width / 384.

    Box 1 (20, 30, 150, 230): SMPLer-X's sanitize_bbox makes it (20, 30, 149, 229), 129 x 199 px,
    centre (84.5, 129.5) -> crop width max(129, 199 * 0.75) * 1.25 = 186.5625 px.
    """
    whole_body = base_models[0]
    model = _model(base_models, smplx_body_model)
    run_stages = whole_body.run_stages
    pelvis = smplx_body_model(**smplx_body_model.neutral_inputs(1)).joints[0, 0]
    depth_logit = 0.4
    stages = None

    def scripted(crops):
        nonlocal stages
        stages = run_stages(crops)
        camera = stages.camera.clone()
        camera[:, 0], camera[:, 1], camera[:, 2] = -pelvis[0], -pelvis[1], depth_logit
        stages = stages._replace(
            camera=camera,
            betas=torch.zeros_like(stages.betas),
            expression=torch.zeros_like(stages.expression),
        )
        return stages

    monkeypatch.setattr(whole_body, 'run_stages', scripted)
    out = _run(model, boxes=BOXES[:1])
    center = torch.tensor([84.5, 129.5])
    torch.testing.assert_close(out.keypoints_2d_px[0, 0], center, atol=1e-3, rtol=0)
    t_z = 5000.0 * 2.5 / (256 * 192) ** 0.5 * torch.sigmoid(torch.tensor(depth_logit))
    virtual_depth = pelvis[2] + t_z
    expected = virtual_depth * 305.0 / (10000.0 * 186.5625 / 384.0)
    torch.testing.assert_close(out.joints[0, 0, 2], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.transl[0] + pelvis, out.joints[0, 0])


def test_registered_hand_roots_match_the_mesh_when_the_2d_joints_are_its_projection(
    base_models, smplx_body_model, monkeypatch
):
    """Script the whole-body model's 2D hand joints to be exactly the projection of the fused
    mesh's hand joints (through SMPLer-X's cell mapping, inverted): the 2D registration must
    then put each hand's root on the mesh's wrist, with zero reprojection error."""
    whole_body = base_models[0]
    model = _model(base_models, smplx_body_model)
    run_stages = whole_body.run_stages
    recorded = []

    def scripted(crops):
        if not recorded:
            recorded.append(run_stages(crops))
        return recorded[-1]

    monkeypatch.setattr(whole_body, 'run_stages', scripted)
    first = _run(model)
    centers, sizes = body_crop_boxes(BOXES, image_wh=torch.tensor([WIDTH, HEIGHT]))
    to_crop = image_to_crop_affine(centers, sizes, (512, 384))
    tips = [OPENPOSE_HAND_JOINT_NAMES.index(n.replace('4', '_tip')) for n in HAND_JOINT_NAMES]
    target_px = apply_affine(first.hand_keypoints_2d_px[:, :, tips].flatten(1, 2), to_crop)
    target_px = target_px.reshape(2, 2, 20, 2)
    boxes = apply_affine(first.hand_boxes_px.reshape(2, 4, 2), to_crop).reshape(2, 2, 4)
    cells = (
        (target_px - boxes[:, :, None, :2])
        * 16.0
        / (boxes[:, :, None, 2:] - boxes[:, :, None, :2])
    )
    cells[:, 0, :, 0] = 15.0 - cells[:, 0, :, 0]  # the left hand is stored mirrored
    joints_hm = recorded[0].hands.joints_hm.clone()
    joints_hm[..., :2] = cells
    recorded.append(recorded[0]._replace(hands=recorded[0].hands._replace(joints_hm=joints_hm)))
    second = _run(model)
    torch.testing.assert_close(second.joints, first.joints)
    assert second.hand_registration_valid.all()
    assert second.hand_registration_rms_px.max() < 1e-2
    torch.testing.assert_close(
        second.hand_root_registered, second.hand_wrist_position, atol=1e-4, rtol=0
    )


def _mirror_stages(stages):
    """The whole-body stages a mirror-equivariant model would give for the flipped image.

    Body rotations mirrored (M R M) with left/right joints swapped; hands swapped (the left
    hand is stored mirrored, so the mirrored person's left hand is the stored right hand as
    is); hand boxes mirrored about the ViT image's centre column 96 (the virtual camera's
    principal point; crop pixel u -> 384 - u maps to image x -> W - 1 - x); camera t_x negated.
    """
    body = rot6d_to_rotmat(stages.body_pose_6d, 'interleaved')[:, MIRROR_BODY]
    jaw = rot6d_to_rotmat(stages.jaw_pose_6d, 'interleaved')
    boxes = stages.part_boxes_vit_px.clone()
    boxes[:, :, 0], boxes[:, :, 2] = (
        192.0 - stages.part_boxes_vit_px[:, :, 2],
        (192.0 - stages.part_boxes_vit_px[:, :, 0]),
    )
    boxes[:, :2] = boxes[:, [1, 0]]
    # SMPLer-X maps hand joint cells to crop pixels as corner + x * size / 16 and un-mirrors the
    # left hand as 15 - x: mirroring a hand therefore shifts its stored x by one cell.
    joints_hm = stages.hands.joints_hm.flip(1).clone()
    joints_hm[:, 0, :, 0] -= 1.0
    joints_hm[:, 1, :, 0] += 1.0
    hands = stages.hands._replace(pose_6d=stages.hands.pose_6d.flip(1), joints_hm=joints_hm)
    return stages._replace(
        body_pose_6d=rotmat_to_rot6d(mirror_rotmat(body), 'interleaved'),
        jaw_pose_6d=rotmat_to_rot6d(mirror_rotmat(jaw), 'interleaved'),
        part_boxes_vit_px=boxes,
        hands=hands,
        camera=stages.camera * X_SIGN,
    )


def test_flipping_the_image_mirrors_the_whole_result(
    base_models, smplx_body_model, trained_hand_adapter, monkeypatch
):
    """Flip the image and the person boxes: the result is mirrored (sides swapped, rotations
    M R M, x negated, pixels u -> W - 1 - u).

    What is exactly equivariant: everything after the whole-body network. Random weights make
    SMPLer-X's ViT not equivariant, so its stages are scripted: the real stages of the image
    (betas and expression zeroed, hand boxes placed in the crop) and, for the flipped image,
    their mirror image (_mirror_stages), i.e. what a mirror-equivariant whole-body model would
    give. The hand path needs no scripting: a left hand is cut from the flipped image around
    the mirrored centre, so the mirrored person's left-hand crop equals the original right-hand
    crop pixel for pixel (up to grid_sample rounding), the hand expert and the (trained) hand
    adapter see the same input and the same mirrored arm guidance, and mirroring the output
    back gives the mirrored hand. The synthetic SMPL-X skeleton is left/right symmetric at zero
    betas and expression, K's principal point is the mirror centre (W - 1) / 2, and the
    confidence's image extent [-0.5, W - 0.5] is symmetric.

    Tolerance 1e-4: the only differences are float32 rounding in the crop sampling grids
    (mirrored coordinates are computed, not copied), amplified a little by the tiny networks.
    """
    whole_body = base_models[0]
    model = _model(base_models, smplx_body_model, trained_hand_adapter)
    run_stages = whole_body.run_stages
    scripted_stages = []

    def scripted(crops):
        if scripted_stages:
            return _mirror_stages(scripted_stages[0])
        stages = run_stages(crops)
        boxes = stages.part_boxes_vit_px.clone()
        boxes[:, 0] = torch.tensor([40.0, 110.0, 70.0, 140.0])  # left hand, ViT pixels
        boxes[:, 1] = torch.tensor([120.0, 100.0, 156.0, 136.0])  # right hand
        stages = stages._replace(
            part_boxes_vit_px=boxes,
            betas=torch.zeros_like(stages.betas),
            expression=torch.zeros_like(stages.expression),
        )
        scripted_stages.append(stages)
        return stages

    monkeypatch.setattr(whole_body, 'run_stages', scripted)
    image = _image()
    boxes = BOXES[:1]
    # SMPLer-X's sanitize_bbox keeps x1 and moves x2 in by 1 px, so the box whose sanitised
    # form mirrors (x1, x2 - 1) to (W - 1 - (x2 - 1), W - 1 - x1) is (W - x2, W - x1).
    flipped_boxes = torch.stack(
        (WIDTH - boxes[:, 2], boxes[:, 1], WIDTH - boxes[:, 0], boxes[:, 3]), dim=-1
    )
    out = _run(model, image, boxes)
    flipped = _run(model, image.flip(-1), flipped_boxes)
    close = {'atol': 1e-4, 'rtol': 1e-4}

    assert (out.hand_confidence > 0.2).all()  # the hand crops are real crops of the image
    torch.testing.assert_close(flipped.hand_confidence, out.hand_confidence.flip(1))
    mirrored_boxes = torch.stack(
        (
            WIDTH - 1 - out.hand_boxes_px[..., 2],
            out.hand_boxes_px[..., 1],
            WIDTH - 1 - out.hand_boxes_px[..., 0],
            out.hand_boxes_px[..., 3],
        ),
        dim=-1,
    ).flip(1)
    torch.testing.assert_close(flipped.hand_boxes_px, mirrored_boxes, **close)

    def rotations(result):
        pose = torch.cat((result.global_orient[:, None], result.body_pose), dim=1)
        return axis_angle_to_rotmat(pose)

    torch.testing.assert_close(
        rotations(flipped), mirror_rotmat(rotations(out)[:, MIRROR_BODY]), **close
    )
    torch.testing.assert_close(
        axis_angle_to_rotmat(flipped.hand_finger_pose),
        mirror_rotmat(axis_angle_to_rotmat(out.hand_finger_pose.flip(1))),
        **close,
    )
    torch.testing.assert_close(
        flipped.hand_wrist_rotation, mirror_rotmat(out.hand_wrist_rotation.flip(1)), **close
    )
    torch.testing.assert_close(flipped.transl, out.transl * X_SIGN, **close)
    kinematic = slice(0, len(SMPLX_JOINT_NAMES))
    torch.testing.assert_close(
        flipped.joints[:, kinematic], out.joints[:, MIRROR_JOINTS] * X_SIGN, **close
    )
    # Fingertips are mesh vertices; the synthetic mesh is not a mirror image of itself.
    joints_only = [i for i, n in enumerate(OPENPOSE_HAND_JOINT_NAMES) if not n.endswith('_tip')]
    torch.testing.assert_close(
        flipped.hand_keypoints[:, :, joints_only],
        out.hand_keypoints.flip(1)[:, :, joints_only] * X_SIGN,
        **close,
    )
    u_mirrored = WIDTH - 1 - out.keypoints_2d_px[:, MIRROR_JOINTS, 0]
    torch.testing.assert_close(flipped.keypoints_2d_px[:, kinematic, 0], u_mirrored, **close)
    # The registration fits the fingertips too, whose vertices are not mirror images in the
    # synthetic mesh: about 1 mm of difference, far below a sign or side error (centimetres).
    torch.testing.assert_close(
        flipped.hand_root_registered, out.hand_root_registered.flip(1) * X_SIGN, atol=3e-3, rtol=0
    )


def test_untrained_adapters_change_nothing(base_models, smplx_body_model):
    """Fresh adapters (zero output layers) give exactly the baseline's outputs."""
    fresh_hand = HandAdapter(base_models[1].mano_head).eval()
    fresh_body = BodyAdapter(body_adapter_tiny()).eval()
    model = _model(base_models, smplx_body_model, fresh_hand, body_adapter=fresh_body)
    assert model.adapters == 'both'
    with_adapter = _run(model)
    baseline = _run(_model(base_models, smplx_body_model))
    for name in DualPathOutput._fields:
        torch.testing.assert_close(getattr(with_adapter, name), getattr(baseline, name))


def test_hand_adapter_switch_changes_only_the_hands(
    base_models, smplx_body_model, trained_hand_adapter
):
    """'hand' vs 'none': same body (except the fused wrists), shape and translation; other
    fingers and hand orientations."""
    model = _model(base_models, smplx_body_model, trained_hand_adapter)
    assert model.adapters == 'hand'
    guided = _run(model)
    model.set_adapters('none')
    try:
        plain = _run(model)
    finally:
        model.set_adapters('auto')
    assert model.adapters == 'hand'
    wrists = [
        SMPLX_JOINT_NAMES.index('left_wrist') - 1,
        SMPLX_JOINT_NAMES.index('right_wrist') - 1,
    ]
    others = [j for j in range(21) if j not in wrists]
    torch.testing.assert_close(guided.body_pose[:, others], plain.body_pose[:, others])
    for name in ('global_orient', 'betas', 'expression', 'transl', 'hand_boxes_px'):
        torch.testing.assert_close(getattr(guided, name), getattr(plain, name))
    assert (guided.hand_finger_pose - plain.hand_finger_pose).abs().max() > 1e-3
    assert (guided.hand_wrist_rotation - plain.hand_wrist_rotation).abs().max() > 1e-3
    assert not guided.body_pose_offset_6d.any()


def test_body_adapter_switch_refines_the_body_and_keeps_the_hands(
    base_models, smplx_body_model, trained_body_adapter, monkeypatch
):
    """'body' vs 'none': the body rotations are those of theta_0 + delta_theta (the reported
    offset, non-zero); the hand boxes, hand-expert fingers and global hand orientations are
    unchanged (the hand expert runs unguided and its boxes come before the adapter), while the
    fused local wrist rotations change with the refined elbows."""
    whole_body = base_models[0]
    model = _model(base_models, smplx_body_model, body_adapter=trained_body_adapter)
    assert model.adapters == 'body'
    run_stages = whole_body.run_stages
    stages = []

    def recording(crops):
        stages.append(run_stages(crops))
        return stages[-1]

    monkeypatch.setattr(whole_body, 'run_stages', recording)
    refined = _run(model)
    model.set_adapters('none')
    plain = _run(model)
    assert refined.body_pose_offset_6d.abs().max() > 1e-2
    assert not plain.body_pose_offset_6d.any()
    expected = rot6d_to_rotmat(stages[0].body_pose_6d + refined.body_pose_offset_6d, 'interleaved')
    wrists = [SMPLX_JOINT_NAMES.index('left_wrist'), SMPLX_JOINT_NAMES.index('right_wrist')]
    others = [j for j in range(22) if j not in wrists]
    pose = torch.cat((refined.global_orient[:, None], refined.body_pose), dim=1)
    torch.testing.assert_close(
        axis_angle_to_rotmat(pose)[:, others], expected[:, others], atol=1e-5, rtol=0
    )
    for name in ('hand_boxes_px', 'hand_finger_pose', 'hand_wrist_rotation', 'betas'):
        torch.testing.assert_close(getattr(refined, name), getattr(plain, name), atol=1e-5, rtol=0)
    assert (
        refined.body_pose[:, [w - 1 for w in wrists]] - plain.body_pose[:, [w - 1 for w in wrists]]
    ).abs().max() > 1e-3


def test_adapter_modes_are_validated_and_described(base_models, smplx_body_model, caplog):
    with caplog.at_level(logging.INFO, logger='hmr_ros.models.dual_path'):
        model = _model(base_models, smplx_body_model)
    assert 'baseline SMPLer-X + HaMeR' in model.mode_description
    assert 'no adapter files loaded' in model.mode_description
    assert model.mode_description in caplog.text
    with pytest.raises(ValueError, match='needs the hand adapter'):
        model.set_adapters('hand')
    with pytest.raises(ValueError, match='needs the body adapter'):
        _model(base_models, smplx_body_model, config=DualPathConfig(adapters='body'))
    with pytest.raises(ValueError, match='adapters must be one of'):
        DualPathConfig(adapters='all')  # type: ignore[arg-type]


def test_rejects_bad_inputs(base_models, smplx_body_model):
    model = _model(base_models, smplx_body_model)
    image = _image()
    index = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match='float RGB'):
        model((image * 255).to(torch.uint8), BOXES, index, INTRINSICS)
    with pytest.raises(ValueError, match='one K per image'):
        model(image, BOXES, index, INTRINSICS[0])
    with pytest.raises(ValueError, match='one image index per box'):
        model(image, BOXES, index[:1], INTRINSICS)
    with pytest.raises(ValueError, match='no person boxes'):
        model(image, BOXES[:0], index[:0], INTRINSICS)


def test_joint_confidence_rows_follow_the_heatmap_joint_names(base_models, smplx_body_model):
    """Scripted confidences 0.01 * (1 + k) for body heatmap joint k and 0.5 + 0.01 * (1 + i)
    (left) / 0.7 + 0.01 * (1 + i) (right) for hand heatmap joint i land on the SMPL-X output
    joints of the same name (SMPLer-X's 25 body joints: 12 = left_wrist, 24 = nose; hand joint
    3 = thumb4 = the thumb tip, SMPL-X's vertex keypoint 'left_thumb'); joints no heatmap
    covers (spine1, jaw, face landmarks) read 0. person_score is the mean of the body values."""
    model = _model(base_models, smplx_body_model)
    whole_body = model.whole_body
    body_values = 0.01 * torch.arange(1, 26, dtype=torch.float32)
    hand_values = torch.stack(
        (0.5 + 0.01 * torch.arange(1, 21.0), 0.7 + 0.01 * torch.arange(1, 21.0))
    )

    def body_hook(_module, _inputs, output):
        return output._replace(confidence=body_values.expand(output.confidence.shape[0], -1))

    def hand_hook(_module, _inputs, output):
        # The hand batch is (person, side) flattened, side in (left, right) order.
        rows = output.confidence.shape[0]
        return output._replace(confidence=hand_values.repeat(rows // 2, 1))

    handles = [
        whole_body.body_position_net.register_forward_hook(body_hook),
        whole_body.hand_position_net.register_forward_hook(hand_hook),
    ]
    try:
        out = _run(model)
    finally:
        for handle in handles:
            handle.remove()
    row = smplx_body_model.joint_index
    for p in range(len(BOXES)):
        conf = out.joint_confidence[p]
        assert conf[row('pelvis')] == pytest.approx(0.01)
        assert conf[row('left_wrist')] == pytest.approx(0.13)
        assert conf[row('nose')] == pytest.approx(0.25)
        assert conf[row('left_thumb1')] == pytest.approx(0.51)
        assert conf[row('left_thumb')] == pytest.approx(0.54)
        assert conf[row('right_pinky')] == pytest.approx(0.90)
        for uncovered in ('spine1', 'jaw', 'left_collar', 'nose1'):
            assert conf[row(uncovered)] == 0.0, uncovered
        assert int((conf > 0).sum()) == 25 + 2 * 20
        assert out.person_score[p] == pytest.approx(float(body_values.mean()))


def test_wrist_source_body_lets_the_body_adapter_reach_the_mesh_wrist(
    base_models, smplx_body_model, trained_body_adapter
):
    """wrist_source 'body' (the default): the fused local wrist rotations are the refined body
    path's own (theta_0 + offset through the 6D conversion), so a body-adapter offset on a wrist
    changes the mesh; the fingers still come from the hand expert. 'hand' ignores that offset
    at the wrist (the IK-style wrist depends only on the elbow and the hand expert)."""
    body_first = _model(
        base_models,
        smplx_body_model,
        config=DualPathConfig(hand_confidence_threshold=0.0),
        body_adapter=trained_body_adapter,
    )
    assert body_first.config.wrist_source == 'body'
    out = _run(body_first)
    whole_body = base_models[0]
    wrists = [SMPLX_JOINT_NAMES.index(f'{side}_wrist') for side in ('left', 'right')]
    centers, sizes = body_crop_boxes(BOXES, image_wh=torch.tensor([WIDTH, HEIGHT]))
    with torch.no_grad():
        stages = whole_body.run_stages(crop_images(_image(), centers, sizes, (512, 384)))
    refined = rot6d_to_rotmat(stages.body_pose_6d + out.body_pose_offset_6d, 'interleaved')
    torch.testing.assert_close(
        axis_angle_to_rotmat(out.body_pose[:, [w - 1 for w in wrists]]),
        refined[:, wrists],
        atol=1e-4,
        rtol=1e-4,
    )
    assert out.body_pose_offset_6d[:, wrists].abs().amax() > 1e-3  # the offset is there
    ik = _model(base_models, smplx_body_model, body_adapter=trained_body_adapter)
    ik_out = _run(ik)
    assert not torch.allclose(
        ik_out.body_pose[:, [w - 1 for w in wrists]], out.body_pose[:, [w - 1 for w in wrists]]
    )
    torch.testing.assert_close(ik_out.hand_finger_pose, out.hand_finger_pose)
