#!/usr/bin/env bash
# GPU benchmarks on a machine with an NVIDIA GPU and PyTorch 2.11 but no Rust toolchain:
# runs a `gradplan` binary built elsewhere (against the torch 2.11 wheel) on this machine's
# libtorch, beside the PyTorch references on the same GPU, then a short real training run
# on CUDA (the native pendulum, pixels, paper-sized model and planner: no Python needed).
#
#   scripts/gpu_bench.sh BIN_DIR OUT_DIR
#
# BIN_DIR holds `gradplan` and `libpython3.11.so.1.0` (the binary links libpython even when
# it never starts Python). OUT_DIR receives one text file per benchmark. The numbers in
# docs/benchmarks.md ("GPU") came from this script.
set -uo pipefail
bin=$(cd "$1" && pwd)
out=$2
mkdir -p "$out"
py=${PYTHON:-python3}
torch_lib=$($py -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib:$bin:${LD_LIBRARY_PATH:-}"
# The PyTorch references run in this machine's Python (it has torch, not our venv).
export GRADPLAN_VENV=$($py -c 'import sys; print(sys.prefix)')
g="$bin/gradplan"
run() {
    local name=$1
    shift
    echo "== $*" | tee "$out/$name.txt"
    local start=$(date +%s%N)
    "$@" 2>&1 | tee -a "$out/$name.txt"
    echo "== exit ${PIPESTATUS[0]}, $(( ($(date +%s%N) - start) / 1000000 )) ms" | tee -a "$out/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$py -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' | tee -a "$out/gpu.txt"
run backend "$g" bench backend --device cuda --candidates 1000,100 --iters 50
run model "$g" bench model --preset paper --device cuda --updates 10 --decisions 10
run planners "$g" bench model --preset paper --device cuda --updates 1 --decisions 5 --no-reference \
    --planners cem,grad-mpc,mppi,grad-cem,random-shooting
# A real run on CUDA: 2 seed episodes, then PlaNet's loop (100 updates of 50 x 50 per
# episode, CEM at H 12, I 10, J 1000), 400-step episodes, until the time limit; metrics.csv
# has the wall clock. Then one Grad-MPC (paper settings) episode on the trained model.
rm -rf /tmp/gradplan-gpu-run
run train timeout 150 "$g" train --preset paper --task native_pendulum-swingup --device cuda \
    --set 'env.pixel_mode="direct"' --set env.episode_steps=400 --set train.seed_episodes=2 \
    --set train.test_interval=2 --set train.test_episodes=1 --set train.checkpoint_interval=2 \
    --set train.total_env_steps=4000 --no-report --run-dir /tmp/gradplan-gpu-run
cp /tmp/gradplan-gpu-run/metrics.csv "$out/train-metrics.csv" 2>/dev/null
run eval timeout 90 "$g" eval --run-dir /tmp/gradplan-gpu-run --planner grad-mpc --episodes 1 --device cuda
exit 0
