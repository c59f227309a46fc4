"""Running a Triton test file on the interpreter in a child process (see tests/ops/test_triton.py).

A test module calls :func:`in_process` to learn whether its tests run here, defines
``test_suite_under_interpreter`` as ``lambda: rerun_under_interpreter(__file__)`` (skipped when
in-process) and, when not in-process, deletes its other tests with :func:`keep_only_rerun`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

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


def keep_only_rerun(namespace: dict) -> None:
    """Delete every test but test_suite_under_interpreter from a module's globals."""
    for name in [n for n in list(namespace) if n.startswith("test_") and n != "test_suite_under_interpreter"]:
        del namespace[name]
