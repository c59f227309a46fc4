"""Build planning for setup.py, kept apart so that tests import it without building (docs/BUILD.md).

Two questions, answered without compiling anything:

- ``plan_build``: compile the CUDA kernels, and for which architectures? A pure function of the
  environment switches and a ``Toolchain`` (what torch, nvcc and the visible GPUs offer), so that
  tests can pose any machine.
- ``build_digest``: did anything that goes into ``crossnet_fast._C`` change since the last build?
  A SHA-256 over the C++/CUDA sources, the build scripts, the plan and the torch/Python versions.
  setup.py stores it beside the built library (``_C.digest.json``); ``scripts/install.sh`` runs
  ``python build_support.py up-to-date`` and skips the rebuild when it matches.

Switches (environment variables):
  CROSSNET_FAST_CUDA=0        CPU kernels only.
  CROSSNET_FAST_CUDA=1        compile the CUDA kernels even with no GPU visible (default
                              architectures 7.5;9.0+PTX); a missing CUDA toolchain is an error.
  CROSSNET_FAST_CUDA_ARCHS=all  every architecture nvcc supports and torch accepts, newest + PTX
                              (for a wheel to deploy elsewhere); overrides TORCH_CUDA_ARCH_LIST.
  TORCH_CUDA_ARCH_LIST        the architectures, as given, whenever the CUDA kernels are compiled.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# Architectures torch's cpp_extension accepts in TORCH_CUDA_ARCH_LIST (2.14; it rejects others, such
# as 8.8, that nvcc 13.0 lists).
TORCH_KNOWN_ARCHS = {75, 80, 86, 87, 89, 90, 100, 103, 107, 110, 120, 121}
# With no GPU visible and CROSSNET_FAST_CUDA=1: Turing, the oldest architecture supported (what an
# sm_80-only construct would break), and Hopper with PTX, which newer GPUs JIT-compile.
NO_GPU_ARCHS = "7.5;9.0+PTX"
# Files outside csrc/ whose content changes the compiled library.
BUILD_SCRIPTS = ("setup.py", "build_support.py")
SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cu", ".cuh")
# Compiler environment variables that change the object code (not MAX_JOBS: it only changes speed).
COMPILER_ENV = ("CC", "CXX", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "NVCC_FLAGS")
DIGEST_FILE = "_C.digest.json"


class BuildConfigError(RuntimeError):
    """The switches ask for something this machine cannot build (the message says what and why)."""


@dataclass(frozen=True)
class Toolchain:
    """What the machine offers for a CUDA build.

    torch_cuda: CUDA version torch was built with (``torch.version.cuda``), None for a CPU build.
    cuda_home: where nvcc lives, None when not found.
    nvcc_archs: ``nvcc --list-gpu-arch`` output (``compute_75`` ...); empty when unknown.
    has_cuda_sources: csrc/cuda/*.cu exist.
    gpu_archs: compute capabilities of the visible GPUs as ``"9.0"`` strings; empty with none.
    """

    torch_cuda: str | None
    cuda_home: str | None
    nvcc_archs: tuple[str, ...] = ()
    has_cuda_sources: bool = True
    gpu_archs: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildPlan:
    """cuda: compile the CUDA kernels; arch_list: TORCH_CUDA_ARCH_LIST for them (None without);
    why: one line for the build log and ``build_info()``."""

    cuda: bool
    arch_list: str | None
    why: str
    notes: tuple[str, ...] = field(default=())


def _cap(arch: str) -> int:
    """``"9.0"`` / ``"9.0+PTX"`` / ``"compute_90"`` -> 90."""
    arch = arch.split("+")[0].strip()
    if arch.startswith("compute_") or arch.startswith("sm_"):
        return int(arch.split("_")[1])
    major, minor = arch.split(".")
    return int(major) * 10 + int(minor)


def _name(cap: int) -> str:
    return f"{cap // 10}.{cap % 10}"


def buildable_caps(nvcc_archs) -> list[int]:
    """Plain architectures (not the ``a``/``f`` feature variants) from 7.5 up that nvcc lists and
    torch accepts, ascending."""
    return sorted(
        {
            int(a.split("_")[1])
            for a in nvcc_archs
            if a.startswith("compute_") and a.split("_")[1].isdigit() and int(a.split("_")[1]) in TORCH_KNOWN_ARCHS
        }
    )


def default_arch_list(nvcc_archs) -> str:
    """TORCH_CUDA_ARCH_LIST for CROSSNET_FAST_CUDA_ARCHS=all: every architecture in
    ``buildable_caps(nvcc_archs)``, the newest also as PTX (nvcc 13.0:
    7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.3;11.0;12.0;12.1+PTX)."""
    caps = buildable_caps(nvcc_archs)
    if not caps:
        return "7.5;8.0;9.0+PTX"
    names = [_name(c) for c in caps]
    return ";".join(names[:-1] + [names[-1] + "+PTX"])


def gpu_arch_list(gpu_archs, nvcc_archs) -> str | None:
    """TORCH_CUDA_ARCH_LIST for the visible GPUs: each one's architecture, the newest also as PTX.
    A GPU newer than the toolkit gets the newest architecture below it that can be built (its PTX
    is JIT-compiled by the driver). None when a GPU is older than anything that can be built."""
    known = buildable_caps(nvcc_archs) or sorted(TORCH_KNOWN_ARCHS)
    caps = set()
    for arch in gpu_archs:
        cap = _cap(arch)
        below = [c for c in known if c <= cap]
        if not below:
            return None
        caps.add(cap if cap in known else below[-1])
    names = [_name(c) for c in sorted(caps)]
    return ";".join(names[:-1] + [names[-1] + "+PTX"])


def plan_build(env, tools: Toolchain) -> BuildPlan:
    """Decide what to compile. ``env``: the environment (a mapping); ``tools``: the machine.

    Raises BuildConfigError when a switch asks for CUDA kernels that cannot be built, or when a
    switch has a value it does not know.
    """
    switch = env.get("CROSSNET_FAST_CUDA", "").strip()
    archs = env.get("CROSSNET_FAST_CUDA_ARCHS", "").strip()
    given = env.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if switch not in ("", "0", "1"):
        raise BuildConfigError(f"CROSSNET_FAST_CUDA must be 0, 1 or unset, got {switch!r}")
    if archs not in ("", "all"):
        raise BuildConfigError(
            f"CROSSNET_FAST_CUDA_ARCHS must be 'all' or unset, got {archs!r} "
            "(name architectures with TORCH_CUDA_ARCH_LIST)"
        )
    if switch == "0":
        if archs:
            raise BuildConfigError("CROSSNET_FAST_CUDA=0 contradicts CROSSNET_FAST_CUDA_ARCHS=all")
        return BuildPlan(False, None, "CROSSNET_FAST_CUDA=0")

    problems = []
    if tools.torch_cuda is None:
        problems.append("torch is not a CUDA build")
    if tools.cuda_home is None:
        problems.append("nvcc not found (set CUDA_HOME)")
    if not tools.has_cuda_sources:
        problems.append("no CUDA sources in csrc/cuda")
    if problems:
        if switch == "1" or archs:
            asked = "CROSSNET_FAST_CUDA=1" if switch == "1" else "CROSSNET_FAST_CUDA_ARCHS=all"
            raise BuildConfigError(f"{asked} but " + "; ".join(problems))
        return BuildPlan(False, None, "; ".join(problems))

    toolkit = f"torch CUDA {tools.torch_cuda}, nvcc in {tools.cuda_home}"
    if archs == "all":
        notes = (f"CROSSNET_FAST_CUDA_ARCHS=all overrides TORCH_CUDA_ARCH_LIST={given}",) if given else ()
        return BuildPlan(
            True,
            default_arch_list(tools.nvcc_archs),
            f"CROSSNET_FAST_CUDA_ARCHS=all: every architecture nvcc supports; {toolkit}",
            notes,
        )
    if given:
        if tools.gpu_archs or switch == "1":
            return BuildPlan(True, given, f"TORCH_CUDA_ARCH_LIST as given; {toolkit}")
        return BuildPlan(
            False,
            None,
            f"no GPU visible (CROSSNET_FAST_CUDA=1 compiles the CUDA kernels for "
            f"TORCH_CUDA_ARCH_LIST={given}; docs/BUILD.md)",
        )
    if tools.gpu_archs:
        arch_list = gpu_arch_list(tools.gpu_archs, tools.nvcc_archs)
        if arch_list is None:
            reason = f"visible GPU(s) sm {', '.join(tools.gpu_archs)} older than any architecture nvcc can build"
            if switch == "1":
                raise BuildConfigError(f"CROSSNET_FAST_CUDA=1 but {reason}; set TORCH_CUDA_ARCH_LIST")
            return BuildPlan(False, None, reason)
        return BuildPlan(True, arch_list, f"visible GPU(s) {', '.join(tools.gpu_archs)}; {toolkit}")
    if switch == "1":
        return BuildPlan(True, NO_GPU_ARCHS, f"CROSSNET_FAST_CUDA=1, no GPU visible: default architectures; {toolkit}")
    return BuildPlan(
        False,
        None,
        "no GPU visible (CROSSNET_FAST_CUDA=1 or CROSSNET_FAST_CUDA_ARCHS=all "
        "compiles the CUDA kernels anyway; docs/BUILD.md)",
    )


def nvcc_archs(cuda_home) -> list[str]:
    """What ``nvcc --list-gpu-arch`` prints (``compute_75`` ...), or [] when it cannot run."""
    nvcc = os.path.join(cuda_home or "", "bin", "nvcc")
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return out.split()


def visible_gpu_archs() -> list[str]:
    """Compute capabilities (``"9.0"``) of the GPUs torch sees, [] with none (or no CUDA torch)."""
    import torch

    try:
        if torch.version.cuda is None or not torch.cuda.is_available():
            return []
        return [
            _name(10 * a + b)
            for a, b in (torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count()))
        ]
    except Exception:  # a broken driver: no GPU for the build's purposes
        return []


def probe_toolchain(root: Path = ROOT) -> Toolchain:
    """The Toolchain of this machine (imports torch; runs nvcc only when a CUDA build is possible)."""
    import torch
    from torch.utils import cpp_extension

    cuda_home = cpp_extension.CUDA_HOME
    return Toolchain(
        torch_cuda=torch.version.cuda,
        cuda_home=cuda_home,
        nvcc_archs=tuple(nvcc_archs(cuda_home)) if cuda_home and torch.version.cuda else (),
        has_cuda_sources=any((Path(root) / "csrc" / "cuda").glob("*.cu")),
        gpu_archs=tuple(visible_gpu_archs()),
    )


def _digest_files(root: Path) -> list[Path]:
    files = [p for p in (Path(root) / "csrc").rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES]
    files += [Path(root) / name for name in BUILD_SCRIPTS]
    return sorted(files)


def build_inputs(plan: BuildPlan, tools: Toolchain, env) -> dict:
    """Everything besides the sources that changes the built library: the plan, torch, Python,
    the platform and the compiler's environment."""
    import torch

    return {
        "cuda": plan.cuda,
        "arch_list": plan.arch_list,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "platform": f"{sys.platform}-{platform.machine()}",
        "cuda_home": tools.cuda_home if plan.cuda else None,
        "compiler_env": {k: env[k] for k in COMPILER_ENV if env.get(k)},
    }


def build_digest(inputs: dict, root: Path = ROOT) -> str:
    """SHA-256 (hex) over the sources under csrc/, setup.py, build_support.py and ``inputs``."""
    h = hashlib.sha256()
    for path in _digest_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    h.update(json.dumps(inputs, sort_keys=True).encode())
    return h.hexdigest()


def write_digest(directory, digest: str, inputs: dict) -> Path:
    """Store the digest beside the built library (after a successful build only)."""
    path = Path(directory) / DIGEST_FILE
    path.write_text(json.dumps({"digest": digest, "inputs": inputs}, indent=1, sort_keys=True) + "\n")
    return path


def stored_digest(directory) -> str | None:
    try:
        return json.loads((Path(directory) / DIGEST_FILE).read_text())["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def current(env=None, root: Path = ROOT) -> tuple[BuildPlan, dict, str]:
    """(plan, inputs, digest) for a build on this machine now."""
    env = os.environ if env is None else env
    tools = probe_toolchain(root)
    plan = plan_build(env, tools)
    inputs = build_inputs(plan, tools, env)
    return plan, inputs, build_digest(inputs, root)


def _up_to_date(root: Path = ROOT) -> int:
    """CLI: exit 0 when the in-place library's digest matches a build now, else 1 (says why)."""
    try:
        plan, _, digest = current(root=root)
    except BuildConfigError as exc:
        print(f"crossnet_fast build: needs a build ({exc})")
        return 1
    package = Path(root) / "crossnet_fast"
    if not list(package.glob("_C*.so")) and not list(package.glob("_C*.pyd")):
        print("crossnet_fast build: needs a build (no built extension in crossnet_fast/)")
        return 1
    stored = stored_digest(package)
    if stored != digest:
        why = "no digest stored" if stored is None else "sources, switches or torch changed"
        print(f"crossnet_fast build: needs a build ({why}; CUDA kernels {'ON' if plan.cuda else 'OFF'}: {plan.why})")
        return 1
    print(
        f"crossnet_fast build: up to date (digest {digest[:12]}; CUDA kernels "
        f"{'ON ' + str(plan.arch_list) if plan.cuda else 'OFF'}: {plan.why})"
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["up-to-date"]:
        sys.exit(_up_to_date())
    if sys.argv[1:] == ["plan"]:
        p = plan_build(os.environ, probe_toolchain())
        print(f"CUDA kernels {'ON' if p.cuda else 'OFF'} ({p.why}); arch list {p.arch_list}")
        sys.exit(0)
    sys.exit("usage: python build_support.py up-to-date | plan")
