// lrfused._C: the fused step, the schedule math (for display and tests), and build information.
#include <torch/python.h>  // at::Tensor <-> torch.Tensor for pybind11; not torch/extension.h, whose torch/all.h doubles the build

#include <algorithm>
#include <optional>
#include <vector>

#include "lrfused/functional_step.h"
#include "lrfused/rules/rule_list.h"
#include "lrfused/step_plan.h"

namespace py = pybind11;

namespace lrfused {
namespace {

bool cuda_built() {
#ifdef LRFUSED_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace
}  // namespace lrfused

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace lrfused;
  m.doc() = "lrfused kernels: a whole SGD or AdamW step with its LR/momentum schedule in one kernel";

  // The enum values of schedule.h, for the int32 fields below.
  m.attr("SCHEDULE_CONSTANT") = static_cast<int>(kConstant);
  m.attr("SCHEDULE_ONE_CYCLE") = static_cast<int>(kOneCycle);
  m.attr("SCHEDULE_CYCLIC") = static_cast<int>(kCyclic);
  m.attr("SCHEDULE_RAMP") = static_cast<int>(kRamp);
  m.attr("SCHEDULE_WARM_RESTARTS") = static_cast<int>(kWarmRestarts);
  m.attr("SCHEDULE_WARMUP_COSINE") = static_cast<int>(kWarmupCosine);
  m.attr("SCHEDULE_TABLE") = static_cast<int>(kTable);
  m.attr("ANNEAL_COS") = static_cast<int>(kAnnealCos);
  m.attr("ANNEAL_LINEAR") = static_cast<int>(kAnnealLinear);
  m.attr("CYCLIC_TRIANGULAR") = static_cast<int>(kTriangular);
  m.attr("CYCLIC_TRIANGULAR2") = static_cast<int>(kTriangular2);
  m.attr("CYCLIC_EXP_RANGE") = static_cast<int>(kExpRange);
  // Values of a momentum_first_step flag besides a step number.
  m.attr("NEVER_WRITTEN") = kNeverWritten;
  // A group's update rule: its position in the rule list (rules/rule_list.h).
  m.attr("RULE_SGD") = rule_id<SGDRule>;
  m.attr("RULE_ADAMW") = rule_id<AdamWRule>;
  m.attr("RULE_LION") = rule_id<LionRule>;
  m.attr("MAX_RULE_PARAMS") = kMaxRuleParams;
  m.attr("MAX_STATE_TENSORS") = kMaxStateTensors;
  m.attr("WRITTEN_ELSEWHERE") = kWrittenElsewhere;

  py::class_<OneCycleParams>(m, "OneCycleParams")
      .def(py::init<>())
      .def_readwrite("initial_lr", &OneCycleParams::initial_lr)
      .def_readwrite("max_lr", &OneCycleParams::max_lr)
      .def_readwrite("min_lr", &OneCycleParams::min_lr)
      .def_readwrite("base_momentum", &OneCycleParams::base_momentum)
      .def_readwrite("max_momentum", &OneCycleParams::max_momentum)
      .def_readwrite("pct_start", &OneCycleParams::pct_start)
      .def_readwrite("total_steps", &OneCycleParams::total_steps)
      .def_readwrite("anneal", &OneCycleParams::anneal)
      .def_readwrite("three_phase", &OneCycleParams::three_phase);
  py::class_<CyclicParams>(m, "CyclicParams")
      .def(py::init<>())
      .def_readwrite("base_lr", &CyclicParams::base_lr)
      .def_readwrite("max_lr", &CyclicParams::max_lr)
      .def_readwrite("base_momentum", &CyclicParams::base_momentum)
      .def_readwrite("max_momentum", &CyclicParams::max_momentum)
      .def_readwrite("step_size_up", &CyclicParams::step_size_up)
      .def_readwrite("step_size_down", &CyclicParams::step_size_down)
      .def_readwrite("gamma", &CyclicParams::gamma)
      .def_readwrite("mode", &CyclicParams::mode);
  py::class_<RampParams>(m, "RampParams")
      .def(py::init<>())
      .def_readwrite("start_lr", &RampParams::start_lr)
      .def_readwrite("end_lr", &RampParams::end_lr)
      .def_readwrite("num_steps", &RampParams::num_steps)
      .def_readwrite("exponential", &RampParams::exponential);
  py::class_<WarmRestartsParams>(m, "WarmRestartsParams")
      .def(py::init<>())
      .def_readwrite("max_lr", &WarmRestartsParams::max_lr)
      .def_readwrite("eta_min", &WarmRestartsParams::eta_min)
      .def_readwrite("t_0", &WarmRestartsParams::t_0)
      .def_readwrite("t_mult", &WarmRestartsParams::t_mult)
      .def_readwrite("anneal", &WarmRestartsParams::anneal);
  py::class_<WarmupCosineParams>(m, "WarmupCosineParams")
      .def(py::init<>())
      .def_readwrite("lr", &WarmupCosineParams::lr)
      .def_readwrite("start_factor", &WarmupCosineParams::start_factor)
      .def_readwrite("eta_min", &WarmupCosineParams::eta_min)
      .def_readwrite("warmup_steps", &WarmupCosineParams::warmup_steps)
      .def_readwrite("total_steps", &WarmupCosineParams::total_steps);
  // (TableParams is not exposed: its pointer is only ever set from a checked tensor.)
  py::class_<Schedule>(m, "Schedule")
      .def(py::init<>())
      .def_readwrite("kind", &Schedule::kind)
      .def_readwrite("cycle_momentum", &Schedule::cycle_momentum)
      .def_readwrite("lr", &Schedule::lr)
      .def_readwrite("momentum", &Schedule::momentum)
      .def_readwrite("one_cycle", &Schedule::one_cycle)
      .def_readwrite("cyclic", &Schedule::cyclic)
      .def_readwrite("ramp", &Schedule::ramp)
      .def_readwrite("warm_restarts", &Schedule::warm_restarts)
      .def_readwrite("warmup_cosine", &Schedule::warmup_cosine);
  py::class_<GroupConfig>(m, "GroupConfig")
      .def(py::init<>())
      .def_readwrite("schedule", &GroupConfig::schedule)
      .def_readwrite("rule", &GroupConfig::rule)
      .def_readwrite("weight_decay", &GroupConfig::weight_decay)
      .def_readwrite("maximize", &GroupConfig::maximize)
      // The rule's own hyperparameters in the order its header names them (SGDRule::kDampening, ...);
      // set from a list of at most MAX_RULE_PARAMS floats, the missing ones 0.
      .def_property(
          "rule_params",
          [](const GroupConfig& g) { return std::vector<double>(g.rule_params, g.rule_params + kMaxRuleParams); },
          [](GroupConfig& g, const std::vector<double>& values) {
            TORCH_CHECK(values.size() <= static_cast<size_t>(kMaxRuleParams), "rule_params takes at most ",
                        kMaxRuleParams, " values, got ", values.size());
            std::fill(g.rule_params, g.rule_params + kMaxRuleParams, 0.0);
            std::copy(values.begin(), values.end(), g.rule_params);
          });

