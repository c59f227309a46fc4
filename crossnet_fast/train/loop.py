"""``train(config)``: the training loop (single process or DDP under torchrun).

One update: the batch of step t (a pure function of t, see ``pairs``) -> model(lr, ref) under
bf16 autocast on CUDA (channels_last there too) -> Charbonnier (eps 1e-3, summed over C, H, W,
divided by the batch; DDP's gradient averaging makes it sum / global batch) in fp32 -> backward ->
global grad-norm (clipped if ``optim.grad_clip``; a non-finite norm skips the update on every rank
alike) -> Adam with the lr of ``config.lr_at(t)``. The model never sees the HR image: only the LR
input and the reference (the flow net's input is the upsampled LR, built inside the model).

Checkpoints every ``run.checkpoint_every`` steps and at the end (rank 0 writes; all RNG states are
gathered), validation every ``val.every`` steps on rank 0, Ctrl-C/SIGTERM -> checkpoint and return.

Stop requests: the first SIGINT/SIGTERM sets a flag; the loop sees it between steps (so the saved
state is always that of a whole number of updates), saves and returns. A second Ctrl-C raises
KeyboardInterrupt at once (the loop then saves only if no update was in progress).
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .._atomic import atomic_path
from ..baselines import bicubic
from ..infer import super_resolve
from ..metrics import psnr
from ..models import CrossNet
from ..ops import charbonnier
from . import distributed, run_state
from .config import RESUME_HARMLESS, TrainConfig, config_differences, load_config, lr_at
from .logs import RunLog
from .losses import aux_weight, photometric_loss, smoothness_loss
from .networks import build_model
from .pairs import Sources, StepBatchSampler, TrainPairs


def _worker_init(_):
    torch.set_num_threads(1)  # workers decode and degrade; leave the cores to the main process


def _collate(items: list[dict]) -> dict:
    return {
        k: torch.stack([it[k] for it in items]) if isinstance(items[0][k], torch.Tensor) else [it[k] for it in items]
        for k in items[0]
    }


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class StopRequest:
    """Context manager installing the SIGINT/SIGTERM handlers that ask the loop to stop (main thread
    only; elsewhere a no-op). See the module docstring."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
        return False


