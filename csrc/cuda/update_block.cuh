// The device side of the CUDA step: the one chunk walker (vectorised loads and stores, the dtype
// and branch dispatch) that runs any rule's per-element update, and the two ways a block finds its
// tensor and chunk; included by the kernel_*.cu files only (rule_kernels.cuh).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <type_traits>

#include "cuda/launch_meta.cuh"

namespace lrfused {
namespace {

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

template <typename scalar_t>
using opmath_of = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// One element under the rule's update U. kMaster: the update runs on the float32 master copy `m`
// (and float32 state); `p` gets it rounded.
template <typename U, bool kMaster, typename scalar_t, typename state_t, typename Scalars>
__device__ __forceinline__ void rule_element(scalar_t& p, float& m, const scalar_t& g, state_t& s0, state_t& s1,
                                             state_t& s2, const Scalars& s) {
  using opmath_t = opmath_of<scalar_t>;
  opmath_t param = kMaster ? static_cast<opmath_t>(m) : static_cast<opmath_t>(p);
  opmath_t state[kMaxStateTensors] = {0, 0, 0};
  if constexpr (U::loads(0)) {
    state[0] = static_cast<opmath_t>(s0);
  }
  if constexpr (U::loads(1)) {
    state[1] = static_cast<opmath_t>(s1);
  }
  if constexpr (U::loads(2)) {
    state[2] = static_cast<opmath_t>(s2);
  }
  U::apply(param, static_cast<opmath_t>(g), state, s);
  if constexpr (kMaster) {
    m = param;
  }
  p = static_cast<scalar_t>(param);
  if constexpr (U::stores(0)) {
    s0 = static_cast<state_t>(state[0]);
  }
  if constexpr (U::stores(1)) {
    s1 = static_cast<state_t>(state[1]);
  }
  if constexpr (U::stores(2)) {
    s2 = static_cast<state_t>(state[2]);
  }
}

bool __device__ is_aligned(const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

template <typename U>
__device__ __forceinline__ constexpr bool touches(int k) {
  return U::loads(k) || U::stores(k);
}

// Chunk `chunk` of one tensor under Rule: 16-byte vector loads and stores where every pointer the
// update touches is aligned, one element per thread otherwise.
template <typename Rule, typename scalar_t, bool kMaster>
__device__ void rule_chunk(const TensorMeta& t, int64_t chunk, const typename Rule::template Scalars<opmath_of<scalar_t>> s,
                           const TensorFacts facts) {
  static_assert(kMaxStateTensors == 3, "one state pointer per state tensor");
  using state_t = std::conditional_t<kMaster, float, scalar_t>;  // the state's type
  constexpr int kVec = 16 / sizeof(scalar_t);
  using VecT = Vec<scalar_t, kVec>;
  using StateVec = Vec<state_t, kVec>;
  using MasterVec = Vec<float, kVec>;
  scalar_t* p = static_cast<scalar_t*>(t.param);
  const scalar_t* g = static_cast<const scalar_t*>(t.grad);
  state_t* s0 = static_cast<state_t*>(t.state[0]);
  state_t* s1 = static_cast<state_t*>(t.state[1]);
  state_t* s2 = static_cast<state_t*>(t.state[2]);
  float* m = t.master;
  const int64_t begin = chunk * kChunkSize;
  const int64_t end = min(begin + kChunkSize, t.numel);

  Rule::dispatch(s, facts, [&](auto update) {
    using U = decltype(update);
    const bool aligned = is_aligned(p, sizeof(VecT)) && is_aligned(g, sizeof(VecT)) &&
                         (!touches<U>(0) || is_aligned(s0, sizeof(StateVec))) &&
                         (!touches<U>(1) || is_aligned(s1, sizeof(StateVec))) &&
                         (!touches<U>(2) || is_aligned(s2, sizeof(StateVec))) &&
                         (!kMaster || is_aligned(m, sizeof(MasterVec)));
    int64_t scalar_begin = begin;
    if (aligned) {
      const int64_t vec_end = begin + (end - begin) / kVec * kVec;
      for (int64_t i = begin + threadIdx.x * kVec; i < vec_end; i += static_cast<int64_t>(blockDim.x) * kVec) {
        VecT pv = *reinterpret_cast<const VecT*>(p + i);
        const VecT gv = *reinterpret_cast<const VecT*>(g + i);
        StateVec v0, v1, v2;
        MasterVec mv;
        if constexpr (U::loads(0)) {
          v0 = *reinterpret_cast<const StateVec*>(s0 + i);
        }
        if constexpr (U::loads(1)) {
          v1 = *reinterpret_cast<const StateVec*>(s1 + i);
        }
        if constexpr (U::loads(2)) {
          v2 = *reinterpret_cast<const StateVec*>(s2 + i);
        }
        if constexpr (kMaster) {
          mv = *reinterpret_cast<const MasterVec*>(m + i);
        }
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          rule_element<U, kMaster>(pv.v[j], mv.v[j], gv.v[j], v0.v[j], v1.v[j], v2.v[j], s);
        }
        *reinterpret_cast<VecT*>(p + i) = pv;
        if constexpr (U::stores(0)) {
          *reinterpret_cast<StateVec*>(s0 + i) = v0;
        }
        if constexpr (U::stores(1)) {
          *reinterpret_cast<StateVec*>(s1 + i) = v1;
        }
        if constexpr (U::stores(2)) {
          *reinterpret_cast<StateVec*>(s2 + i) = v2;
        }
        if constexpr (kMaster) {
          *reinterpret_cast<MasterVec*>(m + i) = mv;
        }
      }
      scalar_begin = vec_end;
    }
    for (int64_t i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
      state_t unused[kMaxStateTensors];
      float unused_master;
      state_t& r0 = touches<U>(0) ? s0[i] : unused[0];
      state_t& r1 = touches<U>(1) ? s1[i] : unused[1];
      state_t& r2 = touches<U>(2) ? s2[i] : unused[2];
      float& master = kMaster ? m[i] : unused_master;
      rule_element<U, kMaster>(p[i], master, g[i], r0, r1, r2, s);
    }
  });
}

// Chunk `chunk` of a tensor at its group's scheduled values. Thread 0 reads the step, the schedule
// and the tensor's count (as the rule's count policy says) and makes the rule's scalars once.
template <typename Rule>
__device__ __forceinline__ void rule_block(const TensorMeta& t, const GroupConfig& group, int64_t chunk,
                                           const StepPointers& ptrs) {
  __shared__ typename Rule::template Scalars<float> s32;
  __shared__ typename Rule::template Scalars<double> s64;
  __shared__ TensorFacts facts;
  __shared__ bool skip;
  if (threadIdx.x == 0) {
    const float inv_grad_scale = inverse_grad_scale(ptrs.grad_scale);  // a double division: once per block
    // GradScaler found an inf/NaN grad: the whole step is skipped, counts included.
    skip = ptrs.found_inf != nullptr && *ptrs.found_inf != 0.0f;
    const int64_t step = *ptrs.step;
    const ScheduleValue value = schedule_value(group.schedule, kernel_step(group.schedule, step));
    TensorFacts f;
    for (int k = 0; k < kMaxStateTensors; ++k) {
      f.has_state[k] = t.state[k] != nullptr;
    }
    f.first_write = false;
    double count = 0.0;
    if constexpr (Rule::kCount == CountPolicy::kPerParamStep) {
      // The param's own step count plus one (advance_counts_kernel writes it after the launch).
      count = static_cast<double>(*static_cast<const float*>(t.count) + 1.0f);
    } else if constexpr (Rule::kCount == CountPolicy::kFirstWriteFlag) {
      if (!skip && t.state[0] != nullptr && Rule::uses_count(group, value)) {
        // Every block of this tensor reads the flag; a block that runs after another one wrote it
        // still sees this step's value and so also treats the step as the first. (flag == step
        // means "written in this step" because every earlier flag is below the counter: the kernels
        // only advance it, and load_state_dict rewrites flags at or above a loaded counter. So this
        // is the CPU's rule, flag == kNeverWritten, evaluated per block.)
        int64_t* flag = static_cast<int64_t*>(t.count);
        const int64_t first_step = *flag;
        f.first_write = first_step == kNeverWritten || first_step == step;
        if (first_step == kNeverWritten) {
          *flag = step;
        }
      }
    }
    facts = f;
    if (t.dtype == c10::ScalarType::Double) {
      s64 = Rule::template make_scalars<double>(group, value, count, inv_grad_scale);
    } else {
      s32 = Rule::template make_scalars<float>(group, value, count, inv_grad_scale);
    }
  }
  __syncthreads();
  if (skip) {
    return;
  }
  switch (t.dtype) {
    case c10::ScalarType::Float:
      rule_chunk<Rule, float, false>(t, chunk, s32, facts);
      break;
    case c10::ScalarType::Double:
      rule_chunk<Rule, double, false>(t, chunk, s64, facts);
      break;
    case c10::ScalarType::Half:
      if (t.master != nullptr) {
        rule_chunk<Rule, c10::Half, true>(t, chunk, s32, facts);
      } else {
        rule_chunk<Rule, c10::Half, false>(t, chunk, s32, facts);
      }
      break;
    case c10::ScalarType::BFloat16:
      if (t.master != nullptr) {
        rule_chunk<Rule, c10::BFloat16, true>(t, chunk, s32, facts);
      } else {
        rule_chunk<Rule, c10::BFloat16, false>(t, chunk, s32, facts);
      }
      break;
    default:
      break;  // the checks admit no other dtype
  }
}

// A block of a launch whose metadata travels by value.
template <typename Rule>
__device__ __forceinline__ void step_by_value(const LaunchMeta& meta, const StepPointers& ptrs) {
  const TensorMeta& t = meta.tensors[meta.block_tensor[blockIdx.x]];
  rule_block<Rule>(t, meta.groups[t.group], meta.block_chunk[blockIdx.x], ptrs);
}

// A block of a launch over a device table: its tensor is the first whose block_end exceeds the
// block index (binary search).
template <typename Rule>
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
  rule_block<Rule>(t, table.groups[t.group], chunk, ptrs);
}

}  // namespace
}  // namespace lrfused
