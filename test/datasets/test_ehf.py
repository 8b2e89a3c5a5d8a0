"""EHF conversion from tiny files written in the release's layout (PLY, OpenPose JSON, images)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hmr_ros.datasets.ehf import EHF_INTRINSICS, convert_ehf, read_ply_vertices

NUM_VERTICES = 10475
IMAGE_HW = (30, 40)
ROTATION_AA = np.array([-2.98747896, 0.01172457, -0.05704687])
TRANSLATION_M = np.array([-0.03609917, 0.43416458, 2.37101226])


def _write_ply(path: Path, vertices: np.ndarray, fmt: str) -> None:
    """A PLY with x, y, z, normals and two triangles, in the given format."""
    header = [
        'ply',
        f'format {fmt} 1.0',
        'comment written by the hmr_ros tests',
        f'element vertex {len(vertices)}',
        *(
            f'property {kind} {name}'
            for kind, name in (
                ('float', 'x'),
                ('float', 'y'),
                ('float', 'z'),
                ('float', 'nx'),
                ('float', 'ny'),
                ('float', 'nz'),
            )
        ),
        'element face 2',
        'property list uchar int vertex_indices',
        'end_header',
    ]
    normals = np.zeros_like(vertices)
    if fmt == 'ascii':
        body = [' '.join(f'{v:.9g}' for v in row) for row in np.hstack((vertices, normals))]
        body += ['3 0 1 2', '3 2 3 0']
        path.write_text('\n'.join(header + body) + '\n')
        return
    order = '<' if fmt == 'binary_little_endian' else '>'
    table = np.hstack((vertices, normals)).astype(f'{order}f4')
    faces = b''.join(
        np.array([3], 'u1').tobytes() + np.array(face, f'{order}i4').tobytes()
        for face in ((0, 1, 2), (2, 3, 0))
    )
    path.write_bytes(('\n'.join(header) + '\n').encode('ascii') + table.tobytes() + faces)


def _openpose(rng: np.random.Generator, body_points: int = 25) -> dict:
    def points(count: int) -> list[float]:
        xy = rng.uniform(100.0, 1000.0, size=(count, 2))
        confidence = rng.uniform(0.5, 1.0, size=(count, 1))
        return np.hstack((xy, confidence)).reshape(-1).tolist()

    left = np.array(points(21)).reshape(21, 3)
    left[4] = (5000.0, 5000.0, 0.0)  # an undetected keypoint: must not widen the box
    return {
        'version': 1.3,
        'people': [
            {
                'pose_keypoints_2d': points(body_points),
                'face_keypoints_2d': points(70),
                'hand_left_keypoints_2d': left.reshape(-1).tolist(),
                'hand_right_keypoints_2d': points(21),
            }
        ],
    }


def _write_frame(root: Path, frame: str, rng: np.random.Generator, fmt: str) -> dict:
    """Write NN_img.jpg, NN_2Djnt.json, NN_align.ply; return the camera-frame vertices etc."""
    rotation = cv2.Rodrigues(ROTATION_AA)[0]
    vertices_cam = np.array([0.0, 0.0, 3.0]) + rng.normal(scale=0.3, size=(NUM_VERTICES, 3))
    vertices_capture = (vertices_cam - TRANSLATION_M) @ rotation  # R^T (x - t), row vectors
    _write_ply(root / f'{frame}_align.ply', vertices_capture, fmt)
    openpose = _openpose(rng)
    (root / f'{frame}_2Djnt.json').write_text(json.dumps(openpose))
    cv2.imwrite(str(root / f'{frame}_img.jpg'), np.zeros((*IMAGE_HW, 3), np.uint8))
    return {'vertices_cam': vertices_cam, 'openpose': openpose['people'][0]}


def _project(points: np.ndarray) -> np.ndarray:
    """u = f x / z + cx with EHF's published f and principal point."""
    return np.stack(
        (
            1498.22426237 * points[:, 0] / points[:, 2] + 790.263706,
            1498.22426237 * points[:, 1] / points[:, 2] + 578.90334,
        ),
        axis=-1,
    )


