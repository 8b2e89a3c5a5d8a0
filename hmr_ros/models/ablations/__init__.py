"""models/ablations layer of hmr_ros: the paper's ablation variants (Tables 3-6)."""
