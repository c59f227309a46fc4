"""Property-based tests (hypothesis) of every op on every backend this machine has, against PyTorch.

Strategies, oracles and tolerances: tests/properties.py. The Triton kernels run the same properties
under the CPU interpreter in tests/ops/test_properties_triton.py, and compiled on a GPU here.
Example counts: ``CI_EXAMPLES`` per
test and backend by default, ``LONG_EXAMPLES`` with ``HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

import crossnet_fast as cf

from properties import (
    check_charbonnier,
    check_resize,
    check_upsample,
    check_warp,
    loss_case,
    resize_case,
    upsample_case,
    warp_case,
)

# On a GPU machine the compiled Triton kernels run the same properties on CUDA tensors (on a CPU
# machine, Triton runs them under the interpreter: tests/ops/test_properties_triton.py).
_GPU = torch.cuda.is_available()
BACKENDS = [b for b in ("reference", "cpu", "cuda") + (("triton",) if _GPU else ()) if b in cf.available_backends()]
DEVICE = {"reference": "cpu", "cpu": "cpu", "cuda": "cuda", "triton": "cuda"}


def _warp(backend):
    return lambda feat, flow, padding: cf.backward_warp(feat, flow, padding, backend=backend)


def _multiscale_one(backend):
    # The same case through the multiscale op, with a second (unused-gradient) scale beside it.
    def run(feat, flow, padding):
        outs = cf.multiscale_warp(
            [feat, feat.detach()[:, :, ::2, ::2]], [flow, flow.detach()[:, :, ::2, ::2]], padding, backend=backend
        )
        return outs[0]

    return run


def _inf_at_origin(padding):
    """Regression case of the defect that started issue 12: an inf at feat[0, 0, 0, 0] turned every
    sample with a tap outside the image into NaN (the tap was pointed at offset 0, weight 0)."""
    feat = torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(0))
    feat[0, 0, 0, 0] = float("inf")
    flow = torch.full((1, 2, 5, 6), 0.5)
    flow[0, 0, :, 3:] = 9.25  # far right: taps outside the image
    return {
        "feat": feat,
        "flow": flow,
        "dtype": torch.float32,
        "padding": padding,
        "kind": "regression",
        "grad_out": torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(1)),
        "layout": "nchw",
        "bad_feat": [(0, 0, 0, 0)],
    }


def _identity_with_inf():
    """Regression case: a zero flow is the identity even on non-finite features (F.grid_sample
    spreads the inf to the left and upper neighbours, whose zero-weight tap it is)."""
    feat = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    feat[0, 0, 2, 2] = float("inf")
    return {
        "feat": feat,
        "flow": torch.zeros(1, 2, 4, 4),
        "dtype": torch.float32,
        "padding": "border",
        "kind": "regression",
        "grad_out": torch.ones(1, 1, 4, 4),
        "layout": "nchw",
        "bad_feat": [(0, 0, 2, 2)],
    }


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=warp_case())
@example(case=_inf_at_origin("border"))
@example(case=_inf_at_origin("zeros"))
@example(case=_identity_with_inf())
def test_backward_warp_matches_grid_sample(backend, case):
    check_warp(case, _warp(backend), DEVICE[backend])


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=warp_case(max_size=5))
def test_multiscale_warp_matches_grid_sample(backend, case):
    check_warp(case, _multiscale_one(backend), DEVICE[backend])


def _upsample_inf_at_scale_1():
    """Regression case found by hypothesis: upsample_flow multiplied an inf by its zero weight at
    scale 1 (and at the clamped first row/column), giving NaN instead of the inf itself."""
    flow = torch.tensor([[[[float("inf"), 0.2078], [-0.0406, 0.4207]], [[0.1450, 0.2911], [-0.3214, -0.1489]]]])
    return {"flow": flow, "dtype": torch.float32, "scale": 1, "layout": "nchw", "grad_seed": 0}


def _resize_inf_on_exact_rows():
    """An inf on a source pixel that corner-aligned x3 upsampling lands on exactly: it reaches only
    the outputs that weight it (F.interpolate also spreads it to its zero-weight neighbours)."""
    flow = torch.tensor([[[[0.5, float("inf")], [1.0, -2.0]], [[0.25, 0.0], [float("nan"), 3.0]]]])
    return {
        "flow": flow,
        "dtype": torch.float32,
        "scale": 1,
        "layout": "nchw",
        "grad_seed": 0,
        "size": (4, 4),
        "align_corners": True,
    }


def _charbonnier_overflow():
    """Regression case found by hypothesis: (pred - target)^2 overflowed fp32 for a difference of
    1e30 (the loss, 1e30, is representable)."""
    return {
        "pred": torch.tensor([1e30]),
        "target": torch.tensor([0.9701]),
        "dtype": torch.float32,
        "eps": 1e-3,
        "reduction": "mean",
    }


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=upsample_case())
@example(case=_upsample_inf_at_scale_1())
def test_upsample_flow_matches_interpolate(backend, case):
    check_upsample(case, lambda f, s: cf.upsample_flow(f, s, backend=backend), DEVICE[backend])


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=resize_case())
@example(case=_resize_inf_on_exact_rows())
def test_resize_flow_matches_interpolate(backend, case):
    check_resize(case, lambda f, size, a: cf.resize_flow(f, size, align_corners=a, backend=backend), DEVICE[backend])


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=loss_case())
@example(case=_charbonnier_overflow())
def test_charbonnier_matches_formula(backend, case):
    check_charbonnier(case, lambda p, t, e, r: cf.charbonnier(p, t, e, r, backend=backend), DEVICE[backend])
