// A rule's two update kernels (<name>_step_by_value, <name>_step_from_table) and their launches, each
// made by one line in its own translation unit: kernel_<name>_by_value.cu, kernel_<name>_from_table.cu.
#pragma once

#include <c10/cuda/CUDAException.h>

#include "cuda/update_block.cuh"

#define LRFUSED_BY_VALUE_KERNEL(Rule, name)                                                                    \
  __global__ void __launch_bounds__(kThreads)                                                                  \
      name##_step_by_value(const __grid_constant__ LaunchMeta meta, const StepPointers ptrs) {                 \
    step_by_value<Rule>(meta, ptrs);                                                                           \
  }                                                                                                            \
  template <>                                                                                                  \
  void launch_by_value<Rule>(int num_blocks, cudaStream_t stream, const LaunchMeta& meta,                      \
                             const StepPointers& ptrs) {                                                       \
    name##_step_by_value<<<num_blocks, kThreads, 0, stream>>>(meta, ptrs);                                     \
    C10_CUDA_KERNEL_LAUNCH_CHECK();                                                                            \
  }

#define LRFUSED_FROM_TABLE_KERNEL(Rule, name)                                                                  \
  __global__ void __launch_bounds__(kThreads) name##_step_from_table(const DeviceTable table,                   \
                                                                     const StepPointers ptrs) {                \
    step_from_table<Rule>(table, ptrs);                                                                        \
  }                                                                                                            \
  template <>                                                                                                  \
  void launch_from_table<Rule>(unsigned int num_blocks, cudaStream_t stream, const DeviceTable& table,         \
                               const StepPointers& ptrs) {                                                     \
    name##_step_from_table<<<num_blocks, kThreads, 0, stream>>>(table, ptrs);                                  \
    C10_CUDA_KERNEL_LAUNCH_CHECK();                                                                            \
  }
