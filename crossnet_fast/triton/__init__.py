"""Triton variants of the ops (``backend="triton"``); kernels arrive with their own issue."""


def ensure_registered() -> None:
    """Define and register the ``crossnet_fast_triton`` ops (raises until the kernels exist)."""
    raise RuntimeError("backend 'triton' is not implemented yet")
