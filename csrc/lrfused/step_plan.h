// StepPlan: the flat tensor lists of one optimizer, built once (when its params or state change)
// instead of at every step. Each step reads the grads itself (param.grad(), unless given), checks
// everything and runs the kernel on the params that have one.
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "lrfused/step_args.h"

namespace lrfused {

class StepPlan {
 public:
  // Per param: its rule's state tensors (up to kMaxStateTensors, None where it keeps none), its
  // count, its master copy, its group.
  StepPlan(std::vector<at::Tensor> params, const std::vector<std::vector<std::optional<at::Tensor>>>& states,
           const std::vector<std::optional<at::Tensor>>& counts,
           const std::vector<std::optional<at::Tensor>>& master_params, std::vector<int64_t> group_of);

  // What one step needs besides the cached tensors.
  struct StepInputs {
    std::vector<GroupConfig> groups;
    std::vector<std::optional<at::Tensor>> tables;  // per group
    at::Tensor step;
    std::optional<at::Tensor> grad_scale;
    std::optional<at::Tensor> found_inf;
    bool count_skipped_steps = true;
    // Per param, replacing param.grad() (for params whose grads live elsewhere, e.g. DTensor shards).
    std::optional<std::vector<std::optional<at::Tensor>>> grads;
  };

  // One fused step of every param with a grad; raises (changing nothing) on bad input.
  void step(const StepInputs& inputs) const;

 private:
  std::vector<at::Tensor> params_;
  std::vector<std::array<at::Tensor, kMaxStateTensors>> states_;  // undefined where none
  std::vector<at::Tensor> counts_;                                 // undefined where none
  std::vector<at::Tensor> master_params_;                          // undefined where none
  std::vector<int64_t> group_of_;
};

}  // namespace lrfused
