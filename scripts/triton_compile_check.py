#!/usr/bin/env python
"""Compile every Triton kernel variant for a GPU target without a GPU (CI on CPU machines).

The interpreter tests (tests/test_triton.py) check what the kernels compute; they cannot see
compiled-mode failures (type errors the interpreter tolerates, layout conversions, ptxas). This
script runs Triton's real compiler (TTIR -> TTGIR -> LLVM -> PTX -> cubin with the bundled ptxas)
for sm_90 on every dtype/padding/layout/flag combination the launchers can request, and checks
that the channels_last warp kernels use 128-bit vector loads and vector atomics (the point of
the alignment hints). Needs no GPU and no CUDA driver.

    python scripts/triton_compile_check.py [--arch 90] [--quick]

Uses ``triton.compiler.ASTSource`` (an internal API, stable across Triton 3.2-3.8); exit status 0
when all variants compile, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("triton_compile_check: unset TRITON_INTERPRET (this compiles the kernels)")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from crossnet_fast.triton import charbonnier as CH  # noqa: E402
from crossnet_fast.triton import multiscale_warp as MW  # noqa: E402
from crossnet_fast.triton import upsample_flow as UP  # noqa: E402

ACC = {"fp64": tl.float64}
I32 = ("C", "H", "W", "s_n", "s_c", "s_h", "s_w", "g_n", "g_c", "g_h", "g_w", "scale", "S", "count", "numel")


def compile_one(fn, pointer_types, consts, target, num_warps=4):
    """Compile ``fn`` with pointer args typed as given (16-byte aligned, as Triton specialises
    them at run time), int args i32, float args fp32; returns the compiled kernel."""
    names = fn.arg_names
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
    return triton.compile(src, target=target, options={"num_warps": num_warps})


def variants(quick):
    """(name, kernel, pointer dtypes, constexprs, num_warps, expect_vector) for every variant."""
    dtypes = ["fp32", "bf16"] if quick else ["fp32", "fp16", "bf16", "fp64"]
    for dt in dtypes:
        acc = ACC.get(dt, tl.float32)
        buf = "fp64" if dt == "fp64" else "fp32"
        for cl in (False, True):
            (bp, bc, nw) = MW._CONFIGS_CL[0] if cl else MW._CONFIGS_NCHW[0]
            align = 4 if cl and dt != "fp64" else 1
            for border in (False, True):
                common = dict(BORDER=border, CL=cl, ACC=acc, ALIGN=align, BLOCK_P=bp, BLOCK_C=bc)
                tag = f"{dt} {'cl' if cl else 'nchw'} {'border' if border else 'zeros'}"
                yield (f"warp fwd {tag}", MW._warp_fwd_kernel,
                       dict(feat_base=dt, flow_base="fp32", out_base=dt, meta_ptr="i64"), common, nw,
                       cl and dt == "fp32")
                for nf, nv in ((True, True), (True, False), (False, True)):
                    yield (f"warp bwd {tag} feat={nf} flow={nv}", MW._warp_bwd_kernel,
                           dict(gout_base=dt, feat_base=dt, flow_base="fp32", gfeat_base=buf, gflow_base="fp32",
                                meta_ptr="i64"),
                           dict(common, NEED_FEAT=nf, NEED_FLOW=nv), nw, cl and dt == "fp32" and nf)
        yield (f"upsample fwd {dt}", UP._upsample_fwd_kernel, dict(in_ptr=dt, out_ptr=dt),
               dict(ACC=acc, BLOCK=UP._BLOCKS[0][0]), UP._BLOCKS[0][1], False)
        yield (f"upsample bwd {dt}", UP._upsample_bwd_kernel, dict(gout_ptr=dt, gin_ptr=dt),
               dict(ACC=acc, BLOCK=UP._BLOCKS[0][0]), UP._BLOCKS[0][1], False)
        for reduce in (True, False):
            for grad in (True, False):
                yield (f"charbonnier {dt} reduce={reduce} grad={grad}", CH._charbonnier_kernel,
                       dict(pred_ptr=dt, target_ptr=dt, loss_ptr=buf if reduce else dt, grad_ptr=dt),
                       dict(REDUCE=reduce, GRAD=grad, ACC=acc, BLOCK=CH._BLOCKS[0][0]), CH._BLOCKS[0][1], False)
        yield (f"charbonnier finish {dt}", CH._finish_kernel, dict(partial_ptr=buf, out_ptr=dt),
               dict(ACC=acc, BLOCK=CH._FINISH_BLOCK), 4, False)
        for scalar in (True, False):
            yield (f"charbonnier bwd {dt} scalar={scalar}", CH._charbonnier_bwd_kernel,
                   dict(gl_ptr=dt, pred_ptr=dt, target_ptr=dt, grad_ptr=dt),
                   dict(SCALAR_GRAD=scalar, ACC=acc, BLOCK=CH._BLOCKS[0][0]), CH._BLOCKS[0][1], False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability to target (default 90)")
    ap.add_argument("--quick", action="store_true", help="fp32 and bf16 only")
    args = ap.parse_args(argv)
    target = GPUTarget("cuda", args.arch, 32)
    failures = 0
    t0 = time.time()
    for name, fn, ptrs, consts, nw, expect_vec in variants(args.quick):
        try:
            k = compile_one(fn, ptrs, consts, target, nw)
        except Exception as exc:  # report every failing variant, not just the first
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        ptx = k.asm.get("ptx", "")
        note = ""
        if expect_vec:
            vec = len(re.findall(r"(?:ld\.global|atom\.global|red\.global)[^\n]*\.v[24]", ptx))
            note = f"vector accesses: {vec}"
            if vec == 0:
                failures += 1
                print(f"FAIL {name}: no vector loads/atomics in channels_last mode (alignment hints lost)")
                continue
        print(f"ok   {name} {note}")
    print(f"{'FAILED' if failures else 'all compiled'} ({failures} failures) in {time.time() - t0:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
