"""Runs a model on fixed-shape windows fast: autocast, channels_last, torch.compile, CUDA graphs.

:func:`crossnet_fast.super_resolve` calls every window through one :class:`WindowRunner`; all its
windows have the same shape, which is what makes CUDA-graph capture and a static-shape
``torch.compile`` worthwhile.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter (float32 when it has none)."""
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


class WindowRunner:
    """Callable ``runner(lr, ref) -> out`` for windows of one shape.

    Args:
        model: a module called as ``model(lr, ref)``; lr (B, 3, h, w), ref (B, 3, h*s, w*s) float
            in [0, 1] on the model's device -> (B, 3, h*s, w*s).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``: the autocast dtype of the forward (weights
            stay as they are; fp16 autocast is meant for CUDA).
        channels_last: convert the model's weights (in place; values unchanged) and the inputs to
            the channels_last memory format, which the tensor-core convolutions prefer.
        compile: wrap the model in ``torch.compile`` (static shapes).
        cuda_graph: capture the forward in a CUDA graph on the first call and replay it for every
            later window of the same shape (CUDA models only). Inputs are copied into static
            buffers, so callers may pass any tensors.
        cudnn_benchmark: let cuDNN time its convolution algorithms for the window shape (CUDA; on
            during this runner's calls only, the global flag is restored after each call).

    The returned tensor is float32, (B, 3, h*s, w*s), on the model's device, and owned by the caller.
    Runs without autograd.
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        cuda_graph: bool = False,
        cudnn_benchmark: bool = True,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
        self.device = model_device(model)
        self.dtype = model_dtype(model)
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs the model on a CUDA device, it is on {self.device}")
        self.precision = precision
        self.channels_last = bool(channels_last)
        self.cuda_graph = bool(cuda_graph)
        self.cudnn_benchmark = bool(cudnn_benchmark) and self.device.type == "cuda"
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.fn = torch.compile(model, dynamic=False) if compile else model
        self._graph = None
        self._static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        # cache_enabled=False: cached weight casts would be freed/re-made between graph replays.
        return torch.autocast(
            self.device.type, dtype=PRECISIONS[self.precision], cache_enabled=False if self.cuda_graph else None
        )

    def _prepare(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(device=self.device, dtype=self.dtype, non_blocking=True)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _eager(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self._autocast():
            return self.fn(lr, ref)

    def _capture(self, lr: torch.Tensor, ref: torch.Tensor) -> None:
        static_lr, static_ref = lr.clone(), ref.clone()
        # Warm up on a side stream (cuDNN algorithm choice, lazy init, compile) before capturing.
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._eager(static_lr, static_ref)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._eager(static_lr, static_ref)
        self._graph = graph
        self._static = (static_lr, static_ref, static_out)

    def __call__(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if not self.cudnn_benchmark:
            return self._call(lr, ref)
        # All windows share one shape, so timing the algorithms once pays off at once.
        old = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            return self._call(lr, ref)
        finally:
            torch.backends.cudnn.benchmark = old

    def _call(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        lr, ref = self._prepare(lr), self._prepare(ref)
        if not self.cuda_graph:
            return self._eager(lr, ref).float()
        if self._static is not None and (self._static[0].shape != lr.shape or self._static[1].shape != ref.shape):
            self._graph, self._static = None, None  # new window shape: capture again
        if self._graph is None:
            self._capture(lr, ref)
        static_lr, static_ref, static_out = self._static
        static_lr.copy_(lr)
        static_ref.copy_(ref)
        self._graph.replay()
        return static_out.float().clone()  # the next replay overwrites static_out
