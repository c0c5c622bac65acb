#include "lrfused/step_plan.h"

#include <ATen/Parallel.h>

namespace lrfused {
namespace {

at::Tensor or_undefined(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }

const at::Tensor* optional_pointer(const std::optional<at::Tensor>& t) { return t.has_value() ? &*t : nullptr; }

const at::Tensor* defined_pointer(const at::Tensor& t) { return t.defined() ? &t : nullptr; }

void bump_version(const at::Tensor* t) {
  if (t != nullptr && !t->is_inference()) {  // (an inference tensor has no version counter)
    t->unsafeGetTensorImpl()->bump_version();
  }
}

// As torch's in-place ops do (torch.optim.SGD's included): autograd must see that the step changed
// these tensors, so that a backward through a graph that saved one of them raises instead of using
// the new values. In parallel for the same reason as the checks: cold, one atomic each.
void bump_versions(const std::vector<ParamTensors>& params) {
  at::parallel_for(0, static_cast<int64_t>(params.size()), kParamsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      bump_version(params[i].param);
      for (const at::Tensor* state : params[i].state) {
        bump_version(state);
      }
      bump_version(params[i].master_param);
    }
  });
}

}  // namespace

StepPlan::StepPlan(std::vector<at::Tensor> params, const std::vector<std::vector<std::optional<at::Tensor>>>& states,
                   const std::vector<std::optional<at::Tensor>>& counts,
                   const std::vector<std::optional<at::Tensor>>& master_params, std::vector<int64_t> group_of)
    : params_(std::move(params)), group_of_(std::move(group_of)) {
  TORCH_CHECK(states.size() == params_.size() && counts.size() == params_.size() &&
                  master_params.size() == params_.size() && group_of_.size() == params_.size(),
              "params, states, counts, master_params and group_of must have one entry per param; got lengths ",
              params_.size(), ", ", states.size(), ", ", counts.size(), ", ", master_params.size(), ", ",
              group_of_.size());
  states_.resize(params_.size());
  counts_.reserve(params_.size());
  master_params_.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    TORCH_CHECK(states[i].size() <= kMaxStateTensors, "states of param ", i, ": at most ", kMaxStateTensors,
                " tensors, got ", states[i].size());
    for (size_t k = 0; k < states[i].size(); ++k) {
      states_[i][k] = or_undefined(states[i][k]);
    }
    counts_.push_back(or_undefined(counts[i]));
    master_params_.push_back(or_undefined(master_params[i]));
  }
}

void StepPlan::step(const StepInputs& inputs) const {
  const size_t n = params_.size();
  TORCH_CHECK(!inputs.grads.has_value() || inputs.grads->size() == n, "grads must have one entry per param (",
              n, "), got ", inputs.grads.has_value() ? inputs.grads->size() : 0);
  StepArgs args;
  args.params.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // (the impl's grad: Tensor::grad() would also ask autograd whether the param is a leaf, to warn)
    const at::Tensor* grad = inputs.grads.has_value() ? optional_pointer((*inputs.grads)[i])
                                                      : &params_[i].unsafeGetTensorImpl()->grad();
    if (grad == nullptr || !grad->defined()) {
      continue;  // as torch's optimizers: a param without a grad is left alone
    }
    ParamTensors t;
    t.param = &params_[i];
    t.grad = grad;
    for (int k = 0; k < kMaxStateTensors; ++k) {
      t.state[k] = defined_pointer(states_[i][k]);
    }
    t.count = defined_pointer(counts_[i]);
    t.master_param = defined_pointer(master_params_[i]);
    t.group = group_of_[i];
    args.params.push_back(t);
  }
  args.groups = inputs.groups;
  for (const auto& table : inputs.tables) {
    args.tables.push_back(or_undefined(table));
  }
  args.step = inputs.step;
  args.grad_scale = or_undefined(inputs.grad_scale);
  args.found_inf = or_undefined(inputs.found_inf);
  args.count_skipped_steps = inputs.count_skipped_steps;
  run_step(checked_step(args));
  bump_versions(args.params);
}

}  // namespace lrfused
