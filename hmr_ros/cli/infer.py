"""``hmr-ros infer``: SMPL-X bodies with hands from images or videos, offline, without ROS.

Runs the dual-path system (hmr_ros.models.dual_path) on every frame of the inputs and writes,
per frame, into the output folder:

- ``<frame>.json``: camera, and per person the SMPL-X parameters (``smplx`` names, axis-angle,
  hand poses absolute: hands_mean included), pelvis, joints, 2D keypoints and both hands (wrist
  pose and keypoints of the fused mesh, and the wrist from CMR-style 2D registration);
- ``<frame>.npz``: every DualPathOutput field as an array (vertices included), stacked over
  persons, plus the camera matrix ``intrinsics`` and ``image_size`` (W, H);
- ``<frame>_overlay.png``: the projected mesh, skeleton, person and hand boxes.

and once ``run.json``: the model (variants, files, adapters, what runs), joint names and
parents, the conventions.

Assumptions, stated where the user cannot see them otherwise:

- Persons: without ``--boxes`` the whole image is one person box (single-operator use); the
  real-time pipeline's detector front-ends are not used here.
- Camera: without ``--intrinsics``, fx = fy = max(W, H) px (a horizontal field of view of
  about 53 degrees for a landscape image, typical of webcams) and the principal point at the
  image centre ((W - 1) / 2, (H - 1) / 2). Metric depth scales with the focal length: pass the
  real calibration for metric results.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from hmr_ros.body_models.joint_names import (
    OPENPOSE_HAND_JOINT_NAMES,
    SIDES,
    SMPLX_JOINT_INDEX,
    SMPLX_PARENTS,
    SMPLX_VERTEX_KEYPOINT_NAMES,
)
from hmr_ros.body_models.model_files import BodyModelFileNotFoundError
from hmr_ros.checkpoints.safe_load import CheckpointError
from hmr_ros.geometry.cameras import assumed_intrinsics

_LOG = logging.getLogger(__name__)

EXIT_FAILURE = 1
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
"""Inputs with these suffixes are images; anything else is opened as a video."""
PERSON_COLORS_RGB: tuple[tuple[int, int, int], ...] = (
    (70, 150, 255),
    (255, 140, 60),
    (90, 200, 110),
    (220, 80, 200),
    (240, 210, 60),
    (80, 210, 220),
)
HAND_BOX_COLOR_RGB = (255, 255, 255)
HANDS_MEAN_CONVENTION = (
    'hand poses are absolute: the SMPL-X hands_mean is included (feed them to a '
    'flat_hand_mean=True SMPL-X layer or smplx.SMPLXLayer)'
)
FRAMES_CONVENTION = (
    'positions in metres in the camera optical frame (x right, y down, z forward); rotations '
    'axis-angle in radians or 3x3 matrices into that frame; pixels with integer pixel centres'
)


@dataclass(frozen=True)
class Frame:
    """One input image.

    Attributes:
        name: output file stem (image stem, or video stem + frame number).
        rgb: (H, W, 3) uint8 RGB.
    """

    name: str
    rgb: np.ndarray


def iter_frames(inputs: Sequence[Path], max_frames: int | None = None) -> Iterator[Frame]:
    """Frames of image files and videos, in the given order.

    Args:
        inputs: image files (IMAGE_SUFFIXES) or videos (anything cv2.VideoCapture opens).
        max_frames: stop after this many frames per video (None: all).

    Yields:
        Frame per image, and per decoded video frame ``<stem>_<index:06d>``.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: an image or video cannot be decoded.
    """
    for path in inputs:
        if not path.is_file():
            raise FileNotFoundError(f'input {path} does not exist')
        if path.suffix.lower() in IMAGE_SUFFIXES:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f'cannot decode image {path}; use JPEG, PNG, BMP, TIFF or WebP')
            yield Frame(path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            continue
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(
                f'cannot open {path} as a video (OpenCV/FFmpeg); image inputs need one of the '
                f'suffixes {", ".join(IMAGE_SUFFIXES)}'
            )
        try:
            index = 0
            while max_frames is None or index < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    break
                yield Frame(f'{path.stem}_{index:06d}', cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise ValueError(f'video {path} has no decodable frames')


def parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    """'fx,fy,cx,cy' in pixels -> four floats.

    Raises:
        ValueError: not four numbers, or a non-positive focal length.
    """
    try:
        values = tuple(float(v) for v in text.split(','))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values[:2]) <= 0:
        raise ValueError(
            f'--intrinsics must be fx,fy,cx,cy in pixels with fx, fy > 0; got {text!r}'
        )
    return values[0], values[1], values[2], values[3]


def load_boxes(path: Path) -> dict[str, list[list[float]]] | list[list[float]]:
    """Person boxes from JSON.

    The file holds a list of [x1, y1, x2, y2] (image pixels) for every frame, or an object
    mapping frame names (output stems) to such lists; frames without an entry have no persons.

    Raises:
        ValueError: unreadable JSON or boxes that are not four numbers with x2 > x1, y2 > y1.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'cannot read boxes from {path}: {error}') from error
    lists = data.values() if isinstance(data, dict) else [data]
    for boxes in lists:
        if not isinstance(boxes, list) or not all(_valid_box(box) for box in boxes):
            raise ValueError(
                f'{path}: boxes must be lists of [x1, y1, x2, y2] image pixels with x2 > x1 and '
                'y2 > y1, either one list for all frames or {"frame name": [...]}'
            )
    return data


