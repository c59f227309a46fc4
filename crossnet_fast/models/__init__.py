"""CrossNet and its parts: FlowNetS+, the encoder, the fusion decoder and the SISR front ends.

Models use only the public ops of :mod:`crossnet_fast.ops` for warping.
"""

from .crossnet import CONFIGS, SIZE_MULTIPLE, CrossNet, CrossNetConfig
from .decoder import Decoder
from .encoder import Encoder
from .flownet import FlowNetSPlus
from .sisr import MDSR, SRCNN, VDSR, Bicubic, bicubic_upsample, build_sisr, upsample_bicubic_torch

__all__ = [
    "CrossNet",
    "CrossNetConfig",
    "CONFIGS",
    "SIZE_MULTIPLE",
    "FlowNetSPlus",
    "Encoder",
    "Decoder",
    "MDSR",
    "SRCNN",
    "VDSR",
    "Bicubic",
    "upsample_bicubic_torch",
    "build_sisr",
    "bicubic_upsample",  # deprecated alias of upsample_bicubic_torch
]
