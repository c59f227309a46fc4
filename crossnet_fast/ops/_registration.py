"""Fake (meta) and autograd registrations, written once and applied to every op namespace.

The native ops (``crossnet_fast::*``, CPU and CUDA kernels, schemas in ``csrc/init.cpp``) and the
Triton ops (``crossnet_fast_triton::*``, same schemas) share these functions, so the two families
cannot drift apart. A backward always calls the backward op of its own namespace. One exception:
the native ``grid_sample``'s autograd is registered in C++ (``csrc/autograd.cpp``, the same
backward: RAFT-like models call it hundreds of times per forward, and the Python wrapper cost
several microseconds a call); see ``NATIVE_AUTOGRAD``.

Output layout rule, shared by fakes and kernels: an output that has the shape of an input is
``empty_like`` that input (so channels_last in gives channels_last out); new shapes are contiguous.
"""

from __future__ import annotations

import torch

NATIVE = "crossnet_fast"
TRITON = "crossnet_fast_triton"

# The op schemas (without namespace); csrc/init.cpp declares the same strings for the native ops.
SCHEMAS = {
    "multiscale_warp": "(Tensor[] feats, Tensor[] flows, str padding) -> Tensor[]",
    "multiscale_warp_backward": (
        "(Tensor[] grad_outs, Tensor[] feats, Tensor[] flows, str padding, bool[2] output_mask) -> (Tensor[], Tensor[])"
    ),
    "grid_sample": "(Tensor input, Tensor grid, str padding, bool align_corners) -> Tensor",
    "grid_sample_backward": (
        "(Tensor grad_out, Tensor input, Tensor grid, str padding, bool align_corners, bool[2] output_mask)"
        " -> (Tensor, Tensor)"
    ),
    "upsample_flow": "(Tensor flow, int scale) -> Tensor",
    "upsample_flow_backward": "(Tensor grad_out, int scale) -> Tensor",
    "resize_flow": "(Tensor flow, int height, int width, bool align_corners) -> Tensor",
    "resize_flow_backward": "(Tensor grad_out, int height, int width, bool align_corners) -> Tensor",
    "charbonnier": "(Tensor pred, Tensor target, float eps, str reduction, bool compute_grad) -> (Tensor, Tensor)",
    "charbonnier_backward": "(Tensor grad_loss, Tensor pred, Tensor target, float eps, str reduction) -> Tensor",
    "correlation": "(Tensor f1, Tensor f2, int max_displacement, int dilation, int stride) -> Tensor",
    "correlation_backward": (
        "(Tensor grad_out, Tensor f1, Tensor f2, int max_displacement, int dilation, int stride, bool[2] output_mask)"
        " -> (Tensor, Tensor)"
    ),
}

# Ops whose autograd the extension registers in C++ (csrc/autograd.cpp: no Python per call).
NATIVE_AUTOGRAD = {(NATIVE, "grid_sample")}

_registered: set[str] = set()


def ops_of(namespace: str):
    """``torch.ops.<namespace>``: the op family of one backend."""
    return getattr(torch.ops, namespace)


def _fake_multiscale_warp(feats, flows, padding):
    return [torch.empty_like(f) for f in feats]


def _fake_multiscale_warp_backward(grad_outs, feats, flows, padding, output_mask):
    grad_feats = [torch.empty_like(f) for f in feats] if output_mask[0] else []
    grad_flows = [torch.empty_like(v) for v in flows] if output_mask[1] else []
    return grad_feats, grad_flows


def _fake_grid_sample(input, grid, padding, align_corners):
    n, c = input.shape[0], input.shape[1]
    return input.new_empty((n, c, grid.shape[1], grid.shape[2]))


def _fake_grid_sample_backward(grad_out, input, grid, padding, align_corners, output_mask):
    # A gradient that was not asked for is an empty (0,) tensor.
    grad_input = torch.empty_like(input) if output_mask[0] else input.new_empty((0,))
    grad_grid = torch.empty_like(grid) if output_mask[1] else grid.new_empty((0,))
    return grad_input, grad_grid


