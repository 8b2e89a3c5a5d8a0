"""package.xml and setup.py declare what the code imports (issue 2, items 1, 2 and 6)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Top-level Python module -> the rosdep key package.xml must declare for it.
ROSDEP_KEYS = {
    'numpy': 'python3-numpy',
    'cv2': 'python3-opencv',
    'yaml': 'python3-yaml',
    'tqdm': 'python3-tqdm',
    'torch': 'python3-torch',
    'safetensors': 'python3-safetensors-pip',
    'smplx': 'python3-smplx-pip',
    'mcap': 'python3-mcap-pip',
    'rosbags': 'python3-rosbags-pip',
    'rclpy': 'rclpy',
    'rcl_interfaces': 'rcl_interfaces',
    'launch': 'launch',
    'launch_ros': 'launch_ros',
    'ament_index_python': 'ament_index_python',
    'builtin_interfaces': 'builtin_interfaces',
    'std_msgs': 'std_msgs',
    'std_srvs': 'std_srvs',
    'geometry_msgs': 'geometry_msgs',
    'sensor_msgs': 'sensor_msgs',
    'visualization_msgs': 'visualization_msgs',
    'diagnostic_msgs': 'diagnostic_msgs',
    'lifecycle_msgs': 'lifecycle_msgs',
    'tf2_msgs': 'tf2_msgs',
    'rosbag2_py': 'rosbag2_py',
    'tf2_ros': 'tf2_ros',
    'vision_msgs': 'vision_msgs',
}
# Imported only inside functions, where installed, with a clear message otherwise.
OPTIONAL_MODULES = {
    'onnx',
    'onnxruntime',
    'onnxscript',  # torch.onnx's exporter; backends/onnx_export.py adds translations with it
    'tensorrt',
    'torch2trt',
    'vision_msgs',
    'tf2_ros',
    'torchvision',
    'tensorboard',
    'scipy',
    'mcap_ros2',
    'rosbag2_py',
    'yacs',  # only to pickle HaMeR-like stand-in configs, with a fallback when absent
}
# Modules the ROS-free core may import: what setup.py's install_requires provides.
PIP_NAMES = {
    'numpy': 'numpy',
    'cv2': 'opencv-python-headless',
    'yaml': 'pyyaml',
    'tqdm': 'tqdm',
    'torch': 'torch',
    'safetensors': 'safetensors',
    'smplx': 'smplx',
}


def imported_modules(path: Path) -> tuple[set[str], set[str]]:
    """Top-level third-party modules imported by a file: (at module level, anywhere)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_level: set[str] = set()
    anywhere: set[str] = set()
    top_statements = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split('.')[0]
            if top in sys.stdlib_module_names or top in {'hmr_ros', '__future__'}:
                continue
            anywhere.add(top)
            if id(node) in top_statements:
                module_level.add(top)
    return module_level, anywhere


def all_imports() -> dict[str, set[Path]]:
    found: dict[str, set[Path]] = {}
    for path in (REPO / 'hmr_ros').rglob('*.py'):
        for name in imported_modules(path)[1]:
            found.setdefault(name, set()).add(path.relative_to(REPO))
    for path in (REPO / 'launch').glob('*.py'):
        for name in imported_modules(path)[1]:
            found.setdefault(name, set()).add(path.relative_to(REPO))
    return found


def test_package_xml_parses_and_validates_with_the_ament_tooling() -> None:
    """colcon and ament_cmake read package.xml through catkin_pkg; it must validate."""
    catkin_package = pytest.importorskip('catkin_pkg.package')
    package = catkin_package.parse_package(str(REPO / 'package.xml'))
    package.validate()
    assert package.name == 'hmr_ros'
    assert package.package_format == 3
    assert package.get_build_type() == 'ament_cmake'


def test_package_xml_declares_every_runtime_import() -> None:
    catkin_package = pytest.importorskip('catkin_pkg.package')
    package = catkin_package.parse_package(str(REPO / 'package.xml'))
    declared = {dep.name for dep in package.exec_depends + package.build_export_depends}
    declared |= {dep.name for dep in package.build_depends}
    unknown = sorted(set(all_imports()) - set(ROSDEP_KEYS) - OPTIONAL_MODULES)
    assert not unknown, f'imports with no rosdep mapping in this test: {unknown}'
    required = {ROSDEP_KEYS[name] for name in all_imports() if name not in OPTIONAL_MODULES}
    missing = sorted(required - declared)
    assert not missing, f'package.xml lacks <exec_depend> for {missing}'


def test_optional_ros_packages_are_declared_for_rosdep() -> None:
    """Imported only where used, but part of every ROS 2 distribution: rosdep installs them, so
    output.frame (tf2_ros) and the vision_msgs input and output work on a ROS install."""
    catkin_package = pytest.importorskip('catkin_pkg.package')
    package = catkin_package.parse_package(str(REPO / 'package.xml'))
    declared = {dep.name for dep in package.exec_depends}
    assert {'tf2_ros', 'vision_msgs'} <= declared


def test_optional_modules_are_never_imported_at_module_level() -> None:
    offenders = []
    for path in (REPO / 'hmr_ros').rglob('*.py'):
        module_level, _ = imported_modules(path)
        offenders += [
            f'{path.relative_to(REPO)}: {name}' for name in module_level & OPTIONAL_MODULES
        ]
    assert not offenders, offenders


def test_setup_py_requires_every_core_import() -> None:
    """The ROS-free core (everything but hmr_ros/ros) needs only what pip installs."""
    setup_text = (REPO / 'setup.py').read_text()
    install_requires = re.search(r'install_requires=\[(.*?)\]', setup_text, re.S)
    assert install_requires is not None
    required = {
        re.split(r'[<>=\[]', item.strip().strip('\'"'))[0]
        for item in install_requires.group(1).split(',')
        if item.strip()
    }
    core_imports: set[str] = set()
    for path in (REPO / 'hmr_ros').rglob('*.py'):
        if 'ros' in path.relative_to(REPO / 'hmr_ros').parts[:1]:
            continue
        core_imports |= imported_modules(path)[1] - OPTIONAL_MODULES
    not_pip = sorted(core_imports - set(PIP_NAMES))
    assert not not_pip, f'the ROS-free core imports {not_pip}, which pip cannot provide'
    missing = sorted({PIP_NAMES[name] for name in core_imports} - required)
    assert not missing, f'setup.py install_requires lacks {missing}'
