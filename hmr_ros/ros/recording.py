"""Short recordings of ROS 2 topics as MCAP files that ``ros2 bag info`` and ``play`` read.

rosbag2_py is not on PyPI, so recordings are written with the ``mcap`` package in the layout of
rosbag2's MCAP storage plugin (rosbag2's default storage since Iron):

- profile ``ros2``; one schema per message type, named ``pkg/msg/Type``, encoding ``ros2msg``,
  whose data is the complete message definition: the type's ``.msg`` text, then every type it uses,
  depth first and sorted, each after a line of 80 ``=`` and a line ``MSG: pkg/Type``
  (rosbag2's ``docs/message_definition_encoding.md`` and its local definition source);
- one channel per topic, message encoding ``cdr``, with the metadata rosbag2 writes:
  ``offered_qos_profiles`` (YAML list of the publishers' QoS, integer policies as in rosbag2's
  metadata version 8, which every reader decodes) and ``topic_type_hash`` (``RIHS01_...``, Iron
  and later; empty when the installed message has no type description);
- messages as the CDR bytes rclpy serialises, log time = receive time in nanoseconds.

A single ``.mcap`` file needs no ``metadata.yaml``: ``ros2 bag info file.mcap`` reads the summary.
:func:`read_recording` reads a file back and deserialises each message with rclpy.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from mcap.reader import make_reader
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import CompressionType, Writer
from rclpy.node import Node
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
)
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.subscription import Subscription

DEFINITION_SEPARATOR = '=' * 80
PRIMITIVE_TYPES = frozenset(
    {
        'bool',
        'byte',
        'char',
        'float32',
        'float64',
        'int8',
        'uint8',
        'int16',
        'uint16',
        'int32',
        'uint32',
        'int64',
        'uint64',
        'string',
        'wstring',
    }
)
NANOSECONDS_PER_SECOND = 1_000_000_000
_MAX_DEFINITION_DEPTH = 50
_COMPRESSIONS = {
    'zstd': CompressionType.ZSTD,
    'lz4': CompressionType.LZ4,
    'none': CompressionType.NONE,
}
_LIBRARY = 'hmr_ros recording'
RECORDING_DEPTH = 100  # subscription queue: a burst waits instead of being dropped


class RecordingError(RuntimeError):
    """A type or topic cannot be recorded (unknown type, topic registered twice, closed file)."""


def message_type_name(message_type: type) -> str:
    """The ROS name of a generated message class (``geometry_msgs/msg/Point``).

    Raises:
        RecordingError: the class is not a generated ROS message.
    """
    module = getattr(message_type, '__module__', '')
    parts = module.split('.')
    if len(parts) < 3 or parts[1] != 'msg' or not hasattr(message_type, '_TYPE_SUPPORT'):
        raise RecordingError(f'{message_type!r} is not a generated ROS 2 message class')
    return f'{parts[0]}/msg/{message_type.__name__}'


def _split_type_name(type_name: str) -> tuple[str, str]:
    """('pkg', 'Type') from 'pkg/msg/Type' or 'pkg/Type'."""
    parts = type_name.split('/')
    if len(parts) == 3 and parts[1] == 'msg' or len(parts) == 2:
        if parts[0] and parts[-1]:
            return parts[0], parts[-1]
    raise RecordingError(
        f"message type name {type_name!r} is not 'package/msg/Type' or 'package/Type'"
    )


def message_class(type_name: str) -> type:
    """Import the message class of ``pkg/msg/Type``.

    Raises:
        RecordingError: the package or the type cannot be imported.
    """
    package, name = _split_type_name(type_name)
    try:
        message_type: type = getattr(importlib.import_module(f'{package}.msg'), name)
        return message_type
    except (ImportError, AttributeError) as error:
        raise RecordingError(
            f'message type {type_name} is not importable ({error}); source the workspace that '
            f'builds {package}'
        ) from error


def _interface_file(type_name: str, suffix: str) -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    package, name = _split_type_name(type_name)
    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError as error:
        raise RecordingError(
            f'package {package} is not in AMENT_PREFIX_PATH; source its workspace'
        ) from error
    return share / 'msg' / f'{name}{suffix}'


def _field_dependencies(definition: str, package: str) -> set[str]:
    """'pkg/Type' of every non-primitive field type in a .msg text (constants are primitive)."""
    dependencies = set()
    for line in definition.splitlines():
        text = line.split('#', 1)[0].strip()
        if not text:
            continue
        field_type = text.split()[0].split('[', 1)[0].split('<=', 1)[0]
        if field_type in PRIMITIVE_TYPES:
            continue
        if '/' in field_type:
            dependency_package, dependency = _split_type_name(field_type)
        else:
            dependency_package, dependency = package, field_type
        dependencies.add(f'{dependency_package}/{dependency}')
    return dependencies


def message_definition(type_name: str) -> str:
    """The complete ``ros2msg`` definition of a message type, as rosbag2 stores it.

    The type's own ``.msg`` text comes first; each type it uses follows once, depth first in
    sorted order, after a line of 80 ``=`` and a line ``MSG: pkg/Type``.

    Args:
        type_name: ``pkg/msg/Type``.

    Returns:
        The definition text.

    Raises:
        RecordingError: a ``.msg`` file is missing from the package's share folder.
    """
    seen: set[str] = set()

    def append(name: str, depth: int) -> str:
        if depth > _MAX_DEFINITION_DEPTH:
            raise RecordingError(f'message definition of {type_name} nests too deeply')
        path = _interface_file(name, '.msg')
        try:
            text = path.read_text(encoding='utf-8')
        except OSError as error:
            raise RecordingError(
                f'no definition file {path} for {name}; the package must install its .msg files'
            ) from error
        result = text
        for dependency in sorted(_field_dependencies(text, _split_type_name(name)[0])):
            if dependency not in seen:
                seen.add(dependency)
                result += f'\n{DEFINITION_SEPARATOR}\nMSG: {dependency}\n'
                result += append(dependency, depth + 1)
        return result

    return append(type_name, 0)


def type_description_hash(type_name: str) -> str:
    """The type's ``RIHS01_...`` hash from its installed type description, or '' when absent."""
    package, name = _split_type_name(type_name)
    try:
        description = json.loads(_interface_file(type_name, '.json').read_text(encoding='utf-8'))
    except (OSError, ValueError, RecordingError):
        return ''
    for entry in description.get('type_hashes', []):
        if entry.get('type_name') == f'{package}/msg/{name}':
            return str(entry.get('hash_string', ''))
    return ''