@torch.no_grad()
def validate(model, pairs: list[dict], precision: str = "fp32", window: int = 512) -> list[dict]:
    """Validation on held-out real view pairs: PSNR of the model and of bicubic upsampling.

    Evaluates ``model`` (on its device) on ``pairs`` (dicts of lr (3, h, w), ref, hr (3, H, W)
    float32 CPU tensors, name).

    The whole image is super-resolved (``super_resolve`` pads to multiples of 64 and slides
    ``window``-sized windows), clamped to [0, 1], and compared with the HR view: PSNR on RGB,
    no border crop (the paper's protocol). Returns one dict per pair: name, psnr, psnr_bicubic (dB).
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for s in pairs:
            lr, ref, hr = s["lr"][None], s["ref"][None], s["hr"][None]
            sr = super_resolve(model, lr, ref, window=window, stride=window // 2, precision=precision).cpu().float()
            bic = bicubic(lr, model.scale, size=tuple(hr.shape[-2:])).clamp(0, 1)
            out.append({"name": s["name"], "psnr": float(psnr(sr, hr)[0]), "psnr_bicubic": float(psnr(bic, hr)[0])})
    finally:
        model.train(was_training)
    return out


class _Trainer:
    """One call of :func:`train` on one process: set up in the order below, then :meth:`run`."""

    def __init__(self, cfg: TrainConfig, info, device, model, resume, max_steps, quiet):
        self.cfg, self.info, self.device = cfg, info, device
        self.max_steps, self.quiet = max_steps, quiet
        self.out = Path(cfg.run.out)
        self.ckroot = self.out / "checkpoints"
        # The order matters: the seed before the model's random initialisation, the saved RNG
        # states restored after it, the model on its device before the optimizer sees it.
        self._configure_torch()
        state, weights = self._read_checkpoint(resume) if resume else (None, None)
        self._build_model(model, state, weights)
        start_position = self._build_optimizer(state)
        self.start_step = self.step
        self._wrap_ddp()
        self._build_data(state, start_position)
        self._open_logs()
        self.losses: list[tuple[int, float]] = []
        self.val_results: list[dict] = []
        self._pending: list[tuple] = []
        self._t_flush = time.perf_counter()
        self._t0 = time.perf_counter()
        self.last_checkpoint = None
        self.replica_digests: list = []

    # -- set-up steps --------------------------------------------------------------------------
    def _configure_torch(self) -> None:
        """Precision, memory layout, determinism switches, and the seed of every RNG."""
        r, device = self.cfg.run, self.device
        self.precision = ("bf16" if device.type == "cuda" else "fp32") if r.precision == "auto" else r.precision
        self.channels_last = (device.type == "cuda") if r.channels_last == "auto" else bool(r.channels_last)
        if r.deterministic:
            # cuBLAS needs this before its first use to be deterministic (set by train() early).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels once
        run_state.seed_everything(r.seed)  # same seed on every rank: identical initial weights

    def _read_checkpoint(self, resume) -> tuple[dict, Path]:
        """(state, weights file) of the checkpoint ``resume`` names; refuses a different model, and
        says which other settings changed since it was written."""
        r = self.cfg.run
        folder = run_state.find(resume, check=r.verify_checkpoints)
        state, weights = run_state.load(folder, check=r.verify_checkpoints)
        self.resumed_from = folder
        diffs = [
            d
            for d in config_differences(state.get("config", {}), self.cfg.to_dict())
            if not d.startswith(RESUME_HARMLESS)
        ]
        model_diffs = [d for d in diffs if d.startswith("model.") and not d.startswith("model.init")]
        if model_diffs:
            raise ValueError(f"resume: the checkpoint's model differs from the config: {model_diffs}")
        if diffs:
            self.note(
                f"resume: config differs from the checkpoint's ({'; '.join(diffs)}); "
                "the continuation will not match an uninterrupted run exactly"
            )
        return state, weights

    def _build_model(self, model, state, weights) -> None:
        """``self.model`` (the given one, or the one ``[model]`` describes) with its starting weights,
        on the device; ``self.params``: the parameters the optimizer updates."""
        cfg = self.cfg
        self.model = model if model is not None else build_model(cfg.model)
        self._load_starting_weights(state, weights)
        self._freeze_unused()
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.aux_losses = cfg.optim.photometric > 0 or cfg.optim.smoothness > 0
        if self.aux_losses and not isinstance(self.model, CrossNet):
            raise ValueError(
                "config optim.photometric/optim.smoothness: flow losses need model.name = "
                f"'crossnet', got {type(self.model).__name__}"
            )

    def _load_starting_weights(self, state, weights) -> None:
        """A resumed run: the checkpoint's weights. A fresh one: ``model.init`` (the whole model),
        then ``model.init_sisr`` (overriding the SISR front end), if set; else the random ones."""
        m = self.cfg.model
        if m.init and state is None:
            left = run_state.load_weights(self.model, Path(m.init), strict=m.init_strict)
            self.note(
                f"initialised from {m.init}"
                + (
                    f" ({len(left)} tensors absent there keep their fresh initialisation: {left[:4]}...)"
                    if left
                    else ""
                )
            )
        if m.init_sisr and state is None:
            if not hasattr(self.model, "sisr"):
                raise ValueError("config model.init_sisr: the model has no SISR front end")
            # A SISRModel stores its network under "net."; CrossNet's front end is "sisr.".
            run_state.load_weights(self.model.sisr, Path(m.init_sisr), strict=True, prefix_map=("net.", ""))
            self.note(f"SISR front end initialised from {m.init_sisr}")
        if weights is not None:
            run_state.load_weights(self.model, weights)

    def _build_optimizer(self, state) -> int | None:
        """``self.opt``, ``self.step``, ``self.skipped``, and on resume the saved optimizer and RNG
        states; returns the saved data position (None for a fresh run)."""
        o, info = self.cfg.optim, self.info
        # One Adam for the whole run: lr steps only change param_group["lr"] (moments kept).
        self.opt = torch.optim.Adam(self.params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        self.step, start_position, self.skipped = 0, None, 0
        if state is not None:
            self.opt.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
            self.skipped = int(state.get("skipped", 0))
            start_position = int(state["data"]["next_position"])
            ranks = state["rng"]
            if len(ranks) != info.world:
                self.note(f"resume: saved with {len(ranks)} processes, running {info.world}")
            run_state.restore_rng(ranks[info.rank % len(ranks)])
        return start_position

    def _wrap_ddp(self) -> None:
        """``self.ddp``: the model the loop calls (DistributedDataParallel under torchrun)."""
        self.ddp = self.model
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            dev = self.device
            self.ddp = DDP(
                self.model,
                device_ids=[dev.index] if dev.type == "cuda" else None,
                find_unused_parameters=self.cfg.run.find_unused_parameters,
            )

    def _build_data(self, state, start_position) -> None:
        """The training stream from ``self.step`` on (``self.loader``) and the held-out pairs."""
        cfg, info, device = self.cfg, self.info, self.device
        self.sources = Sources(cfg.data, cfg.model.scale, cfg.val)
        self.dataset = TrainPairs(self.sources, cfg)
        if state is not None:
            saved = state["data"]
            if saved.get("epoch_size") != self.dataset.epoch_size or saved.get("seed") != cfg.run.seed:
                self.note(
                    "resume: the data (epoch size or seed) changed since the checkpoint; "
                    "the sample order will differ from an uninterrupted run"
                )
        self.sampler = StepBatchSampler(
            self.step, cfg.optim.iterations, cfg.data.batch_size, info.rank, info.world, start_position
        )
        nw = cfg.data.num_workers
        self.loader = DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=nw,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
            worker_init_fn=_worker_init if nw else None,
            prefetch_factor=4 if nw else None,
            persistent_workers=False,
        )
        self.val_pairs = self.sources.validation_pairs(cfg.data.degradation, cfg.val.max_size) if info.main else []

    def _open_logs(self) -> None:
        """The run's logs and ``<out>/config.json`` (rank 0 writes)."""
        r = self.cfg.run
        self.log = RunLog(self.out, self.step, enabled=self.info.main, tensorboard=r.tensorboard, plot=r.plot)
        for n in self.log.notes:
            self.note(n)
        if self.info.main:
            self.out.mkdir(parents=True, exist_ok=True)
            run_state.write_json_atomic(self.out / "config.json", self.cfg.to_dict())

    # -- helpers -------------------------------------------------------------------------------
    def note(self, msg: str) -> None:
        if self.info.main and not self.quiet:
            print(f"[train] {msg}", flush=True)

    def _freeze_unused(self) -> None:
        """CrossNet's ``decoder.fusion2`` is never evaluated (kept for the released state dict):
        freeze it so DDP does not wait for gradients that never come."""
        dec = getattr(self.model, "decoder", None)
        if dec is not None and hasattr(dec, "fusion2"):
            for p in dec.fusion2.parameters():
                p.requires_grad_(False)

    def _flush(self) -> None:
        """Reduce the buffered per-step losses over ranks and write them to the logs."""
        if not self._pending:
            return
        losses = distributed.mean(self.info, torch.stack([p[2] for p in self._pending]).float())
        norms = torch.stack([p[3] for p in self._pending]).float().cpu().tolist()
        losses = losses.cpu().tolist()
        now = time.perf_counter()
        it_s = len(self._pending) / max(now - self._t_flush, 1e-9)
        mem_gb = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3) if self.device.type == "cuda" else 0.0
        self._t_flush = now
        rows = []
        for (step, lr, _, _, skipped), loss, gn in zip(self._pending, losses, norms):
            self.losses.append((step, loss))
            rows.append(
                {
                    "step": step,
                    "lr": lr,
                    "loss": repr(loss),
                    "grad_norm": gn,
                    "skipped": int(skipped),
                    "it_s": round(it_s, 4),
                    "elapsed_s": round(now - self._t0, 3),
                    "max_mem_gb": mem_gb,
                }
            )
        self._pending.clear()
        self.log.train(rows)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{losses[-1]:.4g}", lr=f"{rows[-1]['lr']:.2e}", refresh=False)

    def replica_digest(self) -> str:
        """sha256 of every parameter's fp32 bytes (bitwise identity of DDP replicas)."""
        h = hashlib.sha256()
        for p in _unwrap(self.model).parameters():
            h.update(p.detach().float().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()

    def save(self) -> None:
        """Checkpoint the current step (collective: every rank must call it at the same step).

        Under DDP every rank first hashes its parameters; a mismatch (replicas drifted apart, e.g.
        through a non-deterministic kernel or a rank-local update) stops the run loudly.
        """
        self._flush()
        digest = self.replica_digest() if self.info.enabled else None
        digests = distributed.gather_objects(self.info, digest)
        if len(set(digests)) > 1:
            raise RuntimeError(f"DDP replicas differ at step {self.step}: parameter digests {digests}")
        self.replica_digests = digests
        states = distributed.gather_objects(self.info, run_state.capture_rng())
        if self.info.main:
            d = self.cfg.data
            state = {
                "optimizer": self.opt.state_dict(),
                "rng": states,
                "data": {
                    "next_position": self.sampler.position_of(self.step),
                    "epoch_size": self.dataset.epoch_size,
                    "seed": self.cfg.run.seed,
                    "global_batch": d.batch_size * self.info.world,
                    "world": self.info.world,
                },
                "schedule": {"next_lr": lr_at(self.step, self.cfg.optim)},
                "skipped": self.skipped,
                "replica_digests": digests,
                "config": self.cfg.to_dict(),
            }
            self.last_checkpoint = run_state.save(self.ckroot, self.step, _unwrap(self.model), state)
            run_state.prune(self.ckroot, self.cfg.run.keep_last)
        distributed.barrier(self.info)

    def run_validation(self) -> None:
        if self.info.main and self.val_pairs:
            res = validate(_unwrap(self.model), self.val_pairs, self.cfg.val.precision, self.cfg.val.window)
            self.val_results = res
            self.log.val(self.step, res)
            mean = sum(r["psnr"] for r in res) / len(res)
            gain = mean - sum(r["psnr_bicubic"] for r in res) / len(res)
            msg = f"step {self.step}: held-out PSNR {mean:.2f} dB ({gain:+.2f} dB over bicubic)"
            if self.bar is not None:
                self.bar.write(msg)
            elif not self.quiet:
                print(msg, flush=True)
        distributed.barrier(self.info)

    def export_final(self) -> Path | None:
        """``<out>/model.safetensors``: the final weights (for CrossNet, readable by load_model)."""
        if not self.info.main:
            return None
        path = self.out / "model.safetensors"
        # A failed write (full disk, ...) leaves the old file and no partial one, and names ``path``.
        with atomic_path(path) as tmp:
            run_state.save_weights(_unwrap(self.model), Path(tmp))
        return path

    # -- the loop ------------------------------------------------------------------------------
    def _mismatch(self, ref: torch.Tensor) -> torch.Tensor:
        """``data.mismatch_fraction`` of the references (N, 3, H, W) swapped for the next sample's
        (the batch rolled by one). The draw is a function of (seed, step), so a resumed run swaps
        the same samples."""
        frac = self.cfg.data.mismatch_fraction
        if frac <= 0 or ref.shape[0] < 2:
            return ref
        g = torch.Generator().manual_seed(self.cfg.run.seed * 1_000_003 + self.step)
        swap = (torch.rand(ref.shape[0], generator=g) < frac).to(ref.device)
        return torch.where(swap.view(-1, 1, 1, 1), ref.roll(1, 0), ref)

    def _update(self, batch) -> None:
        cfg, dev = self.cfg, self.device
        lr_now = lr_at(self.step, cfg.optim)
        _set_lr(self.opt, lr_now)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        lr_img = batch["lr"].to(dev, non_blocking=True).contiguous(memory_format=fmt)
        ref = batch["ref"].to(dev, non_blocking=True).contiguous(memory_format=fmt)
        hr = batch["hr"].to(dev, non_blocking=True)
        ref = self._mismatch(ref)
        o = cfg.optim
        w_photo = aux_weight(self.step, o.iterations, o.photometric, o.photometric_end)
        w_smooth = aux_weight(self.step, o.iterations, o.smoothness, 1.0)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            if self.aux_losses:
                parts = self.ddp(lr_img, ref, return_parts=True)  # the HR image is never an input
                out = parts["out"]
            else:
                out = self.ddp(lr_img, ref)
        # fp32 loss whatever the autocast dtype; plain layout for both operands (3 channels: cheap).
        loss = charbonnier(out.float().contiguous(), hr.float().contiguous(), eps=o.loss_eps, reduction="batch")
        if self.aux_losses:
            # The reported loss stays the reconstruction loss alone (comparable across recipes).
            total = loss
            if w_photo > 0:
                total = total + w_photo * photometric_loss(
                    parts["flows"], parts["lr_up"], parts["flow_ref"], eps=o.loss_eps
                )
            if w_smooth > 0:
                total = total + w_smooth * smoothness_loss(parts["flows"], hr[0].numel())
        else:
            total = loss
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        gn = torch.nn.utils.clip_grad_norm_(self.params, clip)
        # DDP has averaged the gradients, so every rank takes the same decision here.
        ok = bool(torch.isfinite(gn)) or not cfg.optim.skip_nonfinite
        self._in_update = True
        if ok:
            self.opt.step()
        self._in_update = False
        self.skipped += 0 if ok else 1
        self.step += 1
        self._pending.append((self.step, lr_now, loss.detach(), gn.detach(), not ok))

    def run(self) -> dict:
        cfg, r = self.cfg, self.cfg.run
        iterations = cfg.optim.iterations
        stopped = None
        self._in_update = False
        self.bar = None
        if self.info.main and r.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=iterations,
                initial=self.step,
                unit="it",
                dynamic_ncols=True,
                desc=f"train x{cfg.model.scale}",
                smoothing=0.05,
            )
        if self.step >= iterations:
            self.note(f"already at step {self.step} of {iterations}: nothing to train")
        with StopRequest() as stop:
            batches = None
            try:
                batches = iter(self.loader)
                while self.step < iterations:
                    if self.max_steps is not None and self.step - self.start_step >= self.max_steps:
                        stopped = "max_steps"
                        break
                    self._update(next(batches))
                    if self.bar is not None:
                        self.bar.update(1)
                    s = self.step
                    if s % r.log_every == 0:
                        self._flush()
                    if s % r.checkpoint_every == 0 and s < iterations:
                        self.save()
                    if cfg.val.every and s % cfg.val.every == 0 and s < iterations:
                        self.run_validation()
                    late = bool(r.max_minutes) and time.perf_counter() - self._t0 >= 60.0 * r.max_minutes
                    # One small all-reduce per step: every rank stops after the same update.
                    if distributed.any_true(self.info, stop.requested or late, self.device):
                        stopped = stop.signal_name or ("max_minutes" if late else "signal")
                        break
            except KeyboardInterrupt:
                # A second Ctrl-C, or no handler (not the main thread). The parameters are those of
                # a whole number of updates unless Adam was mid-step: then keep the last checkpoint.
                if self._in_update or self.info.enabled:
                    self.note(
                        "interrupted during an update (or under DDP): not saving; resume from "
                        f"the last checkpoint in {self.ckroot}"
                    )
                    raise
                self.note(f"interrupted at step {self.step}: saving a checkpoint")
                self.save()
                raise
            finally:
                # Stop the DataLoader workers now. After an error (a bad image read in a worker) the
                # iterator is kept alive by a reference cycle through the traceback, and when the
                # garbage collector gets to it, stopping the workers waits for a 5 s timeout.
                shutdown = getattr(batches, "_shutdown_workers", None)
                if shutdown is not None:
                    shutdown()
                if self.bar is not None:
                    self.bar.close()
        self._flush()
        if self.step > self.start_step or stopped:
            self.save()
        if stopped:
            self.note(
                f"stopped ({stopped}) at step {self.step}; checkpoint {self.last_checkpoint}; "
                f"continue with --resume {self.out}"
            )
        else:
            self.run_validation()
        final = self.export_final() if not stopped else None
        self.log.close()
        return {
            "out": str(self.out),
            "step": self.step,
            "losses": self.losses,
            "val": self.val_results,
            "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
            "model": str(final) if final else None,
            "stopped": stopped,
            "skipped": self.skipped,
            "precision": self.precision,
            "replica_digests": self.replica_digests,
            "channels_last": self.channels_last,
            "world": self.info.world,
        }


