"""Learning curves of training runs: validation PSNR against bicubic and against patch matching, by
iteration and wall time, as CSV and a PNG plot (docs/training/).

Reads each run's ``val.csv`` (written every ``val.every`` steps) and ``train.csv`` (wall time), and
runs patch matching once on the same validation pairs (the run's config: held-out pairs, crops).

    python scripts/learning_curve.py runs/stage1_x4 runs/compact_x4 runs/stage1_x8 runs/compact_x8 \
        --out docs/training/learning_curve      # runs of one scale chain in the order given
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from crossnet_fast._atomic import atomic_path


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def patchmatch_psnr(run: Path) -> tuple[int, dict]:
    """(scale, {pair name: PSNR dB of patch matching}) on the run's validation pairs."""
    import torch

    from crossnet_fast.baselines import patchmatch_sr
    from crossnet_fast.metrics import psnr
    from crossnet_fast.train.config import load_config
    from crossnet_fast.train.pairs import Sources

    cfg = load_config(json.loads((run / "config.json").read_text()))
    src = Sources(cfg.data, cfg.model.scale, cfg.val)
    out = {}
    for s in src.validation_pairs(cfg.data.degradation, cfg.val.max_size):
        with torch.inference_mode():
            sr = patchmatch_sr(s["lr"][None], s["ref"][None], cfg.model.scale, seed=0).clamp(0, 1)
        out[s["name"]] = float(psnr(sr, s["hr"][None])[0])
    return cfg.model.scale, out


def _wall_minutes(train: list[dict]) -> dict:
    """step -> minutes of training wall time since the run began. ``elapsed_s`` restarts at each
    resumption of a run, so the time before a restart is added to the rows after it."""
    out, base, last = {}, 0.0, 0.0
    for r in train:
        t = float(r["elapsed_s"])
        if t < last:  # a resumed segment
            base += last
        last = t
        out[int(r["step"])] = (base + t) / 60
    return out


def curves(runs: list[Path]) -> list[dict]:
    """One row per (scale, validation step, pair): scale, run, step, wall_min, pair, crossnet,
    bicubic, patchmatch. Runs of one scale are chained in the order given (a run warm-started
    from the previous one's last checkpoint): its steps and wall time continue the previous run's."""
    rows, offset, pm_cache = [], {}, {}
    for run in runs:
        scale, pm = patchmatch_psnr(run)
        pm_cache.setdefault(scale, pm)
        step0, wall0 = offset.get(scale, (0, 0.0))
        train = _rows(run / "train.csv")
        wall = _wall_minutes(train)
        for r in _rows(run / "val.csv"):
            step = int(r["step"])
            rows.append(
                {
                    "scale": scale,
                    "run": str(run),
                    "step": step0 + step,
                    "wall_min": round(wall0 + wall.get(step, float("nan")), 2),
                    "pair": r["name"],
                    "crossnet": float(r["psnr"]),
                    "bicubic": float(r["psnr_bicubic"]),
                    "patchmatch": pm[r["name"]],
                }
            )
        if train:
            offset[scale] = (step0 + int(train[-1]["step"]), wall0 + wall[int(train[-1]["step"])])
    return rows


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = sorted({r["scale"] for r in rows})
    fig, axes = plt.subplots(2, len(scales), figsize=(5.5 * len(scales), 7.5), squeeze=False)
    for col, scale in enumerate(scales):
        sel = [r for r in rows if r["scale"] == scale]
        steps = sorted({r["step"] for r in sel})
        mean = lambda key, s: sum(r[key] for r in sel if r["step"] == s) / sum(1 for r in sel if r["step"] == s)  # noqa: E731
        gain = [mean("crossnet", s) - mean("bicubic", s) for s in steps]
        pm_gain = mean("patchmatch", steps[0]) - mean("bicubic", steps[0])
        walls = [next(r["wall_min"] for r in sel if r["step"] == s) for s in steps]
        for row, (xs, label) in enumerate(((steps, "iteration"), (walls, "wall time (minutes, 1 CPU thread)"))):
            ax = axes[row][col]
            ax.plot(xs, gain, "o-", label="CrossNet (compact)")
            ax.axhline(pm_gain, color="tab:red", ls="--", label="patch matching")
            ax.axhline(0, color="gray", lw=0.8, label="bicubic")
            ax.set_xlabel(label)
            ax.set_ylabel("mean PSNR gain over bicubic (dB)")
            ax.set_title(f"x{scale}, held-out validation crops")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (with config.json, train.csv, val.csv)")
    p.add_argument("--out", type=Path, default=Path("docs/training/learning_curve"), help="writes OUT.csv and OUT.png")
    args = p.parse_args(argv)
    for run in args.runs:
        if not (run / "val.csv").is_file():
            print(f"learning_curve: {run} has no val.csv", file=sys.stderr)
            return 2
    rows = curves(args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    csv_path = args.out.with_suffix(".csv")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {csv_path} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
