// CUDA fused step (every update rule): a multi-tensor apply over every tensor of every group and dtype.
//
// Each block updates one chunk of one tensor. When the step fits one launch's argument (up to 160
// tensors, 1,280 chunks, 16 groups), its metadata (tensor pointers, the block -> (tensor, chunk)
// map, the groups' hyperparameters) travels as a __grid_constant__ kernel argument: nothing is
// copied or allocated, and a CUDA graph captures it by value. A bigger eager step copies one table
// to the device instead and still takes one launch; a bigger step under graph capture takes one
// launch per argument-sized part, since a graph would replay the copy from a recycled pinned buffer.
// The schedule is evaluated on the device from the step counter, which a one-thread kernel
// advances after the last launch: no host sync anywhere in the step. A param's own step count (a
// rule with CountPolicy::kPerParamStep, AdamW's for its bias corrections) is read by every block of
// the param and advanced by a small kernel after the launch that holds the param's last chunk.
//
// This file is the host side (which kernel, how many launches, the counts' small kernels); the
// update kernels are in kernel_*.cu (see launch_meta.cuh).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda/launch_meta.cuh"
#include "lrfused/step_args.h"

namespace lrfused {
namespace {

// The params' own step counts of one launch (by value; a rule with CountPolicy::kPerParamStep),
// advanced once all its blocks ran.
struct CountList {
  float* counts[kMaxTensors];
  int32_t size;
};

__global__ void advance_counts_kernel(const CountList list, const float* found_inf) {
  if (found_inf != nullptr && *found_inf != 0.0f) {
    return;  // a skipped step changes no param's count
  }
  for (int32_t i = threadIdx.x; i < list.size; i += blockDim.x) {
    *list.counts[i] += 1.0f;
  }
}

// The same for a device table's tensors (all of one rule, launched only for a per-param count).
__global__ void advance_table_counts_kernel(const DeviceTable table, const float* found_inf) {
  if (found_inf != nullptr && *found_inf != 0.0f) {
    return;
  }
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < table.num_tensors) {
    *static_cast<float*>(table.tensors[i].count) += 1.0f;
  }
}

__global__ void advance_step_kernel(int64_t* step_ptr, const float* found_inf, bool count_skipped_steps) {
  if (count_skipped_steps || found_inf == nullptr || *found_inf == 0.0f) {
    *step_ptr += 1;
  }
}

int64_t blocks_of(const KernelTensor& t) { return (t.numel + kChunkSize - 1) / kChunkSize; }

// The update rule every group of the step follows (one optimizer's groups share it): the kernel to
// launch. Checked before any launch (an unknown rule by dispatch_rule).
int32_t rule_of(const KernelStep& step) {
  const int32_t rule = step.groups[0].rule;
  for (const GroupConfig& group : step.groups) {
    TORCH_CHECK(group.rule == rule, "lrfused: one CUDA step runs one update rule, got rules ", rule, " and ",
                group.rule, " (one optimizer's groups share its rule)");
  }
  return rule;
}

template <typename Rule>
constexpr bool kCountsPerParam = Rule::kCount == CountPolicy::kPerParamStep;

// Fills LaunchMeta tensor by tensor and chunk by chunk, launching whenever a table is full.
template <typename Rule>
class Launcher {
 public:
  Launcher(const KernelStep& step, cudaStream_t stream)
      : step_(step),
        stream_(stream),
        ptrs_{step.step, step.grad_scale, step.found_inf},
        group_slot_(step.groups.size(), -1) {}

  void add(const KernelTensor& t) {
    if (t.numel > 0) {
      int slot = add_tensor(t);
      const int64_t chunks = blocks_of(t);
      for (int64_t c = 0; c < chunks; ++c) {
        if (num_blocks_ == kMaxBlocks) {
          flush();
          slot = add_tensor(t);
        }
        meta_.block_tensor[num_blocks_] = slot;
        meta_.block_chunk[num_blocks_] = static_cast<int32_t>(c);
        ++num_blocks_;
      }
    }
    if constexpr (kCountsPerParam<Rule>) {
      // With the launch that holds the tensor's last chunk (an empty tensor: the current one).
      if (counts_.size == kMaxTensors) {
        flush();
      }
      counts_.counts[counts_.size++] = static_cast<float*>(t.count);
    }
  }

