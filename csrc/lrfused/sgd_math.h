// The per-element SGD update shared by the CPU and CUDA kernels.
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

#include "lrfused/bool_dispatch.h"
#include "lrfused/group_config.h"

namespace lrfused {

// One group's values for this step, already in the kernel's math type.
template <typename opmath_t>
struct StepScalars {
  opmath_t neg_lr;
  opmath_t weight_decay;
  opmath_t momentum;
  opmath_t one_minus_dampening;
  // GradScaler's inverse scale, negated under maximize: (g * inv) * -1 == g * -inv exactly, and a
  // multiply, unlike a select on a flag, keeps the CPU loop vectorisable.
  opmath_t signed_inv_grad_scale;
};

// inv_grad_scale: as GradScaler computes it, float(1 / double(scale)).
template <typename opmath_t>
LRFUSED_HOST_DEVICE inline StepScalars<opmath_t> make_step_scalars(const GroupConfig& g, ScheduleValue v,
                                                                   float inv_grad_scale) {
  StepScalars<opmath_t> s;
  const opmath_t inv = static_cast<opmath_t>(inv_grad_scale);
  s.signed_inv_grad_scale = g.maximize ? -inv : inv;
  s.neg_lr = static_cast<opmath_t>(-v.lr);
  s.weight_decay = static_cast<opmath_t>(g.weight_decay);
  s.momentum = static_cast<opmath_t>(v.momentum);
  s.one_minus_dampening = static_cast<opmath_t>(1 - g.dampening);
  return s;
}

// Which branches of the update apply to one tensor in one step. Compile-time in the kernels so
// that the inner loops have no branches and vectorise.
struct UpdateFlags {
  bool decay;     // weight_decay != 0
  bool momentum;  // this step's momentum != 0 (torch skips the buffer entirely otherwise)
  bool first;     // the buffer has never been written: it starts as a copy of the gradient
  bool nesterov;
};

// float(1 / double(scale)), as torch.amp.GradScaler.unscale_ computes it; 1 without a scale.
LRFUSED_HOST_DEVICE inline float inverse_grad_scale(const float* grad_scale) {
  return grad_scale == nullptr ? 1.0f : static_cast<float>(1.0 / static_cast<double>(*grad_scale));
}

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, typename opmath_t>
LRFUSED_HOST_DEVICE inline void sgd_update(opmath_t& param, opmath_t grad, opmath_t& buf,
                                           const StepScalars<opmath_t>& s) {
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

template <typename F>
LRFUSED_HOST_DEVICE inline void dispatch_update_flags(const UpdateFlags& u, F&& f) {
  const bool flags[4] = {u.decay, u.momentum, u.first, u.nesterov};
  dispatch_flags<4>(f, flags);
}

}  // namespace lrfused
