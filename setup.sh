#!/usr/bin/env bash
# Two commands on a fresh machine (README, "Set up"):
#
#   ./setup.sh demo   install arc2avatar for a user (the right torch build: CUDA where an NVIDIA GPU
#                     is, else the CPU build; the eval, export and app extras) and run the offline demo
#   ./setup.sh test   install what the tests need (Debian's Chromium, ChromeDriver, Node.js and npm;
#                     the test extra; MediaPipe into .deps/mediapipe), check the layers and the lint
#                     rules, and run the whole suite
#
# Python: the active virtual environment, else the `python3` on PATH when pip may install into it,
# else a new .venv beside this file (Debian's own Python refuses pip installs, PEP 668). PYTHON=...
# picks another interpreter. Extra words after the mode go to `arc2avatar demo` / `pytest` (for the
# quick loop: ./setup.sh test -m "not slow"; one file: ./setup.sh test tests/test_docs.py).
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-}"
[ $# -gt 0 ] && shift
case "$mode" in
  demo|test) ;;
  *) echo "usage: ./setup.sh demo|test [ARGS...]   (README.md, 'Set up')" >&2; exit 2 ;;
esac

export PIP_DISABLE_PIP_VERSION_CHECK=1
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || { echo "setup.sh: no $PY on PATH: install Python ≥ 3.10 first" >&2; exit 1; }

# ---------------------------------------------------------------- the Python environment
in_venv() { "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; }
externally_managed() {
  "$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'
}
if ! in_venv && externally_managed; then
  if [ ! -x .venv/bin/python ]; then
    echo "setup.sh: $PY is the system's (pip may not install into it): making .venv"
    "$PY" -m venv .venv
  fi
  PY="$PWD/.venv/bin/python"
  echo "setup.sh: using .venv (activate it later with: . .venv/bin/activate)"
fi
export PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"  # its console scripts
# pip install, quiet; the lines of an index this machine cannot reach, or of a missing mirror
# folder, are noise (pip goes on with the others).
pip() {
  "$PY" -m pip install -q "$@" 2> >(grep -v -e "Retrying (Retry" -e "is ignored: it is neither" -e "Running pip as the 'root'" >&2 || true)
}

# ---------------------------------------------------------------- torch: the right build
has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
if "$PY" -c 'import torch' >/dev/null 2>&1; then
  echo "setup.sh: torch $("$PY" -c 'import torch; print(torch.__version__)') is installed: kept"
elif has_gpu; then
  echo "setup.sh: an NVIDIA GPU: the default (CUDA) torch build"
  pip torch
else
  # The CPU build (≈ 5 GB less than the CUDA one). pip also looks in its configured find-links,
  # which is where a machine that keeps a CPU wheel on disk (this project's CI) has it.
  echo "setup.sh: no NVIDIA GPU: the CPU torch build"
  pip torch --index-url https://download.pytorch.org/whl/cpu --retries 1 --timeout 30
fi

# ---------------------------------------------------------------- demo
if [ "$mode" = demo ]; then
  extras="eval,export,app"
  has_gpu && extras="cuda,$extras"
  pip -e ".[$extras]"
  out=demo
  if [ -f "$out/metrics.json" ]; then
    echo "setup.sh: $out/ holds a finished demo (open $out/viewer.html; remove $out/ to run it again)"
    exit 0
  fi
  arc2avatar doctor || true  # what is installed, which weight files are found (none are needed here)
  exec arc2avatar demo -o "$out" "$@"
fi

# ---------------------------------------------------------------- test
# Headless Chromium + ChromeDriver for the viewer.html and web-app browser tests, Node.js + npm for
# the third-party splat viewer (Spark) and glTF validator the export tests fetch from npm (Debian),
# and the live page's tracker tarballs tests/test_live.py and test_expression_tracker.py fetch (`npm pack @vladmandic/face-api@1.7.15`,
# `npm pack @tensorflow/tfjs-backend-wasm@4.22.0`).
need=()
command -v chromedriver >/dev/null 2>&1 && [ -x /usr/lib/chromium/chromium ] || need+=(chromium chromium-driver)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup.sh: installing ${need[*]} (Debian packages)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
pip -e ".[test]"
# The parity tests' reference code (tests/test_parity.py): insightface without its dependencies, so that
# opencv-python-headless stays the only OpenCV (its own runtime imports are in the test extra).
pip --no-deps "insightface>=2.1,<3"
# The third face tracker of tests/test_expression_tracker.py (arc2avatar.testing.mediapipe_mesh):
# MediaPipe Face Mesh 0.10.14, whose wheel carries its models, needs protobuf < 5 and our stack has
# protobuf 7, so it goes into a git-ignored folder of its own that only the tracker's subprocess puts
# first on sys.path (numpy, OpenCV and matplotlib come from the test extra). Built beside it and
# moved in whole, so a stopped install leaves none; where it cannot be installed (no wheel for this
# Python), its test skips, or fails under CI=true.
mediapipe_dir="${ARC2AVATAR_MEDIAPIPE_PATH:-.deps/mediapipe}"
if [ ! -d "$mediapipe_dir/mediapipe-0.10.14.dist-info" ]; then
  rm -rf "$mediapipe_dir.part"
  if pip --no-deps --target "$mediapipe_dir.part" mediapipe==0.10.14 "protobuf>=4.25.3,<5" absl-py attrs; then
    rm -rf "$mediapipe_dir"
    mv "$mediapipe_dir.part" "$mediapipe_dir"
  else
    rm -rf "$mediapipe_dir.part"
    echo "setup.sh: MediaPipe could not be installed into $mediapipe_dir: the MediaPipe blink test will skip (fail under CI=true)" >&2
  fi
fi

# The layout's rules (docs/architecture.md): import-linter's layer contracts and a small ruff rule set.
lint-imports
ruff check src tests benchmarks

# The suite on every core, one test file per worker (module fixtures are built once, and the
# browser tests' npm folder has one writer); each worker's PyTorch gets one thread. Files start in
# collection order (--no-loadscope-reorder: xdist would otherwise start the files with the most
# tests first, and the identity proof, one 14-minute test, started 9 minutes in and ran alone at the
# end; tests/conftest.py puts the longest files first).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# pytest's testpaths (pyproject.toml) is tests/, so no arguments run the whole suite.
exec "$PY" -m pytest -n auto --dist loadfile --no-loadscope-reorder -q -p no:cacheprovider --durations=15 "$@"