def _duration_yaml(nanoseconds: int) -> dict[str, int]:
    return {
        'sec': nanoseconds // NANOSECONDS_PER_SECOND,
        'nsec': nanoseconds % NANOSECONDS_PER_SECOND,
    }


def offered_qos_profiles_yaml(profiles: Sequence[QoSProfile]) -> str:
    """The channel metadata ``offered_qos_profiles``: a YAML list, one mapping per profile.

    Policies are the rmw enum integers (rosbag2 metadata version 8), which every rosbag2 from
    Humble on decodes; durations are ``{sec, nsec}`` with zero meaning the default.
    """
    entries = [
        {
            'history': int(profile.history.value),
            'depth': int(profile.depth),
            'reliability': int(profile.reliability.value),
            'durability': int(profile.durability.value),
            'deadline': _duration_yaml(profile.deadline.nanoseconds),
            'lifespan': _duration_yaml(profile.lifespan.nanoseconds),
            'liveliness': int(profile.liveliness.value),
            'liveliness_lease_duration': _duration_yaml(
                profile.liveliness_lease_duration.nanoseconds
            ),
            'avoid_ros_namespace_conventions': bool(profile.avoid_ros_namespace_conventions),
        }
        for profile in profiles
    ]
    return yaml.safe_dump(entries, default_flow_style=False, sort_keys=False)


