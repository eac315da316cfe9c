"""What ``bench run --dry-run`` prints, and the lines a run starts with: the grid, each job's settings and time.

Every job is shown with what decides its numbers and its cost (engine, method options, budget, the
test images it scores) and its time on this machine from the probe of ``denoise_bench.run.time_estimate``,
so that a five-hour grid is seen before it is started.
"""

from __future__ import annotations

from collections.abc import Collection

from denoise_bench.run.grid import Unit, setting_of
from denoise_bench.run.progress import duration
from denoise_bench.method import Method, resolve_options
from denoise_bench.run.planning import RunPlan
from denoise_bench.results import dataset_text
from denoise_bench.run.time_estimate import UnitCost
from denoise_bench.run.time_limit import units_over_limit


def describe_run(p: RunPlan) -> str:
    """The first lines of a run and of a dry run: where it goes and what it runs on, and its test sets, each
    gray or colour as it is read (a folder is read as its files are)."""
    threads = f"{p.threads.count} torch thread{'s' if p.threads.count > 1 else ''} ({p.threads.why})"
    sets = ", ".join(dataset_text(d.name, {d.name: d.channels}) for d in p.datasets)
    return (f"run folder: {p.run_dir}  (device {p.device}, {threads}, engine {_engine_text(p)}, "
            f"profile {p.request.profile}, protocol {p.protocol.id})\ntest sets: {sets}")


def describe_grid(p: RunPlan, costs: dict[Unit, UnitCost], probe_seconds: float) -> str:
    """Each job of the grid, or why its cell is skipped, with its settings, test images and estimated time."""
    lines = [describe_run(p)]
    methods = {m.name: m for m in p.methods}
    over_limit = units_over_limit(p, costs)
    jobs = skipped = 0
    for unit, cost in costs.items():
        method_cls, setting = methods[unit.method], setting_of(p, unit)
        reason = method_cls.incompatibility(setting.family) or over_limit.get(unit)
        where = f"{unit.method} on {'+'.join(unit.datasets)}, train {setting.train}, seed {unit.seed}"
        if reason:
            skipped += 1
            lines.append(f"  skip {where}: {reason}")
            continue
        jobs += len(unit.datasets)
        tests = ", ".join(str(t) for t in setting.tests)
        time = (f"about {duration(cost.seconds)} (train {duration(cost.train_s)}, test {duration(cost.test_s)})"
                if cost.timed else "time unknown (it failed the probe: the job will say why)")
        lines.append(f"  job  {where}: {time}")
        lines.append(f"         test {tests} on {cost.images_text} image(s); {_budget_text(p, method_cls)}")
        lines.append(f"         options {_options_text(p, method_cls)}")
    lines.append(f"{jobs} job(s), {skipped} skipped cell(s); {estimate_text(costs, jobs, probe_seconds, over_limit)}")
    return "\n".join(lines)


def estimate_text(costs: dict[Unit, UnitCost], jobs: int, probe_seconds: float, skipped: Collection[Unit] = ()) -> str:
    """``estimated time on this machine: ~7 min (4 jobs; from a 9s timed probe)``; the ``skipped`` units
    (over ``--skip-longer-than``) are not counted, as they will not run."""
    total = sum(cost.seconds for unit, cost in costs.items() if unit not in skipped)
    minutes = f"~{max(1, round(total / 60))} min" if total >= 60 else f"~{duration(total)}"
    untimed = sum(not cost.timed for cost in costs.values())
    failed = f"; {untimed} unit(s) failed the probe and are not counted" if untimed else ""
    over = sum(len(unit.datasets) for unit in costs if unit in skipped)
    over_text = f"; {over} job(s) over --skip-longer-than are skipped" if over else ""
    return (f"estimated time on this machine: {minutes} ({jobs} job(s); from a {duration(probe_seconds)} timed "
            f"probe{failed}{over_text})")


def _engine_text(p: RunPlan) -> str:
    e = p.engine
    return " ".join([e.precision, *(["channels-last"] if e.channels_last else []),
                     *([f"compile={e.compile}"] if e.compile != "off" else [])])


def _options_text(p: RunPlan, method_cls: type[Method]) -> str:
    """Every option the method runs with, the given ones marked with ``*``."""
    given = p.request.method_options.get(method_cls.name, {})
    resolved = resolve_options(method_cls.name, method_cls.options, given)
    if not resolved:
        return "(none)"
    return " ".join(f"{k}={v}{'*' if k in given else ''}" for k, v in resolved.items())


def _budget_text(p: RunPlan, method_cls: type[Method]) -> str:
    b = p.budget_of(method_cls)
    crop = "" if b.test_crop is None else f" (centre {b.test_crop}x{b.test_crop})"
    if not method_cls.trainable:
        return f"budget: per image (up to {b.per_image_iterations} steps, for methods that optimise){crop}"
    return (f"budget: {b.iterations} iterations x batch {b.batch_size}, crop {b.crop_size}, width {b.width}, "
            f"lr {b.lr_rule}, init {b.init}{crop}")
