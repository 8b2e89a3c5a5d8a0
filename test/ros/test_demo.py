"""Tests for hmr_ros.ros.demo: the demo (camera in its own process) on stand-in files, its
recording and summary.

The demo runs as its executable (scripts/hmr_demo) in a subprocess for 3 s on files written by
``hmr-ros make-test-assets`` (tiny random checkpoints in the project format, generated body
models), so the file-loading path of the pipeline runs; its rosbag2 recording is read back with
hmr_ros.ros.recording.read_recording and compared with its JSON summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import require_ros_for_module

require_ros_for_module()

from hmr_ros.cli.assets import make_test_assets  # noqa: E402
from hmr_ros.msg import Person  # noqa: E402
from hmr_ros.ros.conversions import stamp_to_nanoseconds  # noqa: E402
from hmr_ros.ros.demo import (  # noqa: E402
    RECORDING_NAME,
    SUMMARY_NAME,
    DemoConfig,
    DemoError,
    main,
)
from hmr_ros.ros.image_source import DEFAULT_FRAME_ID  # noqa: E402
from hmr_ros.ros.recording import RecordedMessage, read_recording  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DURATION_S = 3.0
SMPLX_NUM_FACES = 20908


@pytest.fixture(scope='module')
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMPLX_NEUTRAL.npz, MANO files and smplerx_tiny/hamer_tiny .safetensors model files."""
    folder = tmp_path_factory.mktemp('demo_stand_ins')
    make_test_assets(folder, seed=0, variants=('smplerx_tiny', 'hamer_tiny'))
    return folder


def model_arguments(folder: Path, body_model_dir: Path | None = None) -> list[str]:
    return [
        '--whole-body-checkpoint',
        str(folder / 'smplerx_tiny.safetensors'),
        '--hand-checkpoint',
        str(folder / 'hamer_tiny.safetensors'),
        '--body-model-dir',
        str(body_model_dir or folder),
    ]