def train(
    config=None, *, model=None, resume=None, out=None, overrides=None, max_steps=None, quiet: bool = False
) -> dict:
    """Train (or continue training) a model.

    Args:
        config: a TrainConfig, a dict, a .toml/.yaml path or a shipped config name ("paper_x4",
            "paper_x8", "smoke_cpu", "synthetic_x4"); None = the paper's defaults.
        model: optional ``nn.Module`` to train instead of the one ``[model]`` describes (it must
            take ``(lr, ref)`` and have an int ``scale``); pass the same kind again to resume.
        resume: a run folder (its ``checkpoints/latest.json``) or one checkpoint folder.
        out: output folder (overrides ``run.out``).
        overrides: "section.key=value" strings (TOML values), applied on top of ``config``.
        max_steps: stop (with a checkpoint) after this many updates in this call.
        quiet: no messages (the progress bar follows ``run.progress``).

    Returns a dict: ``out``, ``step``, ``losses`` (list of (step, global mean loss), this call's),
    ``val`` (last validation: name, psnr, psnr_bicubic), ``checkpoint``, ``model`` (the final
    weights file, or None if stopped early), ``stopped`` (None, "max_steps", "max_minutes",
    "SIGINT", "SIGTERM"), ``skipped`` (updates skipped for a non-finite gradient),
    ``replica_digests`` (DDP: per-rank parameter sha256 at the last checkpoint).
    """
    cfg = load_config(config, overrides)
    if out is not None:
        cfg.run.out = str(out)
    if model is not None and not isinstance(getattr(model, "scale", None), int):
        raise TypeError("model must have an int `scale` attribute (the validation needs it)")
    if model is not None and model.scale != cfg.model.scale:
        raise ValueError(f"model.scale is {model.scale} but config model.scale is {cfg.model.scale}")
    latest = Path(cfg.run.out) / "checkpoints" / run_state.LATEST
    if resume is None and latest.is_file():
        # A fresh run there would delete the old run's logs and keep its checkpoints of the same
        # steps (a later resume would mix the two runs): never destroy an existing run.
        raise ValueError(
            f"run.out: {cfg.run.out} already holds a training run ({latest}); continue "
            f"it with --resume {cfg.run.out} (resume=...), or choose another output "
            "folder (--out / run.out)"
        )
    if cfg.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    info, device = distributed.setup(cfg.run.device)
    try:
        return _Trainer(cfg, info, device, model, resume, max_steps, quiet).run()
    finally:
        distributed.teardown(info)


__all__ = ["train"]
