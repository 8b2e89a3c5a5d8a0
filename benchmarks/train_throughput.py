"""Training throughput of the HMR-Adapters on a GPU: optimiser steps per second and peak memory.

Times ``AdapterTrainer.train_step`` (forward of the frozen base model, adapter, SMPL-X/MANO
layer, losses of eqs. 5-8, backward through the adapter, gradient clipping, AdamW step) with the
full-size base models (HaMeR ViT-H, SMPLer-X-H32) and adapters (27M / 37M parameters), in
mixed precision, on one batch of loader-format items kept on the GPU. Data loading is not
timed: it runs in DataLoader workers beside the GPU and is sized separately (data.num_workers).

The base weights are random (speed does not depend on their values; no checkpoint is needed)
and the SMPL-X/MANO files are the generated stand-ins with the official sizes (10,475 and 778
vertices). Results go to one JSON file per adapter, named by adapter, precision, batch size,
device and versions, like timm's benchmark results:

    benchmarks/results/train-throughput-hand-bf16-bs32-nvidia-h100-80gb-hbm3-pt2.13.0-cu12.8.json

Usage (on a CUDA machine; never run by the tests):

    python benchmarks/train_throughput.py --adapter both --precision bf16 --batch-size 32

The paper trains with 32 items per GPU (4 GPUs, 10K steps, about 6 hours: about 0.46 steps/s
per GPU including its data pipeline). ``--tiny --device cpu`` runs the same code on the test
variants as a smoke check; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

import hmr_ros
from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel
from hmr_ros.body_models.synthetic import write_body_model_files
from hmr_ros.datasets.loader import CropDataset, LoaderConfig
from hmr_ros.datasets.sample import MANOParams, Sample, SMPLXParams, keypoint_box_xyxy
from hmr_ros.models.adapters.body_adapter import BodyAdapterConfig, body_adapter_tiny
from hmr_ros.models.adapters.hand_adapter import HandAdapterConfig
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.models.whole_body import build_whole_body
from hmr_ros.training.config import (
    BodyAdapterTrainConfig,
    DataConfig,
    HandAdapterTrainConfig,
    OutputConfig,
    RunConfig,
)
from hmr_ros.training.losses import BodyLossWeights, HandLossWeights
from hmr_ros.training.trainer import (
    AdapterTrainer,
    BodyAdapterTask,
    HandAdapterTask,
    autocast_dtype,
)

IMAGE_WH = (640, 480)
FULL_VARIANTS = {'hand': 'hamer', 'body': 'smplerx_h32'}
TINY_VARIANTS = {'hand': 'hamer_tiny', 'body': 'smplerx_tiny'}


def _synthetic_samples(count: int, seed: int = 0) -> list[Sample]:
    """Persons with both hands and every label the losses read, images in memory."""
    rng = np.random.default_rng(seed)
    width, height = IMAGE_WH
    samples = []
    for i in range(count):
        hands = np.concatenate((rng.uniform(200, 440, (2, 21, 2)), np.ones((2, 21, 1))), -1)
        hands[0, :, 0] -= 120.0
        hands[1, :, 0] += 120.0
        mano = [
            MANOParams(rng.normal(size=3), rng.normal(scale=0.3, size=(15, 3)), np.zeros(10))
            for _ in range(2)
        ]
        samples.append(
            Sample(
                dataset='benchmark',
                sample_id=str(i),
                image_size_wh=IMAGE_WH,
                image=rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8),
                intrinsics=np.array(((600.0, 0, 319.5), (0, 600.0, 239.5), (0, 0, 1))),
                person_box_xyxy=np.array((120.0, 20.0, 520.0, 470.0)),
                left_hand_box_xyxy=keypoint_box_xyxy(hands[0]),
                right_hand_box_xyxy=keypoint_box_xyxy(hands[1]),
                left_hand_keypoints_2d_px=hands[0],
                right_hand_keypoints_2d_px=hands[1],
                left_mano=mano[0],
                right_mano=mano[1],
                smplx=SMPLXParams(
                    global_orient_aa=np.array((np.pi, 0.0, 0.0)),
                    body_pose_aa=rng.normal(scale=0.3, size=(21, 3)),
                    left_hand_pose_aa=np.zeros((15, 3)),
                    right_hand_pose_aa=np.zeros((15, 3)),
                    jaw_pose_aa=np.zeros(3),
                    betas=np.zeros(10),
                    expression=np.zeros(10),
                    transl_m=np.array((0.0, 0.0, 3.0)),
                    rest_pelvis_m=np.zeros(3),
                ),
            )
        )
    return samples


def _batch(mode: str, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """One batch in the training loader's format, on the device."""
    dataset = CropDataset(_synthetic_samples(8), LoaderConfig(mode=mode, augmentation=None))
    items = [dataset[i % len(dataset)] for i in range(batch_size)]
    return {k: v.to(device) for k, v in default_collate(items).items()}


def _slug(text: str) -> str:
    return re.sub(r'[^a-z0-9.]+', '-', text.lower()).strip('-')


