"""Kill -9 a training process at random moments, then resume it.

A tiny run (``TinyRefSR`` on a generated light field, a checkpoint every 5 steps, a CSV row every
step) is started with ``python -m crossnet_fast train``, killed with SIGKILL at a random moment
after its first checkpoint, resumed with ``--resume`` (again in a process that is killed), three
times, and finally resumed to the end. Each time:

- ``checkpoints/latest.json`` names a complete checkpoint (sizes and sha256 of its files match),
  and every checkpoint folder is complete (a kill during a save leaves only a hidden temporary
  folder, removed by the next save);
- the steps lost (done by the killed process after its last checkpoint) are at most
  ``checkpoint_every``;
- every loss logged, before and after each resume, is bit-identical to the loss of the same step
  in an uninterrupted run; so is the final model.

The kill moment: the process first writes a new checkpoint, then runs a seeded random number of
further steps (0 to 2 x checkpoint_every, so the kill can land in an update or in a checkpoint
save), then a random fraction of a step passes.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from crossnet_fast.cli import main
from crossnet_fast.train import run_state, train

from _images import save_png, texture  # noqa: E402
from _threads import one_thread  # noqa: F401  (autouse: one thread, as in the subprocesses)

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_EVERY = 5
ITERATIONS = 80
KILL_SEEDS = (11, 36, 22)  # 36: the kill follows a checkpoint step (likely inside its save)


def _data(root: Path) -> Path:
    """lf_a: 3x3 views of 80x80 (1 px disparity per view), lf_val: 2x2 (held out)."""
    base = texture(80, 80, 0)
    for name, n in (("lf_a", 3), ("lf_val", 2)):
        for r in range(n):
            for c in range(n):
                save_png(
                    np.roll(base, (r, c), axis=(0, 1)), root / name / f"{name}_{r * n + c + 1}_{r + 1}_{c + 1}.png"
                )
    return root


def _config(path: Path, data_root: Path) -> Path:
    path.write_text(f"""
[model]
name = "tiny"
scale = 4

[data]
root = {json.dumps(str(data_root))}
lightfields = ["lf_a", "lf_val"]
stereo = []
holdout_lightfields = ["lf_val"]
holdout_stereo = []
crop = [64, 64]
batch_size = 1
lightfield_repeats = 2

[optim]
iterations = {ITERATIONS}
milestones = [40]

[run]
device = "cpu"
checkpoint_every = {CHECKPOINT_EVERY}
keep_last = 100
log_every = 1
progress = false
tensorboard = false
plot = false

[val]
every = 0
views = [[0, 0, 1, 1]]
window = 64
max_size = 64
stereo = false
""")
    return path


def _losses(run: Path) -> dict[int, str]:
    """step -> loss as logged (``repr`` of the float: equal strings = bit-identical losses);
    a row cut short by the kill is ignored."""
    path = run / "train.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {
            int(r["step"]): r["loss"]
            for r in csv.DictReader(f)
            if None not in r.values() and r["step"].isdigit() and r["loss"]
        }


def _latest(run: Path):
    try:
        return json.loads((run / "checkpoints" / run_state.LATEST).read_text())
    except (OSError, ValueError):
        return None


def _wait(cond, proc, what: str, timeout: float = 120.0):
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"training exited ({proc.returncode}) before {what}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def _check_checkpoints(run: Path) -> int:
    """latest.json names a complete checkpoint, every checkpoint folder is complete; its step."""
    latest = _latest(run)
    assert latest is not None, "no latest.json after the first checkpoint"
    root = run / "checkpoints"
    run_state.verify(root / latest["dir"])  # sizes and sha256 of its files match state.json
    assert latest["dir"] == run_state.step_dir_name(latest["step"])
    for _, folder in run_state.list_checkpoints(root):
        run_state.verify(folder)
    return int(latest["step"])


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path):
    cfg = _config(tmp_path / "tiny.toml", _data(tmp_path / "data"))
    reference = train(cfg, out=tmp_path / "straight", quiet=True)
    want = {s: repr(loss) for s, loss in reference["losses"]}
    assert sorted(want) == list(range(1, ITERATIONS + 1)) and _losses(tmp_path / "straight") == want

    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    resumed_from, kills = 0, []
    for i, seed in enumerate(KILL_SEEDS):
        rnd = random.Random(seed)
        more_steps, fraction = rnd.randrange(2 * CHECKPOINT_EVERY), rnd.random()
        argv = [sys.executable, "-m", "crossnet_fast", "train", "--config", str(cfg), "--out", str(run)]
        if i:
            argv += ["--resume", str(run)]
        with open(tmp_path / f"log{i}.txt", "wb") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                # The first checkpoint of this process, then a random number of steps more.
                _wait(lambda: (_latest(run) or {}).get("step", 0) > resumed_from, proc, "a checkpoint")
                first = _latest(run)["step"]
                target = first + more_steps
                _wait(lambda: max(_losses(run), default=0) >= target, proc, f"step {target}")
                time.sleep(fraction * 0.01)  # a random moment inside the next step (or save)
                proc.send_signal(signal.SIGKILL)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, (tmp_path / f"log{i}.txt").read_text()
        logged = _losses(run)
        done = max(logged)
        saved = _check_checkpoints(run)
        in_save = bool(list((run / "checkpoints").glob(".tmp-step_*")))  # killed while saving
        kills.append(
            {
                "resumed_from": resumed_from,
                "steps_done": done,
                "checkpoint": saved,
                "lost": done - saved,
                "killed_in_a_save": in_save,
            }
        )
        # At most the steps since the last checkpoint are lost; everything logged, including the
        # lost steps, equals the uninterrupted run.
        assert 0 <= done - saved <= CHECKPOINT_EVERY, kills
        assert saved > resumed_from, kills
        assert all(logged[s] == want[s] for s in logged), kills
        resumed_from = saved

    # Resume to the end in this process, through the CLI.
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume", str(run)]) == 0
    print("kills:", kills)
    logged = _losses(run)
    assert sorted(logged) == list(range(1, ITERATIONS + 1))  # one row per step: reads like one run
    diff = [s for s in logged if logged[s] != want[s]]
    assert not diff, f"losses differ from the uninterrupted run at steps {diff[:10]} ({kills})"
    a, b = load_file(str(tmp_path / "straight" / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _check_checkpoints(run) == ITERATIONS
    left = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not left, f"temporary files of killed saves left behind: {left}"
