"""CUDA-event benchmark of the crossnet_fast CUDA kernels against their baselines, in one process.

Prints one table (median ms, achieved GB/s of the minimum traffic, fraction of the device-copy
bandwidth measured in the same run, speed-up over the baseline of each group) and the issue's
must-show ratios; writes the rows as JSON with --json. Workloads: benchmarks/cuda_workloads.py.

Usage: python scripts/gpu_bench.py [--quick] [--no-compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import cuda_workloads as W  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="anchor shape only, fewer repeats")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile baselines")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device", file=sys.stderr)
        return 1
    repeat = 7 if args.quick else 15
    compile_baselines = not args.no_compile
    device = torch.cuda.get_device_name()
    copy_gbs = W.copy_bandwidth_gbs()
    rows = []

    def run(w: W.Workload, group: str, extra: str = ""):
        ms = W.time_ms(w.fn, repeat=repeat)
        gbs = w.bytes_moved / (ms * 1e-3) / 1e9
        rows.append(
            dict(group=group, name=w.name + extra, ms=ms, gbs=gbs, frac_copy=gbs / copy_gbs, bytes=w.bytes_moved)
        )
        torch.cuda.empty_cache()

    shapes = [("anchor", W.ANCHOR)] + ([] if args.quick else [("large", W.LARGE)])
    for shape_name, shape in shapes:
        for dtype in (torch.float32, torch.bfloat16):
            for cl in (False, True):
                with_compile = compile_baselines and shape_name == "anchor" and dtype == torch.float32 and not cl
                for w in W.warp_workloads(**shape, dtype=dtype, channels_last=cl, compile_baselines=with_compile):
                    run(w, f"warp {shape_name}")
                    if "fwd+bwd ours" in w.name and not cl:
                        # The two NCHW atomic backward strategies and the deterministic gather.
                        for mode in ("direct", "channels_last"):
                            os.environ["CROSSNET_FAST_WARP_BACKWARD"] = mode
                            run(w, f"warp {shape_name}", f" [bwd={mode}]")
                        os.environ.pop("CROSSNET_FAST_WARP_BACKWARD", None)
                    if "fwd+bwd ours" in w.name:
                        torch.use_deterministic_algorithms(True)
                        try:
                            run(w, f"warp {shape_name}", " [deterministic]")
                        finally:
                            torch.use_deterministic_algorithms(False)
    for w in W.upsample_workloads(compile_baselines=compile_baselines):
        run(w, "upsample_flow 4x2x256^2 x2")
    for w in W.charbonnier_workloads(compile_baselines=compile_baselines):
        run(w, "charbonnier 4x3x512^2")

    print(f"\ndevice: {device}; torch {torch.__version__}; device copy bandwidth {copy_gbs:.0f} GB/s")
    print(f"{'group':<28} {'workload':<58} {'ms':>8} {'GB/s':>7} {'of copy':>7}")
    for r in rows:
        print(f"{r['group']:<28} {r['name']:<58} {r['ms']:8.3f} {r['gbs']:7.0f} {r['frac_copy']:7.0%}")

    def ms_of(name):
        hits = [r["ms"] for r in rows if r["name"] == name]
        return hits[0] if hits else float("nan")

    print("\nmust-show ratios (anchor shape; > 1 means ours is faster):")
    checks = [
        (
            "warp fwd+bwd fp32 vs grid_sample border (>= 5)",
            ms_of("warp fwd+bwd grid_sample border float32/nchw") / ms_of("warp fwd+bwd ours float32/nchw"),
            5.0,
        ),
        (
            "warp fwd fp32 vs grid_sample border (>= 2.5)",
            ms_of("warp fwd grid_sample border float32/nchw") / ms_of("warp fwd ours float32/nchw"),
            2.5,
        ),
        (
            "warp fwd+bwd bf16 vs our fp32 (>= 1.6)",
            ms_of("warp fwd+bwd ours float32/nchw") / ms_of("warp fwd+bwd ours bfloat16/nchw"),
            1.6,
        ),
        (
            "warp fwd+bwd fp32 channels_last vs grid_sample border NCHW",
            ms_of("warp fwd+bwd grid_sample border float32/nchw") / ms_of("warp fwd+bwd ours float32/cl"),
            5.0,
        ),
        (
            "charbonnier fwd+bwd vs eager formula (>= 5)",
            ms_of("charbonnier fwd+bwd eager formula") / ms_of("charbonnier fwd+bwd ours"),
            5.0,
        ),
        (
            "upsample_flow fwd+bwd vs F.interpolate*scale (> 1)",
            ms_of("upsample_flow fwd+bwd F.interpolate*scale") / ms_of("upsample_flow fwd+bwd ours"),
            1.0,
        ),
    ]
    for label, ratio, floor in checks:
        print(f"  {label:<62} {ratio:6.2f}x  {'ok' if ratio >= floor else 'BELOW'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(device=device, torch=torch.__version__, copy_gbs=copy_gbs, rows=rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
