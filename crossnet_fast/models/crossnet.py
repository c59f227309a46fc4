"""CrossNet (Zheng et al., ECCV 2018): reference-based SR with cross-scale warping.

Data flow (CROSSNET.md section 1), all at HR size H x W:
    lr_up  = bicubic(lr)                 flow-net input in the "official" configuration
    lr_sr  = SISR(lr)                    encoder input (and flow-net input in "paper")
    V0..V3 = FlowNetS+(flow_input, ref)
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
from ..baselines.patchmatch import nearest_neighbour_flow
from ..degrade import back_project, degrade
from ..ops import backward_warp, multiscale_warp
from .decoder import Decoder, ReferenceDetailGate
from .encoder import Encoder
from .flownet import FlowNetSPlus
from .refine import LocalSearchRefinement
from .sisr import build_sisr, upsample_bicubic_torch as bicubic_upsample  # PyTorch's bicubic

CONFIGS = ("official", "paper")
SISRS = ("mdsr", "bicubic", "srcnn", "vdsr")
SCALES = (4, 8)
FLOW_REFS = ("sharp", "degraded")
FLOW_INITS = ("net", "patchmatch")
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
    #   degraded reference (models/refine.py; two searches, soft-argmin with a learned temperature);
    #   the refined V0 warps the full-resolution features and the detail. 0 = off.
    refine_radius: int = 0
    # flow_init: where the full-resolution flow V0 starts: "net" (the flow net's V0, as in the
    #   paper) or "patchmatch" (a PatchMatch nearest-neighbour field of the bicubic LR against the
    #   degraded reference, baselines/patchmatch.py, then the local search if refine_radius > 0).
    #   The flow net still gives V1..V3 and is still trained by the photometric loss. Explicit
    #   search finds the large stereo disparities and the exact integer matches that the compact
    #   flow net misses (docs/MODEL_CARD.md); no gradient flows into the search itself.
    flow_init: str = "net"
    # backprojection: rounds of iterative back-projection onto the LR input after the decoder
    #   (out += bicubic_up(lr - degrade(clamp(out))), the step the patch-matching baseline ends
    #   with): the output then degrades back to the observed LR more closely. Not learned,
    #   differentiable, applied in training too. 0 = off.
    backprojection: int = 0

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
        if isinstance(self.refine_radius, bool) or not isinstance(self.refine_radius, int) or \
                not 0 <= self.refine_radius <= 4:
            raise ValueError(f"refine_radius must be an integer in [0, 4], got {self.refine_radius!r}")
        if self.flow_ref not in FLOW_REFS:
            raise ValueError(f"flow_ref must be one of {FLOW_REFS}, got {self.flow_ref!r}")
        if isinstance(self.backprojection, bool) or not isinstance(self.backprojection, int) or \
                not 0 <= self.backprojection <= 4:
            raise ValueError(f"backprojection must be an integer in [0, 4], got {self.backprojection!r}")
        if self.flow_init not in FLOW_INITS:
            raise ValueError(f"flow_init must be one of {FLOW_INITS}, got {self.flow_init!r}")

    @property
    def channels(self) -> int:
        """Feature channels of the encoder and decoder (64 at width 1)."""
        return max(8, int(round(64 * self.width)))

    @property
    def shared_encoder(self) -> bool:
        return self.config == "official"

    @property
    def flow_input(self) -> str:
        """"bicubic" or "sisr": which upsampled LR image the flow net sees."""
        return "bicubic" if self.config == "official" else "sisr"

    @property
    def padding(self) -> str:
        return "border"

    @property
    def needs_degraded_ref(self) -> bool:
        return (self.flow_ref == "degraded" or self.ref_detail or self.refine_radius > 0
                or self.flow_init == "patchmatch")

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
        residual, flow_ref, ref_detail, refine_radius, flow_init, backprojection: trainability options of the shipped compact models (see
            :class:`CrossNetConfig`); the defaults are the faithful model.

    ``model(lr, ref)``: lr (N, 3, H/scale, W/scale) and ref (N, 3, H, W), float images in [0, 1],
    same dtype and device, H and W multiples of 64 (:func:`crossnet_fast.super_resolve` pads any
    size). Returns (N, 3, H, W) of the input dtype (the autocast dtype under autocast), not clamped.
    """

    def __init__(self, scale: int = 4, config: str = "official", sisr: str = "mdsr",
                 backend: str = "auto", freeze_sisr: bool = False, width: float = 1.0,
                 residual: bool = False, flow_ref: str = "sharp", ref_detail: bool = False,
                 refine_radius: int = 0, flow_init: str = "net", backprojection: int = 0) -> None:
        super().__init__()
        self.cfg = CrossNetConfig(scale=scale, config=config, sisr=sisr, width=width, residual=residual,
                                  flow_ref=flow_ref, ref_detail=ref_detail, refine_radius=refine_radius,
                                  flow_init=flow_init, backprojection=backprojection)
        self.backend = backend
        self.sisr = build_sisr(sisr, scale)
        self.flownet = FlowNetSPlus(width)
        self.encoder = Encoder(self.cfg.channels)
        # Registered only in the paper configuration, so that state dicts hold no duplicates.
        self.encoder_ref = None if self.cfg.shared_encoder else Encoder(self.cfg.channels)
        self.decoder = Decoder(self.cfg.channels)
        if residual:
            # The untrained residual model is exactly bicubic upsampling.
            nn.init.zeros_(self.decoder.out.weight)
            nn.init.zeros_(self.decoder.out.bias)
        self.ref_detail = ReferenceDetailGate(self.cfg.channels, patch=scale + 3) if ref_detail else None
        self.refine = (LocalSearchRefinement(refine_radius, steps=2, patch=scale + 3, backend=backend)
                       if refine_radius else None)
        self.freeze_sisr(freeze_sisr)

    @classmethod
    def from_config(cls, cfg: "CrossNetConfig | dict", backend: str = "auto") -> "CrossNet":
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
        if getattr(self, "refine", None) is not None:
            self.refine.backend = value

    @property
    def scale(self) -> int:
        return self.cfg.scale

    @property
    def config(self) -> dict:
        """The JSON-serialisable configuration (what :meth:`save` stores beside the weights)."""
        return self.cfg.to_dict()

    def freeze_sisr(self, frozen: bool = True) -> "CrossNet":
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
            raise ValueError(f"ref must be {s}x the size of lr (scale={s}): lr is {tuple(lr.shape[2:])}, "
                             f"so ref must be {(lr.shape[2] * s, lr.shape[3] * s)}, got {(h, w)}")
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"ref height and width must be multiples of {SIZE_MULTIPLE}, got {(h, w)}; "
                             "use crossnet_fast.super_resolve for other sizes (it pads)")
        if lr.device != ref.device:
            raise ValueError(f"lr and ref must be on the same device, got {lr.device} and {ref.device}")

    def warp(self, feats: list[torch.Tensor], flows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Backward-warp the reference pyramid (4 x (N, 64, H_i, W_i)) by its flows (N, 2, H_i, W_i)."""
        return multiscale_warp(feats, flows, padding=self.cfg.padding, backend=self.backend)

    def upsample(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lr_up, lr_sr): bicubic and SISR upsamplings of lr, each (N, 3, H, W)."""
        lr_up = bicubic_upsample(lr, self.scale)
        if self.cfg.sisr == "bicubic":
            return lr_up, lr_up
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.sisr_frozen):
            lr_sr = self.sisr(lr)
        return lr_up, lr_sr

    def degraded_reference(self, ref: torch.Tensor) -> torch.Tensor:
        """The reference as the LR input would look: MATLAB-bicubic x``scale`` downsampling (the
        degradation of the training and evaluation LR images), bicubic-upsampled back exactly like
        the LR. ref (N, 3, H, W) -> (N, 3, H, W), same dtype; no gradient (an input, not a weight)."""
        with torch.no_grad():
            low = degrade(ref.float(), self.scale)
            return bicubic_upsample(low, self.scale).to(ref.dtype)

    def initial_flow(self, lr_up: torch.Tensor, ref_low: torch.Tensor) -> torch.Tensor:
        """The ``flow_init="patchmatch"`` start of V0: (N, 2, H, W) float32 integer px, the
        PatchMatch nearest-neighbour field of lr_up against ref_low (both (N, 3, H, W) images in
        [0, 1]); fixed seed, so a deterministic function of the images; no gradient."""
        with torch.no_grad():
            flow, _ = nearest_neighbour_flow(lr_up.float(), ref_low.float(), self.scale)
        return flow

    def forward(self, lr: torch.Tensor, ref: torch.Tensor, return_parts: bool = False):
        """See the class docstring. ``return_parts=True`` returns a dict instead of the image:
        ``out`` (N, 3, H, W); ``flows`` [V0..V3] (N, 2, H/2^i, W/2^i) px; ``lr_up`` (N, 3, H, W), the
        bicubic LR; ``flow_ref`` (N, 3, H, W), the image the flow net compared it with (what a
        photometric loss on the flows should warp); ``v0_used`` (N, 2, H, W), the full-resolution
        flow the warps used (V0, or V0 refined with ``refine_radius``)."""
        self.check_inputs(lr, ref)
        lr_up, lr_sr = self.upsample(lr)
        ref_low = self.degraded_reference(ref) if self.cfg.needs_degraded_ref else None
        flow_ref = ref_low if self.cfg.flow_ref == "degraded" else ref
        flows = self.flownet(lr_up if self.cfg.flow_input == "bicubic" else lr_sr, flow_ref)
        if self.encoder_ref is None:
            # Shared weights: one encoder pass over the LR and reference batches together.
            feats = self.encoder(torch.cat((lr_sr, ref), 0))
            n = lr.shape[0]
            f_lr = [f[:n] for f in feats]
            f_ref = [f[n:] for f in feats]
        else:
            f_lr = self.encoder(lr_sr)
            f_ref = self.encoder_ref(ref)
        used = flows
        v0 = self.initial_flow(lr_up, ref_low) if self.cfg.flow_init == "patchmatch" else flows[0]
        if self.refine is not None:
            # The refined V0 drives the full-resolution warps; the raw flows stay what a
            # photometric loss trains (so the flow net learns to start the search close).
            v0 = self.refine(v0, lr_up, ref_low)
        if v0 is not flows[0]:
            used = [v0.to(flows[0].dtype)] + list(flows[1:])
        # Under autocast the convs give half-precision flows; the warp samples in fp32 anyway.
        warped = self.warp(f_ref, used)
        fused = self.decoder.features(f_lr, warped)
        out = self.decoder.out(fused)
        if self.cfg.residual:
            out = out + lr_up.to(out.dtype)
        if self.ref_detail is not None:
            # Detail and degraded reference warped together by V0 (6 channels, one warp).
            both = torch.cat((ref - ref_low, ref_low), 1).float()
            w = backward_warp(both, used[0].float(), padding=self.cfg.padding, backend=self.backend)
            detail, mismatch = w[:, :3], lr_up.float() - w[:, 3:]
            out = out + self.ref_detail(fused, detail, mismatch).to(out.dtype)
        out = back_project(out, lr, self.scale, self.cfg.backprojection)
        if not return_parts:
            return out
        return {"out": out, "flows": flows, "v0_used": used[0], "lr_up": lr_up, "flow_ref": flow_ref}

    def save(self, path) -> None:
        """Write weights + configuration to a safetensors file, atomically (see crossnet_fast.checkpoint)."""
        _model_file.write(self, path)

    @classmethod
    def load(cls, path_or_name, device="cpu", backend: str = "auto") -> "CrossNet":
        """Load a model saved by :meth:`save` (or a shipped name); see :func:`crossnet_fast.load_model`."""
        return _model_file.read(path_or_name, CrossNet, CrossNetConfig, device=device, backend=backend)
