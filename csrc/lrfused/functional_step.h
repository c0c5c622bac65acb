// The fused step as a plain function of tensor lists, for the torch.library op (torch.compile):
// no cached plan, every tensor given, the group configs as flat float vectors (an op's schema has no
// structs).
#pragma once

#include <optional>
#include <vector>

#include "lrfused/step_args.h"

namespace lrfused {

// A GroupConfig as a flat vector of doubles and back; one field list defines both directions.
std::vector<double> config_to_vector(GroupConfig config);
GroupConfig config_from_vector(const double* values, size_t size);
size_t config_vector_size();

// Optional per-param tensors travel as a dense list plus an index per param (-1: none), since an
// op cannot mutate a list of optional tensors under torch.compile.
struct IndexedTensors {
  std::vector<at::Tensor> tensors;
  std::vector<int64_t> index;  // per param (or group): position in `tensors`, or -1
};

// states.index has kMaxStateTensors entries per param (its rule's state tensors, -1 past them);
// counts.index and masters.index one per param; tables.index one per group.
void functional_step(std::vector<at::Tensor> params, std::vector<at::Tensor> grads, const IndexedTensors& states,
                     const IndexedTensors& counts, const IndexedTensors& masters,
                     std::vector<int64_t> group_of, const std::vector<double>& configs, const IndexedTensors& tables,
                     at::Tensor step, std::optional<at::Tensor> grad_scale, std::optional<at::Tensor> found_inf,
                     bool count_skipped_steps);

}  // namespace lrfused
