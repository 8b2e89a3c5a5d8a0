"""``hmr-ros bench``: per-frame latency of the dual path per backend, beside a naive baseline.

No ROS, no licensed files: the networks are built with random weights in the official
architectures (the same modules and parameter layouts the checkpoint loaders fill), with both
HMR-Adapters, and SMPL-X is the generated stand-in of ``hmr-ros make-test-assets``. Weights do not
change the work a forward does, so the timings are those of the real models.

One run measures, for every whole-body variant (S, B, L, H: SMPLer-X ViT-S/B/L/H with HaMeR
ViT-H), person count, precision and available backend, one frame end to end as the node runs
it: upload of the camera image (uint8, pinned staging), the dual path through the backend, and
the single download of the published fields. Beside them, in the same run and on the same
inputs, the *naive* baseline: per person the whole-body model at batch 1 with its SMPL-X mesh,
then the hand expert per hand at batch 1, fp32 eager, each result copied to the host on its own
(what stitching the two official demos gives). Every row's ``speedup_vs_naive`` divides the naive
p50 of the same variant and person count by the row's p50, both from this run.

Per-stage times (upload, crops, whole body, body adapter, hand crops, hand expert, fusion, SMPL-X,
download) come from a second, shorter pass with the dual path's stage timer attached (CUDA
events on a GPU, the host clock on the CPU); the timed pass runs without it. Captured graphs
and compiled programs cannot be split into stages: their rows give upload, model and download.

Without a CUDA device the tiny test variants run on the CPU, fp32, and the output says so: those
figures show that the command works, not how fast the node is.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import logging
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmr_ros.models.stage_timing import StageTimer

logger = logging.getLogger(__name__)

VARIANTS: dict[str, str] = {
    'S': 'smplerx_s32',
    'B': 'smplerx_b32',
    'L': 'smplerx_l32',
    'H': 'smplerx_h32',
    'tiny': 'smplerx_tiny',
}
"""Short names of the whole-body variants (``--variants``)."""

HAND_EXPERT = {'gpu': 'hamer', 'tiny': 'hamer_tiny'}

STAGES = (
    'upload',
    'crops',
    'whole_body',
    'body_adapter',
    'hand_crops',
    'hand_expert',
    'fusion',
    'smplx',
    'download',
)
"""Stages reported per row, in frame order."""

NAIVE = 'naive'
EXIT_OK = 0
EXIT_FAILURE = 1


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What one bench run measures.

    Attributes:
        variants: short whole-body variant names (keys of VARIANTS).
        persons: person counts per frame.
        precisions: 'fp32', 'fp16', 'bf16'.
        backends: backends beside the naive baseline ('eager', 'cuda_graph', ...).
        iterations: timed frames per row.
        warmup: untimed frames per row before timing.
        device: 'auto', 'cpu' or 'cuda[:i]'.
        image_hw: camera image size.
        engine_cache_dir: engine/graph cache of the engine backends ('' : a temporary folder).
        naive: include the naive baseline.
    """

    variants: tuple[str, ...] = ('B', 'H')
    persons: tuple[int, ...] = (1, 4)
    precisions: tuple[str, ...] = ('fp16', 'bf16')
    backends: tuple[str, ...] = ('eager', 'cuda_graph', 'compile', 'onnxruntime', 'tensorrt')
    iterations: int = 50
    warmup: int = 5
    device: str = 'auto'
    image_hw: tuple[int, int] = (720, 1280)
    engine_cache_dir: str = ''
    naive: bool = True


# ---------------------------------------------------------------------- statistics


