"""Swap functions that a package imported by name, in every one of its modules, and back."""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from collections.abc import Callable, Iterator


def _package_modules(package: str):
    prefix = package + "."
    # A copy: imports triggered elsewhere must not change the dict while it is walked.
    for name, module in list(sys.modules.items()):
        if module is not None and (name == package or name.startswith(prefix)):
            yield module


def _swap(package: str, table: dict[int, tuple[object, object]]) -> None:
    """Replace, in every loaded module of ``package``, each global that IS a key object (by identity)."""
    for module in _package_modules(package):
        namespace = getattr(module, "__dict__", None)
        if namespace is None:
            continue
        for attr, value in list(namespace.items()):
            hit = table.get(id(value))
            if hit is not None and hit[0] is value:
                setattr(module, attr, hit[1])


@contextlib.contextmanager
def rebind(package: str, owner: str, replacements: dict[str, Callable]) -> Iterator[dict[str, object]]:
    """Inside the block, ``owner.NAME`` and every alias of it in ``package`` is ``replacements[NAME]``.

    "Alias" means any module-level name, in any loaded module of ``package``, bound to the very
    object ``owner.NAME`` held on entry (``from ._utils import grid_sample`` copies the binding, so
    patching ``owner`` alone would not reach it). On exit, also when the block raises, every name
    bound to a replacement in the package (including modules imported inside the block) is bound
    to the object it replaced again. Nested blocks undo in reverse order. The swap is process-wide
    (all threads see it), like any monkey-patch.

    Args:
        package: top-level package whose modules are scanned, e.g. ``"torchvision"``.
        owner: module that defines the functions, e.g. ``"torchvision.models.optical_flow._utils"``.
        replacements: function name in ``owner`` -> replacement object (fresh per call, so that
            nested blocks can tell theirs apart).

    Yields:
        dict name -> the object that was replaced (the original outside nested blocks).
    """
    module = importlib.import_module(owner)
    originals = {name: getattr(module, name) for name in replacements}
    _swap(package, {id(originals[n]): (originals[n], replacements[n]) for n in replacements})
    try:
        yield dict(originals)
    finally:
        _swap(package, {id(replacements[n]): (replacements[n], originals[n]) for n in replacements})


def with_backend(fn: Callable, backend: str) -> Callable:
    """A fresh function object calling ``fn(..., backend=backend)``, for :func:`rebind` (fresh, so
    that nested patches each swap their own object), with ``fn``'s name and docstring."""

    def adapter(*args, **kwargs):
        return fn(*args, backend=backend, **kwargs)

    return functools.update_wrapper(adapter, fn)
