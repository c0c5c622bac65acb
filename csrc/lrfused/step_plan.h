// StepPlan: the flat tensor lists of one optimizer, built once (when its params or state change)
// instead of at every step. Each step reads the grads itself (param.grad()), checks everything and
// runs the kernel on the params that have one.
#pragma once

#include <optional>
#include <vector>

#include "lrfused/step_args.h"

namespace lrfused {

class StepPlan {
 public:
  StepPlan(std::vector<at::Tensor> params, const std::vector<std::optional<at::Tensor>>& momentum_buffers,
           const std::vector<std::optional<at::Tensor>>& momentum_first_steps, std::vector<int64_t> group_of);

  // One fused step of every param with a grad; raises (changing nothing) on bad input.
  void step(const std::vector<GroupConfig>& groups, const at::Tensor& step) const;

 private:
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> momentum_buffers_;      // undefined where none
  std::vector<at::Tensor> momentum_first_steps_;  // undefined where none
  std::vector<int64_t> group_of_;
};

}  // namespace lrfused