def percentile_ms(samples_ms: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of the samples, linear interpolation (numpy's default)."""
    return float(np.percentile(np.asarray(samples_ms, dtype=np.float64), q))


def summarise(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p99, mean and frames per second (1000 / mean: frames one after another)."""
    mean = float(np.mean(samples_ms))
    return {
        'p50_ms': percentile_ms(samples_ms, 50),
        'p99_ms': percentile_ms(samples_ms, 99),
        'mean_ms': mean,
        'fps': 1000.0 / mean if mean > 0 else float('inf'),
    }


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``speedup_vs_naive`` from the naive row of the same variant and persons."""
    naive = {(r['whole_body'], r['persons']): r['p50_ms'] for r in rows if r['backend'] == NAIVE}
    for row in rows:
        reference = naive.get((row['whole_body'], row['persons']))
        row['speedup_vs_naive'] = (
            round(reference / row['p50_ms'], 3) if reference and row['p50_ms'] > 0 else None
        )


# ---------------------------------------------------------------------- clocks


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- models and inputs


def build_random_model(variant: str, hand_variant: str, device: torch.device, smplx_dir: Path):
    """The dual path with random weights, both adapters, on ``device`` (built there directly)."""
    from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
    from hmr_ros.models.adapters.body_adapter import (
        BodyAdapter,
        BodyAdapterConfig,
        body_adapter_tiny,
    )
    from hmr_ros.models.adapters.hand_adapter import HandAdapter
    from hmr_ros.models.dual_path import DualPathConfig, DualPathModel
    from hmr_ros.models.hand_expert import build_hand_expert
    from hmr_ros.models.whole_body import build_whole_body

    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        whole_body = build_whole_body(variant)
        hand_expert = build_hand_expert(hand_variant)
        width = whole_body.config.encoder.embed_dim
        body_config = (
            body_adapter_tiny(width) if variant.endswith('tiny') else BodyAdapterConfig(width)
        )
        body_adapter = BodyAdapter(body_config)
        hand_adapter = HandAdapter(hand_expert.mano_head)
    smplx_model = SMPLXBodyModel.from_folder(smplx_dir)
    model = DualPathModel(
        whole_body, hand_expert, smplx_model, hand_adapter, body_adapter, DualPathConfig()
    ).to(device)
    return model.requires_grad_(False).eval()


def person_boxes(persons: int, image_hw: tuple[int, int]) -> np.ndarray:
    """``persons`` side-by-side standing-person boxes (x1, y1, x2, y2) across the image."""
    height, width = image_hw
    slot = width / persons
    boxes = [
        (i * slot + 0.1 * slot, 0.05 * height, (i + 1) * slot - 0.1 * slot, 0.95 * height)
        for i in range(persons)
    ]
    return np.asarray(boxes, dtype=np.float32)


def camera_matrix(image_hw: tuple[int, int]) -> np.ndarray:
    """A pinhole K with focal length = the longer image side, principal point at the centre."""
    height, width = image_hw
    focal = float(max(height, width))
    return np.array(
        [[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]], np.float32
    )


# ---------------------------------------------------------------------- one frame


def _frame_runner(
    backend: Any, uploader: Any, staging: Any, device: torch.device
) -> Callable[[np.ndarray, np.ndarray, np.ndarray, StageTimer | None], None]:
    """One frame as PipelineRunner runs it: upload, backend, one download."""
    from hmr_ros.pipeline.runner import _to_host

    def run(image: np.ndarray, boxes: np.ndarray, k_matrix: np.ndarray, clock: StageTimer | None):
        if clock is not None:
            clock.mark('start')
        tensor = uploader.upload(image)
        boxes_t = torch.as_tensor(boxes, device=device)
        index = torch.zeros(len(boxes), dtype=torch.long, device=device)
        intrinsics = torch.as_tensor(k_matrix, device=device)[None]
        if clock is not None:
            clock.mark('upload')
        output = backend.run(tensor, boxes_t, index, intrinsics)
        if clock is not None:
            clock.mark('model')
        host = _to_host(output, False, staging)
        if clock is not None:
            clock.mark('download')
        del host

    return run


def _naive_runner(
    model: Any, uploader: Any, device: torch.device
) -> Callable[[np.ndarray, np.ndarray, np.ndarray, StageTimer | None], None]:
    """The naive baseline: per person whole body + SMPL-X at batch 1, per hand the expert."""
    from hmr_ros.geometry.crops import (
        apply_affine,
        body_crop_boxes,
        clip_boxes_xyxy,
        crop_images,
        crop_to_image_affine,
        hand_crop_boxes,
    )
    from hmr_ros.models.hand_expert import normalize_hand_crops
    from hmr_ros.models.whole_body import whole_body_mesh

    whole_body = model.whole_body
    hand_expert = model.hand_path.hand_expert
    prep = whole_body.config.preprocessing
    hand_px = hand_expert.config.crop_size_px

    def run(image: np.ndarray, boxes: np.ndarray, k_matrix: np.ndarray, clock: StageTimer | None):
        def mark(name: str) -> None:
            if clock is not None:
                clock.mark(name)

        mark('start')
        images = uploader.upload(image)
        mark('upload')
        image_wh = torch.tensor([image.shape[1], image.shape[0]], device=device)
        with torch.inference_mode():
            for box in boxes:
                box_t = torch.as_tensor(box, device=device)[None]
                centers, sizes = body_crop_boxes(
                    clip_boxes_xyxy(box_t, image_wh), prep.crop_scale, (prep.crop_aspect_wh, 1.0)
                )
                crop = crop_images(images, centers, sizes, prep.crop_hw_px)
                mark('crops')
                output = whole_body(crop)
                mark('whole_body')
                mesh = whole_body_mesh(output, model.smplx_model)
                mark('smplx')
                affine = crop_to_image_affine(centers, sizes, prep.crop_hw_px)
                hand_boxes = apply_affine(output.hand_boxes_crop_px.reshape(1, 4, 2), affine)
                hand_centers, hand_sides = hand_crop_boxes(hand_boxes.reshape(2, 4))
                results = [mesh.vertices, mesh.joints, output.global_orient, output.body_pose]
                for side in range(2):
                    hand_crop = crop_images(
                        images,
                        hand_centers[side : side + 1],
                        hand_sides[side : side + 1, None].expand(1, 2),
                        (hand_px, hand_px),
                        flip=torch.tensor([side == 0], device=device),
                    )
                    mark('hand_crops')
                    hand = hand_expert(normalize_hand_crops(hand_crop * 255.0))
                    mark('hand_expert')
                    results += [hand.global_orient, hand.hand_pose]
                downloads = [value.cpu() for value in results]  # one copy per result
                mark('download')
                del downloads

    return run


def _timed(
    frame: Callable[[np.ndarray, np.ndarray, np.ndarray, StageTimer | None], None],
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: BenchConfig,
    device: torch.device,
) -> list[float]:
    """End-to-end host milliseconds per frame (the frame's results are on the host after it)."""
    for _ in range(config.warmup):
        frame(*inputs, None)
    _synchronize(device)
    samples = []
    for _ in range(config.iterations):
        started = time.perf_counter()
        frame(*inputs, None)
        _synchronize(device)
        samples.append((time.perf_counter() - started) * 1e3)
    return samples


def _stage_pass(
    frame: Callable[[np.ndarray, np.ndarray, np.ndarray, StageTimer | None], None],
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
    iterations: int,
    device: torch.device,
    model_timers: list[Any],
) -> dict[str, dict[str, float]]:
    """Per-stage p50 from frames run with clocks (and the dual path's stage timer) attached."""
    per_stage: dict[str, list[float]] = {}
    timer = StageTimer(device) if model_timers else None
    for model in model_timers:
        model.stage_timer = timer
    try:
        for _ in range(iterations):
            # The frame's own stages; a new timer per frame (one forward each).
            clock = StageTimer(device)
            frame(*inputs, clock)
            _synchronize(device)
            totals = clock.durations_ms()
            if timer is not None:
                inner = timer.durations_ms()
                if inner:
                    totals.pop('model', None)
                    totals.update(inner)
            for name, value in totals.items():
                per_stage.setdefault(name, []).append(value)
    finally:
        for model in model_timers:
            model.stage_timer = None
    return {name: {'p50_ms': percentile_ms(values, 50)} for name, values in per_stage.items()}


# ---------------------------------------------------------------------- the run


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware of this run (the markdown header)."""
    info: dict[str, Any] = {
        'device': str(device),
        'torch': torch.__version__,
        'cuda': torch.version.cuda or 'none',
        'python': platform.python_version(),
        'machine': platform.machine(),
        'cpu': _cpu_name(),
        'tensorrt': _version_of('tensorrt'),
        'onnxruntime': _version_of('onnxruntime'),
        'gpu': 'none',
        'driver': 'none',
    }
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        info['compute_capability'] = f'{major}.{minor}'
        info['driver'] = _driver_version()
    return info


def _version_of(module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return 'not installed'
    try:
        return str(importlib.import_module(module).__version__)
    except Exception as error:  # a broken install still must not stop the bench
        return f'unimportable ({type(error).__name__})'


def _driver_version() -> str:
    try:
        result = subprocess.run(
            ['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return 'unknown (no nvidia-smi)'
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else 'unknown'


def _cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.lower().startswith(('model name', 'hardware')):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure every (backend, variant, persons, precision); returns the JSON document."""
    from hmr_ros.body_models.synthetic import write_smplx_model
    from hmr_ros.models.devices import PRECISION_DTYPES, resolve_device
    from hmr_ros.pipeline.backends import BackendOptions, create_backend
    from hmr_ros.pipeline.runner import FrameUploader, HostStaging

    device = resolve_device(config.device, '--device')
    notes: list[str] = []
    variants, precisions, hand_variant = config.variants, config.precisions, HAND_EXPERT['gpu']
    image_hw = config.image_hw
    if device.type != 'cuda':
        notes.append(
            'NO CUDA DEVICE: tiny test variants (smplerx_tiny + hamer_tiny) on the CPU, fp32; '
            'these figures show that the bench runs, not how fast the node is'
        )
        variants, precisions, hand_variant = ('tiny',), ('fp32',), HAND_EXPERT['tiny']
    for note in notes:
        logger.warning(note)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    k_matrix = camera_matrix(image_hw)
    uploader = FrameUploader(device)
    staging = HostStaging(device)
    stage_iterations = max(min(3, config.iterations), config.iterations // 4)
    with tempfile.TemporaryDirectory() as scratch:
        smplx_dir = Path(scratch) / 'smplx'
        write_smplx_model(smplx_dir, seed=0)
        cache = config.engine_cache_dir or str(Path(scratch) / 'engines')
        for short in variants:
            variant = VARIANTS[short]
            logger.info('bench: building %s + %s on %s', variant, hand_variant, device)
            model = build_random_model(variant, hand_variant, device, smplx_dir)
            common = {
                'whole_body': short,
                'whole_body_variant': variant,
                'hand_expert': hand_variant,
                'adapters': model.adapters,
                'device': str(device),
                'image_hw': list(image_hw),
                'iterations': config.iterations,
                'timing': 'cuda_events' if device.type == 'cuda' else 'host_clock',
            }
            if config.naive:
                naive = _naive_runner(model, uploader, device)
                for persons in config.persons:
                    inputs = (image, person_boxes(persons, image_hw), k_matrix)
                    _reset_peak(device)
                    samples = _timed(naive, inputs, config, device)
                    stages = _stage_pass(naive, inputs, stage_iterations, device, [])
                    rows.append(_row(common, NAIVE, persons, 'fp32', samples, stages, device))
            for precision_name in precisions:
                precision = PRECISION_DTYPES[precision_name]
                for backend_name in config.backends:
                    options = BackendOptions(
                        max_persons=max(config.persons),
                        engine_cache_dir=cache,
                        compile_cache_dir=str(Path(cache) / 'inductor'),
                    )
                    started = time.perf_counter()
                    try:
                        backend = create_backend(
                            backend_name, model, device, precision, options, image_hw=image_hw
                        )
                    except Exception as error:  # unavailable here: listed, not fatal
                        skipped.append(
                            {
                                'backend': backend_name,
                                'whole_body': short,
                                'precision': precision_name,
                                'reason': f'{type(error).__name__}: {error}',
                            }
                        )
                        logger.warning('bench: %s skipped: %s', backend_name, error)
                        continue
                    prepare_s = time.perf_counter() - started
                    frame = _frame_runner(backend, uploader, staging, device)
                    timers = _stage_models(backend)
                    for persons in config.persons:
                        inputs = (image, person_boxes(persons, image_hw), k_matrix)
                        _reset_peak(device)
                        try:
                            samples = _timed(frame, inputs, config, device)
                            stages = _stage_pass(frame, inputs, stage_iterations, device, timers)
                        except Exception as error:
                            skipped.append(
                                {
                                    'backend': backend_name,
                                    'whole_body': short,
                                    'precision': precision_name,
                                    'persons': persons,
                                    'reason': f'{type(error).__name__}: {error}',
                                }
                            )
                            logger.warning('bench: %s failed: %s', backend_name, error)
                            continue
                        row = _row(
                            common, backend_name, persons, precision_name, samples, stages, device
                        )
                        row['prepare_s'] = round(prepare_s, 2)
                        rows.append(row)
                    backend.close()
            del model
            if device.type == 'cuda':
                torch.cuda.empty_cache()
    add_speedups(rows)
    return {
        'environment': environment(device),
        'notes': notes,
        'rows': rows,
        'skipped': skipped,
    }


def _stage_models(backend: Any) -> list[Any]:
    """Models whose stage timer can be attached.

    Eager and engine backends run the forward in Python; captured graphs and compiled programs
    cannot be split into stages.
    """
    if backend.name == 'eager':
        return [backend.model]
    engine_model = getattr(backend, '_engine_model', None)
    return [engine_model] if engine_model is not None else []


def _reset_peak(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _row(
    common: dict[str, Any],
    backend: str,
    persons: int,
    precision: str,
    samples: list[float],
    stages: dict[str, dict[str, float]],
    device: torch.device,
) -> dict[str, Any]:
    row = {'backend': backend, 'persons': persons, 'precision': precision, **common}
    row.update({key: round(value, 4) for key, value in summarise(samples).items()})
    ordered = {name: stages[name] for name in (*STAGES, 'model') if name in stages}
    row['stages'] = {
        name: {'p50_ms': round(value['p50_ms'], 4)} for name, value in ordered.items()
    }
    inner = {k: v['p50_ms'] for k, v in ordered.items()}
    row['dominant_stage'] = max(inner, key=lambda name: inner[name]) if inner else None
    row['peak_gpu_mb'] = (
        round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if device.type == 'cuda'
        else None
    )
    return row


# ---------------------------------------------------------------------- output


def markdown_report(document: dict[str, Any]) -> str:
    """The run as a markdown table under a header naming the hardware and versions."""
    env = document['environment']
    lines = [
        '# hmr-ros bench',
        '',
        f'- GPU: {env["gpu"]} (compute capability {env.get("compute_capability", "-")}), '
        f'driver {env["driver"]}, CUDA {env["cuda"]}',
        f'- torch {env["torch"]}, TensorRT {env["tensorrt"]}, ONNX Runtime {env["onnxruntime"]}, '
        f'Python {env["python"]}',
        f'- CPU: {env["cpu"]} ({env["machine"]}); device {env["device"]}',
    ]
    lines += [f'- **{note}**' for note in document['notes']]
    lines += [
        '',
        '| backend | whole body | persons | precision | p50 ms | p99 ms | FPS | peak GPU MB '
        '| x naive | dominant stage |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for row in document['rows']:
        speedup = row.get('speedup_vs_naive')
        dominant = row['dominant_stage']
        dominant_text = (
            f'{dominant} ({row["stages"][dominant]["p50_ms"]:.2f} ms)' if dominant else '-'
        )
        lines.append(
            f'| {row["backend"]} | {row["whole_body"]} | {row["persons"]} | {row["precision"]} '
            f'| {row["p50_ms"]:.2f} | {row["p99_ms"]:.2f} | {row["fps"]:.1f} '
            f'| {row["peak_gpu_mb"] if row["peak_gpu_mb"] is not None else "-"} '
            f'| {f"{speedup:.2f}" if speedup else "-"} | {dominant_text} |'
        )
    if document['skipped']:
        lines += ['', 'Not measured:', '']
        lines += [
            f'- {s["backend"]} ({s["whole_body"]}, {s["precision"]}): {s["reason"]}'
            for s in document['skipped']
        ]
    return '\n'.join(lines) + '\n'


def register(subparsers: Any) -> None:
    """Adds ``bench`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'bench',
        help='time the dual path per backend beside the naive baseline (no ROS needed)',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = BenchConfig()
    parser.add_argument(
        '--variants', nargs='+', choices=sorted(VARIANTS), default=list(defaults.variants)
    )
    parser.add_argument('--persons', nargs='+', type=int, default=list(defaults.persons))
    parser.add_argument(
        '--precisions',
        nargs='+',
        choices=('fp32', 'fp16', 'bf16'),
        default=list(defaults.precisions),
    )
    parser.add_argument(
        '--backends',
        nargs='+',
        choices=('eager', 'cuda_graph', 'compile', 'onnxruntime', 'tensorrt'),
        default=list(defaults.backends),
        help='backends beside the naive baseline; unavailable ones are listed, not fatal',
    )
    parser.add_argument('--no-naive', action='store_true', help='skip the naive baseline')
    parser.add_argument('--iterations', type=int, default=defaults.iterations)
    parser.add_argument('--warmup', type=int, default=defaults.warmup)
    parser.add_argument('--device', default=defaults.device)
    parser.add_argument(
        '--image-size',
        default='720x1280',
        metavar='HxW',
        help='camera image size (default 720x1280)',
    )
    parser.add_argument('--engine-cache-dir', default='', help="engine cache ('' temporary)")
    parser.add_argument('--json', type=Path, help='write the rows as JSON')
    parser.add_argument('--markdown', type=Path, help='write the table as markdown')
    parser.add_argument(
        '--models',
        nargs='+',
        metavar='VARIANT',
        help='instead: time these registered body networks side by side (light models for an '
        'embedded profile, e.g. fastmetro_s_r50 fastmetro_m_r50 smplerx_s32)',
    )
    parser.set_defaults(func=_run)


def _run_models(args: argparse.Namespace) -> int:
    """``--models``: the networks alone, one row each, the first as the ratios' reference."""
    from hmr_ros.cli.seed_bench import seed_model_rows

    device = (
        args.device if args.device != 'auto' else ('cuda' if torch.cuda.is_available() else 'cpu')
    )
    rows = seed_model_rows(
        args.models, device=device, precision=args.precisions[0], repeats=args.iterations
    )
    for row in rows:
        print(
            f'{row["model"]:>18}  {row["parameters"] / 1e6:7.1f}M  {row["input"]:>11}  '
            f'median {row["median_ms"]:8.1f} ms  p90 {row["p90_ms"]:8.1f} ms  '
            f'x{row["ratio_to_first"]:.2f}'
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({'rows': rows}, indent=1) + '\n')
    return EXIT_OK if rows else EXIT_FAILURE


def _run(args: argparse.Namespace) -> int:
    if args.models:
        return _run_models(args)
    height, _, width = args.image_size.lower().partition('x')
    if not (height.isdigit() and width.isdigit()):
        logger.error('--image-size must be HxW, got %r', args.image_size)
        return EXIT_FAILURE
    if args.iterations < 1 or min(args.persons) < 1:
        logger.error('--iterations and --persons must be at least 1')
        return EXIT_FAILURE
    config = BenchConfig(
        variants=tuple(args.variants),
        persons=tuple(args.persons),
        precisions=tuple(args.precisions),
        backends=tuple(args.backends),
        iterations=args.iterations,
        warmup=args.warmup,
        device=args.device,
        image_hw=(int(height), int(width)),
        engine_cache_dir=args.engine_cache_dir,
        naive=not args.no_naive,
    )
    document = run_bench(config)
    report = markdown_report(document)
    print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1) + '\n')
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report)
    return EXIT_OK if document['rows'] else EXIT_FAILURE
