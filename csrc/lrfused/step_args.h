// What one fused optimizer step receives: a flat list of tensors over all param groups.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "lrfused/sgd_math.h"

namespace lrfused {

constexpr int64_t kNeverWritten = -1;
constexpr int64_t kWrittenElsewhere = -2;

struct StepArgs {
  std::vector<at::Tensor> params;
  std::vector<at::Tensor> grads;
  // Per param; undefined where the group never uses momentum.
  std::vector<at::Tensor> momentum_buffers;
  // Per param, one int64: the step at which the buffer was first written, kNeverWritten before
  // that (kWrittenElsewhere for a buffer loaded from another optimizer). Read on the device, so the
  // first-step initialisation (buffer = gradient) needs no host sync.
  std::vector<at::Tensor> momentum_first_steps;
  // Per param; undefined unless the (float16 / bfloat16) param keeps a float32 master copy: then the
  // update runs on the master (and a float32 momentum buffer) and the param gets it rounded.
  std::vector<at::Tensor> master_params;
  std::vector<int64_t> group_of;  // index into `groups` for each param
  std::vector<GroupConfig> groups;
  // Per group; a float64 [steps, 2] table of (lr, momentum) for a kTable schedule, else undefined.
  std::vector<at::Tensor> tables;
  at::Tensor step;  // int64, one element, on the params' device: the schedule's step counter
  // torch.amp.GradScaler's contract for fused optimizers, both optional float32 one-element tensors
  // on the params' device: grads are divided by grad_scale; found_inf != 0 skips the update (params,
  // buffers and first-step flags untouched).
  at::Tensor grad_scale;
  at::Tensor found_inf;
  bool count_skipped_steps = true;  // whether a step skipped for found_inf advances the schedule
};

// Validates everything (raising before anything is written) and returns args whose grads share
// their param's strides (a grad with other strides is copied; AccumulateGrad never makes one).
StepArgs checked_step_args(StepArgs args);

void fused_sgd_step_cpu(const StepArgs& args);
#ifdef LRFUSED_WITH_CUDA
void fused_sgd_step_cuda(const StepArgs& args);
#endif

}  // namespace lrfused
