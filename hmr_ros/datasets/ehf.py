"""EHF (Pavlakos et al., CVPR 2019, the SMPL-X paper) to canonical samples.

The paper evaluates whole-body reconstruction on EHF (HMR-Adapter section 4.1, Tables 1 and 6):
100 frames of one subject, each with an SMPL-X mesh registered to a 3D scan. The release is one
folder of files named by a frame number NN (01 ... 100):

    NN_img.jpg (or .png)  the 1600 x 1200 colour image
    NN_2Djnt.json         OpenPose output for it: people[0] with pose_keypoints_2d (BODY_25),
                          hand_left_keypoints_2d, hand_right_keypoints_2d (21 x (x, y, c) each)
                          and face_keypoints_2d
    NN_align.ply          the registered SMPL-X mesh (10,475 vertices) in the capture frame

There are no SMPL-X parameters. One camera serves all frames; its calibration (used alike by
the SMPL-X authors' tools and by Hand4Whole, OSX and Multi-HMR's EHF loaders) is K with
f = 1498.22426237 px and principal point (790.263706, 578.90334), and the capture-to-camera
transform x_cam = R x + t with R the rotation of axis-angle (-2.98747896, 0.01172457,
-0.05704687) and t = (-0.03609917, 0.43416458, 2.37101226) m. Samples keep the mesh in the
camera frame (so it projects onto the image), the OpenPose body and hand keypoints, the person
box around the projected mesh and hand boxes: around the projected hand vertices when the
SMPL-X hand vertex indices are given (from the licensed MANO_SMPLX_vertex_ids.pkl), otherwise
around the confident OpenPose hand keypoints. Face keypoints are not kept.

`read_ply_vertices` is a small reader for the vertex positions of ASCII and binary PLY files,
so no mesh library is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from hmr_ros.body_models.joint_names import NUM_HAND_KEYPOINTS, SIDES, Side
from hmr_ros.body_models.smplx_layers import SMPLX_NUM_VERTICES
from hmr_ros.datasets.sample import (
    KEYPOINT_LAYOUTS,
    Sample,
    keypoint_box_xyxy,
    read_image_rgb,
)
from hmr_ros.geometry.rotations import axis_angle_to_rotmat

DATASET_NAME = 'EHF'
EHF_INTRINSICS = np.array(
    ((1498.22426237, 0.0, 790.263706), (0.0, 1498.22426237, 578.90334), (0.0, 0.0, 1.0))
)
"""Camera matrix of all EHF frames, pixels."""
EHF_CAMERA_ROTATION_AA = (-2.98747896, 0.01172457, -0.05704687)
"""Axis-angle of R in x_cam = R x_capture + t."""
EHF_CAMERA_TRANSLATION_M = (-0.03609917, 0.43416458, 2.37101226)
"""t in x_cam = R x_capture + t, metres."""
HAND_KEYPOINT_MIN_CONFIDENCE = 0.1
"""OpenPose hand keypoints at or below this confidence do not shape the hand box."""

_IMAGE_SUFFIXES = ('_img.jpg', '_img.png')
_PLY_TYPES = {
    'char': 'i1',
    'int8': 'i1',
    'uchar': 'u1',
    'uint8': 'u1',
    'short': 'i2',
    'int16': 'i2',
    'ushort': 'u2',
    'uint16': 'u2',
    'int': 'i4',
    'int32': 'i4',
    'uint': 'u4',
    'uint32': 'u4',
    'float': 'f4',
    'float32': 'f4',
    'double': 'f8',
    'float64': 'f8',
}


def _read_ply_header(file: BinaryIO, path: Path) -> tuple[str, list[tuple[str, int, list[Any]]]]:
    """Format and elements [(name, count, [(property, type) or ('list', ...)])] of a PLY."""
    if file.readline().strip() != b'ply':
        raise ValueError(f'{path} is not a PLY file (no "ply" magic line)')
    fmt = ''
    elements: list[tuple[str, int, list[Any]]] = []
    for raw in file:
        words = raw.decode('ascii').split()
        if not words or words[0] in ('comment', 'obj_info'):
            continue
        if words[0] == 'end_header':
            return fmt, elements
        if words[0] == 'format':
            fmt = words[1]
        elif words[0] == 'element':
            elements.append((words[1], int(words[2]), []))
        elif words[0] == 'property' and elements:
            elements[-1][2].append(tuple(words[1:]))
    raise ValueError(f'{path}: PLY header has no end_header line')


def read_ply_vertices(path: str | Path) -> np.ndarray:
    """Vertex positions (x, y, z) of a PLY mesh, ASCII or binary (either byte order).

    Args:
        path: the .ply file.

    Returns:
        (V, 3) float64 positions, in the file's unit.

    Raises:
        ValueError: not a PLY file, no x/y/z vertex properties, or a binary file whose vertex
            element does not come first.
    """
    path = Path(path)
    with path.open('rb') as file:
        fmt, elements = _read_ply_header(file, path)
        names = [name for name, _, _ in elements]
        if 'vertex' not in names:
            raise ValueError(f'{path}: PLY has no vertex element')
        position = names.index('vertex')
        _, count, properties = elements[position]
        if any(p[0] == 'list' for p in properties):
            raise ValueError(f'{path}: list properties in the vertex element are not supported')
        columns = [p[1] for p in properties]
        if not {'x', 'y', 'z'} <= set(columns):
            raise ValueError(f'{path}: vertex element lacks x, y, z (has {columns})')
        if fmt == 'ascii':
            lines = file.read().decode('ascii').splitlines()
            skip = sum(n for _, n, _ in elements[:position])
            rows = [line.split() for line in lines[skip : skip + count]]
            table = np.array(rows, dtype=np.float64)
            if table.shape != (count, len(columns)):
                raise ValueError(f'{path}: expected {count} vertex lines of {len(columns)} values')
            return table[:, [columns.index(axis) for axis in ('x', 'y', 'z')]]
        byte_order = {'binary_little_endian': '<', 'binary_big_endian': '>'}.get(fmt)
        if byte_order is None:
            raise ValueError(f'{path}: unknown PLY format {fmt!r}')
        if position != 0:
            raise ValueError(f'{path}: binary PLY files must list the vertex element first')
        dtype = np.dtype([(p[1], byte_order + _PLY_TYPES[p[0]]) for p in properties])
        data = np.frombuffer(file.read(count * dtype.itemsize), dtype=dtype, count=count)
        return np.stack([data[axis].astype(np.float64) for axis in ('x', 'y', 'z')], axis=-1)


def ehf_camera_transform() -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), t (3,)) of x_cam = R x_capture + t for the EHF camera."""
    rotation = axis_angle_to_rotmat(torch.tensor(EHF_CAMERA_ROTATION_AA, dtype=torch.float64))
    return rotation.numpy(), np.array(EHF_CAMERA_TRANSLATION_M)


