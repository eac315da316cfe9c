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
from denoise_bench.run.time_estimate import ProbeLoad, UnitCost
from denoise_bench.run.time_limit import units_over_limit


def describe_run(p: RunPlan) -> str:
    """The first lines of a run and of a dry run: where it goes and what it runs on, and its test sets, each
    gray or colour as it is read (a folder is read as its files are)."""
    threads = f"{p.threads.count} torch thread{'s' if p.threads.count > 1 else ''} ({p.threads.why})"
    sets = ", ".join(dataset_text(d.name, {d.name: d.channels}) for d in p.datasets)
    return (f"run folder: {p.run_dir}  (device {p.device}, {threads}, engine {_engine_text(p)}, "
            f"profile {p.request.profile}, protocol {p.protocol.id})\ntest sets: {sets}")


def describe_grid(p: RunPlan, costs: dict[Unit, UnitCost], probe_seconds: float, load: ProbeLoad | None = None) -> str:
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
    lines.append(f"{jobs} job(s), {skipped} skipped cell(s); {estimate_text(costs, jobs, probe_seconds, over_limit, load)}")
    return "\n".join(lines)


def estimate_text(costs: dict[Unit, UnitCost], jobs: int, probe_seconds: float, skipped: Collection[Unit] = (),
                  load: ProbeLoad | None = None) -> str:
    """``estimated time on this machine: ~7 min (4 job(s); from a 9s timed probe at load 0.2 on 2 cores; longer
    if the load rises)``; where the probe shared the cores (``load``), also the time were they free, and where
    the load exceeded them, that it did. The ``skipped`` units (over ``--skip-longer-than``) are not counted,
    as they will not run."""
    total = sum(cost.seconds for unit, cost in costs.items() if unit not in skipped)
    untimed = sum(not cost.timed for cost in costs.values())
    failed = f"; {untimed} unit(s) failed the probe and are not counted" if untimed else ""
    over = sum(len(unit.datasets) for unit in costs if unit in skipped)
    over_text = f"; {over} job(s) over --skip-longer-than are skipped" if over else ""
    free, at_load = "", ""
    if load is not None:
        at_load = f" at load {load.load:.1f} on {load.cores} core{'s' if load.cores > 1 else ''}"
        if load.share < 1 and _about(total * load.share) != _about(total):
            free = f", or {_about(total * load.share)} if the cores free up"
            busier = "more load than cores" if load.load > load.cores else "cores shared with other work"
            at_load += f", {busier}: the time follows the load while it runs"
        else:
            at_load += "; longer if the load rises"
    return (f"estimated time on this machine: {_about(total)}{free} ({jobs} job(s); from a {duration(probe_seconds)} "
            f"timed probe{at_load}{failed}{over_text})")


def _about(seconds: float) -> str:
    return f"~{max(1, round(seconds / 60))} min" if seconds >= 60 else f"~{duration(seconds)}"


def _engine_text(p: RunPlan) -> str:
    e = p.engine
    return " ".join([e.precision, *(["channels-last"] if e.channels_last else []),
                     *([f"compile={e.compile}"] if e.compile != "off" else []),
                     *(["captured step"] if e.capture else [])])


def _options_text(p: RunPlan, method_cls: type[Method]) -> str:
    """Every option the method runs with, the given ones (and the smoke profile's) marked with ``*``."""
    given = p.options_of(method_cls)
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
