"""A model as one safetensors file: its weights, and its configuration as JSON in the file's metadata.

The one place that writes and reads model files. Two front doors call it: ``CrossNet.save`` /
``CrossNet.load`` (models/crossnet.py) and :mod:`crossnet_fast.checkpoint` (``save_model``,
``load_model``, ``read_config``). It never imports a model: the caller passes the model class and
its configuration class, so the models import this module and nothing here imports them back.

A model class used here provides ``model.config`` (a JSON-able dict of keyword arguments),
``Class.from_config(config, backend=...)`` and ``config.scale``; its configuration class is built
as ``ConfigClass(**stored_dict)``.

Loading never unpickles anything: safetensors holds raw tensors, the configuration is JSON, and the
model is rebuilt from the configuration by this package's own code.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ._atomic import atomic_path

FORMAT = "crossnet_fast.CrossNet"
# 1: the configuration has no "flow" key (every such file is a FlowNetS+ model; read as flow="flownet").
# 2: "flow" is stored; flow="correlation" models hold a "corrflow." estimator instead of "flownet.".
# A reader accepts every version up to its own.
FORMAT_VERSION = 2
METADATA_KEY = "crossnet_fast"  # metadata value: JSON {"format", "format_version", "config"}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def available_weights() -> list[str]:
    """Names accepted by :func:`read` (the ``*.safetensors`` files of the weights folder)."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name[: -len(".safetensors")] for p in WEIGHTS_DIR.glob("*.safetensors"))


def write(model: torch.nn.Module, path) -> Path:
    """Write ``model``'s weights and ``model.config`` to ``path`` (a .safetensors file), atomically.

    The file is written to a temporary name in the same folder and renamed over ``path``
    (``os.replace``), so readers never see a half-written checkpoint. Returns the path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: folder {str(path.parent)!r} does not exist")
    # Contiguous CPU copies: safetensors stores dense row-major bytes (channels_last weights too).
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {METADATA_KEY: json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config})}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path


def resolve(path_or_name) -> Path:
    """The file ``path_or_name`` names: an existing path, or a shipped name (``"crossnet-x4"``)."""
    if not isinstance(path_or_name, (str, os.PathLike)):
        raise TypeError(f"path_or_name must be a str or os.PathLike, got {type(path_or_name).__name__}")
    path = Path(path_or_name)
    if path.is_file():
        return path
    name = str(path_or_name)
    if _NAME.match(name) and not name.endswith(".safetensors"):
        shipped = WEIGHTS_DIR / f"{name}.safetensors"
        if shipped.is_file():
            return shipped
        names = available_weights()
        listed = ", ".join(names) if names else "none are shipped yet; pass the path of a .safetensors file"
        raise FileNotFoundError(
            f"path_or_name: {name!r} is neither a file nor a shipped weights name (available names: {listed})"
        )
    raise FileNotFoundError(f"path_or_name: no such file: {name!r}")


def read_config(path, config_class):
    """``config_class(**stored configuration)`` of a model file (reads the header only)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except SafetensorError as exc:
        raise ValueError(
            f"path_or_name: {str(path)!r} is not a safetensors file (truncated, corrupt or "
            f"another format: {exc}); crossnet_fast "
            "never unpickles .pth/.pt files: convert trusted weights with CrossNet.save"
        ) from exc
    if METADATA_KEY not in meta:
        raise ValueError(
            f"path_or_name: {str(path)!r} is not a crossnet_fast checkpoint "
            f"(no {METADATA_KEY!r} entry in its safetensors metadata)"
        )
    try:
        info = json.loads(meta[METADATA_KEY])
        if info.get("format") != FORMAT:
            raise ValueError(f"format is {info.get('format')!r}, expected {FORMAT!r}")
        if int(info.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"format_version {info['format_version']} is newer than this library's "
                f"{FORMAT_VERSION}; upgrade crossnet_fast"
            )
        return config_class(**info["config"])
    except (TypeError, KeyError, json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"path_or_name: {str(path)!r} has an unreadable configuration: {exc}") from exc


def read(
    path_or_name, model_class, config_class, device="cpu", backend: str = "auto", dtype=None, scale: int | None = None
):
    """Rebuild a ``model_class`` from a file written by :func:`write`; see
    :func:`crossnet_fast.checkpoint.load_model` for the arguments and the dtype rules.

    Returns the model in eval mode on ``device``, holding exactly the stored values.
    """
    path = resolve(path_or_name)
    cfg = read_config(path, config_class)
    if scale is not None and cfg.scale != scale:
        raise ValueError(
            f"path_or_name: {str(path)!r} holds x{cfg.scale} weights, expected x{scale} "
            f"(scale={scale}); use the x{scale} weights (e.g. crossnet-x{scale})"
        )
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be None or a floating torch.dtype, got {dtype!r}")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ValueError(
            f"path_or_name: {str(path)!r} is truncated or corrupt: its header is readable but "
            f"its tensors are not ({exc})"
        ) from exc
    for k, v in state.items():
        if v.is_floating_point() and (dtype is not None or v.dtype == torch.float16):
            state[k] = v.to(dtype or torch.float32)
    # Built on the meta device and given the stored tensors themselves (assign=True): no random
    # initialisation to throw away, and the (fp16 -> fp32 upcast) dtype is kept as it is.
    with torch.device("meta"):
        model = model_class.from_config(cfg, backend=backend)
    try:
        # clone(): fresh, aligned storage (safetensors may hand out views at odd offsets, and oneDNN
        # picks kernels, hence rounding, by alignment).
        model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"path_or_name: {str(path)!r} does not match its configuration {cfg}: {exc}") from exc
    return model.to(device).eval()


__all__ = [
    "write",
    "read",
    "read_config",
    "resolve",
    "available_weights",
    "WEIGHTS_DIR",
    "FORMAT",
    "FORMAT_VERSION",
    "METADATA_KEY",
]
