#!/usr/bin/env bash
# The main job: sets everything up, then trains a PlaNet world model with CEM on the real
# cartpole-swingup (state observations, the CPU preset, 20k environment steps: a few minutes
# on 2 cores), evaluates the trained model with CEM and with Grad-MPC (robust and paper), and writes a report
# to runs/demo/report.md (learning curve table, evaluation, a GIF of a Grad-MPC episode) and
# the run's own report (curves, losses, planning cost, open-loop prediction) to
# runs/demo/cartpole-swingup-cem/report/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
bin=$PWD/target/release/gradplan
out=runs/demo
run=$out/cartpole-swingup-cem
steps=${DEMO_ENV_STEPS:-20000}
mkdir -p "$out"
if [ -f "$run/config.toml" ]; then
  "$bin" resume --run-dir "$run" --no-report
else
  "$bin" train --preset cpu --task cartpole-swingup --seed 0 --run-dir "$run" \
    --set train.total_env_steps="$steps" --no-report
fi
"$bin" rollout --task cartpole-swingup --obs state --policy random --episodes 5 --seed 100 > "$out/random.txt"
# CEM at its own I 10, as the harness evaluates it: the preset's I 6 is the training budget,
# and I 10 is the budget the robust Grad-MPC default is matched to (docs/decisions.md).
"$bin" eval --run-dir "$run" --planner cem --set planner.iterations=10 --episodes 5 --seed 100 \
  > "$out/eval-cem.txt"
"$bin" eval --run-dir "$run" --planner grad-mpc --episodes 5 --seed 100 > "$out/eval-grad-mpc.txt"
"$bin" eval --run-dir "$run" --planner grad-mpc --set planner.flavour=paper --set planner.iterations=10 \
  --episodes 5 --seed 100 > "$out/eval-grad-mpc-paper.txt"
"$bin" eval --run-dir "$run" --planner grad-mpc --episodes 1 --seed 100 \
  --video "$out/grad-mpc.gif" > /dev/null
"$bin" report --run-dir "$run" --seed 100 > /dev/null   # after the evaluations, so it lists them
{
  echo "# gradplan demo: PlaNet + CEM on cartpole-swingup (state, CPU preset, $steps env steps)"
  echo
  echo "Written by scripts/demo.sh on $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "## Learning curve (metrics.csv: episode, env steps, train return, test return)"
  echo
  echo "| episode | env steps | train return | test return |"
  echo "|---|---|---|---|"
  tail -n +2 "$run/metrics.csv" | awk -F, '{ printf "| %s | %s | %.1f | %s |\n", $1, $2, $4, ($5 == "" ? "" : sprintf("%.1f ± %.1f", $5, $6)) }'
  echo
  echo "## Evaluation of the final model (5 noise-free episodes, seed 100)"
  echo
  echo '```'
  echo "random policy:          $(grep 'mean return' "$out/random.txt")"
  echo "CEM (I=10):             $(grep 'mean return' "$out/eval-cem.txt")"
  echo "Grad-MPC (robust):      $(grep 'mean return' "$out/eval-grad-mpc.txt")"
  echo "Grad-MPC (paper, I=10): $(grep 'mean return' "$out/eval-grad-mpc-paper.txt")"
  echo '```'
  echo
  echo "A Grad-MPC episode: grad-mpc.gif. Full metrics: $run/metrics.csv; evaluations: $run/eval.csv."
  echo "Curves, losses, planning cost and the open-loop prediction: $run/report/index.md;"
  echo "TensorBoard: .venv/bin/tensorboard --logdir $out"
} > "$out/report.md.tmp"
mv "$out/report.md.tmp" "$out/report.md"
cat "$out/report.md"
