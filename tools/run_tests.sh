#!/usr/bin/env bash
# The project's checks, from a fresh machine: bootstrap, then lint, format, types and tests.
# Usage: bash tools/run_tests.sh [extra pytest arguments]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash tools/bootstrap.sh
# shellcheck disable=SC1091
source tools/env.sh
# The bootstrap built the messages, so ROS tests must run, not skip.
export HMR_ROS_REQUIRE_ROS=1
echo '[tests] ruff check'; ruff check .
echo '[tests] ruff format --check'; ruff format --check .
echo '[tests] mypy'; mypy
echo '[tests] pytest'; python -m pytest -q -p no:cacheprovider "$@"
