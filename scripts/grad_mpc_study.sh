#!/usr/bin/env bash
# Closed-loop study of the Grad-MPC flavours (issue #10): trains PlaNet models at the `cpu`
# scale (state observations, 20k env steps) collecting with CEM and with Grad-MPC (robust),
# then evaluates every model with CEM, Grad-MPC (robust) and Grad-MPC (paper flavour, I 10)
# on the same noise-free episodes, and prints one markdown row per (task, trained with,
# planner): the mean ± std of every episode of every seed, and ms per decision.
#
#   scripts/grad_mpc_study.sh [OUT_DIR] [TASKS] [SEEDS] [EPISODES]
#   defaults: runs/grad-mpc-study  cartpole-swingup  "0 1 2"  10   (STUDY_ENV_STEPS=20000)
#
# Runs that exist are not retrained (delete the directory to redo one); evaluations are
# always redone and appended to each run's eval.csv. Timings are only comparable within one
# invocation on an otherwise idle machine (each process uses one libtorch thread).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-runs/grad-mpc-study}
tasks=${2:-cartpole-swingup}
seeds=${3:-0 1 2}
episodes=${4:-10}
steps=${STUDY_ENV_STEPS:-20000}   # a smaller budget only to try the script out
bin=$PWD/target/release/gradplan
[ -x "$bin" ] || bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
mkdir -p "$out"
eval_line() { grep 'mean return' | sed -E 's/.*mean return ([0-9.-]+) ± ([0-9.]+) over ([0-9]+) episodes \| ([0-9.]+) ms per decision.*/\1 \2 \3 \4/'; }
rows=$out/evals.txt
: > "$rows"
for task in $tasks; do
  for trained in cem grad-mpc; do
    for seed in $seeds; do
      run=$out/$task-$trained-seed$seed
      if [ ! -f "$run/checkpoints/LATEST" ]; then
        rm -rf "$run"
        # The cpu preset's planner.iterations = 6 is CEM's; Grad-MPC collects with its own I.
        extra=()
        [ "$trained" = grad-mpc ] && extra=(--set planner.iterations=2)
        "$bin" train --preset cpu --task "$task" --planner "$trained" --seed "$seed" --threads 1 \
          --set train.total_env_steps="$steps" --no-report --run-dir "$run" "${extra[@]}" > "$run.log"
      fi
      for planner in cem robust paper; do
        case $planner in
          cem) args=(--planner cem --set planner.iterations=6) ;;
          robust) args=(--planner grad-mpc --set 'planner.flavour="robust"') ;;
          paper) args=(--planner grad-mpc --set 'planner.flavour="paper"' --set planner.iterations=10) ;;
        esac
        r=$("$bin" eval --run-dir "$run" --episodes "$episodes" --seed 200 --threads 1 "${args[@]}" | eval_line)
        echo "$task $trained $planner $seed $r" >> "$rows"
      done
    done
  done
done
echo "| task | trained with | planner | return (mean ± std, all episodes) | seeds | ms / decision |"
echo "|---|---|---|---|---|---|"
# Pools the seeds' episodes: the pooled mean and the pooled population std from each seed's
# mean and std (equal episode counts).
awk '{ k = $1 " | " $2 " | " $3; n[k]++; m[k] += $5; s2[k] += $6 * $6 + $5 * $5; ms[k] += $8 }
     END { for (k in n) { mean = m[k] / n[k]; var = s2[k] / n[k] - mean * mean; if (var < 0) var = 0;
           printf "| %s | %.1f ± %.1f | %d | %.1f |\n", k, mean, sqrt(var), n[k], ms[k] / n[k] } }' "$rows" | sort
