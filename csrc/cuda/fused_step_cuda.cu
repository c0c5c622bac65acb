// CUDA fused step (every update rule): a multi-tensor apply over every tensor of every group and dtype.
//
// Each block updates one chunk of one tensor. When the step fits one launch's argument (up to 160
// tensors, 1,280 chunks, 16 groups), its metadata (tensor pointers, the block -> (tensor, chunk)
// map, the groups' hyperparameters) travels as a __grid_constant__ kernel argument: nothing is
// copied or allocated, and a CUDA graph captures it by value. A bigger eager step copies one table
// to the device instead and still takes one launch; a bigger step under graph capture takes one
// launch per argument-sized part, since a graph would replay the copy from a recycled pinned buffer.
// The schedule is evaluated on the device from the step counter, which a one-thread kernel
// advances after the last launch: no host sync anywhere in the step. An AdamW param's own step count
// (its bias corrections) is read by every block of the param and advanced by a small kernel after
// the launch that holds the param's last chunk.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "lrfused/adamw_math.h"
#include "lrfused/sgd_math.h"
#include "lrfused/step_args.h"

namespace lrfused {
namespace {

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

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

template <typename scalar_t>
using opmath_of = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// kMaster: the update runs on the float32 master copy `m` (and a float32 buffer); `p` gets it rounded.
template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, bool kMaster, typename scalar_t,
          typename state_t, typename opmath_t>
__device__ __forceinline__ void update_element(scalar_t& p, float& m, const scalar_t& g, state_t& b,
                                               const StepScalars<opmath_t>& s) {
  opmath_t param = kMaster ? static_cast<opmath_t>(m) : static_cast<opmath_t>(p);
  opmath_t buf = 0;
  if constexpr (kMomentum && !kFirst) {
    buf = static_cast<opmath_t>(b);
  }
  sgd_update<kDecay, kMomentum, kFirst, kNesterov>(param, static_cast<opmath_t>(g), buf, s);
  if constexpr (kMaster) {
    m = param;
  }
  p = static_cast<scalar_t>(param);
  if constexpr (kMomentum) {
    b = static_cast<state_t>(buf);
  }
}

bool __device__ is_aligned(const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

template <typename scalar_t, bool kMaster>
__device__ void sgd_chunk(const TensorMeta& t, int64_t chunk, const StepScalars<opmath_of<scalar_t>>& s,
                             UpdateFlags flags) {
  using state_t = std::conditional_t<kMaster, float, scalar_t>;  // the buffer's type
  constexpr int kVec = 16 / sizeof(scalar_t);
  using VecT = Vec<scalar_t, kVec>;
  using StateVec = Vec<state_t, kVec>;
  using MasterVec = Vec<float, kVec>;
  scalar_t* p = static_cast<scalar_t*>(t.param);
  const scalar_t* g = static_cast<const scalar_t*>(t.grad);
  state_t* b = static_cast<state_t*>(t.state[0]);
  float* m = t.master;
  const int64_t begin = chunk * kChunkSize;
  const int64_t end = min(begin + kChunkSize, t.numel);
  const bool aligned = is_aligned(p, sizeof(VecT)) && is_aligned(g, sizeof(VecT)) &&
                       (!flags.momentum || is_aligned(b, sizeof(StateVec))) &&
                       (!kMaster || is_aligned(m, sizeof(MasterVec)));

  dispatch_update_flags(flags, [&](auto decay, auto momentum, auto first, auto nesterov) {
    constexpr bool kDecay = decltype(decay)::value;
    constexpr bool kMomentum = decltype(momentum)::value;
    constexpr bool kFirst = decltype(first)::value;
    constexpr bool kNesterov = decltype(nesterov)::value;
    int64_t scalar_begin = begin;
    if (aligned) {
      const int64_t vec_end = begin + (end - begin) / kVec * kVec;
      for (int64_t i = begin + threadIdx.x * kVec; i < vec_end; i += static_cast<int64_t>(blockDim.x) * kVec) {
        VecT pv = *reinterpret_cast<const VecT*>(p + i);
        const VecT gv = *reinterpret_cast<const VecT*>(g + i);
        StateVec bv;
        MasterVec mv;
        if constexpr (kMomentum && !kFirst) {
          bv = *reinterpret_cast<const StateVec*>(b + i);
        }
        if constexpr (kMaster) {
          mv = *reinterpret_cast<const MasterVec*>(m + i);
        }
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          update_element<kDecay, kMomentum, kFirst, kNesterov, kMaster>(pv.v[j], mv.v[j], gv.v[j], bv.v[j], s);
        }
        *reinterpret_cast<VecT*>(p + i) = pv;
        if constexpr (kMomentum) {
          *reinterpret_cast<StateVec*>(b + i) = bv;
        }
        if constexpr (kMaster) {
          *reinterpret_cast<MasterVec*>(m + i) = mv;
        }
      }
      scalar_begin = vec_end;
    }
    for (int64_t i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
      state_t unused_buf;
      float unused_master;
      state_t& buf = kMomentum ? b[i] : unused_buf;
      float& master = kMaster ? m[i] : unused_master;
      update_element<kDecay, kMomentum, kFirst, kNesterov, kMaster>(p[i], master, g[i], buf, s);
    }
  });
}

template <bool kDecay, bool kAmsgrad, bool kLerpFromStart, bool kMaster, typename scalar_t, typename state_t,
          typename opmath_t>
__device__ __forceinline__ void adamw_element(scalar_t& p, float& m, const scalar_t& g, state_t& exp_avg,
                                              state_t& exp_avg_sq, state_t& max_exp_avg_sq,
                                              const AdamWScalars<opmath_t>& s) {
  opmath_t param = kMaster ? static_cast<opmath_t>(m) : static_cast<opmath_t>(p);
  opmath_t first = static_cast<opmath_t>(exp_avg);
  opmath_t second = static_cast<opmath_t>(exp_avg_sq);
  opmath_t second_max = kAmsgrad ? static_cast<opmath_t>(max_exp_avg_sq) : opmath_t(0);
  adamw_update<kDecay, kAmsgrad, kLerpFromStart>(param, static_cast<opmath_t>(g), first, second, second_max, s);
  if constexpr (kMaster) {
    m = param;
  }
  p = static_cast<scalar_t>(param);
  exp_avg = static_cast<state_t>(first);
  exp_avg_sq = static_cast<state_t>(second);
  if constexpr (kAmsgrad) {
    max_exp_avg_sq = static_cast<state_t>(second_max);
  }
}

template <typename scalar_t, bool kMaster>
__device__ void adamw_chunk(const TensorMeta& t, int64_t chunk, const AdamWScalars<opmath_of<scalar_t>>& s) {
  using state_t = std::conditional_t<kMaster, float, scalar_t>;  // the moments' type
  constexpr int kVec = 16 / sizeof(scalar_t);
  using VecT = Vec<scalar_t, kVec>;
  using StateVec = Vec<state_t, kVec>;
  using MasterVec = Vec<float, kVec>;
  scalar_t* p = static_cast<scalar_t*>(t.param);
  const scalar_t* g = static_cast<const scalar_t*>(t.grad);
  state_t* e1 = static_cast<state_t*>(t.state[0]);
  state_t* e2 = static_cast<state_t*>(t.state[1]);
  state_t* em = static_cast<state_t*>(t.state[2]);
  float* m = t.master;
  const int64_t begin = chunk * kChunkSize;
  const int64_t end = min(begin + kChunkSize, t.numel);
  const bool aligned = is_aligned(p, sizeof(VecT)) && is_aligned(g, sizeof(VecT)) && is_aligned(e1, sizeof(StateVec)) &&
                       is_aligned(e2, sizeof(StateVec)) && (!s.amsgrad || is_aligned(em, sizeof(StateVec))) &&
                       (!kMaster || is_aligned(m, sizeof(MasterVec)));

  dispatch_adamw_flags(s, [&](auto decay, auto amsgrad, auto lerp_from_start) {
    constexpr bool kDecay = decltype(decay)::value;
    constexpr bool kAmsgrad = decltype(amsgrad)::value;
    constexpr bool kLerpFromStart = decltype(lerp_from_start)::value;
    int64_t scalar_begin = begin;
    if (aligned) {
      const int64_t vec_end = begin + (end - begin) / kVec * kVec;
      for (int64_t i = begin + threadIdx.x * kVec; i < vec_end; i += static_cast<int64_t>(blockDim.x) * kVec) {
        VecT pv = *reinterpret_cast<const VecT*>(p + i);
        const VecT gv = *reinterpret_cast<const VecT*>(g + i);
        StateVec v1 = *reinterpret_cast<const StateVec*>(e1 + i);
        StateVec v2 = *reinterpret_cast<const StateVec*>(e2 + i);
        StateVec vm;
        MasterVec mv;
        if constexpr (kAmsgrad) {
          vm = *reinterpret_cast<const StateVec*>(em + i);
        }
        if constexpr (kMaster) {
          mv = *reinterpret_cast<const MasterVec*>(m + i);
        }
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          adamw_element<kDecay, kAmsgrad, kLerpFromStart, kMaster>(pv.v[j], mv.v[j], gv.v[j], v1.v[j], v2.v[j], vm.v[j], s);
        }
        *reinterpret_cast<VecT*>(p + i) = pv;
        *reinterpret_cast<StateVec*>(e1 + i) = v1;
        *reinterpret_cast<StateVec*>(e2 + i) = v2;
        if constexpr (kAmsgrad) {
          *reinterpret_cast<StateVec*>(em + i) = vm;
        }
        if constexpr (kMaster) {
          *reinterpret_cast<MasterVec*>(m + i) = mv;
        }
      }
      scalar_begin = vec_end;
    }
    for (int64_t i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
      state_t unused_state;
      float unused_master;
      state_t& max_sq = kAmsgrad ? em[i] : unused_state;
      float& master = kMaster ? m[i] : unused_master;
      adamw_element<kDecay, kAmsgrad, kLerpFromStart, kMaster>(p[i], master, g[i], e1[i], e2[i], max_sq, s);
    }
  });
}

// Chunk `chunk` of an SGD tensor at its group's scheduled values.
__device__ __forceinline__ void sgd_block(const TensorMeta& t, const GroupConfig& group, int64_t chunk,
                                          const StepPointers& ptrs) {
  __shared__ ScheduleValue value;
  __shared__ float inv_grad_scale;
  __shared__ bool first;
  __shared__ bool skip;
  if (threadIdx.x == 0) {
    inv_grad_scale = inverse_grad_scale(ptrs.grad_scale);  // a double division: once per block
    // GradScaler found an inf/NaN grad: the whole step is skipped, first-step flags included.
    skip = ptrs.found_inf != nullptr && *ptrs.found_inf != 0.0f;
    const int64_t step = *ptrs.step;
    value = schedule_value(group.schedule, kernel_step(group.schedule, step));
    first = false;
    if (!skip && value.momentum != 0.0 && t.state[0] != nullptr) {
      // Every block of this tensor reads the flag; a block that runs after another one wrote it
      // still sees this step's value and so also treats the step as the first. (flag == step
      // means "written in this step" because every earlier flag is below the counter: the kernels
      // only advance it, and load_state_dict rewrites flags at or above a loaded counter. So this
      // is the CPU's rule, flag == kNeverWritten, evaluated per block.)
      int64_t* flag = static_cast<int64_t*>(t.count);
      const int64_t first_step = *flag;
      first = first_step == kNeverWritten || first_step == step;
      if (first_step == kNeverWritten) {
        *flag = step;
      }
    }
  }
  __syncthreads();
  if (skip) {
    return;
  }

  const UpdateFlags flags{group.weight_decay != 0.0, value.momentum != 0.0 && t.state[0] != nullptr, first,
                          group.nesterov};
  switch (t.dtype) {
    case c10::ScalarType::Float:
      sgd_chunk<float, false>(t, chunk, make_step_scalars<float>(group, value, inv_grad_scale), flags);
      break;
    case c10::ScalarType::Double:
      sgd_chunk<double, false>(t, chunk, make_step_scalars<double>(group, value, inv_grad_scale), flags);
      break;
    case c10::ScalarType::Half:
      if (t.master != nullptr) {
        sgd_chunk<c10::Half, true>(t, chunk, make_step_scalars<float>(group, value, inv_grad_scale), flags);
      } else {
        sgd_chunk<c10::Half, false>(t, chunk, make_step_scalars<float>(group, value, inv_grad_scale), flags);
      }
      break;
    case c10::ScalarType::BFloat16:
      if (t.master != nullptr) {
        sgd_chunk<c10::BFloat16, true>(t, chunk, make_step_scalars<float>(group, value, inv_grad_scale), flags);
      } else {
        sgd_chunk<c10::BFloat16, false>(t, chunk, make_step_scalars<float>(group, value, inv_grad_scale), flags);
      }
      break;
    default:
      break;  // the checks admit no other dtype
  }
}

// Chunk `chunk` of an AdamW tensor: the group's scheduled LR and beta1, the tensor's own step count
// plus one for the bias corrections (advance_counts_kernel writes it after the launch).
__device__ __forceinline__ void adamw_block(const TensorMeta& t, const GroupConfig& group, int64_t chunk,
                                            const StepPointers& ptrs) {
  __shared__ AdamWScalars<float> s32;
  __shared__ AdamWScalars<double> s64;
  __shared__ bool skip;
  if (threadIdx.x == 0) {
    skip = ptrs.found_inf != nullptr && *ptrs.found_inf != 0.0f;
    const ScheduleValue value = schedule_value(group.schedule, kernel_step(group.schedule, *ptrs.step));
    const double param_step = static_cast<double>(*static_cast<const float*>(t.count) + 1.0f);
    const float inv_grad_scale = inverse_grad_scale(ptrs.grad_scale);
    if (t.dtype == c10::ScalarType::Double) {
      s64 = make_adamw_scalars<double>(group, value, param_step, inv_grad_scale);
    } else {
      s32 = make_adamw_scalars<float>(group, value, param_step, inv_grad_scale);
    }
  }
  __syncthreads();
  if (skip) {
    return;
  }
  switch (t.dtype) {
    case c10::ScalarType::Float:
      adamw_chunk<float, false>(t, chunk, s32);
      break;
    case c10::ScalarType::Double:
      adamw_chunk<double, false>(t, chunk, s64);
      break;
    case c10::ScalarType::Half:
      if (t.master != nullptr) {
        adamw_chunk<c10::Half, true>(t, chunk, s32);
      } else {
        adamw_chunk<c10::Half, false>(t, chunk, s32);
      }
      break;
    case c10::ScalarType::BFloat16:
      if (t.master != nullptr) {
        adamw_chunk<c10::BFloat16, true>(t, chunk, s32);
      } else {
        adamw_chunk<c10::BFloat16, false>(t, chunk, s32);
      }
      break;
    default:
      break;  // the checks admit no other dtype
  }
}

__device__ __forceinline__ void update_block(const TensorMeta& t, const GroupConfig& group, int64_t chunk,
                                             const StepPointers& ptrs) {
  if (group.rule == kRuleAdamW) {
    adamw_block(t, group, chunk, ptrs);
  } else {
    sgd_block(t, group, chunk, ptrs);
  }
}

__global__ void __launch_bounds__(kThreads)
    fused_step_kernel(const __grid_constant__ LaunchMeta meta, const StepPointers ptrs) {
  const TensorMeta& t = meta.tensors[meta.block_tensor[blockIdx.x]];
  update_block(t, meta.groups[t.group], meta.block_chunk[blockIdx.x], ptrs);
}

// A step's metadata in device memory, for any number of tensors.
struct DeviceTable {
  const TensorMeta* tensors;  // group indexes `groups`
  const GroupConfig* groups;
  const int64_t* block_end;   // per tensor: blocks of it and of every tensor before it
  int32_t num_tensors;
};

__global__ void __launch_bounds__(kThreads) fused_step_table_kernel(const DeviceTable table, const StepPointers ptrs) {
  // This block's tensor: the first whose block_end exceeds the block index (binary search).
  const int64_t block = blockIdx.x;
  int32_t lo = 0;
  int32_t hi = table.num_tensors - 1;
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (table.block_end[mid] > block) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  const TensorMeta& t = table.tensors[lo];
  const int64_t chunk = block - (lo == 0 ? 0 : table.block_end[lo - 1]);
  update_block(t, table.groups[t.group], chunk, ptrs);
}

// The AdamW params' own step counts of one launch (by value), advanced once all its blocks ran.
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

// The same for a device table's tensors (those of AdamW groups).
__global__ void advance_table_counts_kernel(const DeviceTable table, const float* found_inf) {
  if (found_inf != nullptr && *found_inf != 0.0f) {
    return;
  }
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < table.num_tensors && table.groups[table.tensors[i].group].rule == kRuleAdamW) {
    *static_cast<float*>(table.tensors[i].count) += 1.0f;
  }
}

