"""The state of a training run on disk: resumable checkpoints, their encoding without pickle, RNGs.

(Model files for users, written by ``CrossNet.save``, are :mod:`crossnet_fast.checkpoint`'s; a
training checkpoint holds one of those plus everything an exact resume needs.)

Layout of ``<out>/checkpoints``::

    step_00001000/model.safetensors   weights (crossnet_fast.load_model reads a CrossNet's directly)
    step_00001000/state.safetensors   optimizer moments, RNG states (tensors)
    step_00001000/state.json          step, data position, schedule, optimizer/RNG scalars, config,
                                      and the size + sha256 of both .safetensors files
    latest.json                       {"step": 1000, "dir": "step_00001000"}

A checkpoint is written into a hidden temporary folder, every file fsynced, and renamed into place
in one ``os.replace``; only then is ``latest.json`` replaced (also atomically). A crash at any
moment leaves ``latest.json`` naming a complete checkpoint; leftover temporary folders are ignored
and removed by the next save. Nothing is ever pickled: :func:`encode_state` turns the nested state
(``optimizer.state_dict()``, RNG states, ...) into JSON plus a flat dict of tensors.

RNGs: the data stream does not depend on the global RNGs (it is seeded per sample, see
:mod:`.pairs`), but the model's initialisation and anything a user plugs in (dropout, custom
augmentations) do, so :func:`capture_rng` states are saved per rank and restored on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._atomic import atomic_path
from ..checkpoint import save_model
from ..models import CrossNet

# -- RNG states ------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng() -> dict:
    """The current RNG states (python, numpy, torch CPU and CUDA; store with :func:`encode_state`)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Set the RNG states captured by :func:`capture_rng`."""
    random.setstate(_tuplify(state["python"]))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in states])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


# -- nested state <-> (JSON, tensors) --------------------------------------------------------------

# encode_state walks dicts, lists, tuples, numbers, strings, bytes, numpy arrays and tensors; tensors
# (and arrays) go to a flat {key: tensor} dict (saved with safetensors) and are replaced in the JSON
# tree by {"__tensor__": key}. decode_state inverts it exactly (dtypes, tuples, integer dict keys
# included), e.g. for optimizer.state_dict() and the numpy/python RNG states.
_T, _A, _TUP, _ITEMS, _BYTES = "__tensor__", "__ndarray__", "__tuple__", "__items__", "__bytes__"


def encode_state(obj, tensors: dict, prefix: str = "s"):
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
        return {_TUP: [encode_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode_state(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {
            _ITEMS: [
                [encode_state(k, tensors, f"{prefix}.k"), encode_state(v, tensors, f"{prefix}.{k}")]
                for k, v in obj.items()
            ]
        }
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickle")


def decode_state(tree, tensors: dict):
    """Inverse of :func:`encode_state`."""
    if isinstance(tree, list):
        return [decode_state(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if _T in tree:
            return tensors[tree[_T]]
        if _A in tree:
            return tensors[tree[_A]].numpy().copy()
        if _TUP in tree:
            return tuple(decode_state(v, tensors) for v in tree[_TUP])
        if _ITEMS in tree:
            return {_hashable(decode_state(k, tensors)): decode_state(v, tensors) for k, v in tree[_ITEMS]}
        if _BYTES in tree:
            return bytes.fromhex(tree[_BYTES])
        return {k: decode_state(v, tensors) for k, v in tree.items()}
    return tree


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


# -- checkpoint folders ----------------------------------------------------------------------------

LATEST = "latest.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
FORMAT = "crossnet_fast.train/1"
# Test hook: called as _hook(stage) between the writes of a save (a test makes it crash).
_hook = None


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _stage(name: str) -> None:
    if _hook is not None:
        _hook(name)


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to ``path`` through a fsynced temporary file and ``os.replace``."""
    path = Path(path)
    # atomic_path: a failed write (full disk, ...) leaves the old file and no partial one.
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
    _fsync_dir(path.parent)


