// adamw_step_from_table: AdamW's update kernel, metadata from a device table (its own translation unit: see
// launch_meta.cuh).
#include "cuda/update_block.cuh"

namespace lrfused {

__global__ void __launch_bounds__(kThreads) adamw_step_from_table(const DeviceTable table, const StepPointers ptrs) {
  step_from_table<kRuleAdamW>(table, ptrs);
}

}  // namespace lrfused
