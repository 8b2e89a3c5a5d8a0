"""rosbag2 bags of ROS 2 topics (hmr_ros/ros/recording.py): written, read back, equal."""

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


def test_bag_qos_keeps_every_policy() -> None:
    """rmw's enums: keep last = 1, reliable = 1, transient local = 1; durations in sec/nsec."""
    from rclpy.duration import Duration
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    from hmr_ros.ros.recording import bag_qos

    profile = QoSProfile(
        depth=3,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
        deadline=Duration(seconds=1, nanoseconds=500),
    )
    qos = bag_qos(profile)
    assert (qos.history.value, qos.depth, qos.reliability.value, qos.durability.value) == (
        1,
        3,
        1,
        1,
    )
    assert (qos.deadline.sec, qos.deadline.nsec) == (1, 500)
    assert qos.avoid_ros_namespace_conventions is False


def _write_three_topics(path: Path):
    from rclpy.qos import QoSProfile
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    from hmr_ros.msg import PersonArray
    from hmr_ros.ros.recording import BagRecorder

    persons, tf, image = _person_array(), _tf_message(), _image()
    with BagRecorder(path) as recorder:
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

    persons, tf, image = _write_three_topics(tmp_path / 'bag')
    records = list(read_recording(tmp_path / 'bag'))
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


def _mcap_file(bag: Path) -> Path:
    (path,) = bag.glob('*.mcap')
    return path


def test_bag_directory_has_rosbag2_metadata(tmp_path: Path) -> None:
    """metadata.yaml as rosbag2 writes it (rosbag2_storage's metadata_io, version 9).

    Top-level key rosbag2_bagfile_information; storage_identifier mcap; relative_file_paths
    naming the MCAP file beside it; per topic its type, cdr serialisation, the offered QoS and
    the RIHS01 type hash, and a message count.
    """
    _write_three_topics(tmp_path / 'bag')
    info = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    info = info['rosbag2_bagfile_information']
    assert info['version'] == 9
    assert info['storage_identifier'] == 'mcap'
    assert info['message_count'] == 4
    (relative,) = info['relative_file_paths']
    assert (tmp_path / 'bag' / relative) == _mcap_file(tmp_path / 'bag')
    topics = {
        entry['topic_metadata']['name']: entry for entry in info['topics_with_message_count']
    }
    assert {name: entry['message_count'] for name, entry in topics.items()} == {
        '/hmr/persons': 2,
        '/tf': 1,
        '/camera/color/image_raw': 1,
    }
    persons = topics['/hmr/persons']['topic_metadata']
    assert persons['type'] == 'hmr_ros/msg/PersonArray'
    assert persons['serialization_format'] == 'cdr'
    assert persons['type_description_hash'].startswith('RIHS01_')
    assert persons['offered_qos_profiles'][0]['depth'] == 5


def test_mcap_file_has_the_rosbag2_layout(tmp_path: Path) -> None:
    """Profile ros2, ros2msg schemas named pkg/msg/Type, cdr channels (read with mcap)."""
    from mcap.reader import make_reader

    _write_three_topics(tmp_path / 'bag')
    with _mcap_file(tmp_path / 'bag').open('rb') as stream:
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
    assert {c.message_encoding for c in summary.channels.values()} == {'cdr'}


def test_rosbags_reader_and_its_own_decoder_read_the_bag(tmp_path: Path) -> None:
    """rosbags reads the bag and decodes the CDR with types built from the stored definitions
    alone (its typestore, no rclpy): an independent reader and deserialiser."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    persons, tf, image = _write_three_topics(tmp_path / 'bag')
    typestore = get_typestore(Stores.EMPTY)
    with Reader(tmp_path / 'bag') as reader:
        for connection in reader.connections:
            types = {}
            blocks = connection.msgdef.data.split(f'\n{SEPARATOR_LINE}\n')
            types.update(get_types_from_msg(blocks[0], connection.msgtype))
            for block in blocks[1:]:
                header, _, body = block.partition('\n')
                types.update(get_types_from_msg(body, header.removeprefix('MSG: ')))
            typestore.register(types)
        assert {c.topic: c.msgcount for c in reader.connections} == {
            '/hmr/persons': 2,
            '/tf': 1,
            '/camera/color/image_raw': 1,
        }
        decoded = [
            (connection.topic, timestamp, typestore.deserialize_cdr(data, connection.msgtype))
            for connection, timestamp, data in reader.messages()
        ]
    assert [(topic, stamp) for topic, stamp, _ in decoded] == [
        ('/camera/color/image_raw', 1_000),
        ('/hmr/persons', 2_000),
        ('/tf', 3_000),
        ('/hmr/persons', 4_000),
    ]
    person = decoded[1][2].persons[0]
    assert person.id == persons.persons[0].id
    assert list(person.right_hand.finger_pose) == pytest.approx(
        list(persons.persons[0].right_hand.finger_pose)
    )
    assert decoded[2][2].transforms[0].child_frame_id == 'body_7'
    assert bytes(decoded[0][2].data) == bytes(image.data)


def test_an_independent_ros2msg_parser_decodes_the_file(tmp_path: Path) -> None:
    """mcap-ros2-support builds its CDR decoder from our schema text alone (no rclpy)."""
    from mcap.reader import make_reader

    decoder = pytest.importorskip('mcap_ros2.decoder', reason='mcap-ros2-support not installed')
    DecoderFactory = decoder.DecoderFactory

    persons, tf, image = _write_three_topics(tmp_path / 'bag')
    with _mcap_file(tmp_path / 'bag').open('rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        decoded = {c.topic: m for _, c, _, m in reader.iter_decoded_messages()}
    person = decoded['/hmr/persons'].persons[0]
    assert person.id == persons.persons[0].id
    assert decoded['/hmr/persons'].header.frame_id == persons.header.frame_id
    assert decoded['/tf'].transforms[0].child_frame_id == 'body_7'
    assert bytes(decoded['/camera/color/image_raw'].data) == bytes(image.data)


def test_misuse_is_refused(tmp_path: Path) -> None:
    from sensor_msgs.msg import Image

    from hmr_ros.msg import PersonArray
    from hmr_ros.ros.recording import BagRecorder, RecordingError

    recorder = BagRecorder(tmp_path / 'bag', compression='none')
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
        BagRecorder(tmp_path / 'x', compression='bz2')
    with pytest.raises(RecordingError, match='cannot create'):
        BagRecorder(tmp_path / 'bag')  # exists: a bag is never overwritten


def test_zstd_bag_reads_back(tmp_path: Path) -> None:
    from hmr_ros.msg import PersonArray
    from hmr_ros.ros.recording import BagRecorder, read_recording

    persons = _person_array()
    with BagRecorder(tmp_path / 'bag', compression='zstd') as recorder:
        recorder.add_topic('/hmr/persons', PersonArray)
        for stamp in range(5):
            recorder.write('/hmr/persons', persons, 1_000 + stamp)
    assert [r.message for r in read_recording(tmp_path / 'bag')] == [persons] * 5


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
        tmp_path / 'live',
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

    records = list(read_recording(tmp_path / 'live'))
    by_topic: dict[str, list] = {}
    for record in records:
        by_topic.setdefault(record.topic, []).append(record.message)
    assert set(by_topic) == {'/hmr/model_info', '/hmr/persons', '/tf'}
    assert by_topic['/hmr/model_info'] == [ModelInfo(model_type='smplx', num_vertices=10475)]
    assert all(message == persons for message in by_topic['/hmr/persons'])
    assert by_topic['/tf'][0] == tf
    times = [record.log_time_ns for record in records]
    assert times == sorted(times) and times[0] > 0
