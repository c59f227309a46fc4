"""Held-out evaluation of shipped CrossNet weights: the model card's tables (docs/MODEL_CARD.md).

Every pair below is held out of the shipped weights' training (crossnet_fast/train/configs/
compact_cpu_x4.toml) and of their synthetic pairs. Protocol (the paper's): the LR input is the
MATLAB-bicubic x4 / x8 downsampling of the ground-truth view, the whole image is super-resolved
(cropped to multiples of the scale, top-left), PSNR and SSIM on RGB, IFC on luminance, no border
crop. Light fields: reference view (0,0), LR from view (1,1) ("near") and from (7,7) ("far");
stereo: reference = left, LR = right; video: reference = frame t, LR = frame t+2.

"Wrong reference": CrossNet given the reference of another held-out scene (resized to the same
size) instead of the true one; the PSNR difference is how much of the gain comes from the reference.

    python scripts/eval_heldout.py                       # shipped crossnet-x4 and crossnet-x8
    python scripts/eval_heldout.py --weights-x4 RUN/model.safetensors --scales 4 --out out/eval
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from crossnet_fast._atomic import atomic_path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# (name, group, kind, location, reference, LR view): views are (row, col) for light fields,
# file names for stereo ("left"/"right" folders) and frame files for video.
PAIRS = [
    ("Lytro IMG_0001 (0,0)->(1,1)", "light field near", "lf", "lytro_flowers/IMG_0001", (0, 0), (1, 1)),
    ("HCI antinous (0,0)->(1,1)", "light field near", "lf", "hci/antinous", (0, 0), (1, 1)),
    ("Lytro IMG_0001 (0,0)->(7,7)", "light field far", "lf", "lytro_flowers/IMG_0001", (0, 0), (7, 7)),
    ("HCI antinous (0,0)->(7,7)", "light field far", "lf", "hci/antinous", (0, 0), (7, 7)),
    ("Middlebury Adirondack left->right", "stereo", "stereo", "middlebury2014_quarter", "Adirondack.png", None),
    ("Middlebury Teddy left->right", "stereo", "stereo", "middlebury2014_quarter", "Teddy.png", None),
    ("Middlebury Vintage left->right", "stereo", "stereo", "middlebury2014_quarter", "Vintage.png", None),
] + [
    (f"Vid4 walk frame {t}->{t + 2}", "video", "video", "vid4/walk", f"frame_{t:03d}.png", f"frame_{t + 2:03d}.png")
    for t in (1, 2, 3, 4)
]
GROUPS = ("light field near", "light field far", "stereo", "video")
METHODS = ("bicubic", "patch matching", "CrossNet", "CrossNet, wrong reference", "reference warped by V0")


def load_pair(kind: str, where: str, a, b, data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(hr, ref), each (3, H, W) float32 in [0, 1]."""
    from crossnet_fast.data import ViewFolderLightField, load_image

    if kind == "lf":
        lf = ViewFolderLightField(data / where)
        return lf.view(b), lf.view(a)
    if kind == "stereo":
        return load_image(data / where / "right" / a), load_image(data / where / "left" / a)
    return load_image(data / where / b), load_image(data / where / a)


