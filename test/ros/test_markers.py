"""Marker content built from PersonArray (hmr_ros/ros/markers.py), checked without spinning."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import require_ros_modules

FRAME = 'camera_color_optical_frame'
NUM_JOINTS = 65  # 55 SMPL-X joints + 10 fingertips (Person.msg)


@pytest.fixture(autouse=True)
def _ros_modules() -> None:
    require_ros_modules()


def _person(person_id: str, joints: np.ndarray, vertices: np.ndarray | None = None, state=None):
    from hmr_ros.msg import Person

    person = Person()
    person.id = person_id
    person.tracking_state = Person.TRACKED if state is None else state
    person.joints = np.asarray(joints, dtype=np.float32).ravel()
    if vertices is not None:
        person.vertices = np.asarray(vertices, dtype=np.float32).ravel()
    person.root_pose.position.x = float(joints[0, 0])
    person.root_pose.position.y = float(joints[0, 1])
    person.root_pose.position.z = float(joints[0, 2])
    return person


def _persons(*persons, frame_id: str = FRAME):
    from hmr_ros.msg import PersonArray

    message = PersonArray()
    message.header.frame_id = frame_id
    message.header.stamp.sec = 1_700_000_000
    message.header.stamp.nanosec = 250_000_000
    message.persons = list(persons)
    return message


def _joints(offset_m: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    joints = rng.uniform(-0.5, 0.5, size=(NUM_JOINTS, 3)).astype(np.float32)
    joints[:, 2] += 2.5 + offset_m
    return joints


def _xyz(points) -> np.ndarray:
    return np.array([(p.x, p.y, p.z) for p in points], dtype=np.float64).reshape(-1, 3)


def test_id_color_is_stable_and_distinguishes_ids() -> None:
    from hmr_ros.ros.markers import id_color

    first = id_color('7')
    assert first == id_color('7')
    assert all(0.0 <= channel <= 1.0 for channel in first)
    colors = {id_color(str(i)) for i in range(20)}
    assert len(colors) == 20


def test_skeleton_markers_start_with_delete_all_and_carry_the_header() -> None:
    from visualization_msgs.msg import Marker

    from hmr_ros.ros.markers import SKELETON_NAMESPACES, MarkerStyle, skeleton_markers

    persons = _persons(_person('3', _joints()), _person('9', _joints(1.0)))
    style = MarkerStyle(lifetime_s=0.0667)
    array = skeleton_markers(persons, np.arange(-1, NUM_JOINTS - 1), style)
    deletes = array.markers[: len(SKELETON_NAMESPACES)]
    assert [m.action for m in deletes] == [Marker.DELETEALL] * len(SKELETON_NAMESPACES)
    assert [m.ns for m in deletes] == list(SKELETON_NAMESPACES)
    body = array.markers[len(SKELETON_NAMESPACES) :]
    # Three markers per person: joints, bones, label.
    assert [m.type for m in body] == [
        Marker.SPHERE_LIST,
        Marker.LINE_LIST,
        Marker.TEXT_VIEW_FACING,
    ] * 2
    for marker in array.markers:
        assert marker.header.frame_id == FRAME
    for marker in body:
        assert marker.header.stamp == persons.header.stamp
        assert marker.lifetime.sec == 0
        assert marker.lifetime.nanosec == 66_700_000
    assert [m.id for m in body] == [0, 0, 0, 1, 1, 1]
    assert body[2].text == '3'
    assert body[5].text == '9'


def test_skeleton_bones_join_each_joint_to_its_parent() -> None:
    """Parents (-1, 0, 1, 1): bones 0-1, 1-2, 1-3, i.e. 6 LINE_LIST points in that order."""
    from hmr_ros.ros.markers import MarkerStyle, skeleton_markers

    joints = np.array([[0, 0, 2], [0, -0.5, 2], [0.2, -0.7, 2], [-0.2, -0.7, 2]], np.float32)
    array = skeleton_markers(_persons(_person('1', joints)), [-1, 0, 1, 1], MarkerStyle())
    spheres, bones = array.markers[3], array.markers[4]
    np.testing.assert_allclose(_xyz(spheres.points), joints, rtol=1e-6)
    np.testing.assert_allclose(_xyz(bones.points), joints[[0, 1, 1, 2, 1, 3]], rtol=1e-6)


def test_non_finite_joints_drop_their_sphere_and_bones() -> None:
    """Joint 1 is NaN: its sphere goes, and so do bones 0-1 and 1-2, leaving only 0-3."""
    from hmr_ros.ros.markers import MarkerStyle, skeleton_markers

    joints = np.array([[0, 0, 2], [np.nan, 0, 2], [0.2, -0.7, 2], [-0.2, -0.7, 2]], np.float32)
    array = skeleton_markers(_persons(_person('1', joints)), [-1, 0, 1, 0], MarkerStyle())
    spheres, bones = array.markers[3], array.markers[4]
    assert len(spheres.points) == 3
    np.testing.assert_allclose(_xyz(bones.points), [(0, 0, 2), (-0.2, -0.7, 2)], rtol=1e-6)


def test_label_sits_above_the_head_along_the_body_axis() -> None:
    """Pelvis (0, 0, 3), head (0, -0.6, 3): 'up' is -y, so the label is at y = -0.6 - offset."""
    from hmr_ros.ros.markers import MarkerStyle, skeleton_markers

    joints = np.zeros((NUM_JOINTS, 3), np.float32)
    joints[:, 2] = 3.0
    joints[15] = (0.0, -0.6, 3.0)  # SMPL-X 'head'
    style = MarkerStyle(label_offset_m=0.25)
    label = skeleton_markers(_persons(_person('4', joints)), [], style).markers[5]
    position = label.pose.position
    assert (position.x, position.y, position.z) == pytest.approx((0.0, -0.85, 3.0))


def test_lost_persons_vanish_and_unconfirmed_ones_are_faint() -> None:
    from hmr_ros.msg import Person
    from hmr_ros.ros.markers import MarkerStyle, skeleton_markers

    persons = _persons(
        _person('1', _joints(), state=Person.LOST),
        _person('2', _joints(), state=Person.PREDICTED),
    )
    style = MarkerStyle(unconfirmed_alpha=0.3)
    array = skeleton_markers(persons, [], style)
    body = array.markers[3:]
    assert len(body) == 3
    assert {m.id for m in body} == {1}
    assert body[0].color.a == pytest.approx(0.3)
    assert body[2].text == '2 (predicted)'


def test_default_parents_follow_smplx_and_leave_fingertips_unjoined() -> None:
    from hmr_ros.body_models.joint_names import SMPLX_PARENTS
    from hmr_ros.ros.markers import default_joint_parents

    parents = default_joint_parents(NUM_JOINTS)
    assert parents[:55].tolist() == list(SMPLX_PARENTS)
    assert (parents[55:] == -1).all()
    assert default_joint_parents(3).tolist() == list(SMPLX_PARENTS[:3])


def test_fingertips_join_their_last_finger_segment() -> None:
    """'left_thumb' (smplx name) joins 'left_thumb3'; 'right_index_tip' joins 'right_index3';
    a tip whose finger is not listed and the root keep -1."""
    from hmr_ros.ros.markers import skeleton_parents

    names = ['pelvis', 'left_thumb3', 'right_index3', 'left_thumb', 'right_index_tip', 'left_ring']
    parents = skeleton_parents(names, [-1, 0, 0, -1, -1, -1])
    assert parents.tolist() == [-1, 0, 0, 1, 2, -1]
    with pytest.raises(ValueError, match='joint_parents'):
        skeleton_parents(names, [-1])


def test_faces_from_topology_rejects_bad_indices() -> None:
    from hmr_ros.msg import MeshTopology
    from hmr_ros.ros.markers import faces_from_topology

    topology = MeshTopology(num_vertices=4, faces=[0, 1, 2, 1, 2, 3])
    assert faces_from_topology(topology).tolist() == [[0, 1, 2], [1, 2, 3]]
    with pytest.raises(ValueError, match='multiple of 3'):
        faces_from_topology(MeshTopology(num_vertices=4, faces=[0, 1]))
    with pytest.raises(ValueError, match='num_vertices'):
        faces_from_topology(MeshTopology(num_vertices=3, faces=[0, 1, 3]))


def _mesh(num_vertices: int, num_faces: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vertices = rng.uniform(-1, 1, size=(num_vertices, 3)).astype(np.float32)
    faces = rng.integers(0, num_vertices, size=(num_faces, 3))
    return vertices, faces


def test_mesh_markers_list_three_corners_per_face() -> None:
    """Face (2, 0, 1) gives the points v2, v0, v1, in that order."""
    from visualization_msgs.msg import Marker

    from hmr_ros.ros.markers import MESH_NAMESPACE, MarkerStyle, mesh_markers

    vertices = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1]], np.float32)
    faces = np.array([[2, 0, 1]])
    persons = _persons(_person('5', _joints(), vertices), _person('6', _joints()))
    array = mesh_markers(persons, faces, 3, MarkerStyle(mesh_alpha=0.5))
    assert array.markers[0].action == Marker.DELETEALL
    assert array.markers[0].ns == MESH_NAMESPACE
    assert len(array.markers) == 2  # person '6' has no vertices
    marker = array.markers[1]
    assert marker.type == Marker.TRIANGLE_LIST
    assert marker.header.stamp == persons.header.stamp
    assert marker.color.a == pytest.approx(0.5)
    assert [(p.x, p.y, p.z) for p in marker.points] == [(0, 1, 1), (0, 0, 1), (1, 0, 1)]


@pytest.mark.parametrize('frame_id', ['', 'a', 'ab', 'abc', 'abcd', 'abcde', FRAME])
def test_serialized_mesh_markers_equal_the_reference(frame_id: str) -> None:
    """Frame ids of several lengths move the points to both 8-byte alignments."""
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray

    from hmr_ros.msg import Person
    from hmr_ros.ros.markers import MarkerStyle, mesh_markers, serialize_mesh_markers

    vertices_a, faces = _mesh(50, 40, seed=2)
    vertices_b, _ = _mesh(50, 40, seed=3)
    persons = _persons(
        _person('1', _joints(), vertices_a),
        _person('2', _joints(), vertices_b, state=Person.LOST),
        _person('3', _joints()),
        _person('4', _joints(), vertices_b, state=Person.PREDICTED),
        frame_id=frame_id,
    )
    style = MarkerStyle()
    reference = mesh_markers(persons, faces, 50, style)
    fast = serialize_mesh_markers(persons, faces, 50, style)
    decoded = deserialize_message(fast, MarkerArray)
    # Compared after a round trip (float32 colours), and not byte by byte: CDR leaves padding
    # bytes unspecified.
    reference_bytes = serialize_message(reference)
    assert decoded == deserialize_message(reference_bytes, MarkerArray)
    assert len(fast) == len(reference_bytes)
    assert len(decoded.markers[2].points) == 120
    assert decoded.markers[2].points[7].y == pytest.approx(float(vertices_b[faces[2, 1], 1]))


def test_serialized_mesh_markers_without_meshes_equal_the_reference() -> None:
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray

    from hmr_ros.ros.markers import MarkerStyle, mesh_markers, serialize_mesh_markers

    persons = _persons(_person('1', _joints()))
    faces = np.zeros((0, 3), np.int64)
    style = MarkerStyle()
    fast = serialize_mesh_markers(persons, faces, 10, style)
    reference = serialize_message(mesh_markers(persons, faces, 10, style))
    assert deserialize_message(fast, MarkerArray) == deserialize_message(reference, MarkerArray)


def test_full_smplx_mesh_fast_path_matches_reference(body_model_dir) -> None:
    """One full SMPL-X mesh (10,475 vertices, 20,908 faces of the generated model file)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray

    from hmr_ros.ros.markers import MarkerStyle, mesh_markers, serialize_mesh_markers

    with np.load(body_model_dir / 'SMPLX_NEUTRAL.npz') as model:
        faces = model['f'].astype(np.int64)
        vertices = model['v_template'].astype(np.float32) + np.float32([0, 0, 3])
    assert (vertices.shape, faces.shape) == ((10475, 3), (20908, 3))
    persons = _persons(_person('1', _joints(), vertices))
    style = MarkerStyle()
    start = time.perf_counter()
    fast = serialize_mesh_markers(persons, faces, 10475, style)
    fast_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    reference = mesh_markers(persons, faces, 10475, style)
    reference_bytes = serialize_message(reference)
    reference_ms = (time.perf_counter() - start) * 1e3
    decoded = deserialize_message(fast, MarkerArray)
    assert len(fast) == len(reference_bytes) > 20908 * 3 * 24
    np.testing.assert_array_equal(
        _xyz(decoded.markers[1].points), vertices.astype(np.float64)[faces.ravel()]
    )
    assert decoded == deserialize_message(reference_bytes, MarkerArray)
    # Timings are printed for the record (speed is never asserted: docs/development.md).
    print(f'SMPL-X mesh marker: fast {fast_ms:.1f} ms, reference {reference_ms:.1f} ms')
