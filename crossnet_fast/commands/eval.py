"""``crossnet-fast eval``: the RefSR protocol on a dataset: PSNR / SSIM / IFC and seconds per image
for each method, per image and on average, printed and written as Markdown and JSON."""

from __future__ import annotations

import argparse
from pathlib import Path


def _pair(text: str, what: str):
    try:
        a, b = (int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"{what}: expected two integers like 1,1, got {text!r}") from None
    return a, b


def parse_views(text: str):
    """``"REF:LR"`` -> (ref, lr): light-field views as ``0,0:1,1`` or stereo sides ``left:right``."""
    if ":" not in text:
        raise ValueError(f"--views: expected REF:LR (e.g. 0,0:1,1 or left:right), got {text!r}")
    ref, lr = text.split(":", 1)
    if ref in ("left", "right") or lr in ("left", "right"):
        if {ref, lr} != {"left", "right"}:
            raise ValueError(f"--views: stereo views must be left:right or right:left, got {text!r}")
        return ref, lr
    return _pair(ref, "--views"), _pair(lr, "--views")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..evaluate import METHODS  # light: no model code is imported here

    p = subparsers.add_parser(
        "eval",
        help="evaluate RefSR methods (PSNR/SSIM/IFC, time) on a dataset",
        description="Degrade each ground-truth view (MATLAB bicubic by default), super-resolve it "
        "with each method using the reference view, and report PSNR and SSIM (RGB, "
        "whole image) and IFC (grayscale) with the seconds per image. A stereo or "
        "pair-list reference of another size than its image is placed top-left on the "
        "output canvas (cropped, or padded by edge replication; never resized), the same "
        "for every method, and the tables list what was done. Writes "
        "OUT/results.md and OUT/results.json atomically.",
    )
    p.add_argument(
        "dataset",
        type=Path,
        help="light-field folder(s), mosaic/tile image(s), a stereo folder with left/ and right/, or a pair list",
    )
    p.add_argument(
        "--layout",
        default="auto",
        choices=("auto", "views", "mosaic", "tiles", "stereo", "pairs"),
        help="how the dataset is stored (default: detect; mosaic/tiles must be named)",
    )
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default 4)")
    p.add_argument(
        "--views",
        default=None,
        help="REF:LR views: 0,0:1,1 (light-field default), 0,0:7,7, or left:right "
        "(stereo default: reference left, LR right)",
    )
    p.add_argument(
        "--crop", default=None, help="top-left crop HEIGHT,WIDTH before degradation (Flower protocol: 320,512)"
    )
    p.add_argument(
        "--degradation",
        choices=("bicubic", "gaussian"),
        default="bicubic",
        help="how LR images are made (default: MATLAB-style bicubic)",
    )
    p.add_argument(
        "--methods",
        default="bicubic,patchmatch",
        help=f"comma-separated, from: {', '.join(METHODS)} (default bicubic,patchmatch)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="CrossNet checkpoint or shipped name for method crossnet (default: crossnet-x<scale>)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda, cuda:N")
    p.add_argument("--metrics", default="psnr,ssim,ifc", help="comma-separated subset of psnr,ssim,ifc")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--out", type=Path, default=Path("eval_results"), help="output folder (default ./eval_results)")
    p.add_argument("--save-crops", action="store_true", help="also write side-by-side PNG crops per image (OUT/crops/)")
    p.add_argument("--plot", action="store_true", help="also write a PSNR bar plot OUT/psnr.png (needs matplotlib)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patch-matching baseline")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def run(args) -> int:
    from .. import evaluate as ev

    if args.scale < 2:
        raise ValueError(f"--scale must be >= 2, got {args.scale}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    crop = _pair(args.crop, "--crop") if args.crop else None
    views = parse_views(args.views) if args.views else None
    # Checked before any work: --out (or the nearest of its parents that exists) must be a folder.
    existing = next(p for p in (args.out, *args.out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(
            f"--out: {str(existing)!r} is a file; expected a folder to write results.md and results.json into"
        )
    cfg = ev.EvalConfig(
        dataset=args.dataset,
        layout=args.layout,
        scale=args.scale,
        views=views,
        crop=crop,
        degradation=args.degradation,
        methods=methods,
        metrics=metrics,
        weights=args.weights,
        device=args.device,
        limit=args.limit,
        seed=args.seed,
        progress=not args.no_progress,
    )
    result = ev.evaluate(cfg, keep_outputs=args.save_crops)
    table = ev.to_markdown(result)
    print(table)
    md, js = ev.write_results(result, args.out)
    print(f"wrote {md} and {js}")
    if args.save_crops:
        print(ev.save_crops(result, args.out / "crops"))
    if args.plot:
        print(ev.save_plot(result, args.out / "psnr.png"))
    return 0
