#!/usr/bin/env bash
# The main job, from a fresh machine: set up, then run hmr_ros end to end on what this machine has.
# Without licensed body models and official checkpoints it uses generated stand-ins (random
# content, official layouts) and says so in everything it prints.
# Usage: bash tools/run_demo.sh [OUTPUT_DIR]   (default: .ws/demo)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash tools/bootstrap.sh
# shellcheck disable=SC1091
source tools/env.sh
out=${1:-$repo/.ws/demo}
assets=$out/test_assets
mkdir -p "$out"

echo '[demo] 1. stand-in body models and tiny checkpoints in the official layouts'
hmr-ros make-test-assets "$assets"

echo '[demo] 2. convert the official-layout checkpoints to the project format (strict check)'
hmr-ros convert-checkpoint "$assets/smpler_x_tiny.pth.tar" "$out/smplerx_tiny.safetensors"
hmr-ros convert-checkpoint "$assets/hamer_tiny.ckpt" "$out/hamer_tiny.safetensors"
echo "[demo] done: outputs in $out (stand-in weights: results are meaningless)"
