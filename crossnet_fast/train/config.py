"""Training configuration: nested dataclasses, loaded from TOML (or YAML if PyYAML is present).

The defaults ARE the paper's recipe (docs/DESIGN.md, section "Training recipe"): Charbonnier eps 1e-3 summed over
C, H, W and divided by the batch, Adam (0.9, 0.999), lr 1e-4 x0.1 at 150K of 200K iterations,
photometric jitter, parallax shifts of up to 15 px, flips, view pairs from the whole grid. A config
file only lists what differs; ``overrides`` ("optim.lr=5e-5") patch single keys on top.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport if present
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

from .multiview import parse_specs

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class ModelConfig:
    """Which network to train. ``name``: "crossnet" (the full model), "sisr" (an SISR baseline,
    ``sisr`` picks it; the reference is ignored) or "tiny" (:class:`TinyRefSR`, for smoke tests)."""

    name: str = "crossnet"
    scale: int = 4
    config: str = "official"  # CrossNet: "official" | "paper"
    sisr: str = "mdsr"  # "mdsr" | "bicubic" | "srcnn" | "vdsr"
    freeze_sisr: bool = False
    init: str = ""  # optional .safetensors to warm-start from
    init_strict: bool = True  # false: load only tensors whose name and shape match
    # (e.g. an x8 CrossNet from an x4 one: all but the SISR head)
    init_sisr: str = ""  # a trained SISR baseline (model.name = "sisr") to start
    # CrossNet's SISR front end from, as the paper's MDSR
    backend: str = "auto"  # warp backend
    options: dict = field(default_factory=dict)  # extra keyword arguments of CrossNet(...), e.g. a
    # smaller configuration if the model offers one


@dataclass
class DataConfig:
    """Training data. Paths are relative to ``root``; ``root`` is relative to the working folder."""

    root: str = "../shared/data"
    lightfields: list = field(default_factory=lambda: ["lytro_flowers/IMG_0001", "hci/antinous", "hci/backgammon"])
    stereo: list = field(default_factory=lambda: ["middlebury2014_quarter"])
    # Held out for validation (never trained on): light-field folders and stereo file stems.
    holdout_lightfields: list = field(default_factory=lambda: ["hci/antinous"])
    holdout_stereo: list = field(default_factory=lambda: ["Adirondack", "Teddy", "Vintage"])
    crop: list = field(default_factory=lambda: [256, 256])  # HR crop (h, w), multiples of 64
    batch_size: int = 2  # per process
    num_workers: int = 0
    max_view_distance: int = 0  # 0: any two distinct views of the grid (index 7 included)
    stereo_swap: bool = True  # also use (ref = right, LR = left)
    # Video sequences: folders of frames (sorted by name); a pair is (ref = frame t, LR = frame
    # t + k) with 1 <= |k| <= video_max_gap. Held-out sequences are validated at t = 0, k = 2.
    video: list = field(default_factory=list)
    holdout_video: list = field(default_factory=list)
    video_max_gap: int = 3
    video_repeats: int = 4
    degradation: str = "bicubic"  # MATLAB imresize; "gaussian" also accepted by degrade()
    # Epoch = every training light field lightfield_repeats times (each item draws a fresh view
    # pair) + every stereo pair stereo_repeats times, shuffled.
    lightfield_repeats: int = 8
    stereo_repeats: int = 1
    synthetic_fraction: float = 0.0  # probability that a sample is a synthetic pair
    # Probability that a sample's reference is replaced by the next sample's (another scene or
    # crop): teaches the model not to trust a reference that does not match (0 = off, the paper).
    mismatch_fraction: float = 0.0
    # Extra multi-view sources, [[data.multiview]] tables (train/multiview.py: a camera grid or an
    # ordered image set, a pair-distance limit, a downscale factor, repeats epoch slots each).
    # Empty (the default): none, and the training entries are exactly those of the keys above.
    multiview: list = field(default_factory=list)
    cache_images: bool = True  # keep decoded views (uint8) in memory


@dataclass
class AugmentConfig:
    """Augmentation (paper values). Flips act on LR, reference and HR together."""

    hflip: bool = True
    vflip: bool = True
    parallax: int = 15  # reference shifted by U{-p..p} px in x and y
    brightness_std: float = 0.02  # additive N(0, std)
    color: list = field(default_factory=lambda: [0.9, 1.1])  # per-channel gain U(a, b)
    contrast: float = 0.3  # grayscale-blend factor U(-c, c)
    independent_ref_jitter: bool = False  # draw the reference's jitter separately


@dataclass
class SyntheticConfig:
    """Synthetic pairs: reference = HR warped by a random smooth flow plus a parallax shift."""

    flow_amplitude: float = 4.0  # px, std of the smooth flow's control points
    flow_grid: int = 4  # control points per axis
    parallax: int = 15  # px, global shift U{-p..p}
    margin: int = 32  # px read around the crop so the warp rarely hits a border


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0  # released code: 5e-5
    iterations: int = 200_000
    milestones: list = field(default_factory=lambda: [150_000])
    gamma: float = 0.1  # one factor for every milestone, or a list of them
    warmup: int = 0  # linear warm-up steps
    grad_clip: float = 0.0  # max global grad norm (loss units); 0 = off
    loss_eps: float = 1e-3  # Charbonnier eps
    skip_nonfinite: bool = True  # skip an update whose gradient is inf/nan
    # Auxiliary flow losses (train/losses.py; CrossNet only; 0 = off, the paper's recipe).
    photometric: float = 0.0  # weight of the photometric loss on V0..V3 at step 0 ...
    photometric_end: float = 0.1  # ... falling linearly to photometric * this at the last step
    smoothness: float = 0.0  # weight of the flow smoothness loss (constant)


@dataclass
class RunConfig:
    out: str = "out/train/run"
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    precision: str = "auto"  # "auto" (bf16 on CUDA, fp32 on CPU) | "fp32" | "bf16"
    channels_last: str = "auto"  # "auto" (on CUDA) | true | false
    checkpoint_every: int = 5000
    keep_last: int = 3
    log_every: int = 50
    progress: bool = True
    tensorboard: bool = True  # used only if tensorboard is importable
    plot: bool = True  # used only if matplotlib is importable
    verify_checkpoints: bool = True  # check sha256 of checkpoint files on resume
    deterministic: bool = False  # torch.use_deterministic_algorithms (+ cuDNN deterministic)
    find_unused_parameters: bool = False  # DDP: only for models with parameters a step skips
    max_minutes: float = 0.0  # > 0: stop with a checkpoint after this much wall time


@dataclass
class ValConfig:
    every: int = 5000  # 0: only at the end
    # (ref_row, ref_col, lr_row, lr_col) pairs on held-out light fields (paper protocol).
    views: list = field(default_factory=lambda: [[0, 0, 1, 1], [0, 0, 7, 7]])
    stereo: bool = True  # held-out stereo pairs: reference = left, LR = right
    window: int = 512  # super_resolve window (multiple of 64)
    max_size: int = 0  # 0: whole image; else top-left crop to this (multiple of 64)
    precision: str = "fp32"  # validation forward: "fp32" (comparable numbers) or "bf16"


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the key of the first bad value; returns self."""
        m, d, o, r = self.model, self.data, self.optim, self.run
        _check(m.name in ("crossnet", "sisr", "tiny"), "model.name", m.name, "crossnet, sisr or tiny")
        _check(m.scale in (4, 8) or (m.name != "crossnet" and m.scale in (2, 4, 8)), "model.scale", m.scale, "4 or 8")
        _check(isinstance(m.options, dict), "model.options", m.options, "a table of CrossNet keyword arguments")
        _check(
            len(d.crop) == 2 and all(isinstance(c, int) and c > 0 and c % 64 == 0 for c in d.crop),
            "data.crop",
            d.crop,
            "[h, w], positive multiples of 64",
        )
        _check(d.batch_size >= 1, "data.batch_size", d.batch_size, ">= 1")
        _check(0.0 <= d.synthetic_fraction <= 1.0, "data.synthetic_fraction", d.synthetic_fraction, "in [0, 1]")
        _check(0.0 <= d.mismatch_fraction <= 1.0, "data.mismatch_fraction", d.mismatch_fraction, "in [0, 1]")
        _check(d.video_max_gap >= 1, "data.video_max_gap", d.video_max_gap, ">= 1")
        _check(
            d.lightfields or d.stereo or d.video or d.multiview or d.synthetic_fraction > 0,
            "data",
            "no sources",
            "at least one light field, stereo folder, video, multiview source or synthetic_fraction > 0",
        )
        parse_specs(d.multiview)  # ValueError naming data.multiview[i].<key>
        _check(len(self.augment.color) == 2, "augment.color", self.augment.color, "[low, high]")
        _check(self.augment.parallax >= 0, "augment.parallax", self.augment.parallax, ">= 0")
        _check(o.iterations >= 1, "optim.iterations", o.iterations, ">= 1")
        _check(list(o.milestones) == sorted(o.milestones), "optim.milestones", o.milestones, "sorted")
        if isinstance(o.gamma, list):
            _check(len(o.gamma) == len(o.milestones), "optim.gamma", o.gamma, "one per milestone")
        _check(len(o.betas) == 2, "optim.betas", o.betas, "[beta1, beta2]")
        for key in ("photometric", "photometric_end", "smoothness"):
            v = getattr(o, key)
            _check(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, f"optim.{key}", v, "a number >= 0"
            )
        _check(
            not (o.photometric > 0 or o.smoothness > 0) or m.name == "crossnet",
            "optim.photometric",
            o.photometric,
            "0 unless model.name = 'crossnet' (flow losses need CrossNet's flows)",
        )
        _check(r.precision in ("auto", "fp32", "bf16"), "run.precision", r.precision, "auto, fp32 or bf16")
        _check(r.channels_last in ("auto", True, False), "run.channels_last", r.channels_last, "auto, true or false")
        _check(r.keep_last >= 1, "run.keep_last", r.keep_last, ">= 1")
        _check(
            r.checkpoint_every >= 1 and r.log_every >= 1,
            "run.checkpoint_every/log_every",
            (r.checkpoint_every, r.log_every),
            ">= 1",
        )
        _check(
            self.val.window % 64 == 0 and self.val.max_size % 64 == 0,
            "val.window/max_size",
            (self.val.window, self.val.max_size),
            "multiples of 64",
        )
        for v in self.val.views:
            _check(len(v) == 4, "val.views", v, "[ref_row, ref_col, lr_row, lr_col]")
        return self


