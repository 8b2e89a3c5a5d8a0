"""Tests for hmr_ros.checkpoints.safe_load: nothing in a file runs; clear errors; strict checks."""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hmr_ros.checkpoints.safe_load import (
    MAX_LISTED_KEYS,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    check_state_dict,
    load_state_dict_strict,
    load_torch_file,
    state_dict_shapes,
)


@contextlib.contextmanager
def _temporary_modules(names: list[str]) -> Iterator[None]:
    """Restores sys.modules entries ``names`` (present or absent) on exit."""
    saved = {name: sys.modules.get(name) for name in names}
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


FORMATS = pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])


def _save(obj: object, path: Path, zip_format: bool) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return path


class _SystemPayload:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f'touch {self.marker}',))


class _ExecPayload:
    """Unpickling this calls builtins.exec, which would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (builtins.exec, (f'open({str(self.marker)!r}, "w").close()',))


@FORMATS
@pytest.mark.parametrize('payload', [_SystemPayload, _ExecPayload], ids=['os.system', 'exec'])
def test_malicious_checkpoint_is_refused_and_payload_never_runs(
    tmp_path: Path, zip_format: bool, payload: type
) -> None:
    marker = tmp_path / 'marker'
    path = _save({'weight': torch.ones(3), 'evil': payload(marker)}, tmp_path / 'x.pt', zip_format)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_torch_file(path)
    assert not marker.exists()
    expected_global = 'posix.system' if payload is _SystemPayload else 'builtins.exec'
    if os.name == 'nt':
        expected_global = expected_global.replace('posix', 'nt')
    assert info.value.global_name == expected_global
    assert expected_global in str(info.value)
    assert str(path) in str(info.value)


def _legacy_file_with_pickle(path: Path, payload: bytes) -> Path:
    """Writes torch's legacy (non-zip) container around a hand-made pickle of the object."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    with path.open('wb') as file:
        pickle.dump(MAGIC_NUMBER, file, protocol=2)
        pickle.dump(PROTOCOL_VERSION, file, protocol=2)
        pickle.dump({'protocol_version': PROTOCOL_VERSION, 'little_endian': True}, file, 2)
        file.write(payload)
        pickle.dump([], file, protocol=2)  # storage keys
    return path


def test_build_on_an_allowed_function_is_refused(tmp_path: Path) -> None:
    """BUILD with slot state would setattr on the function; the restricted unpickler refuses.

    Pickle: GLOBAL torch._utils._rebuild_tensor_v2, then (None, {'__kwdefaults__': {...}}) and
    BUILD. weights_only rejects it, so the fallback must reject it too, leaving torch untouched.
    """
    target = torch._utils._rebuild_tensor_v2
    before = target.__kwdefaults__
    state = pickle.dumps({'__kwdefaults__': {'metadata': 'poisoned'}}, protocol=2)[2:-1]
    payload = (
        b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\n'
        + b'N'  # dict state: None
        + state  # slot state
        + pickle.TUPLE2
        + pickle.BUILD
        + pickle.STOP
    )
    path = _legacy_file_with_pickle(tmp_path / 'build.pt', payload)
    with pytest.raises(UnsafeCheckpointError, match='BUILD'):
        load_torch_file(path)
    assert target.__kwdefaults__ == before


@FORMATS
@pytest.mark.parametrize('mmap', [False, True], ids=['read', 'mmap'])
def test_plain_tensor_file_loads_with_tensors_equal(
    tmp_path: Path, zip_format: bool, mmap: bool
) -> None:
    state = OrderedDict(w=torch.randn(2, 3), n=torch.tensor(7))
    obj = {'network': state, 'epoch': 3, 'names': ('a', 'b')}
    loaded = load_torch_file(_save(obj, tmp_path / 'x.pth.tar', zip_format), mmap=mmap)
    assert loaded['epoch'] == 3 and loaded['names'] == ('a', 'b')
    assert list(loaded['network']) == ['w', 'n']
    for key, value in state.items():
        assert torch.equal(loaded['network'][key], value)
        assert loaded['network'][key].device.type == 'cpu'


