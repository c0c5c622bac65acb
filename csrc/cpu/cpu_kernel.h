// What the CPU step's parallel region hands to the inner loops, and the loops' entry points: one
// compiled for baseline x86-64, one for AVX2, one for AVX-512 (chosen at run time), same source
// (update_loops.inc).
#pragma once

#include <c10/core/ScalarType.h>

#include "lrfused/adamw_math.h"
#include "lrfused/sgd_math.h"

namespace lrfused {

// One group's SGD values for this step.
struct SGDStep {
  StepScalars<float> f32;
  StepScalars<double> f64;
};

// One tensor's AdamW values for this step (its bias corrections follow its own step count).
struct AdamWStep {
  AdamWScalars<float> f32;
  AdamWScalars<double> f64;
};

struct TensorPlan {
  void* param;
  const void* grad;
  void* state[kMaxStateTensors];  // nullptr where unused this step; float32 when master is set
  float* master;  // the float32 master copy of a float16 / bfloat16 param, or nullptr
  at::ScalarType dtype;
  int32_t rule;
  // The rule's values, shared by the tensors of a group (and, for AdamW, of the same step count).
  const SGDStep* sgd;      // kRuleSGD
  const AdamWStep* adamw;  // kRuleAdamW
  UpdateFlags sgd_flags;   // kRuleSGD: which branches apply to this tensor
};

// Updates elements [begin, end) of one tensor.
using UpdateRangeFn = void (*)(const TensorPlan&, int64_t, int64_t);
void update_tensor_range_default(const TensorPlan& t, int64_t begin, int64_t end);
void update_tensor_range_avx2(const TensorPlan& t, int64_t begin, int64_t end);
void update_tensor_range_avx512(const TensorPlan& t, int64_t begin, int64_t end);

}  // namespace lrfused
