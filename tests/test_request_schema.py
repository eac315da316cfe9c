"""Every value of the run request is reachable from each way of asking for a run, with the same meaning.

The request dataclasses (``denoise_bench.run.request``) are walked field by field (grouped fields key by
key): each value, set to something other than its default, must come back unchanged through
``bench run``'s options, a request file, a replayed ``config.json`` and ``run_benchmark()``'s keywords,
and be in the recorded config, unless its field says why it is left out of one.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from dataclasses import MISSING
from pathlib import Path
from typing import Any

import pytest

from denoise_bench.api import benchmark_request, run_benchmark
from denoise_bench.cli.commands import run_command
from denoise_bench.engine import resolve_engine
from denoise_bench.errors import BenchError
from denoise_bench.profiles import Budget
from denoise_bench.run.request import RunRequest
from denoise_bench.cli.request_options import request_of_options
from denoise_bench.request_schema import Leaf, leaves

LEAVES = leaves(RunRequest)
FLAGGED = [leaf for leaf in LEAVES if not leaf.option.not_a_flag]
RECORDED = [leaf for leaf in LEAVES if not leaf.option.not_recorded]


def _sample(leaf: Leaf, tmp_path: Path) -> Any:
    """A value of ``leaf`` that is not its default on any surface, so that a value lost on the way shows."""
    spec, base = leaf.option, leaf.base
    defaults = [leaf.default, leaf.default_for("cli"), leaf.default_for("api")]
    if spec.choices:
        return next(choice for choice in reversed(spec.choices) if choice not in defaults)
    if spec.pairs:
        return {"unet": {"width": "8", "depth": "3"}} if spec.pairs.startswith("METHOD:") else {"path": "x", "channels": "1"}
    if leaf.is_list:
        return [7, 8] if typing.get_args(base)[0] is int else [f"{leaf.name}-a", f"{leaf.name}-b"]
    if base is bool:
        return not leaf.default if leaf.default is not None else True
    if base is int:
        return 5 + (leaf.default or 0)
    if base is float:
        return 2.5
    if base is Path:
        return tmp_path / leaf.name
    return f"{leaf.name}-x"


def _samples(tmp_path: Path) -> dict[str, Any]:
    return {leaf.name: _sample(leaf, tmp_path) for leaf in LEAVES}


def _value(request: RunRequest | dict[str, Any], leaf: Leaf) -> Any:
    holder = request if isinstance(request, dict) else dataclasses.asdict(request)
    return holder[leaf.group][leaf.name] if leaf.group else holder[leaf.name]


def _parsed(args: list[str]) -> RunRequest:
    """The request `bench run ARGS` asks for, parsed as the command parses it (nothing planned or run)."""
    context = run_command.make_context("run", args)
    return request_of_options(context.params)


def _args(samples: dict[str, Any]) -> list[str]:
    """`bench run`'s arguments that give each flagged sample."""
    args: list[str] = []
    for leaf in FLAGGED:
        value, flag = samples[leaf.name], f"--{leaf.flag}"
        if leaf.option.pairs and leaf.option.pairs.startswith("METHOD:"):
            args += [part for m, opts in value.items() for k, v in opts.items() for part in (flag, f"{m}:{k}={v}")]
        elif leaf.option.pairs:
            args += [part for k, v in value.items() for part in (flag, f"{k}={v}")]
        elif leaf.option.repeat:
            args += [part for item in value for part in (flag, str(item))]
        elif leaf.is_list:
            args += [flag, ",".join(str(item) for item in value)]
        elif leaf.base is bool:
            args += [flag if value else f"--no-{leaf.flag}"]
        else:
            args += [flag, str(value)]
    return args


