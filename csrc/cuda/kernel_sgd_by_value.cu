// sgd_step_by_value: SGD's update kernel, metadata by value (its own translation unit: see
// launch_meta.cuh).
#include "cuda/update_block.cuh"

namespace lrfused {

__global__ void __launch_bounds__(kThreads) sgd_step_by_value(const __grid_constant__ LaunchMeta meta, const StepPointers ptrs) {
  step_by_value<kRuleSGD>(meta, ptrs);
}

}  // namespace lrfused
