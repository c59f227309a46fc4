"""Baselines of the RefSR protocol: bicubic upsampling, patch-matching RefSR, and the learned SISR
networks SRCNN, VDSR and MDSR (defined in ``crossnet_fast.models.sisr``, re-exported here).
"""

from ..models.sisr import MDSR, SRCNN, VDSR
from .bicubic import bicubic
from .patchmatch import nearest_neighbour_flow, patchmatch, patchmatch_sr

__all__ = ["bicubic", "nearest_neighbour_flow", "patchmatch", "patchmatch_sr", "SRCNN", "VDSR", "MDSR"]
