"""The build plan (which CUDA architectures, if any) and the rebuild digest, without compiling.

Each expected arch list is written out by hand from the rules in docs/BUILD.md, not computed by
build_support; the GPU query is monkeypatched, so these run on any machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import build_support as bs  # noqa: E402
from build_support import BuildConfigError, Toolchain, plan_build  # noqa: E402

NVCC_13_0 = tuple(
    (
        "compute_75 compute_80 compute_86 compute_87 compute_88 compute_89 compute_90 compute_90a "
        "compute_100 compute_100f compute_110 compute_103 compute_120 compute_121"
    ).split()
)
NVCC_12_4 = tuple("compute_50 compute_60 compute_70 compute_75 compute_80 compute_86 compute_89 compute_90".split())
CUDA = Toolchain(torch_cuda="13.0", cuda_home="/usr/local/cuda", nvcc_archs=NVCC_13_0)
NO_GPU = CUDA
H100 = Toolchain(torch_cuda="13.0", cuda_home="/usr/local/cuda", nvcc_archs=NVCC_13_0, gpu_archs=("9.0",))
CPU_TORCH = Toolchain(torch_cuda=None, cuda_home=None)


def test_no_gpu_builds_the_cpu_kernels_only_and_says_how_to_get_cuda():
    plan = plan_build({}, NO_GPU)
    assert not plan.cuda and plan.arch_list is None
    assert "CROSSNET_FAST_CUDA=1" in plan.why and "CROSSNET_FAST_CUDA_ARCHS=all" in plan.why


def test_no_gpu_ignores_a_stray_arch_list_unless_cuda_is_asked_for():
    assert not plan_build({"TORCH_CUDA_ARCH_LIST": "8.6"}, NO_GPU).cuda
    plan = plan_build({"TORCH_CUDA_ARCH_LIST": "8.6", "CROSSNET_FAST_CUDA": "1"}, NO_GPU)
    assert (plan.cuda, plan.arch_list) == (True, "8.6")


def test_no_gpu_with_cuda_switch_builds_turing_and_hopper_with_ptx():
    plan = plan_build({"CROSSNET_FAST_CUDA": "1"}, NO_GPU)
    assert (plan.cuda, plan.arch_list) == (True, "7.5;9.0+PTX")


def test_ci_switches_compile_the_cuda_kernels():
    """.ci/run exports both; CI must keep compiling the kernels on a machine with no GPU."""
    plan = plan_build({"CROSSNET_FAST_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "7.5;9.0+PTX"}, NO_GPU)
    assert (plan.cuda, plan.arch_list) == (True, "7.5;9.0+PTX")


def test_all_archs_for_a_wheel():
    plan = plan_build({"CROSSNET_FAST_CUDA_ARCHS": "all"}, NO_GPU)
    # 8.8 (torch rejects it) and the 9.0a/10.0f feature variants are left out.
    assert plan.arch_list == "7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.3;11.0;12.0;12.1+PTX"
    plan = plan_build({"CROSSNET_FAST_CUDA_ARCHS": "all", "TORCH_CUDA_ARCH_LIST": "9.0"}, H100)
    assert plan.arch_list.startswith("7.5;8.0;") and plan.notes  # overrides, and says so
    assert (
        plan_build({"CROSSNET_FAST_CUDA_ARCHS": "all"}, Toolchain("12.4", "/opt/cuda", NVCC_12_4)).arch_list
        == "7.5;8.0;8.6;8.9;9.0+PTX"
    )


def test_visible_gpus_build_their_archs_plus_ptx():
    assert plan_build({}, H100).arch_list == "9.0+PTX"
    two = Toolchain("13.0", "/usr/local/cuda", NVCC_13_0, gpu_archs=("8.6", "9.0", "8.6"))
    assert plan_build({}, two).arch_list == "8.6;9.0+PTX"


def test_visible_gpu_respects_the_arch_list():
    plan = plan_build({"TORCH_CUDA_ARCH_LIST": "8.0;9.0"}, H100)
    assert (plan.cuda, plan.arch_list) == (True, "8.0;9.0")


def test_gpu_newer_than_the_toolkit_gets_the_newest_buildable_arch_as_ptx():
    blackwell_old_nvcc = Toolchain("12.4", "/opt/cuda", NVCC_12_4, gpu_archs=("12.0",))
    assert plan_build({}, blackwell_old_nvcc).arch_list == "9.0+PTX"
    # 8.8 is listed by nvcc but rejected by torch: the next one below, 8.7.
    assert plan_build({}, Toolchain("13.0", "/c", NVCC_13_0, gpu_archs=("8.8",))).arch_list == "8.7+PTX"


def test_gpu_older_than_anything_buildable():
    volta = Toolchain("13.0", "/usr/local/cuda", NVCC_13_0, gpu_archs=("7.0",))
    plan = plan_build({}, volta)
    assert not plan.cuda and "7.0" in plan.why
    with pytest.raises(BuildConfigError, match="TORCH_CUDA_ARCH_LIST"):
        plan_build({"CROSSNET_FAST_CUDA": "1"}, volta)


def test_cuda_off_switch_wins_over_a_gpu():
    plan = plan_build({"CROSSNET_FAST_CUDA": "0", "TORCH_CUDA_ARCH_LIST": "9.0"}, H100)
    assert not plan.cuda and plan.why == "CROSSNET_FAST_CUDA=0"


def test_missing_toolchain():
    assert not plan_build({}, CPU_TORCH).cuda
    assert "not a CUDA build" in plan_build({}, CPU_TORCH).why
    with pytest.raises(BuildConfigError, match="CROSSNET_FAST_CUDA=1 but torch is not a CUDA build"):
        plan_build({"CROSSNET_FAST_CUDA": "1"}, CPU_TORCH)
    with pytest.raises(BuildConfigError, match="CROSSNET_FAST_CUDA_ARCHS=all but nvcc not found"):
        plan_build({"CROSSNET_FAST_CUDA_ARCHS": "all"}, Toolchain("13.0", None))
    assert not plan_build({}, Toolchain("13.0", "/c", NVCC_13_0, has_cuda_sources=False, gpu_archs=("9.0",))).cuda


@pytest.mark.parametrize(
    "env, name",
    [
        ({"CROSSNET_FAST_CUDA": "yes"}, "CROSSNET_FAST_CUDA"),
        ({"CROSSNET_FAST_CUDA_ARCHS": "9.0"}, "CROSSNET_FAST_CUDA_ARCHS"),
        ({"CROSSNET_FAST_CUDA": "0", "CROSSNET_FAST_CUDA_ARCHS": "all"}, "contradicts"),
    ],
)
def test_bad_switch_values_name_the_switch(env, name):
    with pytest.raises(BuildConfigError, match=name):
        plan_build(env, H100)


def test_probe_uses_the_gpu_query(monkeypatch):
    """probe_toolchain -> plan_build, with the GPU query and nvcc replaced."""
    monkeypatch.setattr(bs, "visible_gpu_archs", lambda: ["8.9"])
    monkeypatch.setattr(bs, "nvcc_archs", lambda cuda_home: list(NVCC_13_0))
    tools = bs.probe_toolchain()
    assert tools.gpu_archs == ("8.9",) and tools.has_cuda_sources
    if tools.torch_cuda and tools.cuda_home:
        assert plan_build({}, tools).arch_list == "8.9+PTX"
    monkeypatch.setattr(bs, "visible_gpu_archs", lambda: [])
    assert bs.probe_toolchain().gpu_archs == ()


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "csrc" / "cpu").mkdir(parents=True)
    (tmp_path / "csrc" / "cpu" / "k.cpp").write_text("int k;\n")
    (tmp_path / "csrc" / "common.h").write_text("#pragma once\n")
    (tmp_path / "setup.py").write_text("# setup\n")
    (tmp_path / "build_support.py").write_text("# support\n")
    (tmp_path / "README.md").write_text("docs\n")
    return tmp_path


def test_digest_changes_with_sources_switches_and_torch_only(tmp_path):
    root = _tree(tmp_path)
    inputs = {"cuda": False, "arch_list": None, "torch": "2.14.1", "python": "3.11"}
    base = bs.build_digest(inputs, root)
    assert bs.build_digest(dict(inputs), root) == base
    (root / "README.md").write_text("other docs\n")  # not an input of the build
    assert bs.build_digest(inputs, root) == base
    for change in ({"cuda": True, "arch_list": "7.5;9.0+PTX"}, {"torch": "2.13.0"}):
        assert bs.build_digest({**inputs, **change}, root) != base
    (root / "csrc" / "cpu" / "k.cpp").write_text("int k2;\n")
    assert bs.build_digest(inputs, root) != base
    (root / "csrc" / "cpu" / "k.cpp").write_text("int k;\n")
    (root / "csrc" / "cpu" / "avx2").mkdir()
    (root / "csrc" / "cpu" / "avx2" / "taps.h").write_text("// new header in a subfolder\n")
    assert bs.build_digest(inputs, root) != base


def test_digest_round_trip(tmp_path):
    assert bs.stored_digest(tmp_path) is None
    bs.write_digest(tmp_path, "ab" * 32, {"torch": "2.14.1"})
    assert bs.stored_digest(tmp_path) == "ab" * 32
    (tmp_path / bs.DIGEST_FILE).write_text("not json")
    assert bs.stored_digest(tmp_path) is None


def test_build_inputs_record_the_plan_and_compiler_env():
    plan = plan_build({"CROSSNET_FAST_CUDA": "1"}, NO_GPU)
    inputs = bs.build_inputs(plan, NO_GPU, {"CXX": "clang++", "MAX_JOBS": "1"})
    assert inputs["cuda"] is True and inputs["arch_list"] == "7.5;9.0+PTX"
    assert inputs["compiler_env"] == {"CXX": "clang++"}  # MAX_JOBS changes speed, not the library


def test_the_loaded_extension_is_the_planned_build():
    """Under scripts/test.sh (and so CI, which sets CROSSNET_FAST_CUDA=1) the loaded extension is the
    build planned now: its stored digest matches, and the CUDA kernels are in it exactly when planned.
    A skipped rebuild can therefore never run the tests on a stale or CPU-only library."""
    import os

    import crossnet_fast as cf

    if os.environ.get("CROSSNET_FAST_REQUIRE_EXT") != "1":
        pytest.skip("checked under scripts/test.sh (CROSSNET_FAST_REQUIRE_EXT=1), after its install")
    plan, _, digest = bs.current()
    assert bs.stored_digest(Path(cf.__file__).parent) == digest
    assert cf.build_info()["cuda"] == plan.cuda
    assert cf.build_info()["cuda_arch_list"] == plan.arch_list