def test_loaded_tensors_survive_rewriting_the_file(tmp_path: Path) -> None:
    """Without mmap (the default) tensors own their memory, so the file may be saved over."""
    path = _save({'w': torch.arange(1000.0)}, tmp_path / 'x.ckpt', True)
    loaded = load_torch_file(path)
    loaded['extra'] = torch.ones(1)
    torch.save(loaded, path)  # would fault on a memory-mapped tensor of the truncated file
    assert torch.equal(load_torch_file(path)['w'], torch.arange(1000.0))


def _fake_yacs_cfgnode_class() -> type:
    """A class pickled as yacs.config.CfgNode: a dict subclass with bookkeeping attributes."""

    class CfgNode(dict):
        def __init__(self, init: dict | None = None) -> None:
            super().__init__(init or {})
            self.__dict__['__immutable__'] = True
            self.__dict__['__new_allowed__'] = False
            self.__dict__['__deprecated_keys__'] = set()

    CfgNode.__module__ = 'yacs.config'
    CfgNode.__qualname__ = 'CfgNode'
    return CfgNode


@FORMATS
def test_fake_yacs_config_loads_as_plain_mapping(tmp_path: Path, zip_format: bool) -> None:
    """The yacs module exists only while saving; loading must not need (or import) it."""
    package, module = types.ModuleType('yacs'), types.ModuleType('yacs.config')
    cfg_node = _fake_yacs_cfgnode_class()
    module.CfgNode = cfg_node  # type: ignore[attr-defined]
    package.config = module  # type: ignore[attr-defined]
    with _temporary_modules(['yacs', 'yacs.config']):
        sys.modules['yacs'], sys.modules['yacs.config'] = package, module
        cfg = cfg_node({'MODEL': cfg_node({'IMAGE_SIZE': 256, 'MEAN': [0.485, 0.456]}), 'K': 1})
        ckpt = {'state_dict': {'w': torch.arange(4.0)}, 'hyper_parameters': {'cfg': cfg}}
        path = _save(ckpt, tmp_path / 'hamer.ckpt', zip_format)
    assert sys.modules.get('yacs.config') is not module
    loaded = load_torch_file(path)
    assert sys.modules.get('yacs.config') is not module
    cfg_loaded = loaded['hyper_parameters']['cfg']
    assert type(cfg_loaded) is dict and type(cfg_loaded['MODEL']) is dict
    assert cfg_loaded == {'MODEL': {'IMAGE_SIZE': 256, 'MEAN': [0.485, 0.456]}, 'K': 1}
    assert torch.equal(loaded['state_dict']['w'], torch.arange(4.0))


def _install_fake_omegaconf() -> tuple[type, type, type, type]:
    """Classes pickled under omegaconf's names, with omegaconf 2.x's pickled state layout.

    omegaconf containers pickle ``__dict__`` with ``_content`` (dict or list of nodes) and
    ``_metadata``; value nodes keep the value in ``_val``; ``ref_type`` is ``typing.Any``.
    """
    import typing

    class Metadata:
        def __init__(self) -> None:
            self.ref_type = typing.Any
            self.object_type = dict
            self.flags = {'readonly': False}

    class DictConfig:
        def __init__(self, content: dict) -> None:
            self._metadata = Metadata()
            self._parent = None
            self._content = content
            for node in content.values():
                node._parent = self

    class ListConfig(DictConfig):
        pass

    class AnyNode:
        def __init__(self, value: object) -> None:
            self._val = value
            self._metadata = Metadata()
            self._parent = None

    sys.modules['omegaconf'] = types.ModuleType('omegaconf')
    for cls, module in [
        (Metadata, 'omegaconf.base'),
        (DictConfig, 'omegaconf.dictconfig'),
        (ListConfig, 'omegaconf.listconfig'),
        (AnyNode, 'omegaconf.nodes'),
    ]:
        cls.__module__ = module
        cls.__qualname__ = cls.__name__
        fake = types.ModuleType(module)
        setattr(fake, cls.__name__, cls)
        sys.modules[module] = fake
    return Metadata, DictConfig, ListConfig, AnyNode


