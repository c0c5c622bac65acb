// CPU fused SGD step: one parallel region over every element of every tensor.
//
// The tensors are laid end to end in a virtual flat index space; at::parallel_for splits that space
// into equal contiguous ranges, one per thread, so work is balanced whatever the tensor sizes, and
// each thread walks the tensors its range covers with a branch-free, vectorisable inner loop.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "lrfused/step_args.h"

namespace lrfused {
namespace {

// Below this many elements a step runs on one thread: spawning costs more than it saves.
constexpr int64_t kGrainSize = 32768;

struct TensorPlan {
  void* param;
  const void* grad;
  void* buf;  // nullptr when momentum is off this step
  at::ScalarType dtype;
  int64_t group;
  UpdateFlags flags;
};

struct GroupStep {
  StepScalars<float> f32;
  StepScalars<double> f64;
};

template <typename scalar_t>
using opmath_of = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

template <typename scalar_t>
void update_range(const TensorPlan& t, const StepScalars<opmath_of<scalar_t>>& s, int64_t begin, int64_t end) {
  using opmath_t = opmath_of<scalar_t>;
  scalar_t* __restrict__ p = static_cast<scalar_t*>(t.param);
  const scalar_t* __restrict__ g = static_cast<const scalar_t*>(t.grad);
  scalar_t* __restrict__ b = static_cast<scalar_t*>(t.buf);
  dispatch_update_flags(t.flags, [&](auto decay, auto momentum, auto first, auto nesterov) {
    for (int64_t i = begin; i < end; ++i) {
      opmath_t param = static_cast<opmath_t>(p[i]);
      opmath_t buf = 0;
      if constexpr (decltype(momentum)::value && !decltype(first)::value) {
        buf = static_cast<opmath_t>(b[i]);
      }
      sgd_update<decltype(decay)::value, decltype(momentum)::value, decltype(first)::value,
                 decltype(nesterov)::value>(param, static_cast<opmath_t>(g[i]), buf, s);
      p[i] = static_cast<scalar_t>(param);
      if constexpr (decltype(momentum)::value) {
        b[i] = static_cast<scalar_t>(buf);
      }
    }
  });
}

void update_tensor_range(const TensorPlan& t, const GroupStep& s, int64_t begin, int64_t end) {
  switch (t.dtype) {
    case at::kFloat:
      return update_range<float>(t, s.f32, begin, end);
    case at::kDouble:
      return update_range<double>(t, s.f64, begin, end);
    case at::kHalf:
      return update_range<c10::Half>(t, s.f32, begin, end);
    case at::kBFloat16:
      return update_range<c10::BFloat16>(t, s.f32, begin, end);
    default:
      TORCH_CHECK(false, "unreachable: dtype ", t.dtype, " passed the checks");
  }
}

}  // namespace

void fused_sgd_step_cpu(const StepArgs& args) {
  int64_t* step_ptr = args.step.data_ptr<int64_t>();
  const int64_t step = *step_ptr;

  std::vector<GroupStep> group_steps;
  std::vector<bool> group_uses_momentum;
  group_steps.reserve(args.groups.size());
  for (const GroupConfig& g : args.groups) {
    const ScheduleValue v = schedule_value(g.schedule, kernel_step(g.schedule, step));
    group_steps.push_back({make_step_scalars<float>(g, v), make_step_scalars<double>(g, v)});
    group_uses_momentum.push_back(v.momentum != 0.0);
  }

  const size_t n = args.params.size();
  std::vector<TensorPlan> plans(n);
  // Each tensor's [start, end) in the virtual flat index space.
  std::vector<int64_t> starts(n), ends(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t group = args.group_of[i];
    const GroupConfig& g = args.groups[group];
    const bool momentum = group_uses_momentum[group];
    const bool first = momentum && *args.momentum_first_steps[i].data_ptr<int64_t>() == kNeverWritten;
    plans[i] = TensorPlan{args.params[i].data_ptr(),
                          args.grads[i].data_ptr(),
                          momentum ? args.momentum_buffers[i].data_ptr() : nullptr,
                          args.params[i].scalar_type(),
                          group,
                          UpdateFlags{g.weight_decay != 0.0, momentum, first, g.nesterov}};
    starts[i] = total;
    total += args.params[i].numel();
    ends[i] = total;
  }

  at::parallel_for(0, total, kGrainSize, [&](int64_t begin, int64_t end) {
    // First tensor whose range reaches past `begin`; empty tensors are skipped by the loop.
    size_t t = std::upper_bound(ends.begin(), ends.end(), begin) - ends.begin();
    for (int64_t pos = begin; pos < end && t < n; ++t) {
      const int64_t stop = std::min(end, ends[t]);
      if (stop > pos) {
        update_tensor_range(plans[t], group_steps[plans[t].group], pos - starts[t], stop - starts[t]);
        pos = stop;
      }
    }
  });

  for (size_t i = 0; i < n; ++i) {
    if (plans[i].flags.first) {
      *args.momentum_first_steps[i].data_ptr<int64_t>() = step;
    }
  }
  *step_ptr = step + 1;
}

}  // namespace lrfused