def _valid_box(box: object) -> bool:
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, (int, float)) for v in box)
        and box[2] > box[0]
        and box[3] > box[1]
    )


def boxes_for_frame(
    frame: Frame, boxes: dict[str, list[list[float]]] | list[list[float]] | None
) -> list[list[float]]:
    """The person boxes of one frame; the whole image when no boxes were given."""
    height, width = frame.rgb.shape[:2]
    if boxes is None:
        return [[0.0, 0.0, width - 1.0, height - 1.0]]
    if isinstance(boxes, dict):
        return boxes.get(frame.name, [])
    return boxes


def skeleton_parents(joint_names: Sequence[str]) -> list[int]:
    """Parent per output joint: the SMPL-X tree, fingertips on their last finger joint, -1 else."""
    parents = list(SMPLX_PARENTS)
    index = {name: i for i, name in enumerate(joint_names)}
    for name in joint_names[len(SMPLX_PARENTS) :]:
        last_segment = f'{name}3'
        tip = name in SMPLX_VERTEX_KEYPOINT_NAMES and last_segment in SMPLX_JOINT_INDEX
        parents.append(index[last_segment] if tip else -1)
    return parents


def _rounded(array: np.ndarray) -> Any:
    return np.round(array.astype(np.float64), 6).tolist()


def person_record(outputs: dict[str, np.ndarray], p: int) -> dict[str, Any]:
    """JSON-ready record of person p of one frame."""
    hands = {}
    for s, side in enumerate(SIDES):
        hands[side] = {
            'fused_from_hand_path': bool(outputs['hand_fused'][p, s]),
            'confidence': float(outputs['hand_confidence'][p, s]),
            'box_px': _rounded(outputs['hand_boxes_px'][p, s]),
            'wrist_position_m': _rounded(outputs['hand_wrist_position'][p, s]),
            'wrist_rotation': _rounded(outputs['hand_wrist_rotation'][p, s]),
            'keypoints_m': _rounded(outputs['hand_keypoints'][p, s]),
            'keypoints_2d_px': _rounded(outputs['hand_keypoints_2d_px'][p, s]),
            'finger_pose_aa': _rounded(outputs['hand_finger_pose'][p, s]),
            'registered_root_m': _rounded(outputs['hand_root_registered'][p, s]),
            'registration_rms_px': float(outputs['hand_registration_rms_px'][p, s]),
            'registration_valid': bool(outputs['hand_registration_valid'][p, s]),
        }
    smplx_names = (
        'global_orient',
        'body_pose',
        'left_hand_pose',
        'right_hand_pose',
        'jaw_pose',
        'betas',
        'expression',
        'transl',
    )
    return {
        'box_px': _rounded(outputs['person_boxes_px'][p]),
        'smplx': {name: _rounded(outputs[name][p]) for name in smplx_names},
        'root_position_m': _rounded(outputs['joints'][p, 0]),
        'root_rotation': _rounded(outputs['root_rotation'][p]),
        'joints_m': _rounded(outputs['joints'][p]),
        'keypoints_2d_px': _rounded(outputs['keypoints_2d_px'][p]),
        'hands': hands,
    }


