// The CPU inner loops compiled for AVX2 (8 floats per instruction), chosen at run time when the
// processor has it. Still no FMA: results equal the baseline build's bit for bit.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>
#include <type_traits>

#include "cpu/cpu_kernel.h"

namespace lrfused {
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2")
namespace cpu_avx2 {
#define LRFUSED_UPDATE_RANGE update_tensor_range
#include "cpu/update_loops.inc"
#undef LRFUSED_UPDATE_RANGE
}  // namespace cpu_avx2
#pragma GCC pop_options

void update_tensor_range_avx2(const TensorPlan& t, int64_t begin, int64_t end) {
  cpu_avx2::update_tensor_range(t, begin, end);
}
#else
void update_tensor_range_avx2(const TensorPlan& t, int64_t begin, int64_t end) {
  update_tensor_range_default(t, begin, end);
}
#endif

}  // namespace lrfused
