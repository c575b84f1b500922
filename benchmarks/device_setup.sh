#!/usr/bin/env bash
# Prepare a bare GPU machine (no network) for arc2avatar benchmarks.
# Expects wheels carried in .whl/ (diffusers, peft, trimesh, ...) and gsplat in .gsplat/ either as
# a prebuilt wheel (gsplat-*.whl) or as the sdist (gsplat-*.tar.gz, built here for sm_90, ≈2 min).
# Usage: source benchmarks/device_setup.sh   (exports PYTHONPATH; copies a fresh gsplat wheel to $OUT)
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD/src
if ls .gsplat/gsplat-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gsplat/gsplat-*.whl
else
  start=$(date +%s)
  TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip wheel -q --no-build-isolation --no-deps -w /tmp/gsplat_wheel .gsplat/gsplat-*.tar.gz \
    && python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/gsplat_wheel/gsplat-*.whl \
    && cp /tmp/gsplat_wheel/gsplat-*.whl "${OUT:-/tmp}/" 2>/dev/null
  echo "gsplat build took $(( $(date +%s) - start )) s"
fi
python3 -c "import torch, gsplat, diffusers; print('torch', torch.__version__, 'gsplat', gsplat.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name())"
