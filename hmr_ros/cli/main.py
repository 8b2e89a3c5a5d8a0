"""The ``hmr-ros`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (taking the parsed namespace, returning an exit code). Subcommand modules keep heavy
or optional imports inside their functions, so ``hmr-ros --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Subcommand modules under hmr_ros.cli, in the order --help lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    'assets',
    'checkpoints',
    'infer',
    'train',
    'evaluate',
    'doctor',
    'export',
    'bench',
    'data',
)


def build_parser() -> argparse.ArgumentParser:
    """Builds the top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog='hmr-ros',
        description='Real-time SMPL-X human mesh recovery (HMR-Adapter) tools.',
    )
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f'hmr_ros.cli.{name}').register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(levelname)s %(name)s: %(message)s',
    )
    return int(args.func(args))


if __name__ == '__main__':
    sys.exit(main())
