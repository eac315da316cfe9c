"""The "About these numbers" block at the top of the page: protocol, profile, training budget (shared
and per method), test set, training engine, days, commit and machine of the runs, read from their
configs and environment records, with the mismatches they were merged despite and budget cautions.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from denoise_bench.engine import Engine
from denoise_bench.profiles import recorded_budget
from denoise_bench.results import low_budget_warnings

if TYPE_CHECKING:
    from denoise_bench.leaderboard import RunInfo

# Runs from before these fields existed trained with these (see run_folder._comparable).
_ENGINE_DEFAULTS = Engine().as_dict()
_BUDGET_PARTS = (("iterations", "{} iterations"), ("batch_size", "batch {}"), ("crop_size", "{0}×{0} crops"),
                 ("width", "width {}"), ("lr_rule", "lr rule {}"), ("init", "init {}"),
                 ("per_image_iterations", "{} steps per image for per-image methods"))
_BUDGET_HEADS = {"iterations": "iterations", "batch_size": "batch", "crop_size": "crop", "width": "width",
                 "lr_rule": "lr rule", "init": "init", "per_image_iterations": "steps per image"}


def _by_run(runs: list[RunInfo], value: Callable[[RunInfo], str]) -> str:
    """One value when every run agrees, else each run's value with its folder."""
    values = {str(info.run_dir): value(info) for info in runs}
    distinct = list(dict.fromkeys(values.values()))
    if len(distinct) == 1:
        return distinct[0]
    return "; ".join(f"{v} ({run})" for run, v in values.items())


def budget_text(budget: dict) -> str:
    """e.g. '800 iterations, batch 4, 64×64 crops, width 32, lr rule official, init own, ...'."""
    full = recorded_budget(budget)
    return ", ".join(form.format(full[key]) for key, form in _BUDGET_PARTS if full.get(key) is not None) or "not recorded"


def _test_text(budget: dict) -> str:
    images, crop = budget.get("test_images"), budget.get("test_crop")
    which = "all test images" if images is None else f"first {images} test images"
    return f"{which} of each set, " + ("full size" if crop is None else f"centre {crop}×{crop} crops")


def _engine_text(config: dict) -> str:
    engine = _ENGINE_DEFAULTS | (config.get("engine") or {})
    return (f"precision {engine['precision']}, channels-last {'on' if engine['channels_last'] else 'off'}, "
            f"torch.compile {engine['compile']}")


def _protocol_text(config: dict) -> str:
    protocol = config.get("protocol") or {}
    ident = str(protocol.get("id") or protocol.get("name") or "not recorded")
    return f"{ident}: {protocol['description']}" if protocol.get("description") else ident


def _machine_text(environment: dict) -> str:
    """Device and host of a run, from its environment.json (describe_environment)."""
    if not environment:
        return "not recorded"
    device = str(environment.get("device", "unknown device"))
    if device.startswith("cuda"):
        where = f"{environment.get('device_name')} ({device})"
    else:  # older runs recorded the CPU's architecture only, not its model
        threads = environment.get("torch_threads")
        model = environment.get("cpu_model") or environment.get("processor") or environment.get("device_name")
        bf16 = environment.get("cpu_bf16_flags")
        where = f"CPU {model}" + (f" ({', '.join(bf16)})" if bf16 else "") + (
            f", {threads} torch thread{'s' if threads != 1 else ''}" if threads else "")
    torch_version = (environment.get("versions") or {}).get("torch")
    extras = [environment.get("platform"), torch_version and f"torch {torch_version}",
              environment.get("python") and f"Python {environment['python']}"]
    return ", ".join([where, *[str(e) for e in extras if e]])


def _commit_text(environment: dict) -> str:
    commit = environment.get("git_commit")
    return str(commit)[:12] if commit else "not recorded"


def _days_text(runs: list[RunInfo]) -> str:
    days = sorted({info.made for info in runs})
    text = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    sources = sorted({info.made_from for info in runs if info.made_from})
    return f"{text} ({'; '.join(sources)})" if sources else text


def _method_budgets(runs: list[RunInfo], records: pd.DataFrame) -> dict[str, dict]:
    """Trained method -> its budget: the run's per-method budget ("budgets") where recorded, else the run's.
    A method trained under different budgets in different runs gets a row per run."""
    configs = {str(info.run_dir): info.config for info in runs}
    trained = records[records.iterations > 0].drop_duplicates(["method", "run_dir"])
    found: dict[str, dict[str, dict]] = {}
    for method, run_dir in zip(trained.method, trained.run_dir):
        config = configs.get(run_dir, {})
        budget = (config.get("budgets") or {}).get(method) or config.get("budget") or {}
        found.setdefault(method, {})[run_dir] = recorded_budget(budget)
    budgets = {}
    for method, by_run in sorted(found.items()):
        distinct = {json.dumps(b, sort_keys=True, default=str): (run, b) for run, b in by_run.items()}
        for run, budget in distinct.values():
            budgets[method if len(distinct) == 1 else f"{method} ({run})"] = budget
    return budgets


def _budget_html(runs: list[RunInfo], records: pd.DataFrame) -> str:
    """The budget every trained method shared, then a row per method for the fields that differ."""
    budgets = _method_budgets(runs, records)
    if not budgets:
        return "no trained methods"
    first = next(iter(budgets.values()))
    keys = [key for key, _ in _BUDGET_PARTS]
    differ = [k for k in keys if any(b.get(k) != first.get(k) for b in budgets.values())]
    common = budget_text({k: first.get(k) for k in keys if k not in differ})
    if not differ:
        return html.escape(common)
    head = "".join(f"<th>{html.escape(_BUDGET_HEADS[k])}</th>" for k in differ)
    rows = "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{html.escape(str(b.get(k)))}</td>" for k in differ)
                   + "</tr>" for m, b in budgets.items())
    return (f"{html.escape(common)}; per method:<table class=\"budgets\"><thead><tr><th>method</th>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _list_html(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def about_html(runs: list[RunInfo], records: pd.DataFrame, mismatches: list[str]) -> str:
    """The compact block that says what the numbers were made under, at the top of the page."""
    rows = [("Protocol", html.escape(_by_run(runs, lambda i: _protocol_text(i.config)))),
            ("Profile", html.escape(_by_run(runs, lambda i: str(i.config.get("profile") or "not recorded")))),
            ("Training budget", _budget_html(runs, records)),
            ("Test set", html.escape(_by_run(runs, lambda i: _test_text(i.config.get("budget") or {})))),
            ("Training engine", html.escape(_by_run(runs, lambda i: _engine_text(i.config)))),
            ("Runs made", html.escape(_days_text(runs))),
            ("Code", "commit " + html.escape(_by_run(runs, lambda i: _commit_text(i.environment)))),
            ("Machine", html.escape(_by_run(runs, lambda i: _machine_text(i.environment)))),
            ("Run folders", ", ".join(f"<code>{html.escape(str(i.run_dir))}</code>" for i in runs))]
    if mismatches:
        rows.append(("Merged despite", _list_html(mismatches)))
    warnings = low_budget_warnings(records)  # the same cautions as the run's own tables
    if warnings:
        rows.append(("Caution", _list_html(warnings)))
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<section class="about"><h2>About these numbers</h2><dl>{items}</dl></section>'
