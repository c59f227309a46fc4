"""``crossnet-fast train``: train CrossNet (or an SISR baseline) from a TOML/YAML config.

crossnet-fast train --config paper_x4 [--out DIR] [--resume DIR] [--set optim.lr=5e-5 ...]
torchrun --nproc_per_node=4 -m crossnet_fast train --config paper_x4     # DDP, one GPU each
"""

from __future__ import annotations

import argparse
import os


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train CrossNet or an SISR baseline (resumable, bf16, DDP)",
        description="Train from a config (a .toml/.yaml file or a shipped name: paper_x4, paper_x8, "
        "smoke_cpu, synthetic_x4). Ctrl-C or SIGTERM saves a checkpoint; --resume "
        "continues exactly. Launch with torchrun for several GPUs.",
    )
    p.add_argument("--config", default="paper_x4", help="config file or shipped name (default: paper_x4)")
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="a run folder (uses checkpoints/latest.json) or one checkpoint folder",
    )
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default: run.out)")
    p.add_argument("--data", metavar="DIR", default=None, help="data root (default: data.root)")
    p.add_argument("--iterations", type=int, default=None, help="override optim.iterations")
    p.add_argument("--batch-size", type=int, default=None, help="per-process batch (data.batch_size)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (run.device)")
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop (with a checkpoint) after this many updates in this invocation",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any key, TOML syntax: --set optim.lr=5e-5 --set data.crop=[128,128]",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def run(args) -> int:
    from ..train import load_config, train

    overrides = list(args.overrides)
    for key, value in (
        ("data.root", args.data),
        ("optim.iterations", args.iterations),
        ("data.batch_size", args.batch_size),
        ("run.device", args.device),
    ):
        if value is not None:
            overrides.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    if args.no_progress:
        overrides.append("run.progress=false")
    cfg = load_config(args.config, overrides)
    if args.out:
        cfg.run.out = args.out
    if args.print_config:
        print(cfg.to_json())
        return 0
    res = train(cfg, resume=args.resume, max_steps=args.max_steps)
    if res["stopped"] in ("SIGINT", "SIGTERM", "signal"):
        return 130
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    if res["stopped"]:
        print(f"stopped ({res['stopped']}) at step {res['step']}; continue with --resume {res['out']}")
        return 0
    if res["val"]:
        for r in res["val"]:
            print(f"{r['name']}: {r['psnr']:.2f} dB (bicubic {r['psnr_bicubic']:.2f} dB)")
    print(f"step {res['step']}: weights {res['model'] or res['checkpoint']}")
    return 0
