// What the CPU step's parallel region hands to the inner loops, and the loops' entry points: one
// compiled for baseline x86-64, one for AVX2, one for AVX-512 (chosen at run time), same source
// (update_loops.inc).
#pragma once

#include <c10/core/ScalarType.h>

#include "lrfused/rules/rule_list.h"

namespace lrfused {

// One rule's values for one step, in both math types; shared by the tensors of a group (and, under
// CountPolicy::kPerParamStep, of the same step count).
template <typename Rule>
struct RuleValues {
  typename Rule::template Scalars<float> f32;
  typename Rule::template Scalars<double> f64;
};

struct TensorPlan {
  void* param;
  const void* grad;
  void* state[kMaxStateTensors];  // nullptr where the param keeps none; float32 when master is set
  float* master;  // the float32 master copy of a float16 / bfloat16 param, or nullptr
  at::ScalarType dtype;
  int32_t rule;
  const void* values;  // the RuleValues<rule's struct> of this tensor
  TensorFacts facts;
  CountPolicy count_policy;  // the rule's: how advance_counts treats this tensor's count
};

// Updates elements [begin, end) of one tensor.
using UpdateRangeFn = void (*)(const TensorPlan&, int64_t, int64_t);
void update_tensor_range_default(const TensorPlan& t, int64_t begin, int64_t end);
void update_tensor_range_avx2(const TensorPlan& t, int64_t begin, int64_t end);
void update_tensor_range_avx512(const TensorPlan& t, int64_t begin, int64_t end);

}  // namespace lrfused
