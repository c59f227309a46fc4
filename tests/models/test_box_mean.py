"""models.refine.box_mean / patch_cost against ATen's avg_pool2d (count_include_pad=False)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crossnet_fast.models.refine import box_mean, patch_cost


def _pool(x: torch.Tensor, k: int) -> torch.Tensor:
    flat = x.reshape(-1, 1, *x.shape[-2:]).double()
    return F.avg_pool2d(flat, k, 1, k // 2, count_include_pad=False).reshape(x.shape)


# avg_pool2d needs k // 2 <= the input's height and width: larger windows are tested below.
CASES = [
    (s, k) for s in [(1, 2, 19, 23), (3, 1, 7), (5, 9), (2, 1, 30)] for k in (1, 3, 7, 11) if k // 2 <= min(s[-2:])
]


@pytest.mark.parametrize("shape,k", CASES)
def test_box_mean_matches_avg_pool(shape, k):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(k))
    got = box_mean(x, k)
    assert got.shape == x.shape and got.dtype == x.dtype
    torch.testing.assert_close(got.double(), _pool(x, k), atol=1e-6, rtol=1e-5)


def test_box_mean_windows_larger_than_the_image():
    # Every window covers the whole 1 x 4 image: the plain mean, whatever k.
    x = torch.tensor([[1.0, 2.0, 3.0, 10.0]])
    torch.testing.assert_close(box_mean(x, 9), torch.full_like(x, 4.0))


def test_box_mean_gradient_matches_avg_pool():
    x = torch.rand(1, 3, 12, 9, dtype=torch.float64, requires_grad=True)
    g = torch.rand(1, 3, 12, 9, dtype=torch.float64)
    (gx,) = torch.autograd.grad(box_mean(x, 5), x, g)
    y = x.detach().clone().requires_grad_(True)
    (gy,) = torch.autograd.grad(F.avg_pool2d(y, 5, 1, 2, count_include_pad=False), y, g)
    torch.testing.assert_close(gx, gy)


def test_patch_cost_is_the_window_mean_of_the_channel_sum_of_squares():
    diff = torch.randn(2, 4, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    expected = _pool(diff.square().sum(-3), 7)
    torch.testing.assert_close(patch_cost(diff, 7).double(), expected, atol=1e-6, rtol=1e-5)
