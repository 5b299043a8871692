#!/usr/bin/env bash
# The main job: sets everything up, then runs real DeepMind Control episodes and writes a
# report to runs/demo/ (returns, a GIF of what the agent saw, the environment benchmark).
# It becomes a short training run once the world model and training loop land (#3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
out=runs/demo
mkdir -p "$out"
bin=target/release/gradplan
{
  echo "# gradplan demo report ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo '## Tasks'
  echo '```'
  "$bin" tasks
  echo '```'
  echo
  echo '## Random-policy episodes on cartpole-swingup (pixels, seed 0)'
  echo '```'
  "$bin" rollout --task cartpole-swingup --policy random --episodes 3 --seed 0 --video "$out/cartpole-swingup.gif"
  echo '```'
  echo
  echo '## Environment cost, Rust API vs Python'
  echo '```'
  "$bin" bench env --tasks cartpole-swingup,walker-walk --steps 500 --renders 20
  echo '```'
} | tee "$out/report.md.tmp"
mv "$out/report.md.tmp" "$out/report.md"
echo "wrote $out/report.md and $out/cartpole-swingup.gif"
