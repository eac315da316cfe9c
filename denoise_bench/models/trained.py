"""Trained methods outside their run: self-describing checkpoints, loading them, a callable denoiser, export.

A trained checkpoint (``RUN_DIR/checkpoints/<method>__<trainset>__<noise>__seed<k>.pt``) holds, besides
the method's own state, an ``about`` header of plain values: the method's name and resolved options,
channels, budget, training noise, protocol (for the padding) and the package version. With it,
:func:`load_trained` rebuilds the method through the registry from the file alone, wherever it was
moved, and still loads it with ``weights_only=True``. :func:`export_safetensors` writes the tensors to a
``.safetensors`` file and the rest (header, non-tensor state) as its metadata strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from denoise_bench.atomic import replacing
from denoise_bench.checkpoints import load_checkpoint
from denoise_bench.download import sha256_file
from denoise_bench.environment import pick_device
from denoise_bench.errors import BenchError
from denoise_bench.method import Method, MethodSetup, NoiseInfo, TrainingInfo
from denoise_bench.noise import NoiseSpec, parse_spec
from denoise_bench.plugins import Registry, get_registry
from denoise_bench.profiles import Budget
from denoise_bench.protocol import EvalProtocol, get_protocol

ABOUT = "about"  # the key of the header in a checkpoint's dict
ABOUT_FORMAT = 1
# What a header must hold to rebuild its method.
ABOUT_FIELDS = ("method", "options", "channels", "budget", "train_noise", "protocol")
SAFETENSORS_STATE = "denoise_bench.state"  # metadata key: the state's non-tensor values
SAFETENSORS_ABOUT = "denoise_bench.about"  # metadata key: the header
_SEP = "/"  # joins the keys of nested state dicts in safetensors tensor names (network keys hold dots)

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def about_header(method: Method, protocol: str) -> dict[str, Any]:
    """The plain-data description stored with a trained method's weights."""
    from denoise_bench import __version__

    setup = method.setup
    return {"format": ABOUT_FORMAT, "method": method.name, "options": dict(method.opts), "channels": setup.channels,
            "budget": setup.budget.as_dict(), "seed": setup.seed,
            "train_noise": str(setup.training.noise) if setup.training.noise is not None else None,
            "train_side": setup.training.shortest_side, "protocol": protocol, "package_version": __version__}


def described_state(method: Method, protocol: str) -> dict[str, Any]:
    """``method.state_dict()`` with its header, as trained checkpoints are saved."""
    return method.state_dict() | {ABOUT: about_header(method, protocol)}


