#!/usr/bin/env python
"""Compile every Triton kernel variant for a GPU target without a GPU (CI on CPU machines).

The interpreter tests (tests/ops/test_triton.py) check what the kernels compute; they cannot see
compiled-mode failures (type errors the interpreter tolerates, layout conversions, ptxas). This
script runs Triton's real compiler (TTIR -> TTGIR -> LLVM -> PTX -> cubin with the bundled ptxas)
for sm_90 on every dtype/padding/layout/flag combination the launchers can request, and checks
that the channels_last warp kernels use 128-bit vector loads and vector atomics (the point of
the alignment hints). Triton specialises an integer argument equal to 1 into a constant (one
scale, scale 1, one channel, one tile): those variants are compiled too. Each variant's PTX goes
through Triton's bundled ptxas with -v: registers and spill bytes per thread are reported, and a
variant that spills more than --max-spill bytes fails. The kernels that compute sample coordinates
or the Charbonnier term are compiled with their launchers' options (``_rounding.LAUNCH_OPTIONS``:
no fp fusion) and must round like the CPU: no ``fma``, ``div.full``/``div.approx`` or
``sqrt.approx`` in their PTX (issue 24). Needs no GPU and no CUDA driver; CI runs it
(tests/ops/test_triton_compile.py).

    python scripts/triton_compile_check.py [--arch 90] [--quick] [--max-spill 0] [--only correlation]

Uses ``triton.compiler.ASTSource`` (an internal API, stable across Triton 3.2-3.8); exit status 0
when all variants compile, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("triton_compile_check: unset TRITON_INTERPRET (this compiles the kernels)")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from crossnet_fast.triton import charbonnier as CH  # noqa: E402
from crossnet_fast.triton import correlation as CO  # noqa: E402
from crossnet_fast.triton import grid_sample as GS  # noqa: E402
from crossnet_fast.triton import multiscale_warp as MW  # noqa: E402
from crossnet_fast.triton import resize_flow as RS  # noqa: E402
from crossnet_fast.triton import upsample_flow as UP  # noqa: E402
from crossnet_fast.triton._rounding import LAUNCH_OPTIONS  # noqa: E402

# Kernels launched with LAUNCH_OPTIONS, whose PTX must not contain an approximate operation.
EXACT_KERNELS = (
    GS._grid_sample_fwd_kernel,
    GS._grid_sample_bwd_kernel,
    RS._resize_fwd_kernel,
    RS._resize_bwd_kernel,
    UP._upsample_fwd_kernel,
    UP._upsample_bwd_kernel,
    CH._charbonnier_kernel,
    CH._finish_kernel,
    CH._charbonnier_bwd_kernel,
)
APPROXIMATE = re.compile(r"\b(fma\.\w+|div\.full\.\w+|div\.approx\.\w+|sqrt\.approx\.\w+)")

ACC = {"fp64": tl.float64}
I32 = (
    "C",
    "H",
    "W",
    "s_n",
    "s_c",
    "s_h",
    "s_w",
    "g_n",
    "g_c",
    "g_h",
    "g_w",
    "scale",
    "S",
    "count",
    "numel",
    "tiles",
    "P",
    "HWo",
    "Wo",
    "q_n",
    "q_h",
    "q_w",
    "q_k",
    "r_n",
    "r_h",
    "r_w",
    "r_k",
    "HO",
    "WO",
    "FOOT_Y",
    "FOOT_X",
    # correlation: sizes, window, and the strides of f1 (a_), f2 (b_), grad_out (g_) and a gradient (o_)
    "Ho",
    "D",
    "DIL",
    "STRIDE",
    "ctiles",
    "g_k",
    "a_n",
    "a_c",
    "a_h",
    "a_w",
    "b_n",
    "b_c",
    "b_h",
    "b_w",
    "o_n",
    "o_c",
    "o_h",
    "o_w",
)
# Integer arguments that can be 1 at run time (Triton then compiles them as the constant 1).
CAN_BE_ONE = ("S", "scale", "C", "tiles", "count", "numel")
# upsample_flow: a one-row or one-column flow.
UPSAMPLE_ONES = ("H", "W", "s_w", "g_w")
# resize_flow: every size can be 1 (a one-row flow, a one-column output), and so can a footprint.
RESIZE_ONES = (("C", "tiles", "H", "W", "HO", "WO", "s_w", "g_w"), ("FOOT_Y", "FOOT_X", "s_w", "g_w"))
# grid_sample: the usual case has unit last strides (contiguous input, grad_out and grid); any
# size can be 1 too. Each tuple is one more compiled variant of every grid_sample kernel.
GS_ONES = (("s_w", "g_w", "q_k", "r_k"), ("P", "C", "H", "W", "HWo", "Wo", "s_w", "g_w", "q_k", "r_k"))
# correlation: one channel, dilation 1, stride 1, one tile and unit last strides (the usual
# NCHW case); then a one-pixel-wide window (D = 1) on a one-row, one-column image.
CORR_ONES = (
    ("C", "DIL", "STRIDE", "tiles", "ctiles", "a_w", "b_w", "g_w", "o_w"),
    ("H", "W", "Ho", "Wo", "D", "a_w", "b_w", "g_w", "o_w"),
)


def compile_one(fn, pointer_types, consts, target, num_warps=4, ones=(), options=None):
    """Compile ``fn`` with pointer args typed as given (16-byte aligned, as Triton specialises
    them at run time), int args i32 (those named in ``ones`` as the constant 1), float args fp32,
    and the launch ``options`` (e.g. enable_fp_fusion); returns the compiled kernel."""
    names = fn.arg_names
    consts = dict(consts, **{k: 1 for k in ones if k in names})
    signature, attrs = {}, {}
    for i, name in enumerate(names):
        if name in consts:
            signature[name] = "constexpr"
        elif name in pointer_types:
            signature[name] = "*" + pointer_types[name]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name in I32:
            signature[name] = "i32"
        else:
            signature[name] = "fp32"
    src = ASTSource(fn, signature=signature, constexprs={(names.index(k),): v for k, v in consts.items()}, attrs=attrs)
    return triton.compile(src, target=target, options={"num_warps": num_warps, **(options or {})})


TORCH_DTYPE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}


def variants(quick):
    """(name, kernel, pointer dtypes, constexprs, num_warps, expect_vector) for every variant:
    every warp configuration the launcher may time (all of them for wide channel counts; --quick:
    the first), every dtype (--quick: fp32 and bf16), layout, padding and gradient flag."""
    dtypes = ["fp32", "bf16"] if quick else ["fp32", "fp16", "bf16", "fp64"]
    for dt in dtypes:
        acc = ACC.get(dt, tl.float32)
        buf = "fp64" if dt == "fp64" else "fp32"
        for cl in (False, True):
            configs = MW._configs(1 << 12, cl, TORCH_DTYPE[dt])
            align = 4 if cl and dt != "fp64" else 1
            for (bp, bc, nw), border in itertools.product(
                [(c["BLOCK_P"], c["BLOCK_C"], c["num_warps"]) for c in configs[: 1 if quick else None]], (False, True)
            ):
                common = dict(BORDER=border, CL=cl, ACC=acc, ALIGN=align, BLOCK_P=bp, BLOCK_C=bc)
                tag = f"{dt} {'cl' if cl else 'nchw'} {'border' if border else 'zeros'} {bp}x{bc}/{nw}"
                yield (
                    f"warp fwd {tag}",
                    MW._warp_fwd_kernel,
                    dict(feat_base=dt, flow_base="fp32", out_base=dt, meta_ptr="i64"),
                    common,
                    nw,
                    cl and dt == "fp32",
                )
                for nf, nv in ((True, True), (True, False), (False, True)):
                    yield (
                        f"warp bwd {tag} feat={nf} flow={nv}",
                        MW._warp_bwd_kernel,
                        dict(
                            gout_base=dt,
                            feat_base=dt,
                            flow_base="fp32",
                            gfeat_base=buf,
                            gflow_base="fp32",
                            meta_ptr="i64",
                        ),
                        dict(common, NEED_FEAT=nf, NEED_FLOW=nv),
                        nw,
                        cl and dt == "fp32" and nf,
                    )
        yield (
            f"upsample fwd {dt}",
            UP._upsample_fwd_kernel,
            dict(in_ptr=dt, out_ptr=dt),
            dict(ACC=acc, BLOCK=UP._BLOCKS[0][0]),
            UP._BLOCKS[0][1],
            False,
        )
        yield (
            f"upsample bwd {dt}",
            UP._upsample_bwd_kernel,
            dict(gout_ptr=dt, gin_ptr=dt),
            dict(ACC=acc, BLOCK=UP._BLOCKS[0][0]),
            UP._BLOCKS[0][1],
            False,
        )
        for align in (False, True):
            yield (
                f"resize fwd {dt} align={align}",
                RS._resize_fwd_kernel,
                dict(in_ptr=dt, out_ptr=dt),
                dict(ALIGN=align, ACC=acc, BLOCK=RS._BLOCKS[0][0]),
                RS._BLOCKS[0][1],
                False,
            )
            yield (
                f"resize bwd {dt} align={align}",
                RS._resize_bwd_kernel,
                dict(gout_ptr=dt, gin_ptr=dt),
                dict(ALIGN=align, ACC=acc, BLOCK=RS._BLOCKS[0][0]),
                RS._BLOCKS[0][1],
                False,
            )
        for reduce in (True, False):
            for grad in (True, False):
                yield (
                    f"charbonnier {dt} reduce={reduce} grad={grad}",
                    CH._charbonnier_kernel,
                    dict(pred_ptr=dt, target_ptr=dt, loss_ptr=buf if reduce else dt, grad_ptr=dt, consts_ptr=buf),
                    dict(REDUCE=reduce, GRAD=grad, ACC=acc, BLOCK=CH.PARTIAL if reduce else CH._BLOCKS[0][0]),
                    CH.REDUCE_WARPS if reduce else CH._BLOCKS[0][1],
                    False,
                )
        yield from grid_sample_variants(dt, acc, buf)
        yield from correlation_variants(dt, acc, quick)
        yield (
            f"charbonnier finish {dt}",
            CH._finish_kernel,
            dict(partial_ptr=buf, out_ptr=dt, consts_ptr=buf),
            dict(ACC=acc, BLOCK=CH._FINISH_BLOCK),
            4,
            False,
        )
        for scalar in (True, False):
            yield (
                f"charbonnier bwd {dt} scalar={scalar}",
                CH._charbonnier_bwd_kernel,
                dict(gl_ptr=dt, pred_ptr=dt, target_ptr=dt, grad_ptr=dt, consts_ptr=buf),
                dict(SCALAR_GRAD=scalar, ACC=acc, BLOCK=CH._BLOCKS[0][0]),
                CH._BLOCKS[0][1],
                False,
            )


def grid_sample_variants(dt, acc, buf):
    """Every grid_sample kernel the launcher can request for input dtype ``dt`` (grid in the same
    dtype): each padding, align_corners, and gradient flags, with the launcher's configuration."""
    cfg = GS.config(TORCH_DTYPE[dt], 1 << 12)
    for pad, ac in itertools.product(GS.PADDINGS.items(), (False, True)):
        common = dict(PAD=pad[1], ALIGN_CORNERS=ac, ACC=acc, BLOCK_P=cfg["BLOCK_P"], BLOCK_C=cfg["BLOCK_C"])
        tag = f"{dt} {pad[0]} align_corners={ac}"
        yield (
            f"grid_sample fwd {tag}",
            GS._grid_sample_fwd_kernel,
            dict(in_ptr=dt, grid_ptr=dt, out_ptr=dt),
            common,
            cfg["num_warps"],
            False,
        )
        for ni, ng in ((True, True), (True, False), (False, True)):
            yield (
                f"grid_sample bwd {tag} input={ni} grid={ng}",
                GS._grid_sample_bwd_kernel,
                dict(gout_ptr=dt, in_ptr=dt, grid_ptr=dt, gin_ptr=buf, ggrid_ptr=dt),
                dict(common, NEED_INPUT=ni, NEED_GRID=ng),
                cfg["num_warps"],
                False,
            )