  void flush() {
    if (num_blocks_ > 0) {
      launch_by_value<Rule>(num_blocks_, stream_, meta_, ptrs_);
    }
    if (counts_.size > 0) {
      advance_counts_kernel<<<1, 128, 0, stream_>>>(counts_, ptrs_.found_inf);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    num_tensors_ = 0;
    num_blocks_ = 0;
    num_groups_ = 0;
    counts_.size = 0;
    std::fill(group_slot_.begin(), group_slot_.end(), -1);
  }

 private:
  int add_tensor(const KernelTensor& t) {
    if (num_tensors_ == kMaxTensors || (group_slot_[t.group] < 0 && num_groups_ == kMaxGroups)) {
      flush();
    }
    if (group_slot_[t.group] < 0) {
      meta_.groups[num_groups_] = step_.groups[t.group];
      group_slot_[t.group] = num_groups_++;
    }
    TensorMeta& meta = meta_.tensors[num_tensors_];
    meta = t;
    meta.group = group_slot_[t.group];
    return num_tensors_++;
  }

  const KernelStep& step_;
  cudaStream_t stream_;
  StepPointers ptrs_;
  std::vector<int> group_slot_;  // group index -> slot in meta_.groups, -1 if absent
  LaunchMeta meta_;
  CountList counts_{{}, 0};
  int num_tensors_ = 0;
  int num_blocks_ = 0;
  int num_groups_ = 0;
};

// Whether the step's non-empty tensors fit one launch's argument.
template <typename Rule>
bool fits_one_launch(const KernelStep& step) {
  int64_t tensors = 0;
  int64_t blocks = 0;
  for (const KernelTensor& t : step.tensors) {
    // (an empty tensor with a per-param count still takes a place in the launch's count list)
    tensors += t.numel > 0 || kCountsPerParam<Rule>;
    blocks += blocks_of(t);
  }
  return tensors <= kMaxTensors && blocks <= kMaxBlocks && step.groups.size() <= kMaxGroups;
}

bool is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

static_assert(sizeof(TensorMeta) % alignof(GroupConfig) == 0 && sizeof(GroupConfig) % alignof(int64_t) == 0 &&
                  alignof(TensorMeta) >= alignof(GroupConfig),
              "the device table packs tensors, groups and block ends back to back");

// One launch for any number of tensors: the table is written to pinned memory and copied to the
// device on the step's stream (the host allocator keeps the pinned block until the copy is done;
// the device block returns to the caching allocator on the same stream, after the kernel).
template <typename Rule>
void launch_from_device_table(const KernelStep& step, const StepPointers& ptrs, cudaStream_t stream) {
  std::vector<TensorMeta> tensors;
  std::vector<int64_t> block_end;
  tensors.reserve(step.tensors.size());
  block_end.reserve(step.tensors.size());
  int64_t blocks = 0;
  for (const KernelTensor& t : step.tensors) {
    // (an empty tensor has no blocks: the search below never lands on it, but its count advances)
    tensors.push_back(t);
    blocks += blocks_of(t);
    block_end.push_back(blocks);
  }
  if (tensors.empty()) {
    return;
  }
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max() &&
                  tensors.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
              "a step of ", blocks, " chunks of ", kChunkSize, " elements over ", tensors.size(),
              " tensors is more than one launch can take");
  const size_t tensor_bytes = tensors.size() * sizeof(TensorMeta);
  const size_t group_bytes = step.groups.size() * sizeof(GroupConfig);
  const size_t end_bytes = block_end.size() * sizeof(int64_t);
  const int64_t total_bytes = static_cast<int64_t>(tensor_bytes + group_bytes + end_bytes);
  at::Tensor host = at::empty({total_bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  auto* h = static_cast<uint8_t*>(host.data_ptr());
  std::memcpy(h, tensors.data(), tensor_bytes);
  std::memcpy(h + tensor_bytes, step.groups.data(), group_bytes);
  std::memcpy(h + tensor_bytes + group_bytes, block_end.data(), end_bytes);
  at::Tensor device = at::empty({total_bytes}, at::TensorOptions().dtype(at::kByte).device(step.device));
  device.copy_(host, /*non_blocking=*/true);
  const auto* d = static_cast<const uint8_t*>(device.const_data_ptr());
  const DeviceTable table{reinterpret_cast<const TensorMeta*>(d), reinterpret_cast<const GroupConfig*>(d + tensor_bytes),
                          reinterpret_cast<const int64_t*>(d + tensor_bytes + group_bytes),
                          static_cast<int32_t>(tensors.size())};
  if (blocks > 0) {
    launch_from_table<Rule>(static_cast<unsigned int>(blocks), stream, table, ptrs);
  }
  if constexpr (kCountsPerParam<Rule>) {
    constexpr int kCountThreads = 256;
    const auto count_blocks = static_cast<unsigned int>((tensors.size() + kCountThreads - 1) / kCountThreads);
    advance_table_counts_kernel<<<count_blocks, kCountThreads, 0, stream>>>(table, ptrs.found_inf);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace

void fused_step_cuda(const KernelStep& step) {
  const c10::cuda::CUDAGuard guard(step.device);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (!step.groups.empty()) {  // (else there are no tensors either)
    dispatch_rule(rule_of(step), [&](auto tag) {
      using Rule = typename decltype(tag)::type;
      if (!fits_one_launch<Rule>(step) && !is_capturing(stream)) {
        launch_from_device_table<Rule>(step, StepPointers{step.step, step.grad_scale, step.found_inf}, stream);
      } else {
        Launcher<Rule> launcher(step, stream);
        for (const KernelTensor& t : step.tensors) {
          launcher.add(t);
        }
        launcher.flush();
      }
    });
  }
  advance_step_kernel<<<1, 1, 0, stream>>>(step.step, step.found_inf, step.count_skipped_steps);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace lrfused