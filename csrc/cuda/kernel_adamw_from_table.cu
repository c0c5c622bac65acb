// adamw_step_from_table: AdamWRule's update kernel and its launch, metadata from a device table (its
// own translation unit: see launch_meta.cuh).
#include "cuda/rule_kernels.cuh"

namespace lrfused {
LRFUSED_FROM_TABLE_KERNEL(AdamWRule, adamw)
}  // namespace lrfused
