"""``hmr-ros export-onnx``: ONNX graphs of the networks (and the whole dual path) per bucket.

Writes, for every person bucket up to ``--persons`` (1, 2, 4 ... and N itself):

- ``whole_body_b{P}.onnx``: the whole-body network on P person crops;
- ``hand_path_b{P}.onnx``: the hand path on the 2P hand crops of P persons (guided by the hand
  adapter when one is loaded and runs);
- ``dual_path_b{P}_{H}x{W}.onnx``: the whole dual path for one image size, where it exports
  (it needs the sync-free forward); a failure is reported and the other graphs are kept.

``--check`` runs every written graph in ONNX Runtime (CPU) on the export's inputs and compares
it with the PyTorch module (largest difference relative to the largest PyTorch value), failing
above ``--tolerance``. ``manifest.json`` lists the graphs, their inputs, outputs and checks.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1


def _parse_hw(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition('x')
    if not (height.isdigit() and width.isdigit()) or int(height) < 16 or int(width) < 16:
        raise argparse.ArgumentTypeError(f'image size must be HxW pixels, e.g. 720x1280: {text!r}')
    return int(height), int(width)


def register(subparsers: Any) -> None:
    """Adds ``export-onnx`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'export-onnx',
        help='export the networks and the dual path to ONNX (static shapes per person bucket)',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('whole_body_file', type=Path, metavar='WHOLE_BODY_FILE')
    parser.add_argument('hand_file', type=Path, metavar='HAND_FILE')
    parser.add_argument('out_dir', type=Path, metavar='OUT_DIR')
    parser.add_argument(
        '--persons', type=int, default=4, help='largest person bucket exported (default 4)'
    )
    parser.add_argument(
        '--precision',
        choices=('fp32', 'fp16'),
        default='fp32',
        help='graph precision (fp16 casts the weights; TensorRT builds fp16 from fp32 graphs)',
    )
    parser.add_argument('--hand-adapter', type=Path, help='hand adapter file (optional)')
    parser.add_argument('--body-adapter', type=Path, help='body adapter file (optional)')
    parser.add_argument(
        '--body-model-dir',
        type=Path,
        help='folder with SMPLX_NEUTRAL.npz; needed for the dual_path graph (it bakes SMPL-X in)',
    )
    parser.add_argument(
        '--image-size',
        type=_parse_hw,
        default=(480, 640),
        metavar='HxW',
        help='image size of the dual_path graph (default 480x640)',
    )
    parser.add_argument('--device', default='cpu', help="export device (default 'cpu')")
    parser.add_argument(
        '--check', action='store_true', help='compare every graph in ONNX Runtime with PyTorch'
    )
    parser.add_argument('--tolerance', type=float, default=1e-4, help='relative (default 1e-4)')
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hmr_ros.checkpoints.safe_load import CheckpointError
    from hmr_ros.models.dual_path import DualPathConfig
    from hmr_ros.models.dual_path_builder import build_dual_path
    from hmr_ros.pipeline.buckets import person_buckets

    if args.persons < 1:
        logger.error('--persons must be at least 1, got %d', args.persons)
        return EXIT_FAILURE
    device = torch.device(args.device)
    dtype = torch.float16 if args.precision == 'fp16' else torch.float32
    with tempfile.TemporaryDirectory() as scratch:
        body_model_dir = args.body_model_dir
        if body_model_dir is None:
            # The networks do not use SMPL-X; a generated stand-in completes the module, and the
            # dual_path graph (which would bake it in) is skipped.
            from hmr_ros.body_models.synthetic import write_smplx_model

            write_smplx_model(Path(scratch), seed=0)
            body_model_dir = Path(scratch)
        try:
            build = build_dual_path(
                args.whole_body_file,
                args.hand_file,
                body_model_dir,
                hand_adapter_file=args.hand_adapter,
                body_adapter_file=args.body_adapter,
                config=DualPathConfig(),
                device=device,
            )
        except (CheckpointError, FileNotFoundError, ValueError) as error:
            logger.error('cannot load the models: %s', error)
            return EXIT_FAILURE
        entries = []
        failed = False
        for bucket in person_buckets(args.persons):
            for entry in _export_bucket(args, build.model, bucket, dtype, device):
                entries.append(entry)
                failed |= entry.get('check_ok') is False
        if args.body_model_dir is None:
            entries.append({'graph': 'dual_path', 'skipped': 'needs --body-model-dir'})
    args.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        'whole_body_file': str(args.whole_body_file),
        'hand_file': str(args.hand_file),
        'model_version': build.model_version,
        'adapters': build.model.adapters,
        'precision': args.precision,
        'graphs': entries,
    }
    (args.out_dir / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
    for entry in entries:
        print(_summary(entry))
    return EXIT_FAILURE if failed else EXIT_OK


def _export_bucket(
    args: argparse.Namespace,
    model: Any,
    bucket: int,
    dtype: torch.dtype,
    device: torch.device,
) -> list[dict[str, Any]]:
    from hmr_ros.pipeline.backends.engines import export_model_copy
    from hmr_ros.pipeline.backends.onnx_export import (
        ExportError,
        dual_path_spec,
        export_graph,
        hand_path_spec,
        whole_body_spec,
    )

    specs = [
        whole_body_spec(model, bucket, dtype, device),
        hand_path_spec(model, bucket, dtype, device),
    ]
    names = [f'whole_body_b{bucket}.onnx', f'hand_path_b{bucket}.onnx']
    if args.body_model_dir is not None:
        height, width = args.image_size
        specs.append(dual_path_spec(model, bucket, args.image_size, device))
        names.append(f'dual_path_b{bucket}_{height}x{width}.onnx')
    entries = []
    for spec, name in zip(specs, names, strict=True):
        if spec.name == 'dual_path' and dtype != torch.float32:
            entries.append({'graph': name, 'skipped': 'the dual_path graph is exported in fp32'})
            continue
        spec = spec._replace(module=export_model_copy(spec.module, dtype))
        entry: dict[str, Any] = {
            'graph': name,
            'inputs': {
                n: list(t.shape) for n, t in zip(spec.input_names, spec.inputs, strict=True)
            },
            'outputs': list(spec.output_names),
        }
        try:
            export_graph(spec, args.out_dir / name)
        except ExportError as error:
            entry['error'] = str(error)
            if spec.name != 'dual_path':
                entry['check_ok'] = False  # the networks must export
            entries.append(entry)
            continue
        if args.check:
            entry.update(check_graph(spec, args.out_dir / name, args.tolerance))
        entries.append(entry)
    return entries


def check_graph(spec: Any, path: Path, tolerance: float) -> dict[str, Any]:
    """Run a written graph in ONNX Runtime (CPU) and compare each output with PyTorch.

    Returns:
        ``check_max_relative`` (worst output), ``check_worst_output`` and ``check_ok``.
    """
    from hmr_ros.pipeline.backends.onnxruntime import OrtRunner

    cpu = torch.device('cpu')
    inputs = tuple(t.to(cpu) for t in spec.inputs)
    module = spec.module.to(cpu)
    with torch.no_grad():
        expected = module(*inputs)
    runner = OrtRunner(str(path), cpu, inputs[0].dtype)
    got = runner(inputs)
    worst_name, worst = '', 0.0
    for name, reference, value in zip(spec.output_names, expected, got, strict=True):
        reference, value = reference.float(), value.float()
        scale = float(reference.abs().max()) or 1.0
        relative = float((reference - value).abs().max()) / scale
        if relative >= worst:
            worst_name, worst = name, relative
    return {
        'check_max_relative': worst,
        'check_worst_output': worst_name,
        'check_ok': worst <= tolerance,
    }


def _summary(entry: dict[str, Any]) -> str:
    if 'skipped' in entry:
        return f'{entry["graph"]}: skipped ({entry["skipped"]})'
    if 'error' in entry:
        return f'{entry["graph"]}: NOT EXPORTED: {entry["error"]}'
    text = f'{entry["graph"]}: inputs {entry["inputs"]}'
    if 'check_ok' in entry:
        verdict = 'ok' if entry['check_ok'] else 'FAILED'
        text += (
            f'; onnxruntime vs PyTorch {verdict}: max relative {entry["check_max_relative"]:.2e}'
            f' ({entry["check_worst_output"]})'
        )
    return text
