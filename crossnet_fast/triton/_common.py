"""Helpers shared by the Triton launchers: interpreter detection, config choice, pointer offsets.

Nothing here launches a kernel; the op files do.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable, Sequence

import torch
import triton.language as tl

from ..backend import triton_interpret

# CROSSNET_FAST_TRITON_AUTOTUNE=0 makes every launcher use the first config of its list (no timing).
AUTOTUNE_ENV = "CROSSNET_FAST_TRITON_AUTOTUNE"

# Whether the kernel modules (imported together with this one) were decorated as interpreted.
INTERPRETED_AT_IMPORT = triton_interpret()

_cache: dict = {}
_lock = threading.Lock()


def interpreting() -> bool:
    """True when kernels run on the Triton CPU interpreter (TRITON_INTERPRET=1)."""
    return triton_interpret()


def check_device(op: str, *tensors: torch.Tensor) -> None:
    """Refuse tensors the kernels cannot address, and a TRITON_INTERPRET that changed too late.

    Under the interpreter, kernels read host memory directly; the launchers address several
    tensors from one base pointer (see :func:`element_offsets`), which only holds when the
    interpreter does not copy them, i.e. for CPU tensors. Triton fixes compiled-or-interpreted
    when a kernel module is imported, so the setting must not change afterwards.
    """
    if interpreting() != INTERPRETED_AT_IMPORT:
        raise RuntimeError(
            f"{op}: TRITON_INTERPRET changed after the Triton kernels were imported "
            f"(they are {'interpreted' if INTERPRETED_AT_IMPORT else 'compiled'}); set it before the "
            "first backend='triton' call of the process"
        )
    for t in tensors:
        if interpreting():
            if t.device.type != "cpu":
                raise RuntimeError(
                    f"{op}: backend 'triton' under TRITON_INTERPRET=1 runs on CPU tensors, got {t.device}; "
                    "unset TRITON_INTERPRET to run the compiled kernels on the GPU"
                )
        elif t.device.type != "cuda":
            raise RuntimeError(
                f"{op}: backend 'triton' runs on CUDA tensors, got {t.device} "
                "(set TRITON_INTERPRET=1 before importing crossnet_fast.triton to run on the CPU, slowly)"
            )


def acc_dtype(dtype: torch.dtype):
    """Triton accumulation dtype: fp64 for fp64 inputs (gradcheck), fp32 for everything else."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def acc_torch_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def element_offsets(base: torch.Tensor, tensors: Sequence[torch.Tensor]) -> list[int]:
    """Offsets, in elements of ``base.dtype``, from ``base``'s first element to each tensor's.

    One kernel launch serves every scale of a pyramid: it receives one base pointer per tensor
    role and finds scale ``s`` at ``base + offset[s]``. All tensors must share ``base``'s dtype
    and device; byte distances are then multiples of the element size (storages are aligned and
    storage offsets count elements).
    """
    size = base.element_size()
    out = []
    for t in tensors:
        assert t.dtype == base.dtype and t.device == base.device
        delta = t.data_ptr() - base.data_ptr()
        if delta % size:
            raise RuntimeError("crossnet_fast triton: tensor addresses are not element-aligned")
        out.append(delta // size)
    return out


def next_pow2(x: int) -> int:
    return 1 if x <= 1 else 1 << (int(x) - 1).bit_length()


def _time_ms(fn: Callable[[], None], reps: int = 10) -> float:
    """Median CUDA-event time of ``fn`` in ms (after two warm-up calls that also compile)."""
    fn()
    fn()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def capturing() -> bool:
    """True while the current CUDA stream is capturing a CUDA graph."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def not_during_capture(what: str) -> None:
    """Raise a clear error instead of breaking a CUDA-graph capture with a synchronising step."""
    if capturing():
        raise RuntimeError(
            f"crossnet_fast Triton backend: {what} cannot run while a CUDA graph is being captured; "
            "run the same call once before capturing (warm-up: it tunes the kernel and builds its "
            "tables), or set CROSSNET_FAST_TRITON_AUTOTUNE=0"
        )


def _tuning_errors() -> tuple:
    """The exceptions that mean "this configuration cannot run here" (skip it), never a CUDA fault."""
    errors = []
    try:
        from triton.runtime.errors import OutOfResources

        errors.append(OutOfResources)
    except ImportError:  # pragma: no cover - every supported Triton has it
        pass
    try:
        from triton.compiler.errors import CompilationError

        errors.append(CompilationError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def choose_config(
    key, configs: Sequence[dict], launch: Callable[[dict], None], reset: Callable[[], None] | None = None
) -> dict:
    """Pick the fastest config for ``key`` (cached), timing ``launch(config)`` on the real inputs.

    Under the interpreter, with CROSSNET_FAST_TRITON_AUTOTUNE=0, or while
    ``torch.are_deterministic_algorithms_enabled()``, returns ``configs[0]`` without timing.
    Kernels that accumulate into their outputs (atomics) pass ``reset``, called after the timing
    so that the caller's real launch starts from clean buffers. Triton's own
    ``triton.autotune`` is not used because its ``reset_to_zero`` only knows kernel arguments,
    while the pyramid kernels write to buffers reached through offsets from one base pointer.
    """
    if len(configs) == 1 or interpreting() or os.environ.get(AUTOTUNE_ENV, "1") == "0":
        return configs[0]
    if torch.are_deterministic_algorithms_enabled():
        # One answer per input: a kernel that reduces in chunks (the warp's flow gradient sums
        # BLOCK_C channels at a time) would otherwise round differently with whichever
        # configuration won the timing in this process (issue 24 item 3).
        return configs[0]
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    not_during_capture("choosing a launch configuration (timing synchronises the device)")
    best, best_ms = configs[0], float("inf")
    skip = _tuning_errors()
    for cfg in configs:
        try:
            ms = _time_ms(lambda: launch(cfg))
        except skip:  # out of shared memory/registers, or not compilable, for this config: skip it
            continue
        if ms < best_ms:
            best, best_ms = cfg, ms
    if reset is not None:
        reset()
    with _lock:
        _cache[key] = best
    return best
