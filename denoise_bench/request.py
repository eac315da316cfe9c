"""What the user asked a run for, as given: names not yet resolved (see ``denoise_bench.planning``).

A request is recorded in the run folder's ``config.json`` and read back from there to continue the
run (``bench run --resume``) or to run one of its units in another process (an executor's job).
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from denoise_bench.errors import BenchError
from denoise_bench.results import CONFIG, json_kind, read_config
from denoise_bench.supervision import NoisePolicy


@dataclass
class RunRequest:
    """What the user asked for; names are resolved and checked by :func:`denoise_bench.planning.plan`."""

    methods: list[str]
    noises: list[str]
    datasets: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    profile: str = "quick"
    overrides: dict[str, int | float | str | None] = field(default_factory=dict)
    protocol: str = "nb2nb"
    noise_policy: str = NoisePolicy.FRESH.value
    train_dataset: str | None = None
    data_dir: Path | None = None
    device: str | None = None
    threads: int | None = None  # torch threads (None: denoise_bench.threads decides); like device, not recorded
    out: Path | None = None
    method_options: dict[str, dict[str, str]] = field(default_factory=dict)
    dataset_options: dict[str, str] = field(default_factory=dict)
    progress: bool = True
    checkpoint_every: int = 200  # training steps between resumable checkpoints (0: only at the end)
    eval_every: int = 0  # training steps between learning-curve evaluations on the test images (0: none)
    curve_images: int | None = None  # learning curves on the first N test images of each dataset (None: all)
    engine: dict[str, Any] = field(default_factory=dict)  # Engine switches (precision, channels_last, compile)
    tensorboard: bool = False  # TensorBoard event files under RUN_DIR/tensorboard/ (denoise_bench.tensorboard_events)
    # ``bench evaluate``: test the models trained in this run folder instead of training (see
    # ``denoise_bench.evaluation``), on these test noises instead of each setting's own (empty: its own).
    weights_from: Path | None = None
    test_noises: list[str] = field(default_factory=list)

    def recorded(self) -> dict[str, Any]:
        """The request as ``config.json`` keeps it: everything but where it runs (device, folder, progress bar)."""
        return {"methods": self.methods, "noises": self.noises, "datasets": self.datasets, "seeds": self.seeds,
                "profile": self.profile, "overrides": self.overrides, "protocol": self.protocol,
                "noise_policy": self.noise_policy, "train_dataset": self.train_dataset,
                "data_dir": str(self.data_dir) if self.data_dir else None, "method_options": self.method_options,
                "dataset_options": self.dataset_options, "checkpoint_every": self.checkpoint_every,
                "eval_every": self.eval_every, "curve_images": self.curve_images, "engine": self.engine,
                "tensorboard": self.tensorboard,
                "weights_from": str(self.weights_from) if self.weights_from else None, "test_noises": self.test_noises}

    @staticmethod
    def from_run_dir(run_dir: Path) -> "RunRequest":
        """The request recorded in a run folder, to continue it (``bench run --resume``)."""
        config = read_config(run_dir)
        stored = checked_request(config.get("request"), run_dir / CONFIG, complete=True)
        for key in ("data_dir", "weights_from"):
            stored[key] = Path(stored[key]) if stored.get(key) else None
        return RunRequest(**stored, out=run_dir)


# Fields ``config.json`` must record to continue a run; the others take their defaults where a run folder
# made before they existed lacks them.
_REQUIRED = ("methods", "noises", "datasets")


def checked_request(stored: object, path: Path, complete: bool = False) -> dict[str, Any]:
    """A request as ``config.json`` records it (:meth:`RunRequest.recorded`), checked field by field against
    :class:`RunRequest`; a hand-edited or damaged one is a BenchError naming ``path`` and the field.
    ``complete``: it must also name the grid (methods, noises, datasets), as a run folder's does."""
    if not isinstance(stored, dict):
        raise BenchError(f"{path}: its request is {json_kind(stored)}, not a JSON object of the request's fields "
                         "(a damaged or hand-edited file)")
    hints = typing.get_type_hints(RunRequest)
    known = RunRequest([], [], []).recorded()
    for key, value in stored.items():
        if key not in known:
            raise BenchError(f"{path}: the request has no field {key!r} (hand-edited?); fields: {', '.join(known)}")
        if not _conforms(value, hints[key]):
            shown = "" if value is None else f" {json.dumps(value)[:60]}"
            raise BenchError(f"{path}: request field {key} is {json_kind(value)}{shown}, "
                             f"not {_described(hints[key])} (a damaged or hand-edited file)")
    missing = [key for key in _REQUIRED if key not in stored] if complete else []
    if missing:
        raise BenchError(f"{path}: the request lacks {', '.join(missing)} (a damaged or hand-edited file)")
    return dict(stored)