def test_omegaconf_like_config_loads_as_plain_values(tmp_path: Path) -> None:
    names = ['omegaconf', 'omegaconf.base', 'omegaconf.dictconfig', 'omegaconf.listconfig']
    with _temporary_modules([*names, 'omegaconf.nodes']):
        _, dict_config, list_config, any_node = _install_fake_omegaconf()
        mean = list_config({'0': any_node(0.485), '1': any_node(0.456)})
        mean._content = list(mean._content.values())
        cfg = dict_config(
            {
                'MODEL': dict_config({'IMAGE_SIZE': any_node(256), 'IMAGE_MEAN': mean}),
                'NAME': any_node('hamer'),
                'OUT': any_node('${NAME}_out'),
            }
        )
        path = _save({'hyper_parameters': {'cfg': cfg}}, tmp_path / 'h.ckpt', True)
    loaded = load_torch_file(path)
    assert loaded['hyper_parameters']['cfg'] == {
        'MODEL': {'IMAGE_SIZE': 256, 'IMAGE_MEAN': [0.485, 0.456]},
        'NAME': 'hamer',
        'OUT': '${NAME}_out',
    }


def test_real_omegaconf_and_yacs_configs_load_as_plain_values(tmp_path: Path) -> None:
    omegaconf = pytest.importorskip('omegaconf')
    yacs_config = pytest.importorskip('yacs.config')
    cfg = omegaconf.OmegaConf.create({'MODEL': {'IMAGE_SIZE': 256, 'MEAN': [0.4, 0.5]}})
    node = yacs_config.CfgNode({'EXTRA': yacs_config.CfgNode({'FOCAL_LENGTH': 5000})})
    path = _save({'hyper_parameters': {'cfg': cfg, 'yacs': node}}, tmp_path / 'h.ckpt', True)
    loaded = load_torch_file(path)['hyper_parameters']
    assert loaded == {
        'cfg': {'MODEL': {'IMAGE_SIZE': 256, 'MEAN': [0.4, 0.5]}},
        'yacs': {'EXTRA': {'FOCAL_LENGTH': 5000}},
    }


def test_numpy_values_load_through_the_restricted_path(tmp_path: Path) -> None:
    """A numpy scalar makes weights_only refuse the file; the restricted unpickler allows it."""
    obj = {'w': torch.ones(2), 'score': np.float64(0.25), 'arr': np.arange(3, dtype=np.int32)}
    loaded = load_torch_file(_save(obj, tmp_path / 'n.ckpt', True))
    assert loaded['score'] == 0.25 and loaded['score'].dtype == np.float64
    np.testing.assert_array_equal(loaded['arr'], np.arange(3, dtype=np.int32))


def test_missing_file_error_names_path_and_fix(tmp_path: Path) -> None:
    path = tmp_path / 'nowhere' / 'hamer.ckpt'
    with pytest.raises(CheckpointNotFoundError) as info:
        load_torch_file(path, hint='set the ROS parameter model.checkpoint_path')
    message = str(info.value)
    assert str(path) in message and 'model.checkpoint_path' in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)
    with pytest.raises(CheckpointNotFoundError, match='docs/licences.md'):
        load_torch_file(path)
    with pytest.raises(CheckpointNotFoundError, match='not a file'):
        load_torch_file(tmp_path)


