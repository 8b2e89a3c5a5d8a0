"""``hmr-ros data``: convert the paper's data sets and report what a converted folder holds.

    hmr-ros data convert NAME ROOT OUT.npz [--split S] [--body-model-dir DIR] [options]
    hmr-ros data check DIR_OR_INDEX [--image-root DIR] [--check-images N]

``convert`` reads one split of a data set in its published layout (hmr_ros.datasets.catalog
lists the names; docs/datasets.md says where each comes from and under which licence) and
writes the canonical index that ``hmr-ros train`` and ``hmr-ros eval`` read. ``check`` prints,
for each index in a folder, its samples, fields, the crops the two adapter trainings get from
it (and how many hand crops carry body-pose guidance), its ground truth and missing images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hmr_ros.body_models.model_files import BodyModelFileNotFoundError

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _convert(args: argparse.Namespace) -> int:
    from hmr_ros.datasets.catalog import convert
    from hmr_ros.datasets.safe_pickle import UnsafePickleError
    from hmr_ros.datasets.sample import save_index

    options: dict[str, Any] = {}
    if args.annotation:
        options['annotation'] = args.annotation
    if args.sample_interval:
        options['sample_interval'] = args.sample_interval
    if args.keep_egocentric:
        options['keep_egocentric'] = True
    if args.annotation_subset:
        options['annotation_subset'] = args.annotation_subset
    if args.resolution:
        options['resolution'] = args.resolution
    if args.include_kids:
        options['include_kids'] = True
    try:
        samples = convert(args.name, args.root, args.split, args.body_model_dir, **options)
    except (KeyError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, BodyModelFileNotFoundError, UnsafePickleError) as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_FAILURE
    if not samples:
        print(f'error: {args.name} {args.split or "(default split)"}: no samples', file=sys.stderr)
        return EXIT_FAILURE
    path = save_index(args.out, samples, image_root=args.root)
    print(f'{args.name}: {len(samples)} samples -> {path}')
    return 0


def _check(args: argparse.Namespace) -> int:
    from hmr_ros.datasets.catalog import summarize_index

    target = Path(args.path)
    indexes = sorted(target.glob('*.npz')) if target.is_dir() else [target]
    if not indexes or not all(p.is_file() for p in indexes):
        print(f'error: no converted .npz index at {target}', file=sys.stderr)
        return EXIT_FAILURE
    failed = 0
    for index in indexes:
        try:
            summary = summarize_index(index, args.image_root, args.check_images)
        except (ValueError, KeyError, OSError) as error:
            print(f'{index}: not a readable index ({error})')
            failed += 1
            continue
        print('\n'.join(summary.lines()))
    return EXIT_FAILURE if failed else 0


def register(subparsers: Any) -> None:
    """Adds ``data`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'data',
        help='convert data sets to canonical indexes; report what an index holds',
        description=__doc__.split('\n\n', 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    convert = actions.add_parser('convert', help='convert one split of a data set')
    convert.add_argument(
        'name',
        metavar='NAME',
        help='ARCTIC, BEDLAM, RICH, Human3.6M, InterHand2.6M, 3DPW, AGORA, FreiHAND or EHF '
        '(hmr_ros.datasets.catalog.CONVERTERS)',
    )
    convert.add_argument('root', type=Path, help="the data set's folder, published layout")
    convert.add_argument('out', type=Path, help='the index to write (.npz)')
    convert.add_argument('--split', default='', help="split (default: the converter's first)")
    convert.add_argument(
        '--body-model-dir',
        default='',
        help='SMPLX_NEUTRAL.npz / MANO_{RIGHT,LEFT}.pkl (where needed)',
    )
    convert.add_argument(
        '--annotation',
        default='',
        help='HumanData file instead of ROOT/preprocessed_datasets/<default> (AGORA: a '
        'dataframe file or folder instead of ROOT/<split>_SMPLX/SMPLX)',
    )
    convert.add_argument(
        '--sample-interval',
        type=int,
        default=0,
        help='keep every k-th sample or frame (0 = the protocol default)',
    )
    convert.add_argument(
        '--keep-egocentric',
        action='store_true',
        help='ARCTIC test: keep the egocentric view (the protocol drops it)',
    )
    convert.add_argument(
        '--annotation-subset',
        default='',
        help="InterHand2.6M: annotations/<subset>/ of older copies ('all')",
    )
    convert.add_argument(
        '--resolution',
        default='',
        choices=('', '3840x2160', '1280x720'),
        help='AGORA: which images the samples point at (default 3840x2160)',
    )
    convert.add_argument(
        '--include-kids',
        action='store_true',
        help="AGORA: keep children (meshes of AGORA's kid model); refused by default",
    )
    convert.set_defaults(func=_convert)
    check = actions.add_parser('check', help='report what converted indexes hold')
    check.add_argument('path', type=Path, help='a folder of .npz indexes or one index')
    check.add_argument('--image-root', default=None, help='where the images are now')
    check.add_argument(
        '--check-images',
        type=int,
        default=100,
        help='image files to test for existence (-1 = all, 0 = none)',
    )
    check.set_defaults(func=_check)