@pytest.fixture(scope='module')
def demo_run(stand_ins: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 3 s run of the executable; its output folder, stdout and exit code."""
    output = tmp_path_factory.mktemp('demo_output')
    domain = os.getpid() % 100 + 101  # as conftest.ros_domain_id: apart from real robots
    env = dict(
        os.environ,
        ROS_DOMAIN_ID=str(domain),
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]),
    )
    # Random stand-in weights score presence near 0 (flat heatmaps), so hmr_node would report
    # nobody; accept the front-end's person to follow the stamps through every output.
    accept_all = output / 'accept_all.yaml'
    accept_all.write_text(
        '/**/hmr_node:\n  ros__parameters:\n    detection:\n      person_threshold: 0.0\n'
    )
    command = [
        sys.executable,
        str(REPO / 'scripts' / 'hmr_demo'),
        '--duration',
        str(DURATION_S),
        '--output-dir',
        str(output),
        *model_arguments(stand_ins),
        '--ros-args',
        '--params-file',
        str(accept_all),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    by_topic: dict[str, list[RecordedMessage]] = defaultdict(list)
    if (output / RECORDING_NAME).exists():
        for record in read_recording(output / RECORDING_NAME):
            by_topic[record.topic].append(record)
    return {'output': output, 'result': result, 'topics': by_topic}


def test_demo_exits_cleanly_and_says_the_weights_are_stand_ins(demo_run) -> None:
    result = demo_run['result']
    assert result.returncode == 0, result.stdout + result.stderr
    assert '[hmr_demo]' in result.stdout
    assert 'WEIGHTS  : STAND-INS, OUTPUTS ARE MEANINGLESS' in result.stdout
    assert 'test-only tiny variants' in result.stderr  # hmr_node's own warning
    assert '/camera/color/image_raw' in result.stderr  # the image source's start line


def test_recorded_persons_carry_published_image_stamps(demo_run) -> None:
    """Every PersonArray in the recording has the stamp and frame of an image the source
    published (camera_info shares the image header and is recorded); the last one is the
    empty array of the deactivation. TF transforms carry persons stamps, body frames hang from
    the camera frame, and the skeleton markers carry the persons headers."""
    topics = demo_run['topics']
    image_stamps = {
        stamp_to_nanoseconds(r.message.header.stamp) for r in topics['/camera/color/camera_info']
    }
    persons = [r.message for r in topics['/hmr/persons']]
    assert len(persons) >= 3 and image_stamps
    *outputs, last = persons
    assert last.persons == []  # deactivation: consumers clear
    stamps = [stamp_to_nanoseconds(m.header.stamp) for m in outputs]
    # The camera runs in its own process (as a driver does): when the demo's process is
    # starved, the recorder can miss a camera_info (reliable, but the source's writer keeps
    # its last 5 only), so a few output stamps may lack their recorded image.
    # The same holds for the last few: the camera process is stopped with SIGINT, and camera_info
    # samples its writer had not yet delivered to the recorder die with it, while hmr_node had
    # its image. So outputs are checked to fall inside the recorded stream, not after its end.
    assert sum(stamp in image_stamps for stamp in stamps) >= 0.9 * len(stamps)
    assert min(image_stamps) <= min(stamps)
    assert all(m.header.frame_id == DEFAULT_FRAME_ID for m in outputs)
    assert stamps == sorted(stamps)
    indices = [m.frame_index for m in outputs]
    assert indices == sorted(indices)
    assert any(p.tracking_state == Person.TRACKED for m in outputs for p in m.persons)

    tf = [r.message for r in topics['/tf']]
    assert tf
    for message in tf:
        assert {stamp_to_nanoseconds(t.header.stamp) for t in message.transforms} <= set(stamps)
        bodies = [t for t in message.transforms if t.child_frame_id.startswith('body_')]
        assert bodies and all(t.header.frame_id == DEFAULT_FRAME_ID for t in bodies)

    skeleton_stamps = {
        stamp_to_nanoseconds(marker.header.stamp)
        for r in topics['/hmr/markers/skeleton']
        for marker in r.message.markers
        if marker.action == marker.ADD
    }
    assert skeleton_stamps and skeleton_stamps <= set(stamps)


def test_recording_holds_the_static_information(demo_run, stand_ins: Path) -> None:
    topics = demo_run['topics']
    [info] = [r.message for r in topics['/hmr/model_info']]
    assert info.synthetic_weights  # tiny test-only variants loaded from files
    assert info.model_version == 'smplerx_tiny+hamer_tiny'
    assert list(info.checkpoint_files) == [
        str(stand_ins / 'smplerx_tiny.safetensors'),
        str(stand_ins / 'hamer_tiny.safetensors'),
    ]
    [topology] = [r.message for r in topics['/hmr/mesh_topology']]
    assert len(topology.faces) == 3 * SMPLX_NUM_FACES
    assert topics['/diagnostics'], 'hmr_node reports at 1 Hz'


def test_summary_matches_the_recording(demo_run) -> None:
    """The JSON parses; rates are positive; the output count is the recorded PersonArrays but
    the deactivation one; latency percentiles are ordered; drops add up: every received image
    is processed (one output each), dropped while busy, stale or refused, give or take one."""
    summary = json.loads((demo_run['output'] / SUMMARY_NAME).read_text())
    topics = demo_run['topics']
    assert summary['input']['rate_hz'] > 0 and summary['output']['rate_hz'] > 0
    assert summary['input']['camera'] == 'separate process'  # the default, as with a driver
    assert summary['duration_s'] == pytest.approx(DURATION_S, abs=0.5)
    assert summary['output']['persons_messages'] == len(topics['/hmr/persons']) - 1
    latency = summary['latency_ms']
    assert 0 < latency['p50'] <= latency['p95'] <= latency['max']
    assert latency['samples'] == summary['output']['persons_messages']
    node_latency = summary['hmr_node_latency_ms']  # the node's own, last seconds only
    assert 0 < node_latency['p50'] <= node_latency['p95'] <= node_latency['max']
    drops = summary['drops']
    received = summary['input']['received_by_hmr_node']
    processed = summary['output']['persons_messages']
    assert 0 < received <= summary['input']['published']
    not_processed = drops['dropped_while_busy'] + drops['skipped_stale']
    not_processed += sum(drops['refused'].values())  # e.g. an image before its camera_info
    assert abs(received - processed - not_processed) <= 1
    assert drops['pipeline_errors'] == 0 and drops['publish_errors'] == 0
    assert summary['weights']['synthetic'] and not summary['weights']['use_test_assets']
    recorded = summary['recording']['topics']
    assert recorded['/hmr/persons']['messages'] == len(topics['/hmr/persons'])
    assert recorded['/hmr/persons']['type'] == 'hmr_ros/msg/PersonArray'


def test_partial_model_files_are_refused() -> None:
    with pytest.raises(DemoError, match='also give --hand-checkpoint, --body-model-dir'):
        DemoConfig(whole_body_checkpoint='a.safetensors')
    with pytest.raises(DemoError, match='duration must be a positive'):
        DemoConfig(duration_s=0.0)
    assert DemoConfig().hmr_node_parameters()['model.use_test_assets'] is True
    assert DemoConfig().camera_process  # the camera runs in its own process by default
    with pytest.raises(DemoError, match='--dds-profile missing.xml is not a file'):
        DemoConfig(dds_profile='missing.xml')
    files = DemoConfig(whole_body_checkpoint='w', hand_checkpoint='h', body_model_dir='d')
    parameters = files.hmr_node_parameters()
    assert 'model.use_test_assets' not in parameters
    assert parameters['model.body_model_dir'] == 'd'


def test_main_fails_with_status_1_when_hmr_node_cannot_configure(
    stand_ins: Path, tmp_path: Path, ros_domain_id: int, capfd
) -> None:
    """An empty body-model folder: configure fails, the demo says so and exits 1, no summary."""
    empty = tmp_path / 'no_body_models'
    empty.mkdir()
    output = tmp_path / 'out'
    code = main(
        ['hmr_demo', '--duration', '1', '--output-dir', str(output)]
        + model_arguments(stand_ins, empty)
    )
    assert code == 1
    captured = capfd.readouterr()
    assert 'hmr_node failed to configure' in captured.out
    assert 'SMPLX_NEUTRAL' in captured.err  # hmr_node's log names the missing file
    assert not (output / SUMMARY_NAME).exists()


def test_large_images_profile_enlarges_the_shared_memory_segment() -> None:
    """config/fastdds_large_images.xml (docs/dds-large-images.md): the default participant uses
    SHM with 32 MiB segments (one 1280x720 rgb8 image is 2.6 MiB; the default is 512 KiB) and
    UDPv4 with 4 MiB buffers, instead of the built-in transports."""
    import xml.etree.ElementTree as ElementTree

    namespace = {'dds': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
    root = ElementTree.parse(REPO / 'config' / 'fastdds_large_images.xml').getroot()
    transports = {
        t.findtext('dds:type', namespaces=namespace): t
        for t in root.iterfind('.//dds:transport_descriptor', namespace)
    }
    assert int(transports['SHM'].findtext('dds:segment_size', namespaces=namespace)) >= 2**25
    assert (
        int(transports['UDPv4'].findtext('dds:receiveBufferSize', namespaces=namespace)) >= 2**22
    )
    participant = root.find('.//dds:participant', namespace)
    assert participant is not None and participant.get('is_default_profile') == 'true'
    assert participant.findtext('.//dds:useBuiltinTransports', namespaces=namespace) == 'false'
