"""Drop-in for the ``spatial-correlation-sampler`` package (PWC-Net, FlowNetC, MotionSqueeze, ...).

The package (``from spatial_correlation_sampler import SpatialCorrelationSampler,
spatial_correlation_sample``) is a source-only build that fails on current torch (see
docs/USE_IN_YOUR_MODEL.md). This module gives the same two names with the same signature, output
layout and values, computed by :func:`crossnet_fast.correlation` where the arguments allow, and
:func:`patch_spatial_correlation_sampler` to run a model written against the package unchanged.

Semantics (the package's documentation and CPU source, read for facts). Every argument is an int
or an (H, W) pair. For input1, input2 (B, C, H, W)::

    out[b, ph, pw, h, w] = sum_c sum_{i < kH, j < kW} input1[b, c, u + i*dilH, v + j*dilW]
                                                     * input2[b, c, u + i*dilH + sU, v + j*dilW + sV]
    u = h*strideH - padH,  v = w*strideW - padW,
    sU = (ph - (patchH - 1)//2) * dilation_patchH,  sV = (pw - (patchW - 1)//2) * dilation_patchW,

where a term counts only when both points lie inside the image (zero padding of both inputs). The
output is (B, patchH, patchW, oH, oW) with ``oH = (H + 2*padH - ((kH - 1)*dilH + 1)) // strideH + 1``
(likewise oW): a *sum* over channels (PWC-Net implementations divide by C themselves), and the
output size does not depend on the patch size. An even patch size gives one more shift on the
positive side than on the negative side.

Which implementation runs: kernel_size 1, padding 0, an odd patch size and one stride and
dilation_patch for both axes is the fused op times C (``correlation(input1, input2, (patch-1)//2,
dilation=dilation_patch, stride=stride) * C``, the layout reshaped; every PWC-Net and FlowNetC
call is of this kind). Anything else runs a plain PyTorch implementation of the formula above (a
loop over kernel offsets and shifts; slower, differentiable by autograd, accumulated in fp32 or
fp64). Arguments outside the package's domain (sizes < 1, negative padding, an image smaller than
the dilated kernel, inputs of different shapes) raise a ValueError naming the argument.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.correlation import correlation

PACKAGE = "spatial_correlation_sampler"
_NAMES = ("spatial_correlation_sample", "SpatialCorrelationSampler")


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """(H, W) ints >= minimum from an int or a pair; ValueError/TypeError naming the argument."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"spatial_correlation_sample: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"spatial_correlation_sample: {name} must be >= {minimum}, got {value!r}")
    return pair


def _check_inputs(input1, input2) -> None:
    for name, t in (("input1", input1), ("input2", input2)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(
                f"spatial_correlation_sample: {name} must be a (B, C, H, W) tensor, got "
                f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}"
            )
    if input1.shape != input2.shape:
        raise ValueError(
            f"spatial_correlation_sample: input2 must have the shape of input1 {tuple(input1.shape)}, "
            f"got {tuple(input2.shape)}"
        )


