// Host step of the deterministic (gather instead of atomics) gradients: group entries by their
// destination with a stable sort, so that every destination sums its entries in one fixed order.
// Shared by multiscale_warp (warp_deterministic.cuh) and grid_sample (grid_sample_deterministic.cuh).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

namespace crossnet_fast {
namespace cuda {

// The most entries one sort takes: PyTorch's sort refuses a dimension of more than INT_MAX
// elements. Callers sort larger problems per image (or group of whole images), so their keys
// are 32-bit as well (a group's destination ids and sentinel stay below INT_MAX).
constexpr int64_t kMaxSortEntries = std::numeric_limits<int32_t>::max();

// The number of whole images sorted together when each image has `entries_per_image` entries
// and `dests_per_image` destinations: as many as keep both within kMaxSortEntries (at least 1;
// the caller checks that one image fits).
inline int64_t images_per_sort(int64_t entries_per_image, int64_t dests_per_image) {
  const int64_t by_entries = entries_per_image > 0 ? kMaxSortEntries / entries_per_image : kMaxSortEntries;
  const int64_t by_dests = dests_per_image > 0 ? (kMaxSortEntries - 1) / dests_per_image : kMaxSortEntries;
  return std::max<int64_t>(1, std::min(by_entries, by_dests));
}

// keys: (E,) int32 or int64 on the device, E <= kMaxSortEntries, the destination id of entry e in [0, num_dest), or
// num_dest (the sentinel: the entry adds nothing). Taken by value and released before the
// searchsorted, so that only the sorted copy stays alive (pass it with std::move).
// Returns (order, start): order (E,) int64 holds the entry ids sorted by key, equal keys in
// ascending entry order (stable sort: the fixed summation order); start (num_dest + 1,) int64,
// destination d's entries are order[start[d] .. start[d + 1]).
inline std::pair<at::Tensor, at::Tensor> sorted_segments(at::Tensor keys, int64_t num_dest) {
  auto sorted = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const auto opts = keys.options();
  keys = at::Tensor();
  const at::Tensor& sorted_keys = std::get<0>(sorted);
  at::Tensor start = at::searchsorted(sorted_keys, at::arange(num_dest + 1, opts));
  return {std::get<1>(sorted), start};
}

}  // namespace cuda
}  // namespace crossnet_fast