__global__ void advance_step_kernel(int64_t* step_ptr, const float* found_inf, bool count_skipped_steps) {
  if (count_skipped_steps || found_inf == nullptr || *found_inf == 0.0f) {
    *step_ptr += 1;
  }
}

int64_t blocks_of(const KernelTensor& t) { return (t.numel + kChunkSize - 1) / kChunkSize; }

// Fills LaunchMeta tensor by tensor and chunk by chunk, launching whenever a table is full.
class Launcher {
 public:
  Launcher(const KernelStep& step, cudaStream_t stream)
      : step_(step),
        stream_(stream),
        ptrs_{step.step, step.grad_scale, step.found_inf},
        group_slot_(step.groups.size(), -1) {}

  void add(const KernelTensor& t) {
    const bool counts = step_.groups[t.group].rule == kRuleAdamW;
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
    if (counts) {
      // With the launch that holds the tensor's last chunk (an empty tensor: the current one).
      if (counts_.size == kMaxTensors) {
        flush();
      }
      counts_.counts[counts_.size++] = static_cast<float*>(t.count);
    }
  }

  void flush() {
    if (num_blocks_ > 0) {
      fused_step_kernel<<<num_blocks_, kThreads, 0, stream_>>>(meta_, ptrs_);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
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
bool fits_one_launch(const KernelStep& step) {
  int64_t tensors = 0;
  int64_t blocks = 0;
  for (const KernelTensor& t : step.tensors) {
    // (an empty AdamW tensor still takes a place in the launch's count list)
    tensors += t.numel > 0 || step.groups[t.group].rule == kRuleAdamW;
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
void launch_from_device_table(const KernelStep& step, const StepPointers& ptrs, cudaStream_t stream) {
  std::vector<TensorMeta> tensors;
  std::vector<int64_t> block_end;
  tensors.reserve(step.tensors.size());
  block_end.reserve(step.tensors.size());
  int64_t blocks = 0;
  bool counts = false;
  for (const KernelTensor& t : step.tensors) {
    // (an empty tensor has no blocks: the search below never lands on it, but its count advances)
    tensors.push_back(t);
    blocks += blocks_of(t);
    block_end.push_back(blocks);
    counts = counts || step.groups[t.group].rule == kRuleAdamW;
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
    fused_step_table_kernel<<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(table, ptrs);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (counts) {
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
  if (!fits_one_launch(step) && !is_capturing(stream)) {
    launch_from_device_table(step, StepPointers{step.step, step.grad_scale, step.found_inf}, stream);
  } else {
    Launcher launcher(step, stream);
    for (const KernelTensor& t : step.tensors) {
      launcher.add(t);
    }
    launcher.flush();
  }
  advance_step_kernel<<<1, 1, 0, stream>>>(step.step, step.found_inf, step.count_skipped_steps);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace lrfused
