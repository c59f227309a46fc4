"""Correctly rounded division and square root for the Triton kernels, and the launch options of
every kernel that must round like the CPU kernels (issue 24, items 1, 2 and 5).

On sm_90 Triton compiles fp32 ``a / b`` to ``div.full.f32`` (up to 2 ulp off) and ``tl.sqrt`` to
``sqrt.approx.ftz.f32``, and, with fp fusion on (the default), contracts ``a * b + c`` into one
``fma``. The CPU kernels divide and take square roots correctly rounded and are built with
``-ffp-contract=off``. Where a sample point lands exactly on a pixel, a 1-ulp difference in its
coordinate moves it to the other pair of taps; so the coordinate and Charbonnier kernels divide
with :func:`div`, take roots with :func:`sqrt`, and are launched with :data:`LAUNCH_OPTIONS`.
fp64 division and square root are correctly rounded already (``div.rn.f64``, ``sqrt.rn.f64``).
The interpreter rounds every operation on its own in any case.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Launch keyword arguments of the kernels that compute sample coordinates (grid_sample,
# resize_flow, upsample_flow) or the Charbonnier term: no fused multiply-adds, products and sums
# rounded one at a time as on the CPU. scripts/triton_compile_check.py compiles them with these.
LAUNCH_OPTIONS = dict(enable_fp_fusion=False)


@triton.jit
def div(a, b, ACC: tl.constexpr):
    """a / b correctly rounded in ACC (fp32 or fp64); a and b are converted to ACC first."""
    if ACC == tl.float64:
        return tl.cast(a, ACC) / tl.cast(b, ACC)
    else:
        return tl.div_rn(tl.cast(a, ACC), tl.cast(b, ACC))


@triton.jit
def sqrt(x, ACC: tl.constexpr):
    """Square root of x (ACC) correctly rounded, subnormals kept (tl.sqrt is approximate and flushes
    them to zero in fp32)."""
    if ACC == tl.float64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)
