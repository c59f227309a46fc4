"""models.activations.selu against torch.nn.functional.selu (ATen's expm1 formulation)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crossnet_fast.models.activations import SELU, selu


def _inputs(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 37, 41, generator=g, dtype=dtype) * 3
    x[0, 0, 0, :4] = torch.tensor([0.0, -0.0, 1e-8, -1e-8], dtype=dtype)
    return x


LAYOUTS = {
    "contiguous": lambda x: x.clone(),
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "strided": lambda x: x.transpose(2, 3).clone().transpose(2, 3)[:, :, 1:, ::2],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["inference", "no_grad", "grad"])
def test_selu_matches_torch(layout, dtype, mode):
    x = LAYOUTS[layout](_inputs(dtype))
    expected = F.selu(x.double())
    atol = 3e-7 if dtype == torch.float32 else 1e-14
    if mode == "grad":
        leaf = x.clone().requires_grad_(True)
        got = selu(leaf)
        got.backward(torch.ones_like(got))
        ref_leaf = x.double().clone().requires_grad_(True)
        F.selu(ref_leaf).backward(torch.ones_like(ref_leaf))
        torch.testing.assert_close(leaf.grad.double(), ref_leaf.grad, atol=atol * 10, rtol=1e-6)
    else:
        context = torch.inference_mode() if mode == "inference" else torch.no_grad()
        with context:
            got = selu(x.clone() if layout != "strided" else x)
    assert got.shape == x.shape and got.dtype == dtype
    torch.testing.assert_close(got.double(), expected, atol=atol, rtol=1e-6)
    if layout == "channels_last":
        assert got.is_contiguous(memory_format=torch.channels_last)


def test_selu_in_place_without_autograd_over_several_blocks():
    # More elements than one block (2^18), so the blocked loop and its last partial block run.
    x = torch.linspace(-20, 5, 300_001).view(1, 1, 1, -1)
    expected = F.selu(x.double())
    with torch.inference_mode():
        y = x.clone()
        out = selu(y)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(out.double(), expected, atol=3e-7, rtol=1e-6)


def test_selu_keeps_non_finite_values_like_torch():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -100.0, 100.0])
    with torch.inference_mode():
        got = selu(x.clone())
    torch.testing.assert_close(got, F.selu(x), equal_nan=True)


def test_module_has_no_state_and_matches():
    m = SELU()
    assert list(m.state_dict()) == []
    x = _inputs(torch.float32)
    torch.testing.assert_close(m(x.clone()), F.selu(x), atol=3e-7, rtol=1e-6)
