#include "lrfused/functional_step.h"

namespace lrfused {
namespace {

// Calls f on every field of a GroupConfig, in the order of its flat vector.
template <typename Config, typename F>
void for_each_field(Config& g, F&& f) {
  auto& s = g.schedule;
  f(s.kind), f(s.cycle_momentum), f(s.lr), f(s.momentum);
  auto& o = s.one_cycle;
  f(o.initial_lr), f(o.max_lr), f(o.min_lr), f(o.base_momentum), f(o.max_momentum), f(o.pct_start),
      f(o.total_steps), f(o.anneal), f(o.three_phase);
  auto& c = s.cyclic;
  f(c.base_lr), f(c.max_lr), f(c.base_momentum), f(c.max_momentum), f(c.step_size_up), f(c.step_size_down),
      f(c.gamma), f(c.mode);
  auto& r = s.ramp;
  f(r.start_lr), f(r.end_lr), f(r.num_steps), f(r.exponential);
  auto& w = s.warm_restarts;
  f(w.max_lr), f(w.eta_min), f(w.t_0), f(w.t_mult), f(w.anneal);
  auto& wc = s.warmup_cosine;
  f(wc.lr), f(wc.start_factor), f(wc.eta_min), f(wc.warmup_steps), f(wc.total_steps);
  f(g.rule), f(g.weight_decay), f(g.maximize);
  for (auto& p : g.rule_params) {
    f(p);
  }
}

const at::Tensor* pick(const IndexedTensors& list, size_t i, const char* what) {
  const int64_t k = list.index[i];
  TORCH_CHECK(k >= -1 && k < static_cast<int64_t>(list.tensors.size()), what, " index ", i, " must be -1 or below ",
              list.tensors.size(), ", got ", k);
  return k < 0 ? nullptr : &list.tensors[k];
}

}  // namespace

std::vector<double> config_to_vector(GroupConfig config) {
  std::vector<double> values;
  for_each_field(config, [&](auto& field) { values.push_back(static_cast<double>(field)); });
  return values;
}

size_t config_vector_size() { return config_to_vector(GroupConfig{}).size(); }

GroupConfig config_from_vector(const double* values, size_t size) {
  TORCH_CHECK(size == config_vector_size(), "a group config vector has ", config_vector_size(), " values, got ", size);
  GroupConfig config;
  size_t i = 0;
  for_each_field(config, [&](auto& field) { field = static_cast<std::decay_t<decltype(field)>>(values[i++]); });
  return config;
}

void functional_step(std::vector<at::Tensor> params, std::vector<at::Tensor> grads, const IndexedTensors& states,
                     const IndexedTensors& counts, const IndexedTensors& masters,
                     std::vector<int64_t> group_of, const std::vector<double>& configs, const IndexedTensors& tables,
                     at::Tensor step, std::optional<at::Tensor> grad_scale, std::optional<at::Tensor> found_inf,
                     bool count_skipped_steps) {
  const size_t n = params.size();
  const size_t width = config_vector_size();
  TORCH_CHECK(configs.size() % width == 0, "configs must hold ", width, " values per group, got ", configs.size());
  const size_t num_groups = configs.size() / width;
  TORCH_CHECK(states.index.size() == n * kMaxStateTensors && counts.index.size() == n && masters.index.size() == n &&
                  tables.index.size() == num_groups,
              "state_index needs ", kMaxStateTensors, " entries per param (", n * kMaxStateTensors,
              "), count_index and master_index one per param (", n, "), table_index one per group (", num_groups,
              "); got ", states.index.size(), ", ", counts.index.size(), ", ", masters.index.size(), ", ",
              tables.index.size());
  TORCH_CHECK(grads.size() == n && group_of.size() == n, "grads and group_of need one entry per param (", n,
              "); got ", grads.size(), " and ", group_of.size());
  StepArgs args;
  args.params.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ParamTensors& t = args.params[i];
    t.param = &params[i];
    t.grad = &grads[i];
    for (int k = 0; k < kMaxStateTensors; ++k) {
      t.state[k] = pick(states, i * kMaxStateTensors + k, "state_index");
    }
    t.count = pick(counts, i, "count_index");
    t.master_param = pick(masters, i, "master_index");
    t.group = group_of[i];
  }
  for (size_t g = 0; g < num_groups; ++g) {
    args.groups.push_back(config_from_vector(configs.data() + g * width, width));
    const at::Tensor* table = pick(tables, g, "table_index");
    args.tables.push_back(table == nullptr ? at::Tensor() : *table);
  }
  args.step = std::move(step);
  args.grad_scale = grad_scale.value_or(at::Tensor());
  args.found_inf = found_inf.value_or(at::Tensor());
  args.count_skipped_steps = count_skipped_steps;
  run_step(checked_step(args));
}

}  // namespace lrfused