def _run(args: argparse.Namespace) -> int:
    from hmr_ros.pipeline.backends import BackendUnavailableError

    try:
        return _infer(args)
    except (
        CheckpointError,
        BodyModelFileNotFoundError,
        FileNotFoundError,
        ValueError,
        BackendUnavailableError,
    ) as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_FAILURE


def _most_persons(boxes: dict[str, list[list[float]]] | list[list[float]] | None) -> int:
    """The largest person count of any frame (the backends' largest person bucket)."""
    if boxes is None:
        return 1
    if isinstance(boxes, dict):
        return max((len(frame) for frame in boxes.values()), default=1) or 1
    return len(boxes) or 1


def _infer(args: argparse.Namespace) -> int:
    # Heavy imports here, so `hmr-ros --help` stays fast.
    from hmr_ros.models.dual_path import DualPathConfig
    from hmr_ros.models.dual_path_builder import build_dual_path
    from hmr_ros.pipeline.backends import BackendOptions, create_backend
    from hmr_ros.pipeline.frames import CameraIntrinsics
    from hmr_ros.pipeline.overlay import OverlayPerson, draw_box, render_overlay

    intrinsics_given = parse_intrinsics(args.intrinsics) if args.intrinsics else None
    boxes = load_boxes(args.boxes) if args.boxes else None
    config = DualPathConfig(adapters=args.adapters, hand_confidence_threshold=args.hand_threshold)
    build = build_dual_path(
        args.whole_body,
        args.hand,
        args.body_models,
        hand_adapter_file=args.hand_adapter,
        body_adapter_file=args.body_adapter,
        config=config,
        device=args.device,
    )
    model = build.model
    smplx_model = model.smplx_model
    joint_names = list(smplx_model.joint_names)
    parents = skeleton_parents(joint_names)
    faces = smplx_model.faces.cpu().numpy()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    print(f'hmr-ros infer: {build.model_version}, {model.mode_description}')
    (output / 'run.json').write_text(
        json.dumps(
            {
                'model_version': build.model_version,
                'adapters': model.adapters,
                'mode_description': model.mode_description,
                'weights': [
                    {
                        'path': str(info.path),
                        'model': info.model,
                        'variant': info.variant,
                        'converted_from_official': info.converted,
                        'sha256': info.sha256,
                    }
                    for info in build.weights
                ],
                'hand_confidence_threshold': config.hand_confidence_threshold,
                'joint_names': joint_names,
                'joint_parents': parents,
                'hand_keypoint_names': list(OPENPOSE_HAND_JOINT_NAMES),
                'hands_mean': HANDS_MEAN_CONVENTION,
                'frames': FRAMES_CONVENTION,
                'person_boxes': 'from --boxes' if boxes is not None else 'whole image',
            },
            indent=1,
        )
    )

    device = torch.device(args.device)
    backend = create_backend(
        args.backend,
        model,
        device,
        torch.float32,
        BackendOptions(max_persons=_most_persons(boxes)),
    )
    written = 0
    for frame in iter_frames(args.inputs, args.max_frames):
        height, width = frame.rgb.shape[:2]
        if intrinsics_given is None:
            fx, fy, cx, cy = assumed_intrinsics(width, height)
            camera_source = 'assumed: fx = fy = max(W, H), principal point at the image centre'
        else:
            fx, fy, cx, cy = intrinsics_given
            camera_source = '--intrinsics'
        frame_boxes = boxes_for_frame(frame, boxes)
        record: dict[str, Any] = {
            'frame': frame.name,
            'image_size': [width, height],
            'camera': {'fx': fx, 'fy': fy, 'cx': cx, 'cy': cy, 'source': camera_source},
            'persons': [],
        }
        k_matrix = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float32)
        canvas = frame.rgb
        if frame_boxes:
            image = torch.from_numpy(frame.rgb).to(device).permute(2, 0, 1)[None].float() / 255.0
            result = backend.run(
                image,
                torch.tensor(frame_boxes, dtype=torch.float32, device=device),
                torch.zeros(len(frame_boxes), dtype=torch.long, device=device),
                torch.from_numpy(k_matrix)[None].to(device),
            )
            # Static-shape backends return bucket rows: keep the real persons' rows.
            arrays = {
                name: value[: len(frame_boxes)].cpu().numpy()
                for name, value in result._asdict().items()
            }
            record['persons'] = [person_record(arrays, p) for p in range(len(frame_boxes))]
            np.savez_compressed(
                output / f'{frame.name}.npz',
                **arrays,
                intrinsics=k_matrix,
                image_size=np.array([width, height]),
            )
            camera = CameraIntrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
            persons = [
                OverlayPerson(
                    label=str(p),
                    color_rgb=PERSON_COLORS_RGB[p % len(PERSON_COLORS_RGB)],
                    box_px=arrays['person_boxes_px'][p],
                    keypoints_px=arrays['keypoints_2d_px'][p],
                    joints_cam=arrays['joints'][p],
                    vertices_cam=arrays['vertices'][p],
                )
                for p in range(len(frame_boxes))
            ]
            canvas = render_overlay(frame.rgb, persons, parents, faces, camera, args.mesh)
            for p in range(len(frame_boxes)):
                for s, side in enumerate(SIDES):
                    draw_box(canvas, arrays['hand_boxes_px'][p, s], HAND_BOX_COLOR_RGB, side[0])
        (output / f'{frame.name}.json').write_text(json.dumps(record))
        cv2.imwrite(
            str(output / f'{frame.name}_overlay.png'), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
        )
        written += 1
        print(f'{frame.name}: {len(frame_boxes)} person(s)')
    print(f'Wrote {written} frame(s) to {output}')
    return 0


