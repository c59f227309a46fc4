"""Super-resolution of images of any size: padding, sliding windows, smooth blending.

CrossNet needs HR sizes that are multiples of 64 and its memory grows with the image, so
:func:`super_resolve` pads the pair, cuts it into fixed-size overlapping windows (the paper's
protocol for large images: 512x512, stride 256), runs each window, and blends the overlaps with
weights that fall smoothly to 0 towards window edges which lie inside the image. Window outputs near
their own edges are the least reliable (zero padding of the convolutions, flows that point outside)
and get no weight; a smooth cross-fade leaves no visible seam where neighbouring windows disagree.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fastpath import WindowRunner
from .placement import ReferencePlacementWarning, place_reference

SIZE_MULTIPLE = 64  # the flow net's six stride-2 convolutions


def _as_batch(name: str, x) -> tuple[torch.Tensor, str]:
    """(N, 3, h, w) float32 tensor in [0, 1] and the input kind: "numpy", "chw" or "nchw"."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8:
            raise TypeError(f"{name} must be a uint8 array (H, W, 3) or a float tensor, got a {x.dtype} array")
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name} must be an (H, W, 3) RGB array, got shape {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).unsqueeze(0)
        return t.float().div_(255.0), "numpy"
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(
                f"{name} must be a float tensor with values in [0, 1] (or a uint8 numpy array), got a {x.dtype} tensor"
            )
        if x.dim() == 3 and x.shape[0] == 3:
            return x.unsqueeze(0), "chw"
        if x.dim() == 4 and x.shape[1] == 3:
            return x, "nchw"
        raise ValueError(f"{name} must have shape (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    raise TypeError(f"{name} must be a torch.Tensor or a numpy uint8 array, got {type(x).__name__}")


def _positions(size: int, win: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride``, plus a last window flush with the end."""
    if size <= win:
        return [0]
    starts = list(range(0, size - win + 1, stride))
    if starts[-1] != size - win:
        starts.append(size - win)
    return starts


def _ramp(start: int, win: int, size: int, stride: int, device) -> torch.Tensor:
    """1-D blending weight (win,) float32 for a window at ``start`` on an axis of ``size`` pixels.

    With overlap ``o = win - stride``, each side of the window that lies inside the image gets
    weight exactly 0 for its outer o/4 pixels (the least reliable outputs: zero padding of the
    convolutions, flows pointing out of the window), then a raised cosine sin^2 rising to 1 over the
    next o/2 pixels. Two neighbouring windows' ramps are mirror images over their overlap, so they
    sum to exactly 1 (a smooth cross-fade), and every pixel keeps a positive total weight because a
    neighbour covers each zeroed margin with weight 1. A side that touches the image edge keeps
    weight 1: nothing else covers it. With no overlap (stride == win) windows simply tile.
    """
    overlap = win - stride
    w = torch.ones(win, device=device, dtype=torch.float64)
    if overlap <= 0 or size <= win:
        return w.float()
    margin, width = overlap / 4, overlap / 2
    d_left = torch.arange(win, device=device, dtype=torch.float64) + 0.5  # distance to the left edge
    for d, inside in ((d_left, start > 0), (win - d_left, start + win < size)):
        if inside:
            u = ((d - margin) / width).clamp(0.0, 1.0)
            w = w * torch.sin(0.5 * math.pi * u) ** 2
    return w.float()


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _progress_callback(progress, total: int):
    """(update(n), close()) for progress=False/True(tqdm)/callable(done, total)."""
    if not progress:
        return (lambda n: None), (lambda: None)
    if callable(progress):
        done = [0]

        def update(n):
            done[0] += n
            progress(done[0], total)

        return update, (lambda: None)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="window", desc="super-resolving", leave=False)
    return bar.update, bar.close


def pad_pair(lr: torch.Tensor, ref: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair padded bottom/right by edge replication to the model's size multiple.

    lr (N, 3, h, w) and ref (N, 3, h*scale, w*scale); returns float32 ``(lr_p, ref_p)`` with ref_p
    (N, 3, Hp, Wp), Hp and Wp the HR sizes rounded up to multiples of 64, and lr_p (N, 3, Hp/scale,
    Wp/scale). The padding is what CrossNet sees; crop its output back to the HR size.
    """
    H, W = ref.shape[-2:]
    Hp = -(-H // SIZE_MULTIPLE) * SIZE_MULTIPLE
    Wp = -(-W // SIZE_MULTIPLE) * SIZE_MULTIPLE
    ref_p = F.pad(ref.float(), (0, Wp - W, 0, Hp - H), mode="replicate")
    lr_p = F.pad(lr.float(), (0, (Wp - W) // scale, 0, (Hp - H) // scale), mode="replicate")
    return lr_p, ref_p


def super_resolve(
    model: nn.Module,
    lr,
    ref,
    window: int = 512,
    stride: int = 256,
    *,
    batch_size: int = 1,
    precision: str = "fp32",
    channels_last: bool = False,
    cuda_graph: bool = False,
    compile: bool = False,
    clamp: bool = True,
    progress: bool | Callable[[int, int], None] = False,
):
    """Super-resolve ``lr`` with the help of ``ref``, for any image size.

    Args:
        model: a CrossNet (anything with an int ``scale`` attribute, called as ``model(lr, ref)``
            on HR sizes that are multiples of 64). It runs on its own device; the inputs and the
            blended result stay where they are (CPU for numpy), so device memory is bounded by one
            batch of windows whatever the image size.
        lr: the LR image: (h, w, 3) uint8 numpy array, or float tensor (3, h, w) / (N, 3, h, w) in [0, 1].
        ref: the HR reference, same kind and layout, ideally (h*s, w*s) pixels for the model's
            scale s. A reference of another size is placed on that canvas (``placement.py``,
            docs/USE_IN_YOUR_MODEL.md): top-left aligned, cropped on the right / at the bottom
            where larger, padded there by edge replication where smaller, never resized; a
            :class:`~crossnet_fast.placement.ReferencePlacementWarning` says what was done. The
            result is the same as passing the placed reference. Each side must be at least half
            the canvas side (ValueError otherwise).
        window: HR window side in pixels (a multiple of 64). Images whose padded size fits are run
            in one pass; otherwise windows of window x window (or the padded size on an axis that
            fits) slide over the image.
        stride: HR distance between window starts (a multiple of the scale, <= window). Of the
            overlap o = window - stride, the outer o/4 of each inner window edge is discarded and the
            next o/2 cross-faded (see ``_ramp``).
        batch_size: windows per forward call.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast (see :class:`WindowRunner`).
        channels_last: run in channels_last (converts the model's weights in place).
        cuda_graph: capture one CUDA graph for the window shape and replay it (CUDA models only).
        compile: run the model through ``torch.compile``.
        clamp: clamp the result to [0, 1].
        progress: False, True (a tqdm bar over windows) or a callable ``(done, total)``.

    Warns:
        ReferencePlacementWarning: ``ref`` was cropped or padded; the message is one line, e.g.
        ``reference 741x500 padded to 744x500 (top-left aligned; 3 px on the right filled by edge
        replication)`` (width x height).

    Returns:
        The HR image in the input's form: (h*s, w*s, 3) uint8 numpy array, or a float32 tensor
        (3, H, W) / (N, 3, H, W) on the input's device.
    """
    scale = getattr(model, "scale", None)
    if not isinstance(model, nn.Module) or not isinstance(scale, int):
        raise TypeError(f"model must be a CrossNet (an nn.Module with an int scale), got {type(model).__name__}")
    if isinstance(lr, np.ndarray) != isinstance(ref, np.ndarray):
        raise TypeError(
            f"lr and ref must be of the same kind (both numpy arrays or both tensors), "
            f"got {type(lr).__name__} and {type(ref).__name__}"
        )
    lr_t, kind = _as_batch("lr", lr)
    ref_t, _ = _as_batch("ref", ref)
    if lr_t.shape[0] != ref_t.shape[0]:
        raise ValueError(f"lr and ref must have the same batch size, got {lr_t.shape[0]} and {ref_t.shape[0]}")
    if lr_t.device != ref_t.device:
        raise ValueError(f"lr and ref must be on the same device, got {lr_t.device} and {ref_t.device}")
    h, w = lr_t.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"lr must not be empty, got {h}x{w}")
    # A reference of another size goes on the (h*s, w*s) canvas by the rule of placement.py:
    # top-left aligned, cropped where larger, edge-replicated where smaller.
    ref_t, placement = place_reference(ref_t, (h * scale, w * scale), name="ref")
    if placement.note is not None:
        warnings.warn(placement.note, ReferencePlacementWarning, stacklevel=2)
    H, W = ref_t.shape[-2:]
    _check_int("window", window, SIZE_MULTIPLE)
    if window % SIZE_MULTIPLE:
        raise ValueError(f"window must be a multiple of {SIZE_MULTIPLE}, got {window}")
    _check_int("stride", stride, 1)
    if stride > window or stride % scale:
        raise ValueError(f"stride must be a multiple of the scale ({scale}) and <= window ({window}), got {stride}")
    _check_int("batch_size", batch_size, 1)

    lr_p, ref_p = pad_pair(lr_t, ref_t, scale)
    Hp, Wp = ref_p.shape[-2:]

    wh, ww = min(window, Hp), min(window, Wp)
    boxes = [(y, x) for y in _positions(Hp, wh, stride) for x in _positions(Wp, ww, stride)]
    acc_dev = ref_t.device
    ramps_y = {y: _ramp(y, wh, Hp, stride, acc_dev) for y, _ in boxes}
    ramps_x = {x: _ramp(x, ww, Wp, stride, acc_dev) for _, x in boxes}
    n = ref_t.shape[0]
    out = torch.zeros(n, 3, Hp, Wp, dtype=torch.float32, device=acc_dev)
    wsum = torch.zeros(Hp, Wp, dtype=torch.float32, device=acc_dev)

    runner = WindowRunner(
        model, precision=precision, channels_last=channels_last, compile=compile, cuda_graph=cuda_graph
    )
    update, close = _progress_callback(progress, len(boxes))
    try:
        for i in range(0, len(boxes), batch_size):
            chunk = boxes[i : i + batch_size]
            lr_w = [lr_p[..., y // scale : (y + wh) // scale, x // scale : (x + ww) // scale] for y, x in chunk]
            ref_w = [ref_p[..., y : y + wh, x : x + ww] for y, x in chunk]
            real = len(chunk)
            if cuda_graph and real < batch_size:
                # Keep the captured batch shape: pad the last chunk with copies of its first window.
                lr_w += lr_w[:1] * (batch_size - real)
                ref_w += ref_w[:1] * (batch_size - real)
            sr = runner(torch.cat(lr_w, 0), torch.cat(ref_w, 0)).to(acc_dev)
            for k, (y, x) in enumerate(chunk):
                weight = ramps_y[y][:, None] * ramps_x[x][None, :]
                out[..., y : y + wh, x : x + ww] += sr[k * n : (k + 1) * n] * weight
                wsum[y : y + wh, x : x + ww] += weight
            update(real)
    finally:
        close()

    result = (out / wsum)[..., :H, :W]
    if clamp:
        result = result.clamp_(0.0, 1.0)
    if kind == "numpy":
        return (result[0].permute(1, 2, 0) * 255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    return result[0] if kind == "chw" else result


__all__ = ["super_resolve"]
