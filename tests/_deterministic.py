"""A check shared by the Triton test files whose backward uses atomics (warp and grid_sample)."""

from __future__ import annotations

import pytest
import torch


def assert_backward_refused_when_deterministic(out: torch.Tensor) -> None:
    """``out.sum().backward()`` must raise a RuntimeError naming determinism while
    ``torch.use_deterministic_algorithms(True)`` is on: a gradient summed by atomics differs in its
    last bits from run to run, so it is refused there rather than silently nondeterministic.

    Args:
        out: any-shape float tensor with a grad_fn through the backward under test.

    The previous deterministic setting (and its warn_only flag) is restored afterwards, pass or fail.
    """
    previous, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="deterministic"):
            out.sum().backward()
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)
