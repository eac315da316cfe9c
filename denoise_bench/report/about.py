"""The "About these numbers" block at the top of the page, kept short so that the first table shows
without scrolling: the caveat (profile, how far from converged), then each property of the runs
(protocol, profile, training budget, test set, engine, machine, code) stated once where every run
agrees, a small table of what differs where they do not, how many test images each row averages,
and the cautions the tables mark.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from denoise_bench.report.condition_text import ENGINE_FIELDS, TEST_FIELDS, TRAINING_FIELDS, field_text
from denoise_bench.report.convergence import convergence_caveat
from denoise_bench.results import (BELOW_FLOOR_MARK, FLOOR_KERNEL, below_floor_cells, below_input_warnings,
                                   implausible_warnings, profile_warnings)

if TYPE_CHECKING:
    from denoise_bench.report.leaderboard_merge import RunInfo


@dataclass
class _Row:
    """One run folder, or the methods of one that share a budget: each property as field -> words."""

    run: str
    methods: list[str]
    properties: dict[str, dict[str, str]]


def _protocol_text(config: dict) -> str:
    protocol = config.get("protocol") or {}
    ident = str(protocol.get("id") or protocol.get("name") or "not recorded")
    return f"{ident}: {protocol['description']}" if protocol.get("description") else ident


def _machine(environment: dict) -> dict[str, str]:
    """Device, threads, system and versions of a run (environment.json), each a field of its own, so that
    runs on one kind of machine show it once and only what differs is tabled."""
    if not environment:
        return {"device": "not recorded"}
    device = str(environment.get("device", "unknown device"))
    found: dict[str, str] = {}
    if device.startswith("cuda"):
        found["device"] = f"{environment.get('device_name')} ({device})"
    else:
        model = environment["cpu_model"]
        bf16 = environment.get("cpu_bf16_flags")
        found["device"] = f"CPU {model}" + (f" ({', '.join(bf16)})" if bf16 else "")
        threads = environment.get("torch_threads")
        if threads:
            found["threads"] = f"{threads} torch thread{'s' if threads != 1 else ''}"
    if environment.get("platform"):
        # The system only: kernel build strings differ between hosts of one kind and say nothing about
        # the numbers (environment.json keeps the whole string).
        found["system"] = str(environment["platform"]).split("-")[0]
    torch_version = (environment.get("versions") or {}).get("torch")
    if torch_version:
        found["torch"] = f"torch {torch_version}"
    if environment.get("python"):
        found["python"] = f"Python {environment['python']}"
    return found


def _properties(config: dict, budget: dict, environment: dict) -> dict[str, dict[str, str]]:
    """The properties of one row, in the order the block lists them."""
    engine = config["engine"]
    commit = environment.get("git_commit")
    return {
        "Protocol": {"protocol": _protocol_text(config)},
        "Profile": {"profile": str(config.get("profile") or "not recorded")},
        "Training budget": {k: field_text(k, budget[k]) for k in TRAINING_FIELDS if budget.get(k) is not None},
        "Test set": {k: field_text(k, budget.get(k)) for k in TEST_FIELDS},
        "Training engine": {k: field_text(k, engine[k]) for k in ENGINE_FIELDS if k in engine},
        "Noise policy": {"noise_policy": str(config["noise_policy"])},
        "Machine": _machine(environment),
        "Commit": {"commit": str(commit)[:12] if commit else "not recorded"},
    }


def _rows(runs: list[RunInfo], records: pd.DataFrame) -> list[_Row]:
    """A row per run, or per group of its trained methods that share a budget (the official profile
    gives each method its own); methods that do not train join the run's first row."""
    rows = []
    for info in runs:
        here = records[records.run_dir == str(info.run_dir)] if "run_dir" in records else records.iloc[:0]
        base = here.base_method if "base_method" in here else here.method
        trained = here.iterations.fillna(0) > 0 if "iterations" in here else pd.Series(False, here.index)
        groups: dict[str, tuple[dict, list[str]]] = {}
        for label, method, learns in dict.fromkeys(zip(here.method, base, trained)):
            budget = info.config["budgets"][method] if learns else info.config["budget"]
            key = repr(sorted(budget.items())) if learns else ""
            groups.setdefault(key, (budget, []))[1].append(str(label))
        untrained = groups.pop("", None)
        if untrained and groups:
            next(iter(groups.values()))[1].extend(untrained[1])
        elif untrained:
            groups[""] = untrained
        for budget, methods in groups.values() or [(info.config["budget"], [])]:
            rows.append(_Row(str(info.run_dir), methods, _properties(info.config, budget, info.environment)))
    return rows


