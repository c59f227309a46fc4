"""Pure-PyTorch definitions of the ops: the test oracle and the always-available fallback backend.

Each function is differentiable through ordinary autograd, so the reference backend needs no
registration of its own.
"""

from .charbonnier import charbonnier
from .correlation import correlation
from .grid_sample import grid_sample
from .multiscale_warp import backward_warp, multiscale_warp
from .resize_flow import resize_flow
from .upsample_flow import upsample_flow

__all__ = [
    "backward_warp",
    "multiscale_warp",
    "grid_sample",
    "upsample_flow",
    "resize_flow",
    "charbonnier",
    "correlation",
]
