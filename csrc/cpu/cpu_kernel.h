// What the CPU step's parallel region hands to the inner loops, and the loops' entry points: one
// compiled for baseline x86-64, one for AVX2 (chosen at run time), same source (update_loops.inc).
#pragma once

#include <ATen/ATen.h>

#include "lrfused/sgd_math.h"

namespace lrfused {

struct TensorPlan {
  void* param;
  const void* grad;
  void* buf;  // nullptr when momentum is off this step; float32 when master is set
  float* master;  // the float32 master copy of a float16 / bfloat16 param, or nullptr
  at::ScalarType dtype;
  int32_t group;
  UpdateFlags flags;
};

struct GroupStep {
  StepScalars<float> f32;
  StepScalars<double> f64;
};

// Updates elements [begin, end) of one tensor.
using UpdateRangeFn = void (*)(const TensorPlan&, const GroupStep&, int64_t, int64_t);
void update_tensor_range_default(const TensorPlan& t, const GroupStep& s, int64_t begin, int64_t end);
void update_tensor_range_avx2(const TensorPlan& t, const GroupStep& s, int64_t begin, int64_t end);

}  // namespace lrfused
