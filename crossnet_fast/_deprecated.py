"""Deprecated aliases of renamed public functions: they still work, and warn once per call site."""

from __future__ import annotations

import functools
import warnings


def renamed(func, old_name: str):
    """``func`` under its former name ``old_name``: calling it emits a DeprecationWarning that names
    the new function (pointing at the caller's line) and returns ``func``'s result unchanged.

    Aliases made here are kept for one release after the rename (listed in the CHANGELOG).
    """
    new_name = f"{func.__module__}.{func.__name__}"

    @functools.wraps(func)
    def alias(*args, **kwargs):
        warnings.warn(
            f"{old_name} is deprecated and will be removed in the next release; "
            f"use {new_name} (same arguments, same result)",
            DeprecationWarning,
            stacklevel=2,
        )
        return func(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name.rsplit(".", 1)[-1]
    alias.__doc__ = f"Deprecated alias of :func:`{new_name}` (warns, then calls it)."
    return alias
