"""Trace the full-size dual path (ViT-H whole body + HaMeR ViT-H, both adapters) without weights.

Every module is built on the ``meta`` device (shapes only, no memory for the 1.4 G parameters)
and the generated SMPL-X stand-in is moved there too; the script then runs, per person bucket:

- ``torch.export.export`` of ``DualPathModel.forward`` (the graph a compiled or exported
  backend starts from), reporting its op count and any op that would synchronise on CUDA;
- ``torch.compile(fullgraph=True, backend='eager')`` (Dynamo's capture with no graph break);
- the SyncAudit of one forward on meta tensors.

Nothing is downloaded and no weights are needed: it checks that the full-size graph is static
and capturable, not its numbers (the tiny variants check those in the test suite).

    python benchmarks/export_check.py [--whole-body smplerx_h32] [--persons 1 4] [--json F]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import torch

from hmr_ros.body_models.smplx_layers import SMPLXBodyModel
from hmr_ros.body_models.synthetic import write_body_model_files
from hmr_ros.models.adapters.body_adapter import BodyAdapter, BodyAdapterConfig
from hmr_ros.models.adapters.hand_adapter import HandAdapter
from hmr_ros.models.dual_path import DualPathModel, DualPathOutput
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.models.sync_audit import SyncAudit
from hmr_ros.models.whole_body import build_whole_body

WIDTH, HEIGHT = 1280, 720
SYNC_OPS = (
    'aten._local_scalar_dense.',
    'aten.nonzero.',
    'aten.masked_select.',
    'aten._linalg_check_errors.',
    'aten.item.',
)


def build_on_meta(whole_body_name: str, body_model_dir: Path) -> DualPathModel:
    """The dual path with both adapters, every parameter and buffer on the meta device."""
    smplx_model = SMPLXBodyModel.from_folder(body_model_dir)
    with torch.device('meta'):
        whole_body = build_whole_body(whole_body_name)
        hand_expert = build_hand_expert('hamer')
        hand_adapter = HandAdapter(hand_expert.mano_head)
        width = whole_body.config.encoder.embed_dim
        body_adapter = BodyAdapter(BodyAdapterConfig(in_channels=width))
    model = DualPathModel(whole_body, hand_expert, smplx_model, hand_adapter, body_adapter)
    return model.to('meta').eval()


def meta_inputs(num_persons: int) -> tuple[torch.Tensor, ...]:
    """A 1280 x 720 image, ``num_persons`` boxes, K, all on the meta device."""
    with torch.device('meta'):
        return (
            torch.empty(1, 3, HEIGHT, WIDTH),
            torch.empty(num_persons, 4),
            torch.empty(num_persons, dtype=torch.long),
            torch.empty(1, 3, 3),
        )


def check(model: DualPathModel, num_persons: int) -> dict[str, object]:
    """Export, compile and audit one bucket; returns the figures printed."""
    inputs = meta_inputs(num_persons)
    row: dict[str, object] = {'persons': num_persons}
    start = time.perf_counter()
    with torch.no_grad():
        exported = torch.export.export(model, inputs)
    row['export_s'] = round(time.perf_counter() - start, 1)
    ops = collections.Counter(
        str(node.target) for node in exported.graph.nodes if node.op == 'call_function'
    )
    row['export_ops'] = sum(ops.values())
    row['export_sync_ops'] = {k: v for k, v in ops.items() if k.startswith(SYNC_OPS)}
    (output_node,) = [node for node in exported.graph.nodes if node.op == 'output']
    vertices = output_node.args[0][DualPathOutput._fields.index('vertices')]
    row['vertices_shape'] = list(vertices.meta['val'].shape)
    torch._dynamo.reset()
    start = time.perf_counter()
    with torch.no_grad():
        torch.compile(model, fullgraph=True, backend='eager')(*inputs)
    row['compile_fullgraph_s'] = round(time.perf_counter() - start, 1)
    with torch.no_grad(), SyncAudit() as audit:
        model(*inputs)
    row['sync_points'] = len(audit.events)
    if audit.events:
        row['sync_summary'] = audit.summary()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--whole-body', default='smplerx_h32')
    parser.add_argument('--persons', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--json', type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = build_on_meta(args.whole_body, write_body_model_files(Path(folder), seed=0))
    parameters = sum(p.numel() for p in model.parameters())
    print(f'{args.whole_body} + hamer + both adapters: {parameters / 1e9:.3f} G parameters (meta)')
    rows = []
    for persons in args.persons:
        row = check(model, persons)
        rows.append(row)
        print(
            f'{persons} person(s): torch.export ok in {row["export_s"]} s, '
            f'{row["export_ops"]} ops, sync ops in graph: {row["export_sync_ops"] or "none"}, '
            f'vertices {row["vertices_shape"]}; torch.compile(fullgraph=True) ok in '
            f'{row["compile_fullgraph_s"]} s; SyncAudit: {row["sync_points"]} sync point(s)'
        )
        if row.get('sync_summary'):
            print(row['sync_summary'])
    if args.json is not None:
        args.json.write_text(json.dumps({'whole_body': args.whole_body, 'rows': rows}, indent=2))


if __name__ == '__main__':
    main()