def _fake_upsample_flow(flow, scale):
    n, c, h, w = flow.shape
    return flow.new_empty((n, c, h * scale, w * scale))


def _fake_upsample_flow_backward(grad_out, scale):
    n, c, h, w = grad_out.shape
    torch._check(h % scale == 0 and w % scale == 0, lambda: "grad_out size must be a multiple of scale")
    return grad_out.new_empty((n, c, h // scale, w // scale))


def _fake_resize_flow(flow, height, width, align_corners):
    n, c, h, w = flow.shape
    torch._check(h > 0 and w > 0, lambda: "flow must have a non-empty (H, W) plane")
    return flow.new_empty((n, c, height, width))


def _fake_resize_flow_backward(grad_out, height, width, align_corners):
    # height, width: the forward's input size.
    n, c = grad_out.shape[0], grad_out.shape[1]
    return grad_out.new_empty((n, c, height, width))


def _fake_charbonnier(pred, target, eps, reduction, compute_grad):
    loss = torch.empty_like(pred) if reduction == "none" else pred.new_empty(())
    grad = torch.empty_like(pred) if compute_grad else pred.new_empty((0,))
    return loss, grad


def _fake_charbonnier_backward(grad_loss, pred, target, eps, reduction):
    return torch.empty_like(pred)


def _fake_correlation(f1, f2, max_displacement, dilation, stride):
    torch._check(
        max_displacement >= 0 and dilation >= 1 and stride >= 1,
        lambda: "correlation: need max_displacement >= 0, dilation >= 1, stride >= 1",
    )
    n, _, h, w = f1.shape
    side = 2 * max_displacement + 1
    return f1.new_empty((n, side * side, (h + stride - 1) // stride, (w + stride - 1) // stride))


def _fake_correlation_backward(grad_out, f1, f2, max_displacement, dilation, stride, output_mask):
    grad_f1 = torch.empty_like(f1) if output_mask[0] else f1.new_empty((0,))
    grad_f2 = torch.empty_like(f2) if output_mask[1] else f2.new_empty((0,))
    return grad_f1, grad_f2


def _autograd_for(namespace: str):
    """The setup_context/backward pairs of one namespace (backwards call that namespace's ops)."""

    def warp_setup(ctx, inputs, output):
        feats, flows, padding = inputs
        ctx.num_scales = len(feats)
        ctx.padding = padding
        ctx.save_for_backward(*feats, *flows)

    def warp_backward(ctx, grad_outs):
        saved = ctx.saved_tensors
        feats, flows = list(saved[: ctx.num_scales]), list(saved[ctx.num_scales :])
        # needs_input_grad holds one bool per list element for Tensor[] arguments.
        need_feat = any(ctx.needs_input_grad[0])
        need_flow = any(ctx.needs_input_grad[1])
        # An output that did not reach the loss has no gradient: it contributes zero.
        grads = [torch.zeros_like(f) if g is None else g for g, f in zip(grad_outs, feats)]
        grad_feats, grad_flows = ops_of(namespace).multiscale_warp_backward(
            grads, feats, flows, ctx.padding, [need_feat, need_flow]
        )
        # A Tensor[] input takes a list of gradients (None per element when none is needed).
        none = [None] * ctx.num_scales
        return (list(grad_feats) if need_feat else none, list(grad_flows) if need_flow else none, None)

    def grid_sample_setup(ctx, inputs, output):
        input, grid, padding, align_corners = inputs
        ctx.padding, ctx.align_corners = padding, align_corners
        ctx.save_for_backward(input, grid)

    def grid_sample_backward(ctx, grad_out):
        input, grid = ctx.saved_tensors
        need_input, need_grid = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_input, grad_grid = ops_of(namespace).grid_sample_backward(
            grad_out, input, grid, ctx.padding, ctx.align_corners, [need_input, need_grid]
        )
        return (grad_input if need_input else None, grad_grid if need_grid else None, None, None)

    def upsample_setup(ctx, inputs, output):
        ctx.scale = inputs[1]

    def upsample_backward(ctx, grad_out):
        return ops_of(namespace).upsample_flow_backward(grad_out, ctx.scale), None

    def resize_setup(ctx, inputs, output):
        flow, _, _, align_corners = inputs
        ctx.size_in, ctx.align_corners = tuple(flow.shape[-2:]), align_corners

    def resize_backward(ctx, grad_out):
        grad = ops_of(namespace).resize_flow_backward(grad_out, *ctx.size_in, ctx.align_corners)
        return grad, None, None, None

    def charbonnier_setup(ctx, inputs, output):
        pred, target, eps, reduction, compute_grad = inputs
        ctx.eps, ctx.reduction = eps, reduction
        ctx.mark_non_differentiable(output[1])
        if compute_grad:
            # The forward already produced d rho/d pred (unscaled): keep it instead of the inputs.
            ctx.save_for_backward(output[1])
            ctx.fused = True
        else:
            ctx.save_for_backward(pred, target)
            ctx.fused = False

    def charbonnier_backward(ctx, grad_loss, _grad_of_grad):
        if ctx.fused:
            (drho_dpred,) = ctx.saved_tensors
            # The reduction's factor, applied here in fp32 (in fp16, 1/numel times d / rho
            # underflows); the saved tensor has pred's shape.
            if ctx.reduction == "mean":
                grad_loss = grad_loss / max(drho_dpred.numel(), 1)
            elif ctx.reduction == "batch" and drho_dpred.dim():
                grad_loss = grad_loss / max(drho_dpred.shape[0], 1)
            acc = torch.float64 if drho_dpred.dtype == torch.float64 else torch.float32
            grad_pred = (grad_loss.to(acc) * drho_dpred.to(acc)).to(drho_dpred.dtype)
        else:
            pred, target = ctx.saved_tensors
            grad_pred = ops_of(namespace).charbonnier_backward(grad_loss, pred, target, ctx.eps, ctx.reduction)
        need_pred, need_target = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (grad_pred if need_pred else None, -grad_pred if need_target else None, None, None, None)

    def correlation_setup(ctx, inputs, output):
        f1, f2, max_displacement, dilation, stride = inputs
        ctx.params = (max_displacement, dilation, stride)
        ctx.save_for_backward(f1, f2)

    def correlation_backward(ctx, grad_out):
        f1, f2 = ctx.saved_tensors
        need_f1, need_f2 = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_f1, grad_f2 = ops_of(namespace).correlation_backward(grad_out, f1, f2, *ctx.params, [need_f1, need_f2])
        return (grad_f1 if need_f1 else None, grad_f2 if need_f2 else None, None, None, None)

    return {
        "multiscale_warp": (warp_setup, warp_backward),
        "grid_sample": (grid_sample_setup, grid_sample_backward),
        "upsample_flow": (upsample_setup, upsample_backward),
        "resize_flow": (resize_setup, resize_backward),
        "charbonnier": (charbonnier_setup, charbonnier_backward),
        "correlation": (correlation_setup, correlation_backward),
    }


_FAKES = {
    "multiscale_warp": _fake_multiscale_warp,
    "multiscale_warp_backward": _fake_multiscale_warp_backward,
    "grid_sample": _fake_grid_sample,
    "grid_sample_backward": _fake_grid_sample_backward,
    "upsample_flow": _fake_upsample_flow,
    "upsample_flow_backward": _fake_upsample_flow_backward,
    "resize_flow": _fake_resize_flow,
    "resize_flow_backward": _fake_resize_flow_backward,
    "charbonnier": _fake_charbonnier,
    "charbonnier_backward": _fake_charbonnier_backward,
    "correlation": _fake_correlation,
    "correlation_backward": _fake_correlation_backward,
}


def register_family(namespace: str) -> None:
    """Register fakes and autograd for every op of ``namespace`` (idempotent)."""
    if namespace in _registered:
        return
    for name, fake in _FAKES.items():
        torch.library.register_fake(f"{namespace}::{name}", fake)
    for name, (setup, backward) in _autograd_for(namespace).items():
        if (namespace, name) in NATIVE_AUTOGRAD:
            continue
        torch.library.register_autograd(f"{namespace}::{name}", backward, setup_context=setup)
    _registered.add(namespace)
