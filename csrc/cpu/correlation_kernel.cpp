// CPU kernels of the correlation (cost volume; the definition is in crossnet_fast/ops/correlation.py).
//
// Working layout: the inputs are copied to fp32 (fp64 for fp64) "row-major, channel-middle" arrays,
// one C x columns block per image row, so every inner loop runs along columns (8+ outputs per
// vector, no horizontal sums). Stride s: f1 is copied at its Ho x Wo read points only; f2's columns
// are split into s phases (x = q*s + p), so the columns that outputs j..j+7 read at one
// displacement are contiguous in one phase.
//
// Determinism: each result sums its terms in one fixed order (forward: channels 0..C-1; both
// gradients are gathers over the displacements k = 0..K-1) from a zero start, whatever the tiling,
// vector width (AVX2 or baseline ISA) or thread count, so results are bit-identical across them.
// Locality: a term whose displaced point lies outside the image is skipped by the column ranges,
// never multiplied by a padded zero, so an inf/NaN reaches only the outputs that read it.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "../common.h"
#include "avx2/isa.h"

// The loops below are templates inlined into one baseline and one AVX2 entry point each; without
// always_inline GCC may keep a helper out of line, compiled for the baseline ISA only.
#define CORR_INLINE inline __attribute__((always_inline))

namespace crossnet_fast {
namespace {

// Floor division and the matching non-negative remainder (b > 0).
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

// The geometry shared by the three kernels.
struct Geometry {
  int64_t N, C, H, W, D, dil, s, Ho, Wo, side, K;
  Geometry(const at::Tensor& f1, int64_t D_, int64_t dil_, int64_t s_)
      : N(f1.size(0)), C(f1.size(1)), H(f1.size(2)), W(f1.size(3)), D(D_), dil(dil_), s(s_) {
    Ho = (H + s - 1) / s;
    Wo = (W + s - 1) / s;
    side = 2 * D + 1;
    K = side * side;
  }
  // Columns of f2's phase p (x = q*s + p < W).
  int64_t phase_cols(int64_t p) const { return p < W ? (W - p + s - 1) / s : 0; }
};

// Displacement dx's column mapping: output column j reads f2's phase p at column j + shift, valid
// for j in [lo, hi).
struct ColumnMap {
  int64_t p, shift, lo, hi;
};

inline ColumnMap column_map(const Geometry& g, int64_t dx) {
  const int64_t off = dx * g.dil;
  ColumnMap m;
  m.p = floor_mod(off, g.s);
  m.shift = (off - m.p) / g.s;
  // lo <= hi <= Wo, also when the displacement leaves the image (a shift beyond the row on either
  // side): callers index rows of Wo columns with both ends.
  m.lo = std::min<int64_t>(g.Wo, std::max<int64_t>(0, -m.shift));
  m.hi = std::min<int64_t>(g.Wo, g.phase_cols(m.p) - m.shift);
  if (m.hi < m.lo) m.hi = m.lo;
  return m;
}

// Columns per vector tile of the edge paths. A tile that overlaps a row's valid columns is computed
// whole and its lanes outside them discarded (selected away, never added), so its loads may reach
// up to kTile - 1 elements past either end of a working array: those carry kTile zeros each side.
constexpr int64_t kTile = 8;

// A working array of `sizes` in dtype T, inside kTile zeros each side (see kTile).
at::Tensor working_array(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const int64_t numel = c10::multiply_integers(sizes);
  at::Tensor flat = at::empty({numel + 2 * kTile}, options);
  flat.narrow(0, 0, kTile).zero_();
  flat.narrow(0, numel + kTile, kTile).zero_();
  return flat.narrow(0, kTile, numel).view(sizes);
}

// f1 at its read points as (N, Ho, C, Wo); f2 as (N, H, s, C, Wo) (phase p's columns, zero past
// phase_cols(p)); grad_out as (N, K, Ho, Wo). All in T.
at::Tensor f1_working(const at::Tensor& f1, const Geometry& g, at::ScalarType T) {
  const at::Tensor read = g.s == 1 ? f1 : f1.slice(2, 0, g.H, g.s).slice(3, 0, g.W, g.s);
  at::Tensor out = working_array({g.N, g.Ho, g.C, g.Wo}, f1.options().dtype(T));
  out.copy_(read.permute({0, 2, 1, 3}));
  return out;
}

at::Tensor f2_working(const at::Tensor& f2, const Geometry& g, at::ScalarType T) {
  at::Tensor out = working_array({g.N, g.H, g.s, g.C, g.Wo}, f2.options().dtype(T));
  if (g.s == 1) {
    out.select(2, 0).copy_(f2.permute({0, 2, 1, 3}));
    return out;
  }
  out.zero_();
  for (int64_t p = 0; p < std::min(g.s, g.W); ++p) {
    const int64_t cols = g.phase_cols(p);
    out.select(2, p).narrow(3, 0, cols).copy_(f2.slice(3, p, g.W, g.s).permute({0, 2, 1, 3}));
  }
  return out;
}

at::Tensor grad_out_working(const at::Tensor& grad_out, at::ScalarType T) {
  at::Tensor out = working_array(grad_out.sizes(), grad_out.options().dtype(T));
  out.copy_(grad_out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Forward: out_k[q] = (sum_c a[c*ld + q] * b_k[c*ld + q + shift_k]) / C for q in [lo_k, hi_k), 0
// elsewhere in [0, Q). Every column's sum runs over c = 0..C-1 from 0, whichever tile computes it.

constexpr int64_t kWide = 32;  // columns of the main tiles

// The sums of n columns (n <= Cap). The tiles pass n as a std::integral_constant, so that their
// loops keep a compile-time trip count (unrolled and vectorized); the tail passes a run-time n.
template <int Cap, typename T, typename Count>
CORR_INLINE void dot_columns(const T* a, const T* b, int64_t ld, int64_t C, T c_count, T* out, Count n) {
  T acc[Cap] = {};
  for (int64_t c = 0; c < C; ++c) {
    const T* ar = a + c * ld;
    const T* br = b + c * ld;
    for (int64_t l = 0; l < n; ++l) acc[l] += ar[l] * br[l];
  }
  for (int64_t l = 0; l < n; ++l) out[l] = acc[l] / c_count;
}

template <int JB, typename T>
CORR_INLINE void dot_columns_tile(const T* a, const T* b, int64_t ld, int64_t C, T c_count, T* out) {
  dot_columns<JB>(a, b, ld, C, c_count, out, std::integral_constant<int64_t, JB>{});
}

// Two displacements of one tile: each a column read once for both (twice the independent sums).
template <int JB, typename T>
CORR_INLINE void dot_columns_tile2(const T* a, const T* b0, const T* b1, int64_t ld, int64_t C, T c_count, T* out0,
                                   T* out1) {
  T acc0[JB] = {}, acc1[JB] = {};
  for (int64_t c = 0; c < C; ++c) {
    const T* ar = a + c * ld;
    const T* br0 = b0 + c * ld;
    const T* br1 = b1 + c * ld;
    for (int l = 0; l < JB; ++l) {
      acc0[l] += ar[l] * br0[l];
      acc1[l] += ar[l] * br1[l];
    }
  }
  for (int l = 0; l < JB; ++l) {
    out0[l] = acc0[l] / c_count;
    out1[l] = acc1[l] / c_count;
  }
}

// Same sums for a run of n < kTile columns (rows narrower than a tile).
template <typename T>
CORR_INLINE void dot_columns_tail(const T* a, const T* b, int64_t ld, int64_t C, T c_count, T* out, int64_t n) {
  dot_columns<kTile>(a, b, ld, C, c_count, out, n);
}

// The columns [lo, hi) of one displacement's row that the main tiles [f0, f1) left, by kTile-column
// tiles; the last one moved back to end inside [0, Q): its extra columns are recomputed alike or
// zeroed by the caller.
template <typename T>
CORR_INLINE void dot_columns_edges(const T* a, const T* b, int64_t shift, int64_t ld, int64_t C, int64_t Q, int64_t lo,
                                   int64_t hi, int64_t f0, int64_t f1, T* out) {
  const T c_count = static_cast<T>(C);
  const auto run = [&](int64_t from, int64_t to) {
    if (Q < kTile) {
      if (from < to) dot_columns_tail(a + from, b + (from + shift), ld, C, c_count, out + from, to - from);
      return;
    }
    for (int64_t q = from; q < to; q += kTile) {
      const int64_t start = std::min(q, Q - kTile);
      dot_columns_tile<kTile>(a + start, b + (start + shift), ld, C, c_count, out + start);
    }
  };
  if (f0 < f1) {
    run(lo, f0);
    run(f1, hi);
  } else {
    run(lo, hi);
  }
}

template <typename T, typename scalar_t>
struct ForwardArgs {
  Geometry g;
  const T* A;     // (N, Ho, C, Wo)
  const T* B;     // (N, H, s, C, Wo)
  scalar_t* out;  // (N, K, Ho, Wo)
};

// Output rows [begin, end) of n * Ho + i. Per displacement row dy, the main tiles run tile by tile
// over all dx (a tile of f1 and the dx's f2 columns stay in L1 meanwhile), two dx at a time.
template <typename T, typename scalar_t>
CORR_INLINE void forward_rows(const ForwardArgs<T, scalar_t>& args, int64_t begin, int64_t end) {
  const Geometry& g = args.g;
  const T c_count = static_cast<T>(g.C);
  std::vector<T> rows(g.side * g.Wo);  // the row of each dx of one dy
  std::vector<ColumnMap> maps(g.side);
  std::vector<const T*> bs(g.side);
  std::vector<int64_t> f0(g.side), f1(g.side);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / g.Ho, i = r % g.Ho;
    const T* a = args.A + r * g.C * g.Wo;
    for (int64_t dy = -g.D; dy <= g.D; ++dy) {
      const int64_t yy = i * g.s + dy * g.dil;
      scalar_t* dst = args.out + ((n * g.K + (dy + g.D) * g.side) * g.Ho + i) * g.Wo;
      const int64_t plane = g.Ho * g.Wo;
      if (yy < 0 || yy >= g.H) {
        for (int64_t x = 0; x < g.side; ++x) std::fill(dst + x * plane, dst + x * plane + g.Wo, scalar_t(0));
        continue;
      }
      for (int64_t x = 0; x < g.side; ++x) {
        maps[x] = column_map(g, x - g.D);
        bs[x] = args.B + ((n * g.H + yy) * g.s + maps[x].p) * g.C * g.Wo;
        f0[x] = (maps[x].lo + kWide - 1) / kWide * kWide;  // the main tiles of dx: [f0, f1)
        f1[x] = maps[x].hi / kWide * kWide;
      }
      for (int64_t q0 = 0; q0 + kWide <= g.Wo; q0 += kWide) {
        int64_t pending = -1;  // a dx waiting for a partner
        for (int64_t x = 0; x < g.side; ++x) {
          if (q0 < f0[x] || q0 + kWide > f1[x]) continue;
          if (pending < 0) {
            pending = x;
            continue;
          }
          const int64_t x0 = pending;
          dot_columns_tile2<kWide>(a + q0, bs[x0] + (q0 + maps[x0].shift), bs[x] + (q0 + maps[x].shift), g.Wo, g.C,
                                   c_count, rows.data() + x0 * g.Wo + q0, rows.data() + x * g.Wo + q0);
          pending = -1;
        }
        if (pending >= 0)
          dot_columns_tile<kWide>(a + q0, bs[pending] + (q0 + maps[pending].shift), g.Wo, g.C, c_count,
                                  rows.data() + pending * g.Wo + q0);
      }
      for (int64_t x = 0; x < g.side; ++x) {
        const ColumnMap& m = maps[x];
        T* row = rows.data() + x * g.Wo;
        if (m.lo < m.hi) dot_columns_edges(a, bs[x], m.shift, g.Wo, g.C, g.Wo, m.lo, m.hi, f0[x], f1[x], row);
        for (int64_t q = 0; q < m.lo; ++q) row[q] = T(0);
        for (int64_t q = std::max(m.lo, m.hi); q < g.Wo; ++q) row[q] = T(0);
        scalar_t* out = dst + x * plane;
        for (int64_t q = 0; q < g.Wo; ++q) out[q] = static_cast<scalar_t>(row[q]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Gradients: out[c*Q + q] = sum_t u_t[q + u_off_t] * v_t[c*ld + q + v_off_t] over the terms t whose
// range [lo_t, hi_t) holds q, in the order of the terms.

template <typename T>
struct Term {
  const T* u;  // grad_out row (one displacement)
  const T* v;  // C x ld block of the other input
  int64_t u_off, v_off, lo, hi;
};

// Channels [c0, c0 + CB) x columns [q0, q0 + JB) (JB columns all inside [0, Q)), in registers.
template <int CB, int JB, typename T>
CORR_INLINE void gather_tile(const Term<T>* terms, int64_t nt, int64_t ld, int64_t c0, int64_t q0, T c_count, T* out,
                             int64_t Q) {
  T acc[CB][JB] = {};
  for (int64_t t = 0; t < nt; ++t) {
    const Term<T>& tm = terms[t];
    const int64_t lo = std::max(tm.lo, q0), hi = std::min(tm.hi, q0 + JB);
    if (lo >= hi) continue;
    if (lo == q0 && hi == q0 + JB) {
      const T* u = tm.u + (tm.u_off + q0);
      const T* v = tm.v + (c0 * ld + tm.v_off + q0);
      for (int cb = 0; cb < CB; ++cb)
        for (int l = 0; l < JB; ++l) acc[cb][l] += u[l] * v[cb * ld + l];
    } else {
      // The whole tile, the lanes outside [lo, hi) selected away (their loads stay inside the
      // working arrays' margins, see kTile).
      const T* u = tm.u + (tm.u_off + q0);
      const T* v = tm.v + (c0 * ld + tm.v_off + q0);
      const int64_t first = lo - q0, last = hi - q0;
      for (int cb = 0; cb < CB; ++cb)
        for (int l = 0; l < JB; ++l) {
          const T sum = acc[cb][l] + u[l] * v[cb * ld + l];
          acc[cb][l] = l >= first && l < last ? sum : acc[cb][l];
        }
    }
  }
  for (int cb = 0; cb < CB; ++cb)
    for (int l = 0; l < JB; ++l) out[(c0 + cb) * Q + q0 + l] = acc[cb][l] / c_count;
}

// Columns [q0, q0 + n), n < 8, of channel c.
template <typename T>
CORR_INLINE void gather_tail(const Term<T>* terms, int64_t nt, int64_t ld, int64_t c, int64_t q0, int64_t n, T c_count,
                             T* out, int64_t Q) {
  T acc[8] = {};
  for (int64_t t = 0; t < nt; ++t) {
    const Term<T>& tm = terms[t];
    const int64_t lo = std::max(tm.lo, q0), hi = std::min(tm.hi, q0 + n);
    for (int64_t q = lo; q < hi; ++q) acc[q - q0] += tm.u[tm.u_off + q] * tm.v[c * ld + tm.v_off + q];
  }
  for (int64_t l = 0; l < n; ++l) out[c * Q + q0 + l] = acc[l] / c_count;
}

// The whole C x Q block.
template <typename T>
CORR_INLINE void gather_block(const Term<T>* terms, int64_t nt, int64_t ld, int64_t C, int64_t Q, T* out) {
  const T c_count = static_cast<T>(C);
  constexpr int JB = kTile, CB = 4;
  int64_t q0 = 0;
  for (; q0 + JB <= Q; q0 += JB) {
    int64_t c = 0;
    for (; c + 2 * CB <= C; c += 2 * CB) gather_tile<2 * CB, JB>(terms, nt, ld, c, q0, c_count, out, Q);
    for (; c + CB <= C; c += CB) gather_tile<CB, JB>(terms, nt, ld, c, q0, c_count, out, Q);
    for (; c < C; ++c) gather_tile<1, JB>(terms, nt, ld, c, q0, c_count, out, Q);
  }
  if (q0 < Q)
    for (int64_t c = 0; c < C; ++c) gather_tail(terms, nt, ld, c, q0, Q - q0, c_count, out, Q);
}

template <typename T, typename scalar_t>
struct BackwardArgs {
  Geometry g;
  const T* A;      // (N, Ho, C, Wo)
  const T* B;      // (N, H, s, C, Wo)
  const T* G;      // grad_out (N, K, Ho, Wo)
  scalar_t* grad;  // (N, C, H, W) contiguous: grad_f1 (rows of task = output rows) or grad_f2 (f2 rows)
};

// grad_f1 at the read points of output rows [begin, end) of n * Ho + i:
// grad_A[c, j] = sum_k G[k, i, j] * B[yy_k, p_k, c, j + shift_k].
template <typename T, typename scalar_t>
CORR_INLINE void grad_f1_rows(const BackwardArgs<T, scalar_t>& args, int64_t begin, int64_t end) {
  const Geometry& g = args.g;
  std::vector<Term<T>> terms(g.K);
  std::vector<T> block(g.C * g.Wo);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / g.Ho, i = r % g.Ho;
    int64_t nt = 0;
    for (int64_t dy = -g.D; dy <= g.D; ++dy) {
      const int64_t yy = i * g.s + dy * g.dil;
      if (yy < 0 || yy >= g.H) continue;
      for (int64_t dx = -g.D; dx <= g.D; ++dx) {
        const int64_t k = (dy + g.D) * g.side + (dx + g.D);
        const ColumnMap m = column_map(g, dx);
        if (m.lo >= m.hi) continue;
        terms[nt++] = Term<T>{args.G + ((n * g.K + k) * g.Ho + i) * g.Wo,
                              args.B + ((n * g.H + yy) * g.s + m.p) * g.C * g.Wo,
                              0,
                              m.shift,
                              m.lo,
                              m.hi};
      }
    }
    gather_block(terms.data(), nt, g.Wo, g.C, g.Wo, block.data());
    const int64_t y = i * g.s;
    for (int64_t c = 0; c < g.C; ++c) {
      scalar_t* dst = args.grad + ((n * g.C + c) * g.H + y) * g.W;
      const T* src = block.data() + c * g.Wo;
      for (int64_t j = 0; j < g.Wo; ++j) dst[j * g.s] = static_cast<scalar_t>(src[j]);
    }
  }
}

// grad_f2 of f2 rows [begin, end) of n * H + yy, phase by phase (x = q*s + p):
// grad_B[c, q] = sum_k G[k, i_k, q - shift_k] * A[i_k, c, q - shift_k] over the k that read
// (yy, q*s + p) from output row i_k.
template <typename T, typename scalar_t>
CORR_INLINE void grad_f2_rows(const BackwardArgs<T, scalar_t>& args, int64_t begin, int64_t end) {
  const Geometry& g = args.g;
  std::vector<Term<T>> terms(g.K);
  std::vector<T> block(g.C * g.Wo);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / g.H, yy = r % g.H;
    for (int64_t p = 0; p < std::min(g.s, g.W); ++p) {
      const int64_t cols = g.phase_cols(p);
      int64_t nt = 0;
      for (int64_t dy = -g.D; dy <= g.D; ++dy) {
        const int64_t y = yy - dy * g.dil;  // the f1 row that reads f2's row yy at dy
        if (y < 0 || y % g.s != 0 || y / g.s >= g.Ho) continue;
        const int64_t i = y / g.s;
        for (int64_t dx = -g.D; dx <= g.D; ++dx) {
          const ColumnMap m = column_map(g, dx);
          if (m.p != p || m.lo >= m.hi) continue;
          const int64_t k = (dy + g.D) * g.side + (dx + g.D);
          // output column j = q - shift for q in [lo + shift, hi + shift) (inside [0, cols)).
          terms[nt++] = Term<T>{args.G + ((n * g.K + k) * g.Ho + i) * g.Wo,
                                args.A + (n * g.Ho + i) * g.C * g.Wo,
                                -m.shift,
                                -m.shift,
                                m.lo + m.shift,
                                m.hi + m.shift};
        }
      }
      gather_block(terms.data(), nt, g.Wo, g.C, cols, block.data());
      for (int64_t c = 0; c < g.C; ++c) {
        scalar_t* dst = args.grad + ((n * g.C + c) * g.H + yy) * g.W + p;
        const T* src = block.data() + c * cols;
        for (int64_t q = 0; q < cols; ++q) dst[q * g.s] = static_cast<scalar_t>(src[q]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ISA entry points: the same loops compiled for the baseline ISA and for AVX2 (picked at run time;
// without fused multiply-adds, -ffp-contract=off, so both round alike).

template <typename Args>
void forward_base(const Args& a, int64_t b, int64_t e) {
  forward_rows(a, b, e);
}
template <typename Args>
void grad_f1_base(const Args& a, int64_t b, int64_t e) {
  grad_f1_rows(a, b, e);
}
template <typename Args>
void grad_f2_base(const Args& a, int64_t b, int64_t e) {
  grad_f2_rows(a, b, e);
}
#if CROSSNET_FAST_X86_DISPATCH
template <typename Args>
CROSSNET_FAST_TARGET_AVX2 void forward_avx2(const Args& a, int64_t b, int64_t e) {
  forward_rows(a, b, e);
}
template <typename Args>
CROSSNET_FAST_TARGET_AVX2 void grad_f1_avx2(const Args& a, int64_t b, int64_t e) {
  grad_f1_rows(a, b, e);
}
template <typename Args>
CROSSNET_FAST_TARGET_AVX2 void grad_f2_avx2(const Args& a, int64_t b, int64_t e) {
  grad_f2_rows(a, b, e);
}
#endif

// Rows per task: at least ~64k multiply-adds, so that small levels do not pay for waking threads.
int64_t rows_per_task(int64_t work_per_row) {
  constexpr int64_t kMinTaskWork = int64_t(1) << 16;
  return std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(work_per_row, 1));
}

template <typename Args>
void run_rows(void (*base)(const Args&, int64_t, int64_t), void (*avx2)(const Args&, int64_t, int64_t),
              const Args& args, int64_t rows, int64_t work_per_row) {
  const auto fn = cpu::has_avx2() && avx2 != nullptr ? avx2 : base;
  at::parallel_for(0, rows, rows_per_task(work_per_row), [&](int64_t b, int64_t e) { fn(args, b, e); });
}

#if CROSSNET_FAST_X86_DISPATCH
#define CORR_AVX2(fn) fn##_avx2<Args>
#else
#define CORR_AVX2(fn) nullptr
#endif

at::Tensor correlation_cpu(const at::Tensor& f1, const at::Tensor& f2, int64_t max_displacement, int64_t dilation,
                           int64_t stride) {
  check_correlation_inputs(f1, f2, max_displacement, dilation, stride);
  const Geometry g(f1, max_displacement, dilation, stride);
  at::Tensor out = at::empty({g.N, g.K, g.Ho, g.Wo}, f1.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  if (g.C == 0) return out.zero_();
  const at::ScalarType T = accumulate_type(f1.scalar_type());
  const at::Tensor A = f1_working(f1, g, T), B = f2_working(f2, g, T);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    using Args = ForwardArgs<acc_t, scalar_t>;
    const Args args{g, A.data_ptr<acc_t>(), B.data_ptr<acc_t>(), out.data_ptr<scalar_t>()};
    run_rows<Args>(forward_base<Args>, CORR_AVX2(forward), args, g.N * g.Ho, g.K * g.C * g.Wo);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> correlation_backward_cpu(const at::Tensor& grad_out, const at::Tensor& f1,
                                                            const at::Tensor& f2, int64_t max_displacement,
                                                            int64_t dilation, int64_t stride,
                                                            std::array<bool, 2> output_mask) {
  check_correlation_inputs(f1, f2, max_displacement, dilation, stride);
  const Geometry g(f1, max_displacement, dilation, stride);
  TORCH_CHECK_VALUE(grad_out.dim() == 4 && grad_out.size(0) == g.N && grad_out.size(1) == g.K &&
                        grad_out.size(2) == g.Ho && grad_out.size(3) == g.Wo,
                    "grad_out must have the correlation's output shape (", g.N, ", ", g.K, ", ", g.Ho, ", ", g.Wo,
                    "), got ", grad_out.sizes());
  const auto contiguous = f1.options().memory_format(at::MemoryFormat::Contiguous);
  // grad_f1 is zero off the read points (stride > 1); every element of grad_f2 is written.
  at::Tensor grad1 = output_mask[0] ? (g.s > 1 ? at::zeros(f1.sizes(), contiguous) : at::empty(f1.sizes(), contiguous))
                                    : at::empty({0}, f1.options());
  at::Tensor grad2 = output_mask[1] ? at::empty(f2.sizes(), contiguous) : at::empty({0}, f2.options());
  if (f1.numel() > 0) {  // else nothing to write: C == 0 or an empty batch or plane
    const at::ScalarType T = accumulate_type(f1.scalar_type());
    const at::Tensor G = grad_out_working(grad_out, T);
    const at::Tensor A = output_mask[1] ? f1_working(f1, g, T) : at::Tensor();
    const at::Tensor B = output_mask[0] ? f2_working(f2, g, T) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      using Args = BackwardArgs<acc_t, scalar_t>;
      const acc_t* g_ptr = G.data_ptr<acc_t>();
      if (output_mask[0]) {
        const Args args{g, nullptr, B.data_ptr<acc_t>(), g_ptr, grad1.data_ptr<scalar_t>()};
        run_rows<Args>(grad_f1_base<Args>, CORR_AVX2(grad_f1), args, g.N * g.Ho, g.K * g.C * g.Wo);
      }
      if (output_mask[1]) {
        const Args args{g, A.data_ptr<acc_t>(), nullptr, g_ptr, grad2.data_ptr<scalar_t>()};
        // Each f2 row gathers from ~(2D+1)/s output rows' displacements: about K/s^2 terms per
        // column and channel, spread over the row's s phases.
        run_rows<Args>(grad_f2_base<Args>, CORR_AVX2(grad_f2), args, g.N * g.H, g.K * g.C * g.Wo / g.s);
      }
    });
  }
  if (output_mask[0]) grad1 = like_input(grad1, f1);
  if (output_mask[1]) grad2 = like_input(grad2, f2);
  return {grad1, grad2};
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, CPU, m) {
  m.impl("correlation", &correlation_cpu);
  m.impl("correlation_backward", &correlation_backward_cpu);
}

}  // namespace crossnet_fast
