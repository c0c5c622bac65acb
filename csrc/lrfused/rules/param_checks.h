// Host-side checks the rule headers share for their rule_params; every message names the value.
#pragma once

#include <c10/util/Exception.h>

#include <cmath>
#include <cstddef>

namespace lrfused {

inline void check_finite_nonnegative(double value, const char* name, size_t group) {
  TORCH_CHECK(std::isfinite(value) && value >= 0.0, "param group ", group, ": ", name,
              " must be a finite number >= 0, got ", value);
}

}  // namespace lrfused
