"""RViz markers for the persons stream: skeleton, id labels and the SMPL-X mesh.

Pure functions from ``hmr_ros/PersonArray`` (plus ``ModelInfo.joint_parents`` and
``MeshTopology.faces``) to ``visualization_msgs/MarkerArray`` content, used by the visualization
node (docs/ros-interface.md):

- ``markers/skeleton``: per person a SPHERE_LIST of the joints, a LINE_LIST of the bones (each
  joint to its kinematic parent) and a TEXT_VIEW_FACING label with the track id;
- ``markers/mesh``: per person a TRIANGLE_LIST of the mesh (three points per face).

Every array starts with one DELETEALL per namespace it uses, so people who left the view vanish
with the next message. Markers carry the PersonArray's frame and stamp (the image acquisition
time), never ``now()`` or ``map``. Marker ids are positions within the message: the array is
cleared by its own DELETEALL, so ids only need to be unique inside one message, and tracker ids
(strings) would have to be hashed into int32 with a risk of collisions. Colours come from the
tracker id, so one person keeps one colour for as long as the tracker keeps the id.

A full SMPL-X TRIANGLE_LIST holds 20,908 x 3 = 62,724 ``geometry_msgs/Point`` objects. Creating and
then serialising that many Python objects costs tens of milliseconds per person, so
``serialize_mesh_markers`` builds the serialised message directly: it serialises the array with
one placeholder point per person and splices the vertex bytes (float64 triplets, made by numpy) in
place of each placeholder. ``mesh_markers`` is the readable reference that builds the objects; a
test checks that both give identical bytes.
"""

from __future__ import annotations

import colorsys
import dataclasses
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
from rclpy.serialization import serialize_message
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from hmr_ros.body_models.joint_names import (
    ANATOMICAL_FINGER_ORDER,
    NUM_SEGMENTS_PER_FINGER,
    NUM_SMPLX_JOINTS,
    SIDES,
    SMPLX_PARENTS,
)
from hmr_ros.msg import MeshTopology, Person, PersonArray

JOINTS_NAMESPACE = 'joints'
BONES_NAMESPACE = 'bones'
IDS_NAMESPACE = 'ids'
MESH_NAMESPACE = 'mesh'
SKELETON_NAMESPACES = (JOINTS_NAMESPACE, BONES_NAMESPACE, IDS_NAMESPACE)

XYZ = 3
VERTICES_PER_FACE = 3
NANOSECONDS_PER_SECOND = 1_000_000_000

# Golden-ratio hue steps spread consecutive hash values evenly around the colour wheel.
_GOLDEN_RATIO_CONJUGATE = 0.618033988749895
_ID_SATURATION = 0.75
_ID_VALUE = 0.95

# CDR encapsulation identifiers (first two bytes of a serialised message): plain CDR, big or
# little endian. The splice below relies on plain-CDR alignment rules and checks for these.
_CDR_BIG_ENDIAN = b'\x00\x00'
_CDR_LITTLE_ENDIAN = b'\x00\x01'
_CDR_HEADER_BYTES = 4
_SEQUENCE_LENGTH_BYTES = 4
_POINT_BYTES = XYZ * 8  # three float64; a multiple of 8, so splicing keeps every later alignment
# Template values the fast path looks for: a lifetime no real marker has (sec minus the marker's
# index, so each is unique) and a placeholder point no real mesh has.
_ANCHOR_SEC = -1_234_567_890
_ANCHOR_NANOSEC = 4_012_345_678
_LIFETIME_TO_COUNT_BYTES = 12  # sec (4) + nanosec (4) + frame_locked (1) + padding to 4 (3)
_PLACEHOLDER_X = -1.2345678901234567e301
_PLACEHOLDER_Z = 7.654321098765432e-299


