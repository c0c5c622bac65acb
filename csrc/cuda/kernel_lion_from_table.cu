// lion_step_from_table: LionRule's update kernel and its launch, metadata from a device table (its
// own translation unit: see launch_meta.cuh).
#include "cuda/rule_kernels.cuh"

namespace lrfused {
LRFUSED_FROM_TABLE_KERNEL(LionRule, lion)
}  // namespace lrfused
