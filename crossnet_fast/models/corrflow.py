"""Correlation flow: CrossNet's ``flow="correlation"`` estimator (docs/DESIGN.md, section "The model").

Finds where each pixel of the LR image lies in the reference by comparing features, not by
regressing the displacement from stacked images (FlowNetS+). It runs on the LR image and on the
reference degraded to the LR size the same way (like with like, as patch matching compares them):

1. Features of both images at 1/4 of the HR resolution (x4: the LR size; x8: the LR images
   bicubic-upsampled x2): learned (three 3x3 convolutions) and a fixed matching descriptor
   (:func:`patch_descriptor`, a normalised cross-correlation of blurred high-pass patches), so
   that the untrained estimator already matches.
2. A global cost volume at 1/16 of the HR resolution covering +-128 HR px (-8..8 px of that
   level), each displacement's cost averaged over 3x3 pixels; the flow starts at the soft-argmax
   of a learned mix of the two volumes, restricted to the 3x3 displacements around the peak.
   (Dilated displacements at full LR resolution would be cheaper but miss: measured on LLFF fern
   x4, arg-max errors of 1-18 LR px with dilation 2 or 3. At 1/8 HR the x4 search would need
   1089 displacements instead of 289.)
3. Local steps, each: warp the reference features by the flow, a local cost volume and a small
   convolutional estimator that adds a soft-argmax step and a learned correction. One step at
   1/8 HR (+-3 px, so that a coarse error of up to 24 HR px is still caught), then two at 1/4 HR
   (+-4 px, then +-2 px), where an x8 flow gets twice the LR precision.
4. A confidence in [0, 1] per pixel (a sigmoid of the estimators' third output) that CrossNet uses
   to gate the warped reference: a reference that matches nowhere is ignored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import backward_warp, correlation, resize_flow, upsample_flow

GLOBAL_RANGE_HR = 128  # +-HR px the global search covers (held-out stereo: p90 near 110)
MID_RADIUS = 3  # the local step at 1/8 HR
LOCAL_RADII = (4, 2)  # the local steps at 1/4 HR
FLOW_LEVEL_HR = 4  # the estimator's flow is at 1/4 of the HR resolution
_SLOPE = 0.1


GLOBAL_LEVEL_HR = 16  # the global search runs at 1/16 of the HR resolution


def global_radius(scale: int) -> int:
    """Displacements -r..r (px of the 1/16-HR level) of the global search: 8 at x4 and x8."""
    return GLOBAL_RANGE_HR // GLOBAL_LEVEL_HR


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k mean with replicate padding (k odd), same size."""
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)


def patch_descriptor(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, h, w) image -> (N, 27, h, w) fp32 unit-length matching descriptor.

    The 3x3-blurred image minus its 7x7 mean (a band-pass: brightness offsets between the views
    cancel, and so does the aliasing that makes a plain 3x3 high-pass change with sub-pixel
    shifts), sampled on a 3x3 grid of spacing 2 (replicate padding), L2-normalised per pixel: 27 x
    the correlation of two descriptors is their cosine, in [-1, 1]. Measured on LLFF fern at LR
    resolution, its arg-max match lands within 1 LR px for 75-93 % of pixels against 48-73 % for a
    plain 3x3 high-pass patch.
    """
    x = image.float()
    band = _box(x, 3) - _box(x, 7)
    n, c, h, w = x.shape
    patches = F.unfold(F.pad(band, (2, 2, 2, 2), mode="replicate"), 3, dilation=2).view(n, c * 9, h, w)
    # The norm as a square root of a sum: ATen's norm over dim 1 is 30x slower here.
    return patches / patches.square().sum(1, keepdim=True).sqrt().clamp_min(1e-3)


def _peak_soft_argmax(logits: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-argmax over the 3x3 displacements around the best one.

    logits (N, K, h, w), K = (2r+1)^2 in the correlation op's order. Returns ``(disp, peak)``:
    disp (N, 2, h, w) fp32, the expected displacement (x, y) in units of the volume's steps;
    peak (N, 1, h, w), the largest of those 3x3 probabilities.

    A soft-argmax over the whole window averages distant modes (a repeated texture, an occluded
    pixel) into a displacement that matches nothing; restricted to the neighbours of the peak it
    gives the sub-pixel position of the peak, still differentiable in the costs. The 9 neighbours
    are gathered rather than masked: the same softmax at 9 instead of K values per pixel.
    """
    side = 2 * radius + 1
    best = logits.argmax(1, keepdim=True)[:, :, None]  # (N, 1, 1, h, w)
    by, bx = best // side, best % side
    offs = torch.arange(-1, 2, device=logits.device)
    ny = (by + offs.view(1, 3, 1, 1, 1)).expand(-1, 3, 3, -1, -1)  # (N, 3, 3, h, w)
    nx = (bx + offs.view(1, 1, 3, 1, 1)).expand(-1, 3, 3, -1, -1)
    inside = (ny >= 0) & (ny < side) & (nx >= 0) & (nx < side)
    idx = (ny.clamp(0, side - 1) * side + nx.clamp(0, side - 1)).flatten(1, 2)  # (N, 9, h, w)
    near = logits.gather(1, idx).masked_fill(~inside.flatten(1, 2), float("-inf"))
    weights = torch.softmax(near, dim=1)
    disp_x = (weights * (nx.flatten(1, 2) - radius).to(weights.dtype)).sum(1, keepdim=True)
    disp_y = (weights * (ny.flatten(1, 2) - radius).to(weights.dtype)).sum(1, keepdim=True)
    return torch.cat((disp_x, disp_y), 1), weights.amax(1, keepdim=True)


