"""``crossnet-fast demo``: bicubic vs patch matching vs CrossNet on a small real example pair.

With no arguments it uses the example shipped in ``crossnet_fast/examples/`` (a 192x192 crop of two
views of a real Lytro light field, held out from the shipped weights' training data) and the
shipped weights ``crossnet-x4`` / ``crossnet-x8`` (docs/MODEL_CARD.md), makes the LR
input from the HR view with ``crossnet_fast.degrade``, super-resolves it three ways, prints PSNR /
SSIM / seconds, and writes a side-by-side PNG. It needs no network access.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

EXAMPLE_REF = "flowers_ref.png"  # light-field view (0, 0): the reference
EXAMPLE_HR = "flowers_hr.png"  # view (1, 1): the ground truth the LR input is made from
DEFAULT_OUT = Path("demo_out") / "demo.png"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="compare bicubic, patch matching and CrossNet on a shipped real example",
        description="Super-resolve a small real example pair shipped with the package (or your own "
        "images) with bicubic upsampling, the patch-matching baseline and CrossNet "
        "(the shipped weights by default); print PSNR/SSIM and seconds of each and "
        "write a side-by-side PNG. Your own images: --ref plus --hr (the LR input is "
        "made from it with crossnet_fast.degrade) and/or --lr (then PSNR/SSIM need --hr).",
    )
    p.add_argument("--scale", type=int, choices=(4, 8), default=4, help="upscaling factor (default 4)")
    p.add_argument(
        "--weights",
        default=None,
        help="CrossNet checkpoint (.safetensors) or shipped name (default: crossnet-x<scale>)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.add_argument("--lr", type=Path, default=None, help="your own LR image (needs --ref)")
    p.add_argument("--ref", type=Path, default=None, help="your own HR reference image")
    p.add_argument(
        "--hr",
        type=Path,
        default=None,
        help="your own ground truth (needs --ref; without --lr the LR input is made from it)",
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"side-by-side PNG, written atomically (default {DEFAULT_OUT})"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the patch-matching baseline")
    return p


def example_dir() -> Path:
    """The folder of the shipped example images (package data ``crossnet_fast/examples/*``)."""
    from importlib import resources

    # A regular (not zipped) install: the traversable is a real folder on disk.
    return Path(str(resources.files("crossnet_fast") / "examples"))


def resolve_weights(weights, scale: int) -> tuple[str | None, str | None]:
    """(weights to load, note): ``weights`` as given, else the shipped ``crossnet-x<scale>``; when
    neither exists, (None, a note saying how to get weights) and the demo runs without CrossNet."""
    from .. import _model_file

    if weights is not None:
        return str(weights), None
    name = f"crossnet-x{scale}"
    if name in _model_file.available_weights():
        return name, None
    return None, (
        f"no CrossNet weights found for x{scale} ({_model_file.WEIGHTS_DIR / (name + '.safetensors')} is missing); "
        f"showing the baselines only. Reinstall the package, or train weights with "
        f"`crossnet-fast train --config compact_cpu_x{scale}` (CPU, see docs/MODEL_CARD.md), then run "
        f"`crossnet-fast demo --scale {scale} --weights <run folder>/model.safetensors`"
    )


def load_inputs(args) -> dict:
    """The images of the demo: ``lr`` (1, 3, h, w), ``ref`` (1, 3, h*s, w*s) and ``hr`` (same, or
    None when only --lr was given), float32 CPU tensors in [0, 1], and ``source`` (str)."""
    import torch

    from ..data.io import load_image
    from ..degrade import degrade

    s = args.scale
    own = args.lr is not None or args.ref is not None or args.hr is not None
    if not own:
        folder = example_dir()
        paths = {"ref": folder / EXAMPLE_REF, "hr": folder / EXAMPLE_HR}
        source = f"shipped example {folder} (Lytro flowers, views (0,0) -> (1,1); see its README.md)"
    else:
        if args.ref is None or (args.lr is None and args.hr is None):
            raise ValueError("your own images need --ref and at least one of --lr, --hr")
        paths = {"ref": args.ref, "hr": args.hr, "lr": args.lr}
        source = ", ".join(f"--{k} {v}" for k, v in paths.items() if v is not None)
    img = {k: load_image(p)[None] for k, p in paths.items() if p is not None}
    ref, hr, lr = img["ref"], img.get("hr"), img.get("lr")
    if lr is None:
        # Ground truth cropped to multiples of the scale (top-left), as the eval protocol does.
        H, W = (hr.shape[-2] // s) * s, (hr.shape[-1] // s) * s
        if H == 0 or W == 0:
            raise ValueError(f"--hr ({hr.shape[-1]}x{hr.shape[-2]}) is smaller than the scale {s}")
        hr = hr[..., :H, :W].contiguous()
        lr = degrade(hr, s)
    want = (lr.shape[-2] * s, lr.shape[-1] * s)
    if hr is not None and tuple(hr.shape[-2:]) != want:
        raise ValueError(
            f"--hr must be {s} times the size of --lr: {want[1]}x{want[0]} (WxH), got {hr.shape[-1]}x{hr.shape[-2]}"
        )
    if tuple(ref.shape[-2:]) != want:
        if own and args.lr is None and ref.shape[-2] >= want[0] and ref.shape[-1] >= want[1]:
            ref = ref[..., : want[0], : want[1]].contiguous()  # the HR was cropped to the scale: same crop
        else:
            raise ValueError(
                f"--ref must be {s} times the size of the LR input: {want[1]}x{want[0]} "
                f"(WxH), got {ref.shape[-1]}x{ref.shape[-2]}"
            )
    return {
        "lr": lr.to(torch.float32),
        "ref": ref.to(torch.float32),
        "hr": None if hr is None else hr.to(torch.float32),
        "source": source,
    }


def _timed(fn, device):
    """(output, seconds) of ``fn()`` under inference mode, synchronising CUDA around it."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def format_table(rows: list[dict]) -> str:
    """Markdown table of ``rows`` (method, psnr dB or None, ssim or None, seconds)."""
    lines = ["| method | PSNR (dB) | SSIM | seconds |", "|---|---:|---:|---:|"]
    for r in rows:
        p = "-" if r["psnr"] is None else f"{r['psnr']:.2f}"
        q = "-" if r["ssim"] is None else f"{r['ssim']:.4f}"
        lines.append(f"| {r['method']} | {p} | {q} | {r['seconds']:.3f} |")
    return "\n".join(lines)


def caption(row: dict) -> str:
    """A panel's label: the method, its PSNR when there is a ground truth, and its seconds."""
    # Commas between the fields: the label font's spaces are narrow.
    psnr = "" if row["psnr"] is None else f" {row['psnr']:.2f} dB,"
    return f"{row['method']}{psnr} {row['seconds']:.2f} s"


def run(args) -> int:

    from ..baselines import bicubic, patchmatch_sr
    from ..checkpoint import load_model
    from ..data.io import to_uint8
    from ..infer import super_resolve
    from ..metrics import psnr, ssim
    from ._montage import nearest_upsample, side_by_side
    from .sr import output_format, resolve_device, write_rgb_atomic

    if args.out.suffix.lower() not in (".png", ""):
        raise ValueError(f"--out must be a .png file, got {str(args.out)!r}")
    weights, note = resolve_weights(args.weights, args.scale)
    device = resolve_device(args.device)
    model = None
    if weights is not None:
        model = load_model(weights, device=device).float()  # a bf16 --weights file runs in fp32 too
        if model.scale != args.scale:
            raise ValueError(f"--scale {args.scale} does not match the weights {weights}, which are for x{model.scale}")
    data = load_inputs(args)
    lr, ref, hr = (None if data[k] is None else data[k].to(device) for k in ("lr", "ref", "hr"))
    s = args.scale
    methods = {
        "bicubic": lambda: bicubic(lr, s),
        "patch matching": lambda: patchmatch_sr(lr, ref, s, seed=args.seed),
    }
    if model is not None:
        methods["CrossNet"] = lambda: super_resolve(model, lr, ref)
    rows, images = [], {}
    for name, fn in methods.items():
        sr, secs = _timed(fn, device)
        sr = sr.float().clamp(0, 1)
        images[name] = sr
        rows.append(
            {
                "method": name,
                "seconds": secs,
                "psnr": None if hr is None else float(psnr(sr, hr)[0]),
                "ssim": None if hr is None else float(ssim(sr, hr)[0]),
            }
        )
    print(f"crossnet-fast demo: x{s}, {data['source']}")
    if note:
        print(note)
    print(
        f"weights {weights or 'none'}, device {device}; LR {lr.shape[-1]}x{lr.shape[-2]} -> "
        f"{ref.shape[-1]}x{ref.shape[-2]} (WxH); PSNR/SSIM on RGB, whole image"
    )
    print(format_table(rows))

    panels = [(f"LR x{s} (nearest)", nearest_upsample(to_uint8(lr[0]), s))]
    panels += [(caption(row), to_uint8(images[row["method"]][0])) for row in rows]
    if hr is not None:
        panels.append(("ground truth", to_uint8(hr[0])))
    panels.append(("reference", to_uint8(ref[0])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    output_format(args.out)
    write_rgb_atomic(side_by_side(panels), args.out)
    print(f"wrote {args.out}")
    return 0
