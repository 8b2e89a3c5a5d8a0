#!/usr/bin/env bash
# GPU check of hmr_ros on a machine with one NVIDIA GPU: the gpu-marked tests, then the bench.
#
# Usage: tools/gpu_check.sh [--dry-run] [--cpu] OUT_DIR
#
#   OUT_DIR    receives pytest_gpu.log, bench.json, bench.md and bench.log.
#   --dry-run  print the commands and the time budget, run nothing.
#   --cpu      rehearsal without a GPU: the same steps on the CPU (the bench then runs the tiny
#              variants and says so); for checking this script where no GPU exists.
#
# What the machine needs: Python 3.12 (or any 3.10+) with PyTorch already installed (CUDA build),
# no network, no ROS and no colcon. The script runs from a plain checkout: it puts the checkout on
# PYTHONPATH and runs `python3 -m hmr_ros.cli.main bench`, so nothing is installed or built.
#
# Pure-Python packages hmr_ros imports that such an image may lack travel in the checkout as
# wheels, fetched beforehand on a machine with network, into the ignored folder .whl/:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl smplx==0.1.28
#
# smplx is the one the lent H200 image lacks (numpy, opencv-python-headless, pyyaml, tqdm,
# safetensors, onnx, onnxscript and onnxruntime are there); add others the same way if the import
# check below names them. The script installs every .whl/*.whl with
# `pip install --no-index --no-deps --target` into a temporary folder and puts it on PYTHONPATH.
#
# Time budget: at most 8 minutes in all (tests 150 s, bench 300 s, plus start-up); each step is
# cut by `timeout` so the script always ends and still writes what it has. The bench measures the
# ViT-H and ViT-B whole-body models with HaMeR ViT-H and both adapters, 1 and 4 persons, fp16 and
# bf16, backends BENCH_BACKENDS (default: eager cuda_graph onnxruntime tensorrt; unavailable
# ones are listed in the report with their reason; compile is left out by default because
# inductor needs minutes per variant and precision at full size), plus the naive baseline.
set -euo pipefail

dry_run=0
device=cuda
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --cpu) device=cpu; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [[ $# -ne 1 ]]; then
  echo "usage: tools/gpu_check.sh [--dry-run] [--cpu] OUT_DIR" >&2
  exit 2
fi
out_dir=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
backends=${BENCH_BACKENDS:-eager cuda_graph onnxruntime tensorrt}
test_timeout_s=${TEST_TIMEOUT_S:-150}
bench_timeout_s=${BENCH_TIMEOUT_S:-300}
iterations=${BENCH_ITERATIONS:-30}
warmup=5
persons=(1 4)
if [[ $device == cpu ]]; then  # the tiny variants on a CPU: a rehearsal, kept short
  iterations=${BENCH_ITERATIONS:-1}
  warmup=0
  persons=(1)
fi

if [[ $dry_run -eq 0 ]]; then
  mkdir -p "$out_dir"
  out_dir=$(cd "$out_dir" && pwd)
fi

# shellcheck disable=SC2206  # word splitting of the backend list is intended
backend_args=($backends)
pytest_cmd=("$python" -m pytest -q -m gpu -p no:cacheprovider
  test/geometry test/models test/body_models test/pipeline test/cli)
bench_cmd=("$python" -m hmr_ros.cli.main bench
  --variants H B --persons "${persons[@]}" --precisions fp16 bf16
  --backends "${backend_args[@]}" --iterations "$iterations" --warmup "$warmup"
  --device "$device" --json "$out_dir/bench.json" --markdown "$out_dir/bench.md")
if [[ $device == cpu ]]; then
  bench_cmd+=(--image-size 240x320)
fi

if [[ $dry_run -eq 1 ]]; then
  echo "would run in $repo (PYTHONPATH=$repo plus the .whl/ wheels):"
  echo "  timeout ${test_timeout_s}s ${pytest_cmd[*]}"
  echo "  timeout ${bench_timeout_s}s ${bench_cmd[*]}"
  echo "budget: $((test_timeout_s + bench_timeout_s)) s of the 480 s allowed"
  exit 0
fi
cd "$repo"

site_dir=""
shopt -s nullglob
wheels=("$repo"/.whl/*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -gt 0 ]]; then
  site_dir=$(mktemp -d)
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site_dir" "${wheels[@]}"
fi
export PYTHONPATH="$repo${site_dir:+:$site_dir}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

missing=$("$python" - <<'EOF'
import importlib.util
needed = ['torch', 'numpy', 'cv2', 'yaml', 'tqdm', 'safetensors', 'smplx']
print(' '.join(name for name in needed if importlib.util.find_spec(name) is None))
EOF
)
if [[ -n $missing ]]; then
  echo "gpu_check.sh: missing Python packages: $missing; carry their wheels in .whl/ (see the header)" >&2
  exit 1
fi
if [[ $device == cuda ]] && ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check.sh: torch sees no CUDA device; use --cpu for a rehearsal" >&2
  exit 1
fi
"$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")'
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

status=0
echo "== gpu-marked tests (at most ${test_timeout_s} s)"
set +e
timeout "$test_timeout_s" "${pytest_cmd[@]}" 2>&1 | tee "$out_dir/pytest_gpu.log"
test_status=${PIPESTATUS[0]}
echo "== bench (at most ${bench_timeout_s} s)"
timeout "$bench_timeout_s" "${bench_cmd[@]}" 2>&1 | tee "$out_dir/bench.log"
bench_status=${PIPESTATUS[0]}
set -e
# pytest exits 5 when every test was deselected or skipped (the CPU rehearsal): not a failure.
if [[ $test_status -ne 0 && $test_status -ne 5 ]]; then
  echo "gpu_check.sh: gpu tests failed (exit $test_status)" >&2
  status=1
fi
if [[ $bench_status -ne 0 ]]; then
  echo "gpu_check.sh: bench failed (exit $bench_status; 124 = cut at ${bench_timeout_s} s)" >&2
  status=1
fi
if [[ -n $site_dir ]]; then
  rm -rf "$site_dir"
fi
echo "results in $out_dir"
exit "$status"