def _check(ok, key, value, want):
    if not ok:
        raise ValueError(f"config {key}: got {value!r}, expected {want}")


def _from_dict(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"config {where.rstrip('.') or 'root'}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"config: unknown key {where + key!r} (known: {', '.join(fields)})")
        default = (
            fields[key].default_factory()
            if fields[key].default_factory is not dataclasses.MISSING
            else fields[key].default
        )
        if dataclasses.is_dataclass(default):
            kwargs[key] = _from_dict(type(default), value, f"{where}{key}.")
        else:
            _check_type(where + key, value, default)
            kwargs[key] = value
    return cls(**kwargs)


# What a value must be, by the type of its default: (type of the default, accepted types,
# description). Booleans are never numbers; an integer is a fine float.
_KINDS = (
    (bool, (bool,), "true or false"),
    (int, (int,), "an integer"),
    (float, (int, float), "a number"),
    (str, (str,), "a string"),
    (list, (list, tuple), "a list"),
    (dict, (dict,), "a table"),
)
# Keys that also take another kind of value than their default's (see the dataclasses above).
_ALSO_ACCEPTED = {"run.channels_last": bool, "optim.gamma": list}


def _check_type(key: str, value, default) -> None:
    """ValueError naming ``key`` if ``value`` is not of the kind of its ``default``."""
    wants = []
    for kind in (type(default), _ALSO_ACCEPTED.get(key)):
        for base, accepted, what in _KINDS:
            if kind is not None and issubclass(kind, base):
                if isinstance(value, accepted) and not (base is not bool and isinstance(value, bool)):
                    return
                wants.append(what)
                break
    if wants:
        raise ValueError(f"config {key}: got {value!r} ({type(value).__name__}), expected {' or '.join(wants)}")


def _merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_file(path) -> dict:
    """Parse a .toml (tomllib) or .yaml/.yml (PyYAML) file into a dict. A top-level ``base = "name"``
    key first loads that file (a path relative to this file, or a name in ``train/configs``)."""
    path = Path(path)
    if not path.is_file():
        named = CONFIG_DIR / f"{path.name}.toml" if path.suffix == "" else CONFIG_DIR / path.name
        if named.is_file():
            path = named
        else:
            raise FileNotFoundError(
                f"config file not found: {path} (shipped configs: "
                f"{', '.join(sorted(p.stem for p in CONFIG_DIR.glob('*.toml')))})"
            )
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: YAML configs need PyYAML; use TOML instead") from None
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {path}: not valid YAML ({exc})") from None
    else:
        if tomllib is None:
            raise ValueError(
                f"{path}: reading TOML needs Python 3.11+ (tomllib) or `pip install tomli`; "
                "a .yaml config works with PyYAML"
            )
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {path}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a table of sections, got {type(data).__name__}")
    base = data.pop("base", None)
    if base:
        bpath = (path.parent / base) if (path.parent / base).is_file() else Path(base)
        data = _merge(read_file(bpath), data)
    return data


def _parse_value(text: str):
    """A TOML literal ("1e-4", "[256, 256]", "true", '"x"'); anything else is a bare string."""
    if tomllib is not None:
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    try:  # without a TOML reader: JSON covers numbers, lists, "strings"; TOML booleans are JSON's
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(data: dict, overrides) -> dict:
    """Patch ``data`` with "section.key=value" strings (values in TOML syntax)."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected section.key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(
                    f"override {item!r}: {'.'.join(parts[: i + 1])} is a value, not a "
                    "section; expected section.key=value"
                )
        node[parts[-1]] = _parse_value(text.strip())
    return data


def load_config(source=None, overrides=None) -> TrainConfig:
    """A validated :class:`TrainConfig`.

    Args:
        source: None (the paper's defaults), a path or shipped name ("paper_x4", "smoke_cpu"),
            a dict, or a TrainConfig.
        overrides: list of "section.key=value" strings applied last.
    """
    if isinstance(source, TrainConfig):
        data = source.to_dict()
    elif isinstance(source, dict):
        data = source
    elif source is None:
        data = {}
    else:
        data = read_file(source)
    data = apply_overrides(data, overrides)
    return _from_dict(TrainConfig, data, "").validate()


# -- what a config means during a run --------------------------------------------------------------


def lr_at(step: int, optim_cfg: OptimConfig) -> float:
    """Learning rate for update ``step`` (0-based): ``lr`` times the gamma of every milestone
    ``<= step``, times a linear warm-up ``(step + 1) / warmup`` during the first ``warmup`` steps.

    A pure function of the step, so a resumed run needs nothing saved but the step. The optimizer is
    never rebuilt at a milestone: only ``param_group["lr"]`` changes, so Adam's moments carry over
    (the released trainer re-created Adam at each lr step, resetting them).
    """
    lr = float(optim_cfg.lr)
    milestones = optim_cfg.milestones
    gammas = optim_cfg.gamma if isinstance(optim_cfg.gamma, list) else [optim_cfg.gamma] * len(milestones)
    for m, g in zip(milestones, gammas):
        if step >= m:
            lr *= float(g)
    if optim_cfg.warmup and step < optim_cfg.warmup:
        lr *= (step + 1) / optim_cfg.warmup
    return lr


# Keys that may change between a run and its resumption without changing the losses.
RESUME_HARMLESS = (
    "run.out",
    "run.progress",
    "run.tensorboard",
    "run.plot",
    "run.checkpoint_every",
    "run.keep_last",
    "run.log_every",
    "val.",
    "data.num_workers",
    "run.verify_checkpoints",
    "optim.iterations",
    "data.cache_images",
    "run.max_minutes",
)


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"section.key: old -> new"`` for every key whose value differs between two config dicts
    (``TrainConfig.to_dict()``), sorted by key. A key missing from ``old`` (a checkpoint written
    before the key existed, e.g. ``data.multiview``) counts as its default, which keeps the old
    behaviour."""
    if not prefix:
        old = _merge(TrainConfig().to_dict(), old)
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


__all__ = [
    "TrainConfig",
    "ModelConfig",
    "DataConfig",
    "AugmentConfig",
    "SyntheticConfig",
    "OptimConfig",
    "RunConfig",
    "ValConfig",
    "load_config",
    "read_file",
    "apply_overrides",
    "CONFIG_DIR",
    "lr_at",
    "RESUME_HARMLESS",
    "config_differences",
]
