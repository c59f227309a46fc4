"""The trainer (crossnet_fast.train): config, augmentation, exact resume, DDP, atomic checkpoints.

Most tests train ``TinyRefSR`` (a few thousand parameters) on a small generated light field and
stereo pair, so they run in seconds on one CPU thread; one smoke test trains the full CrossNet for
two 64x64 iterations on ../shared/data through the CLI (skipped if the data is absent).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from crossnet_fast.train import TinyRefSR, load_config, run_state, train
from crossnet_fast.train import augment as A
from crossnet_fast.train.config import lr_at
from crossnet_fast.train.pairs import Sources, TrainPairs

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


from _images import save_png, texture  # noqa: E402
from _threads import one_thread  # noqa: E402,F401  (autouse: tiny tensors, one thread)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """lf_a: 3x3 views (1 px disparity per view), lf_val: 2x2 (held out), lf_8: an 8x8 grid of
    64x64 views, lf_same: 2 identical views, stereo/{left,right}/{p1,p2}.png."""
    root = tmp_path_factory.mktemp("train_data")
    base = texture(112, 120, 0)
    for name, n in (("lf_a", 3), ("lf_val", 2)):
        for r in range(n):
            for c in range(n):
                view = np.roll(base, (r, c), axis=(0, 1))
                save_png(view, root / name / f"{name}_{r * n + c + 1}_{r + 1}_{c + 1}.png")
    for r in range(8):
        for c in range(8):
            save_png(texture(64, 64, 100 + r * 8 + c), root / "lf_8" / f"x_{r * 8 + c + 1}_{r + 1}_{c + 1}.png")
    noise = np.random.default_rng(5).random((96, 96, 3))
    for c in range(2):
        save_png(noise, root / "lf_same" / f"s_{c + 1}_1_{c + 1}.png")
    for i, name in enumerate(("p1", "p2")):
        left = texture(72, 80, 10 + i)
        save_png(left, root / "stereo" / "left" / f"{name}.png")
        save_png(np.roll(left, 3, axis=1), root / "stereo" / "right" / f"{name}.png")
    return root


def tiny_cfg(root, out, **sections):
    cfg = {
        "model": {"name": "tiny", "scale": 4},
        "data": {
            "root": str(root),
            "lightfields": ["lf_a", "lf_val"],
            "stereo": ["stereo"],
            "holdout_lightfields": ["lf_val"],
            "holdout_stereo": ["p2"],
            "crop": [64, 64],
            "batch_size": 1,
            "lightfield_repeats": 2,
        },
        "optim": {"iterations": 4, "milestones": [2]},
        "run": {
            "out": str(out),
            "device": "cpu",
            "checkpoint_every": 2,
            "keep_last": 2,
            "log_every": 1,
            "progress": False,
        },
        "val": {"every": 0, "views": [[0, 0, 1, 1]], "window": 64, "max_size": 64},
    }
    for sec, vals in sections.items():
        cfg.setdefault(sec, {}).update(vals)
    return cfg


# -- configuration ---------------------------------------------------------------------------------


def test_defaults_are_the_paper_recipe(tmp_path):
    for cfg in (load_config(), load_config("paper_x4"), load_config("paper_x8")):
        assert cfg.optim.loss_eps == 1e-3 and list(cfg.optim.betas) == [0.9, 0.999]
        assert cfg.optim.lr == 1e-4 and cfg.optim.milestones == [150_000] and cfg.optim.gamma == 0.1
        assert cfg.optim.iterations == 200_000
        assert cfg.augment.parallax == 15 and cfg.augment.hflip and cfg.augment.vflip
        assert cfg.augment.brightness_std == 0.02 and cfg.augment.color == [0.9, 1.1]
        assert cfg.augment.contrast == 0.3 and cfg.data.max_view_distance == 0
        assert all(c % 64 == 0 for c in cfg.data.crop)
    assert load_config("paper_x8").model.scale == 8
    assert load_config("smoke_cpu").data.crop == [64, 64]
    cfg = load_config("paper_x4", ["optim.lr=5e-5", "data.crop=[128, 192]", "run.out=somewhere"])
    assert cfg.optim.lr == 5e-5 and cfg.data.crop == [128, 192] and cfg.run.out == "somewhere"
    yml = tmp_path / "c.yaml"
    yml.write_text("base: paper_x8.toml\nmodel: {name: tiny}\noptim: {lr: 3.0e-5}\n")
    cfg = load_config(yml)
    assert cfg.model.name == "tiny" and cfg.model.scale == 8 and cfg.optim.lr == 3e-5
    with pytest.raises(ValueError, match="unknown key 'optim.lrr'"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="data.crop"):
        load_config(None, ["data.crop=[100, 128]"])


def test_schedule_steps_lr_without_a_new_optimizer():
    o = load_config().optim
    assert lr_at(0, o) == 1e-4 and lr_at(149_999, o) == 1e-4
    assert lr_at(150_000, o) == pytest.approx(1e-5) and lr_at(199_999, o) == pytest.approx(1e-5)


def test_state_encoding_round_trip():
    p = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.Adam([p], betas=(0.9, 0.999))
    p.grad = torch.randn(3, 2)
    opt.step()
    obj = {
        "opt": opt.state_dict(),
        "np": np.random.get_state(),
        "py": __import__("random").getstate(),
        "t": (1, 2.5, None, b"\x00\x01"),
        "k": {3: "x"},
    }
    tensors = {}
    tree = json.loads(json.dumps(run_state.encode_state(obj, tensors)))
    back = run_state.decode_state(tree, tensors)
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["np"][0] == "MT19937" and np.array_equal(back["np"][1], obj["np"][1])
    assert back["py"] == obj["py"] and back["t"] == obj["t"] and back["k"] == {3: "x"}


# -- augmentation ----------------------------------------------------------------------------------


def test_flip_is_a_real_mirror_of_all_three():
    lr, ref, hr = torch.rand(3, 4, 5), torch.rand(3, 8, 10), torch.rand(3, 8, 10)
    out = A.flip((lr, ref, hr), True, False)
    for a, b in zip(out, (lr, ref, hr)):
        assert torch.equal(a, b.flip(-1))  # columns reversed, channel order (R, G, B) untouched
    out = A.flip((lr, ref, hr), False, True)
    assert all(torch.equal(a, b.flip(-2)) for a, b in zip(out, (lr, ref, hr)))


def test_dataset_flips_lr_ref_and_hr_together(data_root, tmp_path):
    on = load_config(tiny_cfg(data_root, tmp_path))
    off = load_config(tiny_cfg(data_root, tmp_path, augment={"hflip": False, "vflip": False}))
    ds_on, ds_off = TrainPairs(Sources(on.data, 4), on), TrainPairs(Sources(off.data, 4), off)
    seen = set()
    for pos in range(12):
        a, b = ds_on[pos], ds_off[pos]
        h, v = a["flips"].tolist()
        seen.add((h, v))
        dims = ([-1] if h else []) + ([-2] if v else [])
        for k in ("lr", "ref", "hr"):
            want = b[k].flip(dims) if dims else b[k]
            assert torch.equal(a[k], want)
    assert (True, False) in seen or (True, True) in seen  # the horizontal flip was exercised


def test_parallax_shift_moves_the_reference_by_the_drawn_amount(data_root, tmp_path):
    cfg = load_config(
        tiny_cfg(
            data_root,
            tmp_path,
            data={"lightfields": ["lf_same"], "stereo": [], "holdout_lightfields": [], "holdout_stereo": []},
            augment={"hflip": False, "vflip": False, "brightness_std": 0.0, "color": [1.0, 1.0], "contrast": 0.0},
        )
    )
    ds = TrainPairs(Sources(cfg.data, 4), cfg)
    shifts = set()
    for pos in range(6):
        s = ds[pos]
        dx, dy = s["shift"].tolist()
        assert -15 <= dx <= 15 and -15 <= dy <= 15
        shifts.add((dx, dy))
        ref, hr = s["ref"], s["hr"]  # both views are the same image: ref = hr moved by (dx, dy)
        h, w = hr.shape[-2:]
        got = ref[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
        want = hr[:, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
        assert torch.equal(got, want)
    assert len(shifts) > 1 and any(s != (0, 0) for s in shifts)
    # The window reads real pixels beyond the crop (no padding where the image continues).
    img = torch.arange(2 * 10 * 12, dtype=torch.float32).view(2, 10, 12)
    assert torch.equal(A.shifted_crop(img, 3, 4, 4, 5, dx=2, dy=-1), img[:, 4:8, 2:7])


def test_view_pairs_cover_the_whole_grid(data_root, tmp_path):
    cfg = load_config(
        tiny_cfg(
            data_root,
            tmp_path,
            data={"lightfields": ["lf_8"], "stereo": [], "holdout_lightfields": [], "holdout_stereo": []},
        )
    )
    ds = TrainPairs(Sources(cfg.data, 4), cfg)
    ds.cache.load = lambda p: Path(p).stem  # record the drawn files instead of decoding them
    rows, cols = set(), set()
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        hr, ref = ds._pair(ds.sources.entries[0], g)
        assert hr != ref
        for stem in (hr, ref):
            r, c = (int(x) - 1 for x in stem.split("_")[-2:])
            rows.add(r)
            cols.add(c)
    assert rows == set(range(8)) and cols == set(range(8))  # index 7 included


def test_synthetic_pairs(data_root, tmp_path):
    from crossnet_fast.train.augment import random_synthetic_pair

    img = torch.rand(3, 100, 110)
    g = torch.Generator().manual_seed(0)
    hr, ref = random_synthetic_pair(img, (64, 64), g, flow_amplitude=0.0, parallax=0)
    torch.testing.assert_close(ref, hr)  # zero flow: the identity warp
    hr, ref = random_synthetic_pair(img, (64, 64), g, flow_amplitude=3.0, parallax=10)
    assert ref.shape == hr.shape == (3, 64, 64) and (ref - hr).abs().mean() > 0.05
    cfg = load_config(tiny_cfg(data_root, tmp_path, data={"synthetic_fraction": 1.0}))
    s = TrainPairs(Sources(cfg.data, 4), cfg)[0]
    assert s["synthetic"] and s["lr"].shape == (3, 16, 16) and s["ref"].shape == (3, 64, 64)


# -- training --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(data_root, tmp_path):
    straight = train(tiny_cfg(data_root, tmp_path / "a", data={"num_workers": 1}), quiet=True)
    part = train(tiny_cfg(data_root, tmp_path / "b"), max_steps=2, quiet=True)
    assert part["stopped"] == "max_steps" and part["step"] == 2 and part["model"] is None
    rest = train(tiny_cfg(data_root, tmp_path / "b"), resume=tmp_path / "b", quiet=True)
    losses = [loss for _, loss in straight["losses"]]
    assert [s for s, _ in straight["losses"]] == [1, 2, 3, 4]
    assert [loss for _, loss in part["losses"] + rest["losses"]] == losses  # bit-identical
    a, b = load_file(straight["model"]), load_file(rest["model"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The CSV of the resumed run reads like one run; validation ran and compared with bicubic.
    rows = (tmp_path / "b" / "train.csv").read_text().splitlines()[1:]
    assert [float(r.split(",")[2]) for r in rows] == losses
    assert rest["val"] and all(np.isfinite(v["psnr"]) and np.isfinite(v["psnr_bicubic"]) for v in rest["val"])
    # Adam's moments carried across the lr step at 2 (one optimizer for the whole run).
    state, _ = run_state.load(run_state.find(tmp_path / "b"))
    assert state["step"] == 4 and all(float(s["step"]) == 4 for s in state["optimizer"]["state"].values())
    assert [p.name for _, p in run_state.list_checkpoints(tmp_path / "b" / "checkpoints")] == [
        "step_00000002",
        "step_00000004",
    ]


class _StopAt(TinyRefSR):
    """Raises a signal (or KeyboardInterrupt) in the forward of the ``at``-th call."""

    def __init__(self, at, how):
        super().__init__(4)
        self.calls, self.at, self.how = 0, at, how

    def forward(self, lr, ref):
        self.calls += 1
        if self.calls == self.at:
            if self.how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        return super().forward(lr, ref)


def test_sigterm_and_ctrl_c_save_a_checkpoint(data_root, tmp_path):
    cfg = tiny_cfg(data_root, tmp_path / "s", optim={"iterations": 50}, run={"checkpoint_every": 100})
    # A harmless SIGTERM handler underneath the trainer's, so that a regression fails this test
    # instead of killing the test runner.
    old = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        res = train(cfg, model=_StopAt(2, "sigterm"), quiet=True)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert res["stopped"] == "SIGTERM" and res["step"] == 2
    assert run_state.find(tmp_path / "s").name == "step_00000002"
    cfg = tiny_cfg(data_root, tmp_path / "k", optim={"iterations": 50}, run={"checkpoint_every": 100})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, model=_StopAt(3, "ctrl-c"), quiet=True)
    state, _ = run_state.load(run_state.find(tmp_path / "k"))
    assert state["step"] == 2  # the two finished updates; the interrupted one is redone on resume
    res = train(cfg, resume=tmp_path / "k", max_steps=1, quiet=True)
    assert res["step"] == 3


class _NaNOnce(TinyRefSR):
    def __init__(self):
        super().__init__(4)
        self.calls = 0

    def forward(self, lr, ref):
        self.calls += 1
        out = super().forward(lr, ref)
        return out * float("nan") if self.calls == 1 else out


def test_bf16_channels_last_clipping_and_nonfinite_skip(data_root, tmp_path):
    cfg = tiny_cfg(
        data_root,
        tmp_path / "p",
        optim={"iterations": 2, "grad_clip": 0.5, "warmup": 1},
        run={"precision": "bf16", "channels_last": True},
        data={"synthetic_fraction": 0.5},
    )
    res = train(cfg, quiet=True)
    assert res["precision"] == "bf16" and res["channels_last"]
    assert all(np.isfinite(loss) for _, loss in res["losses"])
    model = _NaNOnce()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = train(tiny_cfg(data_root, tmp_path / "n", optim={"iterations": 1}), model=model, quiet=True)
    assert res["skipped"] == 1 and np.isnan(res["losses"][0][1])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no update


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    res = train(cfg, quiet=True)
    Path(out, f"rank{rank}.json").write_text(
        json.dumps({"losses": res["losses"], "digests": res["replica_digests"], "world": res["world"]})
    )


@pytest.mark.slow
def test_ddp_two_processes_keep_identical_replicas(data_root, tmp_path):
    cfg = tiny_cfg(data_root, tmp_path / "ddp", optim={"iterations": 3}, run={"checkpoint_every": 3})
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == 2 and len(r0["digests"]) == 2 and r0["digests"][0] == r0["digests"][1]
    assert r0 == r1  # same global losses and parameter digests on both ranks
    # Rank 0 alone wrote the checkpoint; its weights are the replicas' (digest re-computed).
    assert run_state.find(tmp_path / "ddp").name == "step_00000003"
    # The 2-process run sees the same global batches as one process with batch 2.
    single = train(tiny_cfg(data_root, tmp_path / "one", optim={"iterations": 3}, data={"batch_size": 2}), quiet=True)
    np.testing.assert_allclose([loss for _, loss in r0["losses"]], [loss for _, loss in single["losses"]], rtol=1e-4)


# -- checkpoints -----------------------------------------------------------------------------------


def _crash_duringsave_png(root, step, model, stage):
    def child():
        run_state._hook = lambda s: os._exit(17) if s == stage else None
        run_state.save(root, step, model, {"x": torch.ones(2)})

    p = mp.get_context("fork").Process(target=child)
    p.start()
    p.join()
    assert p.exitcode == 17


def test_a_crash_mid_write_never_corrupts_latest(tmp_path):
    root, model = tmp_path / "checkpoints", TinyRefSR(4)
    run_state.save(root, 1, model, {"x": torch.zeros(2)})
    _crash_duringsave_png(root, 2, model, "state")  # killed while writing state.safetensors
    assert list(root.glob(".tmp-step_00000002-*")) and not (root / "step_00000002").exists()
    assert run_state.find(root).name == "step_00000001"
    _crash_duringsave_png(root, 3, model, "before_latest")  # complete folder, latest not yet moved
    assert run_state.find(root).name == "step_00000001"
    state, weights = run_state.load(run_state.find(root))
    assert torch.equal(state["x"], torch.zeros(2)) and weights.is_file()
    # A damaged newest checkpoint (truncated on disk) is detected by size/sha256 and skipped.
    run_state.write_json_atomic(root / run_state.LATEST, {"step": 3, "dir": "step_00000003"})
    w = root / "step_00000003" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged"):
        assert run_state.find(root).name == "step_00000001"
    run_state.save(root, 4, model, {"x": torch.ones(2)})
    run_state.prune(root, keep_last=2)
    assert not list(root.glob(".tmp-*")) and run_state.find(root).name == "step_00000004"


def test_warm_starts(tmp_path):
    from crossnet_fast.models import CrossNet
    from crossnet_fast.train import SISRModel

    sisr = SISRModel("srcnn", 4)
    run_state.save_weights(sisr, tmp_path / "srcnn.safetensors")
    net = CrossNet(scale=4, sisr="srcnn")
    run_state.load_weights(net.sisr, tmp_path / "srcnn.safetensors", prefix_map=("net.", ""))
    assert all(torch.equal(a, b) for a, b in zip(net.sisr.state_dict().values(), sisr.net.state_dict().values()))
    # x4 -> x8: everything but the scale-specific MDSR blocks carries over (model.init_strict=false).
    run_state.save_weights(SISRModel("mdsr", 4), tmp_path / "mdsr4.safetensors")
    left = run_state.load_weights(SISRModel("mdsr", 8), tmp_path / "mdsr4.safetensors", strict=False)
    assert left and all(".x8." in k for k in left)


# -- the full CrossNet through the CLI ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "lytro_flowers").is_dir(), reason="../shared/data not present")
def test_cli_trains_crossnet_saves_resumes_and_evaluates(tmp_path, monkeypatch):
    from crossnet_fast import cli
    from crossnet_fast.checkpoint import load_model
    from crossnet_fast.models import CrossNet

    monkeypatch.chdir(ROOT)  # data.root "../shared/data" is relative to the project root
    out = tmp_path / "smoke"
    args = [
        "train",
        "--config",
        "smoke_cpu",
        "--out",
        str(out),
        "--no-progress",
        "--iterations",
        "2",
        "--set",
        "run.checkpoint_every=1",
        "--set",
        "val.every=2",
    ]
    assert cli.main(args + ["--max-steps", "1"]) == 0
    assert run_state.find(out).name == "step_00000001"
    assert cli.main(args + ["--resume", str(out)]) == 0
    rows = (out / "val.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("2,antinous_00-11,")
    model = load_model(out / "model.safetensors")
    assert isinstance(model, CrossNet) and model.scale == 4


# -- trainability options of the shipped compact models ----------------------------------------------


def _video(root):
    """video/seq_a: 5 frames, video/seq_b: 4 frames (held out); frame k is the texture moved k px."""
    base = texture(72, 80, 21)
    for name, n in (("seq_a", 5), ("seq_b", 4)):
        for k in range(n):
            save_png(np.roll(base, k, axis=1), root / "video" / name / f"frame_{k + 1:03d}.png")
    return root


def test_video_sequences_give_frame_pairs_within_the_gap(data_root, tmp_path):
    _video(data_root)
    cfg = load_config(
        tiny_cfg(
            data_root,
            tmp_path,
            data={
                "lightfields": [],
                "stereo": [],
                "holdout_lightfields": [],
                "holdout_stereo": [],
                "video": ["video/seq_a", "video/seq_b"],
                "holdout_video": ["video/seq_b"],
                "video_max_gap": 2,
                "video_repeats": 3,
            },
        )
    )
    src = Sources(cfg.data, 4, cfg.val)
    assert [e.kind for e in src.entries] == ["video"] * 3 and src.entries[0].name == "video/seq_a"
    ds = TrainPairs(src, cfg)
    frames = [torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1).float() / 255 for p in src.videos[0][1]]
    seen = set()
    for pos in range(40):
        gen = torch.Generator().manual_seed(pos)
        hr, ref = ds._pair(src.entries[0], gen)
        i = next(k for k, f in enumerate(frames) if torch.equal(f, ref))
        j = next(k for k, f in enumerate(frames) if torch.equal(f, hr))
        assert i != j and abs(i - j) <= 2
        seen.add(j - i)
    assert seen == {-2, -1, 1, 2}
    (val,) = src.validation_pairs("bicubic")
    assert val["name"] == "seq_b_t0-t2"
    # Reference = frame 1, ground truth = frame 3 (2 px further right).
    assert torch.equal(val["hr"][..., 2:], val["ref"][..., :-2])


def _compact_cfg(root, out, **sections):
    cfg = tiny_cfg(
        root,
        out,
        model={
            "name": "crossnet",
            "sisr": "bicubic",
            "options": {
                "width": 0.0625,
                "residual": True,
                "flow_ref": "degraded",
                "ref_detail": True,
                "refine_radius": 1,
                "flow_init": "patchmatch",
                "backprojection": 1,
            },
        },
        optim={"iterations": 4, "milestones": [2], "photometric": 1.0, "photometric_end": 0.1, "smoothness": 0.01},
    )
    for sec, vals in sections.items():
        cfg.setdefault(sec, {}).update(vals)
    return cfg


def test_resume_of_a_run_with_the_options(data_root, tmp_path):
    straight = train(_compact_cfg(data_root, tmp_path / "a"), quiet=True)
    part = train(_compact_cfg(data_root, tmp_path / "b"), max_steps=2, quiet=True)
    rest = train(_compact_cfg(data_root, tmp_path / "b"), resume=tmp_path / "b", quiet=True)
    assert [loss for _, loss in part["losses"] + rest["losses"]] == [loss for _, loss in straight["losses"]]
    from crossnet_fast.checkpoint import load_model

    model = load_model(rest["model"])
    assert model.config == {
        "scale": 4,
        "config": "official",
        "sisr": "bicubic",
        "width": 0.0625,
        "residual": True,
        "flow_ref": "degraded",
        "ref_detail": True,
        "refine_radius": 1,
        "refine_steps": 2,
        "flow_init": "patchmatch",
        "backprojection": 1,
        "flow": "flownet",
    }
    a, b = load_file(straight["model"]), load_file(rest["model"])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_flow_losses_change_the_update_and_need_crossnet(data_root, tmp_path):
    # The flow net's own V0 drives the detail warp here: with flow_init="patchmatch" a 2-step
    # change of V1..V3 moves the loss by less than its fp32 rounding.
    net_v0 = {
        "model": {
            "name": "crossnet",
            "sisr": "bicubic",
            "options": {
                "width": 0.0625,
                "residual": True,
                "flow_ref": "degraded",
                "ref_detail": True,
                "refine_radius": 1,
            },
        }
    }
    with_losses = train(_compact_cfg(data_root, tmp_path / "a", optim={"iterations": 2}, **net_v0), quiet=True)
    without = train(
        _compact_cfg(
            data_root, tmp_path / "b", optim={"iterations": 2, "photometric": 0.0, "smoothness": 0.0}, **net_v0
        ),
        quiet=True,
    )
    # Step 1's reconstruction loss is the same (same weights and batch); the update is not.
    assert with_losses["losses"][0] == without["losses"][0]
    assert with_losses["losses"][1] != without["losses"][1]
    with pytest.raises(ValueError, match="optim.photometric"):
        load_config(tiny_cfg(data_root, tmp_path / "c", optim={"photometric": 1.0}))
    with pytest.raises(ValueError, match="optim.smoothness"):
        load_config(tiny_cfg(data_root, tmp_path / "c", optim={"smoothness": -1.0}))
