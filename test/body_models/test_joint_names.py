import pytest
import torch
from smplx.joint_names import JOINT_NAMES as SMPLX_PACKAGE_NAMES

from hmr_ros.body_models import joint_names as jn

# Official SMPL-X 1.1 kintree_table row 0 (root stored as -1 here), written out independently.
OFFICIAL_SMPLX_PARENTS = [
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
]  # fmt: skip
# HaMeR's MANO joint_map (docs/model-reference.md A.6).
HAMER_JOINT_MAP = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]


def test_sizes_are_derived_and_match_smplx():
    assert jn.NUM_SMPLX_JOINTS == 55 == len(jn.SMPLX_JOINT_NAMES)
    assert jn.NUM_BODY_JOINTS == 21 == len(jn.BODY_JOINT_NAMES)
    assert jn.NUM_HAND_JOINTS == 15 == len(jn.hand_joint_names('left'))
    assert jn.NUM_MANO_JOINTS == 16 and jn.NUM_HAND_KEYPOINTS == 21
    assert jn.SMPLX_JOINT_NAMES[0] == 'pelvis' and jn.SMPLX_JOINT_NAMES[-1] == 'right_thumb3'
    assert jn.BODY_JOINT_NAMES[0] == 'left_hip' and jn.BODY_JOINT_NAMES[-1] == 'right_wrist'
    assert jn.hand_joint_names('right') == jn.SMPLX_JOINT_NAMES[40:55]


def test_parents_equal_the_official_kinematic_tree():
    assert list(jn.SMPLX_PARENTS) == OFFICIAL_SMPLX_PARENTS
    assert jn.MANO_PARENTS == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)


def test_arm_chain_walks_from_root_to_wrist():
    """8 joints; each one's parent is the previous one; the chain ends at that side's wrist."""
    for side in jn.SIDES:
        chain = jn.arm_chain(side)
        assert chain == (
            'pelvis', 'spine1', 'spine2', 'spine3',
            f'{side}_collar', f'{side}_shoulder', f'{side}_elbow', f'{side}_wrist',
        )  # fmt: skip
        indices = jn.arm_chain_indices(side)
        assert [jn.SMPLX_PARENTS[i] for i in indices[1:]] == list(indices[:-1])
    assert jn.arm_chain_indices('left') == (0, 3, 6, 9, 13, 16, 18, 20)
    with pytest.raises(ValueError, match='side'):
        jn.arm_chain('both')
    with pytest.raises(KeyError, match='not an SMPL-X joint'):
        jn.kinematic_chain('left_hand')
    assert jn.kinematic_chain('pelvis') == ('pelvis',)
    assert jn.kinematic_chain('right_pinky3')[-4:] == (
        'right_wrist', 'right_pinky1', 'right_pinky2', 'right_pinky3',
    )  # fmt: skip


def test_mcp_joints():
    assert jn.mcp_joint_names('left') == (
        'left_index1', 'left_middle1', 'left_ring1', 'left_pinky1',
    )  # fmt: skip
    assert all(name in jn.SMPLX_JOINT_INDEX for name in jn.mcp_joint_names('right'))


def test_mano_to_openpose_equals_hamer_joint_map():
    assert list(jn.MANO_TO_OPENPOSE) == HAMER_JOINT_MAP
    assert [jn.MANO_TO_OPENPOSE[i] for i in jn.OPENPOSE_TO_MANO] == list(range(21))


def test_reorder_a_hand_built_example():
    """Tag each MANO joint (16 + 5 tips) with its native index, then reorder.

    OpenPose order is wrist, thumb 1-3 (native 13-15) and tip (16), index 1-3 (1-3) and tip (17),
    middle (4-6, 18), ring (10-12, 19), pinky (7-9, 20).
    """
    native = torch.arange(21.0)[None, :, None].expand(1, 21, 3)
    openpose = native[:, list(jn.MANO_TO_OPENPOSE)]
    expected = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
    assert openpose[0, :, 0].tolist() == expected
    assert jn.OPENPOSE_HAND_JOINT_NAMES[4] == 'thumb_tip'
    assert jn.MEDIAPIPE_HAND_LANDMARK_NAMES[4] == 'THUMB_TIP'
    assert jn.MEDIAPIPE_HAND_LANDMARK_NAMES[13] == 'RING_FINGER_MCP'
    assert jn.OPENPOSE_HAND_JOINT_NAMES[13] == 'ring1'
    back = openpose[:, list(jn.OPENPOSE_TO_MANO)]
    assert torch.equal(back, native)


def test_output_joint_names_follow_smplx():
    """127 joints without the face contour, 144 with; same order as smplx's JOINT_NAMES."""
    assert jn.smplx_output_joint_names(False) == tuple(SMPLX_PACKAGE_NAMES[:127])
    assert jn.smplx_output_joint_names(True) == tuple(SMPLX_PACKAGE_NAMES[:144])
    assert jn.SMPLX_VERTEX_KEYPOINT_NAMES[0] == 'nose'
    assert jn.SMPLX_VERTEX_KEYPOINT_NAMES[-1] == 'right_pinky'
    assert jn.SMPLX_CONTOUR_NAMES[0] == 'right_contour_1'
    hand = jn.smplx_hand_to_openpose('left')
    assert hand[:5] == ('left_wrist', 'left_thumb1', 'left_thumb2', 'left_thumb3', 'left_thumb')
    assert set(hand) <= set(jn.smplx_output_joint_names(False))


def test_ros_frame_names():
    assert jn.ros_frame_name('left_wrist') == 'l_wrist'
    assert jn.ros_frame_name('right_index1') == 'r_index1'
    assert jn.ros_frame_name('left_eye_smplhf') == 'l_eye'
    assert jn.ros_frame_name('spine3') == 'spine3'
    assert len(set(jn.SMPLX_ROS_FRAME_NAMES)) == 55