@dataclasses.dataclass(frozen=True)
class MarkerStyle:
    """How the markers look. Sizes are in metres of the header frame.

    Attributes:
        joint_diameter_m: Diameter of the joint spheres.
        bone_width_m: Line width of the bones.
        label_height_m: Height of the id text.
        label_offset_m: Distance of the label above the head, along the pelvis-to-head direction
            (so it is "above" in any frame, optical or REP-103).
        lifetime_s: Marker lifetime, a fallback for when the persons stream stops (each new array
            deletes the previous markers anyway); about two frame periods. 0 = forever.
        mesh_alpha: Opacity of the mesh, 0..1.
        unconfirmed_alpha: Opacity of tentative and predicted (not observed) persons, 0..1.
    """

    joint_diameter_m: float = 0.04
    bone_width_m: float = 0.015
    label_height_m: float = 0.12
    label_offset_m: float = 0.25
    lifetime_s: float = 0.2
    mesh_alpha: float = 0.8
    unconfirmed_alpha: float = 0.35

    def __post_init__(self) -> None:
        for name in ('joint_diameter_m', 'bone_width_m', 'label_height_m'):
            if not getattr(self, name) > 0.0:
                raise ValueError(f'MarkerStyle.{name} must be > 0, got {getattr(self, name)}')
        if not self.lifetime_s >= 0.0:
            raise ValueError(f'MarkerStyle.lifetime_s must be >= 0, got {self.lifetime_s}')
        for name in ('mesh_alpha', 'unconfirmed_alpha'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f'MarkerStyle.{name} must be in [0, 1], got {getattr(self, name)}'
                )


def id_color(person_id: str) -> tuple[float, float, float]:
    """Return a stable RGB colour (each channel 0..1) for a tracker id.

    The hue comes from the CRC-32 of the id, not Python's ``hash`` (salted per process), so a
    person keeps the same colour across nodes and runs.

    Args:
        person_id: Person.id.

    Returns:
        (r, g, b), saturated and bright enough to read on a dark RViz background.
    """
    hue = (zlib.crc32(person_id.encode('utf-8')) * _GOLDEN_RATIO_CONJUGATE) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, _ID_SATURATION, _ID_VALUE)
    return (r, g, b)


def default_joint_parents(num_joints: int) -> np.ndarray:
    """Parents to use before ModelInfo arrives: SMPL-X's tree for the first 55 joints.

    Person.joints lists the 55 SMPL-X kinematic joints first (Person.msg), so their bones are
    known without ModelInfo; joints after them (fingertips) get no bone until ModelInfo says.

    Args:
        num_joints: K, the number of joints in Person.joints.

    Returns:
        (K,) int64 parent indices, -1 where unknown or root.
    """
    parents = np.full(num_joints, -1, dtype=np.int64)
    count = min(num_joints, NUM_SMPLX_JOINTS)
    parents[:count] = SMPLX_PARENTS[:count]
    return parents


def skeleton_parents(
    joint_names: Sequence[str], joint_parents: Sequence[int] | np.ndarray
) -> np.ndarray:
    """ModelInfo's parents, with each fingertip joined to its finger's last segment.

    hmr_node's ModelInfo already parents each fingertip to its finger's last joint; a producer
    that gives fingertips -1 (they are mesh vertices, not kinematic joints) would draw hands
    cut off, so such fingertips are joined here. Fingertips are found by name, as the ``smplx``
    package calls them (``left_thumb``) or with a ``_tip`` suffix (``left_thumb_tip``), and
    attached to ``<side>_<finger>3`` when that joint is listed.

    Args:
        joint_names: ModelInfo.joint_names.
        joint_parents: ModelInfo.joint_parents, same length.

    Returns:
        (K,) int64 parent indices, -1 for none.

    Raises:
        ValueError: the two lists differ in length.
    """
    parents = np.asarray(joint_parents, dtype=np.int64).ravel().copy()
    if len(joint_names) != parents.shape[0]:
        raise ValueError(
            f'ModelInfo has {len(joint_names)} joint_names but {parents.shape[0]} joint_parents'
        )
    index = {name: i for i, name in enumerate(joint_names)}
    for i, name in enumerate(joint_names):
        if parents[i] >= 0:
            continue
        stem = name[: -len('_tip')] if name.endswith('_tip') else name
        side, _, finger = stem.partition('_')
        if side in SIDES and finger in ANATOMICAL_FINGER_ORDER:
            last_segment = index.get(f'{side}_{finger}{NUM_SEGMENTS_PER_FINGER}')
            if last_segment is not None:
                parents[i] = last_segment
    return parents


def faces_from_topology(topology: MeshTopology) -> np.ndarray:
    """Read MeshTopology.faces into an (F, 3) int64 array, checking the indices.

    Args:
        topology: the latched mesh topology.

    Returns:
        (F, 3) vertex indices.

    Raises:
        ValueError: faces is not a multiple of 3 long or indexes past num_vertices.
    """
    faces = np.asarray(topology.faces, dtype=np.int64)
    if faces.size % VERTICES_PER_FACE:
        raise ValueError(
            f'MeshTopology.faces has {faces.size} indices, not a multiple of 3; the publisher '
            'must send F x 3 indices'
        )
    faces = faces.reshape(-1, VERTICES_PER_FACE)
    if faces.size and int(faces.max()) >= topology.num_vertices:
        raise ValueError(
            f'MeshTopology.faces indexes vertex {int(faces.max())} but num_vertices is '
            f'{topology.num_vertices}'
        )
    return faces


