"""Plants realistic one-line bugs, one at a time, in a scratch copy of the repository and reports which
ones the tests miss. Not collected by pytest (no test_ prefix) and not run by CI:

    nice -n 10 python tests/mutants.py            # each mutant against the test files meant to catch it
    nice -n 10 python tests/mutants.py --suite    # each mutant against the whole suite (slow)
    python tests/mutants.py --only sweep_mode     # some mutants, by name

A mutant whose line is no longer in the code is reported as stale: update its line. Add a mutant for
each bug a test was written against, and say the count in the closing notes when tests change.
A mutant in the C++ sources rebuilds the scratch copy's extension (CPU only, a few minutes each).
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, file, line as in the code, the bug, test files that must catch it)
MUTANTS = [
    # the range test
    ("divergence_threshold", "lrfused/find/analysis.py",
     "(threshold - 1) * abs(best)", "threshold * abs(best)", ["tests/test_find.py"]),
    ("python_rng_not_restored", "lrfused/find/restore.py",
     "random.setstate(self._python_rng)", "pass", ["tests/test_find.py"]),
    ("numpy_rng_not_restored", "lrfused/find/restore.py",
     "np.random.set_state(self._numpy_rng)", "pass", ["tests/test_find.py"]),
    ("optimizers_not_restored", "lrfused/find/restore.py",
     "opt.load_state_dict(copy.deepcopy(state))", "pass", ["tests/test_find.py"]),
    ("sweep_mode_ignored", "lrfused/find/stepping.py",
     "num_iter=config.num_iter, mode=config.mode)", 'num_iter=config.num_iter, mode="exp")', ["tests/test_find.py"]),
    # a family's sweep settings reach its fused optimizer (lrfused.find.families)
    ("sweep_momentum_ignored", "lrfused/find/families.py",
     "**{name: getattr(config, name) for name in self.settings})", '**{name: getattr(config, name) for name in self.settings if name != "momentum"})',
     ["tests/test_find.py"]),
    ("sweep_nesterov_ignored", "lrfused/find/families.py",
     "**{name: getattr(config, name) for name in self.settings})", '**{name: getattr(config, name) for name in self.settings if name != "nesterov"})',
     ["tests/test_find.py"]),
    ("sweep_weight_decay_ignored", "lrfused/find/families.py",
     "**{name: getattr(config, name) for name in self.settings})",
     '**{name: 0.0 if (name, self.name) == ("weight_decay", "sgd") else getattr(config, name) for name in self.settings})',
     ["tests/test_find.py"]),
    ("adamw_sweep_weight_decay_ignored", "lrfused/find/families.py",
     "**{name: getattr(config, name) for name in self.settings})",
     '**{name: 0.0 if (name, self.name) == ("weight_decay", "adamw") else getattr(config, name) for name in self.settings})',
     ["tests/test_find_optimizers.py"]),
    # the family registry and the recommendation written from it
    ("adamw_family_recommends_the_sgd_drop_in", "lrfused/find/families.py",
     'drop_ins={"one_cycle": lrfused.FusedOneCycleAdamW},', 'drop_ins={"one_cycle": lrfused.FusedOneCycleSGD},',
     ["tests/test_find_report.py", "tests/test_find_cli.py"]),
    ("adamw_family_default_weight_decay_wrong", "lrfused/find/families.py",
     'settings={"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},',
     'settings={"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},', ["tests/test_find_optimizers.py"]),
    ("family_option_refusal_skipped", "lrfused/find/stepping.py",
     "if name not in taken and value != UNSET[name]:", "if False:", ["tests/test_find_optimizers.py"]),
    ("grid_momentum_not_cycled", "lrfused/find/families.py",
     'grid_momentum=lambda m: {"max_momentum": m, "base_momentum": max(m - 0.1, 0.0)},',
     'grid_momentum=lambda m: {"max_momentum": 0.95, "base_momentum": 0.85},', ["tests/test_grid.py"]),
    ("call_carries_default_settings", "lrfused/find/recommendation.py",
     "if name in self.picked or value != family.settings[name])", "if True)", ["tests/test_find_report.py"]),
    ("family_defaults_not_filled", "lrfused/find/families.py",
     "filled = {name: default if given[name] is None and UNSET[name] is None else given[name]",
     "filled = {name: given[name]", ["tests/test_find_optimizers.py"]),
    ("call_without_drop_in_names_the_wrong_schedule", "lrfused/find/recommendation.py",
     'schedule=lrfused.schedules.{schedule}({arguments}){extra})"', 'schedule=lrfused.schedules.Cyclic({arguments}){extra})"',
     ["tests/test_find_report.py"]),
    ("then_train_drops_the_settings", "lrfused/find/recommendation.py",
     "steps_per_epoch=steps_per_epoch, **self.kwargs)", 'steps_per_epoch=steps_per_epoch, max_lr=self.kwargs["max_lr"])',
     ["tests/test_find_report.py"]),
    ("steep_on_the_minimum", "lrfused/find/analysis.py",
     "np.log10(lrs[: lowest + 1]))[:lowest]", "np.log10(lrs[: lowest + 1]))", ["tests/test_analysis.py"]),
    ("ranks_settings_not_compared", "lrfused/find/distributed.py",
     "    if differing:", "    if False:", ["tests/test_distributed.py"]),
    # (Batches' agreement on running out of data is not planted here: without it the ranks wait on
    # each other until the tests' 5-minute collective timeout.)
    # the CLI
    ("loss_factory_not_called", "lrfused/find/__main__.py",
     "if not isinstance(loss, torch.nn.Module) and _takes_no_arguments(loss):", "if isinstance(loss, type):",
     ["tests/test_find_cli.py"]),
    ("argparse_errors_print_the_usage", "lrfused/find/__main__.py",
     'self.exit(2, f"{self.prog}: error: {message} (see --help)\\n")', "super().error(message)",
     ["tests/test_find_cli.py"]),
    ("broken_pipe_not_handled", "lrfused/find/__main__.py",
     "except BrokenPipeError:", "except ZeroDivisionError:", ["tests/test_find_cli.py"]),
    # param groups, state, AMP
    ("per_group_list_overrides_group", "lrfused/_param_groups.py",
     "group.setdefault(name, v)", "group[name] = v", ["tests/test_optimizer_api.py"]),
    ("new_buffer_marked_written", "lrfused/_counts.py",
     "torch.full((), _C.NEVER_WRITTEN,", "torch.full((), _C.WRITTEN_ELSEWHERE,", ["tests/test_amp.py"]),
    ("loaded_first_step_flag_dropped", "lrfused/_counts.py",
     "first = _C.WRITTEN_ELSEWHERE if first is None else int(first.item())", "first = _C.WRITTEN_ELSEWHERE",
     ["tests/test_amp.py"]),
    ("momentum_error_names_base_momentum", "lrfused/fused_sgd.py",
     'check_number("momentum" + where, group["momentum"])', 'check_number("base_momentum" + where, group["momentum"])',
     ["tests/test_bad_input.py"]),
    # schedules as the groups show and change them
    ("outside_lr_write_not_detected", "lrfused/_shown.py",
     "if view[key] != value:", "if False:", ["tests/test_state_changes.py"]),
    ("schedule_edit_applied_at_once", "lrfused/_shown.py",
     "return {**group, **scheduled}", "return group", ["tests/test_state_changes.py"]),
    ("table_shows_last_row_after_end", "lrfused/table.py",
     'return self.lr_after_end * group["initial_lr"], rows[-1][1]', "return rows[-1]", ["tests/test_schedule.py"]),
    ("past_end_advice_always_one_cycles", "lrfused/_shown.py",
     "Give {self.schedule.longer},", "Give a larger total_steps (or epochs / steps_per_epoch),",
     ["tests/test_schedule.py"]),
    ("div_factor_ignored", "lrfused/one_cycle.py",
     'group["initial_lr"] = group["max_lr"] / group["div_factor"]', 'group["initial_lr"] = group["max_lr"] / 25.0',
     ["tests/test_schedule.py", "tests/test_properties.py"]),
    ("final_div_factor_ignored", "lrfused/one_cycle.py",
     'group["min_lr"] = group["initial_lr"] / group["final_div_factor"]', 'group["min_lr"] = group["initial_lr"] / 1e4',
     ["tests/test_schedule.py", "tests/test_properties.py"]),
    # the AdamW family (C++ mutants rebuild the extension)
    ("adamw_bias_correction1_uses_beta2", "csrc/lrfused/rules/adamw.h",
     "const double bias_correction1 = 1 - pow(beta1, step);", "const double bias_correction1 = 1 - pow(beta2, step);",
     ["tests/test_fused_adamw.py"]),
    ("adamw_eps_inside_the_sqrt", "csrc/lrfused/rules/adamw.h",
     "const opmath_t denom = square_root(second) / s.bias_correction2_sqrt + s.eps;",
     "const opmath_t denom = square_root(second + s.eps) / s.bias_correction2_sqrt;", ["tests/test_fused_adamw.py"]),
    ("adamw_amsgrad_max_not_kept", "csrc/lrfused/rules/adamw.h",
     ": (m > exp_avg_sq ? m : exp_avg_sq);", ": exp_avg_sq;", ["tests/test_fused_adamw.py"]),
    ("adamw_param_step_not_counted", "csrc/cpu/fused_step_cpu.cpp",
     "*static_cast<float*>(ks.tensors[i].count) += 1.0f;", "(void)0;", ["tests/test_fused_adamw.py"]),
    ("adamw_count_policy_none", "csrc/lrfused/rules/adamw.h",
     "kCount = CountPolicy::kPerParamStep;", "kCount = CountPolicy::kNone;", ["tests/test_fused_adamw.py"]),
    ("adamw_amsgrad_param_ignored", "csrc/lrfused/rules/adamw.h",
     "s.amsgrad = g.rule_params[kAmsgrad] != 0.0;", "s.amsgrad = false;", ["tests/test_fused_adamw.py"]),
    ("sgd_nesterov_param_ignored", "csrc/lrfused/rules/sgd.h",
     "s.nesterov = g.rule_params[kNesterov] != 0.0;", "s.nesterov = false;", ["tests/test_fused_sgd.py"]),
    # the rule seams (C++)
    ("unknown_rule_runs_the_first_rule", "csrc/lrfused/rules/rule_list.h",
     'TORCH_CHECK(known, "unknown update rule ", rule, ": this build of lrfused knows rules 0 to ", kNumRules - 1);',
     "if (!known) f(RuleTag<SGDRule>{});", ["tests/test_rule_seams.py"]),
    ("sgd_first_write_not_recorded", "csrc/cpu/fused_step_cpu.cpp",
     "*static_cast<int64_t*>(ks.tensors[i].count) = step;", "(void)0;", ["tests/test_fused_sgd.py", "tests/test_amp.py"]),
    ("adamw_cycled_beta1_not_shown", "lrfused/_family.py",
     "values[self.slot.index] = value", "pass", ["tests/test_fused_adamw.py"]),
    ("adamw_loaded_step_dropped", "lrfused/_counts.py",
     "0.0 if step is None else float(step)", "0.0", ["tests/test_fused_adamw.py"]),
    ("beta_one_accepted", "lrfused/_betas.py",
     "if not beta < 1.0:", "if not beta <= 1.0:", ["tests/test_bad_input.py"]),
    ("compiled_step_takes_a_gradless_param", "lrfused/_plan.py",
     "            if compiled:\n                if p.grad is None:\n                    continue",
     "            if compiled:\n                pass", ["tests/test_compile.py"]),
    ("batched_grid_groups_ignore_the_weight_decay", "lrfused/find/batched.py",
     '{"params": list(copy.values()), **family.grid_point(wd, m)}', '{"params": list(copy.values()), **family.grid_point(0.0, m)}',
     ["tests/test_grid.py"]),
    ("adamw_sweep_ignores_betas", "lrfused/find/families.py",
     "**{name: getattr(config, name) for name in self.settings})", '**{name: getattr(config, name) for name in self.settings if name != "betas"})',
     ["tests/test_find_optimizers.py"]),
    # the seams: a family as data, the shared step plan, kernel configs, drop-ins, schedule fields
    ("sgd_count_policy_per_param_step", "lrfused/fused_sgd.py",
     'count="first_write",', 'count="per_param_step",', ["tests/test_fused_sgd.py", "tests/test_amp.py"]),
    ("adamw_family_count_policy_first_write", "lrfused/fused_adamw.py",
     'count="per_param_step",', 'count="first_write",', ["tests/test_fused_adamw.py"]),
    ("adamw_beta2_read_from_beta1", "lrfused/fused_adamw.py",
     'RuleParam("beta2", GroupValue("betas", 1)),', 'RuleParam("beta2", GroupValue("betas", 0)),',
     ["tests/test_fused_adamw.py"]),
    ("rule_params_not_written", "lrfused/_kernel_config.py",
     "config.rule_params = [float(value) for value in values]", "pass", ["tests/test_fused_sgd.py", "tests/test_fused_adamw.py"]),
    ("rule_params_not_in_cache_key", "lrfused/_kernel_config.py",
     "self.family.rule_values(group),", "(),", ["tests/test_state_changes.py", "tests/test_fused_adamw.py"]),
    ("plan_counts_dropped", "lrfused/_plan.py",
     "planned.counts.append(state[family.count_key] if keys and family.count_key is not None else None)",
     "planned.counts.append(None)", ["tests/test_fused_sgd.py", "tests/test_compile.py"]),
    ("compiled_plan_drops_master_copies", "lrfused/_plan.py",
     "master_index.append(-1 if master is None else len(masters))", "master_index.append(-1)",
     ["tests/test_compile.py"]),
    ("plan_kept_after_state_change", "lrfused/_plan.py",
     "return self.key == plan_key(opt) and", "return", ["tests/test_state_changes.py"]),
    ("drop_in_momentum_default_lost", "lrfused/fused_sgd.py",
     '_DROP_IN_MOMENTUM = {"momentum": 0.9}', "_DROP_IN_MOMENTUM = {}",
     ["tests/test_optimizer_api.py", "tests/test_torch_compat.py", "tests/test_schedule.py"]),
    ("cyclic_step_size_down_from_up", "lrfused/cyclic.py",
     'Field("step_size_down"),', 'Field("step_size_up", "step_size_down"),', ["tests/test_schedule.py"]),
    ("warm_restarts_t_mult_not_written", "lrfused/warm_restarts.py",
     'Field("T_mult", "t_mult"),', "", ["tests/test_schedule.py"]),
    # the concerns every family shares (tests/families.py's cases)
    ("adamw_amsgrad_flag_not_checked", "lrfused/fused_adamw.py",
     'check_bool("amsgrad", amsgrad)', "pass", ["tests/test_bad_input.py"]),
    ("adamw_group_eps_not_checked", "lrfused/fused_adamw.py",
     'check_number("eps" + where, group["eps"], strictly_above=True)', "pass", ["tests/test_bad_input.py"]),
    ("sgd_group_dampening_not_checked", "lrfused/fused_sgd.py",
     'check_number("dampening" + where, group["dampening"])', "pass", ["tests/test_bad_input.py"]),
    ("master_copy_in_the_params_dtype", "lrfused/_param_state.py",
     "state[MASTER_PARAM] = p.detach().to(torch.float32, memory_format=torch.preserve_format)",
     "state[MASTER_PARAM] = p.detach().clone(memory_format=torch.preserve_format)", ["tests/test_amp.py"]),
    ("loaded_state_not_float32_masters", "lrfused/_param_state.py",
     "state[key] = state[key].float()", "pass", ["tests/test_state_dicts.py"]),
    # Lion (the third family)
    ("lion_interpolates_with_beta2", "csrc/lrfused/rules/lion.h",
     "const opmath_t interpolated = exp_avg * s.beta1 + g * s.one_minus_beta1;",
     "const opmath_t interpolated = exp_avg * s.beta2 + g * s.one_minus_beta2;", ["tests/test_fused_lion.py"]),
    ("lion_decay_skipped", "csrc/lrfused/rules/lion.h",
     "    param = param * s.decay_factor;", "    (void)0;", ["tests/test_fused_lion.py"]),
    ("lion_beta2_read_from_beta1", "lrfused/fused_lion.py",
     'rule_params=(RuleParam("beta2", GroupValue("betas", 1)),),', 'rule_params=(RuleParam("beta2", GroupValue("betas", 0)),),',
     ["tests/test_fused_lion.py"]),
    ("lion_cycled_momentum_is_beta2", "lrfused/fused_lion.py",
     'momentum=GroupValue("betas", 0),', 'momentum=GroupValue("betas", 1),', ["tests/test_fused_lion.py"]),
    ("lion_sweep_recommends_adamw", "lrfused/find/families.py",
     'drop_ins={"one_cycle": lrfused.FusedOneCycleLion},', 'drop_ins={"one_cycle": lrfused.FusedOneCycleAdamW},',
     ["tests/test_fused_lion.py"]),
    # packaging
    ("second_version_in_pyproject", "pyproject.toml",
     'dynamic = ["version"]', 'version = "0.1.0"\ndynamic = []', ["tests/test_version.py"]),
]


def scratch_copy():
    """The working tree (with the built extension) in a temporary folder."""
    target = tempfile.mkdtemp(prefix="lrfused_mutants_")
    ignore = shutil.ignore_patterns(".git", "build", "__pycache__", "lr_find_out", ".benchmarks", "*.egg-info")
    shutil.copytree(ROOT, os.path.join(target, "repo"), ignore=ignore)
    return os.path.join(target, "repo")


NATIVE = (".h", ".cpp", ".inc", ".cu")


def build(repo):
    """Rebuilds the scratch copy's extension (CPU only) from its sources; the exit code."""
    env = {**os.environ, "LRFUSED_CUDA": "0"}
    command = [sys.executable, "setup.py", "build_ext", "--inplace"]
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True).returncode


