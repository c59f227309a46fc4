"""Running a Triton test file on the interpreter in a child process (see tests/ops/test_triton.py).

A test module calls :func:`in_process` to learn whether its tests run here, defines
``test_suite_under_interpreter = suite_under_interpreter(__file__, IN_PROCESS)`` (skipped when
in-process; it re-runs the file through :func:`rerun_under_interpreter`) and, when not in-process,
deletes its other tests with :func:`keep_only_rerun`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_TRITON = importlib.util.find_spec("triton") is not None


def in_process(module: str, kernel: str) -> bool:
    """True when TRITON_INTERPRET is set and ``module.kernel`` is not already compiled."""
    if not HAS_TRITON or os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        return False
    mod = sys.modules.get(module)
    return mod is None or type(getattr(mod, kernel)).__name__ == "InterpretedFunction"


def rerun_under_interpreter(path: str, timeout: int = 900) -> str:
    """Run pytest on ``path`` with TRITON_INTERPRET=1 in a child; fail with its output if it fails.

    Returns the child's standard output (a caller may check what ran)."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    tests = os.path.join(ROOT, "tests")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, tests, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", os.path.abspath(path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"Triton interpreter tests failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def suite_under_interpreter(
    path: str, in_process: bool, *, slow: bool = True, require_passed: bool = False
) -> Callable[[], None]:
    """The test ``test_suite_under_interpreter`` of the file ``path``: it re-runs that file in a child.

    Skipped without Triton and when ``in_process`` (the file's tests run here already). ``slow``
    adds the ``slow`` marker; ``require_passed`` also fails when the child passed no test at all
    (every test skipped)."""

    @pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
    @pytest.mark.skipif(in_process, reason="already running under the interpreter")
    def test_suite_under_interpreter():
        out = rerun_under_interpreter(path)
        if require_passed:
            assert " passed" in out, out[-2000:]

    return pytest.mark.slow(test_suite_under_interpreter) if slow else test_suite_under_interpreter


def keep_only_rerun(namespace: dict) -> None:
    """Delete every test but test_suite_under_interpreter from a module's globals."""
    for name in [n for n in list(namespace) if n.startswith("test_") and n != "test_suite_under_interpreter"]:
        del namespace[name]
