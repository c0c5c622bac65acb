// Argument checks for a fused step. Every message names the argument and shows what it got.
#include <ATen/ExpandUtils.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "lrfused/rules/rule_list.h"
#include "lrfused/step_args.h"

namespace lrfused {
namespace {

bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

void check_group(const GroupConfig& g, size_t index) {
  const Schedule& s = g.schedule;
  TORCH_CHECK(s.kind >= kConstant && s.kind <= kTable, "param group ", index, ": unknown schedule kind ", s.kind);
  dispatch_rule(g.rule, [&](auto tag) {
    using Rule = typename decltype(tag)::type;
    check_finite_nonnegative(s.momentum, Rule::kMomentumName, index);
    check_finite_nonnegative(g.weight_decay, "weight_decay", index);
    Rule::check_group(g, index);
  });
  if (s.kind == kConstant) {
    check_finite_nonnegative(s.lr, "lr", index);
  } else if (s.kind == kOneCycle) {
    const OneCycleParams& p = s.one_cycle;
    TORCH_CHECK(p.total_steps >= 1, "param group ", index, ": total_steps must be >= 1, got ",
                p.total_steps);
    TORCH_CHECK(p.pct_start >= 0.0 && p.pct_start <= 1.0, "param group ", index,
                ": pct_start must be in [0, 1], got ", p.pct_start);
    TORCH_CHECK(p.anneal == kAnnealCos || p.anneal == kAnnealLinear, "param group ", index,
                ": unknown anneal strategy ", p.anneal);
    check_finite_nonnegative(p.initial_lr, "initial_lr", index);
    check_finite_nonnegative(p.max_lr, "max_lr", index);
    check_finite_nonnegative(p.min_lr, "min_lr", index);
    check_finite_nonnegative(p.base_momentum, "base_momentum", index);
    check_finite_nonnegative(p.max_momentum, "max_momentum", index);
  } else if (s.kind == kWarmRestarts) {
    const WarmRestartsParams& p = s.warm_restarts;
    TORCH_CHECK(p.t_0 >= 1 && p.t_mult >= 1, "param group ", index, ": T_0 and T_mult must be >= 1, got ", p.t_0,
                " and ", p.t_mult);
    TORCH_CHECK(p.anneal == kAnnealCos || p.anneal == kAnnealLinear, "param group ", index,
                ": unknown anneal strategy ", p.anneal);
    check_finite_nonnegative(p.max_lr, "max_lr", index);
    check_finite_nonnegative(p.eta_min, "eta_min", index);
    TORCH_CHECK(p.eta_min <= p.max_lr, "param group ", index, ": eta_min must be <= max_lr, got ", p.eta_min,
                " > ", p.max_lr);
  } else if (s.kind == kWarmupCosine) {
    const WarmupCosineParams& p = s.warmup_cosine;
    TORCH_CHECK(p.warmup_steps >= 0 && p.total_steps > p.warmup_steps, "param group ", index,
                ": needs 0 <= warmup_steps < total_steps, got ", p.warmup_steps, " and ", p.total_steps);
    TORCH_CHECK(std::isfinite(p.start_factor) && p.start_factor > 0.0 && p.start_factor <= 1.0, "param group ",
                index, ": warmup start_factor must be in (0, 1], got ", p.start_factor);
    check_finite_nonnegative(p.lr, "lr", index);
    check_finite_nonnegative(p.eta_min, "eta_min", index);
  } else if (s.kind == kTable) {
    // checked with its tensor in check_table
  } else if (s.kind == kRamp) {
    const RampParams& p = s.ramp;
    TORCH_CHECK(p.num_steps >= 2, "param group ", index, ": num_steps must be >= 2, got ", p.num_steps);
    TORCH_CHECK(std::isfinite(p.start_lr) && std::isfinite(p.end_lr) && p.start_lr > 0.0 && p.end_lr > p.start_lr,
                "param group ", index, ": the ramp needs finite 0 < start_lr < end_lr, got ", p.start_lr, " and ",
                p.end_lr);
  } else {
    const CyclicParams& p = s.cyclic;
    TORCH_CHECK(p.step_size_up >= 1 && p.step_size_down >= 1, "param group ", index,
                ": step_size_up and step_size_down must be >= 1, got ", p.step_size_up, " and ",
                p.step_size_down);
    TORCH_CHECK(p.mode == kTriangular || p.mode == kTriangular2 || p.mode == kExpRange,
                "param group ", index, ": unknown cyclic mode ", p.mode);
    check_finite_nonnegative(p.base_lr, "base_lr", index);
    check_finite_nonnegative(p.max_lr, "max_lr", index);
    check_finite_nonnegative(p.base_momentum, "base_momentum", index);
    check_finite_nonnegative(p.max_momentum, "max_momentum", index);
    TORCH_CHECK(std::isfinite(p.gamma) && p.gamma > 0.0, "param group ", index,
                ": gamma must be a finite number > 0, got ", p.gamma);
  }
}

// Checks a tensor that must mirror `param` exactly (grad, state).
void check_like_param(const at::Tensor& t, const at::Tensor& param, const char* what, size_t i) {
  TORCH_CHECK(t.layout() == at::kStrided, what, " of param ", i, " must be dense (strided), got layout ",
              t.layout(), (t.is_sparse() ? "; sparse gradients are not supported" : ""));
  TORCH_CHECK(t.scalar_type() == param.scalar_type(), what, " of param ", i, " must have the param's dtype ",
              param.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == param.sizes(), what, " of param ", i, " must have the param's shape ",
              param.sizes(), ", got ", t.sizes());
  TORCH_CHECK(t.device() == param.device(), what, " of param ", i, " must be on the param's device ",
              param.device(), ", got ", t.device());
}

// A kConstant schedule's tensor lr: one float32 or float64 element on the params' device.
void check_lr_tensor(GroupConfig& g, const at::Tensor& lr, const at::Device& device, size_t index) {
  TORCH_CHECK(lr.layout() == at::kStrided && lr.numel() == 1 &&
                  (lr.scalar_type() == at::kFloat || lr.scalar_type() == at::kDouble),
              "param group ", index, ": a tensor lr must be one float32 or float64 element, got dtype ",
              lr.scalar_type(), " with ", lr.numel(), " elements");
  TORCH_CHECK(lr.device() == device, "param group ", index, ": a tensor lr must be on the params' device ", device,
              ", got ", lr.device());
  if (lr.scalar_type() == at::kDouble) {
    g.schedule.lr_double = lr.const_data_ptr<double>();
  } else {
    g.schedule.lr_float = lr.const_data_ptr<float>();
  }
}

void check_table(GroupConfig& g, const at::Tensor& table, const at::Device& device, size_t index) {
  if (g.schedule.kind == kConstant && table.defined()) {
    return check_lr_tensor(g, table, device, index);
  }
  const bool wants_table = g.schedule.kind == kTable;
  TORCH_CHECK(table.defined() == wants_table, "param group ", index,
              (wants_table ? ": a table schedule needs its table" : ": a table was given to a schedule without one"));
  if (!wants_table) {
    return;
  }
  TORCH_CHECK(table.scalar_type() == at::kDouble && table.dim() == 2 && table.size(0) >= 1 && table.size(1) == 2 &&
                  table.is_contiguous(),
              "param group ", index, ": the schedule table must be a contiguous float64 tensor of shape [steps, 2] "
              "(lr, momentum), got dtype ", table.scalar_type(), " and shape ", table.sizes());
  TORCH_CHECK(table.device() == device, "param group ", index, ": the schedule table must be on the params' device ",
              device, ", got ", table.device());
  g.schedule.table = TableParams{table.const_data_ptr<double>(), table.size(0)};
}

void check_scaler_tensor(const at::Tensor& t, const at::Device& device, const char* what) {
  if (!t.defined()) {
    return;
  }
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.numel() == 1, what,
              " must be a one-element float32 tensor (as torch.amp.GradScaler makes it), got dtype ", t.scalar_type(),
              " with ", t.numel(), " elements");
  TORCH_CHECK(t.device() == device, what, " must be on the params' device ", device, ", got ", t.device());
}

void check_counter(const at::Tensor& t, const at::Device& device, const char* what,
                   at::ScalarType dtype = at::kLong) {
  TORCH_CHECK(t.scalar_type() == dtype && t.numel() == 1 && t.layout() == at::kStrided, what,
              " must be a one-element ", dtype, " tensor, got dtype ", t.scalar_type(), " with ", t.numel(),
              " elements");
  TORCH_CHECK(t.device() == device, what, " must be on the params' device ", device, ", got ", t.device());
}

// The state tensors and count a group's rule keeps, by name (nullptr past the rule's last one), and
// which of them a param of the group must have.
struct StateLayout {
  const char* state[kMaxStateTensors];
  bool required[kMaxStateTensors];
  CountPolicy count_policy;
  const char* count;
  at::ScalarType count_dtype;
  bool count_required;
};

StateLayout layout_of(const GroupConfig& g) {
  StateLayout out{};
  dispatch_rule(g.rule, [&](auto tag) {
    using Rule = typename decltype(tag)::type;
    std::copy(Rule::kStateNames, Rule::kStateNames + kMaxStateTensors, out.state);
    Rule::required_state(g, out.required);
    out.count_policy = Rule::kCount;
    out.count = Rule::kCountName;
    out.count_dtype = Rule::kCount == CountPolicy::kPerParamStep ? at::kFloat : at::kLong;
    out.count_required = Rule::kCount == CountPolicy::kPerParamStep ||
                         (Rule::kCount == CountPolicy::kFirstWriteFlag && out.required[0]);
  });
  return out;
}

// Checks param i and returns it as the kernels see it; sets *stage when the param is not dense in
// memory (the kernel then updates a dense copy) and *realign when its grad has other strides than
// the tensor the kernel updates. Reads metadata only, so params can be checked in parallel.
KernelTensor checked_param(const StepArgs& args, size_t i, const at::Device& device, bool* stage, bool* realign) {
  const ParamTensors& t = args.params[i];
  TORCH_CHECK(t.param != nullptr && t.param->defined(), "param ", i, " is undefined");
  const at::Tensor& p = *t.param;
  TORCH_CHECK(p.layout() == at::kStrided, "param ", i, " must be dense (strided), got layout ", p.layout());
  TORCH_CHECK(is_supported_float(p.scalar_type()), "param ", i,
              " must be float32, float64, float16 or bfloat16, got ", p.scalar_type());
  TORCH_CHECK(p.device() == device, "all params must be on one device: param 0 is on ", device, ", param ", i,
              " is on ", p.device());
  const bool dense = p.is_non_overlapping_and_dense();
  TORCH_CHECK(dense || at::has_internal_overlap(p) != at::MemOverlap::Yes, "param ", i, " (shape ", p.sizes(),
              ", strides ", p.strides(), ") has elements that share memory, as expand() makes; an in-place update "
              "of it is not defined (torch.optim.SGD fails on it too)");
  // The strides the kernel's tensors have: the param's, or for a strided view those of its dense copy
  // (empty_like's, which its state, made by zeros_like, also has).
  std::vector<int64_t> copy_strides;
  if (!dense) {
    copy_strides = at::infer_dense_strides(p.sizes(), p.strides());
  }
  const at::IntArrayRef strides = dense ? p.strides() : at::IntArrayRef(copy_strides);
  TORCH_CHECK(t.grad != nullptr && t.grad->defined(), "grad of param ", i, " is undefined");
  const at::Tensor& grad = *t.grad;
  check_like_param(grad, p, "grad", i);
  TORCH_CHECK(t.group >= 0 && static_cast<size_t>(t.group) < args.groups.size(), "group_of[", i,
              "] must index one of the ", args.groups.size(), " groups, got ", t.group);

  const GroupConfig& group = args.groups[t.group];
  const StateLayout layout = layout_of(group);
  const bool* required = layout.required;
  // With a master copy, the update's state (master and moments or buffer) is float32.
  const bool has_master = t.master_param != nullptr && t.master_param->defined();
  if (has_master) {
    const at::Tensor& master = *t.master_param;
    TORCH_CHECK(p.scalar_type() == at::kHalf || p.scalar_type() == at::kBFloat16, "param ", i,
                " has a float32 master copy, which only float16 and bfloat16 params keep; it is ", p.scalar_type());
    TORCH_CHECK(master.layout() == at::kStrided && master.scalar_type() == at::kFloat && master.sizes() == p.sizes() &&
                    master.strides() == strides && master.device() == p.device(),
                "master_param of param ", i, " must be a float32 tensor with the param's shape ", p.sizes(),
                ", strides ", strides, " and device; got ", master.scalar_type(), " ", master.sizes(), " ",
                master.strides(), " on ", master.device());
  }
  for (int k = 0; k < kMaxStateTensors; ++k) {
    const bool given = t.state[k] != nullptr && t.state[k]->defined();
    TORCH_CHECK(given || !required[k], "param ", i, " (group ", t.group, ") needs its ", layout.state[k],
                " but has none");
    TORCH_CHECK(!given || layout.state[k] != nullptr, "param ", i, " (group ", t.group, ") was given a state tensor ",
                k, " that its update rule does not keep");
    if (given && required[k]) {
      const at::Tensor& st = *t.state[k];
      check_like_param(st, has_master ? *t.master_param : p, layout.state[k], i);
      TORCH_CHECK(st.strides() == strides, layout.state[k], " of param ", i, " must have the strides ", strides,
                  (dense ? " of the param" : " of a dense copy of the param"), ", got ", st.strides());
    }
  }
  const bool has_count = t.count != nullptr && t.count->defined();
  TORCH_CHECK(has_count || !layout.count_required, "param ", i, " (group ", t.group, ") needs its ", layout.count,
              " but has none");
  TORCH_CHECK(!has_count || layout.count_policy != CountPolicy::kNone, "param ", i, " (group ", t.group,
              ") was given a count that its update rule does not keep");
  // (a first-write flag belongs to state 0)
  TORCH_CHECK(layout.count_policy != CountPolicy::kFirstWriteFlag ||
                  has_count == (t.state[0] != nullptr && t.state[0]->defined()),
              "param ", i, ": ", layout.state[0], " and ", layout.count,
              " must both be given or both be omitted");
  if (has_count) {
    check_counter(*t.count, device, layout.count, layout.count_dtype);
  }
  *stage = !dense;
  *realign = grad.strides() != strides;
  KernelTensor out{};
  out.param = p.data_ptr();
  out.grad = grad.const_data_ptr();
  for (int k = 0; k < kMaxStateTensors; ++k) {
    out.state[k] = required[k] ? t.state[k]->data_ptr() : nullptr;
  }
  out.master = has_master ? t.master_param->data_ptr<float>() : nullptr;
  out.count = has_count ? t.count->data_ptr() : nullptr;
  out.numel = p.numel();
  out.group = static_cast<int32_t>(t.group);
  out.dtype = p.scalar_type();
  return out;
}

}  // namespace

