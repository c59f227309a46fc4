"""The public ops of crossnet_fast (re-exported at the package's top level)."""

from .. import _extension
from . import _registration
from .charbonnier import charbonnier
from .correlation import correlation
from .grid_sample import grid_sample
from .multiscale_warp import backward_warp, multiscale_warp
from .upsample_flow import resize_flow, upsample_flow

if _extension.loaded:
    _registration.register_family(_registration.NATIVE)

__all__ = [
    "backward_warp",
    "multiscale_warp",
    "grid_sample",
    "upsample_flow",
    "resize_flow",
    "charbonnier",
    "correlation",
]
