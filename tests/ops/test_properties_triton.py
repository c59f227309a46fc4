"""The property-based tests of tests/properties.py on the Triton kernels, under the CPU interpreter.

Runs like tests/ops/test_triton.py: ``TRITON_INTERPRET=1 pytest tests/ops/test_properties_triton.py`` runs
the properties in-process; a plain ``pytest tests/`` collects only
:func:`test_properties_under_interpreter`, which re-runs this file in a child process with the
interpreter on (setting it inside a shared session would turn every other Triton user into the
interpreter). The interpreter runs each program in NumPy, so this file draws a fifth of the
examples of the native backends (``TRITON_EXAMPLES``).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given, settings
from test_properties import (
    _charbonnier_overflow,
    _identity_with_inf,
    _inf_at_origin,
    _resize_inf_on_exact_rows,
    _upsample_inf_at_scale_1,
)

import crossnet_fast as cf

from _interpreter import HAS_TRITON, rerun_under_interpreter
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

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
TRITON_EXAMPLES = max(10, settings().max_examples // 5)  # 40 in CI, 1000 with HYPOTHESIS_PROFILE=long

# NumPy warns inside the interpreter on the planted inf/NaN values; the checks judge the results.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)

interpreted = pytest.mark.skipif(
    not (HAS_TRITON and INTERPRET), reason="runs under TRITON_INTERPRET=1 (test_properties_under_interpreter starts it)"
)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
@pytest.mark.skipif(INTERPRET, reason="already running under the interpreter")
def test_properties_under_interpreter():
    out = rerun_under_interpreter(__file__, timeout=1800)
    # All four properties ran (only this driver is skipped in the child).
    assert "4 passed, 1 skipped" in out.splitlines()[-1], out[-2000:]


def _triton_warp(feat, flow, padding):
    return cf.backward_warp(feat, flow, padding, backend="triton")


@interpreted
@settings(max_examples=TRITON_EXAMPLES)
@given(case=warp_case(max_channels=4, max_size=5))
@example(case=_inf_at_origin("border"))
@example(case=_inf_at_origin("zeros"))
@example(case=_identity_with_inf())
def test_triton_backward_warp_matches_grid_sample(case):
    check_warp(case, _triton_warp)


@interpreted
@settings(max_examples=TRITON_EXAMPLES)
@given(case=upsample_case())
@example(case=_upsample_inf_at_scale_1())
def test_triton_upsample_flow_matches_interpolate(case):
    check_upsample(case, lambda f, s: cf.upsample_flow(f, s, backend="triton"))


@interpreted
@settings(max_examples=TRITON_EXAMPLES)
@given(case=resize_case())
@example(case=_resize_inf_on_exact_rows())
def test_triton_resize_flow_matches_interpolate(case):
    check_resize(case, lambda f, size, a: cf.resize_flow(f, size, align_corners=a, backend="triton"))


@interpreted
@settings(max_examples=TRITON_EXAMPLES)
@given(case=loss_case())
@example(case=_charbonnier_overflow())
def test_triton_charbonnier_matches_formula(case):
    check_charbonnier(case, lambda p, t, e, r: cf.charbonnier(p, t, e, r, backend="triton"))
