"""Scoring the models a run trained on other test sets, without training them again (``bench evaluate``).

An evaluation is a run of its own, in a new run folder. Its request is the trained run's (methods and
their options, training noises, seeds, profile and budget, resolved engine, protocol, noise policy)
with other test sets, optionally other test noises or another protocol (scoring the same models as
the IDDP paper scored, say), and ``weights_from`` naming the trained run.
Planning gives its test sets a stand-in training source, :class:`TrainedElsewhere`, that carries the
trained run's training-set id, so every job is the same experiment as in the trained run (the
leaderboard puts them in one row, and the checkpoint names match); fitting then loads each model from
the trained run's ``checkpoints/`` instead of training (``denoise_bench.run.fitting``). Nothing is written
into the trained run, and its images are not needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from denoise_bench.data import Dataset, CleanImage
from denoise_bench.errors import BenchError
from denoise_bench.plugins import Registry
from denoise_bench.run.lock import running_holder
from denoise_bench.run.request import RunRequest
from denoise_bench.results import CHECKPOINTS, read_config, weights_stem

KINDS = {1: "gray", 3: "colour"}


@dataclass(frozen=True)
class TrainingGroup:
    """Test sets of the trained run that shared their models: one training set, one kind of image."""

    training_set: str
    channels: int
    datasets: tuple[str, ...]


class TrainedElsewhere(Dataset):
    """The training source of an evaluation: the trained run's training set, known by its id alone."""

    splits = ()
    description = "the training set of another run's models"

    def __init__(self, group: TrainingGroup, run_dir: Path) -> None:
        super().__init__(None)
        self.name = f"{group.training_set} (trained in {run_dir})"  # type: ignore[misc]
        self.channels = group.channels  # type: ignore[misc]
        self._training_set = group.training_set

    def training_set_id(self) -> str:
        return self._training_set

    def load(self, split: str) -> list[CleanImage]:
        raise BenchError(f"{self.name}: an evaluation tests trained models and has no images to train on")


def training_groups(config: dict[str, Any], registry: Registry) -> list[TrainingGroup]:
    """The trained run's test sets grouped as its grid trained them, from its config alone: each set's channels
    as the run recorded reading it (a folder is read as its files are, which may since have changed or gone)."""
    request = config["request"]
    recorded = config.get("dataset_channels") or {}
    data_dir = Path(request["data_dir"]) if request.get("data_dir") else None
    options = request.get("dataset_options") or {}

    def build(name: str) -> Dataset:
        return registry.dataset(name)(data_dir, **options)

    train = build(request["train_dataset"]) if request.get("train_dataset") else None
    groups: dict[tuple[str, int], list[str]] = {}
    for name in request["datasets"]:
        dataset = build(name)
        channels = int(recorded.get(dataset.name, dataset.channels))
        groups.setdefault(((train or dataset).training_set_id(), channels), []).append(name)
    return [TrainingGroup(training_set, channels, tuple(names)) for (training_set, channels), names in groups.items()]


def trained_source(weights_from: Path, datasets: Sequence[Dataset], registry: Registry) -> TrainedElsewhere:
    """The training source that the models of ``weights_from`` give ``datasets``: the group of their kind of image."""
    groups = training_groups(read_config(weights_from), registry)
    group = _group_for(weights_from, groups, {d.channels for d in datasets}, [d.name for d in datasets])
    return TrainedElsewhere(group, weights_from)


def _group_for(run_dir: Path, groups: list[TrainingGroup], channels: set[int], names: Sequence[str]) -> TrainingGroup:
    if len(channels) != 1:
        raise BenchError(f"one evaluation tests one kind of image; {', '.join(names)} mix gray and colour")
    wanted = next(iter(channels))
    matching = [g for g in groups if g.channels == wanted]
    if not matching:
        trained = "; ".join(f"{KINDS.get(g.channels, g.channels)} models for {', '.join(g.datasets)}" for g in groups)
        raise BenchError(f"{run_dir} trained {trained}; {', '.join(names)} is {KINDS.get(wanted, wanted)} "
                         f"(a folder can be read as {KINDS.get(groups[0].channels)} with --dataset-option "
                         f"channels={groups[0].channels})")
    if len(matching) > 1:
        sets = ", ".join(f"{g.training_set} (for {', '.join(g.datasets)})" for g in matching)
        raise BenchError(f"{run_dir} trained {KINDS.get(wanted, wanted)} models on several training sets ({sets}); "
                         "evaluating on another test set would have to pick one of them")
    return matching[0]


