"""Message definitions follow the rules of docs/ros-interface.md (issue 2, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MESSAGES = sorted((REPO / 'msg').glob('*.msg'))
EXPECTED = {
    'Box2D',
    'HandPose',
    'HandPoseArray',
    'Person',
    'PersonArray',
    'ModelInfo',
    'MeshTopology',
    'OperatorState',
}


def parse(path: Path):
    parser = pytest.importorskip('rosidl_adapter.parser')
    return parser.parse_message_file('hmr_ros', str(path))


def test_the_package_defines_the_recommended_messages() -> None:
    assert {path.stem for path in MESSAGES} == EXPECTED
    cmake = (REPO / 'CMakeLists.txt').read_text()
    for path in MESSAGES:
        assert f'msg/{path.name}' in cmake, f'{path.name} is not in rosidl_generate_interfaces'


@pytest.mark.parametrize('path', MESSAGES, ids=lambda p: p.stem)
def test_every_field_is_documented(path: Path) -> None:
    spec = parse(path)
    undocumented = [field.name for field in spec.fields if not field.annotations.get('comment')]
    assert not undocumented, f'{path.name}: fields without a comment: {undocumented}'


def test_top_level_messages_carry_a_header_and_no_vision_msgs() -> None:
    specs = {path.stem: parse(path) for path in MESSAGES}
    nested = {
        field.type.type
        for spec in specs.values()
        for field in spec.fields
        if field.type.pkg_name == 'hmr_ros'
    }
    for name, spec in specs.items():
        packages = {field.type.pkg_name for field in spec.fields}
        assert 'vision_msgs' not in packages, name
        if name not in nested:
            first = spec.fields[0]
            assert (first.type.pkg_name, first.type.type, first.name) == (
                'std_msgs',
                'Header',
                'header',
            ), f'{name} must start with std_msgs/Header header'


def test_large_numeric_payloads_are_flat_float32_arrays() -> None:
    spec = parse(REPO / 'msg' / 'Person.msg')
    types = {field.name: field.type for field in spec.fields}
    for name in ('joints', 'vertices', 'keypoints_2d', 'body_pose', 'betas', 'expression'):
        assert types[name].type == 'float32' and types[name].is_array, name
    assert types['body_pose'].array_size == 63
    assert types['left_hand_pose'].array_size == types['right_hand_pose'].array_size == 45
