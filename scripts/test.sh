#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh, without the release build) and runs the test suite:
# unit tests, gradient checks, and the real dm_control tests against Python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --no-build
export MUJOCO_GL=${MUJOCO_GL:-egl}
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked
fi