def reference_warped_by_v0(model, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The HR reference warped by the model's own full-resolution flow V0 (the flow its warps use),
    one whole-image pass: how much of the output the alignment alone would give.

    lr (1, 3, h, w), ref (1, 3, h*s, w*s) float in [0, 1]; returns (1, 3, h*s, w*s) float32. The
    pair is edge-padded to a multiple of 64 HR pixels like :func:`crossnet_fast.super_resolve`.
    """
    from crossnet_fast.infer import pad_pair
    from crossnet_fast.ops import backward_warp

    H, W = ref.shape[-2:]
    lr_p, ref_p = pad_pair(lr, ref, model.scale)
    v0 = model(lr_p, ref_p, return_parts=True)["v0_used"].float()
    return backward_warp(ref_p, v0, padding=model.cfg.padding)[..., :H, :W]


def evaluate_scale(scale: int, weights: str, data: Path, only: str = "", log=print) -> list[dict]:
    """One row per pair and method: psnr (dB), ssim, ifc, seconds."""
    from crossnet_fast import degrade, load_model, super_resolve
    from crossnet_fast.baselines import bicubic, patchmatch_sr
    from crossnet_fast.metrics import ifc, psnr, ssim

    model = load_model(weights, scale=scale)
    samples = []
    for name, group, kind, where, a, b in PAIRS:
        hr, ref = load_pair(kind, where, a, b, data)
        h, w = (hr.shape[-2] // scale) * scale, (hr.shape[-1] // scale) * scale
        hr, ref = hr[None, :, :h, :w].contiguous(), ref[None, :, :h, :w].contiguous()
        scene = where + (f"/{a}" if kind == "stereo" else "")
        samples.append((name, group, scene, hr, ref, degrade(hr, scale)))
    rows = []
    for k, (name, group, scene, hr, ref, lr) in enumerate(samples):
        if only and only not in name:
            continue
        # Another scene's reference (the next pair of another scene), resized to this size.
        other = next(s for s in samples[k + 1 :] + samples[:k] if s[2] != scene)
        wrong = F.interpolate(other[4], size=hr.shape[-2:], mode="bilinear", antialias=True, align_corners=False).clamp(
            0, 1
        )
        runs = {
            "bicubic": lambda: bicubic(lr, scale),
            "patch matching": lambda: patchmatch_sr(lr, ref, scale, seed=0),
            "CrossNet": lambda: super_resolve(model, lr, ref),
            "CrossNet, wrong reference": lambda: super_resolve(model, lr, wrong),
            "reference warped by V0": lambda: reference_warped_by_v0(model, lr, ref),
        }
        for method, fn in runs.items():
            t0 = time.perf_counter()
            with torch.inference_mode():
                sr = fn().float().clamp(0, 1)
            secs = time.perf_counter() - t0
            row = {
                "scale": scale,
                "pair": name,
                "group": group,
                "method": method,
                "size": list(hr.shape[-2:]),
                "psnr": float(psnr(sr, hr)[0]),
                "ssim": float(ssim(sr, hr)[0]),
                "ifc": float(ifc(sr, hr)[0]),
                "seconds": secs,
            }
            if method == "CrossNet, wrong reference":
                row["wrong_reference_from"] = other[0]
            rows.append(row)
            log(
                f"x{scale} {name:38s} {method:26s} {row['psnr']:6.2f} dB  SSIM {row['ssim']:.4f}  "
                f"IFC {row['ifc']:.3f}  {secs:6.2f} s"
            )
    return rows


def _mean(rows, key):
    return sum(r[key] for r in rows) / len(rows)


def summarise(rows: list[dict]) -> dict:
    """Means per (scale, group, method) and per (scale, method) over every pair."""
    out = {}
    for scale in sorted({r["scale"] for r in rows}):
        for group in GROUPS + ("all",):
            for method in METHODS:
                sel = [
                    r
                    for r in rows
                    if r["scale"] == scale and r["method"] == method and (group == "all" or r["group"] == group)
                ]
                if sel:
                    out[f"x{scale}|{group}|{method}"] = {
                        k: _mean(sel, k) for k in ("psnr", "ssim", "ifc", "seconds")
                    } | {"pairs": len(sel)}
    return out


def to_markdown(rows: list[dict], summary: dict, header: str) -> str:
    lines = [
        header,
        "",
        "### Mean over the held-out pairs of each group",
        "",
        "| scale | group (pairs) | bicubic | patch matching | CrossNet | CrossNet - patch matching | "
        "true - wrong reference | wrong reference - bicubic | reference warped by V0 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in summary:
        scale, group, method = key.split("|")
        if method != "CrossNet":
            continue
        get = lambda m: summary[f"{scale}|{group}|{m}"]["psnr"]  # noqa: E731
        lines.append(
            f"| {scale} | {group} ({summary[key]['pairs']}) | {get('bicubic'):.2f} | "
            f"{get('patch matching'):.2f} | **{get('CrossNet'):.2f}** | "
            f"{get('CrossNet') - get('patch matching'):+.2f} | "
            f"{get('CrossNet') - get('CrossNet, wrong reference'):+.2f} | "
            f"{get('CrossNet, wrong reference') - get('bicubic'):+.2f} | {get('reference warped by V0'):.2f} |"
        )
    lines += [
        "",
        "PSNR in dB. Per pair (PSNR dB / SSIM / IFC / seconds on this machine's CPU):",
        "",
        "| scale | pair | method | PSNR | SSIM | IFC | s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| x{r['scale']} | {r['pair']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['ifc']:.3f} | {r['seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", default="4,8", help="comma-separated scales (default 4,8)")
    p.add_argument("--weights-x4", default="crossnet-x4", help="x4 weights (file or shipped name)")
    p.add_argument("--weights-x8", default="crossnet-x8", help="x8 weights (file or shipped name)")
    p.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default {DATA})")
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "results" / "heldout",
        help="writes OUT.json and OUT.md (default docs/results/heldout)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--only", default="", help="evaluate only the pairs whose name contains this")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        print(f"eval_heldout: --data {args.data} is not a folder", file=sys.stderr)
        return 2
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        rows += evaluate_scale(scale, getattr(args, f"weights_x{scale}"), args.data, args.only)
    summary = summarise(rows)
    import platform

    weights = ", ".join(f"x{s} {getattr(args, f'weights_x{s}')}" for s in sorted({r["scale"] for r in rows}))
    header = (
        f"Held-out evaluation (scripts/eval_heldout.py), device: CPU ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), torch {torch.__version__}; weights {weights}."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in (
        (".json", json.dumps({"rows": rows, "summary": summary}, indent=1)),
        (".md", to_markdown(rows, summary, header)),
    ):
        path = args.out.with_suffix(suffix)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
