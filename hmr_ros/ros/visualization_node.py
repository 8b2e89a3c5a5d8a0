"""``hmr_viz_node``: RViz markers and the debug overlay image for ``hmr_node``'s outputs.

A separate, plain rclpy node (docs/ros-interface.md), so building markers never
delays inference. It turns the compact ``persons`` stream, the latched ``model_info`` (joint
parents) and ``mesh_topology`` (faces) into:

- ``markers/skeleton`` (MarkerArray): joints, bones and id labels per person (``markers.py``);
- ``markers/mesh`` (MarkerArray): one TRIANGLE_LIST per person, built only while someone
  subscribes, at most ``mesh.rate_hz``, serialised by numpy (``serialize_mesh_markers``);
- ``debug/image`` (Image, rgb8): the persons drawn onto the source image (``overlay.py``), only
  while someone subscribes (the ``image`` and ``camera_info`` subscriptions exist only then), at
  most ``debug_image.rate_hz``.

Every output carries the persons' header (image stamp and frame). Arrays start with DELETEALL,
so departed persons vanish; :meth:`HmrVisualizationNode.clear` (called on shutdown) publishes
DELETEALL alone. Meshes need ``output.publish_vertices: true`` on ``hmr_node``; without it the
node warns, naming the parameter and the publishing node.

Rate limits compare header stamps, not wall time, so a replayed recording looks the same.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from hmr_ros.msg import MeshTopology, ModelInfo, Person, PersonArray
from hmr_ros.pipeline import overlay
from hmr_ros.pipeline.frames import (
    CameraIntrinsics,
    ImageDecodeError,
    IntrinsicsError,
    decode_image,
)
from hmr_ros.ros import markers, qos
from hmr_ros.ros.params import (  # field helpers shared with hmr_node
    INPUT_QOS_CHOICES,
    ParameterGroup,
    declare_node_parameters,
    flatten_parameters,
    parameter,
    parameter_entries,
    replace_parameters,
)

NODE_NAME = 'hmr_viz_node'
NANOSECONDS_PER_SECOND = 1_000_000_000
SUBSCRIBER_CHECK_PERIOD_S = 0.5
"""How often the node looks for debug/image subscribers (to subscribe to images or stop)."""
WARN_THROTTLE_S = 30.0
IMAGE_BUFFER_SIZE = 30
"""Images kept to find the one a PersonArray was computed from (same stamp): about 1 s at 30 Hz."""
DEFAULT_FRAME_PERIOD_S = 0.1
"""Frame period assumed for the marker lifetime until two PersonArrays have arrived."""
_PERIOD_SMOOTHING = 0.1  # weight of the newest stamp difference in the period estimate
_MAX_FRAME_PERIOD_S = 5.0  # longer gaps are pauses, not the frame rate
OUTPUT_DEPTH = 1
_RGB8 = 'rgb8'
_RGB_CHANNELS = 3


# ---------------------------------------------------------------- parameters
# Declared, validated and documented by the helpers of ros/params.py, as hmr_node's are.


@dataclasses.dataclass(frozen=True)
class SkeletonParams(ParameterGroup):
    """``skeleton.*``: the markers/skeleton array."""

    enable: bool = parameter(
        True, 'Publish joints, bones and id labels on markers/skeleton', dynamic=True
    )
    joint_diameter_m: float = parameter(
        0.04, 'Joint sphere diameter', unit='m', value_range=(0.001, 1.0), dynamic=True
    )
    bone_width_m: float = parameter(
        0.015, 'Bone line width', unit='m', value_range=(0.001, 1.0), dynamic=True
    )
    label_height_m: float = parameter(
        0.12, 'Id label text height', unit='m', value_range=(0.01, 2.0), dynamic=True
    )
    lifetime_periods: float = parameter(
        2.0,
        'Marker lifetime in frame periods (measured from the persons stamps); 0 = forever',
        value_range=(0.0, 1000.0),
        dynamic=True,
    )


@dataclasses.dataclass(frozen=True)
class MeshParams(ParameterGroup):
    """``mesh.*``: the markers/mesh array (needs output.publish_vertices on hmr_node)."""

    rate_hz: float = parameter(
        10.0,
        'Most mesh arrays per second (each is ~1.5 MB per person); 0 disables the mesh',
        unit='Hz',
        value_range=(0.0, 120.0),
        dynamic=True,
    )
    alpha: float = parameter(0.8, 'Mesh opacity', value_range=(0.0, 1.0), dynamic=True)


@dataclasses.dataclass(frozen=True)
class DebugImageParams(ParameterGroup):
    """``debug_image.*``: the debug/image overlay."""

    rate_hz: float = parameter(
        10.0,
        'Most overlay images per second; 0 disables the overlay',
        unit='Hz',
        value_range=(0.0, 120.0),
        dynamic=True,
    )
    mesh_style: str = parameter(
        'filled',
        'Mesh drawing: shaded translucent triangles, wireframe or none',
        choices=overlay.MESH_STYLES,
        dynamic=True,
    )
    mesh_alpha: float = parameter(
        0.5, 'Opacity of the filled mesh', value_range=(0.0, 1.0), dynamic=True
    )
    input_qos: str = parameter(
        'sensor_data',
        'QoS of the image and camera_info subscriptions (qos_overrides.* refine it)',
        choices=INPUT_QOS_CHOICES,
    )


@dataclasses.dataclass(frozen=True)
class VisualizationParams(ParameterGroup):
    """All parameters of ``hmr_viz_node`` (groups become dotted names: ``mesh.rate_hz``)."""

    skeleton: SkeletonParams = SkeletonParams()
    mesh: MeshParams = MeshParams()
    debug_image: DebugImageParams = DebugImageParams()


def _output_qos() -> QoSProfile:
    """Markers and the overlay: reliable, keep last 1, volatile (what RViz requests).

    Depth 1: a marker array or image replaces the previous one, so only the newest matters.
    """
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=OUTPUT_DEPTH,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.VOLATILE,
    )


# ---------------------------------------------------------------- helpers


def stamp_nanoseconds(stamp: Time) -> int:
    """``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * NANOSECONDS_PER_SECOND + int(stamp.nanosec)


