"""One experiment: what must be equal for two results to be the same experiment, defined once.

An :class:`Experiment` is one method, with its options, trained on one training noise and training
set under one supervision, at one profile and budget, on one engine, scored under one evaluation
protocol with one training-noise policy. Resuming a run folder, a job run by an executor and the
leaderboard all derive what they compare from it: a run folder is continued only under the same
experiments, an executor's job refuses to run a unit whose experiment is not the one it was
submitted for, and the leaderboard averages records only within one experiment (its rows are
experiments, not method names).

The dataset and seed are not part of it: a job is one experiment on one dataset with one seed, and
the leaderboard averages over seeds of the same experiment.

The *conditions* (profile, budget, engine, protocol, noise policy) are what a run sets for all of its
methods; runs that differ in them are not comparable unless a leaderboard is told to allow it, and
even then their experiments stay apart. Method options, training noise and training set are what
tells one row of a leaderboard from another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from denoise_bench.options import parse_option

CONDITIONS = ("profile", "budget", "engine", "protocol", "noise_policy")


def _text(value: Any) -> str:
    """An option value as it is written: booleans as true/false, everything else as str()."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical_options(given: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None,
                      always: Iterable[str] = ()) -> str:
    """Method options as ``k=v,...`` sorted by key, leaving out values equal to their default, except
    the options named in ``always`` (a method's ``identity_options``), which are written at their
    default too, so that a later change of that default cannot give old results a new meaning.

    ``given`` may hold text (as typed after ``--method-option``) or typed values; with ``defaults``
    (the method's ``options``) text is compared with the default as the method would read it, so
    ``stop_gradient=true`` for a default of True is no option at all. Without defaults (a method no
    longer installed) the given values are kept as written.
    """
    always = set(always)
    kept = {str(k): _text(defaults[k]) for k in always if defaults is not None and k in defaults}
    for key, value in (given or {}).items():
        if defaults is not None and key in defaults:
            default = defaults[key]
            try:
                typed = parse_option(value, like=default) if isinstance(value, str) else value
            except ValueError:
                typed = value
            if typed == default and type(typed) is type(default) and key not in always:
                continue
            value = typed
        kept[str(key)] = _text(value)
    return ",".join(f"{k}={kept[k]}" for k in sorted(kept))


def parse_canonical(options: str) -> dict[str, str]:
    """The ``k=v`` pairs of a :func:`canonical_options` text (values as written)."""
    return dict(pair.split("=", 1) for pair in options.split(",") if pair)


def shown_options(options: str, defaults: Mapping[str, Any] | None) -> str:
    """A recorded options text without the values equal to ``defaults`` (the method's options now): what
    a row label shows, so that identity options at today's default do not crowd it."""
    if defaults is None:
        return options
    return ",".join(f"{k}={v}" for k, v in parse_canonical(options).items()
                    if not (k in defaults and v == _text(defaults[k])))


OURS = " (ours)"  # the mark of a row this suite's extensions made (Method.extensions, Method.ours)


def row_name(method: str, options: str, method_cls: Any = None) -> tuple[str, str]:
    """(the name a row of ``method`` run with the recorded ``options`` goes by, the options still to show).

    Extensions (``method_cls.extensions``) at a value other than their default join the name with
    :data:`OURS` (``iddp+ema(0.999)+clip(1.0) (ours)``), so that such a row never reads as the paper's
    method; a method that is itself the suite's own variant (``method_cls.ours``) always carries the mark.
    The options left to show are the others that differ from today's defaults (:func:`shown_options`).
    Without the class (a method no longer installed) the name is the method's and every option is shown.
    """
    if method_cls is None:
        return method, options
    defaults = getattr(method_cls, "options", None)
    shown = parse_canonical(shown_options(options, defaults))
    extensions = [k for k in getattr(method_cls, "extensions", ()) if k in shown]
    name = method + "".join(f"+{k}({shown.pop(k)})" for k in extensions)
    if extensions or getattr(method_cls, "ours", False):
        name += OURS
    return name, ",".join(f"{k}={v}" for k, v in shown.items())


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class Experiment:
    """What makes two results the same experiment (see the module docstring)."""

    method: str
    method_options: str  # canonical_options(): the identity options, and the others that differ from their default
    train_noise: str
    training_set: str  # the train split's id (Dataset.training_set_id); "" for methods that do not train
    supervision: str
    profile: str
    budget: str  # the method's budget as sorted JSON (every field)
    engine: str  # precision, channels-last, compile as sorted JSON
    protocol: str  # the evaluation protocol as sorted JSON (id, seed, ...)
    noise_policy: str

    @property
    def key(self) -> str:
        """A stable text that two experiments share exactly when they are the same experiment."""
        return _json(asdict(self))

    def conditions(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in CONDITIONS}

    def differences(self, other: "Experiment") -> list[str]:
        """The names of the fields in which ``other`` differs, in field order."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    @staticmethod
    def from_key(key: str) -> "Experiment":
        return Experiment(**json.loads(key))


def run_conditions(config: Mapping[str, Any], method: str | None = None) -> dict[str, str]:
    """The conditions a run's ``config.json`` (in today's results format: ``results.read_config`` upgrades
    an older folder's) records for ``method`` (None: the run's own budget). A JSON round trip first, so a
    config read back from disk and one built in memory compare alike.
    """
    config = json.loads(json.dumps(dict(config), default=str))
    budget = config["budget"] if method is None else config["budgets"][method]
    return {"profile": str(config.get("profile")),
            "budget": _json(budget),
            "engine": _json(config["engine"]),
            "protocol": _json(config.get("protocol")),
            "noise_policy": str(config["noise_policy"])}


def config_experiments(config: Mapping[str, Any]) -> list[Experiment]:
    """Every (method, training noise) of a run's config as an experiment, sorted by key.

    The training set is the config's ``train_dataset`` or "" (each dataset's own): which split that
    is follows from the datasets and their options, which a resumed run compares as they are.
    Options are compared as given (``methods[].options``), since a config does not hold the defaults.
    """
    found = []
    for method in config.get("methods") or []:
        for noise in config.get("noise") or []:
            found.append(Experiment(
                method=method["name"], method_options=canonical_options(method.get("options")),
                train_noise=str(noise.get("train")), training_set=str(config.get("train_dataset") or ""),
                supervision=str(method.get("supervision")), **run_conditions(config, method["name"])))
    return sorted(found, key=lambda e: e.key)
