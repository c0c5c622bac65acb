// Runtime flags turned into compile-time constants, so that one generic lambda instantiates every
// branch-free variant of an update loop.
#pragma once

#include "lrfused/schedule.h"  // LRFUSED_HOST_DEVICE

namespace lrfused {

template <bool B>
struct BoolConstant {
  static constexpr bool value = B;
};

// Calls f(BoolConstant<flags[0]>{}, ..., BoolConstant<flags[N - 1]>{}).
template <int N, typename F, typename... Done>
LRFUSED_HOST_DEVICE inline void dispatch_flags(F& f, const bool* flags, Done... done) {
  if constexpr (sizeof...(Done) == N) {
    f(done...);
  } else if (flags[0]) {
    dispatch_flags<N>(f, flags + 1, done..., BoolConstant<true>{});
  } else {
    dispatch_flags<N>(f, flags + 1, done..., BoolConstant<false>{});
  }
}

}  // namespace lrfused
