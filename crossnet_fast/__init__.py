"""crossnet_fast: fused ops for reference-based super-resolution and the CrossNet model.

Ops (all take ``backend="auto"|"cuda"|"triton"|"cpu"|"reference"``):
``backward_warp``, ``multiscale_warp``, ``grid_sample``, ``upsample_flow``, ``resize_flow``, ``charbonnier``,
``correlation``.
"""

from __future__ import annotations

import importlib.util

import torch

from . import _extension, baselines, data, metrics
from .backend import available_backends, use_backend
from .checkpoint import load_model
from .degrade import degrade
from .infer import super_resolve
from .metrics import ifc, psnr, ssim
from .models import CrossNet
from .ops import backward_warp, charbonnier, correlation, grid_sample, multiscale_warp, resize_flow, upsample_flow
from .placement import ReferencePlacementWarning, place_reference

__version__ = "0.1.0"


def build_info() -> dict:
    """How this installation was built and what it can run.

    Returns a dict with ``torch`` (running version), ``built_with_torch``, ``cuda`` (bool: CUDA
    kernels compiled in), ``cuda_version`` (of the build, or None), ``triton`` (bool: importable),
    ``extension_loaded`` and ``extension_error`` (None, or why it failed to load).
    """
    info = _extension.built_with
    return {
        "version": __version__,
        "torch": torch.__version__,
        "built_with_torch": info.get("torch"),
        "cuda": _extension.has_cuda_kernels(),
        "cuda_version": info.get("cuda_version") if _extension.has_cuda_kernels() else None,
        "cuda_arch_list": info.get("cuda_arch_list"),
        # CPU kernels run on torch's intra-op threads only when built with OpenMP (setup.py).
        "openmp": info.get("openmp"),
        "triton": importlib.util.find_spec("triton") is not None,
        "extension_loaded": _extension.loaded,
        "extension_error": _extension.load_error,
        "backends": available_backends(),
    }


__all__ = [
    "backward_warp",
    "multiscale_warp",
    "grid_sample",
    "upsample_flow",
    "resize_flow",
    "charbonnier",
    "correlation",
    "available_backends",
    "use_backend",
    "build_info",
    "CrossNet",
    "super_resolve",
    "place_reference",
    "ReferencePlacementWarning",
    "load_model",
    "degrade",
    "psnr",
    "ssim",
    "ifc",
    "baselines",
    "data",
    "metrics",
]
