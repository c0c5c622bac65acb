// CPU fused step (every rule): one parallel region over every element of every tensor.
//
// The tensors are laid end to end in a virtual flat index space; at::parallel_for splits that space
// into equal contiguous ranges, one per thread, so work is balanced whatever the tensor sizes, and
// each thread walks the tensors its range covers with a branch-free, vectorisable inner loop.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/cpu_kernel.h"
#include "lrfused/step_args.h"

namespace lrfused {
namespace {

// Below this many elements a step runs on one thread: spawning costs more than it saves.
constexpr int64_t kGrainSize = 32768;

bool has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

bool has_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

// The widest build of the loops this processor runs, or the one LRFUSED_CPU_LOOPS names (default,
// avx2, avx512: the tests check that every build gives the same bits).
UpdateRangeFn pick_update_range() {
  const char* forced = std::getenv("LRFUSED_CPU_LOOPS");
  const std::string choice = forced == nullptr ? "" : forced;
  TORCH_CHECK(choice.empty() || choice == "default" || choice == "avx2" || choice == "avx512",
              "LRFUSED_CPU_LOOPS must be default, avx2 or avx512, got '", choice, "'");
  TORCH_CHECK(choice != "avx512" || has_avx512(), "LRFUSED_CPU_LOOPS=avx512, but this processor has no AVX-512");
  TORCH_CHECK(choice != "avx2" || has_avx2(), "LRFUSED_CPU_LOOPS=avx2, but this processor has no AVX2");
  if (choice == "default") {
    return update_tensor_range_default;
  }
  if (choice != "avx2" && has_avx512()) {
    return update_tensor_range_avx512;
  }
  return has_avx2() ? update_tensor_range_avx2 : update_tensor_range_default;
}

// One rule's values for this step, made once per group (and, under kPerParamStep, per run of
// tensors with the same step count), for the tensors' plans to point at.
template <typename Rule>
class RuleValueCache {
 public:
  const RuleValues<Rule>* get(const KernelStep& ks, int32_t group, ScheduleValue v, double count,
                              float inv_grad_scale) {
    if (values_.empty()) {
      values_.reserve(ks.tensors.size());  // (never reallocated: plans point into it)
    }
    if (values_.empty() || group_ != group || count_ != count) {
      const GroupConfig& g = ks.groups[group];
      values_.push_back(RuleValues<Rule>{Rule::template make_scalars<float>(g, v, count, inv_grad_scale),
                                         Rule::template make_scalars<double>(g, v, count, inv_grad_scale)});
      group_ = group;
      count_ = count;
    }
    return &values_.back();
  }

 private:
  std::vector<RuleValues<Rule>> values_;
  int32_t group_ = -1;  // of values_.back()
  double count_ = 0.0;
};

// Each tensor's plan: its rule's values and what the rule's flag dispatch needs to know of it.
class StepValues {
 public:
  StepValues(const KernelStep& ks, int64_t step) : ks_(ks), inv_grad_scale_(inverse_grad_scale(ks.grad_scale)) {
    for (const GroupConfig& g : ks.groups) {
      values_.push_back(schedule_value(g.schedule, kernel_step(g.schedule, step)));
    }
  }

  TensorPlan plan(const KernelTensor& t) {
    const GroupConfig& g = ks_.groups[t.group];
    const ScheduleValue v = values_[t.group];
    TensorPlan plan{};
    plan.param = t.param;
    plan.grad = t.grad;
    std::copy(t.state, t.state + kMaxStateTensors, plan.state);
    plan.master = t.master;
    plan.dtype = t.dtype;
    plan.rule = g.rule;
    for (int k = 0; k < kMaxStateTensors; ++k) {
      plan.facts.has_state[k] = t.state[k] != nullptr;
    }
    dispatch_rule(g.rule, [&](auto tag) {
      using Rule = typename decltype(tag)::type;
      double count = 0.0;
      if constexpr (Rule::kCount == CountPolicy::kPerParamStep) {
        // torch: step_t += 1 on the float32 tensor, then the bias corrections from its value.
        count = static_cast<double>(*static_cast<const float*>(t.count) + 1.0f);
      } else if constexpr (Rule::kCount == CountPolicy::kFirstWriteFlag) {
        plan.facts.first_write = t.state[0] != nullptr && Rule::uses_count(g, v) &&
                                 *static_cast<const int64_t*>(t.count) == kNeverWritten;
      }
      plan.count_policy = Rule::kCount;
      plan.values = std::get<RuleValueCache<Rule>>(caches_).get(ks_, t.group, v, count, inv_grad_scale_);
    });
    return plan;
  }

 private:
  const KernelStep& ks_;
  float inv_grad_scale_;
  std::vector<ScheduleValue> values_;
  PerRule<RuleValueCache> caches_;
};

// After the update, each rule's counts as its policy says: a state first written records this step;
// a per-param step count counts this step.
void advance_counts(const KernelStep& ks, const std::vector<TensorPlan>& plans, int64_t step) {
  for (size_t i = 0; i < plans.size(); ++i) {
    const TensorPlan& plan = plans[i];
    if (plan.count_policy == CountPolicy::kPerParamStep) {
      *static_cast<float*>(ks.tensors[i].count) += 1.0f;
    } else if (plan.count_policy == CountPolicy::kFirstWriteFlag && plan.facts.first_write) {
      *static_cast<int64_t*>(ks.tensors[i].count) = step;
    }
  }
}

}  // namespace

void fused_step_cpu(const KernelStep& ks) {
  const int64_t step = *ks.step;
  if (ks.found_inf != nullptr && *ks.found_inf != 0.0f) {
    // GradScaler found an inf/NaN grad: nothing is updated, the schedule moves on if asked to.
    *ks.step = ks.count_skipped_steps ? step + 1 : step;
    return;
  }
  StepValues values(ks, step);
  const size_t n = ks.tensors.size();
  std::vector<TensorPlan> plans(n);
  // Each tensor's [start, end) in the virtual flat index space.
  std::vector<int64_t> starts(n), ends(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const KernelTensor& t = ks.tensors[i];
    plans[i] = values.plan(t);
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
        update_tensor_range(plans[t], pos - starts[t], stop - starts[t]);
        pos = stop;
      }
    }
  });

  advance_counts(ks, plans, step);
  *ks.step = step + 1;
}

}  // namespace lrfused
