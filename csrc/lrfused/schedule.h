// The learning-rate and momentum schedules, computed from a step counter.
//
// Single source of truth for schedule math: the CPU kernel, the CUDA kernel and the
// `_C.schedule_value` binding (used for param_groups display and by the tests) all call
// `schedule_value`. Plain structs, pure functions, double precision, no ATen, so the same code
// compiles for host and device.
//
// Every formula repeats torch.optim.lr_scheduler's arithmetic in the same order, so that on the
// host the values are bit-identical to OneCycleLR / CyclicLR (Python floats are doubles).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LRFUSED_HOST_DEVICE __host__ __device__
#else
#define LRFUSED_HOST_DEVICE
#endif

namespace lrfused {

enum ScheduleKind : int32_t {
  kConstant = 0,
  kOneCycle = 1,
  kCyclic = 2,
  kRamp = 3,
  kWarmRestarts = 4,
  kWarmupCosine = 5,
  kTable = 6,
};
enum AnnealStrategy : int32_t { kAnnealCos = 0, kAnnealLinear = 1 };
enum CyclicMode : int32_t { kTriangular = 0, kTriangular2 = 1, kExpRange = 2 };

// torch.optim.lr_scheduler.OneCycleLR, per param group.
struct OneCycleParams {
  double initial_lr = 0.0;  // max_lr / div_factor
  double max_lr = 0.0;
  double min_lr = 0.0;      // initial_lr / final_div_factor
  double base_momentum = 0.0;
  double max_momentum = 0.0;
  double pct_start = 0.3;
  int64_t total_steps = 1;
  int32_t anneal = kAnnealCos;
  bool three_phase = false;
};

// torch.optim.lr_scheduler.CyclicLR, per param group.
struct CyclicParams {
  double base_lr = 0.0;
  double max_lr = 0.0;
  double base_momentum = 0.0;
  double max_momentum = 0.0;
  double step_size_up = 2000.0;
  double step_size_down = 2000.0;
  double gamma = 1.0;
  int32_t mode = kTriangular;
};

// The LR range test's sweep: from start_lr at step 0 to end_lr at step num_steps - 1 (both exact),
// geometric or linear in between, then held at end_lr. Momentum is constant.
struct RampParams {
  double start_lr = 1e-7;
  double end_lr = 10.0;
  int64_t num_steps = 100;
  bool exponential = true;
};

// torch.optim.lr_scheduler.CosineAnnealingWarmRestarts stepped once per optimizer step (SGDR):
// each cycle anneals from max_lr down towards eta_min, then restarts at max_lr; the i-th cycle lasts
// t_0 * t_mult^i steps. anneal kAnnealLinear gives a sawtooth instead of the cosine.
struct WarmRestartsParams {
  double max_lr = 0.0;
  double eta_min = 0.0;
  int64_t t_0 = 1;
  int64_t t_mult = 1;
  int32_t anneal = kAnnealCos;
};

// Linear warm-up then cosine decay, the closed forms of torch's SequentialLR(LinearLR(start_factor,
// total_iters=warmup_steps), CosineAnnealingLR(T_max=total_steps - warmup_steps, eta_min)): from
// lr * start_factor at step 0 up to lr at step warmup_steps, then down towards eta_min, reached at
// step total_steps.
struct WarmupCosineParams {
  double lr = 0.0;
  double start_factor = 1.0 / 3;
  double eta_min = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
};

// A per-step table of (lr, momentum) pairs on the params' device, row `step` for step `step`, the
// last row past the end. The pointer is set by the step's checks from a validated tensor, never from
// Python.
struct TableParams {
  const double* values = nullptr;
  int64_t length = 0;
};

struct Schedule {
  int32_t kind = kConstant;
  bool cycle_momentum = false;
  double lr = 0.0;        // kConstant
  double momentum = 0.0;  // used whenever cycle_momentum is false
  // kConstant with a tensor lr (as torch's optimizers take one, so that it can change inside a CUDA
  // graph): the LR is read from this one-element tensor on the params' device at every step, in
  // place of `lr`. At most one is set, by the step's checks from a validated tensor, never from Python.
  const float* lr_float = nullptr;
  const double* lr_double = nullptr;
  OneCycleParams one_cycle;
  CyclicParams cyclic;
  RampParams ramp;
  WarmRestartsParams warm_restarts;
  WarmupCosineParams warmup_cosine;
  TableParams table;
};

struct ScheduleValue {
  double lr;
  double momentum;
};

namespace detail {

LRFUSED_HOST_DEVICE inline double anneal(int32_t strategy, double start, double end, double pct) {
  if (strategy == kAnnealLinear) {
    return (end - start) * pct + start;
  }
  const double pi = 3.141592653589793;  // == math.pi
  const double cos_out = cos(pi * pct) + 1;
  return end + (start - end) / 2.0 * cos_out;
}

LRFUSED_HOST_DEVICE inline ScheduleValue one_cycle_value(const OneCycleParams& p, bool cycle_momentum,
                                                         double momentum, int64_t step) {
  const double n = static_cast<double>(p.total_steps);
  // Phases as in OneCycleLR._schedule_phases: {end_step, start/end lr, start/end momentum}.
  struct Phase {
    double end_step, start_lr, end_lr, start_m, end_m;
  };
  Phase phases[3];
  int num_phases;
  if (p.three_phase) {
    phases[0] = {p.pct_start * n - 1, p.initial_lr, p.max_lr, p.max_momentum, p.base_momentum};
    phases[1] = {2 * p.pct_start * n - 2, p.max_lr, p.initial_lr, p.base_momentum, p.max_momentum};
    phases[2] = {n - 1, p.initial_lr, p.min_lr, p.max_momentum, p.max_momentum};
    num_phases = 3;
  } else {
    phases[0] = {p.pct_start * n - 1, p.initial_lr, p.max_lr, p.max_momentum, p.base_momentum};
    phases[1] = {n - 1, p.max_lr, p.min_lr, p.base_momentum, p.max_momentum};
    num_phases = 2;
  }
  const double step_num = static_cast<double>(step);
  double start_step = 0.0;
  for (int i = 0; i < num_phases; ++i) {
    const Phase& ph = phases[i];
    if (step_num <= ph.end_step || i == num_phases - 1) {
      // A phase of zero length (pct_start * total_steps == 1) is at its end value; OneCycleLR
      // divides by zero there.
      const double span = ph.end_step - start_step;
      const double pct = span == 0.0 ? 1.0 : (step_num - start_step) / span;
      ScheduleValue v;
      v.lr = anneal(p.anneal, ph.start_lr, ph.end_lr, pct);
      v.momentum = cycle_momentum ? anneal(p.anneal, ph.start_m, ph.end_m, pct) : momentum;
      return v;
    }
    start_step = ph.end_step;
  }
  return ScheduleValue{0.0, momentum};  // unreachable: the last phase always matches
}

LRFUSED_HOST_DEVICE inline double cyclic_scale(const CyclicParams& p, double cycle, double iteration) {
  switch (p.mode) {
    case kTriangular2:
      return 1 / pow(2.0, cycle - 1);
    case kExpRange:
      return pow(p.gamma, iteration);
    default:
      return 1.0;
  }
}

LRFUSED_HOST_DEVICE inline ScheduleValue cyclic_value(const CyclicParams& p, bool cycle_momentum,
                                                      double momentum, int64_t step) {
  const double total_size = p.step_size_up + p.step_size_down;
  const double step_ratio = p.step_size_up / total_size;
  const double last_epoch = static_cast<double>(step);
  const double cycle = floor(1 + last_epoch / total_size);
  const double x = 1.0 + last_epoch / total_size - cycle;
  const double scale_factor = x <= step_ratio ? x / step_ratio : (x - 1) / (step_ratio - 1);
  const double scale = cyclic_scale(p, cycle, last_epoch);
  ScheduleValue v;
  v.lr = p.base_lr + (p.max_lr - p.base_lr) * scale_factor * scale;
  v.momentum = cycle_momentum
                   ? p.max_momentum - (p.max_momentum - p.base_momentum) * scale_factor * scale
                   : momentum;
  return v;
}

LRFUSED_HOST_DEVICE inline double ramp_lr(const RampParams& p, int64_t step) {
  if (step <= 0) {
    return p.start_lr;
  }
  if (step >= p.num_steps - 1) {
    return p.end_lr;
  }
  const double t = static_cast<double>(step) / static_cast<double>(p.num_steps - 1);
  if (p.exponential) {
    return p.start_lr * pow(p.end_lr / p.start_lr, t);
  }
  return p.start_lr + (p.end_lr - p.start_lr) * t;
}

LRFUSED_HOST_DEVICE inline double warm_restarts_lr(const WarmRestartsParams& p, int64_t step) {
  // T_cur: steps since the last restart; T_i: length of the current cycle.
  int64_t t_cur = step;
  int64_t t_i = p.t_0;
  if (p.t_mult == 1) {
    t_cur = step % p.t_0;
  } else {
    while (t_cur >= t_i) {  // cycles grow geometrically: a few dozen iterations at most
      t_cur -= t_i;
      t_i *= p.t_mult;
    }
  }
  if (p.anneal == kAnnealLinear) {
    return p.eta_min + (p.max_lr - p.eta_min) * (1.0 - static_cast<double>(t_cur) / static_cast<double>(t_i));
  }
  const double pi = 3.141592653589793;  // == math.pi
  return p.eta_min + (p.max_lr - p.eta_min) * (1 + cos(pi * static_cast<double>(t_cur) / static_cast<double>(t_i))) / 2;
}

LRFUSED_HOST_DEVICE inline double warmup_cosine_lr(const WarmupCosineParams& p, int64_t step) {
  if (step < p.warmup_steps) {  // LinearLR._get_closed_form_lr with end_factor 1
    return p.lr * (p.start_factor + (1.0 - p.start_factor) * static_cast<double>(step) / static_cast<double>(p.warmup_steps));
  }
  // CosineAnnealingLR._get_closed_form_lr, counted from the end of the warm-up
  const double pi = 3.141592653589793;  // == math.pi
  const double t_cur = static_cast<double>(step - p.warmup_steps);
  const double t_max = static_cast<double>(p.total_steps - p.warmup_steps);
  return p.eta_min + (p.lr - p.eta_min) * (1 + cos(pi * t_cur / t_max)) / 2;
}

LRFUSED_HOST_DEVICE inline ScheduleValue table_value(const TableParams& p, int64_t step) {
  const int64_t row = step < p.length ? step : p.length - 1;
  return ScheduleValue{p.values[2 * row], p.values[2 * row + 1]};
}

// As torch.optim.SGD reads a tensor lr: its value in its own dtype, widened to double.
LRFUSED_HOST_DEVICE inline double constant_lr(const Schedule& s) {
  if (s.lr_double != nullptr) {
    return *s.lr_double;
  }
  return s.lr_float != nullptr ? static_cast<double>(*s.lr_float) : s.lr;
}

}  // namespace detail

// LR and momentum of optimizer step `step` (0-based): the values torch's scheduler shows after
// `step` calls of scheduler.step().
LRFUSED_HOST_DEVICE inline ScheduleValue schedule_value(const Schedule& s, int64_t step) {
  switch (s.kind) {
    case kOneCycle:
      return detail::one_cycle_value(s.one_cycle, s.cycle_momentum, s.momentum, step);
    case kCyclic:
      return detail::cyclic_value(s.cyclic, s.cycle_momentum, s.momentum, step);
    case kRamp:
      return ScheduleValue{detail::ramp_lr(s.ramp, step), s.momentum};
    case kWarmRestarts:
      return ScheduleValue{detail::warm_restarts_lr(s.warm_restarts, step), s.momentum};
    case kWarmupCosine:
      return ScheduleValue{detail::warmup_cosine_lr(s.warmup_cosine, step), s.momentum};
    case kTable:
      return detail::table_value(s.table, step);
    default:
      return ScheduleValue{detail::constant_lr(s), s.momentum};
  }
}

// The step a kernel evaluates. Past the end of a schedule of fixed length the host raises (as
// OneCycleLR does) unless asked to hold the final values; a kernel cannot raise, so it always holds,
// which is what a CUDA graph replayed past the end gets.
LRFUSED_HOST_DEVICE inline int64_t kernel_step(const Schedule& s, int64_t step) {
  int64_t last = -1;
  if (s.kind == kOneCycle) {
    last = s.one_cycle.total_steps - 1;
  } else if (s.kind == kWarmupCosine) {
    last = s.warmup_cosine.total_steps - 1;
  }
  return last >= 0 && step > last ? last : step;
}

}  // namespace lrfused
