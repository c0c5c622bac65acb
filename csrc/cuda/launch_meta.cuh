// What the host hands the CUDA update kernels: a launch's metadata (by value, or as a device table
// for any number of tensors) and the step's device pointers; and the kernels, one per update rule
// and launch path, each in its own translation unit (kernel_*.cu) so that the build compiles them
// in parallel. fused_step_cuda.cu launches them.
#pragma once

#include <cstdint>

#include "lrfused/step_args.h"

namespace lrfused {

constexpr int kThreads = 512;
constexpr int64_t kChunkSize = 65536;  // elements per block; a multiple of every vector width
constexpr int kMaxTensors = 160;
constexpr int kMaxBlocks = 1280;
constexpr int kMaxGroups = 16;  // a whole range-test grid (lrfused.find.grid.MAX_COMBINATIONS) in one launch

// A launch's tensors are KernelTensors whose group is a slot in LaunchMeta::groups.
using TensorMeta = KernelTensor;

struct LaunchMeta {
  TensorMeta tensors[kMaxTensors];
  GroupConfig groups[kMaxGroups];
  int32_t block_tensor[kMaxBlocks];
  int32_t block_chunk[kMaxBlocks];
};
// Kernel arguments may take up to 32764 bytes (CUDA 12.1+, Volta and newer).
// 27,520 bytes with 160 tensors of 72 and 16 groups of 360 (setup.py says so: keep it in step).
static_assert(sizeof(LaunchMeta) + 4 * sizeof(void*) <= 32000, "LaunchMeta exceeds the kernel argument limit");

// GradScaler's tensors (nullptr without one) and the step counter, all on the device.
struct StepPointers {
  const int64_t* step;
  const float* grad_scale;
  const float* found_inf;
};


// A step's metadata in device memory, for any number of tensors.
struct DeviceTable {
  const TensorMeta* tensors;  // group indexes `groups`
  const GroupConfig* groups;
  const int64_t* block_end;   // per tensor: blocks of it and of every tensor before it
  int32_t num_tensors;
};

// The update kernels (kernel_<rule>_<path>.cu); every group of a launch follows the kernel's rule.
__global__ void __launch_bounds__(kThreads) sgd_step_by_value(const __grid_constant__ LaunchMeta meta, const StepPointers ptrs);
__global__ void __launch_bounds__(kThreads) adamw_step_by_value(const __grid_constant__ LaunchMeta meta, const StepPointers ptrs);
__global__ void __launch_bounds__(kThreads) sgd_step_from_table(const DeviceTable table, const StepPointers ptrs);
__global__ void __launch_bounds__(kThreads) adamw_step_from_table(const DeviceTable table, const StepPointers ptrs);

}  // namespace lrfused
