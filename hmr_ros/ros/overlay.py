"""The ``debug/image`` overlay, re-exported from :mod:`hmr_ros.pipeline.overlay`.

The drawing lives in the pipeline layer so that ``hmr-ros infer`` (no ROS) and ``hmr_viz_node``
share it; this module keeps the ROS-side name importable.
"""

from hmr_ros.pipeline.overlay import (
    MESH_STYLES,
    MIN_DEPTH_M,
    MeshStyle,
    OverlayPerson,
    ProjectedPoints,
    draw_box,
    draw_mesh,
    draw_skeleton,
    project_points,
    render_overlay,
)

__all__ = [
    'MESH_STYLES',
    'MIN_DEPTH_M',
    'MeshStyle',
    'OverlayPerson',
    'ProjectedPoints',
    'draw_box',
    'draw_mesh',
    'draw_skeleton',
    'project_points',
    'render_overlay',
]