def run_tests(repo, files):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-m", "pytest", *files, "-x", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="run the whole suite (tests/) against each mutant")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m[0] in args.only]
    repo = scratch_copy()
    built = {path: open(path, "rb").read() for path in glob.glob(os.path.join(repo, "lrfused", "_C*.so"))}
    missed, stale = [], []
    try:
        if run_tests(repo, ["tests"] if args.suite else sorted({f for m in mutants for f in m[4]})) != 0:
            sys.exit("the tests fail without any mutant: fix that first")
        for name, path, line, bug, files in mutants:
            source_path = os.path.join(repo, path)
            with open(source_path) as f:
                source = f.read()
            if source.count(line) != 1:
                stale.append(name)
                print(f"{name:36s} STALE (line found {source.count(line)} times in {path})", flush=True)
                continue
            started = time.perf_counter()
            with open(source_path, "w") as f:
                f.write(source.replace(line, bug))
            native = path.endswith(NATIVE)
            try:
                if native and build(repo) != 0:
                    stale.append(name)
                    print(f"{name:36s} STALE (the planted bug does not compile)", flush=True)
                    continue
                code = run_tests(repo, ["tests"] if args.suite else files)
            finally:
                with open(source_path, "w") as f:
                    f.write(source)
                if native:  # the extension as it was
                    for so_path, data in built.items():
                        with open(so_path, "wb") as f:
                            f.write(data)
            verdict = "caught" if code != 0 else "MISSED"
            if code == 0:
                missed.append(name)
            print(f"{name:36s} {verdict} (pytest exit {code}, {time.perf_counter() - started:.0f}s)", flush=True)
    finally:
        shutil.rmtree(os.path.dirname(repo))
    ran = len(mutants) - len(stale)
    print(f"{ran - len(missed)} of {ran} mutants caught; missed: {', '.join(missed) or 'none'}"
          + (f"; stale: {', '.join(stale)}" if stale else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