def _frame_number(path: Path) -> int:
    match = re.match(r'(\d+)_align\.ply$', path.name)
    return int(match.group(1)) if match else -1


def _openpose_person(path: Path) -> dict[str, Any] | None:
    with path.open() as file:
        people = json.load(file).get('people', [])
    return people[0] if people else None


def _keypoints(person: dict[str, Any], key: str) -> np.ndarray | None:
    values = person.get(key) or []
    if not values:
        return None
    if len(values) % 3:
        raise ValueError(f'OpenPose {key} has {len(values)} values, not (x, y, c) triples')
    return np.asarray(values, dtype=np.float64).reshape(-1, 3)


def _body_layout(count: int, path: Path) -> str:
    for name in ('openpose_body25', 'openpose_coco18'):
        if len(KEYPOINT_LAYOUTS[name]) == count:
            return name
    raise ValueError(f'{path}: {count} body keypoints match neither BODY_25 nor COCO-18')


def _project(points_cam: np.ndarray) -> np.ndarray:
    homogeneous = points_cam @ EHF_INTRINSICS.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def _box(points_px: np.ndarray) -> np.ndarray:
    return np.concatenate((points_px.min(axis=0), points_px.max(axis=0)))


def convert_ehf(
    root: str | Path, hand_vertex_indices: dict[Side, np.ndarray] | None = None
) -> list[Sample]:
    """Read the EHF folder into canonical samples, one per frame, in frame order.

    Args:
        root: the folder holding NN_img.jpg, NN_2Djnt.json and NN_align.ply.
        hand_vertex_indices: side -> SMPL-X vertex indices of that hand (from
            MANO_SMPLX_vertex_ids.pkl); when given, hand boxes come from the projected mesh.

    Returns:
        Samples with image, intrinsics, camera-frame SMPL-X vertices, person box and, where
        OpenPose found them, body and hand keypoints and hand boxes.

    Raises:
        FileNotFoundError: no frames in root, or a frame misses its image.
        ValueError: a mesh is not SMPL-X-sized or a keypoint file is malformed.
    """
    root = Path(root)
    meshes = sorted(root.glob('*_align.ply'), key=_frame_number)
    if not meshes:
        raise FileNotFoundError(f'no NN_align.ply files in {root}; point root at the EHF folder')
    rotation, translation = ehf_camera_transform()
    samples = []
    for mesh_path in meshes:
        frame = mesh_path.name[: -len('_align.ply')]
        image_path = next(
            (root / f'{frame}{s}' for s in _IMAGE_SUFFIXES if (root / f'{frame}{s}').is_file()),
            None,
        )
        if image_path is None:
            raise FileNotFoundError(f'frame {frame}: no {frame}_img.jpg or .png in {root}')
        height, width = read_image_rgb(image_path).shape[:2]
        vertices = read_ply_vertices(mesh_path) @ rotation.T + translation
        if vertices.shape != (SMPLX_NUM_VERTICES, 3):
            raise ValueError(
                f'{mesh_path} has {vertices.shape[0]} vertices; EHF meshes are SMPL-X '
                f'({SMPLX_NUM_VERTICES})'
            )
        projected = _project(vertices)
        fields: dict[str, Any] = {}
        keypoint_path = root / f'{frame}_2Djnt.json'
        person = _openpose_person(keypoint_path) if keypoint_path.is_file() else None
        if person is not None:
            body = _keypoints(person, 'pose_keypoints_2d')
            if body is not None:
                fields['body_keypoint_layout'] = _body_layout(len(body), keypoint_path)
                fields['body_keypoints_2d_px'] = body
            for side in SIDES:
                hand = _keypoints(person, f'hand_{side}_keypoints_2d')
                if hand is not None:
                    if hand.shape[0] != NUM_HAND_KEYPOINTS:
                        raise ValueError(
                            f'{keypoint_path}: {side} hand has {hand.shape[0]} points'
                        )
                    fields[f'{side}_hand_keypoints_2d_px'] = hand
                    box = keypoint_box_xyxy(hand, HAND_KEYPOINT_MIN_CONFIDENCE)
                    fields[f'{side}_hand_box_xyxy'] = box
        if hand_vertex_indices is not None:
            for side in SIDES:
                fields[f'{side}_hand_box_xyxy'] = _box(projected[hand_vertex_indices[side]])
        samples.append(
            Sample(
                dataset=DATASET_NAME,
                sample_id=f'{DATASET_NAME}/{frame}',
                image_size_wh=(width, height),
                image_path=str(image_path),
                intrinsics=EHF_INTRINSICS,
                person_box_xyxy=_box(projected),
                vertices_cam_m=vertices,
                vertices_model='smplx',
                **fields,
            )
        )
    return samples
