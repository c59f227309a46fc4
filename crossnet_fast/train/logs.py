"""Run logs on rank 0: CSV always, TensorBoard if importable, a PNG of the curves if matplotlib is.

``train.csv``: step, lr, loss (global mean, full precision), grad_norm, skipped, it_s, elapsed_s,
max_mem_gb (peak CUDA memory of rank 0; 0 on the CPU).
``val.csv``: step, name, psnr, psnr_bicubic, gain (dB). On resume, rows of steps after the
checkpoint (logged before a crash) are dropped, so the files read like one uninterrupted run.
"""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from .._atomic import atomic_path

TRAIN_FIELDS = ["step", "lr", "loss", "grad_norm", "skipped", "it_s", "elapsed_s", "max_mem_gb"]
VAL_FIELDS = ["step", "name", "psnr", "psnr_bicubic", "gain"]


def _truncate_after(path: Path, fields, step: int) -> None:
    if not path.is_file():
        return
    with open(path, newline="") as f:
        # A row cut short by a crash (missing fields) is dropped with the rows after the checkpoint.
        rows = [r for r in csv.DictReader(f) if None not in r and None not in r.values()
                and r["step"].isdigit() and int(r["step"]) <= step]
    with atomic_path(path) as tmp:  # a failed write leaves the old log and no partial copy
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


class RunLog:
    """Append-only CSV logs (+ optional TensorBoard) in ``out``; inert when ``enabled`` is False."""

    def __init__(self, out, start_step: int = 0, enabled: bool = True, tensorboard: bool = True,
                 plot: bool = True):
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
        rows = [{"step": step, "name": r["name"], "psnr": r["psnr"], "psnr_bicubic": r["psnr_bicubic"],
                 "gain": r["psnr"] - r["psnr_bicubic"]} for r in results]
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
        from .plot import plot_curves

        plot_curves(self.train_path, self.val_path, self.out / "curves.png")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


__all__ = ["RunLog", "TRAIN_FIELDS", "VAL_FIELDS"]