class McapRecorder:
    """Write ROS 2 messages to one ``.mcap`` file in rosbag2's layout.

    Register each topic with :meth:`add_topic`, then :meth:`write` messages (message objects or
    already serialised CDR bytes); :meth:`close` writes the summary that ``ros2 bag info`` reads.
    Writing is thread-safe. Use as a context manager to close on exit.
    """

    def __init__(self, path: str | Path, compression: str = 'zstd') -> None:
        """Open ``path`` for writing (replacing an existing file).

        Args:
            path: the ``.mcap`` file.
            compression: chunk compression, 'zstd' (rosbag2's choice), 'lz4' or 'none'.

        Raises:
            ValueError: unknown compression.
        """
        if compression not in _COMPRESSIONS:
            raise ValueError(
                f'compression {compression!r} is not valid; choose one of {sorted(_COMPRESSIONS)}'
            )
        self.path = Path(path)
        self._stream = self.path.open('wb')
        self._writer = Writer(self._stream, compression=_COMPRESSIONS[compression])
        self._writer.start(profile=Profile.ROS2, library=_LIBRARY)
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, type]] = {}
        self._sequence: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def topics(self) -> dict[str, str]:
        """Registered topics and their type names."""
        return {topic: message_type_name(kind) for topic, (_, kind) in self._channels.items()}

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages written per topic."""
        return dict(self._sequence)

    def add_topic(
        self, topic: str, message_type: type, offered_qos: Sequence[QoSProfile] = ()
    ) -> None:
        """Register a topic (absolute name) of a message type.

        Args:
            topic: fully qualified topic name, e.g. '/hmr/persons'.
            message_type: generated message class.
            offered_qos: the publishers' QoS, replayed by ``ros2 bag play``; empty when unknown.

        Raises:
            RecordingError: the topic is registered already, the type has no definition, or the
                recorder is closed.
        """
        type_name = message_type_name(message_type)
        with self._lock:
            self._check_open()
            if topic in self._channels:
                raise RecordingError(f'topic {topic} is registered already')
            schema_id = self._schemas.get(type_name)
            if schema_id is None:
                definition = message_definition(type_name).encode('utf-8')
                schema_id = self._writer.register_schema(
                    type_name, SchemaEncoding.ROS2, definition
                )
                self._schemas[type_name] = schema_id
            metadata = {
                'offered_qos_profiles': offered_qos_profiles_yaml(offered_qos)
                if offered_qos
                else '',
                'topic_type_hash': type_description_hash(type_name),
            }
            channel_id = self._writer.register_channel(
                topic, MessageEncoding.CDR, schema_id, metadata
            )
            self._channels[topic] = (channel_id, message_type)
            self._sequence[topic] = 0

    def write(
        self,
        topic: str,
        message: Any,
        log_time_ns: int,
        publish_time_ns: int | None = None,
    ) -> None:
        """Append one message.

        Args:
            topic: a registered topic.
            message: an instance of the topic's type, or its serialised CDR bytes.
            log_time_ns: receive time, nanoseconds (ROS time).
            publish_time_ns: send time, nanoseconds; the log time when None.

        Raises:
            RecordingError: unknown topic, wrong message type, or closed recorder.
        """
        with self._lock:
            self._check_open()
            entry = self._channels.get(topic)
            if entry is None:
                raise RecordingError(f'topic {topic} is not registered; call add_topic first')
            channel_id, message_type = entry
            if isinstance(message, bytes):
                data = message
            elif isinstance(message, message_type):
                data = serialize_message(message)
            else:
                raise RecordingError(
                    f'topic {topic} records {message_type_name(message_type)}, got '
                    f'{type(message).__name__}'
                )
            self._sequence[topic] += 1
            self._writer.add_message(
                channel_id=channel_id,
                log_time=int(log_time_ns),
                data=data,
                publish_time=int(log_time_ns if publish_time_ns is None else publish_time_ns),
                sequence=self._sequence[topic],
            )

    def close(self) -> None:
        """Write the summary and close the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._writer.finish()
            finally:
                self._stream.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RecordingError(f'recording {self.path} is closed')

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RecordedMessage(NamedTuple):
    """One message read back from a recording.

    Attributes:
        topic: topic name.
        type_name: ``pkg/msg/Type``.
        log_time_ns: receive time, nanoseconds.
        message: the deserialised message.
    """

    topic: str
    type_name: str
    log_time_ns: int
    message: Any


