"""MCAP recordings of ROS 2 topics (hmr_ros/ros/recording.py): written, read back, equal."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import require_ros_modules

SEPARATOR_LINE = '=' * 80


@pytest.fixture(autouse=True)
def _ros_modules() -> None:
    require_ros_modules()


def _person_array():
    from test_messages import make_person_array

    return make_person_array()


def _tf_message():
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    transform = TransformStamped()
    transform.header.frame_id = 'camera_color_optical_frame'
    transform.header.stamp.sec = 12
    transform.child_frame_id = 'body_7'
    transform.transform.translation.z = 2.5
    transform.transform.rotation.w = 1.0
    return TFMessage(transforms=[transform])


def _image():
    from sensor_msgs.msg import Image

    image = Image(height=4, width=5, encoding='rgb8', step=15)
    image.header.frame_id = 'camera_color_optical_frame'
    image.data = np.arange(60, dtype=np.uint8).tobytes()
    return image


def test_type_names_and_classes_round_trip() -> None:
    from geometry_msgs.msg import Point

    from hmr_ros.msg import PersonArray
    from hmr_ros.ros.recording import RecordingError, message_class, message_type_name

    assert message_type_name(PersonArray) == 'hmr_ros/msg/PersonArray'
    assert message_class('geometry_msgs/msg/Point') is Point
    assert message_class('geometry_msgs/Point') is Point
    with pytest.raises(RecordingError, match='not importable'):
        message_class('no_such_pkg/msg/Thing')
    with pytest.raises(RecordingError, match='not a generated'):
        message_type_name(dict)


def test_definition_lists_each_dependency_once_after_a_separator() -> None:
    """PersonArray uses Pose in Person (root_pose) and HandPose (wrist_pose): Pose appears once."""
    from hmr_ros.ros.recording import message_definition

    text = message_definition('hmr_ros/msg/PersonArray')
    assert text.startswith('# All persons of one processed image')
    blocks = text.split(f'\n{SEPARATOR_LINE}\n')
    names = [block.splitlines()[0] for block in blocks[1:]]
    assert all(name.startswith('MSG: ') for name in names)
    assert len(names) == len(set(names))
    for expected in (
        'MSG: std_msgs/Header',
        'MSG: builtin_interfaces/Time',
        'MSG: builtin_interfaces/Duration',
        'MSG: hmr_ros/Person',
        'MSG: hmr_ros/HandPose',
        'MSG: hmr_ros/Box2D',
        'MSG: geometry_msgs/Pose',
        'MSG: geometry_msgs/Point',
        'MSG: geometry_msgs/Quaternion',
        'MSG: geometry_msgs/Vector3',
    ):
        assert expected in names
    assert len(names) == 10


def test_offered_qos_yaml_uses_rmw_integers() -> None:
    """Reliable = 1, transient local = 1, keep last = 1 (rmw enums, rosbag2 metadata v8)."""
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    from hmr_ros.ros.recording import offered_qos_profiles_yaml

    profile = QoSProfile(
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
    (entry,) = yaml.safe_load(offered_qos_profiles_yaml([profile]))
    assert entry['history'] == 1
    assert entry['depth'] == 1
    assert entry['reliability'] == 1
    assert entry['durability'] == 1
    assert entry['deadline'] == {'sec': 0, 'nsec': 0}
    assert entry['avoid_ros_namespace_conventions'] is False


def _write_three_topics(path: Path):
    from rclpy.qos import QoSProfile
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    from hmr_ros.msg import PersonArray
    from hmr_ros.ros.recording import McapRecorder

    persons, tf, image = _person_array(), _tf_message(), _image()
    with McapRecorder(path) as recorder:
        recorder.add_topic('/hmr/persons', PersonArray, [QoSProfile(depth=5)])
        recorder.add_topic('/tf', TFMessage)
        recorder.add_topic('/camera/color/image_raw', Image)
        recorder.write('/camera/color/image_raw', image, 1_000)
        recorder.write('/hmr/persons', persons, 2_000)
        recorder.write('/tf', serialize_message(tf), 3_000)  # already serialised bytes
        recorder.write('/hmr/persons', persons, 4_000)
        assert recorder.message_counts == {
            '/hmr/persons': 2,
            '/tf': 1,
            '/camera/color/image_raw': 1,
        }
    return persons, tf, image


def test_messages_read_back_equal(tmp_path: Path) -> None:
    from hmr_ros.ros.recording import read_recording

    persons, tf, image = _write_three_topics(tmp_path / 'r.mcap')
    records = list(read_recording(tmp_path / 'r.mcap'))
    assert [(r.topic, r.log_time_ns) for r in records] == [
        ('/camera/color/image_raw', 1_000),
        ('/hmr/persons', 2_000),
        ('/tf', 3_000),
        ('/hmr/persons', 4_000),
    ]
    assert [r.type_name for r in records] == [
        'sensor_msgs/msg/Image',
        'hmr_ros/msg/PersonArray',
        'tf2_msgs/msg/TFMessage',
        'hmr_ros/msg/PersonArray',
    ]
    assert records[0].message == image
    assert records[1].message == persons
    assert records[2].message == tf
    assert records[3].message == persons


def test_file_has_the_rosbag2_layout(tmp_path: Path) -> None:
    """Profile ros2, ros2msg schemas named pkg/msg/Type, cdr channels with QoS and type hash."""
    from mcap.reader import make_reader

    _write_three_topics(tmp_path / 'r.mcap')
    with (tmp_path / 'r.mcap').open('rb') as stream:
        reader = make_reader(stream)
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
    assert summary is not None
    assert summary.statistics.message_count == 4
    schemas = {s.name: s for s in summary.schemas.values()}
    assert set(schemas) == {
        'hmr_ros/msg/PersonArray',
        'tf2_msgs/msg/TFMessage',
        'sensor_msgs/msg/Image',
    }
    assert {s.encoding for s in schemas.values()} == {'ros2msg'}
    channels = {c.topic: c for c in summary.channels.values()}
    assert {c.message_encoding for c in channels.values()} == {'cdr'}
    persons = channels['/hmr/persons']
    assert yaml.safe_load(persons.metadata['offered_qos_profiles'])[0]['depth'] == 5
    assert persons.metadata['topic_type_hash'].startswith('RIHS01_')
    assert channels['/tf'].metadata['offered_qos_profiles'] == ''


def test_an_independent_ros2msg_parser_decodes_the_file(tmp_path: Path) -> None:
    """mcap-ros2-support builds its CDR decoder from our schema text alone (no rclpy)."""
    from mcap.reader import make_reader

    decoder = pytest.importorskip('mcap_ros2.decoder', reason='mcap-ros2-support not installed')
    DecoderFactory = decoder.DecoderFactory

    persons, tf, image = _write_three_topics(tmp_path / 'r.mcap')
    with (tmp_path / 'r.mcap').open('rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        decoded = {c.topic: m for _, c, _, m in reader.iter_decoded_messages()}
    person = decoded['/hmr/persons'].persons[0]
    assert person.id == persons.persons[0].id
    assert list(person.right_hand.finger_pose) == pytest.approx(
        list(persons.persons[0].right_hand.finger_pose)
    )
    assert decoded['/hmr/persons'].header.frame_id == persons.header.frame_id
    assert decoded['/tf'].transforms[0].child_frame_id == 'body_7'
    assert bytes(decoded['/camera/color/image_raw'].data) == bytes(image.data)


def test_misuse_is_refused(tmp_path: Path) -> None:
    from sensor_msgs.msg import Image

    from hmr_ros.msg import PersonArray
    from hmr_ros.ros.recording import McapRecorder, RecordingError

    recorder = McapRecorder(tmp_path / 'r.mcap', compression='none')
    recorder.add_topic('/a', PersonArray)
    with pytest.raises(RecordingError, match='registered already'):
        recorder.add_topic('/a', Image)
    with pytest.raises(RecordingError, match='not registered'):
        recorder.write('/b', PersonArray(), 0)
    with pytest.raises(RecordingError, match='records hmr_ros/msg/PersonArray'):
        recorder.write('/a', Image(), 0)
    recorder.close()
    recorder.close()
    with pytest.raises(RecordingError, match='closed'):
        recorder.write('/a', PersonArray(), 0)
    with pytest.raises(ValueError, match='compression'):
        McapRecorder(tmp_path / 'x.mcap', compression='bz2')


def test_adapted_qos_follows_the_publishers() -> None:
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    from hmr_ros.ros.recording import adapted_qos

    latched = QoSProfile(
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
    best_effort = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.BEST_EFFORT)
    assert adapted_qos([latched]).durability == QoSDurabilityPolicy.TRANSIENT_LOCAL
    assert adapted_qos([latched]).reliability == QoSReliabilityPolicy.RELIABLE
    mixed = adapted_qos([latched, best_effort])
    assert mixed.reliability == QoSReliabilityPolicy.BEST_EFFORT
    assert mixed.durability == QoSDurabilityPolicy.VOLATILE
    assert adapted_qos([]).reliability == QoSReliabilityPolicy.RELIABLE


def test_recording_subscriber_records_live_and_latched_topics(rclpy_context, tmp_path) -> None:
    """A latched ModelInfo published before the recorder starts is recorded too."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from hmr_ros.msg import ModelInfo, PersonArray
    from hmr_ros.ros.recording import RecordingSubscriber, read_recording

    publisher_node = rclpy.create_node('publisher', namespace='hmr', context=rclpy_context)
    recorder_node = rclpy.create_node('recorder', namespace='hmr', context=rclpy_context)
    latched = QoSProfile(
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
    info_publisher = publisher_node.create_publisher(ModelInfo, 'model_info', latched)
    persons_publisher = publisher_node.create_publisher(PersonArray, 'persons', 5)
    tf_publisher = publisher_node.create_publisher(TFMessage, '/tf', 10)
    info_publisher.publish(ModelInfo(model_type='smplx', num_vertices=10475))
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(publisher_node)
    executor.add_node(recorder_node)
    recording = RecordingSubscriber(
        recorder_node,
        tmp_path / 'live.mcap',
        [('model_info', ModelInfo), ('persons', PersonArray), ('/tf', TFMessage)],
    )
    persons, tf = _person_array(), _tf_message()
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        persons_publisher.publish(persons)
        tf_publisher.publish(tf)
        executor.spin_once(timeout_sec=0.05)
        counts = recording.message_counts
        if all(counts[t] >= 1 for t in counts) and counts['/hmr/persons'] >= 3:
            break
    recording.close()
    executor.shutdown()
    publisher_node.destroy_node()
    recorder_node.destroy_node()

    records = list(read_recording(tmp_path / 'live.mcap'))
    by_topic: dict[str, list] = {}
    for record in records:
        by_topic.setdefault(record.topic, []).append(record.message)
    assert set(by_topic) == {'/hmr/model_info', '/hmr/persons', '/tf'}
    assert by_topic['/hmr/model_info'] == [ModelInfo(model_type='smplx', num_vertices=10475)]
    assert all(message == persons for message in by_topic['/hmr/persons'])
    assert by_topic['/tf'][0] == tf
    times = [record.log_time_ns for record in records]
    assert times == sorted(times) and times[0] > 0