def _split(rows: list[_Row]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(property -> the words every row shares, property -> the fields in which rows differ)."""
    common: dict[str, str] = {}
    differing: dict[str, list[str]] = {}
    for name in rows[0].properties:
        fields = list(dict.fromkeys(f for row in rows for f in row.properties[name]))
        same = [f for f in fields if len({row.properties[name].get(f) for row in rows}) == 1]
        shared = ", ".join(rows[0].properties[name][f] for f in same if f in rows[0].properties[name])
        if shared:
            common[name] = shared
        if len(same) < len(fields):
            differing[name] = [f for f in fields if f not in same]
    return common, differing


def _differences_html(rows: list[_Row], differing: dict[str, list[str]]) -> str:
    head = "".join(f"<th>{html.escape(name.lower())}</th>" for name in differing)
    body = []
    for row in rows:
        cells = "".join("<td>" + html.escape(", ".join(row.properties[name][f] for f in fields if f in row.properties[name]))
                        + "</td>" for name, fields in differing.items())
        body.append(f"<tr><td><code>{html.escape(row.run)}</code></td><td>{html.escape(', '.join(row.methods))}</td>{cells}</tr>")
    # In a box of its own that scrolls, as every table of the page: many runs that differ in much make it
    # wider than the window, which must not scroll sideways.
    return (f'<div class="table-wrap"><table class="differences"><thead><tr><th>run folder</th><th>rows</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def images_text(records: pd.DataFrame) -> str:
    """How many test images each row averages: the count of each set, and the rows scored on fewer."""
    counts = records.groupby(["dataset", "method"], sort=True).image.nunique()
    most = counts.groupby(level="dataset").max()
    every = " and ".join(f"{n} {dataset}" for dataset, n in most.items())
    fewer = [f"{method}: {n} of {dataset}" for (dataset, method), n in counts.items() if n < most[dataset]]
    return f"Every row averages {every} test images" + (f", except {'; '.join(fewer)}" if fewer else "") + "."


def _floor_cautions(records: pd.DataFrame) -> list[str]:
    """One line for every row below the floor, however many rows and tables: the marks in the tables
    say where; this says by how much."""
    by_method: dict[str, list[float]] = {}
    for (_, _, _, label), (psnr, floor) in below_floor_cells(records).items():
        by_method.setdefault(label, []).append(floor - psnr)
    if not by_method:
        return []
    tables = records.groupby("method").apply(lambda r: len(r[["dataset", "test_noise"]].drop_duplicates()),
                                             include_groups=False)
    rows = [f"{label} by {min(gaps):.2f} to {max(gaps):.2f} dB in {len(gaps)} of its {tables.get(label, len(gaps))} tables"
            for label, gaps in by_method.items()]
    return [f"Below the floor ({BELOW_FLOOR_MARK}, a {FLOOR_KERNEL}x{FLOOR_KERNEL} box filter of the noisy input; "
            f"such a row has not learned more than that): {'; '.join(rows)}."]


def _list_html(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def about_html(runs: list[RunInfo], records: pd.DataFrame, curves: pd.DataFrame | None = None,
               controls: pd.DataFrame | None = None) -> str:
    """The compact block that says what the numbers were made under, at the top of the page."""
    rows = _rows(runs, records)
    common, differing = _split(rows)
    caveat = [*profile_warnings(records),
              convergence_caveat(records, curves if curves is not None else pd.DataFrame(), controls)]
    items = [("Caveat", " ".join(html.escape(c) for c in caveat))]
    items += [(name, html.escape(text)) for name, text in common.items()]
    items.append(("Runs made", html.escape(_days_text(runs))))
    if not differing:
        items.append(("Run folders", ", ".join(f"<code>{html.escape(i)}</code>" for i in dict.fromkeys(r.run for r in rows))))
    items.append(("Test images", html.escape(images_text(records))))
    cautions = below_input_warnings(records) + _floor_cautions(records) + implausible_warnings(records)
    if cautions:
        items.append(("Caution", _list_html(cautions)))
    listed = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    table = ""
    if differing:
        table = ("<p class=\"note\">Where the runs differ:</p>"
                 + _differences_html(rows, differing))
    return f'<section class="about"><h2>About these numbers</h2><dl>{listed}</dl>{table}</section>'


def _days_text(runs: list[RunInfo]) -> str:
    days = sorted({info.made for info in runs})
    text = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    sources = sorted({info.made_from for info in runs if info.made_from})
    return f"{text} ({'; '.join(sources)})" if sources else text