class StampRateLimiter:
    """Let an event through at most ``rate_hz`` times per second of header-stamp time.

    A stamp earlier than the last accepted one (a replayed recording restarting) is accepted and
    restarts the count.
    """

    def __init__(self) -> None:
        self._last_ns: int | None = None

    def allow(self, stamp_ns: int, rate_hz: float) -> bool:
        """Whether an event stamped ``stamp_ns`` may pass; records it when it does.

        Args:
            stamp_ns: the event's header stamp, nanoseconds.
            rate_hz: the most events per second; 0 lets nothing through.
        """
        if rate_hz <= 0.0:
            return False
        last = self._last_ns
        # 1% tolerance: a 30 Hz stream limited to 10 Hz keeps every third frame despite jitter.
        period_ns = 0.99 * NANOSECONDS_PER_SECOND / rate_hz
        if last is None or stamp_ns < last or stamp_ns - last >= period_ns:
            self._last_ns = stamp_ns
            return True
        return False


def lacks_vertices(persons: PersonArray) -> bool:
    """Whether persons are in view but none carries vertices (output.publish_vertices false)."""
    visible = [p for p in persons.persons if p.tracking_state != Person.LOST]
    return bool(visible) and not any(len(p.vertices) for p in visible)


def overlay_persons(persons: PersonArray, include_3d: bool) -> list[overlay.OverlayPerson]:
    """What the overlay draws for each person that is not LOST.

    Args:
        persons: the PersonArray.
        include_3d: whether joints and vertices are in the image's camera frame (the persons'
            frame is the image's), so they can be projected.
    """
    result = []
    for person in persons.persons:
        if person.tracking_state == Person.LOST:
            continue
        r, g, b = markers.id_color(person.id)
        keypoints = np.asarray(person.keypoints_2d, dtype=np.float64)
        keypoints = keypoints.reshape(-1, 2) if keypoints.size % 2 == 0 else np.zeros((0, 2))
        empty = np.zeros((0, 3))
        result.append(
            overlay.OverlayPerson(
                label=person.id,
                color_rgb=(round(255 * r), round(255 * g), round(255 * b)),
                box_px=np.array(
                    [person.bbox.x_min, person.bbox.y_min, person.bbox.x_max, person.bbox.y_max]
                ),
                keypoints_px=keypoints,
                joints_cam=markers.person_joints(person) if include_3d else empty,
                vertices_cam=markers.person_vertices(person) if include_3d else empty,
            )
        )
    return result


