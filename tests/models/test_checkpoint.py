"""Checkpoints: safetensors + JSON configuration, bit-exact reload, atomic writes, clear errors."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from safetensors.torch import save_file

import crossnet_fast.checkpoint as ckpt
from crossnet_fast import _model_file
from crossnet_fast.checkpoint import available_weights, load_model
from crossnet_fast.models import CrossNet


@pytest.fixture(scope="module")
def paper_x8():
    torch.manual_seed(0)
    return CrossNet(8, "paper", "mdsr", backend="reference").eval()  # random init: every tensor distinct


def _header(path):
    """The safetensors JSON header, parsed independently of the safetensors library."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


@pytest.mark.slow
def test_save_reload_bit_exact(tmp_path, paper_x8):
    path = tmp_path / "m.safetensors"
    paper_x8.save(path)
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left behind
    header = _header(path)
    config = json.loads(header["__metadata__"]["crossnet_fast"])["config"]
    assert config == {
        "scale": 8,
        "config": "paper",
        "sisr": "mdsr",
        "width": 1.0,
        "residual": False,
        "flow_ref": "sharp",
        "ref_detail": False,
        "refine_radius": 0,
        "refine_steps": 2,
        "flow_init": "net",
        "backprojection": 0,
        "flow": "flownet",
    }
    assert len(header) - 1 == len(paper_x8.state_dict())

    loaded = load_model(path, backend="reference")
    assert isinstance(loaded, CrossNet) and not loaded.training
    assert (loaded.scale, loaded.cfg.config, loaded.cfg.sisr) == (8, "paper", "mdsr")
    a, b = paper_x8.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    lr, ref = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(paper_x8(lr, ref), loaded(lr, ref))


def test_overwrite_is_atomic(tmp_path, monkeypatch):
    model = CrossNet(4, "official", "bicubic")
    path = tmp_path / "m.safetensors"
    model.save(path)
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(_model_file, "save_file", broken)  # the one writer of model files
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_channels_last_and_bf16_models_round_trip(tmp_path):
    model = CrossNet(4, "official", "bicubic").to(torch.bfloat16).to(memory_format=torch.channels_last)
    path = tmp_path / "bf16.safetensors"
    model.save(path)
    loaded = load_model(str(path))
    for k, v in model.state_dict().items():
        w = loaded.state_dict()[k]
        assert w.dtype == torch.bfloat16 and torch.equal(v, w), k


def test_names_and_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(_model_file, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="crossnet-x4.*none are shipped"):
        load_model("crossnet-x4")
    CrossNet(4, "official", "bicubic").save(tmp_path / "crossnet-x4.safetensors")
    assert available_weights() == ["crossnet-x4"]
    assert load_model("crossnet-x4").scale == 4
    with pytest.raises(FileNotFoundError, match="available names: crossnet-x4"):
        load_model("crossnet-x8")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_model(str(tmp_path / "missing" / "m.safetensors"))
    with pytest.raises(TypeError, match="path_or_name"):
        load_model(3)


def test_foreign_and_mismatched_files(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not a crossnet_fast checkpoint"):
        load_model(foreign)
    bad = tmp_path / "bad.safetensors"
    save_file(
        {"w": torch.zeros(2)},
        str(bad),
        metadata={
            "crossnet_fast": json.dumps(
                {"format": "crossnet_fast.CrossNet", "format_version": 1, "config": {"scale": 5}}
            )
        },
    )
    with pytest.raises(ValueError, match="scale"):
        load_model(bad)
    wrong = tmp_path / "wrong.safetensors"
    save_file(
        {"w": torch.zeros(2)},
        str(wrong),
        metadata={
            "crossnet_fast": json.dumps(
                {
                    "format": "crossnet_fast.CrossNet",
                    "format_version": 1,
                    "config": {"scale": 4, "config": "official", "sisr": "bicubic"},
                }
            )
        },
    )
    with pytest.raises(ValueError, match="does not match"):
        load_model(wrong)
    pickle_file = tmp_path / "model.pth"
    torch.save({"a": torch.zeros(1)}, pickle_file)
    with pytest.raises(ValueError, match="not a safetensors file"):  # never unpickled
        load_model(pickle_file)
    with pytest.raises(TypeError, match="model must be a CrossNet"):
        ckpt.save_model(torch.nn.Linear(1, 1), tmp_path / "x.safetensors")


def test_saved_files_get_normal_permissions(tmp_path):
    # Atomic writes go through a private temporary file; the result must not stay owner-only.
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = tmp_path / "p.safetensors"
        CrossNet(scale=4, sisr="bicubic", width=0.25).save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(umask)


def test_wrong_scale_truncated_and_corrupt_files(tmp_path):
    model = CrossNet(
        8, "official", "bicubic", width=0.0625, residual=True, flow_ref="degraded", ref_detail=True, refine_radius=1
    )
    path = tmp_path / "x8.safetensors"
    model.save(path)
    with pytest.raises(ValueError, match=r"x8\.safetensors.*holds x8 weights, expected x4"):
        load_model(path, scale=4)
    assert load_model(path, scale=8).config == model.config
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 1000])  # header intact, body cut short
    with pytest.raises(ValueError, match="truncated.safetensors.*truncated, corrupt"):
        load_model(truncated)
    header_too_long = tmp_path / "header.safetensors"
    header_too_long.write_bytes((10**9).to_bytes(8, "little") + data[8:200])  # header length > file
    with pytest.raises(ValueError, match="header.safetensors.*not a safetensors file"):
        load_model(header_too_long)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="garbage.safetensors"):
        load_model(garbage)
    # An option of a newer library version: a clear error, never a guess.
    meta = {
        "crossnet_fast": json.dumps(
            {"format": "crossnet_fast.CrossNet", "format_version": 1, "config": dict(model.config, attention=True)}
        )
    }
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(1)}, str(other), metadata=meta)
    with pytest.raises(ValueError, match="other.safetensors.*unreadable configuration"):
        load_model(other)


def test_format_version_1_files_load_as_flownet_models(tmp_path):
    """Files written before the ``flow`` option (format_version 1, no "flow" key) still load, as the
    FlowNetS+ model they hold; version 2 files store the key."""
    from safetensors import safe_open

    torch.manual_seed(0)
    model = CrossNet(scale=4, sisr="bicubic", width=0.25).eval()
    path = tmp_path / "new.safetensors"
    model.save(path)
    with safe_open(str(path), framework="pt") as f:
        info = json.loads(f.metadata()["crossnet_fast"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert info["format_version"] == 2 and info["config"]["flow"] == "flownet"
    old_config = {k: v for k, v in info["config"].items() if k != "flow"}
    old = tmp_path / "old.safetensors"
    save_file(
        tensors,
        str(old),
        metadata={
            "crossnet_fast": json.dumps({"format": "crossnet_fast.CrossNet", "format_version": 1, "config": old_config})
        },
    )
    back = load_model(old)
    assert back.cfg.flow == "flownet" and back.flownet is not None
    lr, ref = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(back(lr, ref), model(lr, ref), atol=0, rtol=0)
