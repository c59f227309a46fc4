"""``curves.png`` from the CSV logs (needs matplotlib; callers check that it is importable)."""
from __future__ import annotations

import csv
import os
from pathlib import Path


def _read(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(train_csv, val_csv, png) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    train, val = _read(train_csv), _read(val_csv)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [int(r["step"]) for r in train]
        loss = [float(r["loss"]) for r in train]
        ax1.plot(steps, loss, lw=0.6, alpha=0.5, label="logged")
        k = max(1, len(loss) // 50)  # moving average over ~2% of the run: the trend under the noise
        if k > 1:
            avg = [sum(loss[max(0, i - k + 1):i + 1]) / len(loss[max(0, i - k + 1):i + 1])
                   for i in range(len(loss))]
            ax1.plot(steps, avg, lw=1.2, label=f"mean of {k}")
            ax1.legend(fontsize=7)
        ax1.set_yscale("log")
    ax1.set(xlabel="iteration", ylabel="Charbonnier loss (sum / batch)", title="training loss")
    names = sorted({r["name"] for r in val})
    for name in names:
        rows = [r for r in val if r["name"] == name]
        line, = ax2.plot([int(r["step"]) for r in rows], [float(r["psnr"]) for r in rows], marker=".",
                         label=name)
        ax2.axhline(float(rows[-1]["psnr_bicubic"]), color=line.get_color(), ls=":", lw=0.8)
    ax2.set(xlabel="iteration", ylabel="PSNR (dB)", title="held-out PSNR (dotted: bicubic)")
    if names:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    png = Path(png)
    tmp = png.with_name(f".{png.name}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png)


__all__ = ["plot_curves"]
