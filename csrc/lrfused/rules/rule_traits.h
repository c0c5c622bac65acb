// What the shared machinery (checks, the CPU range loop, the CUDA chunk walker, the counts) needs
// from an update rule, in the words a rule header uses to say it. A rule is one struct (SGDRule in
// rules/sgd.h is the model) with:
//   kName, kStateCount, kStateNames[kMaxStateTensors] (nullptr past kStateCount), kMomentumName
//     (what the schedule's momentum is called in messages), kCount (CountPolicy) and kCountName;
//   check_group(GroupConfig, index): host checks of its rule_params, with messages;
//   required_state(GroupConfig, required[]): which state tensors a param of the group must have;
//   Scalars<opmath_t> and make_scalars<opmath_t>(GroupConfig, ScheduleValue, count, inv_grad_scale):
//     one step's values in the math type (count: the param's step including this one under
//     kPerParamStep, else 0);
//   uses_count(GroupConfig, ScheduleValue) (kFirstWriteFlag only): whether state 0 is written this step;
//   dispatch(Scalars, TensorFacts, f): calls f(Update{}) with the branches as compile-time constants,
//     where Update has constexpr loads(k) / stores(k) (which state tensors it reads and writes) and
//     apply(param, grad, state[kMaxStateTensors], scalars): the per-element update in opmath_t.
#pragma once

#include "lrfused/bool_dispatch.h"
#include "lrfused/group_config.h"

namespace lrfused {

// What the rule counts per param, in its `count` tensor (one element on the params' device).
enum class CountPolicy {
  kNone,            // no count
  kFirstWriteFlag,  // int64: the step at which state 0 was first written (kNeverWritten before)
  kPerParamStep,    // float32: the param's own step count, +1 after each step that updates it
};

// What the machinery knows about one tensor in one step, for the rule's flag dispatch.
struct TensorFacts {
  bool has_state[kMaxStateTensors];
  bool first_write;  // kFirstWriteFlag: state 0 has never been written and is written now
};

// float(1 / double(scale)), as torch.amp.GradScaler.unscale_ computes it; 1 without a scale.
LRFUSED_HOST_DEVICE inline float inverse_grad_scale(const float* grad_scale) {
  return grad_scale == nullptr ? 1.0f : static_cast<float>(1.0 / static_cast<double>(*grad_scale));
}

}  // namespace lrfused
