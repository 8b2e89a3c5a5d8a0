"""Spiral neighbour sequences of CMR's mesh decoder, in OpenMesh's order (docs/cmr.md).

CMR's SpiralConv gathers, for every vertex, the features of a fixed list of L neighbours. The
official code (SeanChenxy/HandMesh, ``utils/generate_spiral_seq.py``) does not store those lists
in its checkpoints: it recomputes them at start from each level's vertices and faces with
OpenMesh, walking rings in OpenMesh's vertex-vertex circulator order. The released weights are
tied to that exact order, so this module rebuilds it without OpenMesh (which is not installable
here) by replaying the parts of OpenMesh that decide it:

1. ``om.TriMesh(points, faces)`` adds the vertices, then each face in file order with
   ``PolyConnectivity::add_face``. That function links halfedges and sets each vertex's
   outgoing halfedge (``halfedge_handle(v)``) by fixed rules, including the relinking of
   boundary loops and ``adjust_outgoing_halfedge`` (a boundary vertex gets a boundary
   outgoing halfedge); faces that would make a complex vertex or edge are refused (skipped).
   ``_HalfedgeMesh.add_face`` replays it step for step. Edge ``e`` owns halfedges ``2e``
   (start -> end) and ``2e + 1`` (its opposite), as in OpenMesh's ArrayKernel.
2. ``mesh.vv(v)`` starts at ``halfedge_handle(v)`` and turns clockwise:
   ``h <- next(opposite(h))`` (OpenMesh's ``cw_rotated_halfedge_handle``), yielding the target
   vertex of each outgoing halfedge, until it is back at the start.
3. The spiral of v0 is v0, its one-ring in that order, then ring after ring: for each vertex of
   the last ring, its neighbours after the first one that lies in the last ring (wrapping
   around), skipping vertices already taken. When the rings run out before L vertices, the
   official code uses the L nearest vertices (Euclidean, scikit-learn's KDTree) instead.

Only the fallback can differ from the official code: scikit-learn orders equidistant vertices
in its own way, this module by vertex index (stable sort). The published hand template reaches
L = 27 on every level without it (tested when the user supplies the template).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ['SpiralMesh', 'extract_spirals', 'spiral_indices']

_INVALID = -1


class _HalfedgeMesh:
    """The halfedge connectivity OpenMesh builds for a triangle soup (module docstring, 1-2).

    Attributes:
        num_vertices: vertex count.
        vertex_halfedge: outgoing halfedge per vertex (-1: isolated).
        to_vertex, next_halfedge, prev_halfedge, face: per-halfedge arrays (-1: none).
        refused_faces: indices of the faces OpenMesh's add_face would refuse.
    """

    def __init__(self, num_vertices: int) -> None:
        self.num_vertices = num_vertices
        self.vertex_halfedge = [_INVALID] * num_vertices
        self.to_vertex: list[int] = []
        self.next_halfedge: list[int] = []
        self.prev_halfedge: list[int] = []
        self.face: list[int] = []
        self.num_faces = 0
        self.refused_faces: list[int] = []

    # -- primitive queries (OpenMesh names) ----------------------------------------------------

    @staticmethod
    def opposite(h: int) -> int:
        return h ^ 1

    def is_boundary_halfedge(self, h: int) -> bool:
        return self.face[h] == _INVALID

    def is_boundary_vertex(self, v: int) -> bool:
        h = self.vertex_halfedge[v]
        return h == _INVALID or self.face[h] == _INVALID

    def cw_rotated(self, h: int) -> int:
        return self.next_halfedge[self.opposite(h)]

    def outgoing(self, v: int) -> list[int]:
        """Outgoing halfedges of v, clockwise from ``halfedge_handle(v)`` (OpenMesh's voh)."""
        start = self.vertex_halfedge[v]
        if start == _INVALID:
            return []
        result = [start]
        h = self.cw_rotated(start)
        while h != start:
            result.append(h)
            h = self.cw_rotated(h)
            if len(result) > len(self.to_vertex):  # broken links would loop forever
                raise RuntimeError(f'halfedge loop around vertex {v} does not close')
        return result

    def vertex_vertices(self, v: int) -> list[int]:
        """OpenMesh's ``vv(v)``: one-ring of v in clockwise circulator order."""
        return [self.to_vertex[h] for h in self.outgoing(v)]

    def find_halfedge(self, start: int, end: int) -> int:
        for h in self.outgoing(start):
            if self.to_vertex[h] == end:
                return h
        return _INVALID

    # -- mutation (OpenMesh's ArrayKernel / PolyConnectivity) ---------------------------------

    def _set_next(self, h: int, n: int) -> None:
        self.next_halfedge[h] = n
        self.prev_halfedge[n] = h

    def _new_edge(self, start: int, end: int) -> int:
        h = len(self.to_vertex)
        self.to_vertex += [end, start]
        self.next_halfedge += [_INVALID, _INVALID]
        self.prev_halfedge += [_INVALID, _INVALID]
        self.face += [_INVALID, _INVALID]
        return h

    def _adjust_outgoing_halfedge(self, v: int) -> None:
        for h in self.outgoing(v):
            if self.is_boundary_halfedge(h):
                self.vertex_halfedge[v] = h
                return

    def add_face(self, vertices: Sequence[int], face_index: int) -> bool:
        """OpenMesh's ``PolyConnectivity::add_face``; False (nothing changed) when refused."""
        n = len(vertices)
        halfedge = [_INVALID] * n
        is_new = [False] * n
        needs_adjust = [False] * n
        for i in range(n):
            if not self.is_boundary_vertex(vertices[i]):
                self.refused_faces.append(face_index)  # complex vertex
                return False
            halfedge[i] = self.find_halfedge(vertices[i], vertices[(i + 1) % n])
            is_new[i] = halfedge[i] == _INVALID
            if not is_new[i] and not self.is_boundary_halfedge(halfedge[i]):
                self.refused_faces.append(face_index)  # complex edge
                return False

        next_cache: list[tuple[int, int]] = []
        for i in range(n):
            ii = (i + 1) % n
            if is_new[i] or is_new[ii]:
                continue
            inner_prev, inner_next = halfedge[i], halfedge[ii]
            if self.next_halfedge[inner_prev] == inner_next:
                continue
            # Relink the patch between the two old edges into a free boundary gap.
            outer_prev = self.opposite(inner_next)
            boundary_prev = outer_prev
            while True:
                boundary_prev = self.opposite(self.next_halfedge[boundary_prev])
                if self.is_boundary_halfedge(boundary_prev):
                    break
            boundary_next = self.next_halfedge[boundary_prev]
            if boundary_prev == inner_prev:
                self.refused_faces.append(face_index)  # patch re-linking failed
                return False
            patch_start = self.next_halfedge[inner_prev]
            patch_end = self.prev_halfedge[inner_next]
            next_cache += [
                (boundary_prev, patch_start),
                (patch_end, boundary_next),
                (inner_prev, inner_next),
            ]

        for i in range(n):
            if is_new[i]:
                halfedge[i] = self._new_edge(vertices[i], vertices[(i + 1) % n])

        face = self.num_faces
        self.num_faces += 1
        for i in range(n):
            ii = (i + 1) % n
            vh = vertices[ii]
            inner_prev, inner_next = halfedge[i], halfedge[ii]
            kind = (1 if is_new[i] else 0) | (2 if is_new[ii] else 0)
            if kind:
                outer_prev = self.opposite(inner_next)
                outer_next = self.opposite(inner_prev)
                if kind == 1:  # prev is new, next is old
                    boundary_prev = self.prev_halfedge[inner_next]
                    next_cache.append((boundary_prev, outer_next))
                    self.vertex_halfedge[vh] = outer_next
                elif kind == 2:  # next is new, prev is old
                    boundary_next = self.next_halfedge[inner_prev]
                    next_cache.append((outer_prev, boundary_next))
                    self.vertex_halfedge[vh] = boundary_next
                elif self.vertex_halfedge[vh] == _INVALID:  # both new, vertex isolated
                    self.vertex_halfedge[vh] = outer_next
                    next_cache.append((outer_prev, outer_next))
                else:  # both new, vertex already on a boundary
                    boundary_next = self.vertex_halfedge[vh]
                    boundary_prev = self.prev_halfedge[boundary_next]
                    next_cache += [(boundary_prev, outer_next), (outer_prev, boundary_next)]
                next_cache.append((inner_prev, inner_next))
            else:
                needs_adjust[ii] = self.vertex_halfedge[vh] == inner_next
            self.face[halfedge[i]] = face

        for h, n_h in next_cache:
            self._set_next(h, n_h)
        for i in range(n):
            if needs_adjust[i]:
                self._adjust_outgoing_halfedge(vertices[i])
        return True


class SpiralMesh:
    """A triangle mesh with OpenMesh's connectivity, as ``om.TriMesh(points, faces)`` builds it.

    Args:
        points: (V, 3) vertex positions (used only by the nearest-vertex fallback).
        faces: (F, 3) vertex indices, in the order they are added.
    """

    def __init__(self, points: np.ndarray, faces: np.ndarray) -> None:
        points = np.asarray(points, dtype=np.float64)
        faces = np.asarray(faces)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f'points must be (V, 3); got {points.shape}')
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f'faces must be (F, 3) integers; got {faces.shape} {faces.dtype}')
        if faces.size and (faces.min() < 0 or faces.max() >= len(points)):
            raise ValueError(f'face indices must lie in [0, {len(points)}); got {faces.max()}')
        self.points = points
        self._mesh = _HalfedgeMesh(len(points))
        for index, face in enumerate(faces.tolist()):
            self._mesh.add_face(face, index)

    @property
    def refused_faces(self) -> list[int]:
        """Faces OpenMesh refuses (complex vertex/edge), left out exactly as it does."""
        return list(self._mesh.refused_faces)

    def vertex_vertices(self, vertex: int) -> list[int]:
        """One-ring of ``vertex`` in OpenMesh's ``vv`` (clockwise circulator) order."""
        return self._mesh.vertex_vertices(vertex)

    def _next_ring(self, last_ring: list[int], taken: list[int]) -> list[int]:
        seen = set(last_ring) | set(taken)
        ring: list[int] = []
        for vertex in last_ring:
            neighbours = self.vertex_vertices(vertex)
            # Start just after the first neighbour in the last ring, wrap around; a vertex with
            # no neighbour in the last ring is walked from its circulator start.
            first = next((i for i, n in enumerate(neighbours) if n in last_ring), None)
            order = neighbours if first is None else neighbours[first + 1 :] + neighbours[:first]
            for n in order:
                if n not in seen:
                    seen.add(n)
                    ring.append(n)
        return ring

    def spiral(self, vertex: int, length: int, dilation: int = 1) -> list[int]:
        """Spiral of one vertex (module docstring, 3), ``length`` entries."""
        target = length * dilation
        spiral = [vertex]
        last_ring = self.vertex_vertices(vertex)
        next_ring = self._next_ring(last_ring, spiral)
        spiral += last_ring
        while len(spiral) + len(next_ring) < target and next_ring:
            last_ring = next_ring
            next_ring = self._next_ring(last_ring, spiral)
            spiral += last_ring
        if next_ring:
            spiral += next_ring
        else:  # rings exhausted: the official code takes the nearest vertices instead
            distance = np.linalg.norm(self.points - self.points[vertex], axis=1)
            spiral = np.argsort(distance, kind='stable')[:target].tolist()
        if len(spiral) < target:
            raise ValueError(
                f'vertex {vertex}: a spiral of {target} needs at least {target} vertices; the '
                f'mesh has {len(self.points)}'
            )
        return spiral[:target:dilation]


def extract_spirals(
    points: np.ndarray, faces: np.ndarray, length: int, dilation: int = 1
) -> list[list[int]]:
    """Spirals of every vertex in index order, as CMR's ``extract_spirals`` computes them."""
    if length < 1 or dilation < 1:
        raise ValueError(f'length and dilation must be >= 1; got {length}, {dilation}')
    mesh = SpiralMesh(points, faces)
    return [mesh.spiral(v, length, dilation) for v in range(len(mesh.points))]


def spiral_indices(
    points: np.ndarray, faces: np.ndarray, length: int, dilation: int = 1
) -> torch.Tensor:
    """(V, length) int64 spiral indices (CMR's ``preprocess_spiral``)."""
    return torch.tensor(extract_spirals(points, faces, length, dilation), dtype=torch.long)
