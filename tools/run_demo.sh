#!/usr/bin/env bash
# The main job, from a fresh machine: set up, then run hmr_ros end to end on what this machine has.
# Without licensed body models and official checkpoints it uses generated stand-ins (random
# content, official layouts) and says so in everything it prints.
# Usage: bash tools/run_demo.sh [OUTPUT_DIR]   (default: .ws/demo; HMR_DEMO_SECONDS=10 sets the
#        length of the ROS part)
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

# The random stand-in networks score no person presence (flat heatmaps, about 0.005), so at the
# default detection.person_threshold (0.5) hmr_node would rightly report nobody. To show the
# outputs' plumbing, this demo accepts every proposal: never do this with real weights.
accept_all=$out/demo_stand_in_parameters.yaml
printf '%s\n' '/**/hmr_node:' '  ros__parameters:' '    detection:' '      person_threshold: 0.0' \
  > "$accept_all"
echo '[demo]    stand-in weights score no presence: detection.person_threshold 0 for this demo only'
echo "[demo] 3. ROS 2: image source (its own process, as a camera driver) + hmr_node + hmr_viz_node"
echo "[demo]    for ${HMR_DEMO_SECONDS:-10} s on resource/data/astronaut.jpg, loading the converted files"
echo '[demo]    (recorded to a rosbag2 bag, then summarised; --camera-in-process keeps all in one process)'
python "$repo/scripts/hmr_demo" --source "$repo/resource/data/astronaut.jpg" \
  --duration "${HMR_DEMO_SECONDS:-10}" --output-dir "$out/ros" \
  --whole-body-checkpoint "$out/smplerx_tiny.safetensors" \
  --hand-checkpoint "$out/hamer_tiny.safetensors" --body-model-dir "$assets" \
  --ros-args --log-level hmr.hmr_node:=warn --params-file "$accept_all"
echo '[demo] 4. the recording (a rosbag2 bag: metadata.yaml + MCAP; ros2 bag info/play open it)'
ls -l "$out/ros" "$out/ros/hmr_demo_bag"
echo "[demo] done: outputs in $out (stand-in weights: results are meaningless)"