@pytest.mark.parametrize('damage', ['truncated_zip', 'truncated_legacy', 'garbage', 'empty'])
def test_damaged_file_raises_corrupt_error(tmp_path: Path, damage: str) -> None:
    good = io.BytesIO()
    torch.save({'w': torch.randn(64, 64)}, good, _use_new_zipfile_serialization='zip' in damage)
    data = {
        'truncated_zip': good.getvalue()[: len(good.getvalue()) // 2],
        'truncated_legacy': good.getvalue()[: len(good.getvalue()) // 2],
        'garbage': b'<html>404 Not Found</html>' * 10,
        'empty': b'',
    }[damage]
    path = tmp_path / 'bad.ckpt'
    path.write_bytes(data)
    with pytest.raises(CorruptCheckpointError) as info:
        load_torch_file(path)
    assert str(path) in str(info.value) and 'download it again' in str(info.value)
    assert isinstance(info.value, CheckpointError)


def test_check_state_dict_reports_every_problem() -> None:
    expected = {'a.weight': (4, 3), 'a.bias': (4,), 'b.weight': (2, 2), 'disc.w': (1,)}
    found = {
        'a.weight': torch.zeros(4, 3),
        'a.bias': torch.zeros(5),
        'c.weight': torch.zeros(1),
        'mano.faces': torch.zeros(3),
    }
    with pytest.raises(CheckpointMismatchError) as info:
        check_state_dict(
            expected,
            found,
            allowed_missing=['disc.*'],
            allowed_unexpected=['mano.*'],
            context='x.ckpt does not match HandExpert',
        )
    error = info.value
    assert isinstance(error, ValueError)
    assert error.missing == ['b.weight']
    assert error.unexpected == ['c.weight']
    assert error.mismatched == [('a.bias', (4,), (5,))]
    message = str(error)
    assert message.startswith('x.ckpt does not match HandExpert: 1 missing, 1 unexpected, 1 ')
    for text in ('b.weight', 'c.weight', 'a.bias: [4] -> [5]'):
        assert text in message
    assert 'disc.w' not in message and 'mano.faces' not in message


def test_check_state_dict_accepts_shapes_and_passes_when_equal() -> None:
    expected = {'w': torch.Size([2, 3]), 'n': ()}
    check_state_dict(expected, {'w': torch.zeros(2, 3), 'n': torch.tensor(1)})
    check_state_dict(expected, {'w': (2, 3), 'n': []})


def test_mismatch_message_truncates_long_lists_with_counts() -> None:
    """50 missing keys: MAX_LISTED_KEYS (20) are listed, then '... and 30 more'."""
    expected = {f'k{i:02d}': (1,) for i in range(50)}
    with pytest.raises(CheckpointMismatchError) as info:
        check_state_dict(expected, {})
    message = str(info.value)
    assert len(info.value.missing) == 50
    assert 'missing (50):' in message
    assert f'... and {50 - MAX_LISTED_KEYS} more' in message
    assert 'k00' in message and 'k49' not in message


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)


def test_load_state_dict_strict_copies_values() -> None:
    source, target = _Tiny(), _Tiny()
    with torch.no_grad():
        source.norm.running_mean.fill_(0.5)
    load_state_dict_strict(target, {**source.state_dict(), 'discriminator.w': torch.zeros(1)},
                           allowed_unexpected=['discriminator.*'])  # fmt: skip
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_load_state_dict_strict_changes_nothing_on_mismatch() -> None:
    target = _Tiny()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state = {k: torch.zeros_like(v) for k, v in target.state_dict().items()}
    state['fc.weight'] = torch.zeros(2, 4)  # wrong shape
    del state['norm.running_var']
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(target, state)
    assert info.value.missing == ['norm.running_var']
    assert info.value.mismatched == [('fc.weight', (2, 3), (2, 4))]
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key])


def test_load_state_dict_strict_allowed_missing_keeps_current_values() -> None:
    target = _Tiny()
    kept = target.fc.bias.detach().clone()
    state = {k: torch.ones_like(v) for k, v in _Tiny().state_dict().items() if k != 'fc.bias'}
    load_state_dict_strict(target, state, allowed_missing=['fc.bias'])
    assert torch.equal(target.fc.bias, kept)
    assert torch.equal(target.fc.weight, torch.ones(2, 3))


def test_load_state_dict_strict_materialises_meta_module() -> None:
    with torch.device('meta'):
        target = _Tiny()
    assert state_dict_shapes(target)['fc.weight'] == (2, 3)
    source = _Tiny()
    load_state_dict_strict(target, source.state_dict())
    assert not any(t.is_meta for t in [*target.parameters(), *target.buffers()])
    assert torch.equal(target.fc.weight, source.fc.weight)
    with torch.device('meta'):
        wrong = nn.Linear(3, 5)
    with pytest.raises(CheckpointMismatchError):
        load_state_dict_strict(wrong, source.fc.state_dict())
