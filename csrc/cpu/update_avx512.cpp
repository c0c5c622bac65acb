// The CPU inner loops compiled for AVX-512 (16 floats per instruction), chosen at run time when the
// processor has it. Still no FMA: results equal the baseline build's bit for bit.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>
#include <type_traits>

#include "cpu/cpu_kernel.h"

namespace lrfused {
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512")
namespace cpu_avx512 {
#define LRFUSED_UPDATE_RANGE update_tensor_range
#include "cpu/update_loops.inc"
#undef LRFUSED_UPDATE_RANGE
}  // namespace cpu_avx512
#pragma GCC pop_options

void update_tensor_range_avx512(const TensorPlan& t, int64_t begin, int64_t end) {
  cpu_avx512::update_tensor_range(t, begin, end);
}
#else
void update_tensor_range_avx512(const TensorPlan& t, int64_t begin, int64_t end) {
  update_tensor_range_default(t, begin, end);
}
#endif

}  // namespace lrfused
