"""crossnet_fast.benchmarking.interleaved_seconds: the call order and what it returns."""

from __future__ import annotations

from crossnet_fast.benchmarking import interleaved_seconds


def test_interleaved_seconds_warms_up_then_alternates_round_by_round():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = interleaved_seconds(fns, 3)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # one warm-up each, then a, b per round
    assert set(times) == {"a", "b"} and all(len(t) == 3 and min(t) >= 0 for t in times.values())
