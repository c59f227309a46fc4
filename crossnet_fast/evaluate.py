"""The evaluation loop behind ``crossnet-fast eval`` (also usable from Python).

``evaluate(EvalConfig(...))`` -> a result dict::

    {"config": {...}, "methods": [...], "metrics": [...],
     "images": [{"name": str, "size": [H, W], "<method>": {"psnr": dB, "ssim": .., "ifc": ..,
                 "seconds": s}, "ref_placement": str (only if placed)}, ...],
     "mean": {"<method>": {"psnr": .., "ssim": .., "ifc": .., "seconds": ..}}}

Methods: ``bicubic``, ``patchmatch`` (``baselines.patchmatch_sr``) and ``crossnet`` (needs
``weights``; the model code is imported only when asked for). Timing includes the method's work
only (data loading and metrics excluded) and synchronises CUDA.

A stereo or pair-list reference of another size than its image is placed on the HR canvas by the
dataset (``crossnet_fast.placement``: top-left aligned, cropped or edge-replicated), once, before
any method runs, so every method gets the same reference; ``ref_placement`` says what was done and
the Markdown lists it under the tables.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch

from ._atomic import atomic_path
from ._device import resolve_device

METHODS = ("bicubic", "patchmatch", "crossnet")
METRICS = ("psnr", "ssim", "ifc")


@dataclasses.dataclass
class EvalConfig:
    """Settings of one evaluation; ``views``: (ref, lr) light-field views or stereo sides."""

    dataset: Path
    layout: str = "auto"
    scale: int = 4
    views: tuple | None = None
    crop: tuple | None = None
    degradation: str = "bicubic"
    methods: list = dataclasses.field(default_factory=lambda: ["bicubic", "patchmatch"])
    metrics: list = dataclasses.field(default_factory=lambda: list(METRICS))
    weights: str | None = None
    device: str = "auto"
    limit: int | None = None
    seed: int = 0
    progress: bool = True


def _open(cfg: EvalConfig):
    from .data import open_dataset
    from .data.open import detect_layout

    layout = detect_layout(cfg.dataset) if cfg.layout == "auto" else cfg.layout
    kw = dict(layout=layout, scale=cfg.scale, crop=cfg.crop, degradation=cfg.degradation)
    if layout == "stereo":
        if cfg.views is not None:
            if not isinstance(cfg.views[0], str):
                raise ValueError("--views for a stereo dataset must be left:right or right:left")
            kw["ref_side"] = cfg.views[0]
    elif layout == "pairs":
        if cfg.views is not None:
            raise ValueError("--views does not apply to a pair list")
    else:
        if cfg.views is not None:
            if isinstance(cfg.views[0], str):
                raise ValueError("--views for a light field must be ROW,COL:ROW,COL (e.g. 0,0:1,1)")
            kw["ref_view"], kw["lr_view"] = cfg.views
    return open_dataset(cfg.dataset, **kw)


def _make_runners(cfg: EvalConfig, device: torch.device):
    """name -> callable(lr (1,3,h,w), ref (1,3,H,W)) -> (1,3,H,W), all on ``device``."""
    from .baselines import bicubic, patchmatch_sr

    runners = {}
    for m in cfg.methods:
        if m == "bicubic":
            runners[m] = lambda lr, ref: bicubic(lr, cfg.scale)
        elif m == "patchmatch":
            runners[m] = lambda lr, ref: patchmatch_sr(lr, ref, cfg.scale, seed=cfg.seed, degradation=cfg.degradation)
        elif m == "crossnet":
            from .checkpoint import load_model  # only now: the model code is heavy
            from .infer import super_resolve

            # Default: the shipped weights of this scale (docs/MODEL_CARD.md).
            model = load_model(cfg.weights or f"crossnet-x{cfg.scale}", device=device)
            if getattr(model, "scale", cfg.scale) != cfg.scale:
                raise ValueError(f"--weights {cfg.weights} is a x{model.scale} model but --scale is {cfg.scale}")
            runners[m] = lambda lr, ref, _m=model: super_resolve(_m, lr, ref)
        else:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if not runners:
        raise ValueError("no methods given")
    return runners


def _timed(fn, *a, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = fn(*a)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def evaluate(cfg: EvalConfig, keep_outputs: bool = False) -> dict:
    """Run ``cfg``; see the module docstring for the result. ``keep_outputs`` adds
    ``result["outputs"][name] = {"hr": .., "lr": .., "<method>": ..}`` CPU tensors (for crops)."""
    from .metrics import ifc, psnr, ssim

    for m in cfg.metrics:
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r}; choose from {', '.join(METRICS)}")
    if cfg.limit is not None and cfg.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {cfg.limit}")
    device = resolve_device(cfg.device)
    ds = _open(cfg)
    runners = _make_runners(cfg, device)
    fns = {"psnr": psnr, "ssim": ssim, "ifc": ifc}
    n = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
    images, outputs = [], {}
    bar = None
    if cfg.progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="eval", unit="image", leave=False)
        except ImportError:  # tqdm is optional: no bar
            bar = None
    for i in range(n):
        s = ds[i]
        if "hr" not in s:
            raise ValueError(
                f"{s['name']}: the dataset has no ground truth (a pair list of LR images); metrics need HR images"
            )
        lr, ref, hr = (s[k][None].to(device) for k in ("lr", "ref", "hr"))
        row = {"name": s["name"], "size": list(hr.shape[-2:])}
        if "ref_placement" in s:
            # The dataset placed a reference of another size on the HR canvas once, so every
            # method (patch matching and CrossNet alike) sees the same reference.
            row["ref_placement"] = s["ref_placement"]
        if keep_outputs:
            outputs[s["name"]] = {"hr": s["hr"], "lr": s["lr"]}
        for name, fn in runners.items():
            if bar is not None:
                bar.set_postfix_str(f"{s['name']} {name}")
            sr, secs = _timed(fn, lr, ref, device=device)
            sr = sr[..., : hr.shape[-2], : hr.shape[-1]].float().clamp(0, 1)
            row[name] = {m: float(fns[m](sr, hr)[0]) for m in cfg.metrics}
            row[name]["seconds"] = secs
            if keep_outputs:
                outputs[s["name"]][name] = sr[0].cpu()
        images.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    keys = list(cfg.metrics) + ["seconds"]
    mean = {name: {k: sum(r[name][k] for r in images) / len(images) for k in keys} for name in runners}
    conf = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    conf["dataset"], conf["device"] = str(cfg.dataset), str(device)
    result = {"config": conf, "methods": list(runners), "metrics": list(cfg.metrics), "images": images, "mean": mean}
    if keep_outputs:
        result["outputs"] = outputs
    return result


def _fmt(metric: str, v: float) -> str:
    if math.isinf(v):
        return "inf"
    return {"psnr": f"{v:.2f}", "ssim": f"{v:.4f}", "ifc": f"{v:.3f}"}.get(metric, f"{v:.3f}")


def to_markdown(result: dict) -> str:
    """The result as Markdown: a mean table (one row per method) and a per-image table."""
    metrics, methods, c = result["metrics"], result["methods"], result["config"]
    head = [
        f"x{c['scale']}, {c['degradation']} degradation, {len(result['images'])} image(s) of "
        f"{c['dataset']}, device {c['device']}",
        "",
    ]
    cols = [m.upper() for m in metrics] + ["s/image"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name in methods:
        v = result["mean"][name]
        lines.append(f"| {name} | " + " | ".join([_fmt(m, v[m]) for m in metrics] + [f"{v['seconds']:.3f}"]) + " |")
    per = ["", "| image | method | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for row in result["images"]:
        for name in methods:
            v = row[name]
            per.append(
                f"| {row['name']} | {name} | "
                + " | ".join([_fmt(m, v[m]) for m in metrics] + [f"{v['seconds']:.3f}"])
                + " |"
            )
    placed = [f"- {row['name']}: {row['ref_placement']}" for row in result["images"] if row.get("ref_placement")]
    if placed:
        per += ["", "Reference placed on the output canvas (top-left aligned, same for every method):"]
        per += placed
    return "\n".join(head + lines + per) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # removed on error; an OSError names ``path``
        Path(tmp).write_text(text)


def write_results(result: dict, out_dir) -> tuple[Path, Path]:
    """Write ``results.md`` and ``results.json`` into ``out_dir`` atomically; returns both paths."""
    out_dir = Path(out_dir)
    clean = {k: v for k, v in result.items() if k != "outputs"}
    md, js = out_dir / "results.md", out_dir / "results.json"
    _atomic_write(md, to_markdown(clean))
    _atomic_write(js, json.dumps(clean, indent=2, default=str, allow_nan=True) + "\n")
    return md, js


def save_crops(result: dict, out_dir, size: int = 128) -> str:
    """Side-by-side crops (LR nearest-upsampled | methods... | HR) of each image's centre."""
    from .data.io import save_image

    outs = result.get("outputs")
    if not outs:
        return "no outputs kept: call evaluate(cfg, keep_outputs=True) to save crops"
    scale = result["config"]["scale"]
    for name, o in outs.items():
        hr = o["hr"]
        H, W = hr.shape[-2:]
        ch, cw = min(size, H), min(size, W)
        y, x = (H - ch) // 2 // scale * scale, (W - cw) // 2 // scale * scale
        lr_up = torch.nn.functional.interpolate(o["lr"][None], scale_factor=scale, mode="nearest")[0]
        tiles = [lr_up] + [o[m] for m in result["methods"]] + [hr]
        row = torch.cat([t[:, y : y + ch, x : x + cw] for t in tiles], dim=-1)
        save_image(row, Path(out_dir) / f"{name}.png")
    return f"wrote {len(outs)} crop strip(s) to {out_dir} (LR | {' | '.join(result['methods'])} | HR)"


def save_plot(result: dict, path) -> str:
    """A bar plot of mean PSNR per method; skipped (with a message) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: skipping the bar plot"
    if "psnr" not in result["metrics"]:
        return "psnr was not measured: skipping the bar plot"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = result["methods"]
    vals = [result["mean"][m]["psnr"] for m in names]
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 3))
    ax.bar(names, vals)
    ax.set_ylabel("PSNR (dB)")
    ax.set_ylim(min(vals) - 2, max(vals) + 1)
    ax.set_title(f"x{result['config']['scale']}")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:  # a failed write (full disk, ...) leaves no partial file
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return f"wrote {path}"
