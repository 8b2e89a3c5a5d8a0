"""evaluation layer of hmr_ros (see shared architecture: layers point down only)."""