def evaluation_request(run_dir: Path, datasets: list[str], registry: Registry, *, methods: list[str] | None = None,
                       test_noises: Sequence[str] = (), data_dir: Path | None = None,
                       dataset_options: dict[str, str] | None = None, device: str | None = None,
                       out: Path | None = None, progress: bool = True, tensorboard: bool = False,
                       protocol: str | None = None, test_images: int | str | None = None,
                       note: Callable[[str], None] = lambda _: None) -> RunRequest:
    """The request of an evaluation of ``run_dir``'s trained models on ``datasets`` (names resolved as by ``plan``).

    ``methods``: a subset of the run's trained methods, plus any per-image method (default: every
    method the run trained, for every noise and seed); ``test_noises``: noise families (their preset
    tests) or specs, each of a family the models were trained on; the models trained on other
    families are left out (default: each training noise's own tests). ``tensorboard``: final PSNR/SSIM
    per job as event files (no training, so no loss curves). ``protocol``: score under another protocol
    than the trained run's (its rows are then other experiments than the trained run's). ``test_images``:
    score the first N test images, or ``"all"`` (default: as many as the trained run scored); which images
    were scored does not make another experiment, so a run scored on 8 images can be scored on all of them
    and paired with runs that were. ``note`` hears what was left out.
    """
    if not datasets:
        raise BenchError("no dataset (--dataset) given: an evaluation needs a test set")
    if methods is not None and not methods:
        raise BenchError("no methods (--methods) given; leave the flag out for every method the run trained")
    config = read_config(run_dir)
    holder = running_holder(run_dir)
    if holder:  # the methods it has yet to train would be left out as if its jobs had failed
        raise BenchError(f"{run_dir} is still running ({holder}); an evaluation now would score only the models "
                         "it has trained so far: wait for it to end")
    source = RunRequest.from_run_dir(run_dir)
    if source.weights_from is not None:
        raise BenchError(f"{run_dir} is itself an evaluation of the models of {source.weights_from}; evaluate that run")
    options = dict(dataset_options or {})
    groups = training_groups(config, registry)
    kinds = {g.channels for g in groups}
    if "folder" in datasets and "channels" not in options and len(kinds) == 1:
        options["channels"] = str(next(iter(kinds)))  # read the folder as the models' kind of image
        note(f"reading the folder's images as {KINDS.get(int(options['channels']), options['channels'])}, "
             "the kind of image the models were trained on")
    instances = [registry.dataset(name)(data_dir, **options) for name in datasets]
    group = _group_for(run_dir, groups, {d.channels for d in instances}, datasets)
    noises = _kept_noises(source.noises, config["noise"], test_noises, registry, run_dir)
    trained = [m for m in source.methods if registry.method(m).trainable]
    missing = {m: _missing_weights(run_dir, m, group, noises, source.seeds) for m in trained}
    if methods is None:
        chosen = [m for m in trained if not missing[m]]
        left_out = [m for m in source.methods if m not in chosen]
        if left_out:
            note(f"left out (per-image, or without trained weights in {run_dir / CHECKPOINTS}): {', '.join(left_out)}; "
                 "name a per-image method with --methods to run it too")
    else:
        chosen = methods
        for name in chosen:
            method_cls = registry.method(name)
            if method_cls.trainable and name not in trained:
                raise BenchError(f"{run_dir} did not train {name}; it trained {', '.join(trained) or 'no method'}")
            if method_cls.trainable and missing[name]:
                raise BenchError(f"{run_dir} has no trained weights for {name} at {missing[name][0]} "
                                 f"({len(missing[name])} missing; a failed or unfinished job, or a folder copied without checkpoints/)")
    if not chosen:
        raise BenchError(f"{run_dir} has no trained weights to evaluate under {run_dir / CHECKPOINTS}; "
                         "it was copied without them, or its jobs failed or did not finish")
    return RunRequest(
        methods=chosen, noises=[text for text, _ in noises], datasets=datasets, seeds=source.seeds,
        profile=source.profile, protocol=protocol or source.protocol,
        overrides=source.overrides if test_images is None else {**source.overrides, "test_images": test_images},
        noise_policy=source.noise_policy,
        data_dir=data_dir, device=device, out=out,
        method_options={m: o for m, o in source.method_options.items() if m in chosen},
        dataset_options=options, progress=progress, checkpoint_every=source.checkpoint_every,
        # The engine as the trained run resolved it: the same experiment wherever it is evaluated.
        engine=dict(config["engine"]), weights_from=run_dir, test_noises=list(test_noises), tensorboard=tensorboard)


def _kept_noises(texts: list[str], resolved: list[dict[str, Any]], test_noises: Sequence[str], registry: Registry,
                 run_dir: Path) -> list[tuple[str, str]]:
    """(request text, training spec) of each training noise that ``test_noises`` test (all when none are given)."""
    noises = [(text, str(entry["train"])) for text, entry in zip(texts, resolved)]
    if not test_noises:
        return noises
    families = {registry.noise_setting(t).family.name for t in test_noises}
    trained_families = {train.partition(":")[0] for _, train in noises}
    untrained = sorted(families - trained_families)
    if untrained:
        raise BenchError(f"--noise {', '.join(untrained)}: the models of {run_dir} were trained on "
                         f"{', '.join(sorted(trained_families))} noise only")
    return [(text, train) for text, train in noises if train.partition(":")[0] in families]


def _missing_weights(run_dir: Path, method: str, group: TrainingGroup, noises: list[tuple[str, str]],
                     seeds: list[int]) -> list[str]:
    """The trainings of ``method`` (``train noise, seed k``) whose weights ``run_dir`` lacks."""
    folder = run_dir / CHECKPOINTS
    return [f"{train}, seed {seed}" for _, train in noises for seed in seeds
            if not (folder / f"{weights_stem(method, group.training_set, train, seed)}.pt").is_file()]