def _toml(values: dict[str, Any]) -> str:
    """A request file of ``values`` (keys are flags); JSON's strings, numbers, booleans and arrays are TOML's."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items() if not isinstance(value, dict)]
    for key, table in ((k, v) for k, v in values.items() if isinstance(v, dict)):
        nested = all(isinstance(inner, dict) for inner in table.values())
        for name, inner in (table.items() if nested else [(None, table)]):
            lines += [f"[{key}{'.' + name if name else ''}]", *(f"{k} = {json.dumps(v)}" for k, v in inner.items())]
    return "\n".join(lines) + "\n"


def _request(samples: dict[str, Any]) -> RunRequest:
    """A request holding every sample, made directly (bench evaluate's values too)."""
    fields: dict[str, Any] = {}
    for leaf in LEAVES:
        holder = fields.setdefault(leaf.group, {}) if leaf.group else fields
        holder[leaf.name] = samples[leaf.name]
    return RunRequest(**fields)


def test_every_value_given_on_the_command_line_reaches_the_request(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    request = _parsed(_args(samples))
    assert {leaf.name: _value(request, leaf) for leaf in FLAGGED} == {leaf.name: samples[leaf.name] for leaf in FLAGGED}


def test_every_value_given_in_a_request_file_reaches_the_request(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    file = tmp_path / "run.toml"
    file.write_text(_toml({leaf.flag: str(samples[leaf.name]) if leaf.base is Path else samples[leaf.name]
                           for leaf in FLAGGED}))
    request = _parsed(["--config", str(file)])
    assert {leaf.name: _value(request, leaf) for leaf in FLAGGED} == {leaf.name: samples[leaf.name] for leaf in FLAGGED}


def test_every_recorded_value_is_in_config_json_and_replays_from_it(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    recorded = json.loads(json.dumps(_request(samples).recorded()))
    assert {leaf.name: _value(recorded, leaf) for leaf in RECORDED} == {
        leaf.name: str(samples[leaf.name]) if leaf.base is Path else samples[leaf.name] for leaf in RECORDED}
    recorded["weights_from"] = None  # a training run's: an evaluation's is continued with --resume, not replayed
    (tmp_path / "request.json").write_text(json.dumps({"request": recorded}))
    replayed = _parsed(["--config", str(tmp_path / "request.json")])
    replayable = [leaf for leaf in RECORDED if leaf in FLAGGED]
    assert {leaf.name: _value(replayed, leaf) for leaf in replayable} == {leaf.name: samples[leaf.name] for leaf in replayable}


def test_every_value_is_a_keyword_of_run_benchmark(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    parameters = inspect.signature(run_benchmark).parameters
    assert [leaf.name for leaf in FLAGGED if leaf.name not in parameters] == []
    request = benchmark_request(**{leaf.name: samples[leaf.name] for leaf in FLAGGED})
    assert {leaf.name: _value(request, leaf) for leaf in FLAGGED} == {leaf.name: samples[leaf.name] for leaf in FLAGGED}


def test_run_benchmark_keeps_its_defaults_and_records_only_the_budget_fields_given() -> None:
    request = benchmark_request(methods="unet,bm3d", noises="gaussian", datasets=["skimage"], profile="smoke",
                                iterations=30)
    assert (request.methods, request.noises, request.seeds, request.progress) == (["unet", "bm3d"], ["gaussian"], [0], False)
    assert (request.overrides, request.engine) == ({"iterations": 30}, {})
    with pytest.raises(BenchError, match="no keyword 'iteration'"):
        benchmark_request(methods="unet", iteration=3)


def test_the_values_left_out_of_a_way_in_are_these_and_say_why() -> None:
    """Leaving a value out of one way of asking for a run is a decision, made here and explained by its field."""
    assert {leaf.name: bool(leaf.option.not_recorded) for leaf in LEAVES if leaf.option.not_recorded} == {
        "device": True, "out": True, "progress": True, "threads": True}
    assert {leaf.name: bool(leaf.option.not_a_flag) for leaf in LEAVES if leaf.option.not_a_flag} == {
        "weights_from": True, "test_noises": True}


def test_the_grouped_fields_cover_the_budget_and_the_engine_switches() -> None:
    """A budget field (or an engine switch) added without a request value would be unreachable but in code."""
    groups = {leaf.group: [] for leaf in LEAVES if leaf.group}
    for leaf in LEAVES:
        if leaf.group:
            groups[leaf.group].append(leaf.name)
    assert sorted(groups["overrides"]) == sorted(f.name for f in dataclasses.fields(Budget))
    engine_params = [p for p in inspect.signature(resolve_engine).parameters.values() if p.kind is not p.KEYWORD_ONLY]
    assert groups["engine"] == [p.name for p in engine_params]
    assert all(leaf.default is not MISSING or leaf.name in ("methods", "noises", "datasets") for leaf in LEAVES)


def test_a_budget_field_left_unset_is_the_same_request_however_it_is_listed() -> None:
    """Older run folders (and run_benchmark()'s) list fewer unset budget fields than `bench run` records now;
    re-running their command into them continues them, as before."""
    from denoise_bench.run.folder import _comparable

    fewer, more = {"request": {"overrides": {"iterations": None}}}, {"request": {"overrides": {"test_crop": None}}}
    assert _comparable(fewer) == _comparable(more)
    assert _comparable(fewer) != _comparable({"request": {"overrides": {"test_crop": 64}}})
