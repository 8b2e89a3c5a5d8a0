"""Count the ops of one dual-path forward that would synchronise the host with a CUDA device.

Runs the tiny variants (random weights, the generated SMPL-X stand-in, both adapters) on the
CPU under hmr_ros.models.sync_audit.SyncAudit for 1 and 4 persons and prints every sync point
with its source line; ``--json FILE`` writes the counts. See docs/performance-internals.md.

    python benchmarks/sync_audit.py [--persons 1 4] [--json audit.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.body_models.synthetic import write_body_model_files
from hmr_ros.models.dual_path import DualPathModel
from hmr_ros.models.sync_audit import SyncAudit, audited_tiny_dual_path

WIDTH, HEIGHT = 320, 240


def example_inputs(num_persons: int) -> tuple[torch.Tensor, ...]:
    """One 320 x 240 image, ``num_persons`` boxes across it, a plausible K."""
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(1, 3, HEIGHT, WIDTH, generator=generator)
    x1 = torch.linspace(10.0, 200.0, num_persons)
    boxes = torch.stack([x1, x1 * 0 + 20.0, x1 + 110.0, x1 * 0 + 230.0], dim=1)
    intrinsics = torch.tensor([[[300.0, 0.0, 159.5], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]]])
    return images, boxes, torch.zeros(num_persons, dtype=torch.long), intrinsics


def audit(model: DualPathModel, num_persons: int) -> SyncAudit:
    """Run one forward under SyncAudit (after one warm-up forward) and return the audit."""
    inputs = example_inputs(num_persons)
    with torch.no_grad():
        model(*inputs)
        with SyncAudit() as recorder:
            model(*inputs)
    return recorder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--persons', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--json', type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model = audited_tiny_dual_path(
            SMPLXBodyModel.from_folder(write_body_model_files(Path(folder), seed=0))
        )
        for persons in args.persons:
            recorder = audit(model, persons)
            print(f'--- {persons} person(s): {len(recorder.events)} sync point(s)')
            print(recorder.summary())
            rows.append(
                {
                    'persons': persons,
                    'sync_points': len(recorder.events),
                    'by_kind': recorder.counts(lambda e: e.kind),
                    'by_location': recorder.counts(),
                }
            )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == '__main__':
    main()
