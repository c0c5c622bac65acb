// The device side of the CUDA step: each rule's per-chunk update (vectorised loads and stores, the
// dtype and branch dispatch) and the two ways a block finds its tensor and chunk, included by the
// kernel_*.cu files only.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <type_traits>

#include "cuda/launch_meta.cuh"
#include "lrfused/adamw_math.h"
#include "lrfused/sgd_math.h"

namespace lrfused {
namespace {

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
template <int32_t kRule>
__device__ __forceinline__ void rule_block(const TensorMeta& t, const GroupConfig& group, int64_t chunk,
                                           const StepPointers& ptrs) {
  static_assert(kRule == kRuleSGD || kRule == kRuleAdamW, "no update for this rule");
  if constexpr (kRule == kRuleAdamW) {
    adamw_block(t, group, chunk, ptrs);
  } else {
    sgd_block(t, group, chunk, ptrs);
  }
}

// A block of a launch whose metadata travels by value.
template <int32_t kRule>
__device__ __forceinline__ void step_by_value(const LaunchMeta& meta, const StepPointers& ptrs) {
  const TensorMeta& t = meta.tensors[meta.block_tensor[blockIdx.x]];
  rule_block<kRule>(t, meta.groups[t.group], meta.block_chunk[blockIdx.x], ptrs);
}

// A block of a launch over a device table: its tensor is the first whose block_end exceeds the
// block index (binary search).
template <int32_t kRule>
__device__ __forceinline__ void step_from_table(const DeviceTable& table, const StepPointers& ptrs) {
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
  rule_block<kRule>(t, table.groups[t.group], chunk, ptrs);
}

}  // namespace
}  // namespace lrfused