def person_joints(person: Person) -> np.ndarray:
    """Person.joints as a (K, 3) float32 array (a view of the message's buffer).

    Raises:
        ValueError: the flat array is not a multiple of 3 long.
    """
    return _xyz_array(person.joints, 'joints')


def person_vertices(person: Person) -> np.ndarray:
    """Person.vertices as a (V, 3) float32 array (a view of the message's buffer).

    Raises:
        ValueError: the flat array is not a multiple of 3 long.
    """
    return _xyz_array(person.vertices, 'vertices')


def _xyz_array(values: object, name: str) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float32).ravel()
    if flat.size % XYZ:
        raise ValueError(f'Person.{name} has {flat.size} values, not a multiple of 3 (x, y, z)')
    return flat.reshape(-1, XYZ)


def delete_all_markers(
    namespaces: Sequence[str], frame_id: str, stamp: Time | None = None
) -> list[Marker]:
    """Return one DELETEALL marker per namespace.

    RViz 2 clears the namespace given in a DELETEALL marker (all markers when it is empty); one
    marker per namespace clears exactly what this module publishes.

    Args:
        namespaces: marker namespaces to clear.
        frame_id: header frame.
        stamp: header stamp; zero time when None.
    """
    markers = []
    for namespace in namespaces:
        marker = Marker()
        marker.header.frame_id = frame_id
        if stamp is not None:
            marker.header.stamp = stamp
        marker.ns = namespace
        marker.action = Marker.DELETEALL
        markers.append(marker)
    return markers


def _visible(person: Person) -> bool:
    return person.tracking_state != Person.LOST


def _alpha(person: Person, opaque: float, style: MarkerStyle) -> float:
    if person.tracking_state == Person.TRACKED:
        return opaque
    return min(opaque, style.unconfirmed_alpha)


def _color(person: Person, alpha: float) -> ColorRGBA:
    r, g, b = id_color(person.id)
    return ColorRGBA(r=r, g=g, b=b, a=float(alpha))


def _duration(seconds: float) -> Duration:
    nanoseconds = round(seconds * NANOSECONDS_PER_SECOND)
    return Duration(
        sec=nanoseconds // NANOSECONDS_PER_SECOND, nanosec=nanoseconds % NANOSECONDS_PER_SECOND
    )


def _base_marker(
    persons: PersonArray, namespace: str, marker_id: int, marker_type: int, style: MarkerStyle
) -> Marker:
    marker = Marker()
    marker.header = persons.header
    marker.ns = namespace
    marker.id = marker_id
    marker.type = marker_type
    marker.action = Marker.ADD
    marker.pose.orientation.w = 1.0
    marker.lifetime = _duration(style.lifetime_s)
    return marker


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).tolist()]


def _label_position(person: Person, joints: np.ndarray, style: MarkerStyle) -> Point:
    """Above the head along the pelvis-to-head direction, or at the root when joints are few."""
    head = 15  # SMPL-X 'head'; pelvis is 0 (SMPLX_JOINT_NAMES)
    if joints.shape[0] > head and np.all(np.isfinite(joints[[0, head]])):
        up = joints[head] - joints[0]
        length = float(np.linalg.norm(up))
        if length > 0.0:
            x, y, z = (joints[head] + up / length * style.label_offset_m).tolist()
            return Point(x=x, y=y, z=z)
    position = person.root_pose.position
    return Point(x=position.x, y=position.y, z=position.z)


def _label_text(person: Person) -> str:
    if person.tracking_state == Person.TENTATIVE:
        return f'{person.id} (tentative)'
    if person.tracking_state == Person.PREDICTED:
        return f'{person.id} (predicted)'
    return person.id


