"""Triton Charbonnier loss ``sqrt((pred - target)^2 + eps^2)``: loss and gradient in one pass.

The main kernel reads pred and target once, writes the elementwise loss (``"none"``) or one fp32
partial sum per program, and, when asked, d(loss)/d(pred) = d / rho * norm in the same pass. A
second one-program kernel adds the partials in a fixed order (deterministic, no atomics) and
applies the normalisation. Elements are visited in memory order, so any dense layout (NCHW or
channels_last) works without copies when pred and target share strides.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common
from ._rounding import LAUNCH_OPTIONS, div, sqrt


@triton.jit
def _rho(d, eps2, ACC: tl.constexpr):
    """sqrt(d^2 + eps2) without overflow: beyond 2^60 it is |d| to the last bit (fp32 and fp64),
    and in fp32 d * d would overflow a little further on (csrc/charbonnier.h). d * d and the sum
    are rounded one at a time (launched without fp fusion) and the root is correctly rounded, as
    on the CPU: the approximate fp32 root flushes a subnormal d^2 to 0 (rho = 0, an inf gradient)."""
    ad = tl.abs(d)
    return tl.where(ad > 1.152921504606847e18, ad, sqrt(d * d + eps2, ACC))


@triton.jit
def _charbonnier_kernel(
    pred_ptr,
    target_ptr,
    loss_ptr,
    grad_ptr,
    numel,
    consts_ptr,
    REDUCE: tl.constexpr,
    GRAD: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """consts_ptr: (2,) ACC tensor (eps^2, norm): a Python float argument would be typed fp32."""
    pid = tl.program_id(0)
    eps2 = tl.load(consts_ptr)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    d = tl.load(pred_ptr + offs, mask=mask, other=0.0).to(ACC) - tl.load(target_ptr + offs, mask=mask, other=0.0).to(
        ACC
    )
    rho = _rho(d, eps2, ACC)
    if REDUCE:
        # One partial per program, summed by _finish_kernel in program order.
        tl.store(loss_ptr + pid, tl.sum(tl.where(mask, rho, 0.0), axis=0))
    else:
        tl.store(loss_ptr + offs, rho.to(loss_ptr.dtype.element_ty), mask=mask)
    if GRAD:
        # d rho / d pred, not scaled by the reduction (1/numel underflows fp16): autograd scales it.
        tl.store(grad_ptr + offs, div(d, rho, ACC).to(grad_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _finish_kernel(partial_ptr, out_ptr, count, consts_ptr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    norm = tl.load(consts_ptr + 1)
    acc = tl.zeros([BLOCK], dtype=ACC)
    for start in range(0, count, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < count, other=0.0)
    tl.store(out_ptr, (tl.sum(acc, axis=0) * norm).to(out_ptr.dtype.element_ty))


@triton.jit
def _charbonnier_bwd_kernel(
    gl_ptr,
    pred_ptr,
    target_ptr,
    grad_ptr,
    numel,
    consts_ptr,
    SCALAR_GRAD: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    eps2 = tl.load(consts_ptr)
    norm = tl.load(consts_ptr + 1)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    d = tl.load(pred_ptr + offs, mask=mask, other=0.0).to(ACC) - tl.load(target_ptr + offs, mask=mask, other=0.0).to(
        ACC
    )
    if SCALAR_GRAD:
        gl = tl.load(gl_ptr).to(ACC)  # read on the device: no host sync for the 0-d upstream grad
    else:
        gl = tl.load(gl_ptr + offs, mask=mask, other=0.0).to(ACC)
    g = div(gl * d, _rho(d, eps2, ACC), ACC) * norm
    tl.store(grad_ptr + offs, g.to(grad_ptr.dtype.element_ty), mask=mask)


_BLOCKS = [(1024, 4), (2048, 8), (4096, 8), (512, 4)]  # (BLOCK, num_warps); first = untimed default
_INTERP_BLOCK = 1024
_FINISH_BLOCK = 1024


# Elements per partial sum of a reduced loss: fixed, so that the loss's summation order (and so its
# bits) never depends on which configuration the timing chose in this process.
PARTIAL = 2048


# The one configuration of a reduced loss on the GPU. tl.sum's order inside a program follows
# num_warps, so timing 8 against 4 (as before issue 24) made the loss's bits depend on which won
# in this process: a reduction is not tuned.
REDUCE_WARPS = 8


def _configs(reduce: bool = False):
    """Launch configurations to time. A reduction has exactly one (BLOCK = PARTIAL, REDUCE_WARPS)."""
    if _common.interpreting():
        return [dict(BLOCK=PARTIAL if reduce else _INTERP_BLOCK, num_warps=1)]
    if reduce:
        return [dict(BLOCK=PARTIAL, num_warps=REDUCE_WARPS)]
    return [dict(BLOCK=b, num_warps=w) for b, w in _BLOCKS]


def _dense(t: torch.Tensor) -> bool:
    """Memory order is a permutation of the elements (no gaps, no overlap) in a layout empty_like keeps."""
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def _work_pair(pred: torch.Tensor, target: torch.Tensor):
    """pred and target with one dense layout, so the kernels can walk both in memory order."""
    p = pred if _dense(pred) else pred.contiguous()
    t = target if target.stride() == p.stride() and _dense(target) else torch.empty_like(p).copy_(target)
    return p, t


def _norm(pred: torch.Tensor, reduction: str) -> float:
    if reduction == "mean":
        return 1.0 / max(pred.numel(), 1)
    if reduction == "batch":
        return 1.0 / max(pred.shape[0], 1)
    return 1.0


def _consts(eps: float, norm: float, dtype: torch.dtype, device) -> torch.Tensor:
    """(eps^2, norm) as a (2,) tensor of the accumulation dtype on ``device``: a Python float kernel
    argument would be typed fp32 (fp64 losses would get eps^2 and 1/numel rounded to fp32). Made
    by two fills (kernel launches with the value as an argument): no host-to-device copy, no sync,
    and a CUDA graph can capture them."""
    consts = torch.empty(2, dtype=dtype, device=device)
    consts[0].fill_(float(eps) * float(eps))
    consts[1].fill_(norm)
    return consts


def _like(pred: torch.Tensor, work: torch.Tensor):
    """(result tensor as the fake promises, tensor the kernel writes): the same one when layouts agree."""
    out = torch.empty_like(pred)
    return (out, out) if out.stride() == work.stride() else (out, torch.empty_like(work))


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float, reduction: str, compute_grad: bool):
    """Triton implementation of ``crossnet_fast_triton::charbonnier``.

    Args:
        pred, target: float tensors of one shape and dtype, any layout.
        eps: smoothing constant (units of the inputs). reduction: "mean" | "sum" | "batch" | "none".
        compute_grad: also produce d rho / d pred = d / rho elementwise, *not* scaled by the
            reduction (the autograd backward multiplies by the upstream gradient and the
            reduction's 1/numel or 1/N in fp32: that factor alone underflows fp16).

    Returns:
        (loss, drho_dpred): loss is 0-d (pred-shaped for "none") in ``pred.dtype``, summed in
        fp32 (fp64 for fp64); drho_dpred is ``empty_like(pred)`` when ``compute_grad`` else an
        empty (0,) tensor.
    """
    _common.check_device("charbonnier", pred, target)
    p, t = _work_pair(pred, target)
    numel = p.numel()
    acc_t = _common.acc_torch_dtype(pred.dtype)
    acc = _common.acc_dtype(pred.dtype)
    norm = _norm(pred, reduction)
    reduce = reduction != "none"
    consts = _consts(eps, norm, acc_t, pred.device)
    grad, kgrad = _like(pred, p) if compute_grad else (pred.new_empty((0,)),) * 2
    if reduce:
        loss = pred.new_empty(())
        kloss = None
    else:
        loss, kloss = _like(pred, p)

    def launch(cfg, partials=None):
        grid = (triton.cdiv(numel, cfg["BLOCK"]),)
        if grid[0] == 0:
            return
        _charbonnier_kernel[grid](
            p,
            t,
            partials if reduce else kloss,
            kgrad if compute_grad else p,
            numel,
            consts,
            REDUCE=reduce,
            GRAD=compute_grad,
            ACC=acc,
            BLOCK=cfg["BLOCK"],
            num_warps=cfg["num_warps"],
            **LAUNCH_OPTIONS,
        )

    configs = _configs(reduce)
    max_partials = triton.cdiv(numel, min(c["BLOCK"] for c in configs))
    scratch = torch.empty(max(max_partials, 1), dtype=acc_t, device=pred.device) if reduce else None
    key = ("charbonnier", pred.device.index, pred.dtype, reduce, compute_grad, _common.next_pow2(numel))
    cfg = _common.choose_config(key, configs, lambda c: launch(c, scratch))
    launch(cfg, scratch)
    if reduce:
        count = triton.cdiv(numel, cfg["BLOCK"])
        _finish_kernel[(1,)](scratch, loss, count, consts, ACC=acc, BLOCK=_FINISH_BLOCK, **LAUNCH_OPTIONS)
    else:
        if kloss is not loss:
            loss.copy_(kloss)
    if compute_grad and kgrad is not grad:
        grad.copy_(kgrad)
    return loss, grad


def charbonnier_backward(
    grad_loss: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, eps: float, reduction: str
) -> torch.Tensor:
    """Triton implementation of ``crossnet_fast_triton::charbonnier_backward``.

    Args:
        grad_loss: 0-d tensor (pred-shaped for "none"): d(total)/d(loss).
        pred, target, eps, reduction: as in :func:`charbonnier`.

    Returns:
        ``empty_like(pred)`` tensor: d(total)/d(pred) = grad_loss * d / rho * norm (the gradient
        for target is its negative).
    """
    _common.check_device("charbonnier_backward", grad_loss, pred, target)
    p, t = _work_pair(pred, target)
    numel = p.numel()
    scalar = reduction != "none"
    if scalar:
        gl = grad_loss.reshape(())
    else:
        gl = (
            grad_loss
            if grad_loss.stride() == p.stride() and _dense(grad_loss)
            else torch.empty_like(p, dtype=grad_loss.dtype).copy_(grad_loss)
        )
    grad, kgrad = _like(pred, p)
    acc = _common.acc_dtype(pred.dtype)
    norm = _norm(pred, reduction)
    consts = _consts(eps, norm, _common.acc_torch_dtype(pred.dtype), pred.device)

    def launch(cfg):
        grid = (triton.cdiv(numel, cfg["BLOCK"]),)
        if grid[0] == 0:
            return
        _charbonnier_bwd_kernel[grid](
            gl,
            p,
            t,
            kgrad,
            numel,
            consts,
            SCALAR_GRAD=scalar,
            ACC=acc,
            BLOCK=cfg["BLOCK"],
            num_warps=cfg["num_warps"],
            **LAUNCH_OPTIONS,
        )

    key = ("charbonnier_bwd", pred.device.index, pred.dtype, scalar, _common.next_pow2(numel))
    launch(_common.choose_config(key, _configs(), launch))
    if kgrad is not grad:
        grad.copy_(kgrad)
    return grad
