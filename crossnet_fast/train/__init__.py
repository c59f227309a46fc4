"""Training CrossNet (and the SISR baselines): ``train(config)``, resumable, bf16, DDP.

- ``train(config, resume=..., out=..., overrides=[...])``: see :func:`loop.train`.
- ``load_config(path_or_name, overrides)``: the paper's recipe is the default
  (``configs/paper_x4.toml``, ``paper_x8.toml``; ``smoke_cpu.toml`` for a CPU smoke run).
"""
from .config import CONFIG_DIR, TrainConfig, load_config
from .loop import train
from .models import SISRModel, TinyRefSR, build_model

__all__ = ["train", "load_config", "TrainConfig", "CONFIG_DIR", "build_model", "SISRModel", "TinyRefSR"]