def _conforms(value: object, hint: Any) -> bool:
    """Whether a JSON value fits a field annotation of :class:`RunRequest` (paths are recorded as text)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    return hint is Any or isinstance(value, str if hint is Path else hint)


def _described(hint: Any, plural: bool = False) -> str:
    """A field annotation as a reader of the JSON file says it: ``a list of whole numbers``, ``text or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_described(arg, plural) for arg in args)
    if origin is list:
        return ("lists" if plural else "a list") + f" of {_described(args[0], True)}"
    if origin is dict:
        return ("objects" if plural else "an object") + ("" if args[1] is Any else f" of {_described(args[1], True)}")
    names = {type(None): ("null", "null"), int: ("a whole number", "whole numbers"), float: ("a number", "numbers"),
             bool: ("true or false", "true or false"), str: ("text", "text"), Path: ("text (a path)", "paths")}
    return names.get(hint, ("a value", "values"))[plural]


# Request fields only ``bench evaluate`` sets (a training run records them empty); not flags of ``bench run``.
_EVALUATION_FIELDS = ("weights_from", "test_noises")
# config.json's request fields as the flags of ``bench run`` that set them (the rest share their name).
_FLAG_OF_FIELD = {"noises": "noise", "datasets": "dataset", "method_options": "method-option",
                  "dataset_options": "dataset-option"}


def read_request_file(path: Path) -> dict[str, Any]:
    """The flags a request file sets, keyed by flag name without dashes (``method-option``).

    A ``.toml`` file holds flags as keys (``methods = ["iddp", "unet"]``, ``iterations = 500``, and
    tables for ``method-option``, ``dataset-option``, ``executor-option``); a run folder's
    ``config.json`` gives the request recorded in it, so that the run can be replayed.
    """
    if not path.is_file():
        raise BenchError(f"--config {path}: no such file")
    if path.suffix == ".json":
        config = read_config(path.parent) if path.name == CONFIG else _json(path)
        request = checked_request(config.get("request", config), path)
        if request.get("weights_from"):
            raise BenchError(f"--config {path} records a `bench evaluate` of the models of {request['weights_from']}, "
                             f"not a training run; continue it with `bench run --resume {path.parent}`")
        return _flags_of_request(request)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"--config {path} is not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"--config {path} is not UTF-8 text, as TOML must be ({exc.reason} at byte {exc.start})") from None
    return {key.replace("_", "-"): value for key, value in data.items()}


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"--config {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BenchError(f"--config {path}: expected a JSON object")
    return data


def _flags_of_request(request: dict[str, Any]) -> dict[str, Any]:
    """A recorded request (``config.json``) as flags; its nested overrides and engine become single flags."""
    flags: dict[str, Any] = {}
    for key, value in request.items():
        if key in ("overrides", "engine") and isinstance(value, dict):
            flags.update({k.replace("_", "-"): v for k, v in value.items() if v is not None})
        elif value is not None and key not in _EVALUATION_FIELDS:
            flags[_FLAG_OF_FIELD.get(key, key.replace("_", "-"))] = value
    return flags
