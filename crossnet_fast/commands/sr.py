"""``crossnet-fast sr``: super-resolve one LR image with a reference image and write a PNG."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from .._device import resolve_device  # noqa: F401  (also used by the bench and demo commands)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sr",
        help="super-resolve an LR image using a high-resolution reference",
        description="Super-resolve LR by --scale with CrossNet, using REF (the HR reference, ideally "
        "--scale times the size of LR; a REF of another size is placed top-left on that "
        "canvas, cropped where larger and padded by edge replication where smaller, never "
        "resized, and a note says what was done). Any size works: the pair is padded to "
        "multiples of 64 and large images run as blended sliding windows.",
    )
    p.add_argument("--lr", required=True, type=Path, help="low-resolution input image (PNG, JPEG, ...)")
    p.add_argument(
        "--ref",
        required=True,
        type=Path,
        help="high-resolution reference image: --scale times the LR size, or another size "
        "(placed top-left, cropped or edge-padded; at least half the output per side)",
    )
    p.add_argument("--scale", required=True, type=int, choices=(4, 8), help="upscaling factor")
    p.add_argument(
        "--weights",
        default=None,
        help="CrossNet checkpoint (.safetensors written by CrossNet.save) or shipped name "
        "(default: the shipped crossnet-x<scale>)",
    )
    p.add_argument("--out", required=True, type=Path, help="output image (written atomically; PNG by default)")
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="HR window side, a multiple of 64 (default: 768 on the CPU, 512 on a GPU)",
    )
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="HR stride between windows, a multiple of --scale (default: the window less 128 px on the CPU, "
        "half the window on a GPU)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass (default 1)")
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="autocast precision (default fp32; bf16 is the fast GPU choice)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "cuda", "triton", "cpu", "reference"),
        help="warp op backend (default auto)",
    )
    p.add_argument("--channels-last", action="store_true", help="run in channels_last memory format")
    p.add_argument("--cuda-graph", action="store_true", help="capture the window forward in a CUDA graph")
    p.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar over windows")
    return p


def read_rgb(path: Path, arg: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of the image at ``path`` (errors name the option ``arg``).

    Read with :func:`crossnet_fast.data.io.load_image`, so grayscale, palette, RGBA and 16-bit
    files are converted as everywhere else in the package (16-bit values rounded to 8 bits, not
    clipped), and a truncated file is a ValueError, not a traceback."""
    from ..data.io import load_image, to_uint8

    if not path.is_file():
        raise FileNotFoundError(f"{arg}: no such file: {str(path)!r}")
    try:
        return to_uint8(load_image(path))
    except ValueError as exc:
        # load_image's message names the file; its cause says why (truncated, not an image, ...).
        why = exc.__cause__ if exc.__cause__ is not None else exc
        raise ValueError(
            f"{arg}: cannot read image file {str(path)!r} ({why}); expected a PNG, JPEG or other image Pillow reads"
        ) from exc


def output_format(path: Path) -> str:
    """Pillow format name for ``path`` (PNG without an extension); checked before any work is done."""
    from PIL import Image

    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext, "PNG" if ext == "" else None)
    if fmt is None:
        raise ValueError(f"--out: unknown image extension {ext!r} (use .png)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--out: folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"--out: {str(path)!r} is a folder; expected the path of an image file")
    return fmt


def write_rgb_atomic(image: np.ndarray, path: Path) -> None:
    """Save an (H, W, 3) uint8 array to ``path`` via a temporary file in the same folder + os.replace."""
    from PIL import Image

    fmt = output_format(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image, "RGB").save(tmp, format=fmt)


# Windows per device. On the CPU, fewer and larger windows with a narrow overlap: a 1080x1920 x4
# pair runs in 3.6 s with 768 / 640 against 6.1 s with 512 / 256, at 1.2 GB peak, and the windows
# change PSNR by +0.01 dB against one whole-image pass (docs/PERFORMANCE.md, "Whole images"). On
# a GPU the paper's 512 / 256 (not measured on one yet).
CPU_WINDOW, CPU_OVERLAP = 768, 128


def default_windows(device, window: int | None, stride: int | None) -> tuple[int, int]:
    """(window, stride) in HR px: the given values, or the device's defaults for those left None."""
    on_cpu = str(device).startswith("cpu")
    if window is None:
        window = CPU_WINDOW if on_cpu else 512
    if stride is None:
        stride = window - CPU_OVERLAP if on_cpu and window > 2 * CPU_OVERLAP else window // 2
    return window, stride


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..infer import super_resolve
    from ..placement import ReferencePlacementWarning, plan_placement

    output_format(args.out)
    device = resolve_device(args.device)
    weights = args.weights or f"crossnet-x{args.scale}"
    try:
        model = load_model(weights, device=device, backend=args.backend, scale=args.scale)
    except (ValueError, FileNotFoundError) as exc:
        # load_model names its Python argument (path_or_name); the user gave --weights.
        msg = str(exc).removeprefix("path_or_name: ")
        raise type(exc)(f"--weights: {msg}") from exc
    lr = read_rgb(args.lr, "--lr")
    ref = read_rgb(args.ref, "--ref")
    # Checked (and the note printed) here so that errors name --ref; super_resolve places the
    # reference by the same rule and its warning, the same note, is not shown twice.
    placement = plan_placement(ref.shape[:2], (lr.shape[0] * args.scale, lr.shape[1] * args.scale), name="--ref")
    if placement.note is not None:
        print(f"note: {placement.note}")
    window, stride = default_windows(device, args.window, args.stride)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferencePlacementWarning)
        sr = super_resolve(
            model,
            lr,
            ref,
            window=window,
            stride=stride,
            batch_size=args.batch_size,
            precision=args.precision,
            channels_last=args.channels_last,
            cuda_graph=args.cuda_graph,
            compile=args.compile,
            progress=not args.no_progress,
        )
    write_rgb_atomic(sr, args.out)
    print(f"wrote {args.out} ({sr.shape[1]}x{sr.shape[0]})")
    return 0
