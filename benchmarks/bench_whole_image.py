"""Whole-image super-resolution: `super_resolve` of a 1080x1920 x4 pair, windowed and in one pass (CPU).

Pair: instant-ngp fox, frame 0001 as the reference, the LR made from frame 0002 (MATLAB bicubic
x4, 270x480). Each configuration runs in a child process (so that its peak resident memory is its
own) on ``--threads`` threads and prints seconds (best of ``--rounds``), peak RSS and PSNR against
frame 0002; every windowed output is also compared with the one-pass output of the same weights
(the cost of windowing itself, in dB).

    python benchmarks/bench_whole_image.py --weights RUN/model.safetensors \
        --baseline crossnet-x4 --out benchmarks/results/cpu-bench_whole_image.json

``--baseline`` (optional) runs other weights with the default windows in the same invocation: the
ratio is claimed against it. Pause any background training first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOX = ROOT.parent / "shared" / "data" / "ngp_fox"
SCALE = 4
# (name, window, stride): None = one pass over the whole (padded) image.
CONFIGS = [("one pass", None, None), ("512 / 256", 512, 256), ("768 / 640", 768, 640), ("1024 / 896", 1024, 896)]


def run_one(weights: str, window: int | None, stride: int | None, threads: int, rounds: int, save: str | None) -> dict:
    """One configuration in this process: seconds (best of rounds), PSNR, and the output saved
    to ``save`` (a .pt file) for the comparison with the one-pass output."""
    import torch

    from crossnet_fast import degrade, load_model, super_resolve
    from crossnet_fast.data import load_image
    from crossnet_fast.metrics import psnr

    torch.set_num_threads(threads)
    ref = load_image(FOX / "0001.jpg")[None]
    hr = load_image(FOX / "0002.jpg")[None]
    lr = degrade(hr, SCALE)
    model = load_model(weights, scale=SCALE)
    if window is None:
        # One window covering the padded image: no overlap, no blending.
        window = max(-(-s // 64) * 64 for s in hr.shape[-2:])
        stride = window
    times = []
    with torch.inference_mode():
        for _ in range(rounds):
            t0 = time.perf_counter()
            out = super_resolve(model, lr, ref, window=window, stride=stride)
            times.append(time.perf_counter() - t0)
    if save:
        torch.save(out, save)
    return {
        "seconds": min(times),
        "all_seconds": times,
        "psnr": float(psnr(out.clamp(0, 1), hr)[0]),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "window": window,
        "stride": stride,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="crossnet-x4")
    p.add_argument("--baseline", default="", help="weights run with the default windows as the baseline")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        window, stride, save = json.loads(args.child)
        print(json.dumps(run_one(args.weights, window, stride, args.threads, args.rounds, save)))
        return 0
    if not (FOX / "0001.jpg").is_file():
        print(f"bench_whole_image: {FOX} not found", file=sys.stderr)
        return 2
    import tempfile

    import torch

    from crossnet_fast.metrics import psnr

    tmp = Path(tempfile.mkdtemp(prefix="bench_whole_image_"))
    runs = [(args.weights, *c) for c in CONFIGS]
    if args.baseline:
        runs.append((args.baseline, "baseline: 512 / 256", 512, 256))
    results = []
    for weights, name, window, stride in runs:
        save = str(tmp / f"{len(results)}.pt")
        child = [
            sys.executable,
            __file__,
            "--weights",
            weights,
            "--threads",
            str(args.threads),
            "--rounds",
            str(args.rounds),
            "--child",
            json.dumps([window, stride, save]),
        ]
        line = (
            subprocess.run(child, check=True, capture_output=True, text=True, env=dict(os.environ))
            .stdout.strip()
            .splitlines()[-1]
        )
        r = {"config": name, "weights": weights} | json.loads(line)
        r["out"] = save
        results.append(r)
        print(
            f"{weights:40s} {name:20s} {r['seconds']:7.2f} s  {r['psnr']:.3f} dB  peak {r['peak_rss_gb']:.2f} GB",
            flush=True,
        )
    whole = torch.load(results[0]["out"])
    hr_psnr = results[0]["psnr"]
    for r in results:
        if r["weights"] == args.weights:
            # PSNR of the windowed output against the one-pass output (inf when identical) and the
            # change of PSNR against the ground truth.
            r["psnr_vs_one_pass"] = float(psnr(torch.load(r["out"]).clamp(0, 1), whole.clamp(0, 1))[0])
            r["delta_db_vs_one_pass"] = r["psnr"] - hr_psnr
        del r["out"]
    if args.baseline:
        base = results[-1]["seconds"]
        for r in results:
            r["speedup_vs_baseline"] = base / r["seconds"]
    for r in results:
        print(json.dumps(r))
    if args.out:
        import platform

        from crossnet_fast._atomic import atomic_path

        meta = {
            "device": f"cpu ({platform.processor() or platform.machine()})",
            "threads": args.threads,
            "torch": torch.__version__,
            "pair": "ngp_fox 0001 (reference) / 0002 (LR x4, target)",
            "command": "python benchmarks/bench_whole_image.py " + " ".join(argv or sys.argv[1:]),
        }
        with atomic_path(args.out) as t:
            Path(t).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
