"""Flow upsampling with ``align_corners=True`` (what RAFT-style models use), on this library's op."""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from .. import ops

# TODO(main): crossnet_fast.upsample_flow(..., align_corners=True) lands on main; once merged this
# probe is always True and the F.interpolate branch below can go.
_HAS_ALIGNED = "align_corners" in inspect.signature(ops.upsample_flow).parameters


def upsample_flow_aligned(flow: torch.Tensor, scale: int, backend: str = "auto") -> torch.Tensor:
    """``scale * F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=True)``.

    Args:
        flow: (N, 2, H, W) float tensor, displacement in pixels of the input resolution.
        scale: integer factor >= 1.
        backend: crossnet_fast backend.

    Returns:
        (N, 2, H*scale, W*scale) tensor of ``flow.dtype``, in pixels of the output resolution.
    """
    if _HAS_ALIGNED:
        return ops.upsample_flow(flow, scale, align_corners=True, backend=backend)
    # Until main's kernel is merged: PyTorch's own (identical results).
    return scale * F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=True)