def read_recording(path: str | Path) -> Iterator[RecordedMessage]:
    """Yield every message of a ROS 2 MCAP file in log-time order, deserialised with rclpy.

    Raises:
        RecordingError: a channel is not CDR or its type is not importable.
    """
    classes: dict[str, type] = {}
    with Path(path).open('rb') as stream:
        reader = make_reader(stream)
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            if channel.message_encoding != MessageEncoding.CDR or schema is None:
                raise RecordingError(
                    f'channel {channel.topic} is {channel.message_encoding!r} without a ROS 2 '
                    'schema; only CDR channels are read'
                )
            message_type = classes.get(schema.name)
            if message_type is None:
                message_type = classes[schema.name] = message_class(schema.name)
            yield RecordedMessage(
                channel.topic,
                schema.name,
                message.log_time,
                deserialize_message(message.data, message_type),
            )


def adapted_qos(publisher_qos: Sequence[QoSProfile]) -> QoSProfile:
    """The subscription QoS that receives from every current publisher, as rosbag2 picks it.

    Reliable only when every publisher is reliable (a reliable subscription gets nothing from a
    best-effort publisher), transient-local only when every publisher is (so latched messages
    such as ModelInfo are recorded); reliable and volatile when there are no publishers yet.
    """
    reliable = all(p.reliability == QoSReliabilityPolicy.RELIABLE for p in publisher_qos)
    latched = bool(publisher_qos) and all(
        p.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL for p in publisher_qos
    )
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=RECORDING_DEPTH,
        reliability=QoSReliabilityPolicy.RELIABLE
        if reliable
        else QoSReliabilityPolicy.BEST_EFFORT,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
        if latched
        else QoSDurabilityPolicy.VOLATILE,
    )


class RecordingSubscriber:
    """Subscribe to topics on a node and record every message to an MCAP file.

    Subscriptions take the serialised bytes (``raw=True``), so nothing is deserialised. The QoS of
    each subscription adapts to the publishers present when it is created (:func:`adapted_qos`);
    pass an explicit QoS for topics whose publishers start later. Topic names are resolved
    against the node's namespace and recorded fully qualified.
    """

    def __init__(
        self,
        node: Node,
        path: str | Path,
        topics: Sequence[tuple[str, type] | tuple[str, type, QoSProfile]],
        compression: str = 'zstd',
    ) -> None:
        """Open the file and subscribe.

        Args:
            node: the node that owns the subscriptions (spin it to record).
            path: the ``.mcap`` file.
            topics: (topic, message class) or (topic, message class, QoS) per topic.
            compression: 'zstd', 'lz4' or 'none'.
        """
        self._node = node
        self.recorder = McapRecorder(path, compression)
        self._subscriptions: list[Subscription] = []
        try:
            for entry in topics:
                self._subscribe(*entry)
        except Exception:
            self.close()
            raise

    def _subscribe(self, topic: str, message_type: type, qos: QoSProfile | None = None) -> None:
        name = self._node.resolve_topic_name(topic)
        publishers = [info.qos_profile for info in self._node.get_publishers_info_by_topic(name)]
        profile = qos if qos is not None else adapted_qos(publishers)
        self.recorder.add_topic(name, message_type, publishers or [profile])
        clock = self._node.get_clock()

        def record(data: bytes) -> None:
            self.recorder.write(name, data, clock.now().nanoseconds)

        self._subscriptions.append(
            self._node.create_subscription(message_type, name, record, profile, raw=True)
        )

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages recorded per topic."""
        return self.recorder.message_counts

    def close(self) -> None:
        """Destroy the subscriptions and finish the file."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions.clear()
        self.recorder.close()
