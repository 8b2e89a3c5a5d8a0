"""``hmr-ros doctor``: check a machine and a parameter file before a robot depends on them.

Each check reports ``ok``, ``warn`` or ``error`` with what to fix; the exit status is 1 when any
error is found, 0 otherwise (warnings alone do not fail). Checks, in order:

1. Parameters (``--params FILE``, hmr_node's YAML): every name is a declared parameter (unknown
   names get the nearest declared one), every value in its type, range and choices, through the
   same validation the node runs (hmr_ros.ros.params).
2. Files: every configured checkpoint and the body-model folder exist and load *safely*, with
   the loaders the node uses (safetensors with an hmr_ros model card, or the restricted
   unpickler for official checkpoints: no code from a file runs); each file's SHA-256 is
   printed and compared with the known official files where hmr_ros knows one
   (:data:`KNOWN_SHA256`) and with the user's own pins (``--pins FILE``, written by
   ``--write-pins FILE``), so a fleet can tell that every robot runs the same files.
3. torch: version, CUDA build, visible GPUs and their compute capability, and whether
   ``model.device`` and ``model.precision`` resolve on this machine.
4. DDS: RMW implementation, domain id, discovery range, the Fast DDS / Cyclone DDS profile
   files named by the environment (exist, parse), and the kernel's socket receive buffer limit
   against what the large-image profile asks for (docs/dds-large-images.md explains why).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

Level = Literal['ok', 'warn', 'error']
EXIT_PROBLEMS = 1
# Official files whose SHA-256 is published or was measured on the authors' releases:
# file name -> {sha256: description}. The model authors publish no hashes for SMPL-X, MANO,
# SMPLer-X or HaMeR downloads and hmr_ros has not recorded any yet, so this starts empty;
# ``--pins`` carries a deployment's own reference hashes meanwhile.
KNOWN_SHA256: Mapping[str, Mapping[str, str]] = {}
CHECKPOINT_PARAMETERS = (
    'model.whole_body_checkpoint',
    'model.hand_checkpoint',
    'model.hand_adapter_checkpoint',
    'model.body_adapter_checkpoint',
)
# The UDP socket buffers config/fastdds_large_images.xml asks for (docs/dds-large-images.md);
# the kernel caps a socket's receive buffer at net.core.rmem_max.
PROFILE_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
RMEM_MAX_PATH = Path('/proc/sys/net/core/rmem_max')
DOMAIN_ID_MAX = 232  # DDS port arithmetic (RTPS 7400 + 250 * domain) stays below 65535


@dataclasses.dataclass(frozen=True)
class Finding:
    """One check's result.

    Attributes:
        level: 'ok', 'warn' or 'error'.
        topic: what was checked ('model.hand_checkpoint', 'torch', 'dds', ...).
        message: what was found.
        fix: what to do about it; empty when nothing.
    """

    level: Level
    topic: str
    message: str
    fix: str = ''


def read_parameter_file(path: Path, node: str = 'hmr_node') -> dict[str, Any]:
    """The dotted parameter names and values of one node in a ROS 2 parameter YAML file.

    The file maps node names ('/**', 'hmr_node', '/ns/hmr_node', ...) to
    ``{ros__parameters: {...}}``; nested mappings are dotted groups. Entries for '/**' and for
    names ending in the node's name are merged in file order, as rcl applies them.

    Raises:
        ValueError: the file is not such a YAML mapping.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'cannot read {path}: {error}') from error
    if not isinstance(document, dict):
        raise ValueError(f'{path} is not a ROS 2 parameter file (a mapping of node names)')
    values: dict[str, Any] = {}
    for name, entry in document.items():
        applies = name in ('/**', node) or str(name).rstrip('/').endswith(f'/{node}')
        if not applies:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get('ros__parameters'), dict):
            raise ValueError(f'{path}: {name!r} has no ros__parameters mapping')
        values.update(_flatten(entry['ros__parameters']))
    return values


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def check_parameters(values: Mapping[str, Any]) -> tuple[list[Finding], Any]:
    """Validate dotted names and values as hmr_node does; returns findings and the params.

    The params are None when they do not validate.
    """
    from hmr_ros.ros.params import parameter_entries, parameters_from_values

    declared = [entry.name for entry in parameter_entries()]
    # rclpy's own parameters, which every node accepts.
    known = {*declared, 'use_sim_time', 'start_type_description_service'}
    findings = []
    usable: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith('qos_overrides.'):
            continue
        if name not in known:
            nearest = difflib.get_close_matches(name, declared, n=1)
            hint = f'did you mean {nearest[0]}?' if nearest else 'see config/hmr_ros.yaml'
            findings.append(
                Finding('error', name, 'is not a parameter of hmr_node', f'remove it; {hint}')
            )
        elif name in declared:
            usable[name] = value
    try:
        params: Any = parameters_from_values(usable)
    except (ValueError, TypeError) as error:
        findings.append(Finding('error', 'parameters', str(error), 'correct the value'))
        return findings, None
    if not findings:
        findings.append(Finding('ok', 'parameters', f'{len(values)} values valid'))
    return findings, params


