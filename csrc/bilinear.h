// The only copy of the bilinear sampling math, shared by the CPU and CUDA kernels.
//
// Convention (see crossnet_fast/reference/multiscale_warp.py, the definition):
//   sample point (x, y) = (column + flow_x, row + flow_y), in pixels, pixel centres at integers
//   (align_corners=True). Border padding clamps the point into [0, W-1] x [0, H-1] (and the
//   gradient of a clamped coordinate is 0); zeros padding lets taps outside the image count as 0.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

#include "fp_rounding.h"

namespace crossnet_fast {

enum class Padding : int { Border = 0, Zeros = 1 };

// The four taps of one bilinear sample, in the order (x0,y0), (x1,y0), (x0,y1), (x1,y1).
// Every offset is inside the image (a tap outside gets weight 0 and offset 0), so a kernel can read
// all four without bounds checks, whatever the flow holds (NaN, inf, 1e30). A kernel must combine a
// tap only through weighted(coefficient, value): a tap whose coefficient is 0 (outside the image,
// or exactly on a pixel row/column) is then not used, so an inf or NaN in the features reaches only
// the samples that weight it (0 * inf would be NaN).
template <typename acc_t, typename index_t>
struct BilinearTaps {
  index_t offset[4];    // y * W + x of the tap inside one (H, W) plane
  acc_t weight[4];      // bilinear weight; NaN for a NaN sample point with border padding
  acc_t dweight_dx[4];  // d weight / d flow_x (0 where the x coordinate was clamped)
  acc_t dweight_dy[4];  // d weight / d flow_y
};

// True for finite values; NaN and +-inf give NaN in (v - v). Avoids std::isfinite, which is not
// usable on the device for every scalar type.
template <typename acc_t>
C10_HOST_DEVICE inline bool is_finite(acc_t v) {
  return (v - v) == acc_t(0);
}

// coef * value, or exactly 0 where coef is 0 whatever value holds (inf, NaN): the one rule by
// which a tap is "not read". The product is computed unconditionally and then selected, so the
// compiler can blend instead of branching and loops still vectorise (a multiply inside the
// conditional arm is not if-converted: floating-point ops may trap).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t weighted(acc_t coef, acc_t value) {
  const acc_t product = coef * value;
  return coef != acc_t(0) ? product : acc_t(0);
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t floor_of(acc_t v) {
  // Truncation toward zero, then one down for negative non-integers. v is finite and small here.
  const acc_t t = static_cast<acc_t>(static_cast<int64_t>(v));
  return t > v ? t - acc_t(1) : t;
}

// Same taps, with each offset computed as row * row_stride + column * col_stride, so a kernel can
// address a strided (e.g. channels_last: row_stride = W * C, col_stride = C) plane directly.
template <typename acc_t, typename index_t>
C10_HOST_DEVICE inline BilinearTaps<acc_t, index_t> bilinear_taps_strided(acc_t x, acc_t y, index_t height,
                                                                          index_t width, index_t row_stride,
                                                                          index_t col_stride, Padding padding) {
  BilinearTaps<acc_t, index_t> taps;
  for (int k = 0; k < 4; ++k) {
    taps.offset[k] = 0;
    taps.weight[k] = acc_t(0);
    taps.dweight_dx[k] = acc_t(0);
    taps.dweight_dy[k] = acc_t(0);
  }
  const acc_t max_x = static_cast<acc_t>(width - 1);
  const acc_t max_y = static_cast<acc_t>(height - 1);
  acc_t clamp_grad_x = acc_t(1);
  acc_t clamp_grad_y = acc_t(1);
  if (padding == Padding::Border) {
    if (x != x || y != y) {
      // NaN in, NaN out: NaN weights on the taps around pixel (0, 0), as the reference defines it,
      // carry the NaN into every output channel and, in the backward, into those four pixels of
      // the feature gradient. The flow gradient of a NaN point is NaN. (+-inf is not NaN: it
      // clamps to the border like any other far-away point.)
      const acc_t nan = (x - x) + (y - y);
      for (int k = 0; k < 4; ++k) {
        const index_t xi = k & 1;
        const index_t yi = k >> 1;
        if (xi >= width || yi >= height) continue;
        taps.offset[k] = yi * row_stride + xi * col_stride;
        taps.weight[k] = nan;
        taps.dweight_dx[k] = nan;
        taps.dweight_dy[k] = nan;
      }
      return taps;
    }
    if (x < acc_t(0)) {
      x = acc_t(0);
      clamp_grad_x = acc_t(0);
    } else if (x > max_x) {
      x = max_x;
      clamp_grad_x = acc_t(0);
    }
    if (y < acc_t(0)) {
      y = acc_t(0);
      clamp_grad_y = acc_t(0);
    } else if (y > max_y) {
      y = max_y;
      clamp_grad_y = acc_t(0);
    }
  } else {
    // Entirely outside (or not a number): every tap is 0. Checked before any float->int
    // conversion, so huge flows cannot overflow an index. At exactly -1 the tap at 0 has weight 0
    // but a non-zero derivative, so the point still counts (as in F.grid_sample).
    if (!is_finite(x) || !is_finite(y) || !(x >= acc_t(-1)) || !(x < max_x + acc_t(1)) || !(y >= acc_t(-1)) ||
        !(y < max_y + acc_t(1))) {
      return taps;
    }
  }
  const acc_t x0f = floor_of(x);
  const acc_t y0f = floor_of(y);
  const acc_t ax = x - x0f;
  const acc_t ay = y - y0f;
  const index_t x0 = static_cast<index_t>(x0f);
  const index_t y0 = static_cast<index_t>(y0f);
  const acc_t wx[2] = {acc_t(1) - ax, ax};
  const acc_t wy[2] = {acc_t(1) - ay, ay};
  const acc_t dwx[2] = {-clamp_grad_x, clamp_grad_x};
  const acc_t dwy[2] = {-clamp_grad_y, clamp_grad_y};
  for (int k = 0; k < 4; ++k) {
    const int dx = k & 1;
    const int dy = k >> 1;
    const index_t xi = x0 + dx;
    const index_t yi = y0 + dy;
    if (xi < 0 || xi >= width || yi < 0 || yi >= height) continue;  // a zero tap
    taps.offset[k] = yi * row_stride + xi * col_stride;
    taps.weight[k] = wx[dx] * wy[dy];
    taps.dweight_dx[k] = dwx[dx] * wy[dy];
    taps.dweight_dy[k] = wx[dx] * dwy[dy];
  }
  return taps;
}

// Offsets into a contiguous (H, W) plane: y * W + x.
template <typename acc_t, typename index_t>
C10_HOST_DEVICE inline BilinearTaps<acc_t, index_t> bilinear_taps(acc_t x, acc_t y, index_t height, index_t width,
                                                                  Padding padding) {
  return bilinear_taps_strided<acc_t, index_t>(x, y, height, width, width, index_t(1), padding);
}

// ---------------------------------------------------------------------------------------------
// grid_sample: normalised grid coordinates (F.grid_sample's convention) -> pixel coordinates.
// The definition is crossnet_fast/reference/grid_sample.py.

enum class GridPadding : int { Zeros = 0, Border = 1, Reflection = 2 };

// A pixel coordinate and its derivative with respect to the normalised grid coordinate (0 where
// the padding clamped it).
template <typename acc_t>
struct SourceCoordinate {
  acc_t coord;
  acc_t factor;
};

template <typename acc_t>
C10_HOST_DEVICE inline SourceCoordinate<acc_t> grid_source_coordinate(acc_t g, int64_t size, GridPadding padding,
                                                                      bool align_corners) {
  const acc_t n = static_cast<acc_t>(size);
  // mul_rn/add_rn: rounded twice, as on the CPU (a fused multiply-add moves points off pixels).
  acc_t x = align_corners ? mul_rn((g + acc_t(1)) / acc_t(2), n - acc_t(1))
                          : add_rn(mul_rn(g + acc_t(1), n), acc_t(-1)) / acc_t(2);
  acc_t factor = align_corners ? (n - acc_t(1)) / acc_t(2) : n / acc_t(2);
  if (padding == GridPadding::Zeros) return {x, factor};
  if (padding == GridPadding::Reflection) {
    // Reflect about the corner pixels' centres (align_corners) or their outer edges.
    const acc_t low = align_corners ? acc_t(0) : acc_t(-0.5);
    const acc_t span = align_corners ? n - acc_t(1) : n;
    if (span <= acc_t(0)) return {acc_t(0), acc_t(0)};
    acc_t d = add_rn(x, -low);  // not contracted with the halving above
    acc_t sign = acc_t(1);
    if (d < acc_t(0)) {
      d = -d;
      sign = acc_t(-1);
    }
    const acc_t flips = ::floor(d / span);
    const acc_t extra = ::fmod(d, span);
    const bool odd = ::fmod(flips, acc_t(2)) == acc_t(1);
    x = odd ? span - extra + low : extra + low;
    factor *= odd ? -sign : sign;
  }
  // Clamp into [0, size-1] (border, and reflection's rounding); on or beyond a bound the
  // derivative is 0, as in PyTorch. NaN stays NaN (every comparison is false).
  const acc_t max_x = n - acc_t(1);
  if (!(x > acc_t(0) && x < max_x)) {
    factor = acc_t(0);
    if (x <= acc_t(0))
      x = acc_t(0);
    else if (x >= max_x)
      x = max_x;
  }
  return {x, factor};
}

// The taps of one grid point: bilinear taps with the derivatives taken with respect to the
// normalised grid coordinates. `undefined` marks a point whose coordinate is not finite after
// padding (NaN; +-inf except with border padding): its sample and grid gradient are NaN, its taps
// all 0 (nothing reaches the input gradient).
template <typename acc_t, typename index_t>
struct GridTaps {
  BilinearTaps<acc_t, index_t> taps;
  bool undefined;
};

template <typename acc_t, typename index_t>
C10_HOST_DEVICE inline GridTaps<acc_t, index_t> grid_taps_strided(acc_t gx, acc_t gy, index_t height, index_t width,
                                                                  index_t row_stride, index_t col_stride,
                                                                  GridPadding padding, bool align_corners) {
  const SourceCoordinate<acc_t> sx = grid_source_coordinate<acc_t>(gx, width, padding, align_corners);
  const SourceCoordinate<acc_t> sy = grid_source_coordinate<acc_t>(gy, height, padding, align_corners);
  GridTaps<acc_t, index_t> r;
  r.undefined = !is_finite(sx.coord) || !is_finite(sy.coord);
  // Zeros rule for the taps: after border or reflection padding the point is inside the image.
  r.taps =
      bilinear_taps_strided<acc_t, index_t>(sx.coord, sy.coord, height, width, row_stride, col_stride, Padding::Zeros);
  for (int k = 0; k < 4; ++k) {
    r.taps.dweight_dx[k] *= sx.factor;
    r.taps.dweight_dy[k] *= sy.factor;
  }
  return r;
}

}  // namespace crossnet_fast
