"""Bad input gives clear errors naming the argument; backend selection behaves as documented."""

import pytest
import torch

import crossnet_fast as cf
from crossnet_fast import backend as backend_mod

BACKENDS = ["reference"] + (["cpu"] if "cpu" in cf.available_backends() else [])
F4 = torch.zeros(2, 3, 5, 6)
V4 = torch.zeros(2, 2, 5, 6)

WARP_CASES = [
    (lambda b: cf.backward_warp(torch.zeros(3, 5, 6), V4, backend=b), ValueError, "feat must be a 4-D"),
    (lambda b: cf.backward_warp(F4, torch.zeros(2, 3, 5, 6), backend=b), ValueError, "flow must have 2 channels"),
    (
        lambda b: cf.backward_warp(F4, torch.zeros(1, 2, 5, 6), backend=b),
        ValueError,
        r"flow must have shape \(N, 2, H, W\) = \(2, 2, 5, 6\)",
    ),
    (lambda b: cf.backward_warp(F4, torch.zeros(2, 2, 5, 7), backend=b), ValueError, "to match feat"),
    (lambda b: cf.backward_warp(F4, V4, padding="reflect", backend=b), ValueError, "padding must be one of"),
    (
        lambda b: cf.backward_warp(F4.long(), V4, backend=b),
        TypeError,
        "feat must be float16, bfloat16, float32 or float64",
    ),
    (lambda b: cf.backward_warp(F4, V4.int(), backend=b), TypeError, "flow must be float16"),
    (lambda b: cf.backward_warp(F4.to("meta"), V4, backend=b), ValueError, "same device"),
    (lambda b: cf.backward_warp([F4], V4, backend=b), TypeError, "feat must be a torch.Tensor"),
    (lambda b: cf.multiscale_warp([F4, F4[:, :, :3]], [V4], backend=b), ValueError, "same length"),
    (
        lambda b: cf.multiscale_warp([F4, torch.zeros(1, 3, 2, 3)], [V4, torch.zeros(1, 2, 2, 3)], backend=b),
        ValueError,
        "same batch size",
    ),
    (
        lambda b: cf.multiscale_warp(
            [F4, torch.zeros(2, 3, 2, 3, dtype=torch.float64)], [V4, torch.zeros(2, 2, 2, 3)], backend=b
        ),
        TypeError,
        "one dtype",
    ),
    (lambda b: cf.multiscale_warp(F4, V4, backend=b), TypeError, "lists of tensors"),
    (
        lambda b: cf.multiscale_warp([F4], [torch.zeros(2, 2, 5, 5)], backend=b),
        ValueError,
        r"flows\[0\] must have shape",
    ),
    (lambda b: cf.upsample_flow(torch.zeros(2, 5, 6), backend=b), ValueError, "flow must be a 4-D"),
    (lambda b: cf.upsample_flow(V4, 0, backend=b), ValueError, "scale must be an integer >= 1"),
    (lambda b: cf.upsample_flow(V4, 1.5, backend=b), ValueError, "scale must be an integer"),
    (lambda b: cf.charbonnier(F4, F4[:1], backend=b), ValueError, "target must have the shape of pred"),
    (lambda b: cf.charbonnier(F4, F4, reduction="avg", backend=b), ValueError, "reduction must be one of"),
    (lambda b: cf.charbonnier(F4, F4.double(), backend=b), TypeError, "same dtype"),
    (lambda b: cf.charbonnier(F4, F4, eps=0, backend=b), ValueError, "eps must be a positive"),
    (lambda b: cf.charbonnier(F4.int(), F4.int(), backend=b), TypeError, "pred must be float16"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(len(WARP_CASES)))
def test_bad_input_raises_clear_error(backend, case):
    call, exc, pattern = WARP_CASES[case]
    with pytest.raises(exc, match=pattern):
        call(backend)


def test_native_ops_check_their_inputs_too():
    # Called directly (bypassing the Python checks) the kernels still refuse bad shapes.
    if "cpu" not in cf.available_backends():
        pytest.skip("extension not built")
    ops = torch.ops.crossnet_fast
    with pytest.raises(ValueError, match="flows"):
        ops.multiscale_warp([F4], [torch.zeros(2, 2, 4, 6)], "border")
    with pytest.raises(ValueError, match="padding"):
        ops.multiscale_warp([F4], [V4], "mirror")
    with pytest.raises(ValueError, match="reduction"):
        ops.charbonnier(F4, F4, 1e-3, "avg", False)


def test_unknown_and_unavailable_backends():
    with pytest.raises(ValueError, match="backend must be one of"):
        cf.backward_warp(F4, V4, backend="opencl")
    with pytest.raises(ValueError, match="backend must be one of"):
        with cf.use_backend("fast"):
            pass
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="backend 'cuda' is not available"):
            cf.backward_warp(F4, V4, backend="cuda")
        assert "cuda" not in cf.available_backends()


def test_default_backend_precedence(monkeypatch):
    monkeypatch.setenv(backend_mod.ENV_VAR, "reference")
    assert backend_mod.resolve("multiscale_warp", torch.device("cpu")) == "reference"
    if "cpu" in cf.available_backends():
        with cf.use_backend("cpu"):
            assert backend_mod.resolve("multiscale_warp", torch.device("cpu")) == "cpu"
            # an explicit argument beats the context manager
            assert backend_mod.resolve("multiscale_warp", torch.device("cpu"), "reference") == "reference"
        monkeypatch.delenv(backend_mod.ENV_VAR)
        assert backend_mod.resolve("charbonnier", torch.device("cpu")) == "cpu"  # auto on CPU
    monkeypatch.setenv(backend_mod.ENV_VAR, "nonsense")
    with pytest.raises(ValueError, match="backend must be one of"):
        cf.charbonnier(F4, F4)


def test_auto_on_other_devices_falls_back_to_reference():
    assert backend_mod.resolve("multiscale_warp", torch.device("meta")) == "reference"


def test_stale_build_is_reported_with_the_rebuild_command():
    # Pretend the extension was built against another torch: the package must still import, keep
    # the reference backend, and say how to rebuild when a native backend is asked for.
    import subprocess
    import sys

    code = (
        "import sys, types, torch\n"
        "fake = types.ModuleType('crossnet_fast._build_info')\n"
        "fake.BUILD_INFO = {'torch': '0.0.1', 'cuda': False}\n"
        "sys.modules['crossnet_fast._build_info'] = fake\n"
        "import crossnet_fast as cf\n"
        "assert cf.available_backends() == ['reference'], cf.available_backends()\n"
        "x = torch.zeros(1, 1, 2, 2); v = torch.zeros(1, 2, 2, 2)\n"
        "cf.backward_warp(x, v, backend='reference')\n"
        "try:\n"
        "    cf.backward_warp(x, v, backend='cpu')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "built against torch 0.0.1" in out.stdout
    assert "pip install --no-build-isolation" in out.stdout
