"""Inference time of the light body model (FastMETRO) beside SMPLer-X, one run, side by side.

Times the networks alone (no crops, SMPL-X layer or IK) on random weights (speed does not
depend on their values; no checkpoint is needed) and the stand-in mesh file with the published
sizes. Every model runs the same number of warm-up and timed iterations in this one process, so
the ratios are comparable even on a loaded machine; absolute figures are the machine's.

Usage (CPU here; on an Orin add ``--device cuda --precisions fp16``):

    hmr-ros bench --models fastmetro_s_r50 fastmetro_m_r50 smplerx_s32 --json rows.json

``seed_model_rows(...)`` returns the rows (one dict per model: name, parameters, input, batch,
device, precision, median and p90 milliseconds, ratio to the first).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hmr_ros.models.registry import entry_for_variant

DEFAULT_MODELS = ('fastmetro_s_r50', 'fastmetro_m_r50', 'smplerx_s32')


def _build(variant: str, mesh_file: Path) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The network of ``variant`` and its input shape (C, H, W)."""
    entry = entry_for_variant(variant, 'body')
    module = entry.build(variant)
    if entry.name == 'fastmetro':
        from hmr_ros.checkpoints.fastmetro_assets import load_fastmetro_mesh_assets

        module.set_mesh_assets(load_fastmetro_mesh_assets(mesh_file, expected_sha256=None))
        size = module.config.input_size_px
        return module, (3, size, size)
    height, width = module.config.preprocessing.crop_hw_px
    return module, (3, height, width)


def seed_model_rows(
    variants: Sequence[str] = DEFAULT_MODELS,
    *,
    device: str = 'cpu',
    precision: str = 'fp32',
    batch: int = 1,
    warmup: int = 2,
    repeats: int = 5,
) -> list[dict[str, Any]]:
    """One timing row per body model variant (module docstring).

    Raises:
        ModelRegistryError: an unknown variant.
    """
    from hmr_ros.checkpoints.fastmetro_assets import write_stand_in_mesh_npz

    dtype = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        mesh_file = write_stand_in_mesh_npz(Path(folder) / 'mesh_downsampling.npz')
        for variant in variants:
            torch.manual_seed(0)
            module, shape = _build(variant, mesh_file)
            module = module.to(device).eval()
            crops = torch.rand(batch, *shape, device=device)
            autocast = torch.autocast(device.split(':')[0], dtype, enabled=precision != 'fp32')
            times_ms = []
            with torch.inference_mode(), autocast:
                for step in range(warmup + repeats):
                    if device.startswith('cuda'):
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    module(crops)
                    if device.startswith('cuda'):
                        torch.cuda.synchronize()
                    if step >= warmup:
                        times_ms.append(1e3 * (time.perf_counter() - start))
            rows.append(
                {
                    'model': variant,
                    'parameters': sum(p.numel() for p in module.parameters()),
                    'input': 'x'.join(str(n) for n in shape),
                    'batch': batch,
                    'device': device,
                    'precision': precision,
                    'median_ms': statistics.median(times_ms),
                    'p90_ms': sorted(times_ms)[math.ceil(0.9 * len(times_ms)) - 1],  # nearest rank
                }
            )
    first = rows[0]['median_ms'] if rows else 1.0
    for row in rows:
        row['ratio_to_first'] = row['median_ms'] / first
    return rows
