"""``crossnet-fast bench``: time CrossNet inference on random inputs (one window shape)."""

from __future__ import annotations

import argparse
import statistics
import time


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="measure CrossNet inference speed and peak memory",
        description="Time the CrossNet forward on random images of one HR size (random weights unless "
        "--weights is given) and print the median time, throughput and peak memory.",
    )
    p.add_argument("--scale", type=int, choices=(4, 8), default=8, help="upscaling factor (default 8)")
    p.add_argument("--height", type=int, default=512, help="HR height, a multiple of 64 (default 512)")
    p.add_argument("--width", type=int, default=512, help="HR width, a multiple of 64 (default 512)")
    p.add_argument("--batch", type=int, default=1, help="images per forward (default 1)")
    p.add_argument("--config", choices=("official", "paper"), default="official")
    p.add_argument(
        "--sisr",
        choices=("bicubic", "mdsr", "srcnn", "vdsr"),
        default="bicubic",
        help="SISR front end (default bicubic)",
    )
    p.add_argument(
        "--weights", default=None, help="checkpoint to load instead of random weights (its scale/config/sisr win)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--backend", default="auto", choices=("auto", "cuda", "triton", "cpu", "reference"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--iters", type=int, default=10, help="timed runs (default 10)")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoint import load_model
    from ..fastpath import WindowRunner
    from ..models import CrossNet
    from .sr import resolve_device

    for name in ("height", "width"):
        v = getattr(args, name)
        if v < 64 or v % 64:
            raise ValueError(f"--{name} must be a positive multiple of 64, got {v}")
    for name, minimum in (("batch", 1), ("iters", 1), ("warmup", 0)):
        if getattr(args, name) < minimum:
            raise ValueError(f"--{name} must be >= {minimum}, got {getattr(args, name)}")
    device = resolve_device(args.device)
    if args.weights:
        model = load_model(args.weights, device=device, backend=args.backend)
    else:
        model = CrossNet(args.scale, args.config, args.sisr, backend=args.backend).to(device).eval()
    s = model.scale
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(args.batch, 3, args.height // s, args.width // s, generator=gen).to(device)
    ref = torch.rand(args.batch, 3, args.height, args.width, generator=gen).to(device)
    runner = WindowRunner(
        model,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        cuda_graph=args.cuda_graph,
    )
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        runner(lr, ref)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        runner(lr, ref)
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB" if cuda else "n/a on CPU"
    warp = model.backend
    print(
        f"CrossNet x{s} {model.cfg.config}/{model.cfg.sisr}, {args.batch}x3x{args.height}x{args.width}, "
        f"{device}, {args.precision}, backend={warp}"
        f"{', channels_last' if args.channels_last else ''}{', cuda_graph' if args.cuda_graph else ''}"
        f"{', compile' if args.compile else ''}"
    )
    print(
        f"median {med * 1e3:.2f} ms (min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f}) over "
        f"{args.iters} runs; {args.batch / med:.2f} images/s; peak memory {peak}"
    )
    return 0
