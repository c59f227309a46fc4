#!/usr/bin/env bash
# Installs crossnet_fast into a virtual environment (default .venv) on a fresh machine:
# torch (CUDA build 2.14.1 by default, so the CUDA kernels compile even without a GPU), the
# runtime and test dependencies, then the package itself, built against that torch.
#   VENV=path       where to create the environment (default .venv)
#   TORCH_SPEC=...  the torch to install (default torch==2.14.1; torch==2.13.0 is a small CPU build)
#   TORCHVISION_SPEC=...  with WITH_TEST_DEPS=1: the torchvision matching TORCH_SPEC (default
#                   torchvision==0.29.1 for the default torch, none otherwise; "" for none)
#   CROSSNET_FAST_CUDA=0|1  CUDA kernels off / on (default: on for the visible GPUs' architectures,
#                   off with no GPU); CROSSNET_FAST_CUDA_ARCHS=all, TORCH_CUDA_ARCH_LIST: docs/BUILD.md
#   CROSSNET_FAST_REBUILD=1  rebuild even when the built extension is up to date
# The extension is rebuilt only when its sources, the build switches or torch changed since the
# last build (build_support.py up-to-date compares a digest stored beside the built library), so
# scripts/test.sh after scripts/run.sh compiles nothing again.
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
  # The models crossnet_fast.compat is tested in (tests/compat/test_compat_models.py): torchvision's RAFT
  # and BasicSR's BasicVSR. torchvision must be the build of the installed torch: the default
  # torch gets its torchvision; another TORCH_SPEC gets none unless TORCHVISION_SPEC names one
  # (those tests then skip, saying so). --no-deps: never let it replace the torch installed above.
  if [ -z "${TORCHVISION_SPEC+set}" ] && [ "$TORCH_SPEC" = "torch==2.14.1" ]; then
    TORCHVISION_SPEC="torchvision==0.29.1"
  fi
  if [ -n "${TORCHVISION_SPEC:-}" ]; then
    "$PY" -m pip install -q --no-deps "$TORCHVISION_SPEC" 2>&1 | grep -v "^WARNING: Location" || true
    # BasicSR 1.4.2 (its last release) without its pinned extras: tb-nightly (TensorBoard nightly,
    # unused by the archs) and opencv-python (needs libGL); `import basicsr` needs only these.
    # Its sdist builds against the installed torch (--no-build-isolation: setup_requires torch).
    # Its one import torchvision renamed is aliased by crossnet_fast.compat.install_functional_tensor_alias.
    "$PY" -m pip install -q opencv-python-headless lmdb requests 2>&1 | grep -v "^WARNING: Location" || true
    "$PY" -m pip install -q --no-deps --no-build-isolation basicsr==1.4.2 2>&1 | grep -v "^WARNING: Location" || true
  fi
fi
if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda
fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
# Already installed from this checkout (editable), the extension loads, and its digest matches a
# build now: nothing to do. The import runs outside the checkout so that it finds the installed package.
REPO="$(pwd)"
PY_ABS="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
installed_here() {
  (cd / && "$PY_ABS" -c "import os, sys, crossnet_fast as cf
from crossnet_fast import _extension as e
assert os.path.realpath(os.path.dirname(cf.__file__)) == os.path.realpath(sys.argv[1]), cf.__file__
assert e.loaded, e.load_error" "$REPO/crossnet_fast") >/dev/null 2>&1
}
if [ "${CROSSNET_FAST_REBUILD:-0}" != "1" ] && installed_here && "$PY" build_support.py up-to-date 2>/dev/null; then
  :  # build_support.py printed "up to date"
else
  # --no-build-isolation: compile against the torch installed above, not a freshly resolved one.
  "$PY" -m pip install --no-build-isolation --no-deps -e . 2>&1 | grep -E "crossnet_fast setup|Successfully installed|rror" || true
fi
"$PY" -c "import crossnet_fast as cf; i = cf.build_info(); print('crossnet_fast built:', {k: i[k] for k in ('torch', 'cuda', 'cuda_version', 'triton', 'backends')}); assert i['extension_loaded'], i['extension_error']"
if [ -n "${TORCHVISION_SPEC:-}" ] && [ "${WITH_TEST_DEPS:-0}" = "1" ]; then
  # Fail here, not by skipped tests, when the compat test models did not install.
  "$PY" -c "import crossnet_fast.compat as c; c.install_functional_tensor_alias(); import torchvision, basicsr, basicsr.archs.basicvsr_arch; from torchvision.models.optical_flow import raft_small; print('compat test models: torchvision', torchvision.__version__, 'basicsr', basicsr.__version__)"
fi