def _trainer(
    adapter: str, args: argparse.Namespace, device: torch.device, body_models: Path
) -> AdapterTrainer:
    variants = TINY_VARIANTS if args.tiny else FULL_VARIANTS
    common = {
        'body_model_dir': str(body_models),
        'data': DataConfig(indexes=('(in memory)',), augmentation=None, num_workers=0),
        'output': OutputConfig(dir=str(body_models / 'unused_run')),
        'run': RunConfig(
            steps=args.warmup + args.steps,
            batch_size=args.batch_size,
            device=str(device),
            precision=args.precision,
        ),
    }
    with torch.device(device):
        if adapter == 'hand':
            hand_expert = build_hand_expert(variants['hand']).eval()
            mano = MANOHandModel.from_folder(body_models, side='right').to(device)
            hand_config = HandAdapterTrainConfig(hand_expert='(random weights)', **common)
            return AdapterTrainer(
                hand_config,
                lambda c, d: HandAdapterTask(
                    hand_expert, variants['hand'], mano, HandAdapterConfig(), HandLossWeights()
                ),
            )
        whole_body = build_whole_body(variants['body']).eval()
        smplx = SMPLXBodyModel.from_folder(body_models).to(device)
        adapter_config = body_adapter_tiny() if args.tiny else BodyAdapterConfig()
        body_config = BodyAdapterTrainConfig(whole_body='(random weights)', **common)
        return AdapterTrainer(
            body_config,
            lambda c, d: BodyAdapterTask(
                whole_body, variants['body'], smplx, adapter_config, BodyLossWeights()
            ),
        )


def _measure(
    adapter: str, args: argparse.Namespace, device: torch.device, body_models: Path
) -> dict:
    trainer = _trainer(adapter, args, device, body_models)
    batch = _batch(adapter, args.batch_size, device)
    cuda = device.type == 'cuda'
    trainer.task.model.train()
    for _ in range(args.warmup):
        trainer.train_step(batch)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    losses = [trainer.train_step(batch)['total'] for _ in range(args.steps)]
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    dtype = autocast_dtype(args.precision, device)
    trainable = sum(p.numel() for p in trainer.task.adapter.parameters())
    frozen = sum(p.numel() for p in trainer.task.model.parameters()) - trainable
    return {
        'adapter': f'{adapter}_adapter',
        'base_variant': trainer.task.base_variant,
        'precision': 'fp32' if dtype is None else str(dtype).removeprefix('torch.'),
        'gradient_scaler': trainer.scaler.is_enabled(),
        'batch_size': args.batch_size,
        'timed_steps': args.steps,
        'warmup_steps': args.warmup,
        'steps_per_s': args.steps / elapsed,
        'items_per_s': args.steps * args.batch_size / elapsed,
        'ms_per_step': 1000.0 * elapsed / args.steps,
        'peak_memory_allocated_gib': torch.cuda.max_memory_allocated(device) / 2**30
        if cuda
        else None,
        'peak_memory_reserved_gib': torch.cuda.max_memory_reserved(device) / 2**30
        if cuda
        else None,
        'trainable_parameters': trainable,
        'frozen_parameters': frozen,
        'final_loss': losses[-1],
        'loss_finite': bool(np.isfinite(losses).all()),
    }


def _environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()
    return {
        'device': name or 'cpu',
        'torch': torch.__version__,
        'cuda': torch.version.cuda,
        'cudnn': torch.backends.cudnn.version() if device.type == 'cuda' else None,
        'hmr_ros': hmr_ros.__version__,
        'python': platform.python_version(),
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'note': 'random base weights, stand-in body models of official size, no data loading',
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--adapter', choices=('hand', 'body', 'both'), default='both')
    parser.add_argument('--precision', choices=('auto', 'bf16', 'fp16', 'fp32'), default='auto')
    parser.add_argument(
        '--batch-size', type=int, default=32, help='items per step (paper: 32 per GPU)'
    )
    parser.add_argument('--steps', type=int, default=30, help='timed steps')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps first')
    parser.add_argument('--device', default='cuda', help="'cuda', 'cuda:N' or 'cpu' (with --tiny)")
    parser.add_argument('--tiny', action='store_true', help='test variants (smoke check only)')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results')
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print(
            'train_throughput: no CUDA device (torch '
            f'{torch.__version__}, CUDA build {torch.version.cuda}); this benchmark measures GPU '
            'training. Run it on a CUDA machine, or use --tiny --device cpu for a smoke check.',
            file=sys.stderr,
        )
        return 2
    if device.type != 'cuda' and not args.tiny:
        print(
            'train_throughput: full-size models on the CPU are not measured; add --tiny',
            file=sys.stderr,
        )
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    environment = _environment(device)
    args.out.mkdir(parents=True, exist_ok=True)
    adapters = ('hand', 'body') if args.adapter == 'both' else (args.adapter,)
    with tempfile.TemporaryDirectory() as folder:
        body_models = write_body_model_files(Path(folder), seed=0)
        for adapter in adapters:
            result = {**_measure(adapter, args, device, body_models), 'environment': environment}
            name = (
                f'train-throughput-{adapter}-{result["precision"]}-bs{args.batch_size}'
                f'-{_slug(environment["device"])}-pt{torch.__version__.split("+")[0]}'
                f'-cu{torch.version.cuda or "none"}{"-tiny" if args.tiny else ""}.json'
            )
            path = args.out / name
            path.write_text(json.dumps(result, indent=2) + '\n')
            memory = result['peak_memory_allocated_gib']
            print(
                f'{adapter} adapter on {result["base_variant"]}, {result["precision"]}, batch '
                f'{args.batch_size}: {result["steps_per_s"]:.3f} steps/s '
                f'({result["items_per_s"]:.1f} items/s)'
                + (f', peak {memory:.2f} GiB' if memory is not None else '')
                + f' -> {path}'
            )
    return 0


if __name__ == '__main__':
    sys.exit(main())
