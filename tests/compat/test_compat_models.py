"""torchvision's RAFT and BasicSR's BasicVSR under crossnet_fast.compat's patches vs unpatched.

Random weights (no downloads), fp32, small inputs. Each model runs twice under the profiler
(unpatched, then patched); the runs give the outputs and input gradients compared here and the
list of ops that ran: the patched run must contain no ``aten::grid_sampler_2d`` (the unpatched run
must, or the check proves nothing).

Tolerances (fp32). Outputs: |patched - unpatched| <= 1e-4 * (max|unpatched| + |unpatched|)
elementwise. Input gradients: ||patched - unpatched|| / ||unpatched|| <= 1e-2 (Frobenius norms).
Gradients get a norm bound because they are not continuous in the sampling positions: RAFT's
first iteration samples at exactly integer coordinates and its ReLUs switch on last-bit changes;
PyTorch's own grid_sample with the coordinates jittered by 1e-6 pixel already moves RAFT's input
gradients by 1.2e-3 in that norm (measured), and this library's kernels round the pixel coordinate
differently at that level. A real convention error is far larger: sampling 0.01 pixel off gives
6e-2 on the gradients and 7e-3 (relative to max) on the outputs, align_corners=False 0.7.
"""

import pytest
import torch

from crossnet_fast import compat

GRID_SAMPLER = "aten::grid_sampler_2d"
OUT_TOL = 1e-4
GRAD_TOL = 1e-2


def _run_profiled(model_call, inputs, weights):
    """Forward + backward of sum(out * weights) under the profiler -> (out, input grads, op names)."""
    leaves = [t.clone().requires_grad_() for t in inputs]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = model_call(*leaves)
        grads = torch.autograd.grad((out * weights).sum(), leaves)
    return out.detach(), grads, {evt.key for evt in prof.key_averages()}


def _compare_runs(model_call, inputs, patch):
    probe = model_call(*inputs).detach()
    weights = torch.rand(probe.shape, generator=torch.Generator().manual_seed(1))  # every output counts
    unpatched = _run_profiled(model_call, inputs, weights)
    with patch():
        patched = _run_profiled(model_call, inputs, weights)
    return unpatched, patched


def _check(unpatched, patched):
    out_scale = unpatched[0].abs().max().item()
    torch.testing.assert_close(patched[0], unpatched[0], rtol=OUT_TOL, atol=OUT_TOL * out_scale)
    for g_patched, g_unpatched in zip(patched[1], unpatched[1]):
        rel = ((g_patched - g_unpatched).norm() / g_unpatched.norm()).item()
        assert rel <= GRAD_TOL, f"input gradient differs by {rel:.2e} (relative L2) > {GRAD_TOL}"


@pytest.fixture(scope="module")
def raft_runs():
    optical_flow = pytest.importorskip(
        "torchvision.models.optical_flow",
        reason="torchvision not installed (scripts/install.sh WITH_TEST_DEPS=1 installs it)",
    )
    torch.manual_seed(0)
    model = optical_flow.raft_small(weights=None).eval()
    gen = torch.Generator().manual_seed(2)
    # RAFT needs H, W >= 128 (its correlation pyramid); 3 refinement steps keep it fast.
    frames = [torch.rand(2, 3, 128, 128, generator=gen) * 2 - 1 for _ in range(2)]
    return _compare_runs(lambda a, b: model(a, b, num_flow_updates=3)[-1], frames, compat.patch_torchvision_raft)


@pytest.fixture(scope="module")
def basicvsr_runs():
    pytest.importorskip("torchvision", reason="torchvision not installed (BasicSR needs it)")
    compat.install_functional_tensor_alias()  # BasicSR 1.4.2 imports torchvision's old module name
    arch = pytest.importorskip(
        "basicsr.archs.basicvsr_arch", reason="basicsr not installed (scripts/install.sh WITH_TEST_DEPS=1 installs it)"
    )
    torch.manual_seed(0)
    model = arch.BasicVSR(num_feat=16, num_block=2, spynet_path=None)
    # 2 frames of 40x40: SpyNet rounds sizes up to 64 (its 6-level pyramid needs that).
    clip = torch.rand(1, 2, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    return _compare_runs(model, [clip], compat.patch_basicsr)


@pytest.mark.slow
@pytest.mark.parametrize("runs", ["raft_runs", "basicvsr_runs"])
def test_patched_model_matches_unpatched(runs, request):
    unpatched, patched = request.getfixturevalue(runs)
    _check(unpatched, patched)


@pytest.mark.parametrize("runs", ["raft_runs", "basicvsr_runs"])
def test_patched_model_runs_no_pytorch_grid_sampler(runs, request):
    unpatched, patched = request.getfixturevalue(runs)
    assert any(k.startswith(GRID_SAMPLER) for k in unpatched[2]), "control: unpatched model must use grid_sampler"
    assert not [k for k in patched[2] if k.startswith(GRID_SAMPLER)], sorted(patched[2])


def test_patched_raft_upsamples_flow_on_crossnet_fast(raft_runs):
    """raft_small's 8x flow upsampling (interpolate, align_corners=True) goes through the patch too."""
    unpatched, patched = raft_runs
    upsample = "aten::upsample_bilinear2d"
    assert any(k.startswith(upsample) for k in unpatched[2]), "control: unpatched RAFT must interpolate"
    assert not [k for k in patched[2] if k.startswith(upsample)], sorted(patched[2])
