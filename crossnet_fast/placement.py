"""A reference of another size: where it goes on the output canvas.

CrossNet (``CrossNet.check_inputs``) needs a reference of exactly ``scale`` times the LR size.
Real pairs rarely have it (other cameras, crops, the ceil rounding of MATLAB ``imresize``), so
:func:`crossnet_fast.super_resolve`, ``crossnet-fast sr`` and ``crossnet-fast eval`` place the
reference on the output canvas first, by one rule (docs/USE_IN_YOUR_MODEL.md, "A reference of
another size"):

- **top-left aligned**: reference pixel (y, x) is canvas pixel (y, x). Rectified stereo pairs,
  light-field views, video frames and the LR of a top-left crop share that origin, and so does an
  LR made by ``imresize`` with ceil rounding (its last row/column covers the few HR pixels past
  the end); centring would shift the content by half the size difference instead;
- **cropped** on the right / at the bottom where the reference is larger;
- **padded by edge replication** on the right / at the bottom where it is smaller (the same padding
  ``super_resolve`` uses to reach multiples of 64: no invented content, no hard border the flow could
  lock on to);
- never resized. A reference less than half the canvas on either axis is refused: the canvas
  would be mostly replicated edge pixels, and such a reference is nearly always at another
  resolution (or the LR image given by mistake), which placement cannot fix.
"""

from __future__ import annotations

import dataclasses
import math

import torch

MIN_COVER = 0.5  # the smallest reference side, as a fraction of the canvas side


class ReferencePlacementWarning(UserWarning):
    """Emitted by :func:`crossnet_fast.super_resolve` when the reference was cropped or padded.

    Silence it with ``warnings.simplefilter("ignore", ReferencePlacementWarning)``."""


def _crop_and_pad(axis: str) -> tuple[property, property]:
    """The ``crop`` and ``pad`` properties of one axis of :class:`RefPlacement` (``axis`` "h" or "w"):
    pixels removed from the end of the reference on that axis, pixels added there by edge
    replication (ints; at most one of the two is non-zero)."""
    ref, canvas = f"ref_{axis}", f"canvas_{axis}"
    crop = property(lambda self: max(getattr(self, ref) - getattr(self, canvas), 0))
    pad = property(lambda self: max(getattr(self, canvas) - getattr(self, ref), 0))
    return crop, pad


def _source_index(canvas: int, ref: int, device) -> torch.Tensor:
    """(canvas,) int64: the reference row (or column) that each canvas row (or column) reads, ``min(i, ref - 1)``."""
    return torch.arange(canvas, device=device).clamp_(max=ref - 1)


@dataclasses.dataclass(frozen=True)
class RefPlacement:
    """How a (ref_h, ref_w) reference goes onto a (canvas_h, canvas_w) canvas, top-left aligned.

    ``crop_*`` pixels are removed from the reference, ``pad_*`` pixels added by edge replication;
    on each axis at most one of the two is non-zero."""

    ref_h: int
    ref_w: int
    canvas_h: int
    canvas_w: int

    crop_bottom, pad_bottom = _crop_and_pad("h")
    crop_right, pad_right = _crop_and_pad("w")

    @property
    def exact(self) -> bool:
        return (self.ref_h, self.ref_w) == (self.canvas_h, self.canvas_w)

    @property
    def note(self) -> str | None:
        """One line saying what was done (None when the reference already has the canvas size),
        e.g. ``reference 741x500 padded to 744x500 (top-left aligned; 3 px on the right filled by
        edge replication)``. Sizes are width x height."""
        if self.exact:
            return None

        def sides(right: int, bottom: int) -> str:
            return " and ".join(
                [f"{right} px on the right"] * bool(right) + [f"{bottom} px at the bottom"] * bool(bottom)
            )

        cropped, padded = self.crop_right or self.crop_bottom, self.pad_right or self.pad_bottom
        verb = "cropped and padded" if cropped and padded else "cropped" if cropped else "padded"
        what = ["top-left aligned"]
        if cropped:
            what.append(f"{sides(self.crop_right, self.crop_bottom)} cut off")
        if padded:
            what.append(f"{sides(self.pad_right, self.pad_bottom)} filled by edge replication")
        return f"reference {self.ref_w}x{self.ref_h} {verb} to {self.canvas_w}x{self.canvas_h} ({'; '.join(what)})"


def plan_placement(ref_size, canvas_size, name: str = "ref") -> RefPlacement:
    """Check a reference size against the canvas and return its placement.

    Args:
        ref_size: (height, width) of the reference in pixels.
        canvas_size: (height, width) of the output in pixels (``scale`` times the LR size).
        name: how errors name the reference (``"ref"``, ``"--ref"``, a file path).

    Raises:
        ValueError naming ``name`` when a reference side is below ``MIN_COVER`` (half) of the
        canvas side, or the canvas is empty.
    """
    rh, rw = (int(v) for v in ref_size)
    ch, cw = (int(v) for v in canvas_size)
    if ch < 1 or cw < 1:
        raise ValueError(f"the output canvas must not be empty, got {cw}x{ch} (width x height)")
    min_h, min_w = math.ceil(MIN_COVER * ch), math.ceil(MIN_COVER * cw)
    if rh < min_h or rw < min_w:
        raise ValueError(
            f"{name} is {rw}x{rh} (width x height), less than half of the {cw}x{ch} output on "
            f"{'both axes' if rh < min_h and rw < min_w else 'the height' if rh < min_h else 'the width'} "
            f"(at least {min_w}x{min_h} needed). The reference is placed top-left on the output "
            f"canvas (cropped or edge-padded, never resized), so it must show the scene at the "
            f"output's resolution (scale times the LR): resize it first, or crop the LR to the part "
            f"the reference covers"
        )
    return RefPlacement(rh, rw, ch, cw)


def place_reference(ref: torch.Tensor, canvas_size, name: str = "ref") -> tuple[torch.Tensor, RefPlacement]:
    """Put ``ref`` on a canvas of ``canvas_size``: top-left aligned, cropped where larger,
    edge-replicated on the right / at the bottom where smaller (see the module docstring).

    Args:
        ref: (..., H, W) tensor of any dtype and device (e.g. (N, 3, H, W) float in [0, 1]).
        canvas_size: (height, width) of the output (``scale`` times the LR size).
        name: how errors name the reference.

    Returns:
        (placed, placement): ``placed`` is (..., canvas_h, canvas_w), same dtype and device;
        ``ref`` itself when it already has the canvas size.
    """
    plan = plan_placement(ref.shape[-2:], canvas_size, name)
    if plan.exact:
        return ref, plan
    # Output pixel (y, x) reads reference pixel (min(y, H-1), min(x, W-1)): a crop where the
    # canvas is smaller, edge replication where it is larger. Indexing works for every dtype.
    rows = _source_index(plan.canvas_h, plan.ref_h, ref.device)
    cols = _source_index(plan.canvas_w, plan.ref_w, ref.device)
    return ref.index_select(-2, rows).index_select(-1, cols), plan


__all__ = ["MIN_COVER", "ReferencePlacementWarning", "RefPlacement", "plan_placement", "place_reference"]
