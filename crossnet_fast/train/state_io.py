"""Nested training state <-> (JSON, dict of tensors), so that it is stored without pickle.

``encode(obj)`` walks dicts, lists, tuples, numbers, strings, bytes, numpy arrays and tensors;
tensors (and arrays) go to a flat ``{key: tensor}`` dict (saved with safetensors) and are replaced
in the JSON tree by ``{"__tensor__": key}``. ``decode`` inverts it exactly (dtypes, tuples,
integer dict keys included), e.g. for ``optimizer.state_dict()`` and the numpy/python RNG states.
"""
from __future__ import annotations

import numpy as np
import torch

_T, _A, _TUP, _ITEMS, _BYTES = "__tensor__", "__ndarray__", "__tuple__", "__items__", "__bytes__"


def encode(obj, tensors: dict, prefix: str = "s"):
    """JSON-able tree of ``obj``; tensors are added to ``tensors`` under keys starting with ``prefix``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}#{len(tensors)}"
        # clone(): safetensors refuses tensors sharing storage; contiguous CPU bytes are stored.
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {_T: key}
    if isinstance(obj, np.ndarray):
        key = f"{prefix}#{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {_A: key}
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return {_BYTES: obj.hex()}
    if isinstance(obj, tuple):
        return {_TUP: [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {_ITEMS: [[encode(k, tensors, f"{prefix}.k"), encode(v, tensors, f"{prefix}.{k}")]
                         for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickle")


def decode(tree, tensors: dict):
    """Inverse of :func:`encode`."""
    if isinstance(tree, list):
        return [decode(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if _T in tree:
            return tensors[tree[_T]]
        if _A in tree:
            return tensors[tree[_A]].numpy().copy()
        if _TUP in tree:
            return tuple(decode(v, tensors) for v in tree[_TUP])
        if _ITEMS in tree:
            return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in tree[_ITEMS]}
        if _BYTES in tree:
            return bytes.fromhex(tree[_BYTES])
        return {k: decode(v, tensors) for k, v in tree.items()}
    return tree


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


__all__ = ["encode", "decode"]
