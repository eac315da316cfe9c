"""``--skip-longer-than``: the units whose estimated time on this machine is over the limit, and why.

The estimate is the timed probe's (:mod:`denoise_bench.run.time_estimate`), made on this machine before
the first job. A unit over the limit is not started: each of its jobs is recorded as skipped with the
estimate as its reason, so the tables and leaderboards list it under "not run" with the cost that
says why (Self2Self's 150,000 steps per image on a CPU), instead of the grid running for days or the
method silently missing. A unit that failed the probe has no estimate: it runs, and fails as a job.
"""

from __future__ import annotations

from denoise_bench.run.grid import Unit
from denoise_bench.run.planning import RunPlan
from denoise_bench.run.progress import duration
from denoise_bench.run.time_estimate import UnitCost

SECONDS_PER_HOUR = 3600


def units_over_limit(p: RunPlan, costs: dict[Unit, UnitCost] | None) -> dict[Unit, str]:
    """Each unit the request's ``skip_longer_than`` skips, with its reason; none without a limit or a probe."""
    hours = p.request.skip_longer_than
    if hours is None or costs is None:
        return {}
    return {unit: over_limit_reason(cost, hours) for unit, cost in costs.items()
            if cost.timed and cost.seconds > hours * SECONDS_PER_HOUR}


def over_limit_reason(cost: UnitCost, hours: float) -> str:
    """``estimated 32h on this machine (train 0s, test 32h on 12 set12 image(s)), over --skip-longer-than 3 h``."""
    return (f"estimated {duration(cost.seconds)} on this machine by the timed probe (train {duration(cost.train_s)}, "
            f"test {duration(cost.test_s)} on {cost.images_text} image(s)), over --skip-longer-than {hours:g} h")
