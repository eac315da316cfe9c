"""What the user asked a run for, as given: names not yet resolved (see ``denoise_bench.planning``).

A request is recorded in the run folder's ``config.json`` and read back from there to continue the
run (``bench run --resume``) or to run one of its units in another process (an executor's job).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from denoise_bench.errors import BenchError
from denoise_bench.results import CONFIG, read_config
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
        stored = dict(config["request"])
        for key in ("data_dir", "weights_from"):
            stored[key] = Path(stored[key]) if stored.get(key) else None
        return RunRequest(**stored, out=run_dir)


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
        request = config.get("request", config)
        if request.get("weights_from"):
            raise BenchError(f"--config {path} records a `bench evaluate` of the models of {request['weights_from']}, "
                             f"not a training run; continue it with `bench run --resume {path.parent}`")
        return _flags_of_request(request)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"--config {path} is not valid TOML ({exc})") from None
    return {key.replace("_", "-"): value for key, value in data.items()}


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
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