  m.def(
      "schedule_value",
      [](const Schedule& s, int64_t step) {
        TORCH_CHECK(s.kind != kTable, "schedule_value: a table schedule's values are its table's rows");
        const ScheduleValue v = schedule_value(s, step);
        return py::make_tuple(v.lr, v.momentum);
      },
      py::arg("schedule"), py::arg("step"),
      "(lr, momentum) of 0-based optimizer step `step`, as the kernels compute them");
  py::class_<StepPlan>(m, "StepPlan")
      .def(py::init<std::vector<at::Tensor>, const std::vector<std::vector<std::optional<at::Tensor>>>&,
                    const std::vector<std::optional<at::Tensor>>&, const std::vector<std::optional<at::Tensor>>&,
                    std::vector<int64_t>>(),
           py::arg("params"), py::arg("states"), py::arg("counts"), py::arg("master_params"), py::arg("group_of"))
      .def(
          "step",
          [](const StepPlan& plan, std::vector<GroupConfig> groups, std::vector<std::optional<at::Tensor>> tables,
             at::Tensor step, std::optional<at::Tensor> grad_scale, std::optional<at::Tensor> found_inf,
             bool count_skipped_steps, std::optional<std::vector<std::optional<at::Tensor>>> grads) {
            plan.step(StepPlan::StepInputs{std::move(groups), std::move(tables), std::move(step),
                                           std::move(grad_scale), std::move(found_inf), count_skipped_steps,
                                           std::move(grads)});
          },
          py::arg("groups"), py::arg("tables"), py::arg("step"), py::arg("grad_scale") = py::none(),
          py::arg("found_inf") = py::none(), py::arg("count_skipped_steps") = true, py::arg("grads") = py::none(),
          "one fused step of every param that has a grad (each group's update rule), with LR and momentum "
          "from the schedule at `step`, which it advances on its device (unless a step skipped for found_inf "
          "is not counted)");
  m.def(
      "config_to_vector", [](const GroupConfig& config) { return config_to_vector(config); }, py::arg("config"),
      "a GroupConfig as the flat float vector fused_step takes");
  m.def(
      "fused_step",
      [](std::vector<at::Tensor> params, std::vector<at::Tensor> grads, std::vector<at::Tensor> states,
         std::vector<int64_t> state_index, std::vector<at::Tensor> counts, std::vector<int64_t> count_index,
         std::vector<at::Tensor> master_params, std::vector<int64_t> master_index, std::vector<int64_t> group_of,
         const std::vector<double>& configs, std::vector<at::Tensor> tables, std::vector<int64_t> table_index,
         at::Tensor step, std::optional<at::Tensor> grad_scale, std::optional<at::Tensor> found_inf,
         bool count_skipped_steps) {
        functional_step(std::move(params), std::move(grads), IndexedTensors{std::move(states), std::move(state_index)},
                        IndexedTensors{std::move(counts), std::move(count_index)},
                        IndexedTensors{std::move(master_params), std::move(master_index)}, std::move(group_of),
                        configs, IndexedTensors{std::move(tables), std::move(table_index)}, std::move(step),
                        std::move(grad_scale), std::move(found_inf), count_skipped_steps);
      },
      py::arg("params"), py::arg("grads"), py::arg("states"), py::arg("state_index"), py::arg("counts"),
      py::arg("count_index"), py::arg("master_params"), py::arg("master_index"), py::arg("group_of"),
      py::arg("configs"), py::arg("tables"), py::arg("table_index"), py::arg("step"), py::arg("grad_scale"),
      py::arg("found_inf"), py::arg("count_skipped_steps"),
      "the fused step from explicit tensor lists (the body of the torch.library op lrfused::fused_step_)");
  m.def("cuda_built", &cuda_built, "whether the CUDA kernels were compiled in");
}
