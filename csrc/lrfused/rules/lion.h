// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2): the
// per-element update shared by the CPU and CUDA kernels, and what the machinery needs to run it (see
// rule_traits.h). With beta1 the schedule's momentum:
//   g = grad * inv_grad_scale;  g = maximize ? -g : g
//   param = param * (1 - lr * weight_decay)                       (if weight_decay != 0)
//   update = sign(exp_avg * beta1 + g * (1 - beta1))              (torch.sign's: 0 for 0 and NaN)
//   param = param + (-lr) * update
//   exp_avg = exp_avg * beta2 + (1 - beta2) * g
// in opmath_t, rounded to the storage type once at the end. No per-param count: Lion has no bias
// correction, and its exp_avg starts at zero (torch.zeros_like), so no first-write flag either.
#pragma once

#include "lrfused/rules/param_checks.h"
#include "lrfused/rules/rule_traits.h"

namespace lrfused {

// torch.sign: (0 < x) - (x < 0), so 0 for +-0 and NaN.
template <typename opmath_t>
LRFUSED_HOST_DEVICE inline opmath_t sign_of(opmath_t x) {
  return static_cast<opmath_t>(opmath_t(0) < x) - static_cast<opmath_t>(x < opmath_t(0));
}

template <bool kDecay, typename opmath_t, typename Scalars>
LRFUSED_HOST_DEVICE inline void lion_update(opmath_t& param, opmath_t grad, opmath_t& exp_avg, const Scalars& s) {
  const opmath_t g = grad * s.signed_inv_grad_scale;
  if (kDecay) {
    param = param * s.decay_factor;
  }
  const opmath_t interpolated = exp_avg * s.beta1 + g * s.one_minus_beta1;
  param = param + s.neg_lr * sign_of(interpolated);
  exp_avg = exp_avg * s.beta2 + s.one_minus_beta2 * g;
}

struct LionRule {
  static constexpr const char* kName = "Lion";
  static constexpr int kStateCount = 1;
  static constexpr const char* kStateNames[kMaxStateTensors] = {"exp_avg", nullptr, nullptr};
  static constexpr const char* kMomentumName = "betas[0] (beta1)";
  static constexpr CountPolicy kCount = CountPolicy::kNone;
  static constexpr const char* kCountName = nullptr;
  // rule_params (beta1 is the schedule's momentum)
  static constexpr int kBeta2 = 0;

  static void check_group(const GroupConfig& g, size_t index) {
    const double beta2 = g.rule_params[kBeta2];
    TORCH_CHECK(beta2 >= 0.0 && beta2 < 1.0, "param group ", index, ": beta2 must be in [0, 1), got ", beta2);
    TORCH_CHECK(g.schedule.momentum < 1.0, "param group ", index, ": betas[0] (beta1) must be in [0, 1), got ",
                g.schedule.momentum);
  }

  static void required_state(const GroupConfig& /*g*/, bool required[kMaxStateTensors]) {
    required[0] = true;
    required[1] = required[2] = false;
  }

  template <typename opmath_t>
  struct Scalars {
    opmath_t decay_factor;  // 1 - lr * weight_decay
    opmath_t neg_lr;
    opmath_t beta1;
    opmath_t one_minus_beta1;
    opmath_t beta2;
    opmath_t one_minus_beta2;
    // GradScaler's inverse scale, negated under maximize (see SGDRule::Scalars).
    opmath_t signed_inv_grad_scale;
    bool decay;  // weight_decay != 0
  };

  // The scalars are Python floats (doubles) in a plain-torch Lion: computed in double, cast once.
  template <typename opmath_t>
  LRFUSED_HOST_DEVICE static Scalars<opmath_t> make_scalars(const GroupConfig& g, ScheduleValue v, double /*count*/,
                                                            float inv_grad_scale) {
    const double beta1 = v.momentum;
    const double beta2 = g.rule_params[kBeta2];
    Scalars<opmath_t> s;
    s.decay_factor = static_cast<opmath_t>(1 - v.lr * g.weight_decay);
    s.neg_lr = static_cast<opmath_t>(-v.lr);
    s.beta1 = static_cast<opmath_t>(beta1);
    s.one_minus_beta1 = static_cast<opmath_t>(1 - beta1);
    s.beta2 = static_cast<opmath_t>(beta2);
    s.one_minus_beta2 = static_cast<opmath_t>(1 - beta2);
    const opmath_t inv = static_cast<opmath_t>(inv_grad_scale);
    s.signed_inv_grad_scale = g.maximize ? -inv : inv;
    s.decay = g.weight_decay != 0.0;
    return s;
  }

  template <bool kDecay>
  struct Update {
    LRFUSED_HOST_DEVICE static constexpr bool loads(int k) { return k == 0; }
    LRFUSED_HOST_DEVICE static constexpr bool stores(int k) { return k == 0; }
    template <typename opmath_t, typename S>
    LRFUSED_HOST_DEVICE static void apply(opmath_t& param, opmath_t grad, opmath_t (&state)[kMaxStateTensors],
                                          const S& s) {
      lion_update<kDecay>(param, grad, state[0], s);
    }
  };

  template <typename opmath_t, typename F>
  LRFUSED_HOST_DEVICE static void dispatch(const Scalars<opmath_t>& s, const TensorFacts& /*t*/, F&& f) {
    const bool flags[1] = {s.decay};
    auto pick = [&](auto decay) { f(Update<decltype(decay)::value>{}); };
    dispatch_flags<1>(pick, flags);
  }
};

}  // namespace lrfused
