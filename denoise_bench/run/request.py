"""What the user asked a run for, as given: names not yet resolved (see ``denoise_bench.run.planning``).

A request is recorded in the run folder's ``config.json`` and read back from there to continue the
run (``bench run --resume``) or to run one of its units in another process (an executor's job).
Each field says how it is given (:mod:`denoise_bench.request_schema`): ``bench run``'s options, the
request file, :func:`denoise_bench.api.run_benchmark` and :meth:`RunRequest.recorded` are derived
from these dataclasses, in the order ``bench run --help`` lists them.
"""

from __future__ import annotations

import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from denoise_bench.data import resolve_data_dir
from denoise_bench.engine import COMPILE_MODES, REQUESTABLE_PRECISIONS
from denoise_bench.errors import BenchError
from denoise_bench.noise import split_noise_list
from denoise_bench.profiles import INITS, LR_RULES, PROFILES
from denoise_bench.protocol import PROTOCOLS
from denoise_bench.request_schema import leaves, option, option_of, recorded_value
from denoise_bench.results import CONFIG, json_kind, read_config
from denoise_bench.supervision import NoisePolicy

DEFAULT_METHODS = ["iddp", "unet", "n2n", "bm3d"]  # bench run's grid when --methods is not given
DATA_DIR_HELP = ("Folder of the named sets [env DENOISE_BENCH_DATA; else a ../shared/data holding MANIFEST.csv beside "
                 "the checkout or the working directory].")
PROGRESS_HELP = ("Progress bars (training, testing, downloads) [default: only when stderr is a terminal, so that a "
                 "redirected log gets none]; the line after each job is printed either way.")
# Why the request leaves a field out of config.json: it says where or how visibly a run goes, not what it computes.
WHERE_IT_RUNS = "where the run goes, not what it computes"


def _at_least_zero(value: int) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def _positive_multiple(value: float) -> str | None:
    """A multiplier (--lr-scale): a finite number above 0. inf or NaN would train to NaN weights, 0 or less
    would not train at all, and each only after the run had started."""
    return None if math.isfinite(value) and value > 0 else f"{value:g}: expected a finite number above 0"


def _positive_hours(value: float) -> str | None:
    """A time limit in hours (--skip-longer-than): a finite number above 0."""
    return None if math.isfinite(value) and value > 0 else f"{value:g}: expected a number of hours above 0"


@dataclass
class BudgetOverrides:
    """Fields of the profile's budget (``denoise_bench.profiles.Budget``) a request replaces; None keeps the profile's."""

    iterations: int | None = option(None, help="Override the profile's training iterations.")
    batch_size: int | None = option(None)
    crop_size: int | None = option(None)
    width: int | None = option(None, help="U-Net width.")
    test_images: int | None = option(None, help="Evaluate only the first N test images.")
    test_crop: int | None = option(None, help="Centre-crop the test images to N x N (default: the profile's).")
    per_image_iterations: int | None = option(
        None, help="Optimisation steps per test image for per-image methods such as DIP (default: the profile's).")
    lr_rule: str | None = option(
        None, choices=LR_RULES,
        help="Override the profile's learning-rate rule (official: each method's schedule; warmup-cosine: each method's rate, one warm-up + cosine shape).")
    lr_scale: float | None = option(
        None, check=_positive_multiple,
        help="Under warmup-cosine, peak at this multiple of each method's own learning rate (default 1).")
    init: str | None = option(
        None, choices=INITS,
        help="Override the profile's initialisation (own: each method's own, the official code's where one exists; pytorch: PyTorch's default).")


@dataclass
class EngineRequest:
    """How networks train (``denoise_bench.engine.resolve_engine`` decides ``auto`` and an unset layout)."""

    precision: str = option("auto", choices=REQUESTABLE_PRECISIONS, show_default=True,
                            help="bf16: autocast forward passes and losses (weights stay fp32); auto: bf16 + channels-last "
                                 "on CPUs with AMX (amx_bf16), fp32 elsewhere.")
    channels_last: bool | None = option(None, negatable=True,
                                        help="NHWC memory layout for the network [default: with bf16 chosen by auto].")
    compile: str = option("off", choices=COMPILE_MODES, show_default=True,
                          help="torch.compile the network's training forward; reduce-overhead adds CUDA graphs "
                               "(plain compile off CUDA).")
    capture: bool = option(False, help="Record each network's whole training step (crops, noise, forward, backward, Adam) "
                                       "as one CUDA graph and replay it; off CUDA the same static-buffer step runs "
                                       "eagerly. A method that cannot be recorded trains eagerly and says why.")


