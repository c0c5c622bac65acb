// CPU fused SGD step: one parallel region over every element of every tensor.
//
// The tensors are laid end to end in a virtual flat index space; at::parallel_for splits that space
// into equal contiguous ranges, one per thread, so work is balanced whatever the tensor sizes, and
// each thread walks the tensors its range covers with a branch-free, vectorisable inner loop.
#include <ATen/Parallel.h>

#include <algorithm>

#include "cpu/cpu_kernel.h"
#include "lrfused/step_args.h"

namespace lrfused {
namespace {

// Below this many elements a step runs on one thread: spawning costs more than it saves.
constexpr int64_t kGrainSize = 32768;

UpdateRangeFn pick_update_range() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx2")) {
    return update_tensor_range_avx2;
  }
#endif
  return update_tensor_range_default;
}

}  // namespace

void fused_sgd_step_cpu(const StepArgs& args) {
  int64_t* step_ptr = args.step.data_ptr<int64_t>();
  const int64_t step = *step_ptr;
  if (args.found_inf.defined() && *args.found_inf.const_data_ptr<float>() != 0.0f) {
    // GradScaler found an inf/NaN grad: nothing is updated, the schedule moves on if asked to.
    *step_ptr = args.count_skipped_steps ? step + 1 : step;
    return;
  }
  const float inv_grad_scale =
      inverse_grad_scale(args.grad_scale.defined() ? args.grad_scale.const_data_ptr<float>() : nullptr);

  std::vector<GroupStep> group_steps;
  std::vector<bool> group_uses_momentum;
  group_steps.reserve(args.groups.size());
  for (const GroupConfig& g : args.groups) {
    const ScheduleValue v = schedule_value(g.schedule, kernel_step(g.schedule, step));
    group_steps.push_back(
        {make_step_scalars<float>(g, v, inv_grad_scale), make_step_scalars<double>(g, v, inv_grad_scale)});
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
    // (untyped data_ptr: the dtypes were checked; the typed one checks again, per tensor)
    const bool first = momentum && *static_cast<int64_t*>(args.momentum_first_steps[i].data_ptr()) == kNeverWritten;
    plans[i] = TensorPlan{args.params[i].data_ptr(),
                          args.grads[i].const_data_ptr(),
                          momentum ? args.momentum_buffers[i].data_ptr() : nullptr,
                          args.master_params[i].defined() ? args.master_params[i].data_ptr<float>() : nullptr,
                          args.params[i].scalar_type(),
                          group,
                          UpdateFlags{g.weight_decay != 0.0, momentum, first, g.nesterov}};
    starts[i] = total;
    total += args.params[i].numel();
    ends[i] = total;
  }

  static const UpdateRangeFn update_tensor_range = pick_update_range();
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
      *static_cast<int64_t*>(args.momentum_first_steps[i].data_ptr()) = step;
    }
  }
  *step_ptr = step + 1;
}

}  // namespace lrfused
