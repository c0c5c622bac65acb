// What every fused optimizer family shares per param group: the update rule, the schedule (whose
// momentum is SGD's momentum, AdamW's beta1) and the rule's own parameters, as the Python layer
// hands them to a kernel.
#pragma once

#include "lrfused/schedule.h"

namespace lrfused {

// Per-param state tensors shaped like the param, at most this many for any rule (each rule header
// in rules/ names its own: kStateNames).
constexpr int kMaxStateTensors = 3;

// A rule's own hyperparameters, at most this many; each rule header names its indices (SGDRule::
// kDampening, ...). Fixed, so that a new rule does not grow the config inside the kernel argument.
constexpr int kMaxRuleParams = 4;

struct GroupConfig {
  Schedule schedule;
  int32_t rule = -1;  // a position in the rule list (rules/rule_list.h); -1 fails the checks
  bool maximize = false;
  double weight_decay = 0.0;
  double rule_params[kMaxRuleParams] = {0.0, 0.0, 0.0, 0.0};
};

}  // namespace lrfused
