// What every fused optimizer family shares per param group: the update rule, the schedule (whose
// momentum is SGD's momentum or AdamW's beta1) and the rule's hyperparameters, as the Python layer
// hands them to a kernel.
#pragma once

#include "lrfused/schedule.h"

namespace lrfused {

// The per-element update a group runs; each rule is one header (sgd_math.h, adamw_math.h) and one
// state layout (kStateTensors of the rule below).
enum UpdateRule : int32_t { kRuleSGD = 0, kRuleAdamW = 1 };

// Per-param state tensors shaped like the param, at most this many for any rule:
//   SGD:   [momentum_buffer]                              count: momentum_first_step (int64)
//   AdamW: [exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)] count: step (float32, as torch's)
constexpr int kMaxStateTensors = 3;

struct GroupConfig {
  Schedule schedule;
  int32_t rule = kRuleSGD;
  double weight_decay = 0.0;
  bool maximize = false;
  // SGD
  double dampening = 0.0;
  bool nesterov = false;
  // AdamW (beta1 is the schedule's momentum)
  double beta2 = 0.999;
  double eps = 1e-8;
  bool amsgrad = false;
};

}  // namespace lrfused