def rgb_image_message(rgb: np.ndarray, source: Image) -> Image:
    """An rgb8 Image of ``rgb`` with the source image's header."""
    height, width = rgb.shape[:2]
    message = Image()
    message.header = source.header
    message.height = height
    message.width = width
    message.encoding = _RGB8
    message.is_bigendian = 0
    message.step = width * _RGB_CHANNELS
    message.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return message


# ---------------------------------------------------------------- the node


class HmrVisualizationNode(Node):
    """Markers and overlay for ``hmr_node`` (see the module docstring).

    Args:
        node_name: ROS node name.
        **node_kwargs: passed to ``rclpy.node.Node`` (``context``, ``namespace``,
            ``parameter_overrides``, ...).

    Raises:
        ValueError: a parameter override is invalid (the message names it).
    """

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._params = declare_node_parameters(self, VisualizationParams)
        self._parameter_names = frozenset(e.name for e in parameter_entries(VisualizationParams))
        self._joint_parents: np.ndarray | None = None
        self._topology: MeshTopology | None = None
        self._faces = np.zeros((0, 3), dtype=np.int64)
        self._mesh_fast_path = True
        self._mesh_limiter = StampRateLimiter()
        self._image_limiter = StampRateLimiter()
        self._period_s = DEFAULT_FRAME_PERIOD_S
        self._last_stamp_ns: int | None = None
        self._last_frame_id = ''
        self._images: collections.deque[Image] = collections.deque(maxlen=IMAGE_BUFFER_SIZE)
        self._pending_persons: PersonArray | None = None
        self._camera_info: CameraInfo | None = None
        self._image_subscriptions: list[Any] = []
        self.mesh_build_ms: float | None = None
        """Time to build the last mesh array (for benchmarks and diagnostics)."""

        options = qos.overriding_options
        self._skeleton_publisher = self.create_publisher(
            MarkerArray, 'markers/skeleton', _output_qos(), qos_overriding_options=options()
        )
        self._mesh_publisher = self.create_publisher(
            MarkerArray, 'markers/mesh', _output_qos(), qos_overriding_options=options()
        )
        self._image_publisher = self.create_publisher(
            Image, 'debug/image', _output_qos(), qos_overriding_options=options()
        )
        self.create_subscription(
            PersonArray,
            'persons',
            self._on_persons,
            qos.array_output_qos(),
            qos_overriding_options=options(),
        )
        self.create_subscription(ModelInfo, 'model_info', self._on_model_info, qos.latched_qos())
        self.create_subscription(
            MeshTopology, 'mesh_topology', self._on_mesh_topology, qos.latched_qos()
        )
        self.create_timer(SUBSCRIBER_CHECK_PERIOD_S, self._update_image_subscriptions)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            'parameters: '
            + ', '.join(f'{k}={v}' for k, v in flatten_parameters(self._params).items())
        )

    @property
    def params(self) -> VisualizationParams:
        """The current parameters (a new instance after every accepted change)."""
        return self._params

    # ------------------------------------------------------------ parameters

    def _on_set_parameters(self, parameters: Sequence[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in self._parameter_names}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            new_params = replace_parameters(self._params, changes)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        old, self._params = self._params, new_params
        if old.skeleton.enable and not new_params.skeleton.enable:
            self._publish_clear(self._skeleton_publisher, markers.SKELETON_NAMESPACES)
        if old.mesh.rate_hz > 0.0 and new_params.mesh.rate_hz == 0.0:
            self._publish_clear(self._mesh_publisher, (markers.MESH_NAMESPACE,))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------ latched inputs

    def _on_model_info(self, message: ModelInfo) -> None:
        try:
            self._joint_parents = markers.skeleton_parents(
                list(message.joint_names), message.joint_parents
            )
        except ValueError as error:
            self.get_logger().warning(f'model_info: {error}; using the joint parents as given')
            self._joint_parents = np.asarray(message.joint_parents, dtype=np.int64)

    def _on_mesh_topology(self, message: MeshTopology) -> None:
        try:
            faces = markers.faces_from_topology(message)
        except ValueError as error:
            self.get_logger().error(f'ignoring mesh_topology: {error}')
            return
        self._topology = message
        self._faces = faces

    # ------------------------------------------------------------ persons

    def _style(self) -> markers.MarkerStyle:
        params = self._params
        return markers.MarkerStyle(
            joint_diameter_m=params.skeleton.joint_diameter_m,
            bone_width_m=params.skeleton.bone_width_m,
            label_height_m=params.skeleton.label_height_m,
            lifetime_s=params.skeleton.lifetime_periods * self._period_s,
            mesh_alpha=params.mesh.alpha,
        )

    def _update_period(self, stamp_ns: int) -> None:
        last, self._last_stamp_ns = self._last_stamp_ns, stamp_ns
        if last is None:
            return
        elapsed_s = (stamp_ns - last) / NANOSECONDS_PER_SECOND
        if 0.0 < elapsed_s <= _MAX_FRAME_PERIOD_S:
            self._period_s += _PERIOD_SMOOTHING * (elapsed_s - self._period_s)

    def _on_persons(self, message: PersonArray) -> None:
        stamp_ns = stamp_nanoseconds(message.header.stamp)
        self._update_period(stamp_ns)
        self._last_frame_id = message.header.frame_id
        style = self._style()
        if self._params.skeleton.enable and self._skeleton_publisher.get_subscription_count():
            self._publish_skeleton(message, style)
        rate_hz = self._params.mesh.rate_hz
        if rate_hz > 0.0 and self._mesh_publisher.get_subscription_count():
            # An array without meshes (everyone left) only clears: it skips the rate limit.
            nobody = not any(p.tracking_state != Person.LOST for p in message.persons)
            if nobody or self._mesh_limiter.allow(stamp_ns, rate_hz):
                # Meshes are refreshed at most rate_hz: they must outlive that period.
                period_s = max(self._period_s, 1.0 / rate_hz)
                lifetime_s = self._params.skeleton.lifetime_periods * period_s
                self._publish_mesh(message, dataclasses.replace(style, lifetime_s=lifetime_s))
        if self._image_subscriptions:
            self._pending_persons = message
            self._try_overlay()

    def _publish_skeleton(self, message: PersonArray, style: markers.MarkerStyle) -> None:
        parents = self._joint_parents
        if parents is None:
            num_joints = max((len(p.joints) // 3 for p in message.persons), default=0)
            parents = markers.default_joint_parents(num_joints)
        try:
            array = markers.skeleton_markers(message, parents, style)
        except ValueError as error:
            self.get_logger().warning(
                f'persons message not drawn: {error}', throttle_duration_sec=WARN_THROTTLE_S
            )
            return
        self._skeleton_publisher.publish(array)

    def _publish_mesh(self, message: PersonArray, style: markers.MarkerStyle) -> None:
        topology = self._topology
        if topology is None:
            self.get_logger().warning(
                'markers/mesh has subscribers but no mesh_topology arrived yet; is hmr_node '
                'active in this namespace?',
                throttle_duration_sec=WARN_THROTTLE_S,
            )
            return
        if lacks_vertices(message):
            self.get_logger().warning(
                'markers/mesh has subscribers but persons carry no vertices: set '
                f'output.publish_vertices to true on {self._persons_publisher_names()}',
                throttle_duration_sec=WARN_THROTTLE_S,
            )
        start_ns = self.get_clock().now().nanoseconds
        if self._mesh_fast_path:
            try:
                data = markers.serialize_mesh_markers(
                    message, self._faces, topology.num_vertices, style
                )
            except RuntimeError as error:
                self.get_logger().warning(
                    f'mesh fast path unavailable ({error}); building Point objects instead'
                )
                self._mesh_fast_path = False
            else:
                self._mesh_publisher.publish(data)
                self.mesh_build_ms = (self.get_clock().now().nanoseconds - start_ns) / 1e6
                return
        self._mesh_publisher.publish(
            markers.mesh_markers(message, self._faces, topology.num_vertices, style)
        )
        self.mesh_build_ms = (self.get_clock().now().nanoseconds - start_ns) / 1e6

    def _persons_publisher_names(self) -> str:
        """'/hmr/hmr_node' (the persons publisher's full name), or 'hmr_node' when unknown."""
        topic = self.resolve_topic_name('persons')
        names = sorted(
            f'{info.node_namespace.rstrip("/")}/{info.node_name}'
            for info in self.get_publishers_info_by_topic(topic)
        )
        return ', '.join(names) if names else 'hmr_node'

    # ------------------------------------------------------------ debug image

    def _update_image_subscriptions(self) -> None:
        wanted = (
            self._params.debug_image.rate_hz > 0.0
            and self._image_publisher.get_subscription_count() > 0
        )
        if wanted and not self._image_subscriptions:
            name = self._params.debug_image.input_qos
            self._image_subscriptions = [
                self.create_subscription(
                    Image,
                    'image',
                    self._on_image,
                    qos.image_qos(name),
                    qos_overriding_options=qos.overriding_options(),
                ),
                self.create_subscription(
                    CameraInfo,
                    'camera_info',
                    self._on_camera_info,
                    qos.camera_info_qos(name),
                    qos_overriding_options=qos.overriding_options(),
                ),
            ]
        elif not wanted and self._image_subscriptions:
            for subscription in self._image_subscriptions:
                self.destroy_subscription(subscription)
            self._image_subscriptions = []
            self._images.clear()
            self._pending_persons = None

    def _on_camera_info(self, message: CameraInfo) -> None:
        self._camera_info = message

    def _on_image(self, message: Image) -> None:
        self._images.append(message)
        self._try_overlay()

    def _try_overlay(self) -> None:
        """Draw the pending PersonArray onto the buffered image with the same stamp, if any."""
        persons = self._pending_persons
        if persons is None:
            return
        stamp = persons.header.stamp
        image = next((i for i in reversed(self._images) if i.header.stamp == stamp), None)
        if image is None:
            return
        self._pending_persons = None
        if not self._image_limiter.allow(
            stamp_nanoseconds(stamp), self._params.debug_image.rate_hz
        ):
            return
        try:
            rgb = decode_image(
                image.data,
                image.width,
                image.height,
                image.step,
                image.encoding,
                bool(image.is_bigendian),
            )
        except ImageDecodeError as error:
            self.get_logger().warning(
                f'debug/image skipped: {error}', throttle_duration_sec=WARN_THROTTLE_S
            )
            return
        same_frame = persons.header.frame_id == image.header.frame_id
        intrinsics = self._intrinsics(image) if same_frame else None
        if not same_frame:
            self.get_logger().info(
                f'debug/image draws 2D data only: persons are in {persons.header.frame_id!r}, '
                f'the image in {image.header.frame_id!r}',
                throttle_duration_sec=WARN_THROTTLE_S,
            )
        parents = self._joint_parents
        if parents is None:
            num_joints = max((len(p.joints) // 3 for p in persons.persons), default=0)
            parents = markers.default_joint_parents(num_joints)
        params = self._params.debug_image
        try:
            drawn = overlay.render_overlay(
                rgb,
                overlay_persons(persons, include_3d=intrinsics is not None),
                parents,
                self._faces,
                intrinsics,
                params.mesh_style,  # type: ignore[arg-type]
                params.mesh_alpha,
            )
        except ValueError as error:
            self.get_logger().warning(
                f'debug/image skipped: {error}', throttle_duration_sec=WARN_THROTTLE_S
            )
            return
        self._image_publisher.publish(rgb_image_message(drawn, image))

    def _intrinsics(self, image: Image) -> CameraIntrinsics | None:
        info = self._camera_info
        if info is None:
            self.get_logger().warning(
                'debug/image draws 2D data only: no camera_info received',
                throttle_duration_sec=WARN_THROTTLE_S,
            )
            return None
        try:
            return CameraIntrinsics.from_k_matrix(
                info.k, image.width, image.height, info.distortion_model, info.d
            )
        except IntrinsicsError as error:
            self.get_logger().warning(
                f'debug/image draws 2D data only: {error}', throttle_duration_sec=WARN_THROTTLE_S
            )
            return None

    # ------------------------------------------------------------ clearing

    def _publish_clear(self, publisher: Any, namespaces: Sequence[str]) -> None:
        array = MarkerArray()
        array.markers = markers.delete_all_markers(namespaces, self._last_frame_id)
        publisher.publish(array)

    def clear(self) -> None:
        """Publish DELETEALL on both marker topics, so RViz drops what this node drew."""
        self._publish_clear(self._skeleton_publisher, markers.SKELETON_NAMESPACES)
        self._publish_clear(self._mesh_publisher, (markers.MESH_NAMESPACE,))


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run hmr_ros hmr_viz_node``."""
    rclpy.init(args=args)
    node: HmrVisualizationNode | None = None
    try:
        try:
            node = HmrVisualizationNode()
        except ValueError as error:
            rclpy.logging.get_logger(NODE_NAME).fatal(f'invalid parameters: {error}')
            return 2
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if rclpy.ok():
                node.clear()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
