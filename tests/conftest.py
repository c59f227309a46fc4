import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # for `import oracles`
# A fresh Inductor cache per session: its on-disk cache does not key on a custom op's Python
# backward, so an artefact compiled before a change to ops/_registration.py would be reused.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="crossnet_fast_inductor_")

import crossnet_fast  # noqa: E402
from crossnet_fast import _extension  # noqa: E402

NATIVE_CPU = pytest.mark.skipif(
    "cpu" not in crossnet_fast.available_backends() and os.environ.get("CROSSNET_FAST_REQUIRE_EXT") != "1",
    reason=f"C++ extension not built: {_extension.load_error}",
)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


# The `gpu` marker (pyproject.toml) on every test that needs a CUDA GPU, so that `-m gpu` selects them
# on a GPU machine (they skip without one): the CUDA kernel files whole, and each test parametrised
# onto a CUDA backend. A single GPU-only test elsewhere carries @pytest.mark.gpu itself.
_GPU_FILES = {"test_cuda.py", "test_grid_sample_cuda.py"}
# Files whose "triton" backend runs compiled on CUDA tensors (the interpreter has its own files).
_TRITON_ON_GPU_FILES = {"test_properties.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend")
        if (
            item.path.name in _GPU_FILES
            or backend == "cuda"
            or (backend == "triton" and item.path.name in _TRITON_ON_GPU_FILES)
        ):
            item.add_marker(pytest.mark.gpu)
