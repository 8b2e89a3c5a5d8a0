"""hmr_ros: real-time SMPL-X human mesh recovery for ROS 2 (HMR-Adapter: SMPLer-X + HaMeR).

The core library (geometry, body models, checkpoints, models, pipeline, training, evaluation, CLI)
imports without ROS; only ``hmr_ros.ros`` needs rclpy and the package's generated messages
(``hmr_ros.msg``, present after a colcon build).
"""

__version__ = '0.1.0'
