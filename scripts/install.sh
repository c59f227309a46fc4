#!/usr/bin/env bash
# Installs crossnet_fast into a virtual environment (default .venv) on a fresh machine:
# torch (CUDA build 2.14.1 by default, so the CUDA kernels compile even without a GPU), the
# runtime and test dependencies, then the package itself, built against that torch.
#   VENV=path       where to create the environment (default .venv)
#   TORCH_SPEC=...  the torch to install (default torch==2.14.1; torch==2.13.0 is a small CPU build)
#   CROSSNET_FAST_CUDA=0|1  force the CUDA kernels off / on (default: on when torch+nvcc allow)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip setuptools wheel ninja 2>&1 | grep -v "^WARNING: Location" || true
"$PY" -m pip install -q "$TORCH_SPEC" numpy pillow safetensors tqdm 2>&1 | grep -v "^WARNING: Location" || true
if [ "${WITH_TEST_DEPS:-0}" = "1" ]; then
  "$PY" -m pip install -q pytest pytest-benchmark hypothesis scikit-image scipy pyyaml matplotlib 2>&1 | grep -v "^WARNING: Location" || true
fi
if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda
fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
# --no-build-isolation: compile against the torch installed above, not a freshly resolved one.
"$PY" -m pip install --no-build-isolation --no-deps -e . 2>&1 | grep -E "crossnet_fast setup|Successfully installed|rror" || true
"$PY" -c "import crossnet_fast as cf; i = cf.build_info(); print('crossnet_fast built:', {k: i[k] for k in ('torch', 'cuda', 'cuda_version', 'triton', 'backends')}); assert i['extension_loaded'], i['extension_error']"