def spatial_correlation_sample(
    input1: torch.Tensor,
    input2: torch.Tensor,
    kernel_size=1,
    patch_size=1,
    stride=1,
    padding=0,
    dilation=1,
    dilation_patch=1,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """``spatial_correlation_sampler.spatial_correlation_sample`` on crossnet_fast (module docstring).

    Args:
        input1, input2: (B, C, H, W) float tensors of one shape, dtype and device.
        kernel_size: int or (kH, kW) >= 1, the correlation window summed at each point.
        patch_size: int or (patchH, patchW) >= 1, the number of shifts per axis.
        stride: int or pair >= 1, step between output points in input1.
        padding: int or pair >= 0, zero padding of both inputs (changes oH, oW).
        dilation: int or pair >= 1, spacing of the kernel window's taps.
        dilation_patch: int or pair >= 1, spacing of the shifts (pixels of input2).
        backend: crossnet_fast backend of the fused path (keyword only; not in the package).

    Returns:
        (B, patchH, patchW, oH, oW) tensor of the inputs' dtype: sums over channels (and kernel
        window) of products, in the units of input1 times input2. Differentiable w.r.t. both inputs.
    """
    _check_inputs(input1, input2)
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    ph, pw = _pair(patch_size, "patch_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    padh, padw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    dph, dpw = _pair(dilation_patch, "dilation_patch", 1)
    n, c, h, w = input1.shape
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if h + 2 * padh < ekh or w + 2 * padw < ekw:
        raise ValueError(
            f"spatial_correlation_sample: the padded input ({h + 2 * padh}, {w + 2 * padw}) is smaller "
            f"than the dilated kernel ({ekh}, {ekw}); increase padding or reduce kernel_size/dilation"
        )
    fused = kh == kw == 1 and padh == padw == 0 and ph == pw and ph % 2 == 1 and sh == sw and dph == dpw
    if fused:
        out = correlation(input1, input2, (ph - 1) // 2, dilation=dph, stride=sh, backend=backend)
        # Mean -> sum over channels; the package's (B, patchH, patchW, oH, oW) layout.
        return (out * c).view(n, ph, pw, out.shape[-2], out.shape[-1])
    return _general(input1, input2, (kh, kw), (ph, pw), (sh, sw), (padh, padw), (dh, dw), (dph, dpw))


def _general(input1, input2, kernel, patch, stride, padding, dilation, dilation_patch) -> torch.Tensor:
    """The formula of the module docstring in plain PyTorch: pad, then one strided product-sum per
    kernel tap and shift. Out-of-image points read zero padding (so a non-finite value next to
    the border can reach outputs that the package would skip; the fused path keeps them local)."""
    (kh, kw), (ph, pw), (sh, sw), (padh, padw), (dh, dw), (dph, dpw) = (
        kernel,
        patch,
        stride,
        padding,
        dilation,
        dilation_patch,
    )
    n, c, h, w = input1.shape
    oh = (h + 2 * padh - ((kh - 1) * dh + 1)) // sh + 1
    ow = (w + 2 * padw - ((kw - 1) * dw + 1)) // sw + 1
    rad_h, rad_w = (ph - 1) // 2, (pw - 1) // 2
    shifts_h = [(i - rad_h) * dph for i in range(ph)]
    shifts_w = [(j - rad_w) * dpw for j in range(pw)]
    mh = max(abs(s) for s in shifts_h)
    mw = max(abs(s) for s in shifts_w)
    compute = torch.float64 if input1.dtype == torch.float64 else torch.float32
    a = F.pad(input1.to(compute), (padw, padw, padh, padh))
    b = F.pad(input2.to(compute), (padw + mw, padw + mw, padh + mh, padh + mh))
    span_h, span_w = (oh - 1) * sh + 1, (ow - 1) * sw + 1
    planes = []
    for su in shifts_h:
        for sv in shifts_w:
            acc = None
            for i in range(kh):
                for j in range(kw):
                    y0, x0 = i * dh, j * dw
                    taps1 = a[:, :, y0 : y0 + span_h : sh, x0 : x0 + span_w : sw]
                    yb, xb = mh + y0 + su, mw + x0 + sv
                    taps2 = b[:, :, yb : yb + span_h : sh, xb : xb + span_w : sw]
                    term = (taps1 * taps2).sum(1)
                    acc = term if acc is None else acc + term
            planes.append(acc)
    return torch.stack(planes, 1).view(n, ph, pw, oh, ow).to(input1.dtype)


class SpatialCorrelationSampler(nn.Module):
    """``spatial_correlation_sampler.SpatialCorrelationSampler`` on crossnet_fast: no parameters;
    ``forward(input1, input2)`` is :func:`spatial_correlation_sample` with the stored arguments."""

    def __init__(
        self, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1, *, backend: str = "auto"
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.patch_size = patch_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.dilation_patch = dilation_patch
        self.backend = backend

    def forward(self, input1: torch.Tensor, input2: torch.Tensor) -> torch.Tensor:
        return spatial_correlation_sample(
            input1,
            input2,
            self.kernel_size,
            self.patch_size,
            self.stride,
            self.padding,
            self.dilation,
            self.dilation_patch,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, patch_size={self.patch_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, dilation_patch={self.dilation_patch}"
        )


def _adapters(backend: str) -> dict[str, object]:
    """Fresh adapter objects bound to ``backend`` (fresh, so nested blocks can tell theirs apart)."""

    def sample(input1, input2, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
        return spatial_correlation_sample(
            input1, input2, kernel_size, patch_size, stride, padding, dilation, dilation_patch, backend=backend
        )

    sample.__name__ = sample.__qualname__ = "spatial_correlation_sample"
    sample.__doc__ = spatial_correlation_sample.__doc__

    class Sampler(SpatialCorrelationSampler):
        def __init__(self, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
            super().__init__(kernel_size, patch_size, stride, padding, dilation, dilation_patch, backend=backend)

    Sampler.__name__ = Sampler.__qualname__ = "SpatialCorrelationSampler"
    return {"spatial_correlation_sample": sample, "SpatialCorrelationSampler": Sampler}


def _is_package_object(value) -> bool:
    """True for the package's module or its two exported names (by where they were defined)."""
    if isinstance(value, types.ModuleType):
        return value.__name__ == PACKAGE or value.__name__.startswith(PACKAGE + ".")
    module = getattr(value, "__module__", None) or ""
    return (module == PACKAGE or module.startswith(PACKAGE + ".")) and getattr(value, "__name__", None) in _NAMES


@contextlib.contextmanager
def patch_spatial_correlation_sampler(*modules, backend: str = "auto") -> Iterator[dict[str, object]]:
    """Run code written against ``spatial_correlation_sampler`` on crossnet_fast inside the block.

    For each given module (a module object or its import name), every module-level name bound to
    the package's ``spatial_correlation_sample`` or ``SpatialCorrelationSampler`` (by any alias,
    e.g. ``from spatial_correlation_sampler import spatial_correlation_sample as corr``) is rebound
    to the adapter, and a name bound to the package module itself (``import
    spatial_correlation_sampler``) to a stand-in module holding the adapters. While the block runs,
    ``import spatial_correlation_sampler`` also gives the stand-in when the package is not
    installed, so a model module imported inside the block loads. On exit (also on an exception)
    every rebound name gets its original object back and the stand-in leaves ``sys.modules``.

    Rebinding changes module globals only: a ``SpatialCorrelationSampler`` instance built before
    the block keeps the package's class (build the model inside the block, or use
    :class:`SpatialCorrelationSampler` directly). The swap is process-wide, like any monkey-patch.

    Args:
        *modules: modules whose globals are rebound (none: only the import stand-in).
        backend: crossnet_fast backend the adapters use.

    Yields:
        dict "module.name" -> the original object that was replaced.
    """
    adapters = _adapters(backend)
    stand_in = types.ModuleType(PACKAGE, "crossnet_fast stand-in for spatial_correlation_sampler")
    stand_in.__dict__.update(adapters)
    resolved = [importlib.import_module(m) if isinstance(m, str) else m for m in modules]
    for m in resolved:
        if not isinstance(m, types.ModuleType):
            raise TypeError(f"patch_spatial_correlation_sampler: expected modules or module names, got {m!r}")
    swapped: list[tuple[types.ModuleType, str, object]] = []
    installed = False
    try:
        for m in resolved:
            for attr, value in list(vars(m).items()):
                if not _is_package_object(value):
                    continue
                replacement = stand_in if isinstance(value, types.ModuleType) else adapters[value.__name__]
                swapped.append((m, attr, value))
                setattr(m, attr, replacement)
        if PACKAGE not in sys.modules:
            sys.modules[PACKAGE] = stand_in
            installed = True
        yield {f"{m.__name__}.{attr}": value for m, attr, value in swapped}
    finally:
        for m, attr, value in reversed(swapped):
            setattr(m, attr, value)
        if installed and sys.modules.get(PACKAGE) is stand_in:
            del sys.modules[PACKAGE]


__all__ = ["spatial_correlation_sample", "SpatialCorrelationSampler", "patch_spatial_correlation_sampler"]
