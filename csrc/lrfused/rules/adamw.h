// AdamW (torch.optim.AdamW): the per-element update shared by the CPU and CUDA kernels, and what the
// machinery needs to run it (see rule_traits.h).
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

#include "lrfused/rules/param_checks.h"
#include "lrfused/rules/rule_traits.h"

namespace lrfused {

// The square root in the math type: an unqualified sqrt(float) on the host is C's sqrt(double), which
// would turn the rest of the expression into double arithmetic.
LRFUSED_HOST_DEVICE inline float square_root(float x) { return sqrtf(x); }
LRFUSED_HOST_DEVICE inline double square_root(double x) { return sqrt(x); }

template <bool kDecay, bool kAmsgrad, bool kLerpFromStart, typename opmath_t, typename Scalars>
LRFUSED_HOST_DEVICE inline void adamw_update(opmath_t& param, opmath_t grad, opmath_t& exp_avg, opmath_t& exp_avg_sq,
                                             opmath_t& max_exp_avg_sq, const Scalars& s) {
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

struct AdamWRule {
  static constexpr const char* kName = "AdamW";
  static constexpr int kStateCount = 3;
  static constexpr const char* kStateNames[kMaxStateTensors] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  static constexpr const char* kMomentumName = "betas[0] (beta1)";
  // torch's state['step']: the bias corrections follow each param's own count.
  static constexpr CountPolicy kCount = CountPolicy::kPerParamStep;
  static constexpr const char* kCountName = "step";
  // rule_params (beta1 is the schedule's momentum)
  static constexpr int kBeta2 = 0;
  static constexpr int kEps = 1;
  static constexpr int kAmsgrad = 2;  // 0 or 1

  static void check_group(const GroupConfig& g, size_t index) {
    const double beta2 = g.rule_params[kBeta2];
    const double eps = g.rule_params[kEps];
    TORCH_CHECK(beta2 >= 0.0 && beta2 < 1.0, "param group ", index, ": beta2 must be in [0, 1), got ", beta2);
    TORCH_CHECK(std::isfinite(eps) && eps > 0.0, "param group ", index, ": eps must be a finite number > 0, got ", eps);
    TORCH_CHECK(g.schedule.momentum < 1.0, "param group ", index, ": betas[0] (beta1) must be in [0, 1), got ",
                g.schedule.momentum);
  }

  static void required_state(const GroupConfig& g, bool required[kMaxStateTensors]) {
    required[0] = required[1] = true;
    required[2] = g.rule_params[kAmsgrad] != 0.0;
  }

  template <typename opmath_t>
  struct Scalars {
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
  LRFUSED_HOST_DEVICE static Scalars<opmath_t> make_scalars(const GroupConfig& g, ScheduleValue v, double step,
                                                            float inv_grad_scale) {
    const double lr = v.lr;
    const double beta1 = v.momentum;
    const double beta2 = g.rule_params[kBeta2];
    Scalars<opmath_t> s;
    s.decay_factor = static_cast<opmath_t>(1 - lr * g.weight_decay);
    s.lerp_weight = static_cast<opmath_t>(1 - beta1);
    s.one_minus_lerp_weight = opmath_t(1) - s.lerp_weight;
    s.lerp_from_start = (s.lerp_weight < 0 ? -s.lerp_weight : s.lerp_weight) < opmath_t(0.5);
    s.beta2 = static_cast<opmath_t>(beta2);
    s.one_minus_beta2 = static_cast<opmath_t>(1 - beta2);
    const double bias_correction1 = 1 - pow(beta1, step);
    const double bias_correction2 = 1 - pow(beta2, step);
    s.bias_correction2_sqrt = static_cast<opmath_t>(pow(bias_correction2, 0.5));  // Python's ** 0.5
    s.eps = static_cast<opmath_t>(g.rule_params[kEps]);
    s.neg_step_size = static_cast<opmath_t>(-(lr / bias_correction1));
    const opmath_t inv = static_cast<opmath_t>(inv_grad_scale);
    s.signed_inv_grad_scale = g.maximize ? -inv : inv;
    s.decay = g.weight_decay != 0.0;
    s.amsgrad = g.rule_params[kAmsgrad] != 0.0;
    return s;
  }

  template <bool kDecay, bool kAmsgrad, bool kLerpFromStart>
  struct Update {
    LRFUSED_HOST_DEVICE static constexpr bool loads(int k) { return k < 2 || kAmsgrad; }
    LRFUSED_HOST_DEVICE static constexpr bool stores(int k) { return k < 2 || kAmsgrad; }
    template <typename opmath_t, typename S>
    LRFUSED_HOST_DEVICE static void apply(opmath_t& param, opmath_t grad, opmath_t (&state)[kMaxStateTensors],
                                          const S& s) {
      adamw_update<kDecay, kAmsgrad, kLerpFromStart>(param, grad, state[0], state[1], state[2], s);
    }
  };

  // The scalars' branches as compile-time constants: a select on a runtime flag inside the loop stops
  // the CPU loop from vectorising. (lerp_from_start is the math type's own: float(1 - beta1) may round
  // to 0.5 where the double does not.)
  template <typename opmath_t, typename F>
  LRFUSED_HOST_DEVICE static void dispatch(const Scalars<opmath_t>& s, const TensorFacts& /*t*/, F&& f) {
    const bool flags[3] = {s.decay, s.amsgrad, s.lerp_from_start};
    auto pick = [&](auto decay, auto amsgrad, auto lerp_from_start) {
      f(Update<decltype(decay)::value, decltype(amsgrad)::value, decltype(lerp_from_start)::value>{});
    };
    dispatch_flags<3>(pick, flags);
  }
};

}  // namespace lrfused
