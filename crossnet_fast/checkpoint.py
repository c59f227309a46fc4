"""CrossNet checkpoints: safetensors weights with the model configuration in the file's metadata.

The public functions for CrossNet files (``crossnet_fast.load_model`` is :func:`load_model`). The
file format itself is written and read in one place, :mod:`crossnet_fast._model_file`, which
``CrossNet.save`` / ``CrossNet.load`` use too; this module only binds it to :class:`CrossNet`.

Loading never unpickles anything: safetensors holds raw tensors, the configuration is JSON, and the
model is rebuilt from the configuration by this package's own code.
"""

from __future__ import annotations

from pathlib import Path

from . import _model_file

# Importable from here as before. WEIGHTS_DIR is a copy: the loaders read _model_file.WEIGHTS_DIR.
from ._model_file import FORMAT, FORMAT_VERSION, METADATA_KEY, WEIGHTS_DIR, available_weights  # noqa: F401
from .models.crossnet import CrossNet, CrossNetConfig


def save_model(model: CrossNet, path) -> Path:
    """Write ``model``'s weights and configuration to ``path`` (a .safetensors file), atomically.

    The file is written to a temporary name in the same folder and renamed over ``path``
    (``os.replace``), so readers never see a half-written checkpoint. Returns the path.
    """
    if not isinstance(model, CrossNet):
        raise TypeError(f"model must be a CrossNet, got {type(model).__name__}")
    return _model_file.write(model, path)


def read_config(path) -> CrossNetConfig:
    """The :class:`CrossNetConfig` stored in a checkpoint (reads the header only)."""
    return _model_file.read_config(path, CrossNetConfig)


def load_model(path_or_name, device="cpu", backend: str = "auto", dtype=None, scale: int | None = None) -> CrossNet:
    """Rebuild a CrossNet from a checkpoint written by :meth:`CrossNet.save`.

    Args:
        path_or_name: a ``.safetensors`` path, or the name of shipped weights (e.g. ``"crossnet-x4"``,
            see :func:`available_weights`).
        device: where to put the model.
        backend: the warp backend of the model.
        dtype: None (default): the stored dtype, except that float16 tensors become float32
            (float16 is how shipped weights are stored, to halve the file; CPU kernels compute in
            fp32, and GPU users pick bf16/fp16 with autocast); a torch floating dtype: every
            floating tensor is cast to it.
        scale: None, or the scale the caller needs (4 or 8): weights for another scale raise a
            ValueError naming the file, before any tensor is read.

    Returns the model in eval mode, with exactly the stored values (bit-exact: fp16 -> fp32 is
    exact; a bf16 or fp32 checkpoint keeps its dtype unless ``dtype`` is given).
    Raises FileNotFoundError (listing the shipped names) or ValueError for a foreign file.
    """
    return _model_file.read(
        path_or_name, CrossNet, CrossNetConfig, device=device, backend=backend, dtype=dtype, scale=scale
    )


__all__ = ["save_model", "load_model", "available_weights", "read_config"]
