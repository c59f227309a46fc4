"""fp16-stored weights (how the shipped weights are stored) load as an fp32 model, exactly."""

from __future__ import annotations

import pytest
import torch

from crossnet_fast import load_model, super_resolve
from crossnet_fast.models import CrossNet


@pytest.fixture(scope="module")
def half_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = CrossNet(4, "official", "bicubic", width=0.25).half()
    path = tmp_path_factory.mktemp("fp16") / "half.safetensors"
    model.save(path)
    return model, path


def test_fp16_checkpoint_loads_as_exact_fp32(half_checkpoint):
    model, path = half_checkpoint
    loaded = load_model(path)
    for k, v in model.state_dict().items():
        w = loaded.state_dict()[k]
        assert w.dtype == (torch.float32 if v.is_floating_point() else v.dtype), k
        assert torch.equal(v.to(w.dtype), w), k  # fp16 -> fp32 is exact
    lr, ref = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        out = super_resolve(loaded, lr, ref)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_explicit_dtype(half_checkpoint):
    _, path = half_checkpoint
    assert next(load_model(path, dtype=torch.float16).parameters()).dtype == torch.float16
    assert next(load_model(path, dtype=torch.bfloat16).parameters()).dtype == torch.bfloat16
    with pytest.raises(TypeError, match="dtype"):
        load_model(path, dtype=torch.int8)
