"""Drop-in adapters that run other projects' flow helpers on crossnet_fast's ops.

Functions with the signatures and results of the originals (plus a keyword-only ``backend``):
  - :func:`flow_warp`: BasicSR's ``basicsr.archs.arch_util.flow_warp`` and MMagic's
    ``mmagic.models.utils.flow_warp`` (``interpolation=`` keyword).
  - :func:`bilinear_sampler`, :func:`coords_grid`: the original RAFT's ``core/utils/utils.py``.
  - :func:`tv_grid_sample`, :func:`tv_upsample_flow`: torchvision's
    ``models.optical_flow._utils.grid_sample`` / ``upsample_flow``.
  - :func:`spatial_correlation_sample`, :class:`SpatialCorrelationSampler`: the
    ``spatial-correlation-sampler`` package's (PWC-Net, FlowNetC), on :func:`crossnet_fast.correlation`.
Context managers that rebind them inside a model's package for the duration of a block:
  :func:`patch_torchvision_raft`, :func:`patch_basicsr`, :func:`patch_spatial_correlation_sampler`.
"""

from ._torchvision_alias import install_functional_tensor_alias
from .basicsr_patch import patch_basicsr
from .correlation import SpatialCorrelationSampler, patch_spatial_correlation_sampler, spatial_correlation_sample
from .flow_warp import flow_warp
from .raft import bilinear_sampler, coords_grid
from .torchvision_raft import grid_sample as tv_grid_sample
from .torchvision_raft import patch_torchvision_raft
from .torchvision_raft import upsample_flow as tv_upsample_flow

__all__ = [
    "flow_warp",
    "bilinear_sampler",
    "coords_grid",
    "tv_grid_sample",
    "tv_upsample_flow",
    "patch_torchvision_raft",
    "patch_basicsr",
    "install_functional_tensor_alias",
    "spatial_correlation_sample",
    "SpatialCorrelationSampler",
    "patch_spatial_correlation_sampler",
]
