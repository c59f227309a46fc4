"""CI runs Triton's real compiler on every kernel variant (no GPU needed): scripts/triton_compile_check.py.

Each variant the launchers can request (dtype, layout, padding, gradient flags, every timed
configuration, and the specialisations for integer arguments equal to 1) is compiled to PTX and
through ptxas for sm_90; any compile error, a channels_last kernel without vector accesses, or a
register spill above MAX_SPILL bytes fails the test (issue 10, items 5 and 9).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Spill stores + loads per thread allowed in any variant (Triton 3.8, sm_90). Largest today: 88 B
# (fp16 NCHW forward, where ptxas keeps 64 registers); before the fixes of issue 10 item 5: 1,876 B
# (fp64 channels_last backward) and ~1 KB (NCHW backward with two pixels per thread).
MAX_SPILL = 96


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_every_triton_variant_compiles_for_sm90_within_the_spill_limit():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "triton_compile_check.py"), "--max-spill", str(MAX_SPILL)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "all compiled (0 failures)" in proc.stdout
