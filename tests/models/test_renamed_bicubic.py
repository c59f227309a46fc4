"""The two bicubic upsamplers, named for what they are, and their deprecated former names.

``upsample_bicubic_torch`` (models/sisr.py) is PyTorch's bicubic (a = -0.75), the model's flow-net
input; ``upsample_bicubic_matlab`` (degrade.py) is MATLAB's (a = -0.5), the "bicubic" baseline. The
old names ``bicubic_upsample`` and ``upsample_bicubic`` stay for one release: they warn and return
exactly what the new functions return.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast.models as models
from crossnet_fast.degrade import upsample_bicubic, upsample_bicubic_matlab
from crossnet_fast.models import CrossNet, sisr
from crossnet_fast.train import TinyRefSR


def _keys_matlab_1d(n: int, scale: int) -> torch.Tensor:
    """(n * scale, n) MATLAB bicubic upsampling matrix, written out from its definition: output
    pixel i (1-based) sits at u = (i - 0.5) / scale + 0.5 of the input, weights Keys(a = -0.5) of
    the distance, indices folded back by symmetric (edge-repeating) reflection, rows normalised."""

    def keys(x):
        x = abs(x)
        if x <= 1:
            return 1.5 * x**3 - 2.5 * x**2 + 1
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2 if x <= 2 else 0.0

    m = torch.zeros(n * scale, n, dtype=torch.float64)
    for i in range(1, n * scale + 1):
        u = (i - 0.5) / scale + 0.5
        for j in range(int(u) - 2, int(u) + 3):
            w = keys(u - j)
            k = j
            while k < 1 or k > n:
                k = 1 - k if k < 1 else 2 * n + 1 - k
            m[i - 1, k - 1] += w
    return m / m.sum(1, keepdim=True)


def test_the_two_upsamplers_are_the_kernels_their_names_say():
    lr = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    torch_up = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(sisr.upsample_bicubic_torch(lr, 4), torch_up)
    my, mx = _keys_matlab_1d(6, 4), _keys_matlab_1d(5, 4)
    matlab_up = (my @ lr.double() @ mx.T).clamp(0, 1).float()
    torch.testing.assert_close(upsample_bicubic_matlab(lr, 4), matlab_up, rtol=0, atol=1e-5)
    # Different kernels: naming them apart matters.
    assert (torch_up - matlab_up).abs().max() > 1e-3


@pytest.mark.parametrize(
    "old,new,args",
    [
        (sisr.bicubic_upsample, sisr.upsample_bicubic_torch, (4,)),
        (models.bicubic_upsample, sisr.upsample_bicubic_torch, (2,)),
        (upsample_bicubic, upsample_bicubic_matlab, (3,)),
    ],
)
def test_old_names_warn_and_return_the_same(old, new, args):
    lr = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    with pytest.warns(DeprecationWarning, match=rf"deprecated.*use crossnet_fast\.\S*{new.__name__}") as rec:
        got = old(lr, *args)
    assert rec[0].filename == __file__  # the warning points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(got, new(lr, *args))


def test_old_keyword_arguments_still_work():
    lr = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    with pytest.warns(DeprecationWarning):
        got = upsample_bicubic(lr, 2, size=(7, 6), clamp=False)
    assert torch.equal(got, upsample_bicubic_matlab(lr, 2, size=(7, 6), clamp=False))


def test_the_package_itself_no_longer_calls_the_old_names():
    lr, ref = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with torch.no_grad():
            CrossNet(4, "official", "bicubic", width=0.25, backprojection=1, backend="reference")(lr, ref)
            sisr.SRCNN(4)(lr)
            sisr.VDSR(4, depth=2, channels=4)(lr)
            TinyRefSR(4)(lr, ref)
        from crossnet_fast.baselines import bicubic, patchmatch_sr

        bicubic(lr, 4)
        patchmatch_sr(lr, ref, 4, iterations=0)