class TrainedDenoiser:
    """A trained (or per-image) method as a function: ``denoiser(noisy)`` returns the estimate.

    ``noisy`` is an (H, W, C) or (H, W) array, or a (1, C, H, W) or (C, H, W) tensor, float in [0, 1];
    the estimate has the same type, shape and (for tensors) device. Images are padded to the method's
    input multiple as the evaluator pads them (its protocol) and cropped back.
    """

    def __init__(self, method: Method, about: dict[str, Any], protocol: EvalProtocol) -> None:
        self.method = method
        self.about = about
        self.protocol = protocol

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def channels(self) -> int:
        return self.method.setup.channels

    @property
    def train_noise(self) -> str | None:
        return self.about.get("train_noise")

    def __repr__(self) -> str:
        return f"TrainedDenoiser({self.name}, channels={self.channels}, train_noise={self.train_noise})"

    def __call__(self, noisy: Array, noise: NoiseInfo | None = None) -> Array:
        if isinstance(noisy, np.ndarray):
            batch = self._from_array(noisy)
            out = self.denoise_tensor(batch, noise)[0].permute(1, 2, 0).cpu().numpy()
            return out[:, :, 0] if noisy.ndim == 2 else out
        if isinstance(noisy, torch.Tensor):
            if noisy.ndim not in (3, 4) or (noisy.ndim == 4 and noisy.shape[0] != 1):
                raise BenchError(f"{self.name}: expected a (1, C, H, W) or (C, H, W) tensor, got shape {tuple(noisy.shape)}")
            batch = noisy if noisy.ndim == 4 else noisy.unsqueeze(0)
            out = self.denoise_tensor(batch.float(), noise).to(noisy.device)
            return out if noisy.ndim == 4 else out[0]
        raise BenchError(f"{self.name}: expected a numpy array or a torch tensor, got {type(noisy).__name__}")

    def _from_array(self, noisy: np.ndarray) -> torch.Tensor:
        if noisy.ndim == 2:
            noisy = noisy[:, :, None]
        if noisy.ndim != 3:
            raise BenchError(f"{self.name}: expected an (H, W, C) or (H, W) image, got shape {noisy.shape}")
        if noisy.dtype == np.uint8:
            raise BenchError(f"{self.name}: expected a float image in [0, 1], got uint8 (divide by 255)")
        return torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)

    def denoise_tensor(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        """The estimate of a (1, C, H, W) float tensor, on the method's device."""
        if noisy.shape[1] != self.channels:
            raise BenchError(f"{self.name} was trained on {self.channels}-channel images; "
                             f"this image has {noisy.shape[1]} channel(s)")
        if self.method.uses_noise_level and noise is None:
            raise BenchError(f"{self.name} needs the noise level of the image (a NoiseInfo)")
        h, w = noisy.shape[-2:]
        padded = self.protocol.pad(noisy.to(self.method.setup.device), self.method.input_multiple, self.method.pads_to_square)
        with torch.no_grad():  # as in evaluation (the plugin guide's promise)
            estimate = self.method.denoise(padded, noise if self.method.uses_noise_level else None)
        return estimate[..., :h, :w]


def build_method(about: dict[str, Any], device: torch.device, registry: Registry, where: str) -> Method:
    """The method a header describes, freshly built (untrained) through the registry."""
    missing = [key for key in ABOUT_FIELDS if key not in about]
    if missing:
        raise BenchError(f"{where}: its description lacks {', '.join(missing)}")
    method_cls = registry.method(about["method"])
    known = {f.name for f in fields(Budget)}
    budget = Budget(**{k: v for k, v in about["budget"].items() if k in known})
    train_noise: NoiseSpec | None = None
    if about["train_noise"]:
        train_noise = parse_spec(about["train_noise"], registry.noise_families)
    setup = MethodSetup(channels=int(about["channels"]), budget=budget, device=device, seed=int(about.get("seed", 0)),
                        options=dict(about["options"]), training=TrainingInfo(train_noise, about.get("train_side")))
    with torch.random.fork_rng(devices=[]):  # building seeds the global generator; the caller's stays as it was
        return method_cls(setup)


def load_trained(path: str | Path, device: str | torch.device | None = "cpu",
                 registry: Registry | None = None) -> TrainedDenoiser:
    """A trained checkpoint (``.pt`` from a run's ``checkpoints/``, or an exported ``.safetensors``) as a denoiser.

    The method is rebuilt from the description stored with the weights, so the file may have been
    moved anywhere; nothing but tensors and plain values is ever unpickled.
    """
    path = Path(path)
    chosen = pick_device(None if device in (None, "auto") else str(device))
    state = load_safetensors(path) if path.suffix == ".safetensors" else load_checkpoint(path)
    about = state.get(ABOUT)
    if not isinstance(about, dict):
        raise BenchError(f"{path}: this checkpoint does not describe itself (no {ABOUT!r} header with the method, its "
                         "options, channels, budget and training noise); it was saved by an older denoise-bench. "
                         "In its run folder, `bench denoise --run RUN_DIR` and denoise_files.run_denoiser read that from the "
                         "run's config.json; elsewhere, train it again")
    registry = registry or get_registry()
    method = build_method(about, chosen, registry, str(path))
    method.load_state_dict({k: v for k, v in state.items() if k != ABOUT})
    return TrainedDenoiser(method, about, get_protocol(about["protocol"]))


# --- safetensors ---------------------------------------------------------------------------------

def _split_state(state: dict[str, Any], prefix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors by joined key, and the same dict with its tensors left out."""
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, Any] = {}
    for key, value in state.items():
        if _SEP in key:
            raise BenchError(f"state key {key!r} contains {_SEP!r}; it cannot be exported")
        if isinstance(value, torch.Tensor):
            tensors[prefix + key] = value.detach().cpu().contiguous()
        elif isinstance(value, dict):
            inner, inner_rest = _split_state(value, prefix + key + _SEP)
            tensors |= inner
            rest[key] = inner_rest
        else:
            rest[key] = value
    return tensors, rest


def _merge(rest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state = json.loads(json.dumps(rest))
    for name, tensor in tensors.items():
        *parents, leaf = name.split(_SEP)
        node = state
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = tensor
    return state


def export_safetensors(checkpoint: Path, out: Path, state: dict[str, Any] | None = None) -> str:
    """Write a trained checkpoint (or its ``state``, header included) as ``out`` (tensors, and the rest
    as metadata); returns its sha256."""
    from safetensors.torch import save

    state = state if state is not None else load_checkpoint(checkpoint)
    if not isinstance(state.get(ABOUT), dict):
        raise BenchError(f"{checkpoint}: this checkpoint does not describe itself (no {ABOUT!r} header); "
                         "an export could not be loaded elsewhere. Train it again with this version")
    tensors, rest = _split_state({k: v for k, v in state.items() if k != ABOUT})
    metadata = {SAFETENSORS_ABOUT: json.dumps(state[ABOUT], sort_keys=True), SAFETENSORS_STATE: json.dumps(rest, sort_keys=True)}
    # Serialised in memory and written by Python: a full disk is an OSError (ENOSPC) naming the file, not a
    # SafetensorError; atomic, and readable as the umask says like every other output.
    encoded = save(tensors, metadata=metadata)
    with replacing(out) as tmp:
        tmp.write_bytes(encoded)
    return sha256_file(out)


def load_safetensors(path: Path) -> dict[str, Any]:
    """A ``.safetensors`` export read back as the checkpoint dict it was made from (header included)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise BenchError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable safetensors file ({exc})") from None
    if SAFETENSORS_ABOUT not in metadata:
        raise BenchError(f"{path}: not a denoise-bench export (no {SAFETENSORS_ABOUT!r} metadata)")
    try:
        state = _merge(json.loads(metadata.get(SAFETENSORS_STATE, "{}")), tensors)
        state[ABOUT] = json.loads(metadata[SAFETENSORS_ABOUT])
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: unreadable denoise-bench metadata ({exc})") from None
    return state


# --- checkpoints of a run folder -----------------------------------------------------------------

@dataclass(frozen=True)
class RunCheckpoint:
    path: Path
    method: str
    training_set: str
    noise: str
    seed: int


def run_checkpoints(run_dir: Path) -> list[RunCheckpoint]:
    """The final trained weights kept in a run folder (resumable training states left out)."""
    from denoise_bench.results import CHECKPOINTS

    found = []
    for path in sorted((run_dir / CHECKPOINTS).glob("*.pt")):
        if path.name.endswith(".train.pt"):
            continue
        parts = path.stem.split("__")
        if len(parts) != 4 or not parts[3].startswith("seed") or not parts[3][4:].isdigit():
            continue
        found.append(RunCheckpoint(path, parts[0], parts[1], parts[2], int(parts[3][4:])))
    return found


def check_header(found: RunCheckpoint, about: dict[str, Any], recorded: dict[str, Any] | None = None,
                 given_options: frozenset[str] | None = None) -> None:
    """Refuse a checkpoint whose header describes another training than its run: than its file name in the
    run folder (a file renamed or copied over another: the method, and the training noise and seed where
    it records them) and, with ``recorded`` (the header as the run's config.json describes that training),
    than the run itself: budget, method options, channels and protocol (a file of another run with the
    same method, data, noise and seed copied in). What is asked for by name is what is loaded, or nothing is."""
    from denoise_bench.results import file_slug

    told = {"method": (about.get("method"), found.method),
            "training noise": (file_slug(str(about["train_noise"])) if about.get("train_noise") else None, found.noise),
            "seed": (about.get("seed"), found.seed)}
    for what, (held, named) in told.items():
        if held is not None and held != named:
            raise BenchError(f"{found.path}: its header says {what} {held!r}, its file name {named!r}: the file was "
                             "renamed or copied over another; nothing was loaded")
    if recorded is None:
        return
    differs = header_differences(about, recorded, given_options)
    if differs:
        what, held, wanted = differs[0]
        raise BenchError(f"{found.path}: its header says {what} {held!r}, the run's config.json {wanted!r}: the file "
                         "was trained by another run and copied over this one's; nothing was loaded")


def header_differences(about: dict[str, Any], recorded: dict[str, Any],
                       given_options: frozenset[str] | None = None) -> list[tuple[str, Any, Any]]:
    """(field, the header's value, the recorded value) for each field of a training's identity in which the
    header ``about`` differs from ``recorded``: budget fields, method options, channels, protocol.

    Both are compared as they are written: a budget normalised as :class:`Budget` reads it (defaults of
    fields an older file lacks, former names); the header's options are resolved (every option), the run
    records those given, resolved with today's defaults in ``recorded``. An option at its default is
    compared only when ``given_options`` (the options the run was given) leaves it out and the header was
    written by this version: another version may have had another default.
    """
    from denoise_bench import __version__

    found: list[tuple[str, Any, Any]] = []
    if "channels" in about and "channels" in recorded and int(about["channels"]) != int(recorded["channels"]):
        found.append(("channels", about["channels"], recorded["channels"]))
    if about.get("protocol") and recorded.get("protocol") and str(about["protocol"]) != str(recorded["protocol"]):
        found.append(("protocol", about["protocol"], recorded["protocol"]))
    held, wanted = _budget_values(about.get("budget")), _budget_values(recorded.get("budget"))
    found += [(f"budget {key}", held[key], wanted[key]) for key in held.keys() & wanted.keys() if held[key] != wanted[key]]
    same_defaults = about.get("package_version") == __version__
    options, told = about.get("options") or {}, recorded.get("options") or {}
    for key in sorted(options.keys() & told.keys()):
        compared = given_options is None or key in given_options or same_defaults
        if compared and _plain(options[key]) != _plain(told[key]):
            found.append((f"option {key}", options[key], told[key]))
    return found


def _budget_values(budget: Any) -> dict[str, Any]:
    """A recorded budget's fields as :class:`Budget` reads them (defaults filled in, former names mapped)."""
    from dataclasses import MISSING

    from denoise_bench.profiles import FORMER_INIT_NAMES

    if not isinstance(budget, dict):
        return {}
    known = {f.name: f.default for f in fields(Budget)}
    values = {k: v for k, v in budget.items() if k in known}
    values |= {k: d for k, d in known.items() if k not in values and d is not MISSING}
    if values.get("init") in FORMER_INIT_NAMES:
        values["init"] = FORMER_INIT_NAMES[values["init"]]
    return values


def _plain(value: Any) -> Any:
    """An option's value as config.json holds it (a tuple as a list), so that only a different value differs."""
    return json.loads(json.dumps(value, default=str))


def find_checkpoint(run_dir: Path, method: str, noise: str | None = None, seed: int | None = None) -> RunCheckpoint:
    """The one checkpoint of ``method`` in ``run_dir`` (narrowed by noise slug and seed), or a BenchError."""
    from denoise_bench.results import file_slug

    if not run_dir.is_dir():
        raise BenchError(f"run folder not found: {run_dir}")
    every = run_checkpoints(run_dir)
    mine = [c for c in every if c.method == method]
    if not mine:
        have = ", ".join(sorted({c.method for c in every})) or "none"
        raise BenchError(f"{run_dir} has no trained {method!r} (trained methods there: {have})")
    if noise is not None:
        mine = [c for c in mine if c.noise in (noise, file_slug(noise))]
    if seed is not None:
        mine = [c for c in mine if c.seed == seed]
    if len(mine) != 1:
        choices = "; ".join(f"--noise {c.noise} --seed {c.seed}" for c in run_checkpoints(run_dir) if c.method == method)
        what = "no" if not mine else "several"
        raise BenchError(f"{run_dir}: {what} trained {method!r} checkpoints match; choose with {choices}")
    return mine[0]
