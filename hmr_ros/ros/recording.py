"""Short recordings of ROS 2 topics as rosbag2 bags that ``ros2 bag info`` and ``play`` open.

rosbag2_py is not on PyPI, so bags are written with the rosbags library (pure Python): a bag
directory with ``metadata.yaml`` and one MCAP file, rosbag2's default storage since Iron:

- one connection per topic, serialisation ``cdr``, with the publishers' offered QoS profiles
  (replayed by ``ros2 bag play``) and the type's ``RIHS01_...`` hash;
- the MCAP schema of each type is the complete ``ros2msg`` definition: the type's ``.msg``
  text, then every type it uses, depth first and sorted, each after a line of 80 ``=`` and a
  line ``MSG: pkg/Type`` (rosbag2's ``docs/message_definition_encoding.md``), read from the
  installed ``.msg`` files so the package's own messages need no registration;
- messages as the CDR bytes rclpy serialises, timestamp = receive time in nanoseconds.

:func:`read_recording` reads a bag back with rosbags' reader and deserialises with rclpy.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

from rclpy.node import Node
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
)
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.subscription import Subscription
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import (
    CompressionFormat,
    CompressionMode,
    Reader,
    ReaderError,
    StoragePlugin,
    Writer,
    WriterError,
)

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
_COMPRESSIONS = ('none', 'zstd')
BAG_VERSION: Final = 9
"""The rosbag2 metadata version written: the one rosbag2 in Jazzy writes."""
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


def bag_qos(profile: QoSProfile) -> Qos:
    """The rosbags form of an rclpy QoS profile (what ``metadata.yaml`` records per topic)."""

    def duration(nanoseconds: int) -> QosTime:
        return QosTime(
            sec=nanoseconds // NANOSECONDS_PER_SECOND, nsec=nanoseconds % NANOSECONDS_PER_SECOND
        )

    return Qos(
        history=QosHistory(int(profile.history.value)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability.value)),
        durability=QosDurability(int(profile.durability.value)),
        deadline=duration(profile.deadline.nanoseconds),
        lifespan=duration(profile.lifespan.nanoseconds),
        liveliness=QosLiveliness(int(profile.liveliness.value)),
        liveliness_lease_duration=duration(profile.liveliness_lease_duration.nanoseconds),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


class BagRecorder:
    """Write ROS 2 messages to a rosbag2 bag directory (``metadata.yaml`` + one MCAP file).

    The rosbags library writes the bag (metadata version 9, MCAP storage, which rosbag2 reads
    from Humble on and uses by default since Iron): ``ros2 bag info DIR`` and ``ros2 bag play
    DIR`` open it, and so do rosbags' and mcap's readers. Message definitions and type hashes
    come from the installed ``.msg`` files (:func:`message_definition`,
    :func:`type_description_hash`), the payload is the CDR that rclpy serialises.

    Register each topic with :meth:`add_topic`, then :meth:`write` messages (message objects or
    already serialised CDR bytes); :meth:`close` writes ``metadata.yaml`` and the MCAP summary.
    Writing is thread-safe. Use as a context manager to close on exit.
    """

    def __init__(self, path: str | Path, compression: str = 'none') -> None:
        """Create the bag directory ``path`` (it must not exist yet).

        Args:
            path: the bag directory.
            compression: 'none', or 'zstd' for zstd-compressed MCAP chunks (rosbag2's
                storage-level compression, which ``ros2 bag play`` reads without options).

        Raises:
            ValueError: unknown compression.
            RecordingError: the directory exists already.
        """
        if compression not in _COMPRESSIONS:
            raise ValueError(
                f'compression {compression!r} is not valid; choose one of {sorted(_COMPRESSIONS)}'
            )
        self.path = Path(path)
        try:
            self._writer = Writer(
                self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP
            )
            if compression == 'zstd':
                self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
            self._writer.open()
        except WriterError as error:
            raise RecordingError(f'cannot create the bag {self.path}: {error}') from error
        self._connections: dict[str, tuple[Connection, type]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def topics(self) -> dict[str, str]:
        """Registered topics and their type names."""
        return {topic: message_type_name(kind) for topic, (_, kind) in self._connections.items()}

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages written per topic."""
        return dict(self._counts)

    def add_topic(
        self, topic: str, message_type: type, offered_qos: Sequence[QoSProfile] = ()
    ) -> None:
        """Register a topic (absolute name) of a message type.

        Args:
            topic: fully qualified topic name, e.g. '/hmr/persons'.
            message_type: generated message class.
            offered_qos: the publishers' QoS, replayed by ``ros2 bag play``; empty when unknown.

        Raises:
            RecordingError: the topic is registered already, the type has no definition or no
                type hash, or the recorder is closed.
        """
        type_name = message_type_name(message_type)
        with self._lock:
            self._check_open()
            if topic in self._connections:
                raise RecordingError(f'topic {topic} is registered already')
            type_hash = type_description_hash(type_name)
            if not type_hash:
                raise RecordingError(
                    f'{type_name} has no installed type description (.json) with its RIHS01 '
                    'hash; build it with a ROS 2 Iron or newer rosidl'
                )
            connection = self._writer.add_connection(
                topic,
                type_name,
                msgdef=message_definition(type_name),
                rihs01=type_hash,
                offered_qos_profiles=[bag_qos(profile) for profile in offered_qos],
            )
            self._connections[topic] = (connection, message_type)
            self._counts[topic] = 0

    def write(self, topic: str, message: Any, log_time_ns: int) -> None:
        """Append one message.

        Args:
            topic: a registered topic.
            message: an instance of the topic's type, or its serialised CDR bytes.
            log_time_ns: receive time, nanoseconds (ROS time), the bag's timestamp.

        Raises:
            RecordingError: unknown topic, wrong message type, or closed recorder.
        """
        with self._lock:
            self._check_open()
            entry = self._connections.get(topic)
            if entry is None:
                raise RecordingError(f'topic {topic} is not registered; call add_topic first')
            connection, message_type = entry
            if isinstance(message, bytes):
                data = message
            elif isinstance(message, message_type):
                data = serialize_message(message)
            else:
                raise RecordingError(
                    f'topic {topic} records {message_type_name(message_type)}, got '
                    f'{type(message).__name__}'
                )
            self._writer.write(connection, int(log_time_ns), data)
            self._counts[topic] += 1

    def close(self) -> None:
        """Write the metadata and the MCAP summary (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RecordingError(f'recording {self.path} is closed')

    def __enter__(self) -> BagRecorder:
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
    """Yield every message of a rosbag2 bag directory in time order, deserialised with rclpy.

    The bag is read with rosbags' reader (any storage it supports: MCAP or SQLite 3).

    Raises:
        RecordingError: the bag cannot be read, a topic is not CDR or its type is not importable.
    """
    classes: dict[str, type] = {}
    try:
        with Reader(Path(path)) as reader:
            for connection in reader.connections:
                encoding = getattr(connection.ext, 'serialization_format', 'cdr')
                if encoding != 'cdr':
                    raise RecordingError(
                        f'topic {connection.topic} is {encoding!r}; only CDR topics are read'
                    )
            for connection, timestamp, data in reader.messages():
                message_type = classes.get(connection.msgtype)
                if message_type is None:
                    message_type = classes[connection.msgtype] = message_class(connection.msgtype)
                yield RecordedMessage(
                    connection.topic,
                    connection.msgtype,
                    int(timestamp),
                    deserialize_message(bytes(data), message_type),
                )
    except ReaderError as error:
        raise RecordingError(f'cannot read the bag {path}: {error}') from error


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
    """Subscribe to topics on a node and record every message to a rosbag2 bag directory.

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
        compression: str = 'none',
    ) -> None:
        """Create the bag and subscribe.

        Args:
            node: the node that owns the subscriptions (spin it to record).
            path: the bag directory (must not exist yet).
            topics: (topic, message class) or (topic, message class, QoS) per topic.
            compression: 'none' or 'zstd' (BagRecorder).
        """
        self._node = node
        self.recorder = BagRecorder(path, compression)
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
