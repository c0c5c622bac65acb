// lion_step_by_value: LionRule's update kernel and its launch, metadata by value (its
// own translation unit: see launch_meta.cuh).
#include "cuda/rule_kernels.cuh"

namespace lrfused {
LRFUSED_BY_VALUE_KERNEL(LionRule, lion)
}  // namespace lrfused
