// The per-element AdamW update shared by the CPU and CUDA kernels.
//
// Same operations, in the same order, as torch.optim.AdamW's single-tensor path (after
// torch.amp.GradScaler.unscale_), with beta1 the schedule's momentum and `step` the param's own
// count after this step's increment:
//   g = grad * inv_grad_scale;  g = maximize ? -g : g
//   param = param * (1 - lr * weight_decay)                       (if weight_decay != 0)
//   exp_avg = lerp(exp_avg, g, 1 - beta1)                         (ATen's two-sided lerp)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq)          (amsgrad; NaN propagates)
//   denom = sqrt(amsgrad ? max_exp_avg_sq : exp_avg_sq) / sqrt(1 - beta2^step) + eps
//   param = param + (-lr / (1 - beta1^step)) * exp_avg / denom
// The scalars are Python floats (doubles) in torch, so they are computed in double here and cast
// to the math type once; elements in opmath_t, rounded to the storage type once at the end.
// (The bias correction uses the beta1 of this step, as torch does under a cycled beta1.)
#pragma once

#include <cmath>

#include "lrfused/bool_dispatch.h"
#include "lrfused/group_config.h"

namespace lrfused {

template <typename opmath_t>
struct AdamWScalars {
  opmath_t decay_factor;  // 1 - lr * weight_decay
  opmath_t lerp_weight;   // 1 - beta1
  opmath_t one_minus_lerp_weight;
  bool lerp_from_start;   // ATen's lerp: |weight| < 0.5 starts from exp_avg, else from the grad
  opmath_t beta2;
  opmath_t one_minus_beta2;
  opmath_t bias_correction2_sqrt;
  opmath_t eps;
  opmath_t neg_step_size;  // -lr / (1 - beta1^step)
  // GradScaler's inverse scale, negated under maximize: (g * inv) * -1 == g * -inv exactly, and a
  // multiply, unlike a select, keeps the CPU loop vectorisable.
  opmath_t signed_inv_grad_scale;
  bool decay;    // weight_decay != 0
  bool amsgrad;
};

// `step`: the param's step count including this step, as torch reads it (a float32 tensor's value).
template <typename opmath_t>
LRFUSED_HOST_DEVICE inline AdamWScalars<opmath_t> make_adamw_scalars(const GroupConfig& g, ScheduleValue v,
                                                                     double step, float inv_grad_scale) {
  const double lr = v.lr;
  const double beta1 = v.momentum;
  AdamWScalars<opmath_t> s;
  s.decay_factor = static_cast<opmath_t>(1 - lr * g.weight_decay);
  s.lerp_weight = static_cast<opmath_t>(1 - beta1);
  s.one_minus_lerp_weight = opmath_t(1) - s.lerp_weight;
  s.lerp_from_start = (s.lerp_weight < 0 ? -s.lerp_weight : s.lerp_weight) < opmath_t(0.5);
  s.beta2 = static_cast<opmath_t>(g.beta2);
  s.one_minus_beta2 = static_cast<opmath_t>(1 - g.beta2);
  const double bias_correction1 = 1 - pow(beta1, step);
  const double bias_correction2 = 1 - pow(g.beta2, step);
  s.bias_correction2_sqrt = static_cast<opmath_t>(pow(bias_correction2, 0.5));  // Python's ** 0.5
  s.eps = static_cast<opmath_t>(g.eps);
  s.neg_step_size = static_cast<opmath_t>(-(lr / bias_correction1));
  const opmath_t inv = static_cast<opmath_t>(inv_grad_scale);
  s.signed_inv_grad_scale = g.maximize ? -inv : inv;
  s.decay = g.weight_decay != 0.0;
  s.amsgrad = g.amsgrad;
  return s;
}

// Calls f with the scalars' branches (decay, amsgrad, lerp_from_start) as compile-time constants: a
// select on a runtime flag inside the loop stops the CPU loop from vectorising. (lerp_from_start is
// the math type's own: float(1 - beta1) may round to 0.5 where the double does not.)
template <typename opmath_t, typename F>
LRFUSED_HOST_DEVICE inline void dispatch_adamw_flags(const AdamWScalars<opmath_t>& s, F&& f) {
  const bool flags[3] = {s.decay, s.amsgrad, s.lerp_from_start};
  dispatch_flags<3>(f, flags);
}

// The square root in the math type: an unqualified sqrt(float) on the host is C's sqrt(double), which
// would turn the rest of the expression into double arithmetic.
LRFUSED_HOST_DEVICE inline float square_root(float x) { return sqrtf(x); }
LRFUSED_HOST_DEVICE inline double square_root(double x) { return sqrt(x); }

template <bool kDecay, bool kAmsgrad, bool kLerpFromStart, typename opmath_t>
LRFUSED_HOST_DEVICE inline void adamw_update(opmath_t& param, opmath_t grad, opmath_t& exp_avg, opmath_t& exp_avg_sq,
                                             opmath_t& max_exp_avg_sq, const AdamWScalars<opmath_t>& s) {
  const opmath_t g = grad * s.signed_inv_grad_scale;
  if (kDecay) {
    param = param * s.decay_factor;
  }
  exp_avg = kLerpFromStart ? exp_avg + s.lerp_weight * (g - exp_avg) : g - (g - exp_avg) * s.one_minus_lerp_weight;
  exp_avg_sq = exp_avg_sq * s.beta2;
  exp_avg_sq = exp_avg_sq + s.one_minus_beta2 * g * g;
  opmath_t second = exp_avg_sq;
  if (kAmsgrad) {
    const opmath_t m = max_exp_avg_sq;
    max_exp_avg_sq = (m != m || exp_avg_sq != exp_avg_sq) ? m + exp_avg_sq : (m > exp_avg_sq ? m : exp_avg_sq);
    second = max_exp_avg_sq;
  }
  const opmath_t denom = square_root(second) / s.bias_correction2_sqrt + s.eps;
  param = param + s.neg_step_size * exp_avg / denom;
}

}  // namespace lrfused