@dataclass
class RunRequest:
    """What the user asked for; names are resolved and checked by :func:`denoise_bench.run.planning.plan`."""

    methods: list[str] = option(cli_default=DEFAULT_METHODS, show_default=True,
                                help="Comma-separated method names (see `bench list`).")
    noises: list[str] = option(
        flag="noise", split=split_noise_list, repeat=True, cli_default=["gaussian"], api_default=("gaussian",),
        show_default=True,
        help="A family (paper preset: train on the range, test on the fixed level and the range) or a spec "
             "such as gaussian:sigma=25 or poisson:lam=5-50. Several: comma-separated or repeated.")
    datasets: list[str] = option(flag="dataset", cli_default=["skimage"], api_default=("skimage",), show_default=True,
                                 help="Comma-separated dataset names.")
    train_dataset: str | None = option(None, help="Train on this dataset's train split instead of each test dataset's own.")
    profile: str = option("quick", choices=tuple(PROFILES), show_default=True)
    seeds: list[int] = option(factory=lambda: [0], show_default=True, help="Comma-separated training seeds.")
    overrides: dict[str, int | float | str | None] = option(factory=dict, group=BudgetOverrides)
    protocol: str = option("nb2nb", choices=tuple(PROTOCOLS), show_default=True)
    repeats: int | None = option(
        None, minimum=1,
        help="Noise draws per test image, for every test set (default: the protocol's rule, which goes by the set's "
             "name: nb2nb and paper draw kodak24 x10, bsd300 x3, set14 x20, any other set once, a folder holding "
             "Kodak too). Tables say which.")
    noise_policy: str = option(NoisePolicy.FRESH.value, choices=tuple(p.value for p in NoisePolicy), show_default=True,
                               help="fresh: new training noise every iteration (official codes); fixed: one noisy copy per image.")
    device: str | None = option(None, cli_default="auto", show_default=True, not_recorded=WHERE_IT_RUNS,
                                help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    data_dir: Path | None = option(None, finish=resolve_data_dir, empty_is_unset=True, help=DATA_DIR_HELP)
    out: Path | None = option(None, folder=True, not_recorded=WHERE_IT_RUNS + " (config.json is in it)",
                              help="Run folder (default runs/<timestamp>).")
    method_options: dict[str, dict[str, str]] = option(
        factory=dict, flag="method-option", pairs="METHOD:KEY=VALUE", repeat=True,
        help="METHOD:KEY=VALUE, e.g. iddp:stop_gradient=false.")
    dataset_options: dict[str, str] = option(factory=dict, flag="dataset-option", pairs="KEY=VALUE", repeat=True,
                                             help="KEY=VALUE for the dataset, e.g. path=DIR for 'folder'.")
    checkpoint_every: int = option(200, show_default=True, check=_at_least_zero,
                                   help="Save a resumable training state every N steps (0: only the final weights).")
    eval_every: int = option(0, show_default=True, check=_at_least_zero,
                             help="Score the test images every N training steps (learning curves in curves.csv; 0: never).")
    stop_on_divergence: bool = option(
        False, help="End a training whose learning curve falls below the noisy input after having been above it "
                    "(denoise_bench.divergence); it is scored where it stopped, and its last network above the input "
                    "is kept as checkpoints/<job>.last-good.pt. Needs --eval-every.")
    curve_images: int | None = option(
        None, minimum=1,
        help="Learning curves on the first N test images of each dataset only (default: all), to keep them cheap.")
    skip_longer_than: float | None = option(
        None, check=_positive_hours, metavar="HOURS",
        help="Skip every training (with its tests) that the timed probe estimates at more than HOURS on this "
             "machine: its jobs are recorded as skipped, with the estimate, and show under 'not run' on the "
             "tables and leaderboards (default: run everything).")
    engine: dict[str, Any] = option(factory=dict, group=EngineRequest)
    progress: bool = option(True, negatable=True, cli_default=None, api_default=False, not_recorded=WHERE_IT_RUNS,
                            help=PROGRESS_HELP)
    tensorboard: bool = option(
        False, help="TensorBoard event files under RUN_DIR/tensorboard/ (needs: pip install 'denoise-bench[tensorboard]').")
    threads: int | None = option(  # torch threads (None: denoise_bench.threads decides)
        None, minimum=1, not_recorded="how fast the run goes, not what it computes (config.json's threads says what it used)",
        help="Torch threads [env DENOISE_BENCH_THREADS; default: OMP_NUM_THREADS if set, else the cores the "
             "load average leaves free, at least 1]; recorded in config.json.")
    # ``bench evaluate``: test the models trained in this run folder instead of training (see
    # ``denoise_bench.run.rescoring``), on these test noises instead of each setting's own (empty: its own).
    weights_from: Path | None = option(None, not_a_flag="set by `bench evaluate --run`, which copies the trained "
                                                        "run's request; a training run records it empty")
    test_noises: list[str] = option(factory=list, not_a_flag="set by `bench evaluate --noise`")

    def recorded(self) -> dict[str, Any]:
        """The request as ``config.json`` keeps it: every field but those saying where it runs (device, folder, progress bar)."""
        return {f.name: recorded_value(getattr(self, f.name)) for f in fields(self)
                if not option_of(f).not_recorded}

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
    """A recorded request (``config.json``) as flags: each field (or key of a grouped one) as its flag; the
    fields `bench run` has no flag for (those of `bench evaluate`) and unset ones left out."""
    flags: dict[str, Any] = {}
    for leaf in leaves(RunRequest):
        holder = request.get(leaf.group) if leaf.group else request
        value = holder.get(leaf.name) if isinstance(holder, dict) else None
        if value is not None and not leaf.option.not_a_flag:
            flags[leaf.flag] = value
    return flags
