"""``bench denoise``: image files denoised by a method of a run, the way that run trained (or set) it up.

The method, its options, budget and training noise are read from the run folder: from the
checkpoint's own header, or, for checkpoints saved before headers existed and for per-image methods
(which keep no checkpoint), from the run's ``config.json``. A method told the noise level (BM3D) gets
``--sigma`` or, without it, an estimate from each image (``skimage.restoration.estimate_sigma``),
and the output says which.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from denoise_bench.atomic import create_new
from denoise_bench.checkpoints import load_checkpoint
from denoise_bench.environment import pick_device
from denoise_bench.errors import BenchError
from denoise_bench.images import IMAGE_SUFFIXES, UNREADABLE, list_images, read_image
from denoise_bench.method import NoiseInfo, resolve_options
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import Registry, get_registry
from denoise_bench.protocol import get_protocol
from denoise_bench.results import file_slug, read_config
from denoise_bench.models.trained import (ABOUT, RunCheckpoint, TrainedDenoiser, build_method, check_header, find_checkpoint,
                                   run_checkpoints)

FORMATS = ("png", "tiff", "npy")  # 8-bit PNG; float32 TIFF or .npy in [0, 1] (not clipped)
SUFFIXES = {"png": ".png", "tiff": ".tif", "npy": ".npy"}  # of the files written in each format


def _from_config(run_dir: Path, method: str, noise_slug: str | None, seed: int, registry: Registry,
                 training_set: str | None = None) -> dict[str, Any]:
    """The header of ``method`` as trained in ``run_dir`` (on ``training_set``, where given), rebuilt from its config.json."""
    config = read_config(run_dir)
    entry = next((m for m in config.get("methods") or [] if m.get("name") == method), None)
    if entry is None:
        ran = ", ".join(m.get("name", "?") for m in config.get("methods") or []) or "none"
        raise BenchError(f"{run_dir} did not run {method!r} (methods there: {ran})")
    trains = [n["train"] for n in config.get("noise") or []]
    if noise_slug is not None:
        trains = [t for t in trains if noise_slug in (t, file_slug(t))]
    if len(trains) != 1:
        raise BenchError(f"{run_dir}: choose the training noise with --noise (one of: "
                         f"{', '.join(n['train'] for n in config.get('noise') or [])})")
    request = config["request"]
    budget = config["budgets"][method]
    family = parse_spec(trains[0], registry.noise_families).family
    return {"method": method, "options": entry.get("options") or {}, "channels": _channels(config, registry, training_set),
            "budget": budget, "seed": seed, "train_noise": None if family.captured else trains[0], "train_side": None,
            "protocol": request["protocol"]}


def _channels(config: dict[str, Any], registry: Registry, training_set: str | None) -> int:
    """The channels a run's models trained on ``training_set`` have: those of its test sets that train on it
    (the run trains one model per training set and kind of image), else of its first; each set's as the run
    read it (``dataset_channels``: a folder is read as its files are, which may since have changed or gone)."""
    # The request's registry names (and options): config.json's own "datasets" holds the instances' names,
    # which for a folder is "folder:<its name>", no dataset's registry key.
    request = config["request"]
    options = request.get("dataset_options") or {}
    recorded = config.get("dataset_channels") or {}

    def built(name: str) -> Any:
        try:
            return registry.dataset(name)(None, **options)
        except BenchError:
            return None

    def read_channels(dataset: Any) -> int:
        return int(recorded.get(dataset.name, dataset.channels))

    train = built(request["train_dataset"]) if request.get("train_dataset") else None
    if training_set is not None:
        channels = set()
        for name in request["datasets"]:
            dataset = built(name)
            if dataset is not None and (train or dataset).training_set_id() == training_set:
                channels.add(read_channels(dataset))
        if len(channels) == 1:
            return channels.pop()
    source = request["train_dataset"] or request["datasets"][0]
    dataset = train if request.get("train_dataset") else built(source)
    return read_channels(dataset) if dataset is not None else registry.dataset(source).channels


def run_denoiser(run_dir: Path, method: str, noise: str | None = None, seed: int | None = None,
                 device: str | None = "cpu", registry: Registry | None = None) -> TrainedDenoiser:
    """``method`` as ``run_dir`` trained it (per-image methods: as it set them up), ready to denoise."""
    registry = registry or get_registry()
    if not run_dir.is_dir():
        raise BenchError(f"run folder not found: {run_dir}")
    method_cls = registry.method(method)
    if not method_cls.trainable:
        about = _from_config(run_dir, method, noise, seed or 0, registry)
        chosen = pick_device(None if device in (None, "auto") else device)
        return TrainedDenoiser(build_method(about, chosen, registry, str(run_dir)), about, get_protocol(about["protocol"]))
    found, state = run_checkpoint(run_dir, method, noise, seed, registry)
    about = state.pop(ABOUT)
    chosen = pick_device(None if device in (None, "auto") else device)
    built = build_method(about, chosen, registry, str(found.path))
    built.load_state_dict(state)
    return TrainedDenoiser(built, about, get_protocol(about["protocol"]))


def run_checkpoint(run_dir: Path, method: str, noise: str | None = None, seed: int | None = None,
                   registry: Registry | None = None) -> tuple[RunCheckpoint, dict[str, Any]]:
    """The checkpoint of ``method`` in ``run_dir`` and its state with its header (rebuilt from the run's
    config.json for checkpoints saved before headers existed)."""
    registry = registry or get_registry()
    if not any(c.method == method for c in run_checkpoints(run_dir)):
        _from_config(run_dir, method, noise, 0, registry)  # names what the run did run
    found = find_checkpoint(run_dir, method, noise, seed)
    state = load_checkpoint(found.path)
    recorded = _from_config(run_dir, method, found.noise, found.seed, registry, found.training_set)
    if not isinstance(state.get(ABOUT), dict):
        state[ABOUT] = recorded
    given = recorded["options"]
    try:  # the run records the options it was given; its header holds every option
        recorded = recorded | {"options": resolve_options(method, registry.method(method).options, given)}
    except BenchError:  # an option the method no longer has: those given are still compared
        pass
    check_header(found, state[ABOUT], recorded, frozenset(given))
    return found, state


def native_channels(path: Path) -> int:
    """How many channels an image file has (1 gray, 3 colour), or a BenchError naming the file."""
    if not path.is_file():
        raise BenchError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            return 1 if img.mode in ("L", "1", "LA", "I", "I;16", "F") else 3
    except UNREADABLE as exc:
        raise BenchError(f"{path}: not a readable image ({exc})") from None


def image_files(inputs: list[Path]) -> list[Path]:
    """The image files of ``inputs`` (files, and the images of folders), each file once."""
    files: dict[Path, Path] = {}
    for item in inputs:
        found = list_images(item) if item.is_dir() else [item]
        if not found:
            raise BenchError(f"{item}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        for path in found:
            files.setdefault(path.resolve(), path)
    return list(files.values())


def output_files(files: list[Path], out: Path, fmt: str) -> list[Path]:
    """Where each of ``files`` is written in format ``fmt``: a new file of ``out`` each, or a BenchError before
    anything is written. Outputs are never written among the inputs, over one another, or over a file already there."""
    if out.resolve() in {path.resolve().parent for path in files}:
        raise BenchError(f"--out {out} holds input images; write the denoised ones to a folder of their own")
    targets: dict[Path, Path] = {}
    for path in files:
        target = out / f"{path.stem}{SUFFIXES[fmt]}"
        if target in targets:
            raise BenchError(f"{targets[target]} and {path} would both be written to {target}; "
                             "denoise them into different --out folders")
        if target.exists():
            raise BenchError(f"{target} exists; bench denoise writes only new files: choose another --out or remove it")
        targets[target] = path
    return list(targets)


@dataclass(frozen=True)
class Denoised:
    source: Path
    written: Path
    level: str  # the noise level given to the method, and where it came from; "" if it takes none
    doubt: str = ""  # why the written image looks like no denoising of its input (see degenerate); "" if it does not


def noise_info(denoiser: TrainedDenoiser, pixels: np.ndarray, sigma: float | None,
               registry: Registry) -> tuple[NoiseInfo | None, str]:
    """What a method told the noise level gets for this image, and how to say it."""
    if not denoiser.method.uses_noise_level:
        return None, ""
    text = denoiser.train_noise or "gaussian:sigma=25"
    spec = parse_spec(text, registry.noise_families)
    names = [p.name for p in spec.family.params]
    if names != ["sigma"]:
        raise BenchError(f"{denoiser.name} needs the level of {spec.family.name} noise ({', '.join(names)}); "
                         "bench denoise can give it only a Gaussian sigma")
    if sigma is not None:
        return NoiseInfo(spec, {"sigma": float(sigma)}), f"sigma {sigma:g} (given)"
    from skimage.restoration import estimate_sigma

    image, axis = (pixels, -1) if pixels.shape[2] > 1 else (pixels[:, :, 0], None)
    estimate = float(estimate_sigma(image, channel_axis=axis, average_sigmas=True)) * 255.0
    estimate = max(estimate, 0.1)
    return NoiseInfo(spec, {"sigma": estimate}), f"sigma {estimate:.2f} (estimated from the image)"


def write_estimate(estimate: np.ndarray, path: Path, fmt: str) -> None:
    """An (H, W, C) estimate as a file; gray images as (H, W), as gray image files hold them."""
    values = (estimate[:, :, 0] if estimate.shape[2] == 1 else estimate).astype(np.float32)
    # Encoded in memory and written by Python under a temporary name: a full disk is then an OSError (ENOSPC)
    # naming the file, and leaves no truncated image that reads as a result.
    encoded = io.BytesIO()
    if fmt == "npy":
        np.save(encoded, values)
    elif fmt == "tiff":
        import tifffile

        tifffile.imwrite(encoded, values)
    else:
        Image.fromarray(np.floor(np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)).save(encoded, format="PNG")
    try:
        create_new(path, encoded.getvalue())
    except FileExistsError as exc:
        if exc.filename != str(path):  # a file where its folder should be: the caller names it
            raise
        # output_files found none there: another process wrote it since
        raise BenchError(f"{path} appeared while this bench denoise ran (another one writing to the same --out?); "
                         "it is left as it is, and nothing more is written: choose another --out") from None


# An estimate is flagged when its spread is under this share of its input's (an all-grey or all-black image) ...
FLAT_SHARE = 0.1
# ... or its mean level moved this share of the way to black (or to white) from the input's, by at least MEAN_SHIFT:
# denoising keeps an image's brightness, an under-trained network often does not.
LEVEL_SHARE, MEAN_SHIFT = 0.5, 0.05


def degenerate(estimate: np.ndarray, pixels: np.ndarray) -> str:
    """Why ``estimate`` looks like no denoising of ``pixels`` (both (H, W, C) in [0, 1]): not finite, nearly
    flat, far darker or far brighter than its input, as an under-trained model's output is; "" if none of these."""
    if not np.isfinite(estimate).all():
        return "it holds NaN or infinite values (written as black)"
    reasons = []
    spread, spread_in = float(np.std(estimate)), float(np.std(pixels))
    if spread_in >= 1 / 255 and spread < FLAT_SHARE * spread_in:
        reasons.append(f"nearly flat (a spread of {spread * 255:.1f} grey levels; its input's {spread_in * 255:.1f})")
    mean, mean_in = float(np.mean(estimate)), float(np.mean(pixels))
    levels = f"(mean {mean * 255:.0f} of 255; its input's {mean_in * 255:.0f})"
    if mean_in - mean > max(LEVEL_SHARE * mean_in, MEAN_SHIFT):
        reasons.append(f"far darker than its input {levels}")
    elif mean - mean_in > max(LEVEL_SHARE * (1 - mean_in), MEAN_SHIFT):
        reasons.append(f"far brighter than its input {levels}")
    return f"it is {' and '.join(reasons)}" if reasons else ""


