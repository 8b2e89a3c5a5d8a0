"""Launch profiles (``profile:=orin``): their files exist and hold valid hmr_node parameters."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from hmr_ros.models.registry import entry_for_variant
from hmr_ros.ros.params import HmrNodeParams, parameters_from_values

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / 'launch' / 'live.launch.py'


def _profiles() -> dict[str, str]:
    module = ast.parse(LAUNCH_FILE.read_text())
    for node in module.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'PROFILES':
            return dict(ast.literal_eval(node.value))
    raise AssertionError('live.launch.py defines no PROFILES')


def _flatten(tree: dict, prefix: str = '') -> dict:
    flat: dict = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def _values(file_name: str) -> dict:
    tree = yaml.safe_load((REPO / 'config' / file_name).read_text())
    return _flatten(tree['/**']['ros__parameters'])


def test_profile_files_hold_declared_parameters_with_valid_values() -> None:
    profiles = _profiles()
    assert profiles['default'] == '' and 'orin' in profiles
    for file_name in filter(None, profiles.values()):
        parameters_from_values(_values(file_name))  # unknown names or bad values raise


def test_orin_profile_selects_light_models_and_fp16() -> None:
    values = _values(_profiles()['orin'])
    params: HmrNodeParams = parameters_from_values(values)
    entry = entry_for_variant(params.model.whole_body_variant, 'body')
    assert entry.light and entry.name == 'fastmetro'
    assert params.model.precision == 'fp16'
    # No adapter can run with FastMETRO (registry: adapters only for SMPLer-X/HaMeR).
    assert not entry.adapters and params.model.adapters == 'none'
