#!/usr/bin/env python
"""Bicubic vs patch-matching RefSR on every scene of ../shared/data, at x4 and x8.

Protocol (docs/DESIGN.md, "Evaluation protocol"; ../shared/data/README.md): light fields use reference view (0, 0)
and LR view (1, 1); Middlebury stereo pairs use reference = left, LR = right; LR images are the
MATLAB-style bicubic degradation of the ground truth (cropped to multiples of the scale); PSNR
and SSIM on RGB over the whole image, IFC on grayscale.

Usage: python scripts/eval_baselines.py [--data PATH] [--scales 4,8] [--out DIR] [--threads N]
Prints a Markdown table and writes DIR/baselines.md and DIR/baselines.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crossnet_fast.evaluate import EvalConfig, _atomic_write, evaluate  # noqa: E402

DATASETS = (("lytro_flowers", "Lytro"), ("hci", "HCI"), ("middlebury2014_quarter", "Middlebury"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    ap.add_argument("--scales", default="4,8")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "eval_baselines")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--metrics", default="psnr,ssim,ifc")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, results = [], {}
    for scale in (int(s) for s in args.scales.split(",")):
        gains = []
        for folder, label in DATASETS:
            path = args.data / folder
            if not path.exists():
                print(f"skipping {path}: not found", file=sys.stderr)
                continue
            res = evaluate(
                EvalConfig(
                    dataset=path,
                    scale=scale,
                    device=args.device,
                    methods=["bicubic", "patchmatch"],
                    metrics=args.metrics.split(","),
                    progress=True,
                )
            )
            results[f"{folder}_x{scale}"] = res
            for img in res["images"]:
                b, p = img["bicubic"], img["patchmatch"]
                gains.append(p["psnr"] - b["psnr"])
                rows.append((scale, label, img["name"], b, p))
                print(
                    f"x{scale} {label}/{img['name']}: bicubic {b['psnr']:.2f} dB, patchmatch "
                    f"{p['psnr']:.2f} dB ({p['psnr'] - b['psnr']:+.2f}), {p['seconds']:.1f} s",
                    flush=True,
                )
        if gains:
            rows.append(
                (
                    scale,
                    "mean gain",
                    f"{sum(gains) / len(gains):+.2f} dB (min {min(gains):+.2f}, {len(gains)} scenes)",
                    None,
                    None,
                )
            )
    metrics = args.metrics.split(",")
    hdr = (
        ["scale", "set", "scene"]
        + [f"bicubic {m.upper()}" for m in metrics]
        + [f"patchmatch {m.upper()}" for m in metrics]
        + ["gain (dB)", "bicubic s", "patchmatch s"]
    )
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    fmt = {"psnr": "{:.2f}", "ssim": "{:.4f}", "ifc": "{:.3f}"}
    for scale, label, name, b, p in rows:
        if b is None:
            lines.append(f"| x{scale} | **{label}** | **{name}** |" + " |" * (len(hdr) - 3))
            continue
        cells = (
            [f"x{scale}", label, name]
            + [fmt[m].format(b[m]) for m in metrics]
            + [fmt[m].format(p[m]) for m in metrics]
            + [f"{p['psnr'] - b['psnr']:+.2f}", f"{b['seconds']:.3f}", f"{p['seconds']:.2f}"]
        )
        lines.append("| " + " | ".join(cells) + " |")
    device = next(iter(results.values()))["config"]["device"] if results else "?"
    table = (
        f"Device {device}, torch threads {torch.get_num_threads()}; reference (0,0) / left, "
        f"LR (1,1) / right, MATLAB bicubic degradation.\n\n" + "\n".join(lines) + "\n"
    )
    print(table)
    _atomic_write(args.out / "baselines.md", table)
    _atomic_write(args.out / "baselines.json", json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out / 'baselines.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
