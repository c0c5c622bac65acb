// THE list of update rules, and the one dispatch from a group's rule number to its rule struct that
// the CPU kernel, the CUDA host side and the checks use. A rule's number (GroupConfig::rule,
// _C.RULE_<NAME>) is its position in the list.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <tuple>
#include <type_traits>

#include "lrfused/rules/adamw.h"
#include "lrfused/rules/lion.h"
#include "lrfused/rules/sgd.h"

// X(rule struct, short name): the short name names its CUDA kernels (<name>_step_by_value, ...).
// A new rule: its header above, its kernel_<name>_*.cu files, one line here, one _C.RULE_ constant.
#define LRFUSED_FOR_EACH_RULE(X) \
  X(SGDRule, sgd)                \
  X(AdamWRule, adamw)            \
  X(LionRule, lion)

namespace lrfused {

template <typename Rule>
struct RuleTag {
  using type = Rule;
};

template <typename... R>
struct RuleList {};

namespace rule_list_detail {
template <typename First, typename... R>
RuleList<R...> drop_first(RuleList<First, R...>);
#define LRFUSED_RULE_AFTER_COMMA(Rule, name) , Rule
using Rules = decltype(drop_first(std::declval<RuleList<void LRFUSED_FOR_EACH_RULE(LRFUSED_RULE_AFTER_COMMA)>>()));
#undef LRFUSED_RULE_AFTER_COMMA

template <typename Rule, typename... R>
constexpr int32_t index_of(RuleList<R...>) {
  int32_t i = 0;
  int32_t found = -1;
  ((found = (found < 0 && std::is_same_v<Rule, R>) ? i : found, ++i), ...);
  return found;
}

template <typename... R>
constexpr int32_t size_of(RuleList<R...>) {
  return static_cast<int32_t>(sizeof...(R));
}

template <typename F, typename... R>
bool dispatch(RuleList<R...>, int32_t rule, F& f) {
  int32_t i = 0;
  return ((i++ == rule ? (f(RuleTag<R>{}), true) : false) || ...);
}

template <template <typename> class T, typename... R>
std::tuple<T<R>...> per_rule(RuleList<R...>);
}  // namespace rule_list_detail

using Rules = rule_list_detail::Rules;
constexpr int32_t kNumRules = rule_list_detail::size_of(Rules{});

template <typename Rule>
constexpr int32_t rule_id = rule_list_detail::index_of<Rule>(Rules{});

// One T<Rule> per rule of the list (std::get<T<Rule>> picks one).
template <template <typename> class T>
using PerRule = decltype(rule_list_detail::per_rule<T>(Rules{}));

// Calls f(RuleTag<Rule>{}) for the rule numbered `rule`; an unknown number raises.
template <typename F>
void dispatch_rule(int32_t rule, F&& f) {
  const bool known = rule_list_detail::dispatch(Rules{}, rule, f);
  TORCH_CHECK(known, "unknown update rule ", rule, ": this build of lrfused knows rules 0 to ", kNumRules - 1);
}

}  // namespace lrfused