def skeleton_markers(
    persons: PersonArray, joint_parents: Sequence[int] | np.ndarray, style: MarkerStyle
) -> MarkerArray:
    """Build the ``markers/skeleton`` array: DELETEALL, then joints, bones and a label per person.

    Persons in state LOST (their final message) get no markers, so they disappear at once.
    Non-finite joints are left out of the spheres and of every bone that touches them.

    Args:
        persons: one PersonArray; its header gives every marker's frame and stamp.
        joint_parents: (K,) parent index per joint (ModelInfo.joint_parents), -1 for none; when
            shorter than a person's joints, the extra joints get no bones.
        style: sizes, colours and lifetime.

    Returns:
        The MarkerArray to publish.

    Raises:
        ValueError: a person's joints array is not a multiple of 3 long.
    """
    array = MarkerArray()
    array.markers = delete_all_markers(SKELETON_NAMESPACES, persons.header.frame_id)
    for index, person in enumerate(persons.persons):
        if not _visible(person):
            continue
        joints = person_joints(person)
        finite = np.all(np.isfinite(joints), axis=1)
        color = _color(person, _alpha(person, 1.0, style))
        if joints.shape[0]:
            spheres = _base_marker(persons, JOINTS_NAMESPACE, index, Marker.SPHERE_LIST, style)
            spheres.scale.x = spheres.scale.y = spheres.scale.z = style.joint_diameter_m
            spheres.color = color
            spheres.points = _points(joints[finite])
            array.markers.append(spheres)

            bones = _base_marker(persons, BONES_NAMESPACE, index, Marker.LINE_LIST, style)
            bones.scale.x = style.bone_width_m
            bones.color = color
            bones.points = _points(joints[_bone_endpoints(joint_parents, finite)])
            array.markers.append(bones)

        label = _base_marker(persons, IDS_NAMESPACE, index, Marker.TEXT_VIEW_FACING, style)
        label.scale.z = style.label_height_m
        label.color = color
        label.pose.position = _label_position(person, joints, style)
        label.text = _label_text(person)
        array.markers.append(label)
    return array


