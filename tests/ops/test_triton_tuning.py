"""The Triton launchers' configuration choice and CUDA-graph safety (issue 10 item 4), on the CPU.

No kernel runs here: ``launch`` callables stand in for them, and capture is simulated by
patching ``_common.capturing``.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")


@pytest.fixture
def common(monkeypatch):
    from crossnet_fast.triton import _common

    monkeypatch.setattr(_common, "interpreting", lambda: False)
    monkeypatch.delenv(_common.AUTOTUNE_ENV, raising=False)
    monkeypatch.setattr(_common, "_cache", {})
    return _common


def test_a_cuda_fault_while_tuning_is_raised_not_skipped(common):
    def launch(cfg):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with pytest.raises(RuntimeError, match="illegal memory access"):
        common.choose_config(("k", 1), [{"B": 1}, {"B": 2}], launch)


def test_configurations_that_do_not_fit_are_skipped(common, monkeypatch):
    from triton.runtime.errors import OutOfResources

    timed = []
    monkeypatch.setattr(common, "_time_ms", lambda fn: (fn(), timed.append(1), 1.0)[2])

    def launch(cfg):
        if cfg["B"] == 1:
            raise OutOfResources(300000, 232448, "shared memory")

    assert common.choose_config(("k", 2), [{"B": 1}, {"B": 2}], launch) == {"B": 2}
    assert len(timed) == 1


def test_tuning_is_refused_during_graph_capture_but_a_tuned_key_is_used(common, monkeypatch):
    monkeypatch.setattr(common, "capturing", lambda: True)
    with pytest.raises(RuntimeError, match="CUDA graph is being captured.*warm-up"):
        common.choose_config(("k", 3), [{"B": 1}, {"B": 2}], lambda cfg: None)
    common._cache[("k", 3)] = {"B": 2}
    assert common.choose_config(("k", 3), [{"B": 1}, {"B": 2}], lambda cfg: None) == {"B": 2}


def test_a_table_used_in_a_capture_is_never_evicted(monkeypatch):
    import torch

    from crossnet_fast.triton import _common
    from crossnet_fast.triton import multiscale_warp as mw

    monkeypatch.setattr(mw, "_meta_cache", {})
    monkeypatch.setattr(mw, "_captured_tables", {})
    feats = [torch.zeros(1, 2, 4, 4)]
    flows = [torch.zeros(1, 2, 4, 4)]
    table = mw._meta(feats, flows, None, None, None, torch.device("cpu"))  # warm-up, outside capture
    monkeypatch.setattr(_common, "capturing", lambda: True)
    assert mw._meta(feats, flows, None, None, None, torch.device("cpu")) is table  # reused in capture
    monkeypatch.setattr(_common, "capturing", lambda: False)
    for i in range(mw._META_CACHE_SIZE + 5):  # enough new shapes to evict everything evictable
        mw._meta([torch.zeros(1, 2, 4, 5 + i)], [torch.zeros(1, 2, 4, 5 + i)], None, None, None, torch.device("cpu"))
    assert mw._meta(feats, flows, None, None, None, torch.device("cpu")) is table