def register(subparsers: Any) -> None:
    """Adds ``infer`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'infer',
        help='SMPL-X bodies with hands from images or videos (offline, no ROS)',
        description=(
            'Run the dual-path system (SMPLer-X + HaMeR, with HMR-Adapters when their files are '
            'given) on images or videos; write per-frame JSON, npz and overlay PNGs. Without '
            '--boxes the whole image is one person; without --intrinsics the camera is assumed '
            'to have fx = fy = max(W, H) and its principal point at the image centre.'
        ),
    )
    parser.add_argument('inputs', nargs='+', type=Path, metavar='INPUT', help='images or videos')
    parser.add_argument('--output', type=Path, required=True, help='output folder')
    parser.add_argument(
        '--whole-body',
        type=Path,
        required=True,
        help='body model file or official checkpoint (SMPLer-X, or FastMETRO with its mesh and '
        'SMPL files in --body-models; docs/seed-models.md)',
    )
    parser.add_argument(
        '--hand', type=Path, required=True, help='HaMeR model file or official checkpoint'
    )
    parser.add_argument('--hand-adapter', type=Path, help='hand adapter file (optional)')
    parser.add_argument('--body-adapter', type=Path, help='body adapter file (optional)')
    parser.add_argument(
        '--body-models', type=Path, required=True, help='folder with SMPLX_NEUTRAL.npz'
    )
    parser.add_argument(
        '--adapters',
        choices=['auto', 'none', 'hand', 'body', 'both'],
        default='auto',
        help='adapters to run (default auto: those whose files are given)',
    )
    parser.add_argument(
        '--intrinsics',
        metavar='FX,FY,CX,CY',
        help='camera intrinsics in pixels (default: f = max(W, H), centre principal point)',
    )
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument(
        '--boxes',
        type=Path,
        help='JSON: [[x1, y1, x2, y2], ...] for every frame, or {"frame": [[...]], ...}',
    )
    boxes.add_argument(
        '--whole-image',
        action='store_true',
        help='the whole image is one person (the default without --boxes)',
    )
    parser.add_argument('--device', default='cpu', help="torch device (default: 'cpu')")
    parser.add_argument(
        '--backend',
        choices=('auto', 'eager', 'cuda_graph', 'compile', 'onnxruntime', 'tensorrt'),
        default='eager',
        help="inference backend (docs/performance.md; default 'eager')",
    )
    parser.add_argument(
        '--hand-threshold',
        type=float,
        default=0.5,
        help='hand box confidence below which the body keeps its own wrist and fingers',
    )
    parser.add_argument(
        '--mesh',
        choices=['filled', 'wireframe', 'none'],
        default='filled',
        help='how the overlay draws the mesh',
    )
    parser.add_argument('--max-frames', type=int, help='frames to read per video (default all)')
    parser.set_defaults(func=_run)