def _known_file(path: Path, digest: str) -> Finding | None:
    official = KNOWN_SHA256.get(path.name)
    if official is None:
        return None
    if digest in official:
        return Finding('ok', path.name, f'SHA-256 matches the official {official[digest]}')
    return Finding(
        'error',
        path.name,
        f'SHA-256 {digest} matches no official release of {path.name}',
        'download the file again from its official site',
    )


def _check_checkpoint(parameter: str, path: Path) -> Iterator[Finding]:
    from hmr_ros.checkpoints.project_format import load_model_file
    from hmr_ros.checkpoints.safe_load import CheckpointError, load_torch_file

    try:
        if path.suffix == '.safetensors':
            _, card = load_model_file(path)
            yield Finding(
                'ok',
                parameter,
                f'{path}: hmr_ros model file, {card.model} {card.variant}'
                + (
                    f', converted from a file with SHA-256 {card.source_sha256}'
                    if card.source_sha256
                    else ''
                ),
            )
        else:
            load_torch_file(path, mmap=True)
            yield Finding(
                'ok',
                parameter,
                f'{path}: official checkpoint, loads safely',
                'convert it once (hmr-ros convert-checkpoint) to start faster',
            )
    except CheckpointError as error:
        yield Finding('error', parameter, str(error), 'replace or re-convert the file')


def _check_body_models(folder: Path) -> Iterator[Finding]:
    from hmr_ros.body_models.model_files import BodyModelFileNotFoundError, BodyModelFiles
    from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel

    try:
        files = BodyModelFiles.from_folder(folder)
    except BodyModelFileNotFoundError as error:
        yield Finding('error', 'model.body_model_dir', str(error))
        return
    loaders = (
        (files.smplx, lambda: SMPLXBodyModel.from_folder(folder)),
        (files.mano_right, lambda: MANOHandModel.from_folder(folder, 'right')),
        (files.mano_left, lambda: MANOHandModel.from_folder(folder, 'left')),
    )
    for path, load in loaders:
        try:
            load()
        except Exception as error:  # the loaders raise many types for damaged files
            yield Finding(
                'error',
                'model.body_model_dir',
                f'{path} does not load: {type(error).__name__}: {error}',
                'download it again from its official site (docs/licences.md)',
            )
        else:
            yield Finding('ok', 'model.body_model_dir', f'{path} loads')


def file_parameters(params: Any) -> dict[str, Path]:
    """Parameter name -> path of every configured model file (empty ones skipped)."""
    files = {}
    for name in CHECKPOINT_PARAMETERS:
        value = getattr(params.model, name.split('.', 1)[1])
        if value:
            files[name] = Path(value).expanduser()
    return files


def check_files(params: Any, pins: Mapping[str, str]) -> tuple[list[Finding], dict[str, str]]:
    """Existence, safe loading and SHA-256 of every configured file.

    Args:
        params: validated HmrNodeParams.
        pins: file path or name -> expected SHA-256 (the user's pins).

    Returns:
        Findings, and path -> SHA-256 of every file hashed.
    """
    from hmr_ros.checkpoints.project_format import sha256_file

    findings: list[Finding] = []
    digests: dict[str, str] = {}
    if params.model.use_test_assets:
        findings.append(
            Finding(
                'warn',
                'model.use_test_assets',
                'true: the node runs on random stand-in weights and its outputs are meaningless',
                'set it false and configure the model files for real use',
            )
        )
        return findings, digests
    required = ('model.whole_body_checkpoint', 'model.hand_checkpoint')
    configured = file_parameters(params)
    for name in required:
        if name not in configured:
            findings.append(Finding('error', name, 'is empty', 'set it to the converted file'))
    paths = dict(configured)
    if params.model.body_model_dir:
        folder = Path(params.model.body_model_dir).expanduser()
        findings.extend(_check_body_models(folder))
        if folder.is_dir():
            for file in sorted(folder.iterdir()):
                if file.suffix in ('.npz', '.pkl') and file.is_file():
                    paths[f'model.body_model_dir/{file.name}'] = file
    else:
        findings.append(
            Finding('error', 'model.body_model_dir', 'is empty', 'set it to the SMPL-X folder')
        )
    for name, path in configured.items():
        if not path.is_file():
            findings.append(Finding('error', name, f'{path} does not exist', 'fix the path'))
            continue
        findings.extend(_check_checkpoint(name, path))
    for name, path in paths.items():
        if not path.is_file():
            continue
        digest = sha256_file(path)
        digests[str(path)] = digest
        findings.append(Finding('ok', name, f'SHA-256 {digest}'))
        known = _known_file(path, digest)
        if known is not None:
            findings.append(known)
        pinned = pins.get(str(path), pins.get(path.name))
        if pinned is not None and pinned != digest:
            findings.append(
                Finding(
                    'error',
                    name,
                    f'{path} changed: SHA-256 {digest}, pinned {pinned}',
                    'restore the pinned file, or re-pin with --write-pins after checking it',
                )
            )
        elif pinned is not None:
            findings.append(Finding('ok', name, 'matches its pin'))
    return findings, digests


