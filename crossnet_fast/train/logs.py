"""Run logs on rank 0: CSV always, TensorBoard if importable, a PNG of the curves if matplotlib is.

``train.csv``: step, lr, loss (global mean, full precision), grad_norm, skipped, it_s, elapsed_s,
max_mem_gb (peak CUDA memory of rank 0; 0 on the CPU).
``val.csv``: step, name, psnr, psnr_bicubic, gain (dB). On resume, rows of steps after the
checkpoint (logged before a crash) are dropped, so the files read like one uninterrupted run.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

from .._atomic import atomic_path

TRAIN_FIELDS = ["step", "lr", "loss", "grad_norm", "skipped", "it_s", "elapsed_s", "max_mem_gb"]
VAL_FIELDS = ["step", "name", "psnr", "psnr_bicubic", "gain"]


def _truncate_after(path: Path, fields, step: int) -> None:
    if not path.is_file():
        return
    with open(path, newline="") as f:
        # A row cut short by a crash (missing fields) is dropped with the rows after the checkpoint.
        rows = [
            r
            for r in csv.DictReader(f)
            if None not in r and None not in r.values() and r["step"].isdigit() and int(r["step"]) <= step
        ]
    with atomic_path(path) as tmp:  # a failed write leaves the old log and no partial copy
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


class RunLog:
    """Append-only CSV logs (+ optional TensorBoard) in ``out``; inert when ``enabled`` is False."""

    def __init__(self, out, start_step: int = 0, enabled: bool = True, tensorboard: bool = True, plot: bool = True):
        self.out, self.enabled, self.notes = Path(out), enabled, []
        self.tb = None
        self.plot_enabled = plot
        if not enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.train_path, self.val_path = self.out / "train.csv", self.out / "val.csv"
        for path, fields in ((self.train_path, TRAIN_FIELDS), (self.val_path, VAL_FIELDS)):
            if start_step > 0:
                _truncate_after(path, fields, start_step)
            else:
                path.unlink(missing_ok=True)
        if tensorboard:
            if importlib.util.find_spec("tensorboard") is not None:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tensorboard"), purge_step=start_step or None)
            else:
                self.notes.append("tensorboard is not installed: logging to CSV only")
        if plot and importlib.util.find_spec("matplotlib") is None:
            self.plot_enabled = False
            self.notes.append("matplotlib is not installed: no curves.png (the CSVs hold the data)")

    def _append(self, path: Path, fields, rows) -> None:
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            if new:
                w.writeheader()
            w.writerows(rows)

    def train(self, rows: list[dict]) -> None:
        if not self.enabled or not rows:
            return
        self._append(self.train_path, TRAIN_FIELDS, rows)
        if self.tb is not None:
            for r in rows:
                self.tb.add_scalar("train/loss", r["loss"], r["step"])
                self.tb.add_scalar("train/lr", r["lr"], r["step"])
                self.tb.add_scalar("train/grad_norm", r["grad_norm"], r["step"])

    def val(self, step: int, results: list[dict]) -> None:
        if not self.enabled or not results:
            return
        rows = [
            {
                "step": step,
                "name": r["name"],
                "psnr": r["psnr"],
                "psnr_bicubic": r["psnr_bicubic"],
                "gain": r["psnr"] - r["psnr_bicubic"],
            }
            for r in results
        ]
        self._append(self.val_path, VAL_FIELDS, rows)
        if self.tb is not None:
            for r in rows:
                self.tb.add_scalar(f"val/{r['name']}/psnr", r["psnr"], step)
                self.tb.add_scalar(f"val/{r['name']}/gain_over_bicubic", r["gain"], step)
            self.tb.add_scalar("val/mean_psnr", sum(r["psnr"] for r in rows) / len(rows), step)
        self.plot()

    def plot(self) -> None:
        """Write ``curves.png`` (loss, and PSNR per held-out pair with its bicubic level)."""
        if not (self.enabled and self.plot_enabled):
            return
        plot_curves(self.train_path, self.val_path, self.out / "curves.png")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


# -- curves.png ------------------------------------------------------------------------------------


def _read(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(train_csv, val_csv, png) -> None:
    """``png``: the loss curve of ``train_csv`` and the PSNR curves of ``val_csv`` (needs matplotlib;
    :class:`RunLog` checks that it is importable)."""
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
            avg = [
                sum(loss[max(0, i - k + 1) : i + 1]) / len(loss[max(0, i - k + 1) : i + 1]) for i in range(len(loss))
            ]
            ax1.plot(steps, avg, lw=1.2, label=f"mean of {k}")
            ax1.legend(fontsize=7)
        ax1.set_yscale("log")
    ax1.set(xlabel="iteration", ylabel="Charbonnier loss (sum / batch)", title="training loss")
    names = sorted({r["name"] for r in val})
    for name in names:
        rows = [r for r in val if r["name"] == name]
        (line,) = ax2.plot([int(r["step"]) for r in rows], [float(r["psnr"]) for r in rows], marker=".", label=name)
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


__all__ = ["RunLog", "plot_curves", "TRAIN_FIELDS", "VAL_FIELDS"]
