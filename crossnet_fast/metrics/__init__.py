"""Image-quality metrics of the RefSR protocol: PSNR, SSIM (RGB or Y) and IFC (grayscale).

All take (N, C, H, W) / (C, H, W) float tensors in [0, 1] and return one float64 value per image.
"""

from .ifc import ifc
from .psnr import psnr
from .ssim import ssim

__all__ = ["psnr", "ssim", "ifc"]