def _bone_endpoints(joint_parents: Sequence[int] | np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Joint indices [parent0, child0, parent1, child1, ...] of every drawable bone."""
    num_joints = finite.shape[0]
    parents = np.asarray(joint_parents, dtype=np.int64).ravel()[:num_joints]
    children = np.arange(parents.shape[0])
    keep = (parents >= 0) & (parents < num_joints)
    keep &= finite[children] & finite[np.clip(parents, 0, num_joints - 1)]
    return np.stack([parents[keep], children[keep]], axis=1).ravel()


def _mesh_persons(persons: PersonArray, num_vertices: int) -> list[tuple[int, Person]]:
    """(index, person) of every visible person whose vertices match the topology."""
    selected = []
    for index, person in enumerate(persons.persons):
        if _visible(person) and len(person.vertices) == num_vertices * XYZ and num_vertices:
            selected.append((index, person))
    return selected


def _mesh_marker(persons: PersonArray, index: int, person: Person, style: MarkerStyle) -> Marker:
    marker = _base_marker(persons, MESH_NAMESPACE, index, Marker.TRIANGLE_LIST, style)
    marker.scale.x = marker.scale.y = marker.scale.z = 1.0
    marker.color = _color(person, _alpha(person, style.mesh_alpha, style))
    return marker


def _triangle_vertices(person: Person, faces: np.ndarray) -> np.ndarray:
    """(F * 3, 3) float64 corner positions, three per face in face order."""
    return person_vertices(person).astype(np.float64)[faces.ravel()]


def mesh_markers(
    persons: PersonArray, faces: np.ndarray, num_vertices: int, style: MarkerStyle
) -> MarkerArray:
    """Build the ``markers/mesh`` array with message objects (the readable reference).

    Persons without vertices (``output.publish_vertices`` is false on the main node), with a
    vertex count other than ``num_vertices``, or LOST get no mesh marker.

    Args:
        persons: one PersonArray; its header gives every marker's frame and stamp.
        faces: (F, 3) vertex indices (``faces_from_topology``).
        num_vertices: MeshTopology.num_vertices.
        style: colours and lifetime.

    Returns:
        DELETEALL for the mesh namespace, then one TRIANGLE_LIST per person.
    """
    array = MarkerArray()
    array.markers = delete_all_markers((MESH_NAMESPACE,), persons.header.frame_id)
    for index, person in _mesh_persons(persons, num_vertices):
        marker = _mesh_marker(persons, index, person, style)
        marker.points = _points(_triangle_vertices(person, faces))
        array.markers.append(marker)
    return array


def serialize_mesh_markers(
    persons: PersonArray, faces: np.ndarray, num_vertices: int, style: MarkerStyle
) -> bytes:
    """Serialised ``markers/mesh`` MarkerArray; deserialises to ``mesh_markers(...)``.

    Steps:
    1. Build the array as ``mesh_markers`` does, but each TRIANGLE_LIST holds one placeholder
       point, and its ``lifetime`` holds an anchor value unique to the marker; serialise with
       rclpy.
    2. Find each anchor. In plain CDR the fields after it are fixed: ``lifetime.sec`` (4 bytes),
       ``lifetime.nanosec`` (4), ``frame_locked`` (1) padded to 4, then the uint32 point count;
       the points follow, aligned to 8 bytes counted from the end of the 4-byte encapsulation
       header. The placeholder point must sit exactly there (checked).
    3. Write the real lifetime over the anchor, and replace count and placeholder by the real
       count and the corner coordinates, written by numpy in the message's byte order. A point
       is 24 bytes, a multiple of the largest CDR alignment (8), so everything after a splice
       keeps its alignment.

    Padding bytes are not specified by CDR (rclpy leaves whatever memory held), so compare the
    result with the reference by deserialising, not byte by byte. Publish it with
    ``publisher.publish(data)`` (rclpy publishes ``bytes`` as an already serialised message).

    Args:
        persons: one PersonArray.
        faces: (F, 3) vertex indices.
        num_vertices: MeshTopology.num_vertices.
        style: colours and lifetime.

    Returns:
        CDR bytes of the MarkerArray.

    Raises:
        RuntimeError: the serialised layout is not the expected plain CDR (another RMW's
            encoding); use ``mesh_markers`` then.
    """
    array = MarkerArray()
    array.markers = delete_all_markers((MESH_NAMESPACE,), persons.header.frame_id)
    corners = []
    for index, person in _mesh_persons(persons, num_vertices):
        marker = _mesh_marker(persons, index, person, style)
        marker.lifetime = Duration(sec=_ANCHOR_SEC - index, nanosec=_ANCHOR_NANOSEC)
        marker.points = [Point(x=_PLACEHOLDER_X, y=float(index), z=_PLACEHOLDER_Z)]
        array.markers.append(marker)
        corners.append((index, _triangle_vertices(person, faces)))
    template = serialize_message(array)
    if not corners:
        return template
    encapsulation = template[:2]
    if encapsulation not in (_CDR_BIG_ENDIAN, _CDR_LITTLE_ENDIAN):
        raise RuntimeError(
            f'unexpected CDR encapsulation {encapsulation.hex()}; the mesh fast path supports '
            'plain CDR only'
        )
    order = '<' if encapsulation == _CDR_LITTLE_ENDIAN else '>'
    lifetime = _duration(style.lifetime_s)
    lifetime_bytes = struct.pack(f'{order}iI', lifetime.sec, lifetime.nanosec)
    pieces = []
    position = 0
    for index, xyz in corners:
        anchor = _find_once(
            template, struct.pack(f'{order}iI', _ANCHOR_SEC - index, _ANCHOR_NANOSEC), position
        )
        count_start = anchor + _LIFETIME_TO_COUNT_BYTES
        data_start = _CDR_HEADER_BYTES + _align8(
            count_start + _SEQUENCE_LENGTH_BYTES - _CDR_HEADER_BYTES
        )
        placeholder = struct.pack(f'{order}3d', _PLACEHOLDER_X, float(index), _PLACEHOLDER_Z)
        if template[data_start : data_start + _POINT_BYTES] != placeholder or struct.unpack_from(
            f'{order}I', template, count_start
        ) != (1,):
            raise RuntimeError('mesh marker points not where plain CDR puts them')
        pieces.append(template[position:anchor])
        pieces.append(lifetime_bytes)
        pieces.append(template[anchor + len(lifetime_bytes) : count_start])
        pieces.append(struct.pack(f'{order}I', xyz.shape[0]))
        pieces.append(template[count_start + _SEQUENCE_LENGTH_BYTES : data_start])
        pieces.append(np.ascontiguousarray(xyz, dtype=f'{order}f8').tobytes())
        position = data_start + _POINT_BYTES
    pieces.append(template[position:])
    return b''.join(pieces)


def _align8(relative_offset: int) -> int:
    return (relative_offset + 7) // 8 * 8


def _find_once(data: bytes, pattern: bytes, start: int) -> int:
    found = data.find(pattern, start)
    if found < 0 or data.find(pattern, found + 1) >= 0:
        raise RuntimeError('mesh marker anchor not found exactly once in the serialised array')
    return found
