// The per-launch descriptor of multiscale_warp: every scale of the pyramid in one struct passed by
// value (as a __grid_constant__ kernel parameter, so indexing it with the runtime scale number
// reads constant memory instead of copying it to local memory). Blocks map to scales through the
// ascending block_begin prefix (see scale_of_block in cuda_common.cuh).
#pragma once

#include <cstdint>

#include "../bilinear.h"
#include "cuda_common.cuh"

namespace crossnet_fast {
namespace cuda {

constexpr int kMaxScales = 8;        // scales per launch; longer pyramids are split into several launches
constexpr int kPixelsPerBlock = 32;  // strided kernels: 32 pixels (lanes) x 8 channel groups
constexpr int kChannelGroups = kBlock / kPixelsPerBlock;
static_assert(kBlock == 256, "the channels_last kernels map kBlock >> log2_lanes pixels per block as a shift of 8");

struct WarpScale {
  const void* feat;      // (N, C, H, W) scalar_t, strides feat_stride (elements); out/grad_feat share them
  const void* flow;      // (N, 2, H, W) flow_kind, strides flow_stride; pixels (x then y)
  void* out;             // forward: warped features; backward: grad_feat (nullptr when not wanted)
  const void* grad_out;  // backward: (N, C, H, W) scalar_t, strides gout_stride
  void* grad_flow;       // backward: (N, 2, H, W) flow_kind, strides gflow_stride (nullptr when not wanted)
  int64_t N, C, H, W;
  int64_t feat_stride[4];
  int64_t flow_stride[4];
  int64_t gout_stride[4];
  int64_t gflow_stride[4];
  int64_t block_begin;  // first block of this scale in the launch
  int64_t pixel_begin;  // id of this scale's first pixel among all pixels of the launch (deterministic path)
  int log2_lanes;       // channels_last path: lanes that share one pixel (a power of two <= 32)
  FloatKind flow_kind;
};

struct WarpParams {
  WarpScale scale[kMaxScales];
  int num_scales;
  Padding padding;
  bool need_feat;  // backward: scatter into grad_feat (the atomic path)
  bool need_flow;  // backward: write grad_flow
};

}  // namespace cuda
}  // namespace crossnet_fast