def correlation_variants(dt, acc, quick):
    """The correlation's forward and both gathers for ``dt``, with every configuration the
    launchers may time (--quick: the first)."""
    for cfg in CO._FWD_CONFIGS[: 1 if quick else None]:
        yield (
            f"correlation fwd {dt} {cfg['BLOCK_P']}/{cfg['num_warps']}",
            CO._corr_fwd_kernel,
            dict(f1_ptr=dt, f2_ptr=dt, out_ptr=dt),
            dict(ACC=acc, BLOCK_P=cfg["BLOCK_P"]),
            cfg["num_warps"],
            False,
        )
    for cfg in CO._BWD_CONFIGS[: 1 if quick else None]:
        tag = f"{dt} {cfg['BLOCK_C']}x{cfg['BLOCK_P']}/{cfg['num_warps']}"
        consts = dict(ACC=acc, BLOCK_P=cfg["BLOCK_P"], BLOCK_C=cfg["BLOCK_C"])
        yield (
            f"correlation bwd f1 {tag}",
            CO._corr_bwd_f1_kernel,
            dict(gout_ptr=dt, f2_ptr=dt, gf1_ptr=dt),
            consts,
            cfg["num_warps"],
            False,
        )
        yield (
            f"correlation bwd f2 {tag}",
            CO._corr_bwd_f2_kernel,
            dict(gout_ptr=dt, f1_ptr=dt, gf2_ptr=dt),
            consts,
            cfg["num_warps"],
            False,
        )


