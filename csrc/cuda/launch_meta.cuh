// What the host hands the CUDA update kernels: a launch's metadata (by value, or as a device table
// for any number of tensors) and the step's device pointers; and the launch of each rule's kernels,
// one per rule and launch path, each in its own translation unit (kernel_<rule>_<path>.cu, see
// rule_kernels.cuh) so that the build compiles them in parallel. fused_step_cuda.cu calls them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "lrfused/rules/rule_list.h"
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
// 27,264 bytes with 160 tensors of 72 and 16 groups of 344 (setup.py says so: keep it in step). A
// GroupConfig has a fixed rule_params array, so a new rule does not change this.
static_assert(sizeof(GroupConfig) == 344 && sizeof(TensorMeta) == 72 && sizeof(LaunchMeta) == 27264,
              "the stated launch metadata size (here and in setup.py) is out of date");
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

// Launches Rule's update kernel (every group of a launch follows it); specialised for each rule of
// the list in its kernel_<rule>_<path>.cu.
template <typename Rule>
void launch_by_value(int num_blocks, cudaStream_t stream, const LaunchMeta& meta, const StepPointers& ptrs);
template <typename Rule>
void launch_from_table(unsigned int num_blocks, cudaStream_t stream, const DeviceTable& table,
                       const StepPointers& ptrs);
#define LRFUSED_DECLARE_LAUNCHES(Rule, name)                                                                \
  template <>                                                                                              \
  void launch_by_value<Rule>(int num_blocks, cudaStream_t stream, const LaunchMeta& meta,                  \
                             const StepPointers& ptrs);                                                    \
  template <>                                                                                              \
  void launch_from_table<Rule>(unsigned int num_blocks, cudaStream_t stream, const DeviceTable& table,     \
                               const StepPointers& ptrs);
LRFUSED_FOR_EACH_RULE(LRFUSED_DECLARE_LAUNCHES)
#undef LRFUSED_DECLARE_LAUNCHES

}  // namespace lrfused