class _Features(nn.Module):
    """Learned matching features at LR resolution: three 3x3 convolutions, LeakyReLU(0.1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, channels, 3, 1, 1),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class _CostMix(nn.Module):
    """Soft-argmax displacement from two cost volumes: ``mix`` weighs the learned-feature and the
    descriptor volume (starting on the descriptor alone, whose cosine lies in [-1, 1]);
    ``log_beta`` is the inverse temperature (starting at 50)."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.tensor([0.0, 1.0]))
        self.log_beta = nn.Parameter(torch.tensor(math.log(50.0)))

    def forward(self, cost_feat, cost_desc, radius: int, dilation: int):
        """(N, K, h, w) fp32 volumes -> (step (N, 2, h, w) px, peak probability (N, 1, h, w))."""
        cost = self.mix[0] * cost_feat + self.mix[1] * cost_desc
        disp, peak = _peak_soft_argmax(cost * self.log_beta.exp(), radius)
        return disp * dilation, peak


class _LocalStep(nn.Module):
    """One refinement: from the local volumes (K channels each), the LR features, the flow and
    the previous confidence logit, a soft-argmax step plus a learned correction, and a new
    confidence logit. The correction starts at zero and the confidence at the previous one."""

    def __init__(self, radius: int, feat_channels: int, hidden: int = 32) -> None:
        super().__init__()
        k = (2 * radius + 1) ** 2
        self.radius = radius
        self.cost = _CostMix()
        self.net = nn.Sequential(
            # 1x1 first: the volumes are already 3x3-aggregated, and a 3x3 conv over 2K + 36
            # channels at LR size was most of the x4 flow's time.
            nn.Conv2d(2 * k + feat_channels + 4, hidden, 1),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(hidden, hidden, 3, 1, 1),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(hidden, 3, 3, 1, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, cost_feat, cost_desc, feat, flow, logit):
        step, peak = self.cost(cost_feat, cost_desc, self.radius, 1)
        x = torch.cat((cost_feat, cost_desc, feat.float(), flow, logit, peak), 1)
        out = self.net(x.to(self.net[0].weight.dtype)).float()
        return flow + step + out[:, :2], logit + out[:, 2:3]


def _aggregate(cost: torch.Tensor) -> torch.Tensor:
    """Each displacement's cost averaged over 3x3 pixels (a 5x5-pixel patch comparison)."""
    if cost.device.type == "cpu":
        # ATen's CPU pooling is about 7x faster over 25-289 channels in the channels-last layout
        # (docs/PERFORMANCE.md, "Memory layout on the CPU"); the values are the same.
        cost = cost.contiguous(memory_format=torch.channels_last)
    return F.avg_pool2d(cost, 3, 1, 1, count_include_pad=False)


class CorrelationFlow(nn.Module):
    """``forward(lr, ref_lr)``: the flow from the LR image to the reference and its confidence.

    Args:
        scale: 4 or 8, the LR-to-HR factor (sets the global search's radius).
        channels: learned feature channels.
        backend: backend of the warp and correlation ops.

    Shapes: lr and ref_lr (N, 3, h, w) images in [0, 1] at LR size (ref_lr: the reference
    degraded to the LR size like the LR), h * scale and w * scale multiples of 64. Returns
    ``(flow, confidence)`` at 1/4 of the HR size (H/4, W/4): flow (N, 2, H/4, W/4) fp32, the
    backward flow in pixels of that level (x then y: pixel p matches the degraded reference at
    p + flow); confidence (N, 1, H/4, W/4) fp32 in [0, 1].
    """

    def __init__(self, scale: int, channels: int = 32, backend: str = "auto") -> None:
        super().__init__()
        self.scale, self.backend = int(scale), backend
        if self.scale not in (4, 8):
            raise ValueError(f"scale must be 4 or 8, got {scale}")
        self.radius = global_radius(self.scale)
        self.features = _Features(channels)
        self.global_cost = _CostMix()
        # Confidence of the global match from its peak probability and the two peak costs.
        self.global_conf = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.global_conf.weight.zero_()
            self.global_conf.bias.fill_(3.0)  # sigmoid(3) = 0.95: nearly the ungated reference
        self.mid_step = _LocalStep(MID_RADIUS, channels)
        self.steps = nn.ModuleList(_LocalStep(r, channels) for r in LOCAL_RADII)

    def _costs(self, f1, d1, f2, d2, radius):
        """Aggregated cost volumes (N, K, h, w) fp32 of the learned features (f) and descriptors
        (d); the descriptor volume in cosine units (27 x the channel mean)."""
        cost_feat = correlation(f1, f2, radius, backend=self.backend)
        cost_desc = correlation(d1, d2, radius, backend=self.backend) * d1.shape[1]
        return _aggregate(cost_feat), _aggregate(cost_desc)

    def _refine(self, step: _LocalStep, feats, desc, flow, logit):
        """One local step on a level's features and descriptors (2N, C, h, w) (LR image first)."""
        n = flow.shape[0]
        f1, f2, d1, d2 = feats[:n], feats[n:], desc[:n], desc[n:]
        warped = backward_warp(torch.cat((f2, d2), 1), flow, padding="zeros", backend=self.backend)
        g2, e2 = warped[:, : f2.shape[1]], warped[:, f2.shape[1] :]
        local_feat, local_desc = self._costs(f1, d1, g2, e2, step.radius)
        return step(local_feat, local_desc, f1, flow, logit)

    def forward(self, lr: torch.Tensor, ref_lr: torch.Tensor):
        n = lr.shape[0]
        both = torch.cat((lr, ref_lr), 0).float()
        if self.scale == 8:
            # 1/4 HR: both images upsampled alike, so that the last steps have twice the LR precision.
            both = F.interpolate(both, scale_factor=2, mode="bicubic", align_corners=False)
        feats = self.features(both.to(self.features.net[0].weight.dtype)).float()
        # Global search at 1/16 HR.
        low_f, low_d = F.avg_pool2d(feats, 4), patch_descriptor(F.avg_pool2d(both, 4))
        cost_feat, cost_desc = self._costs(low_f[:n], low_d[:n], low_f[n:], low_d[n:], self.radius)
        flow, peak = self.global_cost(cost_feat, cost_desc, self.radius, 1)
        stats = torch.cat((peak, cost_desc.amax(1, keepdim=True), cost_feat.amax(1, keepdim=True)), 1)
        logit = F.interpolate(self.global_conf(stats), scale_factor=2, mode="nearest")
        flow = upsample_flow(flow, 2, backend=self.backend)
        # One step at 1/8 HR.
        mid_f, mid_d = F.avg_pool2d(feats, 2), patch_descriptor(F.avg_pool2d(both, 2))
        flow, logit = self._refine(self.mid_step, mid_f, mid_d, flow, logit)
        flow = upsample_flow(flow, 2, backend=self.backend)
        logit = F.interpolate(logit, scale_factor=2, mode="nearest")
        # Steps at 1/4 HR.
        desc = patch_descriptor(both)
        for step in self.steps:
            flow, logit = self._refine(step, feats, desc, flow, logit)
        return flow, torch.sigmoid(logit)


def hr_pyramid(flow: torch.Tensor, conf: torch.Tensor, backend: str = "auto"):
    """CrossNet's four HR-scale flows from the estimator's 1/4-HR one.

    flow (N, 2, h, w) px and conf (N, 1, h, w) at h = H / 4. Returns ``(V, C)``: ``V[i]``
    (N, 2, H/2^i, W/2^i) fp32 px of HR scale i and ``C[i]`` (N, 1, H/2^i, W/2^i), i = 0..3: the
    flow resized to each scale with its values scaled by the size ratio (bilinear, the
    confidence likewise; scale 3 is a downsampling).
    """
    h, w = flow.shape[-2:]
    vs, cs = [], []
    for i in range(4):
        size = (h * FLOW_LEVEL_HR // 2**i, w * FLOW_LEVEL_HR // 2**i)
        if size == (h, w):
            vs.append(flow)
            cs.append(conf)
        else:
            vs.append(resize_flow(flow, size, backend=backend))
            cs.append(F.interpolate(conf, size=size, mode="bilinear", align_corners=False))
    return vs, cs


__all__ = ["CorrelationFlow", "hr_pyramid", "global_radius", "patch_descriptor"]
