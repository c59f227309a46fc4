"""The ``crossnet-fast sr`` and ``bench`` commands: help, end-to-end run, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from crossnet_fast.cli import main
from crossnet_fast.infer import super_resolve
from crossnet_fast.models import CrossNet


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = CrossNet(4, "official", "bicubic").eval()
    model.save(d / "w.safetensors")
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (16, 27, 3), dtype=np.uint8)  # HR 64 x 108: not a multiple of 64
    ref = rng.integers(0, 256, (64, 108, 3), dtype=np.uint8)
    Image.fromarray(lr).save(d / "lr.png")
    Image.fromarray(ref).save(d / "ref.png")
    Image.fromarray(ref[:31]).save(d / "ref_bad.png")  # less than half the 64-pixel output height
    return d, model, lr, ref


def test_help_everywhere(capsys):
    for argv in (["--help"], ["sr", "--help"], ["bench", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--lr",
        "--ref",
        "--scale",
        "--weights",
        "--out",
        "--window",
        "--stride",
        "--precision",
        "--device",
        "--iters",
    ):
        assert option in out


@pytest.mark.slow
def test_module_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "crossnet_fast", "sr", "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "--weights" in res.stdout


@pytest.mark.slow
def test_sr_end_to_end(files, capsys):
    d, model, lr, ref = files
    out = d / "sr.png"
    rc = main(
        [
            "sr",
            "--lr",
            str(d / "lr.png"),
            "--ref",
            str(d / "ref.png"),
            "--scale",
            "4",
            "--weights",
            str(d / "w.safetensors"),
            "--out",
            str(out),
            "--window",
            "128",
            "--device",
            "cpu",
            "--backend",
            "reference",
            "--no-progress",
        ]
    )
    assert rc == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (108, 64) and im.mode == "RGB"
        got = np.asarray(im)
    model.backend = "reference"
    np.testing.assert_array_equal(got, super_resolve(model, lr, ref, window=128, stride=64))
    assert not [f for f in os.listdir(d) if f.endswith(".tmp")]
    assert "wrote" in capsys.readouterr().out


@pytest.mark.slow
def test_sr_defaults_to_the_shipped_weights(files, capsys, tmp_path, monkeypatch):
    from crossnet_fast import _model_file

    d, model, _, _ = files
    argv = [
        "sr",
        "--lr",
        str(d / "lr.png"),
        "--ref",
        str(d / "ref.png"),
        "--scale",
        "4",
        "--device",
        "cpu",
        "--no-progress",
        "--window",
        "128",
    ]
    monkeypatch.setattr(_model_file, "WEIGHTS_DIR", tmp_path)
    assert main(argv + ["--out", str(tmp_path / "a.png")]) == 1  # nothing shipped in this folder
    assert "'crossnet-x4' is neither a file nor a shipped weights name" in capsys.readouterr().err
    model.save(tmp_path / "crossnet-x4.safetensors")
    assert main(argv + ["--out", str(tmp_path / "b.png")]) == 0
    explicit = tmp_path / "c.png"
    assert main(argv + ["--out", str(explicit), "--weights", str(d / "w.safetensors")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), np.asarray(Image.open(explicit)))


@pytest.mark.parametrize(
    "change,message",
    [
        ({"--ref": "ref_bad.png"}, "--ref is 108x31 (width x height), less than half of the 108x64 output"),
        ({"--lr": "missing.png"}, "--lr: no such file"),
        ({"--scale": "8"}, "holds x4 weights, expected x8"),
        ({"--weights": "crossnet-x3"}, "available names"),  # a name never shipped
        ({"--out": "sub/x.png"}, "--out: folder"),
        ({"--out": "x.weird"}, "--out: unknown image extension"),
    ],
)
def test_sr_errors(files, capsys, change, message):
    d = files[0]
    args = {"--lr": "lr.png", "--ref": "ref.png", "--scale": "4", "--weights": "w.safetensors", "--out": "x.png"}
    args.update(change)
    argv = ["sr", "--no-progress", "--device", "cpu"]
    for k, v in args.items():
        argv += [k, v if k == "--scale" or v == "crossnet-x3" else str(d / v)]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (d / "x.png").exists()


def test_bench_runs(capsys):
    rc = main(
        ["bench", "--scale", "4", "--height", "64", "--width", "64", "--iters", "1", "--warmup", "0", "--device", "cpu"]
    )
    assert rc == 0
    assert "median" in capsys.readouterr().out
    assert main(["bench", "--height", "100"]) == 1
    assert "--height must be a positive multiple of 64" in capsys.readouterr().err


def test_sr_default_windows_per_device():
    from crossnet_fast.commands.sr import default_windows

    assert default_windows("cpu", None, None) == (768, 640)
    assert default_windows("cuda:0", None, None) == (512, 256)
    assert default_windows("cpu", 512, None) == (512, 384)  # the CPU's 128-px overlap
    assert default_windows("cpu", 128, None) == (128, 64)  # too small for it: half the window
    assert default_windows("cuda", 1024, 512) == (1024, 512)  # given values are kept
