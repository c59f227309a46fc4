"""Lets BasicSR 1.4.2 (the PyPI release) import on torchvision >= 0.17."""

from __future__ import annotations

import importlib
import sys

LEGACY = "torchvision.transforms.functional_tensor"
CURRENT = "torchvision.transforms._functional_tensor"


def install_functional_tensor_alias() -> bool:
    """Register ``torchvision.transforms.functional_tensor`` as an alias of its current private name.

    BasicSR 1.4.2's ``basicsr/data/degradations.py`` (imported by ``import basicsr``) does
    ``from torchvision.transforms.functional_tensor import rgb_to_grayscale``; torchvision 0.17
    renamed that module ``_functional_tensor`` (same functions). BasicSR's repository fixed the
    import after its last PyPI release. Call this before importing basicsr; it changes nothing
    when the old name still imports.

    Returns:
        True when the alias was added, False when the old name already resolved.
    """
    if LEGACY in sys.modules:
        return False
    try:
        importlib.import_module(LEGACY)
        return False
    except ModuleNotFoundError:
        pass
    sys.modules[LEGACY] = importlib.import_module(CURRENT)
    return True