def check_torch(params: Any | None) -> list[Finding]:
    """The torch build, the GPUs, and whether model.device / model.precision resolve."""
    import torch

    from hmr_ros.models.devices import DeviceUnavailableError, resolve_device, resolve_precision

    findings = [
        Finding(
            'ok',
            'torch',
            f'torch {torch.__version__}, CUDA build {torch.version.cuda or "none (CPU only)"}',
        )
    ]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            findings.append(
                Finding(
                    'ok',
                    'gpu',
                    f'cuda:{index} {torch.cuda.get_device_name(index)}, compute capability '
                    f'{major}.{minor}',
                )
            )
    else:
        findings.append(
            Finding(
                'warn',
                'gpu',
                'no CUDA GPU visible: the node runs on the CPU, far from camera rate at full size',
                'install a CUDA build of torch for this machine (JetPack wheels on Jetson)',
            )
        )
    if params is not None:
        try:
            device = resolve_device(params.model.device, 'model.device')
            precision = resolve_precision(params.model.precision, device)
        except (DeviceUnavailableError, ValueError) as error:
            findings.append(Finding('error', 'model.device', str(error), 'pick a present device'))
        else:
            findings.append(Finding('ok', 'model.device', f'{device}, {precision}'))
    return findings


def _profile_file(env: Mapping[str, str], variable: str, kind: str) -> Iterator[Finding]:
    value = env.get(variable, '')
    if not value:
        return
    path = Path(value.removeprefix('file://'))
    if not path.is_file():
        yield Finding(
            'error', 'dds', f'{variable}={value}: no such file', f'fix or unset {variable}'
        )
        return
    try:
        ElementTree.parse(path)
    except ElementTree.ParseError as error:
        yield Finding('error', 'dds', f'{variable}: {path} is not valid XML ({error})')
        return
    yield Finding('ok', 'dds', f'{variable}: {path} ({kind} profile)')


def check_dds(environment: Mapping[str, str] | None = None) -> list[Finding]:
    """DDS settings from the environment and the kernel's socket buffer limit."""
    env = os.environ if environment is None else environment
    findings = [
        Finding(
            'ok',
            'dds',
            f'RMW_IMPLEMENTATION={env.get("RMW_IMPLEMENTATION") or "(default: rmw_fastrtps_cpp)"}',
        )
    ]
    domain = env.get('ROS_DOMAIN_ID', '')
    if domain:
        if not domain.isdigit() or int(domain) > DOMAIN_ID_MAX:
            findings.append(
                Finding(
                    'error',
                    'dds',
                    f'ROS_DOMAIN_ID={domain!r} is not an integer in [0, {DOMAIN_ID_MAX}]',
                    'use 0-101 (safe with Linux ephemeral ports)',
                )
            )
        else:
            findings.append(Finding('ok', 'dds', f'ROS_DOMAIN_ID={domain}'))
    if env.get('ROS_LOCALHOST_ONLY') == '1':
        findings.append(
            Finding(
                'warn',
                'dds',
                'ROS_LOCALHOST_ONLY=1 is deprecated since Jazzy',
                'use ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST',
            )
        )
    if env.get('ROS_AUTOMATIC_DISCOVERY_RANGE') == 'OFF':
        findings.append(
            Finding(
                'warn',
                'dds',
                'ROS_AUTOMATIC_DISCOVERY_RANGE=OFF: no other process (camera driver) is found',
                'use SUBNET or LOCALHOST',
            )
        )
    for variable in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        findings.extend(_profile_file(env, variable, 'Fast DDS'))
    findings.extend(_profile_file(env, 'CYCLONEDDS_URI', 'Cyclone DDS'))
    findings.append(check_receive_buffer())
    return findings


