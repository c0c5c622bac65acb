// SGD (torch.optim.SGD): the per-element update shared by the CPU and CUDA kernels, and what the
// machinery needs to run it (see rule_traits.h).
//
// Same operations, in the same order, as torch.optim.SGD's single-tensor path (after
// torch.amp.GradScaler.unscale_, which multiplies the grads by the float32 inverse of the scale):
//   g = grad * inv_grad_scale                           (1 without a GradScaler: exact)
//   g = maximize ? -g : g
//   g = g + weight_decay * param                        (if weight_decay != 0)
//   buf = g  (first step)  |  buf = buf * momentum + (1 - dampening) * g
//   g = nesterov ? g + momentum * buf : buf             (if momentum != 0)
//   param = param + (-lr) * g
// computed in opmath_t (float for half/bfloat16/float, double for double), rounded to the storage
// type once at the end.
#pragma once

#include "lrfused/rules/param_checks.h"
#include "lrfused/rules/rule_traits.h"

namespace lrfused {

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, typename opmath_t, typename Scalars>
LRFUSED_HOST_DEVICE inline void sgd_update(opmath_t& param, opmath_t grad, opmath_t& buf, const Scalars& s) {
  opmath_t g = grad * s.signed_inv_grad_scale;
  if (kDecay) {
    g = g + s.weight_decay * param;
  }
  if (kMomentum) {
    if (kFirst) {
      buf = g;
    } else {
      buf = buf * s.momentum + s.one_minus_dampening * g;
    }
    g = kNesterov ? g + s.momentum * buf : buf;
  }
  param = param + s.neg_lr * g;
}

struct SGDRule {
  static constexpr const char* kName = "SGD";
  static constexpr int kStateCount = 1;
  static constexpr const char* kStateNames[kMaxStateTensors] = {"momentum_buffer", nullptr, nullptr};
  static constexpr const char* kMomentumName = "momentum";
  // The buffer starts as a copy of the gradient: the flag says whether it was written yet.
  static constexpr CountPolicy kCount = CountPolicy::kFirstWriteFlag;
  static constexpr const char* kCountName = "momentum_first_step";
  // rule_params
  static constexpr int kDampening = 0;
  static constexpr int kNesterov = 1;  // 0 or 1

  static void check_group(const GroupConfig& g, size_t index) {
    check_finite_nonnegative(g.rule_params[kDampening], "dampening", index);
  }

  static void required_state(const GroupConfig& g, bool required[kMaxStateTensors]) {
    required[0] = g.schedule.momentum != 0.0 || g.schedule.cycle_momentum;
    required[1] = required[2] = false;
  }

  // One group's values for this step, already in the kernel's math type.
  template <typename opmath_t>
  struct Scalars {
    opmath_t neg_lr;
    opmath_t weight_decay;
    opmath_t momentum;
    opmath_t one_minus_dampening;
    // GradScaler's inverse scale, negated under maximize: (g * inv) * -1 == g * -inv exactly, and a
    // multiply, unlike a select on a flag, keeps the CPU loop vectorisable.
    opmath_t signed_inv_grad_scale;
    bool decay;         // weight_decay != 0
    bool use_momentum;  // this step's momentum != 0 (torch skips the buffer entirely otherwise)
    bool nesterov;
  };

  // inv_grad_scale: as GradScaler computes it, float(1 / double(scale)).
  template <typename opmath_t>
  LRFUSED_HOST_DEVICE static Scalars<opmath_t> make_scalars(const GroupConfig& g, ScheduleValue v, double /*count*/,
                                                            float inv_grad_scale) {
    Scalars<opmath_t> s;
    const opmath_t inv = static_cast<opmath_t>(inv_grad_scale);
    s.signed_inv_grad_scale = g.maximize ? -inv : inv;
    s.neg_lr = static_cast<opmath_t>(-v.lr);
    s.weight_decay = static_cast<opmath_t>(g.weight_decay);
    s.momentum = static_cast<opmath_t>(v.momentum);
    s.one_minus_dampening = static_cast<opmath_t>(1 - g.rule_params[kDampening]);
    s.decay = g.weight_decay != 0.0;
    s.use_momentum = uses_count(g, v);
    s.nesterov = g.rule_params[kNesterov] != 0.0;
    return s;
  }

  // Whether this step writes the buffer (and so may be its first write).
  LRFUSED_HOST_DEVICE static bool uses_count(const GroupConfig& /*g*/, ScheduleValue v) { return v.momentum != 0.0; }

  template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov>
  struct Update {
    LRFUSED_HOST_DEVICE static constexpr bool loads(int k) { return k == 0 && kMomentum && !kFirst; }
    LRFUSED_HOST_DEVICE static constexpr bool stores(int k) { return k == 0 && kMomentum; }
    template <typename opmath_t, typename S>
    LRFUSED_HOST_DEVICE static void apply(opmath_t& param, opmath_t grad, opmath_t (&state)[kMaxStateTensors],
                                          const S& s) {
      sgd_update<kDecay, kMomentum, kFirst, kNesterov>(param, grad, state[0], s);
    }
  };

  // Compile-time branches, so that the inner loops have none and vectorise.
  template <typename opmath_t, typename F>
  LRFUSED_HOST_DEVICE static void dispatch(const Scalars<opmath_t>& s, const TensorFacts& t, F&& f) {
    const bool flags[4] = {s.decay, s.use_momentum && t.has_state[0], t.first_write, s.nesterov};
    auto pick = [&](auto decay, auto momentum, auto first, auto nesterov) {
      f(Update<decltype(decay)::value, decltype(momentum)::value, decltype(first)::value,
               decltype(nesterov)::value>{});
    };
    dispatch_flags<4>(pick, flags);
  }
};

}  // namespace lrfused
