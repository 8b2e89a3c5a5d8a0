"""Spirals in OpenMesh's order, checked against hand derivations of OpenMesh's add_face rules."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.models.alternatives.spiral_indices import SpiralMesh, extract_spirals, spiral_indices

# A hexagon fan: centre 0, rim 1..6 counter-clockwise seen from +z, faces CCW (normals +z).
FAN_POINTS = np.array(
    [[0.0, 0.0, 0.0]] + [[np.cos(k * np.pi / 3), np.sin(k * np.pi / 3), 0.0] for k in range(6)]
)
FAN_FACES = np.array([[0, k, k % 6 + 1] for k in range(1, 7)])


def test_fan_centre_ring_matches_the_hand_derivation() -> None:
    """OpenMesh's add_face on this face order (hand derivation):

    face (0,1,2) is all new: v0's outgoing halfedge becomes 0->2 (case 3, isolated vertex,
    outer_next = opposite of 2->0). Each next face (0,k,k+1) reuses 0->k and sets v0's halfedge
    to 0->(k+1) (case 1, prev new). The last face (0,6,1) closes the fan with no new edge at v0,
    so adjust_outgoing_halfedge finds no boundary and keeps 0->6. vv(0) starts there and turns
    clockwise, h <- next(opposite(h)): 0->6, then next(6->0) = 0->5 in face (0,5,6), ... so
    6, 5, 4, 3, 2, 1 (clockwise seen from the normal side, as OpenMesh documents vv).
    """
    mesh = SpiralMesh(FAN_POINTS, FAN_FACES)
    assert mesh.refused_faces == []
    assert mesh.vertex_vertices(0) == [6, 5, 4, 3, 2, 1]


def test_fan_boundary_vertex_starts_on_its_boundary_halfedge() -> None:
    """Rim vertex 1: its last update (face (0,6,1), case 1) sets it to 1->6, the boundary
    halfedge (OpenMesh keeps a boundary vertex's halfedge on the boundary). Clockwise:
    next(6->1) = 1->0 in face (0,6,1), next(0->1) = 1->2 in face (0,1,2), then the boundary
    halfedge 2->1 leads back to 1->6: vv(1) = 6, 0, 2."""
    mesh = SpiralMesh(FAN_POINTS, FAN_FACES)
    assert mesh.vertex_vertices(1) == [6, 0, 2]
    assert mesh.vertex_vertices(4) == [3, 0, 5]  # same rules: 4->3 boundary, then 0, then 5


def test_fan_spirals_follow_the_ring_walk_of_the_official_code() -> None:
    """Spiral of 1 with L = 7: [1], ring 6, 0, 2; next ring: for 6 (vv(6) = 5, 0, 1) after
    its first last-ring neighbour 0 -> 1 (taken), wrap -> 5; for 0 (vv(0) = 6..1) after 6:
    5 (taken), 4, 3; so 1, 6, 0, 2, 5, 4, 3."""
    assert extract_spirals(FAN_POINTS, FAN_FACES, 7)[1] == [1, 6, 0, 2, 5, 4, 3]


def test_rings_exhausted_fall_back_to_nearest_vertices() -> None:
    """The official code replaces the spiral by the L nearest vertices (KD-tree, the vertex
    itself first) when the rings run out: 8 > 7 vertices can't be reached, 7 = all of them."""
    spiral = extract_spirals(FAN_POINTS, FAN_FACES, 7)[0]
    # Centre 0: ring 6..1 already holds every vertex, so the next ring is empty -> fallback:
    # the centre (distance 0) first, then the rim (distance 1), no longer in ring order.
    assert spiral[0] == 0 and sorted(spiral[1:]) == [1, 2, 3, 4, 5, 6]
    assert spiral != [0, 6, 5, 4, 3, 2, 1]
    with pytest.raises(ValueError, match='at least 8'):
        extract_spirals(FAN_POINTS, FAN_FACES, 8)


def _octahedron() -> tuple[np.ndarray, np.ndarray]:
    points = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    faces = []
    for x in (0, 1):
        for y in (2, 3):
            for z in (4, 5):
                tri = [x, y, z]
                normal = np.cross(points[y] - points[x], points[z] - points[x])
                if normal @ points[tri].mean(0) < 0:  # orient outwards (CCW seen from outside)
                    tri = [x, z, y]
                faces.append(tri)
    return points, np.array(faces)


def test_closed_mesh_one_rings_are_clockwise_fans() -> None:
    """Clockwise from outside: consecutive neighbours a, b of v mean h = v->a, opposite a->v
    lies in the face a->v->b, i.e. (v, b, a) is a face of the mesh, for every pair."""
    points, faces = _octahedron()
    mesh = SpiralMesh(points, faces)
    face_set = {tuple(np.roll(f, k)) for f in faces.tolist() for k in range(3)}
    for v in range(len(points)):
        ring = mesh.vertex_vertices(v)
        neighbours = {int(n) for f in faces for n in f if v in f} - {v}
        assert set(ring) == neighbours and len(ring) == 4
        for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
            assert (v, b, a) in face_set


def test_complex_edge_faces_are_refused_like_openmesh() -> None:
    """A third face on edge 0-1 (already between two faces) is a complex edge: refused."""
    points = np.zeros((5, 3))
    faces = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    assert SpiralMesh(points, faces).refused_faces == [2]


def test_spirals_are_deterministic_and_start_with_the_vertex_and_its_ring() -> None:
    rng = np.random.default_rng(3)
    grid = 9
    points = np.array([[i, j, rng.normal() * 0.1] for i in range(grid) for j in range(grid)])
    faces = []
    for i in range(grid - 1):
        for j in range(grid - 1):
            a, b, c, d = i * grid + j, (i + 1) * grid + j, (i + 1) * grid + j + 1, i * grid + j + 1
            faces += [[a, b, c], [a, c, d]]
    first = spiral_indices(points, np.array(faces), 27)
    second = spiral_indices(points, np.array(faces), 27)
    assert first.shape == (grid * grid, 27) and torch.equal(first, second)
    mesh = SpiralMesh(points, np.array(faces))
    centre = 4 * grid + 4
    ring = mesh.vertex_vertices(centre)
    assert first[centre, 0] == centre and first[centre, 1 : 1 + len(ring)].tolist() == ring
    assert len(set(first[centre].tolist())) == 27


@pytest.mark.skipif(
    not os.environ.get('HMR_ROS_CMR_TRANSFORM'),
    reason='set HMR_ROS_CMR_TRANSFORM to the user-supplied template/transform.pkl',
)
def test_published_hierarchy_builds_full_spirals_without_refused_faces() -> None:
    from hmr_ros.checkpoints.cmr_layout import load_cmr_transforms

    hierarchy = load_cmr_transforms(Path(os.environ['HMR_ROS_CMR_TRANSFORM']))
    for vertices, faces in zip(hierarchy.vertices[:-1], hierarchy.faces[:-1], strict=True):
        mesh = SpiralMesh(vertices, faces)
        assert mesh.refused_faces == []
        spirals = spiral_indices(vertices, faces, 27)
        assert spirals.shape == (len(vertices), 27)
        assert torch.equal(spirals[:, 0], torch.arange(len(vertices)))


def _circulator_meshes() -> list[tuple[np.ndarray, np.ndarray]]:
    meshes = [(FAN_POINTS, FAN_FACES), _octahedron()]
    rng = np.random.default_rng(11)
    grid = 7
    points = np.array([[i, j, 0.0] for i in range(grid) for j in range(grid)])
    faces = []
    for i in range(grid - 1):
        for j in range(grid - 1):
            a, b, c, d = i * grid + j, (i + 1) * grid + j, (i + 1) * grid + j + 1, i * grid + j + 1
            faces += [[a, b, c], [a, c, d]] if rng.random() < 0.5 else [[a, b, d], [b, c, d]]
    meshes.append((points, np.array(faces)[rng.permutation(len(faces))]))  # shuffled order
    if os.environ.get('HMR_ROS_CMR_TRANSFORM'):
        from hmr_ros.checkpoints.cmr_layout import load_cmr_transforms

        hierarchy = load_cmr_transforms(os.environ['HMR_ROS_CMR_TRANSFORM'])
        meshes += list(zip(hierarchy.vertices[:-1], hierarchy.faces[:-1], strict=True))
    return meshes


def test_circulator_order_equals_openmesh_where_it_is_installed() -> None:
    """The reference itself: OpenMesh's TriMesh(points, faces) and its vv circulator (the
    official code's), on several meshes; skipped where openmesh is not installed (here)."""
    om = pytest.importorskip('openmesh')
    for points, faces in _circulator_meshes():
        reference = om.TriMesh(np.asarray(points, dtype=np.float64), np.asarray(faces))
        ours = SpiralMesh(points, faces)
        for v in range(len(points)):
            expected = [vh.idx() for vh in reference.vv(om.VertexHandle(v))]
            assert ours.vertex_vertices(v) == expected, v
