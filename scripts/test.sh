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
  # One test at a time: a test binary's tests would otherwise share one process, and
  # libtorch's random stream with it, so the same-seed tests would race (nextest gives each
  # test its own process).
  cargo test --workspace --locked -- --test-threads=1
fi
