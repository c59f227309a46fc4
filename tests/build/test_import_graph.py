"""The package's imports flow one way: no import circle, and every module imports on its own.

The graph is read from the source (``ast``): an edge ``a -> b`` for every ``import`` of a package
module in ``a``, at module level or deferred inside a function. A circle at module level breaks
imports in some orders; a circle through a deferred import (the trick that once tied
``checkpoint.py`` and ``models/crossnet.py``) still ties the two layers together, so neither is
allowed. Then each module is imported alone in a fresh interpreter, which catches an import that
only works because another module happened to be imported first.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "crossnet_fast"
# Modules made by the build, not present as source: crossnet_fast/_C*.so and _build_info.py.
BUILT = {f"{PACKAGE}._C", f"{PACKAGE}._build_info"}


def _modules(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """{dotted name: (file, is_package)} of every .py file of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def import_graph(root: Path, package: str, extra_modules=()) -> dict[str, dict[str, bool]]:
    """{module: {imported package module: deferred}}; ``deferred`` is True when every import of it
    in that module sits inside a function or class body (run later, not when the module loads).

    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``. Imports under
    ``if TYPE_CHECKING:`` never run and are left out.
    """
    mods = _modules(root, package)
    known = set(mods) | set(extra_modules)
    graph: dict[str, dict[str, bool]] = {m: {} for m in mods}

    def add(src: str, dst: str, deferred: bool) -> None:
        if dst != src and (dst == package or dst.startswith(package + ".")):
            graph[src][dst] = graph[src].get(dst, True) and deferred

    for name, (path, is_pkg) in mods.items():
        here = name.split(".") if is_pkg else name.split(".")[:-1]

        def visit(node: ast.AST, deferred: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                    visit(child, True)
                elif isinstance(child, ast.If) and _is_type_checking(child.test):
                    for other in child.orelse:
                        visit(ast.Module(body=[other], type_ignores=[]), deferred)
                elif isinstance(child, ast.Import):
                    for alias in child.names:
                        add(name, alias.name, deferred)
                elif isinstance(child, ast.ImportFrom):
                    base = here[: len(here) - child.level + 1] if child.level else []
                    target = ".".join(base + ([child.module] if child.module else []))
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        add(name, sub if sub in known else target, deferred)
                else:
                    visit(child, deferred)

        visit(ast.parse(path.read_text(), str(path)), False)
    return graph


def find_cycle(graph: dict[str, dict[str, bool]], module_level_only: bool) -> list[str] | None:
    """One circle ``[a, b, ..., a]`` of the graph (only its module-level edges if asked), or None."""
    edges = {
        m: sorted(d for d, deferred in ds.items() if not (module_level_only and deferred)) for m, ds in graph.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(m: str):
        state[m] = 1
        path.append(m)
        for d in edges.get(m, ()):
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if d not in state:
                found = walk(d)
                if found:
                    return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(edges):
        if m not in state:
            found = walk(m)
            if found:
                return found
    return None


def _describe(graph, cycle: list[str]) -> str:
    steps = [
        f"{a} -> {b}" + (" (deferred, inside a function)" if graph[a][b] else "") for a, b in zip(cycle, cycle[1:])
    ]
    return "import circle: " + "; ".join(steps)


# -- the detector itself finds circles (so the package tests below can fail) ------------------------


def _write_package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_the_detector_finds_module_level_and_deferred_circles(tmp_path):
    _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from .low import f\n",
            "pkg/low.py": "import os\n\ndef f():\n    from .high import g  # deferred, back up\n    return g\n",
            "pkg/high.py": "from . import low\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from .top import T\n\ndef g():\n    return low\n",
            "pkg/top.py": "from .high import g\n",
            "pkg/sub/__init__.py": "from ..low import f\nfrom .. import high\n",
        },
    )
    g = import_graph(tmp_path, "pkg")
    assert g["pkg"] == {"pkg.low": False}
    assert g["pkg.low"] == {"pkg.high": True}
    assert g["pkg.high"] == {"pkg.low": False}  # the TYPE_CHECKING import is left out
    assert g["pkg.sub"] == {"pkg.low": False, "pkg.high": False}
    assert find_cycle(g, module_level_only=True) is None
    assert find_cycle(g, module_level_only=False) == ["pkg.low", "pkg.high", "pkg.low"]
    _write_package(tmp_path, {"pkg/low.py": "from .top import g\n"})
    g = import_graph(tmp_path, "pkg")
    assert find_cycle(g, module_level_only=True) == ["pkg.low", "pkg.top", "pkg.high", "pkg.low"]


