"""Pure-PyTorch definitions of the ops: the test oracle and the always-available fallback backend.

Each function is differentiable through ordinary autograd, so the reference backend needs no
registration of its own.
"""
from .multiscale_warp import backward_warp, multiscale_warp
from .upsample_flow import upsample_flow
from .charbonnier import charbonnier

__all__ = ["backward_warp", "multiscale_warp", "upsample_flow", "charbonnier"]
