// What one fused optimizer step receives (StepArgs: tensors), and what its kernels get once every
// tensor is checked (KernelStep: raw pointers).
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "lrfused/group_config.h"

namespace lrfused {

constexpr int64_t kNeverWritten = -1;
constexpr int64_t kWrittenElsewhere = -2;

// Params per task of the host's per-param parallel loops (checks, version bumps), so a step over
// more params than this runs them on several threads: with the tensors' metadata cold in cache
// the loops wait on memory, and several threads wait at once.
constexpr int64_t kParamsPerTask = 256;

// One param's tensors, borrowed: the caller keeps them alive and unchanged for the step. (Borrowed
// rather than copied: a copy is an atomic reference count up and down per tensor, and with
// thousands of tensors whose metadata is cold after a backward pass, those serialise the step.)
struct ParamTensors {
  const at::Tensor* param = nullptr;
  const at::Tensor* grad = nullptr;
  // The rule's state tensors shaped like the param (see group_config.h), nullptr where the param
  // keeps none (an SGD group without momentum, AdamW's max_exp_avg_sq without amsgrad).
  const at::Tensor* state[kMaxStateTensors] = {nullptr, nullptr, nullptr};
  // One element on the params' device, read and written by the kernel, so no step needs a host
  // sync. SGD (with a momentum buffer): int64, the step at which the buffer was first written,
  // kNeverWritten before that (kWrittenElsewhere for a buffer loaded from another optimizer), so the
  // first-step initialisation (buffer = gradient) happens on the device. AdamW: float32, the param's
  // own step count for the bias corrections (torch's state['step']).
  const at::Tensor* count = nullptr;
  // nullptr unless the (float16 / bfloat16) param keeps a float32 master copy: then the update runs
  // on the master (and float32 state) and the param gets it rounded.
  const at::Tensor* master_param = nullptr;
  int64_t group = 0;  // index into StepArgs::groups
};

struct StepArgs {
  std::vector<ParamTensors> params;
  std::vector<GroupConfig> groups;
  // Per group; a float64 [steps, 2] table of (lr, momentum) for a kTable schedule, a kConstant
  // schedule's tensor lr (one float32 or float64 element, optional), else undefined.
  std::vector<at::Tensor> tables;
  at::Tensor step;  // int64, one element, on the params' device: the schedule's step counter
  // torch.amp.GradScaler's contract for fused optimizers, both optional float32 one-element tensors
  // on the params' device: grads are divided by grad_scale; found_inf != 0 skips the update (params,
  // state and counts untouched).
  at::Tensor grad_scale;
  at::Tensor found_inf;
  bool count_skipped_steps = true;  // whether a step skipped for found_inf advances the schedule
};

// One checked param as the kernels see it. param, grad, state and master share one shape and
// strides and are dense, so elements [0, numel) from each pointer correspond.
struct KernelTensor {
  void* param;  // a dense copy of a param that is not dense itself (see KernelStep::staged_params)
  const void* grad;
  void* state[kMaxStateTensors];  // as ParamTensors::state; float32 when master is set
  float* master;                  // float32 master copy of a float16 / bfloat16 param, or nullptr
  void* count;                    // as ParamTensors::count: int64_t* (SGD) or float* (AdamW), or nullptr
  int64_t numel;
  int32_t group;
  at::ScalarType dtype;  // the param's
};

// A checked step: everything the CPU and CUDA kernels read, as raw pointers into the StepArgs'
// tensors (which must outlive it) and into grads it copied.
struct KernelStep {
  std::vector<KernelTensor> tensors;
  std::vector<GroupConfig> groups;  // with table schedules pointing at their tables
  at::Device device = at::kCPU;
  int64_t* step = nullptr;
  const float* grad_scale = nullptr;  // nullptr without one
  const float* found_inf = nullptr;   // nullptr without one
  bool count_skipped_steps = true;
  // Grads that had other strides than their param, copied to the param's (AccumulateGrad never
  // makes one; a grad assigned by hand may be).
  std::vector<at::Tensor> realigned_grads;
  // Params that are not dense in memory (strided views, e.g. x[..., 0]) paired with the dense copies
  // the kernel updates (laid out as empty_like lays them out, as their state is); run_step copies
  // the results back.
  std::vector<std::pair<at::Tensor, at::Tensor>> staged_params;
};

// Validates everything, raising before anything is written.
KernelStep checked_step(const StepArgs& args);

// Runs a checked step on its device.
void run_step(const KernelStep& step);

void fused_step_cpu(const KernelStep& step);
#ifdef LRFUSED_WITH_CUDA
void fused_step_cuda(const KernelStep& step);
#endif

}  // namespace lrfused
