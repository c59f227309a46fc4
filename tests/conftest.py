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
