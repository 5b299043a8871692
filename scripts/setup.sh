#!/usr/bin/env bash
# Sets up gradplan on a fresh Debian machine; safe to run again (a second run takes seconds).
#   1. system libraries for headless MuJoCo rendering (EGL, Mesa);
#   2. the pinned Python environment in .venv/ (dm_control, MuJoCo, torch 2.11.0 for libtorch);
#   3. the release build: target/release/gradplan (skip with --no-build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "setup.sh: unknown option $arg (known: --no-build)" >&2; exit 2 ;;
  esac
done
say() { printf '[setup] %s\n' "$*"; }

# 1. System packages.
missing=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libglib2.0-0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python environment. pyo3 embeds CPython, so the interpreter must be 3.11 with a shared
# libpython (pyenv's build here has one).
python=${GRADPLAN_PYTHON:-}
if [ -z "$python" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then python=$(command -v "$cand"); break; fi
  done
fi
[ -n "$python" ] || { echo "setup.sh: no python3 found; install CPython 3.11 (apt-get install python3.11-venv) or set GRADPLAN_PYTHON" >&2; exit 1; }
check=$("$python" -c 'import sys, sysconfig; print(f"{sys.version_info[0]}.{sys.version_info[1]}", sysconfig.get_config_var("Py_ENABLE_SHARED"))')
if [ "$check" != "3.11 1" ]; then
  echo "setup.sh: $python is '$check' (version, shared libpython); gradplan needs CPython 3.11 built with --enable-shared. Set GRADPLAN_PYTHON to such an interpreter." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $python"
  "$python" -m venv .venv
fi
want=$(sha256sum requirements.txt | cut -d' ' -f1)
have=$(cat .venv/.requirements.sha256 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  say "installing the pinned Python packages (torch pulls ~4 GB of CUDA libraries; once)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > .venv/.requirements.sha256
fi
MUJOCO_GL=egl .venv/bin/python -c 'from dm_control import suite; suite.load("cartpole", "swingup").physics.render(8, 8)' \
  || { echo "setup.sh: dm_control cannot render with EGL; see the error above" >&2; exit 1; }

# 3. Release build (LIBTORCH and PYO3_PYTHON point into .venv via .cargo/config.toml).
if ((build)); then
  say "building target/release/gradplan"
  cargo build --release --locked -p gradplan-cli 2>&1 | grep -vE '^\s+(Compiling|Checking)' || true
  test -x target/release/gradplan || { echo "setup.sh: the release build failed" >&2; exit 1; }
  say "ready: $root/target/release/gradplan"
fi
