"""The YAML override loader: unknown keys, types, nesting, validation, command-line overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from hmr_ros.config import (
    ConfigError,
    config_from_mapping,
    config_to_dict,
    load_config,
    parse_overrides,
)


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f'rate must be >= 0; got {self.rate}')


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = Inner()
    maybe: Inner | None = None
    mode: Literal['a', 'b'] = 'a'
    count: int = 3
    flag: bool = False
    table: dict[str, int] = field(default_factory=dict)


def test_overrides_replace_only_the_given_keys() -> None:
    config = config_from_mapping(Outer, {'name': 'x', 'inner': {'rate': 2}, 'table': {'k': 1}})
    assert config == Outer(name='x', inner=Inner(rate=2.0), table={'k': 1})
    assert isinstance(config.inner.rate, float)


def test_unknown_keys_are_rejected_with_the_valid_ones_listed() -> None:
    with pytest.raises(ConfigError, match=r"'rte' in inner; valid keys: rate, sizes, pair"):
        config_from_mapping(Outer, {'name': 'x', 'inner': {'rte': 1.0}})
    with pytest.raises(ConfigError, match='valid keys: name, inner, maybe'):
        config_from_mapping(Outer, {'name': 'x', 'typo': 1})


@pytest.mark.parametrize(
    ('overrides', 'message'),
    [
        ({'count': 2.5}, 'count must be an integer'),
        ({'count': True}, 'count must be an integer'),
        ({'flag': 'yes'}, 'flag must be true or false'),
        ({'mode': 'c'}, r"mode must be one of \['a', 'b'\]"),
        ({'inner': {'rate': 'fast'}}, 'inner.rate must be a number'),
        ({'inner': {'pair': [1.0]}}, 'inner.pair must have 2 entries'),
        ({'inner': {'sizes': 3}}, 'inner.sizes must be a list'),
        ({'inner': {'rate': -1.0}}, 'inner: rate must be >= 0'),
        ({'inner': None}, 'inner must be a mapping of Inner fields; got None'),
    ],
)
def test_wrong_values_name_their_location(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping(Outer, {'name': 'x', **overrides})


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"missing required key: \['name'\]"):
        config_from_mapping(Outer, {})


def test_optional_nested_dataclass() -> None:
    assert config_from_mapping(Outer, {'name': 'x', 'maybe': {'rate': 1}}).maybe == Inner(1.0)
    assert config_from_mapping(Outer, {'name': 'x', 'maybe': None}).maybe is None


def test_yaml_file_and_command_line_overrides(tmp_path: Path) -> None:
    path = tmp_path / 'c.yaml'
    path.write_text('name: from_file\ninner:\n  sizes: [4, 5]\n  rate: 1.0\n')
    overrides = parse_overrides(['inner.rate=3', 'mode=b', 'maybe.pair=[2, 3]'])
    assert overrides == {'inner': {'rate': 3}, 'mode': 'b', 'maybe': {'pair': [2, 3]}}
    config = load_config(Outer, path, overrides)
    assert config.inner == Inner(rate=3.0, sizes=(4, 5))
    assert config.mode == 'b' and config.maybe == Inner(pair=(2.0, 3.0))
    assert config_from_mapping(Outer, config_to_dict(config)) == config


def test_bad_files_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(Outer, tmp_path / 'missing.yaml')
    path = tmp_path / 'list.yaml'
    path.write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='mapping'):
        load_config(Outer, path)
    with pytest.raises(ConfigError, match='section.key=value'):
        parse_overrides(['no_equals_sign'])
