"""CrossNet (Zheng et al., ECCV 2018): reference-based SR with cross-scale warping.

Data flow (docs/DESIGN.md, section "The model"), all at HR size H x W:
    lr_up  = bicubic(lr)                 flow input in the "official" configuration
    lr_sr  = SISR(lr)                    encoder input (and flow input in "paper")
    V0..V3 = flow estimator              FlowNetS+ (the paper) or the correlation flow
    F_lr   = Encoder(lr_sr); F_ref = Encoder(ref)   (one shared encoder in "official")
    W_i    = backward_warp(F_ref[i], V_i)           one fused multiscale_warp call
    out    = Decoder(F_lr, W)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import _model_file
from ..backend import BACKENDS
from ..degrade import back_project, degrade
from ..matching.patchmatch import nearest_neighbour_flow
from ..ops import backward_warp, multiscale_warp
from .corrflow import CorrelationFlow, hr_pyramid
from .decoder import Decoder, ReferenceDetailGate
from .encoder import Encoder
from .flownet import FlowNetSPlus
from .refine import LocalSearchRefinement
from .sisr import build_sisr, upsample_bicubic_torch

CONFIGS = ("official", "paper")
SISRS = ("mdsr", "bicubic", "srcnn", "vdsr")
SCALES = (4, 8)
FLOW_REFS = ("sharp", "degraded")
FLOW_INITS = ("net", "patchmatch")
FLOWS = ("flownet", "correlation")
# The flow net has six stride-2 convolutions: HR sizes must be multiples of 2^6.
SIZE_MULTIPLE = 64


@dataclass(frozen=True)
class CrossNetConfig:
    """Everything needed to rebuild a CrossNet (stored as JSON in checkpoints).

    ``config="official"``: the released code (one encoder shared by LR and reference, bicubic image
    as flow-net input). ``config="paper"``: two encoders, the SISR image as flow-net input. Both warp
    with border padding and keep the unused ``fusion2`` layer.
    """

    scale: int = 4
    config: str = "official"
    sisr: str = "mdsr"
    # Channel multiplier of the flow net, encoder and decoder: 1.0 is the paper's network; smaller
    # widths give the compact models shipped as weights (1/4 keeps ~1/16 of the parameters).
    width: float = 1.0
    # Trainability options (docs/MODEL_CARD.md); all off in the faithful "official"/"paper" models.
    # residual: output = bicubic(lr) + decoder (last conv zero-initialised), so an untrained model
    #   is bicubic upsampling and training learns only the missing detail.
    residual: bool = False
    # flow_ref: what the flow net compares the upsampled LR with: "sharp" (the reference, as in the
    #   paper) or "degraded" (the reference downsampled like the LR and bicubic-upsampled back, so
    #   that it matches like with like, as patch matching does).
    flow_ref: str = "sharp"
    # ref_detail: add the reference's high frequencies (ref - degraded ref), warped by V0, through
    #   a learned per-pixel gate in [0, 1] that also sees the local matching cost (decoder.py).
    ref_detail: bool = False
    # refine_radius: > 0 refines V0 by a local search of +-refine_radius px around it against the
    #   degraded reference (models/refine.py; refine_steps searches, each a soft-argmin with a
    #   learned temperature); the refined V0 warps the full-resolution features and the detail. 0 = off.
    refine_radius: int = 0
    # refine_steps: searches in sequence, each centred on the last estimate (1..4). Files written
    #   before this option existed ran 2.
    refine_steps: int = 2
    # flow_init: where the full-resolution flow V0 starts: "net" (the flow net's V0, as in the
    #   paper) or "patchmatch" (a PatchMatch nearest-neighbour field of the bicubic LR against the
    #   degraded reference, matching/patchmatch.py, then the local search if refine_radius > 0).
    #   The flow net still gives V1..V3 and is still trained by the photometric loss. Explicit
    #   search finds the large stereo disparities and the exact integer matches that the compact
    #   flow net misses (docs/MODEL_CARD.md); no gradient flows into the search itself.
    flow_init: str = "net"
    # backprojection: rounds of iterative back-projection onto the LR input after the decoder
    #   (out += bicubic_up(lr - degrade(clamp(out))), the step the patch-matching baseline ends
    #   with): the output then degrades back to the observed LR more closely. Not learned,
    #   differentiable, applied in training too. 0 = off.
    backprojection: int = 0
    # flow: the flow estimator: "flownet" (FlowNetS+, the paper's) or "correlation" (a cost-volume
    #   pyramid at LR resolution and coarser, models/corrflow.py, whose per-scale confidence also
    #   gates the warped reference features: a reference that matches nowhere is ignored).
    flow: str = "flownet"

    def _check_int(self, name: str, lo: int, hi: int) -> None:
        """ValueError unless the field ``name`` is an int (not a bool) in [lo, hi]."""
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.config not in CONFIGS:
            raise ValueError(f"config must be one of {CONFIGS}, got {self.config!r}")
        if self.sisr not in SISRS:
            raise ValueError(f"sisr must be one of {SISRS}, got {self.sisr!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not 0.0625 <= self.width <= 1:
            raise ValueError(f"width must be a number in [1/16, 1], got {self.width!r}")
        for name in ("residual", "ref_detail"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self._check_int("refine_radius", 0, 4)
        self._check_int("refine_steps", 1, 4)
        if self.flow_ref not in FLOW_REFS:
            raise ValueError(f"flow_ref must be one of {FLOW_REFS}, got {self.flow_ref!r}")
        self._check_int("backprojection", 0, 4)
        if self.flow_init not in FLOW_INITS:
            raise ValueError(f"flow_init must be one of {FLOW_INITS}, got {self.flow_init!r}")
        if self.flow not in FLOWS:
            raise ValueError(f"flow must be one of {FLOWS}, got {self.flow!r}")
        if self.flow == "correlation" and self.flow_init != "net":
            raise ValueError(
                "flow_init='patchmatch' starts FlowNetS+'s V0; with flow='correlation' "
                f"use flow_init='net', got {self.flow_init!r}"
            )

    @property
    def channels(self) -> int:
        """Feature channels of the encoder and decoder (64 at width 1)."""
        return max(8, int(round(64 * self.width)))

    @property
    def shared_encoder(self) -> bool:
        return self.config == "official"

    @property
    def flow_input(self) -> str:
        """ "bicubic" or "sisr": which upsampled LR image the flow net sees."""
        return "bicubic" if self.config == "official" else "sisr"

    @property
    def padding(self) -> str:
        return "border"

    @property
    def needs_degraded_ref(self) -> bool:
        return (
            self.flow_ref == "degraded"
            or self.ref_detail
            or self.refine_radius > 0
            or self.flow_init == "patchmatch"
            or self.flow == "correlation"
        )

    def to_dict(self) -> dict:
        return asdict(self)


class CrossNet(nn.Module):
    """The CrossNet model.

    Args:
        scale: 4 or 8, the LR-to-HR factor.
        config: ``"official"`` (released code, 35,183,841 parameters without SISR weights) or
            ``"paper"`` (two encoders, 35,598,561).
        sisr: SISR front end: ``"mdsr"`` (trainable, or frozen with ``freeze_sisr=True``),
            ``"bicubic"`` (no parameters), ``"srcnn"`` or ``"vdsr"``.
        backend: backend of the warp op (``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"``,
            ``"reference"``); may be changed later through the ``backend`` attribute.
        freeze_sisr: stop gradients into the SISR front end (it then runs under ``no_grad``).
        width: channel multiplier of the flow net, encoder and decoder (1.0: the paper's network,
            the parameter counts above; 0.25: the compact configuration of the shipped weights).
        residual, flow_ref, ref_detail, refine_radius, refine_steps, flow_init, backprojection: trainability
            options of the shipped compact models (see :class:`CrossNetConfig`); the defaults are
            the faithful model.

    ``model(lr, ref)``: lr (N, 3, H/scale, W/scale) and ref (N, 3, H, W), float images in [0, 1],
    same dtype and device, H and W multiples of 64 (:func:`crossnet_fast.super_resolve` pads any
    size). Returns (N, 3, H, W) of the input dtype (the autocast dtype under autocast), not clamped.
    """

    def __init__(
        self,
        scale: int = 4,
        config: str = "official",
        sisr: str = "mdsr",
        backend: str = "auto",
        freeze_sisr: bool = False,
        width: float = 1.0,
        residual: bool = False,
        flow_ref: str = "sharp",
        ref_detail: bool = False,
        refine_radius: int = 0,
        refine_steps: int = 2,
        flow_init: str = "net",
        backprojection: int = 0,
        flow: str = "flownet",
    ) -> None:
        super().__init__()
        self.cfg = CrossNetConfig(
            scale=scale,
            config=config,
            sisr=sisr,
            width=width,
            residual=residual,
            flow_ref=flow_ref,
            ref_detail=ref_detail,
            refine_radius=refine_radius,
            refine_steps=refine_steps,
            flow_init=flow_init,
            backprojection=backprojection,
            flow=flow,
        )
        self.sisr = build_sisr(sisr, scale)
        # One flow estimator, under its own name so that state dicts say which one they hold.
        self.flownet = FlowNetSPlus(width) if flow == "flownet" else None
        self.corrflow = CorrelationFlow(scale, backend=backend) if flow == "correlation" else None
        self.encoder = Encoder(self.cfg.channels)
        # Registered only in the paper configuration, so that state dicts hold no duplicates.
        self.encoder_ref = None if self.cfg.shared_encoder else Encoder(self.cfg.channels)
        self.decoder = Decoder(self.cfg.channels)
        if residual:
            # The untrained residual model is exactly bicubic upsampling.
            nn.init.zeros_(self.decoder.out.weight)
            nn.init.zeros_(self.decoder.out.bias)
        self.ref_detail = ReferenceDetailGate(self.cfg.channels, patch=scale + 3) if ref_detail else None
        self.refine = (
            LocalSearchRefinement(refine_radius, steps=refine_steps, patch=scale + 3, backend=backend)
            if refine_radius
            else None
        )
        self.backend = backend
        self.freeze_sisr(freeze_sisr)

    @classmethod
    def from_config(cls, cfg: CrossNetConfig | dict, backend: str = "auto") -> CrossNet:
        """A freshly initialised model of a stored configuration (a CrossNetConfig or its dict)."""
        d = cfg.to_dict() if isinstance(cfg, CrossNetConfig) else dict(cfg)
        return cls(backend=backend, **d)

    @property
    def backend(self) -> str:
        """Backend of the warp op; "auto" follows crossnet_fast.use_backend and the environment."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"backend must be a string, got {type(value).__name__}")
        if value != "auto" and value not in BACKENDS:
            raise ValueError(f"backend must be one of {('auto',) + BACKENDS}, got {value!r}")
        self._backend = value
        for part in ("refine", "corrflow"):
            if getattr(self, part, None) is not None:
                getattr(self, part).backend = value

    @property
    def scale(self) -> int:
        return self.cfg.scale

    @property
    def config(self) -> dict:
        """The JSON-serialisable configuration (what :meth:`save` stores beside the weights)."""
        return self.cfg.to_dict()

    def freeze_sisr(self, frozen: bool = True) -> CrossNet:
        """Freeze (or unfreeze) the SISR front end, as the released code does with precomputed MDSR."""
        self.sisr_frozen = bool(frozen)
        for p in self.sisr.parameters():
            p.requires_grad_(not frozen)
        return self

    def check_inputs(self, lr: torch.Tensor, ref: torch.Tensor) -> None:
        """Raise TypeError/ValueError naming the argument when lr/ref do not fit this model."""
        for name, t in (("lr", lr), ("ref", ref)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() != 4 or t.shape[1] != 3:
                raise ValueError(f"{name} must have shape (N, 3, H, W), got {tuple(t.shape)}")
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a float tensor with values in [0, 1], got {t.dtype}")
        s = self.scale
        n, _, h, w = ref.shape
        if lr.shape[0] != n:
            raise ValueError(f"lr and ref must have the same batch size, got {lr.shape[0]} and {n}")
        if (lr.shape[2] * s, lr.shape[3] * s) != (h, w):
            raise ValueError(
                f"ref must be {s}x the size of lr (scale={s}): lr is {tuple(lr.shape[2:])}, "
                f"so ref must be {(lr.shape[2] * s, lr.shape[3] * s)}, got {(h, w)}"
            )
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(
                f"ref height and width must be multiples of {SIZE_MULTIPLE}, got {(h, w)}; "
                "use crossnet_fast.super_resolve for other sizes (it pads)"
            )
        if lr.device != ref.device:
            raise ValueError(f"lr and ref must be on the same device, got {lr.device} and {ref.device}")

    def warp(self, feats: list[torch.Tensor], flows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Backward-warp the reference pyramid (4 x (N, 64, H_i, W_i)) by its flows (N, 2, H_i, W_i)."""
        return multiscale_warp(feats, flows, padding=self.cfg.padding, backend=self.backend)

    def upsample(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lr_up, lr_sr): bicubic and SISR upsamplings of lr, each (N, 3, H, W)."""
        lr_up = upsample_bicubic_torch(lr, self.scale)
        if self.cfg.sisr == "bicubic":
            return lr_up, lr_up
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.sisr_frozen):
            lr_sr = self.sisr(lr)
        return lr_up, lr_sr

    def degraded_reference(self, ref: torch.Tensor) -> torch.Tensor:
        """The reference as the LR input would look, back at HR size: MATLAB-bicubic x``scale``
        downsampling (the degradation of the training and evaluation LR images), bicubic-upsampled
        back exactly like the LR. ref (N, 3, H, W) -> (N, 3, H, W), same dtype; no gradient."""
        return self._degraded(ref)[1]

    def _degraded(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ref_lr (N, 3, H/s, W/s), ref_low (N, 3, H, W)): the degraded reference at LR size and
        upsampled back; ref's dtype, no gradient (an input, not a weight)."""
        with torch.no_grad():
            low = degrade(ref.float(), self.scale)
            return low.to(ref.dtype), upsample_bicubic_torch(low, self.scale).to(ref.dtype)

    def initial_flow(self, lr_up: torch.Tensor, ref_low: torch.Tensor) -> torch.Tensor:
        """The ``flow_init="patchmatch"`` start of V0: (N, 2, H, W) float32 integer px, the
        PatchMatch nearest-neighbour field of lr_up against ref_low (both (N, 3, H, W) images in
        [0, 1]); fixed seed, so a deterministic function of the images; no gradient."""
        with torch.no_grad():
            flow, _ = nearest_neighbour_flow(lr_up.float(), ref_low.float(), self.scale)
        return flow

    # The paper's data flow, one named step each; the configuration picks each step's variant.

    def prepare(self, lr: torch.Tensor, ref: torch.Tensor) -> dict:
        """The images every later step reads: ``lr_up`` (bicubic LR), ``lr_sr`` (SISR LR), and
        with a degraded-reference option ``ref_lr`` / ``ref_low`` (see :meth:`_degraded`)."""
        lr_up, lr_sr = self.upsample(lr)
        x = {"lr": lr, "ref": ref, "lr_up": lr_up, "lr_sr": lr_sr, "ref_lr": None, "ref_low": None}
        if self.cfg.needs_degraded_ref:
            x["ref_lr"], x["ref_low"] = self._degraded(ref)
        x["flow_ref"] = x["ref_low"] if self.cfg.flow_ref == "degraded" else ref
        return x

    def estimate_flow(self, x: dict) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Step 1, the flows V0..V3 (N, 2, H/2^i, W/2^i) px and, for ``flow="correlation"``, their
        confidences (N, 1, H/2^i, W/2^i) in [0, 1] (None for FlowNetS+)."""
        if self.corrflow is not None:
            flow, conf = self.corrflow(x["lr"], x["ref_lr"])
            return hr_pyramid(flow, conf, backend=self.backend)
        flow_in = x["lr_up"] if self.cfg.flow_input == "bicubic" else x["lr_sr"]
        return self.flownet(flow_in, x["flow_ref"]), None

    def refine_flow(self, flows: list[torch.Tensor], x: dict) -> list[torch.Tensor]:
        """Step 2, the flows the warps use: V0 replaced by the PatchMatch start and/or refined by
        the local search when configured (the raw flows stay what a photometric loss trains)."""
        v0 = self.initial_flow(x["lr_up"], x["ref_low"]) if self.cfg.flow_init == "patchmatch" else flows[0]
        if self.refine is not None:
            v0 = self.refine(v0, x["lr_up"], x["ref_low"])
        if v0 is flows[0]:
            return flows
        return [v0.to(flows[0].dtype)] + list(flows[1:])

    def encode(self, x: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Feature pyramids (4 x (N, C, H/2^i, W/2^i)) of the SISR LR and of the reference."""
        if self.encoder_ref is None:
            # Shared weights: one encoder pass over the LR and reference batches together.
            feats = self.encoder(torch.cat((x["lr_sr"], x["ref"]), 0))
            n = x["lr"].shape[0]
            return [f[:n] for f in feats], [f[n:] for f in feats]
        return self.encoder(x["lr_sr"]), self.encoder_ref(x["ref"])

    def fuse(self, x: dict, flows: list[torch.Tensor], confs: list[torch.Tensor] | None):
        """Step 3: warp the reference features by the flows (gated by the confidences when
        given) and decode them with the LR features. Returns (image (N, 3, H, W), fused features)."""
        f_lr, f_ref = self.encode(x)
        # Under autocast the convs give half-precision flows; the warp samples in fp32 anyway.
        warped = self.warp(f_ref, flows)
        if confs is not None:
            warped = [w * c.to(w.dtype) for w, c in zip(warped, confs)]
        fused = self.decoder.features(f_lr, warped)
        return self.decoder.out(fused), fused

    def post_process(self, out: torch.Tensor, fused: torch.Tensor, flows: list[torch.Tensor], x: dict):
        """Step 4: global residual, gated reference detail, back-projection (each when configured)."""
        if self.cfg.residual:
            out = out + x["lr_up"].to(out.dtype)
        if self.ref_detail is not None:
            # Detail and degraded reference warped together by V0 (6 channels, one warp).
            ref, ref_low = x["ref"], x["ref_low"]
            both = torch.cat((ref - ref_low, ref_low), 1).float()
            w = backward_warp(both, flows[0].float(), padding=self.cfg.padding, backend=self.backend)
            detail, mismatch = w[:, :3], x["lr_up"].float() - w[:, 3:]
            out = out + self.ref_detail(fused, detail, mismatch).to(out.dtype)
        return back_project(out, x["lr"], self.scale, self.cfg.backprojection)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor, return_parts: bool = False):
        """See the class docstring. ``return_parts=True`` returns a dict instead of the image:
        ``out`` (N, 3, H, W); ``flows`` [V0..V3] (N, 2, H/2^i, W/2^i) px; ``lr_up`` (N, 3, H, W), the
        bicubic LR; ``flow_ref`` (N, 3, H, W), the image the flows align with the LR (what a
        photometric loss on the flows should warp); ``v0_used`` (N, 2, H, W), the full-resolution
        flow the warps used (V0, or V0 refined with ``refine_radius``); ``confidences``
        [C0..C3] (N, 1, H/2^i, W/2^i) or None."""
        self.check_inputs(lr, ref)
        x = self.prepare(lr, ref)
        flows, confs = self.estimate_flow(x)
        used = self.refine_flow(flows, x)
        out, fused = self.fuse(x, used, confs)
        out = self.post_process(out, fused, used, x)
        if not return_parts:
            return out
        return {
            "out": out,
            "flows": flows,
            "v0_used": used[0],
            "lr_up": x["lr_up"],
            "flow_ref": x["flow_ref"],
            "confidences": confs,
        }

    def save(self, path) -> None:
        """Write weights + configuration to a safetensors file, atomically (see crossnet_fast.checkpoint)."""
        _model_file.write(self, path)

    @classmethod
    def load(cls, path_or_name, device="cpu", backend: str = "auto") -> CrossNet:
        """Load a model saved by :meth:`save` (or a shipped name); see :func:`crossnet_fast.load_model`."""
        return _model_file.read(path_or_name, CrossNet, CrossNetConfig, device=device, backend=backend)