def denoise_files(denoiser: TrainedDenoiser, inputs: list[Path], out: Path, fmt: str = "png",
                  sigma: float | None = None, registry: Registry | None = None,
                  on_image: Callable[[Denoised], None] = lambda d: None) -> list[Denoised]:
    """Denoise each image file (or the images of each folder) into ``out``; 8-bit inputs are read as [0, 1]. An output
    that looks like no denoising of its input is written all the same, with its ``doubt`` said."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown output format {fmt!r}; valid: {', '.join(FORMATS)}")
    registry = registry or get_registry()
    files = image_files(inputs)
    for path in files:  # every file checked before any is written
        have = native_channels(path)
        if have != denoiser.channels:
            raise BenchError(f"{path} has {have} channel(s); {denoiser.name} was trained on {denoiser.channels}-channel images")
    done = []
    targets = output_files(files, out, fmt)
    for path, target in zip(files, targets):
        pixels = read_image(path, denoiser.channels).astype(np.float32) / 255.0
        info, level = noise_info(denoiser, pixels, sigma, registry)
        with torch.no_grad():
            estimate = denoiser(pixels, info)
        if estimate.ndim == 2:
            estimate = estimate[:, :, None]
        write_estimate(estimate, target, fmt)
        item = Denoised(path, target, level, degenerate(estimate, pixels))
        on_image(item)
        done.append(item)
    return done