def _save_file(tensors: dict, path: Path, metadata=None) -> None:
    """``safetensors.torch.save_file``, whose write errors (a full disk: SafetensorError "... No
    space left on device (os error 28) ...") become an OSError naming ``path``, with that errno."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:
        m = re.search(r"os error (\d+)", str(exc))
        if m:
            code = int(m.group(1))
            raise OSError(code, os.strerror(code), str(path)) from exc
        raise OSError(f"cannot write {str(path)!r}: {exc}") from exc


def save_weights(model, path: Path) -> None:
    """The model's weights as safetensors; a CrossNet through ``crossnet_fast.checkpoint.save_model``
    (so ``load_model`` reads it), anything else with its ``config`` (if any) in the metadata."""
    if isinstance(model, CrossNet):
        save_model(model, path)
        return
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "crossnet_fast.train": json.dumps({"class": type(model).__name__, "config": getattr(model, "config", None)})
    }
    _save_file(tensors, path, metadata=meta)


def load_weights(model, path: Path, strict: bool = True, prefix_map: tuple[str, str] | None = None) -> list[str]:
    """Copy the tensors of ``path`` into ``model``; returns the names of the model's tensors left
    untouched. ``strict``: every name and shape must match. Otherwise only the tensors present
    with the same shape are loaded. ``prefix_map`` ("net.", ""): rename stored keys first
    (and load only those)."""
    state = load_file(str(path), device="cpu")
    if prefix_map is not None:
        old, new = prefix_map
        state = {new + k[len(old) :]: v for k, v in state.items() if k.startswith(old)}
    if strict:
        model.load_state_dict(state, strict=True)
        return []
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not keep:
        raise ValueError(f"{path}: no tensor matches the model by name and shape")
    model.load_state_dict(keep, strict=False)
    return sorted(set(own) - set(keep))


def step_dir_name(step: int) -> str:
    return f"step_{int(step):08d}"


def save(ckpt_root, step: int, model, state: dict) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest.json`` at it; returns its folder.

    ``state``: nested training state (optimizer state dict, RNG states, data position, ...),
    stored as ``state.json`` + ``state.safetensors`` via :func:`encode_state`. If the folder for this
    step already exists (complete: it is only ever created by a rename), it is kept as it is.
    """
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    if not final.is_dir():
        tmp = root / f".tmp-{step_dir_name(step)}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            save_weights(model, tmp / "model.safetensors")
            _stage("model")
            tensors: dict = {}
            tree = encode_state(state, tensors)
            _save_file(tensors, tmp / "state.safetensors")
            _stage("state")
            files = {}
            for name in ("model.safetensors", "state.safetensors"):
                _fsync_file(tmp / name)
                files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": sha256(tmp / name)}
            doc = {"format": FORMAT, "step": int(step), "files": files, "state": tree}
            with open(tmp / "state.json", "w") as f:
                json.dump(doc, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(tmp)
            _stage("before_rename")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(root)
    _stage("before_latest")
    write_json_atomic(root / LATEST, {"step": int(step), "dir": final.name})
    return final


def list_checkpoints(ckpt_root) -> list[tuple[int, Path]]:
    """(step, folder) of the complete checkpoint folders, oldest first."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(out)


def prune(ckpt_root, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (never the one ``latest.json`` names)
    and leftover temporary folders and files of crashed saves."""
    root = Path(ckpt_root)
    latest = _read_latest(root)
    for p in root.glob(".tmp-step_*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".{LATEST}.*.tmp"):  # a crash while latest.json was being replaced
        p.unlink(missing_ok=True)
    ckpts = list_checkpoints(root)
    for _step, path in ckpts[: max(0, len(ckpts) - keep_last)]:
        if latest is None or path.name != latest:
            shutil.rmtree(path, ignore_errors=True)


def _read_latest(root: Path):
    try:
        return json.loads((root / LATEST).read_text())["dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verify(folder: Path) -> dict:
    """The parsed ``state.json`` of a checkpoint folder after checking its files' sizes and sha256;
    ValueError describing the first problem."""
    folder = Path(folder)
    try:
        doc = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {folder}: unreadable state.json ({exc})") from None
    if doc.get("format") != FORMAT:
        raise ValueError(f"checkpoint {folder}: format {doc.get('format')!r}, expected {FORMAT!r}")
    for name, info in doc["files"].items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != info["bytes"]:
            raise ValueError(f"checkpoint {folder}: {name} is missing or truncated")
        if info.get("sha256") and sha256(p) != info["sha256"]:
            raise ValueError(f"checkpoint {folder}: {name} does not match its sha256")
    return doc


def find(path, check: bool = True) -> Path:
    """The checkpoint folder to resume from: ``path`` itself if it is one, else the folder that
    ``<path>/checkpoints/latest.json`` (or ``<path>/latest.json``) names; if that one fails
    verification, the newest earlier checkpoint that passes (with a warning)."""
    path = Path(path)
    if (path / "state.json").is_file():
        if check:
            verify(path)
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not root.is_dir():
        raise FileNotFoundError(f"resume: no checkpoints in {path}")
    latest = _read_latest(root)
    candidates = [p for _, p in reversed(list_checkpoints(root))]
    if latest is not None:
        candidates.sort(key=lambda p: p.name != latest)  # the named one first, stable otherwise
    problems = []
    for p in candidates:
        try:
            if check:
                verify(p)
            elif not (p / "state.json").is_file():
                raise ValueError(f"checkpoint {p}: no state.json")
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if problems:
            import warnings

            warnings.warn(f"resume: skipped damaged checkpoints ({'; '.join(problems)}); using {p}", stacklevel=2)
        return p
    raise FileNotFoundError(
        f"resume: no usable checkpoint in {root}" + (f" ({'; '.join(problems)})" if problems else "")
    )


def load(folder, check: bool = True) -> tuple[dict, Path]:
    """(state, weights path) of a checkpoint folder: the decoded nested state as saved."""
    folder = Path(folder)
    doc = verify(folder) if check else json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "state.safetensors"), device="cpu")
    state = decode_state(doc["state"], tensors)
    state["step"] = doc["step"]
    return state, folder / "model.safetensors"


__all__ = [
    "save",
    "load",
    "find",
    "prune",
    "verify",
    "list_checkpoints",
    "step_dir_name",
    "save_weights",
    "load_weights",
    "write_json_atomic",
    "LATEST",
    "encode_state",
    "decode_state",
    "seed_everything",
    "capture_rng",
    "restore_rng",
]