def test_ply_reader_handles_ascii_and_both_binary_orders(tmp_path) -> None:
    vertices = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    for fmt in ('ascii', 'binary_little_endian', 'binary_big_endian'):
        _write_ply(tmp_path / f'{fmt}.ply', vertices, fmt)
        np.testing.assert_allclose(read_ply_vertices(tmp_path / f'{fmt}.ply'), vertices, rtol=1e-6)
    (tmp_path / 'bad.ply').write_text('not a mesh\n')
    with pytest.raises(ValueError, match='not a PLY'):
        read_ply_vertices(tmp_path / 'bad.ply')


def test_frames_are_converted_field_by_field(tmp_path) -> None:
    rng = np.random.default_rng(1)
    written = {
        frame: _write_frame(tmp_path, frame, rng, fmt)
        for frame, fmt in (
            ('02', 'binary_little_endian'),
            ('100', 'binary_big_endian'),
            ('01', 'ascii'),
        )
    }

    samples = convert_ehf(tmp_path)

    assert [s.sample_id for s in samples] == ['EHF/01', 'EHF/02', 'EHF/100']
    for sample in samples:
        truth = written[sample.sample_id.split('/')[1]]
        assert sample.dataset == 'EHF'
        assert sample.image_size_wh == (IMAGE_HW[1], IMAGE_HW[0])
        assert sample.image_path == str(tmp_path / f'{sample.sample_id[4:]}_img.jpg')
        np.testing.assert_allclose(sample.intrinsics, EHF_INTRINSICS)
        assert sample.vertices_model == 'smplx'
        np.testing.assert_allclose(sample.vertices_cam_m, truth['vertices_cam'], atol=2e-6)
        uv = _project(truth['vertices_cam'])
        np.testing.assert_allclose(sample.person_box_xyxy, [*uv.min(0), *uv.max(0)], rtol=1e-5)
        person = truth['openpose']
        assert sample.body_keypoint_layout == 'openpose_body25'
        np.testing.assert_allclose(
            sample.body_keypoints_2d_px.reshape(-1), person['pose_keypoints_2d'], rtol=1e-6
        )
        left = np.array(person['hand_left_keypoints_2d']).reshape(21, 3)
        np.testing.assert_allclose(sample.left_hand_keypoints_2d_px, left, rtol=1e-6)
        seen = left[left[:, 2] > 0.1, :2]
        np.testing.assert_allclose(
            sample.left_hand_box_xyxy, [*seen.min(0), *seen.max(0)], rtol=1e-6
        )
        assert sample.left_hand_box_xyxy[2] < 5000.0
        right = np.array(person['hand_right_keypoints_2d']).reshape(21, 3)
        np.testing.assert_allclose(sample.right_hand_keypoints_2d_px, right, rtol=1e-6)
        assert 'smplx' not in sample.present


def test_hand_boxes_from_hand_vertices_when_indices_are_given(tmp_path) -> None:
    truth = _write_frame(tmp_path, '01', np.random.default_rng(2), 'ascii')
    indices = {'left': np.arange(0, 50), 'right': np.arange(100, 180)}
    sample = convert_ehf(tmp_path, hand_vertex_indices=indices)[0]
    uv = _project(truth['vertices_cam'][100:180])
    np.testing.assert_allclose(sample.right_hand_box_xyxy, [*uv.min(0), *uv.max(0)], rtol=1e-5)


def test_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match='NN_align.ply'):
        convert_ehf(tmp_path)
    _write_ply(tmp_path / '03_align.ply', np.zeros((4, 3)), 'ascii')
    with pytest.raises(FileNotFoundError, match='03_img.jpg'):
        convert_ehf(tmp_path)
    cv2.imwrite(str(tmp_path / '03_img.jpg'), np.zeros((*IMAGE_HW, 3), np.uint8))
    with pytest.raises(ValueError, match='SMPL-X'):
        convert_ehf(tmp_path)
