"""Run BasicSR's flow-warping models (BasicVSR, IconVSR, SpyNet, TOF, ...) on crossnet_fast."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ._rebind import rebind, with_backend
from .flow_warp import flow_warp

BASICSR_ARCH_UTIL = "basicsr.archs.arch_util"


@contextlib.contextmanager
def patch_basicsr(backend: str = "auto") -> Iterator[dict[str, object]]:
    """Rebind ``basicsr.archs.arch_util.flow_warp`` everywhere in BasicSR inside the block.

    Every loaded ``basicsr`` module holding that function (basicvsr_arch, spynet_arch, tof_arch,
    ... import it by name) gets :func:`crossnet_fast.compat.flow_warp`; the originals come back on
    exit, also on an exception.

    Args:
        backend: crossnet_fast backend the patched ``flow_warp`` uses.

    Yields:
        dict ``{"flow_warp": original}``.

    Raises:
        ImportError: BasicSR cannot be imported. BasicSR 1.4.2 needs
            :func:`crossnet_fast.compat.install_functional_tensor_alias` first with torchvision >= 0.17.
    """
    with rebind("basicsr", BASICSR_ARCH_UTIL, {"flow_warp": with_backend(flow_warp, backend)}) as originals:
        yield originals