def ptxas_usage(ptx: str, arch: int) -> tuple[int, int]:
    """(registers, spill bytes per thread: stores + loads) that ptxas -v reports for ``ptx``."""
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    m = re.search(r"^\.target\s+(sm_\w+)", ptx, re.M)  # Triton targets sm_90a on Hopper
    sm = m.group(1) if m else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as fh:
            fh.write(ptx)
        res = subprocess.run(
            [ptxas, f"-arch={sm}", "-v", src, "-o", os.path.join(tmp, "k.cubin")],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if res.returncode:
        raise RuntimeError(f"ptxas failed: {res.stderr.strip()[:300]}")
    regs = max((int(r) for r in re.findall(r"Used (\d+) registers", res.stderr)), default=0)
    spill = sum(
        int(a) + int(b) for a, b in re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", res.stderr)
    )
    return regs, spill


def expanded(quick):
    """Every variant, then each again with its can-be-1 integer arguments compiled as 1."""
    for v in variants(quick):
        yield v + ((),)
        grid_sample = v[1] in (GS._grid_sample_fwd_kernel, GS._grid_sample_bwd_kernel)
        resize = v[1] in (RS._resize_fwd_kernel, RS._resize_bwd_kernel)
        upsample = v[1] in (UP._upsample_fwd_kernel, UP._upsample_bwd_kernel)
        corr = v[1] in (CO._corr_fwd_kernel, CO._corr_bwd_f1_kernel, CO._corr_bwd_f2_kernel)
        for names in (
            GS_ONES
            if grid_sample
            else RESIZE_ONES
            if resize
            else CORR_ONES
            if corr
            else (CAN_BE_ONE, UPSAMPLE_ONES)
            if upsample
            else (CAN_BE_ONE,)
        ):
            ones = tuple(k for k in names if k in v[1].arg_names)
            if ones:
                yield (v[0] + " [" + ",".join(f"{k}=1" for k in ones) + "]",) + v[1:] + (ones,)


_WORK = {}


def _init_worker(todo, arch):
    _WORK["todo"], _WORK["target"], _WORK["arch"] = todo, GPUTarget("cuda", arch, 32), arch


def _check_variant(i):
    """(name, expect_vector, error or "", registers, spill bytes, vector accesses) of variant i."""
    name, fn, ptrs, consts, nw, expect_vec, ones = _WORK["todo"][i]
    exact = fn in EXACT_KERNELS
    try:
        k = compile_one(fn, ptrs, consts, _WORK["target"], nw, ones, LAUNCH_OPTIONS if exact else None)
        regs, spill = ptxas_usage(k.asm["ptx"], _WORK["arch"])
        approximate = sorted(set(APPROXIMATE.findall(k.asm["ptx"]))) if exact else []
        if approximate:
            raise RuntimeError(f"rounds unlike the CPU: {', '.join(approximate)} in the PTX")
    except Exception as exc:
        return name, expect_vec, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 0, 0, 0
    vec = len(re.findall(r"(?:ld\.global|atom\.global|red\.global)[^\n]*\.v[24]", k.asm.get("ptx", "")))
    return name, expect_vec, "", regs, spill, vec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability to target (default 90)")
    ap.add_argument("--quick", action="store_true", help="fp32 and bf16 only")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiler processes")
    ap.add_argument(
        "--max-spill",
        type=int,
        default=0,
        help="fail a variant whose ptxas spill stores + loads exceed this many bytes per thread",
    )
    ap.add_argument("--only", default="", help="compile only the variants whose name contains this text")
    args = ap.parse_args(argv)
    failures = 0
    t0 = time.time()
    worst = (0, "")
    todo = [v for v in expanded(args.quick) if args.only in v[0]]
    # Compiling is single-threaded per kernel: a forked pool (the kernels are module globals, so
    # workers get them by index) cuts the wall time by the number of cores.
    with multiprocessing.get_context("fork").Pool(
        args.jobs, initializer=_init_worker, initargs=(todo, args.arch)
    ) as pool:
        results = pool.map(_check_variant, range(len(todo)), chunksize=1)
    for name, expect_vec, error, regs, spill, vec in results:
        if error:  # report every failing variant, not just the first
            failures += 1
            print(f"FAIL {name}: {error}")
            continue
        note = f"regs {regs:3d} spill {spill:4d} B"
        worst = max(worst, (spill, name))
        if spill > args.max_spill:
            failures += 1
            print(f"FAIL {name}: {note} (limit {args.max_spill} B)")
            continue
        if expect_vec:
            note += f", vector accesses: {vec}"
            if vec == 0:
                failures += 1
                print(f"FAIL {name}: no vector loads/atomics in channels_last mode (alignment hints lost)")
                continue
        print(f"ok   {name} {note}")
    print(f"largest spill: {worst[0]} B ({worst[1] or '-'})")
    print(f"{'FAILED' if failures else 'all compiled'} ({failures} failures) in {time.time() - t0:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
