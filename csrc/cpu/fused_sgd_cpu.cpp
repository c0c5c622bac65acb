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

void fused_sgd_step_cpu(const KernelStep& ks) {
  const int64_t step = *ks.step;
  if (ks.found_inf != nullptr && *ks.found_inf != 0.0f) {
    // GradScaler found an inf/NaN grad: nothing is updated, the schedule moves on if asked to.
    *ks.step = ks.count_skipped_steps ? step + 1 : step;
    return;
  }
  const float inv_grad_scale = inverse_grad_scale(ks.grad_scale);

  std::vector<GroupStep> group_steps;
  std::vector<bool> group_uses_momentum;
  group_steps.reserve(ks.groups.size());
  for (const GroupConfig& g : ks.groups) {
    const ScheduleValue v = schedule_value(g.schedule, kernel_step(g.schedule, step));
    group_steps.push_back(
        {make_step_scalars<float>(g, v, inv_grad_scale), make_step_scalars<double>(g, v, inv_grad_scale)});
    group_uses_momentum.push_back(v.momentum != 0.0);
  }

  const size_t n = ks.tensors.size();
  std::vector<TensorPlan> plans(n);
  // Each tensor's [start, end) in the virtual flat index space.
  std::vector<int64_t> starts(n), ends(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const KernelTensor& t = ks.tensors[i];
    const GroupConfig& g = ks.groups[t.group];
    const bool momentum = group_uses_momentum[t.group];
    const bool first = momentum && *t.first_step == kNeverWritten;
    plans[i] = TensorPlan{t.param,    t.grad,  momentum ? t.buf : nullptr,
                          t.master,   t.dtype, t.group,
                          UpdateFlags{g.weight_decay != 0.0, momentum, first, g.nesterov}};
    starts[i] = total;
    total += t.numel;
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
      *ks.tensors[i].first_step = step;
    }
  }
  *ks.step = step + 1;
}

}  // namespace lrfused
