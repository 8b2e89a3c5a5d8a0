"""`colcon test` runs the package's pytest suite (issue 14, item 5).

colcon test drives CTest in the package's build folder, and CTest runs what CMakeLists.txt
registers under BUILD_TESTING (ament_cmake_test's contract). So the check is a real CMake
configure of this checkout with BUILD_TESTING=ON, then CTest's own description of the tests it
would run: one `ament_add_pytest_test` whose command is `python -m pytest <checkout>/test` with
a JUnit result file where colcon's `test-result` looks for it (test_results/hmr_ros/).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cmake_prefix() -> str:
    prefix = os.environ.get('AMENT_PREFIX_PATH', '')
    if not prefix:
        pytest.skip('no ament prefix (run through tools/run_tests.sh)')
    return prefix.replace(os.pathsep, ';')


@pytest.fixture(scope='module')
def ctest_description(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if shutil.which('cmake') is None or shutil.which('ctest') is None:
        reason = 'cmake/ctest are not installed'
        if os.environ.get('HMR_ROS_REQUIRE_ROS') == '1':
            pytest.fail(reason)
        pytest.skip(reason)
    build = tmp_path_factory.mktemp('build_testing')
    configure = subprocess.run(
        [
            'cmake',
            str(REPO),
            '-DBUILD_TESTING=ON',
            f'-DPython3_EXECUTABLE={sys.executable}',
            f'-DPYTHON_EXECUTABLE={sys.executable}',
            f'-DCMAKE_PREFIX_PATH={_cmake_prefix()}',
        ],
        cwd=build,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert configure.returncode == 0, configure.stdout[-3000:] + configure.stderr[-3000:]
    listed = subprocess.run(
        ['ctest', '--show-only=json-v1'],
        cwd=build,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {'build': build, **json.loads(listed.stdout)}


def test_build_testing_registers_the_pytest_suite(ctest_description: dict) -> None:
    tests = {test['name']: test for test in ctest_description['tests']}
    assert 'hmr_ros_pytest' in tests, f'CTest lists {sorted(tests)}'
    command = tests['hmr_ros_pytest']['command']
    # ament_cmake_pytest wraps `<python> -u -m pytest <path>` in its run_test.py.
    assert command[command.index('--command') + 1 :][:4] == [sys.executable, '-u', '-m', 'pytest']
    assert str(REPO / 'test') in command
    junit = [arg for arg in command if arg.startswith('--junit-xml=')]
    assert junit, command
    assert Path(junit[0].split('=', 1)[1]).parent == (
        ctest_description['build'] / 'test_results' / 'hmr_ros'
    )


def test_build_testing_off_registers_nothing(tmp_path: Path) -> None:
    """The default build (tools/bootstrap.sh passes BUILD_TESTING=OFF) needs no test packages."""
    if shutil.which('cmake') is None:
        pytest.skip('cmake is not installed')
    configure = subprocess.run(
        [
            'cmake',
            str(REPO),
            '-DBUILD_TESTING=OFF',
            f'-DPython3_EXECUTABLE={sys.executable}',
            f'-DPYTHON_EXECUTABLE={sys.executable}',
            f'-DCMAKE_PREFIX_PATH={_cmake_prefix()}',
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert configure.returncode == 0, configure.stderr[-3000:]
    listed = subprocess.run(
        ['ctest', '--show-only=json-v1'], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(listed.stdout)['tests'] == []
