"""Small plugins and utilities shared by the tests."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from click.testing import CliRunner, Result

from denoise_bench import hookimpl
from denoise_bench.cli.commands import main
from denoise_bench.data import Dataset
from denoise_bench.engine import Engine
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.noise import PIXEL_INDEPENDENT, NoiseFamily, Param
from denoise_bench.migration import RESULTS_FORMAT
from denoise_bench.supervision import Supervision


def bench(*args: str) -> Result:
    """``bench ARGS...`` in this process, its exit code and output captured."""
    return CliRunner().invoke(main, list(args))


def bench_output(*args: str) -> tuple[int, str]:
    """``bench ARGS...`` in this process: its exit code and its output (stdout and stderr)."""
    result = bench(*args)
    return result.exit_code, result.output


def run_folder_config(methods: dict[str, dict] | None = None, **entries: Any) -> dict:
    """A hand-made run folder's ``config.json`` in today's results format: a quick-profile run of
    ``methods`` (name -> options) under the nb2nb protocol, fp32 eager, fresh noise; ``entries`` replace
    its own, and every method gets the run's budget unless ``budgets`` is given."""
    config = {"format_version": RESULTS_FORMAT, "protocol": {"id": "nb2nb-v1", "seed": 101}, "profile": "quick",
              "methods": [{"name": m, "options": o} for m, o in (methods or {}).items()], "noise": [], "datasets": [],
              "seeds": [0], "budget": {"iterations": 800, "test_images": 20}, "engine": Engine().as_dict(),
              "noise_policy": "fresh", "train_dataset": None, "dataset_options": {}} | entries
    return {"budgets": {m["name"]: config["budget"] for m in config["methods"]}} | config


class Median3(Method):
    """A per-image 3x3 median filter: a real (if weak) denoiser, defined outside the package."""

    name = "median3"
    description = "3x3 median filter (test plugin)"
    citation = "Tukey, 1971"
    supervision = Supervision.NONE
    trainable = False

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        padded = F.pad(noisy, (1, 1, 1, 1), mode="reflect")
        patches = padded.unfold(2, 3, 1).unfold(3, 3, 1)  # (1, C, H, W, 3, 3)
        return patches.reshape(*patches.shape[:4], 9).median(dim=-1).values


def _salt(x: torch.Tensor, levels: dict[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
    p = levels["p"].to(x).view(-1, 1, 1, 1)
    hit = torch.rand(x.shape, generator=g, device=x.device) < p
    return torch.where(hit, torch.ones_like(x), x)


# Salt noise is not zero-mean: methods that regress onto noisy targets must be skipped on it.
SALT = NoiseFamily(
    name="salt",
    description="salt noise: pixels set to 1 with probability p (test plugin)",
    params=(Param("p", "probability", 0.0, 1.0),),
    sampler=_salt,
    properties=frozenset({PIXEL_INDEPENDENT}),
)


class ToyPlugin:
    """Registers the median filter and salt noise, exactly as a third-party package would."""

    @hookimpl
    def register_methods(self, register: Callable[[type[Method]], None]) -> None:
        register(Median3)

    @hookimpl
    def register_noise_models(self, register: Callable[[NoiseFamily], None]) -> None:
        register(SALT)


class MethodPlugin:
    """A plugin object that registers the given method classes (for one-off test plugins)."""

    def __init__(self, *methods: type[Method]) -> None:
        self.methods = methods

    @hookimpl
    def register_methods(self, register: Callable[[type[Method]], None]) -> None:
        for method in self.methods:
            register(method)


class DatasetPlugin:
    """A plugin object that registers one dataset class (for one-off test plugins)."""

    def __init__(self, cls: type[Dataset]) -> None:
        self.cls = cls

    @hookimpl
    def register_datasets(self, register: Callable[[type[Dataset]], None]) -> None:
        register(self.cls)


class LostJobs:
    """An executor whose every job process dies before recording anything (killed, out of memory)."""

    def run_units(self, run_dir: Any, units: list[Any], echo: Any) -> Iterator[tuple[Any, BaseException | None]]:
        for unit in units:
            yield unit, RuntimeError("the job died")


def reachable_tensors(root: object, depth: int = 12) -> Iterator[torch.Tensor]:
    """Every tensor reachable from ``root`` through attributes, containers and closures."""
    seen: set[int] = set()

    def walk(obj: object, d: int) -> Iterator[torch.Tensor]:
        if id(obj) in seen or d < 0:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from walk(v, d - 1)
        elif isinstance(obj, (list, tuple, set)):
            for v in obj:
                yield from walk(v, d - 1)
        elif isinstance(obj, types.MethodType):
            yield from walk(obj.__self__, d - 1)
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    yield from walk(cell.cell_contents, d - 1)
                except ValueError:  # empty cell
                    pass
        elif hasattr(obj, "__dict__") and not isinstance(obj, type) and not isinstance(obj, types.ModuleType):
            yield from walk(vars(obj), d - 1)

    yield from walk(root, depth)


def todays_options(method: str, **given: str) -> str:
    """The ``method_options`` a record made today carries for ``method`` with ``given`` options: the
    method's identity options at their defaults, and the given ones that differ."""
    from denoise_bench.experiment import canonical_options
    from denoise_bench.plugins import get_registry

    registry = get_registry()
    if method not in registry.methods:
        return canonical_options(given)
    method_cls = registry.method(method)
    return canonical_options(given, method_cls.options, method_cls.identity_options)
