"""hmr_ros: real-time SMPL-X human mesh recovery for ROS 2 (HMR-Adapter: SMPLer-X + HaMeR).

The core library (geometry, body models, checkpoints, models, pipeline, training, evaluation, CLI)
imports without ROS; only ``hmr_ros.ros`` needs rclpy and the package's generated messages
(``hmr_ros.msg``, present after a colcon build).
"""

__version__ = '0.1.0'

# The generated messages (hmr_ros.msg and their type-support libraries) exist only in a colcon
# install. When the sources are imported from a checkout (tests, `pip install -e .`) while that
# install is sourced, let the package span both folders so `hmr_ros.msg` still resolves.
__path__ = __import__('pkgutil').extend_path(__path__, __name__)
