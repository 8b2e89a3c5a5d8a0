"""hmr_viz_node in-process: persons, model_info, mesh_topology and images in, markers out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import require_ros_modules

REPO = Path(__file__).resolve().parents[2]
FRAME = 'camera_color_optical_frame'
NAMESPACE = 'hmr'
FX = FY = 500.0
CX, CY = 320.0, 240.0
WIDTH, HEIGHT = 640, 480


@pytest.fixture(autouse=True)
def _ros_modules() -> None:
    require_ros_modules()


def _latched():
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )


def _stamp(sec: int, nanosec: int = 0):
    from builtin_interfaces.msg import Time

    return Time(sec=sec, nanosec=nanosec)


def _mesh() -> tuple[np.ndarray, np.ndarray]:
    """A square of two front-facing triangles 2 m ahead: corners project to u, v in 270..370."""
    vertices = np.array(
        [[-0.2, -0.2, 2.0], [-0.2, 0.2, 2.0], [0.2, -0.2, 2.0], [0.2, 0.2, 2.0]], np.float32
    )
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    return vertices, faces


def _persons(stamp, vertices: np.ndarray | None = None, frame_id: str = FRAME):
    from hmr_ros.msg import Person, PersonArray

    message = PersonArray()
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    person = Person(id='7', tracking_state=Person.TRACKED)
    joints = np.array([[0.0, 0.0, 2.0], [0.5, -0.24, 2.0], [-0.5, 0.24, 2.0]], np.float32)
    person.joints = joints.ravel()
    person.bbox.x_min, person.bbox.y_min, person.bbox.x_max, person.bbox.y_max = (
        100.0,
        50.0,
        500.0,
        450.0,
    )
    if vertices is not None:
        person.vertices = vertices.ravel()
    message.persons = [person]
    return message


class _Graph:
    """The viz node plus a helper node that publishes its inputs and records its outputs."""

    def __init__(self, context, parameter_overrides=None) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image

        from hmr_ros.msg import MeshTopology, ModelInfo, PersonArray
        from hmr_ros.ros.visualization_node import HmrVisualizationNode

        self.node = HmrVisualizationNode(
            context=context, namespace=NAMESPACE, parameter_overrides=parameter_overrides or []
        )
        self.helper = rclpy.create_node('viz_test_helper', namespace=NAMESPACE, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.helper)
        self.persons = self.helper.create_publisher(PersonArray, 'persons', 5)
        self.model_info = self.helper.create_publisher(ModelInfo, 'model_info', _latched())
        self.topology = self.helper.create_publisher(MeshTopology, 'mesh_topology', _latched())
        self.image = self.helper.create_publisher(Image, 'image', 5)
        self.camera_info = self.helper.create_publisher(CameraInfo, 'camera_info', 5)
        self.received: dict[str, list] = {}

    def listen(self, topic: str, message_type) -> None:
        self.received[topic] = []
        self.helper.create_subscription(message_type, topic, self.received[topic].append, 5)

    def spin_until(
        self, condition: Callable[[], bool], timeout_s: float = 10.0, tick=None
    ) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if tick is not None:
                tick()
            self.executor.spin_once(timeout_sec=0.05)
            if condition():
                return True
        return False

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.helper.destroy_node()


@pytest.fixture
def graph(rclpy_context):
    graph = _Graph(rclpy_context)
    yield graph
    graph.close()


def test_skeleton_uses_model_info_parents_and_the_persons_header(graph) -> None:
    """ModelInfo says parents (-1, 0, 0): bones 0-1 and 0-2, four LINE_LIST points."""
    from visualization_msgs.msg import Marker, MarkerArray

    from hmr_ros.msg import ModelInfo

    graph.listen('markers/skeleton', MarkerArray)
    graph.model_info.publish(ModelInfo(joint_names=['pelvis', 'a', 'b'], joint_parents=[-1, 0, 0]))
    graph.spin_until(lambda: graph.node._joint_parents is not None, 5.0)
    persons = _persons(_stamp(100, 5))
    assert graph.spin_until(
        lambda: bool(graph.received['markers/skeleton']),
        tick=lambda: graph.persons.publish(persons),
    )
    array = graph.received['markers/skeleton'][-1]
    assert [m.action for m in array.markers[:3]] == [Marker.DELETEALL] * 3
    spheres, bones, label = array.markers[3:]
    assert spheres.header.stamp == persons.header.stamp
    assert spheres.header.frame_id == FRAME
    assert len(spheres.points) == 3
    np.testing.assert_allclose(
        [(p.x, p.y, p.z) for p in bones.points],
        [(0, 0, 2), (0.5, -0.24, 2), (0, 0, 2), (-0.5, 0.24, 2)],
        atol=1e-6,
    )
    assert label.text == '7'


def test_mesh_is_built_only_for_subscribers_and_matches_the_faces(graph) -> None:
    from visualization_msgs.msg import Marker, MarkerArray

    from hmr_ros.msg import MeshTopology

    vertices, faces = _mesh()
    graph.topology.publish(MeshTopology(model_type='smplx', num_vertices=4, faces=faces.ravel()))
    graph.spin_until(lambda: graph.node._topology is not None, 5.0)
    for second in range(3):
        graph.persons.publish(_persons(_stamp(second), vertices))
        graph.spin_until(lambda: False, 0.1)
    assert graph.node.mesh_build_ms is None  # nobody subscribed: nothing built

    graph.listen('markers/mesh', MarkerArray)
    second = iter(range(10, 1000))
    assert graph.spin_until(
        lambda: bool(graph.received['markers/mesh']),
        tick=lambda: graph.persons.publish(_persons(_stamp(next(second)), vertices)),
    )
    array = graph.received['markers/mesh'][-1]
    assert array.markers[0].action == Marker.DELETEALL
    mesh = array.markers[1]
    assert mesh.type == Marker.TRIANGLE_LIST
    corners = np.array([(p.x, p.y, p.z) for p in mesh.points])
    np.testing.assert_allclose(corners, vertices[faces.ravel()], rtol=1e-6)
    assert graph.node.mesh_build_ms is not None
    # Meshes refresh at most mesh.rate_hz (10): their lifetime spans two of those periods.
    assert mesh.lifetime.sec == 0 and mesh.lifetime.nanosec >= 200_000_000

    # Everyone leaves 1 ms after the newest mesh: the clearing array passes the rate limit.
    count = len(graph.received['markers/mesh'])
    empty = _persons(_stamp(graph.node._last_stamp_ns // 10**9, 1_000_000))
    empty.persons = []

    def cleared() -> bool:
        return any(
            [m.action for m in array.markers] == [Marker.DELETEALL]
            for array in graph.received['markers/mesh'][count:]
        )

    assert graph.spin_until(cleared, tick=lambda: graph.persons.publish(empty))


def test_debug_image_overlays_the_matching_image(graph) -> None:
    """Joint (0.5, -0.24, 2) projects to pixel (u, v) = (445, 180) on a grey image; the mesh
    square covers u, v in 270..370, so pixel (350, 260) is inside it."""
    from sensor_msgs.msg import CameraInfo, Image

    from hmr_ros.msg import MeshTopology

    vertices, faces = _mesh()
    graph.topology.publish(MeshTopology(model_type='smplx', num_vertices=4, faces=faces.ravel()))
    assert graph.spin_until(lambda: graph.node._topology is not None, 5.0)
    graph.listen('debug/image', Image)
    assert graph.spin_until(lambda: bool(graph.node._image_subscriptions), 5.0)
    info = CameraInfo(width=WIDTH, height=HEIGHT)
    info.header.frame_id = FRAME
    info.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    grey = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
    second = iter(range(1, 1000))

    def publish_pair() -> None:
        stamp = _stamp(next(second))
        image = Image(height=HEIGHT, width=WIDTH, encoding='rgb8', step=WIDTH * 3)
        image.header.stamp = stamp
        image.header.frame_id = FRAME
        image.data = grey.tobytes()
        graph.camera_info.publish(info)
        graph.image.publish(image)
        graph.spin_until(lambda: False, 0.05)
        graph.persons.publish(_persons(stamp, vertices))

    assert graph.spin_until(lambda: bool(graph.received['debug/image']), tick=publish_pair)
    out = graph.received['debug/image'][-1]
    assert (out.encoding, out.width, out.height, out.step) == ('rgb8', WIDTH, HEIGHT, WIDTH * 3)
    assert out.header.frame_id == FRAME
    assert out.header.stamp.sec >= 1
    pixels = np.frombuffer(bytes(out.data), np.uint8).reshape(HEIGHT, WIDTH, 3)
    assert (pixels[180, 445] != 60).any()  # the projected joint
    assert (pixels[260, 350] != 60).any()  # the mesh
    assert (pixels[5, 5] == 60).all()  # far from everything drawn


def test_image_subscriptions_follow_debug_image_subscribers(graph) -> None:
    from sensor_msgs.msg import Image

    assert not graph.node._image_subscriptions
    subscription = graph.helper.create_subscription(Image, 'debug/image', lambda _: None, 1)
    assert graph.spin_until(lambda: bool(graph.node._image_subscriptions), 5.0)
    graph.helper.destroy_subscription(subscription)
    assert graph.spin_until(lambda: not graph.node._image_subscriptions, 5.0)


def test_clear_publishes_delete_all_on_both_topics(graph) -> None:
    from visualization_msgs.msg import Marker, MarkerArray

    graph.listen('markers/skeleton', MarkerArray)
    graph.listen('markers/mesh', MarkerArray)
    assert graph.spin_until(
        lambda: (
            graph.node._skeleton_publisher.get_subscription_count() > 0
            and graph.node._mesh_publisher.get_subscription_count() > 0
        ),
        5.0,
    )
    graph.node.clear()
    assert graph.spin_until(
        lambda: bool(graph.received['markers/skeleton']) and bool(graph.received['markers/mesh'])
    )
    for topic in ('markers/skeleton', 'markers/mesh'):
        markers = graph.received[topic][-1].markers
        assert markers and all(m.action == Marker.DELETEALL for m in markers)


def test_dynamic_parameters_are_validated(graph) -> None:
    from rclpy.parameter import Parameter

    node = graph.node
    result = node.set_parameters([Parameter('mesh.rate_hz', value=2.5)])
    assert result[0].successful
    assert node.params.mesh.rate_hz == 2.5
    result = node.set_parameters([Parameter('debug_image.mesh_style', value='sketchy')])
    assert not result[0].successful
    assert 'wireframe' in result[0].reason
    assert node.params.debug_image.mesh_style == 'filled'


def test_invalid_override_is_refused_with_its_name(rclpy_context) -> None:
    from rclpy.parameter import Parameter

    from hmr_ros.ros.visualization_node import HmrVisualizationNode

    with pytest.raises(ValueError, match='debug_image.mesh_style'):
        HmrVisualizationNode(
            context=rclpy_context,
            parameter_overrides=[Parameter('debug_image.mesh_style', value='sketchy')],
        )


def test_missing_vertices_are_detected() -> None:
    from hmr_ros.msg import Person, PersonArray
    from hmr_ros.ros.visualization_node import lacks_vertices

    vertices, _ = _mesh()
    assert lacks_vertices(_persons(_stamp(1)))
    assert not lacks_vertices(_persons(_stamp(1), vertices))
    assert not lacks_vertices(PersonArray())  # nobody in view: nothing to warn about
    lost = _persons(_stamp(1))
    lost.persons[0].tracking_state = Person.LOST
    assert not lacks_vertices(lost)


def test_rate_limiter_uses_stamps_and_restarts_on_replay() -> None:
    """10 Hz on a 30 Hz stream keeps every third frame; a stamp jump back restarts."""
    from hmr_ros.ros.visualization_node import StampRateLimiter

    limiter = StampRateLimiter()
    frame_ns = 33_333_333
    kept = [i for i in range(9) if limiter.allow(i * frame_ns, 10.0)]
    assert kept == [0, 3, 6]
    assert limiter.allow(0, 10.0)
    assert not StampRateLimiter().allow(0, 0.0)


def test_yaml_mirrors_the_parameter_dataclasses() -> None:
    """config/visualization.yaml is parameters_yaml() of VisualizationParams below its header."""
    from hmr_ros.ros.params import parameter_entries, parameters_yaml
    from hmr_ros.ros.visualization_node import VisualizationParams

    text = (REPO / 'config' / 'visualization.yaml').read_text()
    header_lines = 3
    generated = parameters_yaml(params_type=VisualizationParams)
    assert text.splitlines()[header_lines:] == generated.splitlines()[header_lines:], (
        'config/visualization.yaml is out of date: regenerate it with '
        'parameters_yaml(params_type=VisualizationParams)'
    )
    values = yaml.safe_load(text)['/**']['ros__parameters']
    flat = {
        f'{group}.{leaf}': value
        for group, leaves in values.items()
        for leaf, value in leaves.items()
    }
    assert flat == {e.name: e.default for e in parameter_entries(VisualizationParams)}
