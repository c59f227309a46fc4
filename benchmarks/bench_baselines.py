"""Speed of the RefSR baselines on one image: bicubic and patch-matching (PatchMatch) RefSR.

Run:  pytest benchmarks/bench_baselines.py --benchmark-only --benchmark-json=out/bench_baselines.json
then: python benchmarks/report.py out/bench_baselines.json --baseline patchmatch
      (ratio column = patchmatch time / method time, i.e. how many times faster than patch matching)

Input: x4, reference view (0, 0) and LR view (1, 1) of the HCI scene "antinous" from
../shared/data (a smooth random texture when the data is absent), top-left crop of
CROSSNET_BENCH_BASELINE_SIZE HR pixels (default 256 on the CPU, 512 on CUDA). One group per
(device, size); rows are the methods in ``METHODS``.

Adding a method (e.g. CrossNet): add an entry to ``METHODS``, a factory ``(device, scale) ->
callable(lr, ref) -> sr`` with lr (1, 3, h, w) and ref (1, 3, H, W) float32 on ``device``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from crossnet_fast.baselines import bicubic, patchmatch_sr
from crossnet_fast.degrade import degrade

SCALE = 4
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hci" / "antinous"
CUDA = torch.cuda.is_available()


def _patchmatch(device, scale):
    return lambda lr, ref: patchmatch_sr(lr, ref, scale)


def _bicubic(device, scale):
    return lambda lr, ref: bicubic(lr, scale)


def _crossnet(device, scale, width=1.0):
    # Untrained weights time the same network as trained ones (official configuration, bicubic
    # SISR input, the fused warp through backend="auto").
    from crossnet_fast import CrossNet, super_resolve

    torch.manual_seed(0)
    model = CrossNet(scale=scale, sisr="bicubic", width=width).to(device).eval()
    return lambda lr, ref: super_resolve(model, lr, ref)


def _crossnet_compact(device, scale):
    # The compact configuration of the shipped preview weights (width 0.25).
    return _crossnet(device, scale, width=0.25)


# name -> factory; "patchmatch" first: report.py's --baseline patchmatch gives speed-ups over it.
METHODS = {"patchmatch": _patchmatch, "bicubic": _bicubic, "crossnet": _crossnet, "crossnet_compact": _crossnet_compact}
CASES = [
    ("cpu", int(os.environ.get("CROSSNET_BENCH_BASELINE_SIZE", 256))),
    ("cuda", int(os.environ.get("CROSSNET_BENCH_BASELINE_SIZE", 512))),
]


def _inputs(device: str, size: int):
    if (DATA / "input_Cam000.png").is_file():
        from crossnet_fast.data import load_image

        ref = load_image(DATA / "input_Cam000.png")[:, :size, :size]
        hr = load_image(DATA / "input_Cam010.png")[:, :size, :size]
    else:
        g = torch.Generator().manual_seed(0)
        tex = torch.nn.functional.avg_pool2d(torch.rand(1, 3, size + 2, size + 2, generator=g), 3, 1, 1)[0]
        ref, hr = tex[:, :size, :size], tex[:, 2:, 2:]
    lr = degrade(hr[None], SCALE)
    return lr.to(device), ref[None].to(device)


@pytest.mark.parametrize("device,size", CASES, ids=[f"{d}-{s}" for d, s in CASES])
@pytest.mark.parametrize("method", list(METHODS))
def test_baseline_speed(benchmark, method, device, size):
    if device == "cuda" and not CUDA:
        pytest.skip("no CUDA device")
    lr, ref = _inputs(device, size)
    fn = METHODS[method](device, SCALE)
    benchmark.group = f"baselines-{device}-{size}px-x{SCALE}"
    benchmark.name = method
    benchmark.extra_info.update(device=device, hr_size=size, scale=SCALE, threads=torch.get_num_threads())

    def call():
        with torch.inference_mode():
            out = fn(lr, ref)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    out = benchmark.pedantic(call, rounds=3 if method == "patchmatch" else 20, iterations=1, warmup_rounds=1)
    assert out.shape[-2:] == (size, size)