def check_receive_buffer(path: Path = RMEM_MAX_PATH) -> Finding:
    """net.core.rmem_max against the socket buffers of the large-image DDS profile."""
    try:
        rmem_max = int(path.read_text().strip())
    except (OSError, ValueError):
        return Finding('ok', 'dds', f'{path} not readable here (not Linux?): not checked')
    if rmem_max < PROFILE_SOCKET_BUFFER_BYTES:
        return Finding(
            'warn',
            'dds',
            f'net.core.rmem_max is {rmem_max} bytes, below the {PROFILE_SOCKET_BUFFER_BYTES} '
            'the large-image Fast DDS profile asks for: best-effort camera images lose '
            'fragments',
            f'sudo sysctl -w net.core.rmem_max={PROFILE_SOCKET_BUFFER_BYTES} and see '
            'docs/dds-large-images.md, or use a reliable camera publisher',
        )
    return Finding('ok', 'dds', f'net.core.rmem_max {rmem_max} bytes')


def read_pins(path: Path) -> dict[str, str]:
    """A ``sha256sum``-style file: '<hex>  <path>' per line."""
    pins = {}
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip() or line.startswith('#'):
            continue
        digest, _, name = line.partition('  ')
        if len(digest) != 64 or not name:
            raise ValueError(f'{path}:{number}: expected "<sha256>  <path>"')
        pins[name] = digest
    return pins


def run_doctor(
    params_file: Path | None,
    node: str = 'hmr_node',
    pins_file: Path | None = None,
    write_pins: Path | None = None,
) -> list[Finding]:
    """Every check; returns the findings in order."""
    findings: list[Finding] = []
    params = None
    if params_file is None:
        findings.append(
            Finding('warn', 'parameters', 'no --params file: only the machine is checked')
        )
    else:
        try:
            values = read_parameter_file(params_file, node)
        except ValueError as error:
            findings.append(Finding('error', 'parameters', str(error)))
        else:
            checked, params = check_parameters(values)
            findings.extend(checked)
    pins: dict[str, str] = {}
    if pins_file is not None:
        try:
            pins = read_pins(pins_file)
        except (OSError, ValueError) as error:
            findings.append(Finding('error', 'pins', str(error)))
    if params is not None:
        file_findings, digests = check_files(params, pins)
        findings.extend(file_findings)
        if write_pins is not None:
            write_pins.write_text(
                ''.join(f'{digest}  {path}\n' for path, digest in sorted(digests.items())),
                encoding='utf-8',
            )
            findings.append(Finding('ok', 'pins', f'{len(digests)} pins written to {write_pins}'))
    findings.extend(check_torch(params))
    findings.extend(check_dds())
    return findings


def format_findings(findings: list[Finding]) -> str:
    """One line per finding, the fix indented below it, and a closing count."""
    lines = []
    for finding in findings:
        lines.append(f'[{finding.level:5}] {finding.topic}: {finding.message}')
        if finding.fix and finding.level != 'ok':
            lines.append(f'        fix: {finding.fix}')
    errors = sum(f.level == 'error' for f in findings)
    warnings = sum(f.level == 'warn' for f in findings)
    lines.append(f'{errors} error(s), {warnings} warning(s)')
    return '\n'.join(lines)


def _run(args: argparse.Namespace) -> int:
    findings = run_doctor(args.params, args.node, args.pins, args.write_pins)
    print(format_findings(findings))
    return EXIT_PROBLEMS if any(f.level == 'error' for f in findings) else 0


def register(subparsers: Any) -> None:
    """Adds ``doctor`` to the ``hmr-ros`` command."""
    parser = subparsers.add_parser(
        'doctor',
        help='check files, torch, GPU and DDS settings; exit 1 on problems',
        description=sys.modules[__name__].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--params', type=Path, metavar='FILE', help="hmr_node's parameter YAML")
    parser.add_argument('--node', default='hmr_node', help='node name in the file')
    parser.add_argument('--pins', type=Path, metavar='FILE', help='check SHA-256 pins')
    parser.add_argument('--write-pins', type=Path, metavar='FILE', help='write SHA-256 pins')
    parser.set_defaults(func=_run)