KernelStep checked_step(const StepArgs& args) {
  const size_t n = args.params.size();
  TORCH_CHECK(args.tables.size() == args.groups.size(), "tables must have one entry per group; got ",
              args.tables.size(), " for ", args.groups.size(), " groups");
  TORCH_CHECK(args.step.defined(), "step must be a tensor");
  const bool first_param_defined = n > 0 && args.params[0].param != nullptr && args.params[0].param->defined();
  const at::Device device = first_param_defined ? args.params[0].param->device() : args.step.device();
  KernelStep out;
  out.device = device;
  out.groups = args.groups;
  for (size_t g = 0; g < out.groups.size(); ++g) {
    check_group(out.groups[g], g);
    check_table(out.groups[g], args.tables[g], device, g);
  }
  check_counter(args.step, device, "step");
  check_scaler_tensor(args.grad_scale, device, "grad_scale");
  check_scaler_tensor(args.found_inf, device, "found_inf");

  out.tensors.resize(n);
  std::vector<uint8_t> stage(n, 0), realign(n, 0);
  auto check_range = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      bool s = false, r = false;
      out.tensors[i] = checked_param(args, static_cast<size_t>(i), device, &s, &r);
      stage[i] = s;
      realign[i] = r;
    }
  };
  try {
    at::parallel_for(0, static_cast<int64_t>(n), kParamsPerTask, check_range);
  } catch (const std::exception&) {
    // Several params may be bad and threads race to report one: report the first, as a serial
    // check would.
    check_range(0, static_cast<int64_t>(n));
    throw;
  }
  // Only now, with everything valid, copy the params that are not dense and the grads that have
  // other strides than the tensor the kernel updates (empty_like(param) has that tensor's strides).
  for (size_t i = 0; i < n; ++i) {
    if (stage[i]) {
      const at::Tensor& param = *args.params[i].param;
      out.staged_params.emplace_back(param, at::empty_like(param).copy_(param));
      out.tensors[i].param = out.staged_params.back().second.data_ptr();
    }
    if (realign[i]) {
      const ParamTensors& t = args.params[i];
      out.realigned_grads.push_back(at::empty_like(*t.param).copy_(*t.grad));
      out.tensors[i].grad = out.realigned_grads.back().const_data_ptr();
    }
  }
  out.step = args.step.data_ptr<int64_t>();
  out.grad_scale = args.grad_scale.defined() ? args.grad_scale.const_data_ptr<float>() : nullptr;
  out.found_inf = args.found_inf.defined() ? args.found_inf.const_data_ptr<float>() : nullptr;
  out.count_skipped_steps = args.count_skipped_steps;
  return out;
}

}  // namespace lrfused
