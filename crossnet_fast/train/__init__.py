"""Training CrossNet (and the SISR baselines): ``train(config)``, resumable, bf16, DDP.

- ``train(config, resume=..., out=..., overrides=[...])``: see :func:`loop.train`.
- ``load_config(path_or_name, overrides)``: the paper's recipe is the default
  (``configs/paper_x4.toml``, ``paper_x8.toml``; ``smoke_cpu.toml`` for a CPU smoke run).

The files, one purpose each (``loop`` imports the others; none imports ``loop``):

- ``config``: the ``[sections]`` of a run as dataclasses, TOML/YAML loading, overrides; the lr schedule.
- ``pairs``: where training and held-out pairs come from, and the deterministic training stream.
- ``augment``: crops, parallax shifts, flips, photometric jitter, synthetic references.
- ``networks``: the network ``[model]`` names (CrossNet from ``crossnet_fast.models``, SISR, tiny).
- ``losses``: the auxiliary flow losses (the main Charbonnier loss is ``crossnet_fast.ops``').
- ``run_state``: training checkpoints on disk (atomic, verified, pickle-free) and RNG states.
- ``logs``: CSV / TensorBoard logs and ``curves.png``.
- ``distributed``: torch.distributed set-up and the collectives the loop uses.
- ``loop``: :func:`train`, the update, checkpoint/validation cadence, stop requests.
"""

from .config import CONFIG_DIR, TrainConfig, load_config
from .loop import train
from .networks import SISRModel, TinyRefSR, build_model

__all__ = ["train", "load_config", "TrainConfig", "CONFIG_DIR", "build_model", "SISRModel", "TinyRefSR"]