# -- the package -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT, PACKAGE, BUILT)


def test_no_module_level_import_circle(graph):
    cycle = find_cycle(graph, module_level_only=True)
    assert cycle is None, _describe(graph, cycle)


def test_no_import_circle_through_deferred_imports(graph):
    cycle = find_cycle(graph, module_level_only=False)
    assert cycle is None, _describe(graph, cycle)


def _reached_from(graph, prefix: str) -> set[str]:
    """Every module imported, directly or through others, by the modules named ``prefix``*."""
    seen, todo = set(), [m for m in graph if m == prefix or m.startswith(prefix + ".")]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, {})
    return seen


def test_models_never_reach_checkpoints_or_training(graph):
    """The model files sit below what saves them (checkpoint.py) and what trains them (train/)."""
    seen = _reached_from(graph, f"{PACKAGE}.models")
    above = sorted(m for m in seen if m == f"{PACKAGE}.checkpoint" or m.startswith(f"{PACKAGE}.train"))
    assert not above, f"crossnet_fast.models imports (perhaps indirectly) {above}"


def test_models_do_not_import_baselines(graph):
    """The baselines are what the model is compared with: the model must not depend on them (the
    PatchMatch search both use lives in crossnet_fast/matching/)."""
    seen = _reached_from(graph, f"{PACKAGE}.models")
    below = sorted(m for m in seen if m == f"{PACKAGE}.baselines" or m.startswith(f"{PACKAGE}.baselines."))
    assert not below, f"crossnet_fast.models imports (perhaps indirectly) {below}"


def test_the_baselines_rule_catches_a_model_that_imports_a_baseline(tmp_path):
    _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/models/__init__.py": "from .net import Net\n",
            "pkg/models/net.py": "def Net():\n    from ..baselines.pm import search  # deferred still counts\n",
            "pkg/baselines/__init__.py": "",
            "pkg/baselines/pm.py": "def search():\n    pass\n",
        },
    )
    assert "pkg.baselines.pm" in _reached_from(import_graph(tmp_path, "pkg"), "pkg.models")


# Imported in one child process that forks a fresh copy of itself per module: the third-party
# libraries are loaded once (so the check costs seconds, not minutes), and no crossnet_fast module
# is loaded before the fork.
_CHILD = r"""
import importlib, json, os, sys, traceback
import numpy, torch, safetensors.torch  # third-party only
for optional in ("triton", "torchvision", "PIL.Image"):
    try:
        importlib.import_module(optional)
    except ImportError:
        pass
assert not [m for m in sys.modules if m.split(".")[0] == "crossnet_fast"]
results = {}
for name in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            msg = ""
        except ModuleNotFoundError as exc:
            own = (exc.name or "").split(".")[0] == "crossnet_fast"
            msg = traceback.format_exc() if own else "optional:" + str(exc.name)
        except BaseException:
            msg = traceback.format_exc()
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    results[name] = out
print(json.dumps(results))
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the isolation check forks (POSIX)")
def test_every_module_imports_alone_in_a_fresh_interpreter(graph):
    names = sorted(m for m in graph if not m.endswith("__main__"))  # __main__ runs the CLI
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(names)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(results) == names
    failed = {m: msg for m, msg in results.items() if msg and not msg.startswith("optional:")}
    assert not failed, "\n\n".join(f"{m}:\n{msg}" for m, msg in failed.items())
    # An optional third-party library may be missing (RAFT from torchvision, ...): those modules
    # are skipped here, never a module of this package.
    optional = {m: msg for m, msg in results.items() if msg.startswith("optional:")}
    assert len(optional) < len(names) // 4, optional
