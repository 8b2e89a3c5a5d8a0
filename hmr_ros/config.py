"""Configuration files: YAML overrides onto frozen dataclasses (docs/development.md).

Each layer owns a ``@dataclass(frozen=True)`` next to the code it configures (the training
configs in hmr_ros.training.config, the evaluation config in hmr_ros.evaluation.evaluator, the
model and loss dataclasses they nest). A YAML file holds only the values that differ from the
defaults; this module reads it with ``yaml.safe_load`` (no code runs, no object tags) and builds
the dataclass, field by field:

- an unknown key is an error that names the valid keys at that level (yacs' silent
  ``new_allowed`` is what we avoid);
- values are checked against the field's annotation: ``int``, ``float`` (an integer is
  accepted), ``bool``, ``str``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]`` and
  ``tuple[X, Y]`` (from YAML lists), ``dict[str, X]``, and nested dataclasses (from mappings,
  overriding the default instance key by key);
- the dataclass's own ``__post_init__`` then validates the values together.

Dotted command-line overrides (``optimizer.lr=1e-4``) become the same nested mappings with
``parse_overrides``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    'ConfigError',
    'config_from_mapping',
    'config_to_dict',
    'load_config',
    'merge_overrides',
    'parse_overrides',
]

T = TypeVar('T')


class ConfigError(ValueError):
    """A configuration file or override does not fit its dataclass; the message says where."""


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace('typing.', '')


def _convert(value: Any, annotation: Any, where: str, default: Any) -> Any:
    """``value`` checked and converted to ``annotation``; ``default`` is the current value."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f'{where} must be a mapping of {annotation.__name__} fields; got {value!r}'
            )
        base = default if isinstance(default, annotation) else None
        return config_from_mapping(annotation, value, base=base, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f'{where} must not be null')
        errors = []
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _convert(value, arm, where, default)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(' / '.join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f'{where} must be one of {list(args)}; got {value!r}')
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where} must be a list ({_type_name(annotation)}); got {value!r}')
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f'{where}[{i}]', None) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f'{where} must have {len(args)} entries; got {len(value)}')
        return tuple(
            _convert(v, arm, f'{where}[{i}]', None)
            for i, (v, arm) in enumerate(zip(value, args, strict=True))
        )
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f'{where} must be a mapping; got {value!r}')
        key_type, value_type = args
        return {
            _convert(k, key_type, f'{where} key', None): _convert(
                v, value_type, f'{where}.{k}', None
            )
            for k, v in value.items()
        }
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where} must be true or false; got {value!r}')
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where} must be an integer; got {value!r}')
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where} must be a number; got {value!r}')
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where} must be a string; got {value!r} (quote it in YAML)')
        return value
    if annotation is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f'{where} must be a path string; got {value!r}')
        return Path(value)
    raise ConfigError(f'{where} has a type this loader does not read: {_type_name(annotation)}')


def config_from_mapping(
    cls: type[T], overrides: Mapping[str, Any], *, base: T | None = None, where: str = ''
) -> T:
    """Build a frozen dataclass from ``base`` (or its defaults) and a mapping of overrides.

    Args:
        cls: the dataclass type.
        overrides: field name -> value (nested mappings for nested dataclasses).
        base: instance whose values the overrides replace; None starts from the defaults, and
            then every field without a default must be given.
        where: dotted location for messages ('' at the top).

    Returns:
        A new instance (validated by its ``__post_init__``).

    Raises:
        ConfigError: unknown key (the valid keys are listed), wrong type, missing required
            field, or a value the dataclass rejects.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f'{cls!r} is not a dataclass type')
    if not isinstance(overrides, Mapping):
        raise ConfigError(f'{where or cls.__name__} must be a mapping; got {overrides!r}')
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in overrides if k not in fields)
    if unknown:
        raise ConfigError(
            f'unknown key{"s" if len(unknown) > 1 else ""} {", ".join(map(repr, unknown))} in '
            f'{where or cls.__name__}; valid keys: {", ".join(fields)}'
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    missing = []
    for name, field in fields.items():
        location = f'{where}.{name}' if where else name
        if base is not None:
            current = getattr(base, name)
        elif field.default is not dataclasses.MISSING:
            current = field.default
        elif field.default_factory is not dataclasses.MISSING:
            current = field.default_factory()
        else:
            current = dataclasses.MISSING
        if name in overrides:
            values[name] = _convert(overrides[name], hints[name], location, current)
        elif current is dataclasses.MISSING:
            missing.append(location)
        else:
            values[name] = current
    if missing:
        raise ConfigError(f'missing required key{"s" if len(missing) > 1 else ""}: {missing}')
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f'{where or cls.__name__}: {error}') from error


def merge_overrides(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings merged key by key; values of ``extra`` win."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(assignments: Sequence[str]) -> dict[str, Any]:
    """``['optimizer.lr=1e-4', 'data.indexes=[a.npz]']`` -> nested mapping of YAML values.

    Raises:
        ConfigError: an assignment without '=' or with an empty key.
    """
    result: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition('=')
        parts = key.strip().split('.')
        if not sep or not all(parts):
            raise ConfigError(f'override {assignment!r} must look like section.key=value')
        value = yaml.safe_load(text) if text.strip() else ''
        nested: dict[str, Any] = {parts[-1]: value}
        for part in reversed(parts[:-1]):
            nested = {part: nested}
        result = merge_overrides(result, nested)
    return result


def load_config(
    cls: type[T], path: str | Path | None, overrides: Mapping[str, Any] | None = None
) -> T:
    """Read a YAML file of overrides (and optional extra overrides) into ``cls``.

    Args:
        cls: the frozen dataclass the file configures.
        path: YAML file; None for defaults plus ``overrides`` only.
        overrides: applied after the file (e.g. parse_overrides of command-line values).

    Returns:
        The validated instance.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: see config_from_mapping; YAML syntax errors too.
    """
    data: Any = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f'config file {file} not found')
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f'{file} is not valid YAML: {error}') from error
        if not isinstance(data, Mapping):
            raise ConfigError(f'{file} must hold a mapping of {cls.__name__} fields')
    if overrides:
        data = merge_overrides(data, overrides)
    return config_from_mapping(cls, data)


def config_to_dict(config: Any) -> Any:
    """A dataclass as plain YAML/JSON-ready values (tuples become lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)
        }
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, Mapping):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config
