"""Calling the lifecycle hooks of a run (``hookspecs.run_started`` ... ``run_finished``), each plugin on its own.

pluggy calls every implementation of a hook in one go, and one that raises stops the call for the
plugins after it and propagates into the run. Here each implementation is called by itself: one that
raises is reported once, through the run's ``echo``, naming its plugin, and is not called again by
this :class:`Tracker` (its state is unknown after a failure, and a warning per training step would
bury the run's output); the run, the other plugins and everything on disk go on. Hooks are only
called after what they report is saved, so a plugin can never cost a result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

from denoise_bench.errors import PLUGIN_FAILURES
from denoise_bench.plugins import describe_exception, get_plugin_manager, plugin_label
from denoise_bench.results import JobStatus


class Tracker:
    """The lifecycle hooks of one run folder, as the plugins registered in this process implement them."""

    def __init__(self, run_dir: Path, echo: Callable[[str], None], pm: pluggy.PluginManager | None = None) -> None:
        self.run_dir = run_dir
        self.echo = echo
        self._pm = pm or get_plugin_manager()
        self._dropped: set[str] = set()  # plugins that raised: not called again

    def run_started(self, config: dict[str, Any]) -> None:
        self._call("run_started", config=config)

    def training_step(self, training: dict[str, Any], step: int, total_steps: int, loss: float, lr: float) -> None:
        self._call("training_step", training=training, step=step, total_steps=total_steps, loss=loss, lr=lr)

    def learning_curve_point(self, training: dict[str, Any], point: dict[str, Any]) -> None:
        self._call("learning_curve_point", training=training, point=point)

    def job_finished(self, job: dict[str, Any], records: list[dict[str, Any]], error: str | None,
                     training: dict[str, Any]) -> None:
        self._call("job_finished", job=job, records=records, error=error, training=training)

    def run_finished(self, counts: dict[str, int]) -> None:
        self._call("run_finished", counts=counts)

    def _call(self, hook: str, **kwargs: Any) -> None:
        kwargs["run_dir"] = self.run_dir
        for impl in getattr(self._pm.hook, hook).get_hookimpls():
            if impl.plugin_name in self._dropped:
                continue
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])  # as pluggy calls it: by declared name
            except PLUGIN_FAILURES as exc:  # a tracking plugin's bug must not cost the run
                self._dropped.add(impl.plugin_name)
                self.echo(f"warning: plugin {plugin_label(impl.plugin_name)} raised in {hook}: "
                          f"{describe_exception(exc)}; it is not called again in this run")


def job_counts(jobs: list[dict[str, Any]]) -> dict[str, int]:
    """The number of jobs done, failed and skipped, for ``run_finished``."""
    statuses = [job.get("status") for job in jobs]
    return {status: statuses.count(status) for status in (s.value for s in JobStatus)}
