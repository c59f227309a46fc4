"""Seeding and saving/restoring every RNG the run touches (python, numpy, torch CPU and CUDA).

The data stream does not depend on these (it is seeded per sample, see ``dataset``), but the
model's initialisation and anything a user plugs in (dropout, custom augmentations) does, so
they are saved per rank and restored on resume.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture() -> dict:
    """The current RNG states (encode with ``state_io.encode``)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    """Set the RNG states captured by :func:`capture`."""
    random.setstate(_tuplify(state["python"]))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in states])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


__all__ = ["seed_everything", "capture", "restore"]
