"""Input checks shared by every backend, so that all of them fail the same way on bad input.

Every message names the op, the argument and what was expected.
"""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
PADDINGS = ("border", "zeros")
REDUCTIONS = ("mean", "sum", "batch", "none")


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def check_float_tensor(op: str, name: str, t, ndim: int | None = None, layout_hint: str = "") -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{op}: {name} must be a {ndim}-D tensor {layout_hint}, got shape {_shape(t)}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float16, bfloat16, float32 or float64, got {t.dtype}")


def check_padding(op: str, padding) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"{op}: padding must be one of {PADDINGS}, got {padding!r}")


def check_warp_pair(op: str, feat, flow, feat_name: str = "feat", flow_name: str = "flow") -> None:
    """feat (N, C, H, W) and flow (N, 2, H, W): same N/H/W, same device, floating dtypes."""
    check_float_tensor(op, feat_name, feat, 4, "(N, C, H, W)")
    check_float_tensor(op, flow_name, flow, 4, "(N, 2, H, W)")
    if flow.shape[1] != 2:
        raise ValueError(
            f"{op}: {flow_name} must have 2 channels (x, y displacement in pixels), got shape {_shape(flow)}"
        )
    n, _, h, w = feat.shape
    if (flow.shape[0], flow.shape[2], flow.shape[3]) != (n, h, w):
        raise ValueError(
            f"{op}: {flow_name} must have shape (N, 2, H, W) = ({n}, 2, {h}, {w}) to match "
            f"{feat_name} {_shape(feat)}, got {_shape(flow)}"
        )
    if feat.device != flow.device:
        raise ValueError(
            f"{op}: {feat_name} and {flow_name} must be on the same device, got {feat.device} and {flow.device}"
        )


def check_pyramid(op: str, feats, flows) -> tuple[list, list]:
    """Lists of (N, C_s, H_s, W_s) features and (N, 2, H_s, W_s) flows, one pair per scale."""
    if isinstance(feats, torch.Tensor) or isinstance(flows, torch.Tensor):
        raise TypeError(
            f"{op}: feats and flows must be lists of tensors (one per scale); use backward_warp for a single tensor"
        )
    feats, flows = list(feats), list(flows)
    if len(feats) != len(flows):
        raise ValueError(
            f"{op}: feats and flows must have the same length (one flow per scale), got {len(feats)} and {len(flows)}"
        )
    for i, (feat, flow) in enumerate(zip(feats, flows)):
        check_warp_pair(op, feat, flow, f"feats[{i}]", f"flows[{i}]")
        if i > 0:
            if feat.device != feats[0].device:
                raise ValueError(
                    f"{op}: every scale must be on one device, feats[{i}] is on {feat.device} "
                    f"and feats[0] on {feats[0].device}"
                )
            if feat.dtype != feats[0].dtype:
                raise TypeError(
                    f"{op}: every scale must have one dtype, feats[{i}] is {feat.dtype} and feats[0] {feats[0].dtype}"
                )
            if feat.shape[0] != feats[0].shape[0]:
                raise ValueError(
                    f"{op}: every scale must have the same batch size N, feats[{i}] has "
                    f"{feat.shape[0]} and feats[0] {feats[0].shape[0]}"
                )
    return feats, flows


def check_scale(op: str, scale) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"{op}: scale must be an integer >= 1, got {scale!r}")


def _check_pair(
    op: str, a_name: str, a, b_name: str, b, ndim: int | None = None, layout_hint: str = "", dtype_first: bool = False
) -> None:
    """Two floating tensors ``a`` and ``b`` (``ndim``-D when given) of one shape, device and dtype.

    ``b`` is named as the one that must take ``a``'s shape. ``dtype_first`` checks the dtypes before
    the devices (correlation's order; the losses check the devices first): each op keeps the error
    it has always raised for inputs that differ in both."""
    check_float_tensor(op, a_name, a, ndim, layout_hint)
    check_float_tensor(op, b_name, b, ndim, layout_hint)
    if a.shape != b.shape:
        raise ValueError(f"{op}: {b_name} must have the shape of {a_name} {_shape(a)}, got {_shape(b)}")
    for check in ("dtype", "device") if dtype_first else ("device", "dtype"):
        if check == "device" and a.device != b.device:
            raise ValueError(f"{op}: {a_name} and {b_name} must be on the same device, got {a.device} and {b.device}")
        if check == "dtype" and a.dtype != b.dtype:
            raise TypeError(f"{op}: {a_name} and {b_name} must have the same dtype, got {a.dtype} and {b.dtype}")


def check_loss_pair(op: str, pred, target, eps, reduction) -> None:
    _check_pair(op, "pred", pred, "target", target)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "batch" and pred.dim() == 0:
        raise ValueError(f"{op}: reduction='batch' needs pred with a batch dimension, got a 0-d tensor")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"{op}: eps must be a positive number, got {eps!r}")


GRID_PADDINGS = ("zeros", "border", "reflection")


def check_grid_sample(op: str, input, grid, padding_mode, align_corners) -> None:
    """input (N, C, H, W) and grid (N, Ho, Wo, 2), floating, one device; padding and align_corners."""
    check_float_tensor(op, "input", input, 4, "(N, C, H, W)")
    check_float_tensor(op, "grid", grid, 4, "(N, Ho, Wo, 2)")
    if grid.shape[-1] != 2:
        raise ValueError(
            f"{op}: grid must have shape (N, Ho, Wo, 2) with (x, y) in the last dimension, got {_shape(grid)}"
        )
    if grid.shape[0] != input.shape[0]:
        raise ValueError(f"{op}: grid must have the batch size of input ({input.shape[0]}), got {_shape(grid)}")
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(f"{op}: input must have non-empty spatial dimensions (H, W > 0), got {_shape(input)}")
    if input.device != grid.device:
        raise ValueError(f"{op}: input and grid must be on the same device, got {input.device} and {grid.device}")
    if padding_mode not in GRID_PADDINGS:
        raise ValueError(f"{op}: padding_mode must be one of {GRID_PADDINGS}, got {padding_mode!r}")
    if not isinstance(align_corners, bool):
        raise TypeError(f"{op}: align_corners must be a bool, got {type(align_corners).__name__}")


def _check_int(op: str, name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be an int >= {minimum}, got {value}")


def check_correlation(op: str, f1, f2, max_displacement, dilation, stride) -> None:
    """f1, f2 (N, C, H, W) of one shape, dtype and device; D >= 0, dilation >= 1, stride >= 1 (ints)."""
    _check_pair(op, "f1", f1, "f2", f2, 4, "(N, C, H, W)", dtype_first=True)
    _check_int(op, "max_displacement", max_displacement, 0)
    _check_int(op, "dilation", dilation, 1)
    _check_int(op, "stride", stride, 1)
