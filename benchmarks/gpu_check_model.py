"""One short GPU check of the CrossNet fast path (run where a CUDA device exists; ~2-4 minutes).

    python benchmarks/gpu_check_model.py [--skip-compile]

Checks (each prints PASS/FAIL with numbers), all on the same random weights:
  1. fused warp backend (auto -> cuda/triton) vs backend="reference": fp32 output within 1e-4;
  2. bf16 autocast vs fp32 output (relative max error);
  3. super_resolve with channels_last + CUDA graph + batch of windows equals the eager fp32 path
     (bf16 tolerance) on a 1080x1920 reference, and its peak memory;
  4. timing of one 512x512 x8 window in bf16 (CUDA-event medians): plain-PyTorch (grid_sample)
     eager and torch.compile, crossnet_fast eager and channels_last + CUDA graph, with ratios.
     Target (issue 5): crossnet_fast >= 2x the plain eager and faster than plain compile.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from plain_crossnet import plain_copy  # noqa: E402

from crossnet_fast import benchmarking  # noqa: E402
from crossnet_fast.fastpath import WindowRunner  # noqa: E402
from crossnet_fast.infer import super_resolve  # noqa: E402
from crossnet_fast.models import CrossNet  # noqa: E402


def report(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    return ok


def time_ms(fn):
    return benchmarking.time_ms(fn, "cuda", repeat=30, warmup=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile timings")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    dev = torch.device("cuda")
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    ok = True
    torch.manual_seed(0)
    model = CrossNet(8, "official", "bicubic").to(dev).eval()
    gen = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, 64, 64, generator=gen).to(dev)
    ref = torch.rand(1, 3, 512, 512, generator=gen).to(dev)

    with torch.no_grad():
        fused = model(lr, ref)
        model.backend = "reference"
        refout = model(lr, ref)
        model.backend = "auto"
    err = (fused - refout).abs().max().item()
    ok &= report("fused vs reference backend, fp32", err <= 1e-4, f"max abs diff {err:.2e}")

    bf16 = WindowRunner(model, precision="bf16")(lr, ref)
    rel = ((bf16 - fused).abs().max() / fused.abs().max()).item()
    ok &= report("bf16 vs fp32", rel < 0.05, f"max abs diff / max |out| = {rel:.3e}")

    big_ref = torch.rand(1, 3, 1080, 1920, generator=gen)
    big_lr = torch.nn.functional.avg_pool2d(big_ref, 8)
    eager = super_resolve(model, big_lr, big_ref, clamp=False)
    torch.cuda.reset_peak_memory_stats()
    fast = super_resolve(
        model, big_lr, big_ref, clamp=False, precision="bf16", channels_last=True, cuda_graph=True, batch_size=4
    )
    peak = torch.cuda.max_memory_allocated() / 2**20
    model.to(memory_format=torch.contiguous_format)
    rel = ((fast - eager).abs().max() / eager.abs().max()).item()
    ok &= report(
        "super_resolve 1080x1920, bf16+channels_last+CUDA graph vs fp32 eager",
        rel < 0.05,
        f"rel max diff {rel:.3e}, shape {tuple(fast.shape)}, peak {peak:.0f} MiB",
    )

    plain = plain_copy(model)
    runners = {
        "plain eager": WindowRunner(plain, precision="bf16"),
        "crossnet_fast eager": WindowRunner(model, precision="bf16"),
        "crossnet_fast channels_last": WindowRunner(model, precision="bf16", channels_last=True),
        "crossnet_fast channels_last+graph": WindowRunner(model, precision="bf16", channels_last=True, cuda_graph=True),
    }
    if not args.skip_compile:
        runners["plain compile"] = WindowRunner(plain_copy(model), precision="bf16", compile=True)
        runners["plain compile channels_last"] = WindowRunner(
            plain_copy(model), precision="bf16", channels_last=True, compile=True
        )
    results = {}
    for name, runner in runners.items():
        try:
            results[name] = time_ms(lambda: runner(lr, ref))
            print(f"      {name}: {results[name]:.3f} ms", flush=True)
        except Exception as exc:  # report and go on: one failing variant must not hide the others
            ok &= report(name, False, f"{type(exc).__name__}: {exc}")
    base = results.get("plain eager")
    best = min((v for k, v in results.items() if k.startswith("crossnet_fast")), default=None)
    if base and best:
        ok &= report("x8 512x512 bf16: best crossnet_fast >= 2x plain eager", base / best >= 2, f"{base / best:.2f}x")
        compiled = [v for k, v in results.items() if k.startswith("plain compile")]
        if compiled:
            ok &= report(
                "x8 512x512 bf16: best crossnet_fast faster than plain compile",
                best < min(compiled),
                f"{min(compiled) / best:.2f}x",
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
