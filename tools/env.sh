# Source this file (bash) after tools/bootstrap.sh: activates the virtual environment and the
# colcon install of hmr_ros (messages, launch files, executables).
_hmr_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_hmr_venv=${HMR_ROS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hmr_ros/venv-$(printf %s "$_hmr_repo" | sha256sum | cut -c1-8)}
_hmr_ws=${HMR_ROS_WS:-$_hmr_repo/.ws}
export VIRTUAL_ENV=$_hmr_venv
export PATH=$_hmr_venv/bin:$PATH
if [ -z "${ROS_DISTRO:-}" ]; then
  # PyPI wheels: the venv is the ament prefix that holds the ROS packages.
  export AMENT_PREFIX_PATH=$_hmr_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
fi
# Separate DDS traffic of tests and demos from other ROS graphs on the machine unless told.
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
if [ -f "$_hmr_ws/install/local_setup.bash" ]; then
  # colcon's setup scripts read unset variables: allow that even in `set -u` callers.
  case $- in *u*) _hmr_nounset=1; set +u ;; *) _hmr_nounset= ;; esac
  # shellcheck disable=SC1091
  COLCON_CURRENT_PREFIX=$_hmr_ws/install . "$_hmr_ws/install/local_setup.bash"
  [ -n "$_hmr_nounset" ] && set -u
  unset _hmr_nounset
fi
# The checkout's sources come first (edits and new files take effect without a rebuild); the
# generated messages still resolve from the install (see hmr_ros/__init__.py).
export PYTHONPATH=$_hmr_repo${PYTHONPATH:+:$PYTHONPATH}
unset _hmr_repo _hmr_venv _hmr_ws
