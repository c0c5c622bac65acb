// The CPU inner loops for baseline x86-64 (or whatever the compiler targets by default).
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>
#include <type_traits>

#include "cpu/cpu_kernel.h"

namespace lrfused {
namespace cpu_default {
#define LRFUSED_UPDATE_RANGE update_tensor_range
#include "cpu/update_loops.inc"
#undef LRFUSED_UPDATE_RANGE
}  // namespace cpu_default

void update_tensor_range_default(const TensorPlan& t, int64_t begin, int64_t end) {
  cpu_default::update_tensor_range(t, begin, end);
}

}  // namespace lrfused
