"""The plugin manager: built-in plugins, entry-point plugins, and the registry they fill.

Built-ins are registered by module name exactly as a third-party package would be. Third-party
packages declare an entry point in the ``denoise_bench`` group. A plugin that fails to import,
implements a hook that is not in ``hookspecs`` (a misspelt name, say), has a hook that raises, or
registers something invalid, a name that is no name (see :func:`check_name`) or a name already taken is skipped whole and reported in
``Registry.failures`` with its plugin and distribution name; everything else keeps working, and a
lookup of a name it would have provided says why that name is missing.

Environment variables:
  DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD  if set, entry points are not loaded (tests use this so that
                                         whatever happens to be installed cannot leak in).
  DENOISE_BENCH_PLUGINS                  comma-separated allow-list of entry-point names to load.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import pluggy

from denoise_bench import hookspecs
from denoise_bench.data import Dataset
from denoise_bench.errors import PLUGIN_FAILURES, BenchError, unknown_name
from denoise_bench.executor_kind import ExecutorKind
from denoise_bench.global_state import guarded, kept_state
from denoise_bench.method import Method, validate_method_class
from denoise_bench.metric import Metric
from denoise_bench.noise import NoiseFamily, NoiseSetting, resolve_setting
from denoise_bench.schema import BUILTIN_METRICS, CURVE_COLUMNS, JOB_COLUMNS, RECORD_COLUMNS

BUILTIN_PLUGINS: tuple[str, ...] = (
    "denoise_bench.metrics",  # first: PSNR and SSIM are the first metrics, before any plugin's
    "denoise_bench.noises.synthetic",
    "denoise_bench.noises.real",
    "denoise_bench.methods.iddp",
    "denoise_bench.methods.unet",
    "denoise_bench.methods.n2n",
    "denoise_bench.methods.nb2nb",
    "denoise_bench.methods.b2u",
    "denoise_bench.methods.bm3d",
    "denoise_bench.methods.n2v",
    "denoise_bench.methods.dip",
    "denoise_bench.methods.zsn2n",
    "denoise_bench.methods.s2s",
    "denoise_bench.methods.cvf_sid",
    "denoise_bench.datasets.skimage_samples",
    "denoise_bench.datasets.folder",
    "denoise_bench.datasets.named_sets",
    "denoise_bench.datasets.remote_sets",
    "denoise_bench.datasets.fmd",
    "denoise_bench.trackers.tensorboard",
    "denoise_bench.run.executors",
)
DISTRIBUTION = "denoise-bench"  # the distribution the built-in plugins ship in (pyproject's project name)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that was skipped, and why."""

    plugin: str
    error: str
    distribution: str | None = None  # None for a plugin registered at run time rather than installed
    provides: frozenset[str] = frozenset()  # the names it tried to register before it failed

    @property
    def source(self) -> str:
        return _label(self.plugin, self.distribution)

    def __str__(self) -> str:
        return f"plugin {self.source} skipped: {self.error}"


def _label(plugin: str, distribution: str | None) -> str:
    """A plugin as its user knows it: by name and by the distribution that installed it."""
    return f"{plugin!r} (distribution {distribution})" if distribution else repr(plugin)


def plugin_label(plugin: str) -> str:
    """A registered plugin as its user knows it (see ``_label``), for messages about it."""
    return _label(plugin, _distributions.get(plugin))


T = TypeVar("T")


@dataclass
class Registry:
    """Everything the plugins registered, by name, plus the plugins that failed."""

    methods: dict[str, type[Method]] = field(default_factory=dict)
    datasets: dict[str, type[Dataset]] = field(default_factory=dict)
    noise_families: dict[str, NoiseFamily] = field(default_factory=dict)
    executors: dict[str, ExecutorKind] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)  # in registration order: PSNR, SSIM, then the plugins'
    failures: list[PluginFailure] = field(default_factory=list)
    # (kind, name) -> the plugin that registered it, as its user knows it (see _label); kind: method, dataset,
    # noise model, executor
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    # The same keys -> (plugin name, distribution or None), for the provenance a run records.
    origins: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)

    def method(self, name: str) -> type[Method]:
        return self._lookup("method", name, self.methods)

    def dataset(self, name: str) -> type[Dataset]:
        return self._lookup("dataset", name, self.datasets)

    def executor(self, name: str) -> ExecutorKind:
        return self._lookup("executor", name, self.executors)

    def noise_setting(self, text: str) -> NoiseSetting:
        """``text`` (a family or a spec) resolved as by ``noise.resolve_setting``; an unknown family that a
        skipped plugin may provide is blamed on it, as an unknown method or dataset is."""
        family = text.strip().partition(":")[0].strip().lower()
        if family not in self.noise_families and self.failures:
            self._blame("noise model", family, self.noise_families)
        return resolve_setting(text, self.noise_families)

    def _lookup(self, kind: str, name: str, table: dict[str, T]) -> T:
        if name in table:
            return table[name]
        self._blame(kind, name, table)

    def _blame(self, kind: str, name: str, table: dict[str, Any]) -> NoReturn:
        """Raise the error for an unknown ``name``, naming the skipped plugin that may have provided it."""
        # A name a skipped plugin tried to register, or the plugin's own name (entry points are often
        # named after their method), is blamed on that plugin; any other unknown name points at all of them.
        for failure in self.failures:
            if name in failure.provides or name == failure.plugin:
                raise BenchError(f"{kind} {name!r} was not loaded: plugin {failure.source} failed: {failure.error}")
        error = unknown_name(kind, name, table)
        if self.failures:
            skipped = ", ".join(f.source for f in self.failures)
            raise BenchError(f"{error} (skipped plugins, which may provide it: {skipped})")
        raise error


_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None
_load_failures: list[PluginFailure] = []  # plugins refused at registration; hooks that fail are added per registry
_distributions: dict[str, str] = {}  # registered plugin name -> the distribution that installed it


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for module_name in BUILTIN_PLUGINS:
            _register(pm, module_name, DISTRIBUTION, functools.partial(importlib.import_module, module_name))
        if not os.environ.get("DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD"):
            _load_entry_points(pm)
        _pm = pm
    return _pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allow = os.environ.get("DENOISE_BENCH_PLUGINS")
    allowed = {a.strip() for a in allow.split(",")} if allow else None
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        if allowed is not None and ep.name not in allowed:
            continue
        _register(pm, ep.name, ep.dist.name if ep.dist else None, ep.load)


def _register(pm: pluggy.PluginManager, name: str, distribution: str | None, load: Callable[[], object]) -> None:
    """Load and register one plugin; one that cannot be is recorded in ``_load_failures`` and left out."""

    def fail(error: str) -> None:
        _load_failures.append(PluginFailure(name, error, distribution))

    try:
        with kept_state("importing it"):  # one that changes torch's defaults or the working directory is refused
            plugin = load()
    except BenchError as exc:
        return fail(str(exc))
    except PLUGIN_FAILURES as exc:  # a broken plugin must not break the others
        return fail(f"importing it raised {describe_exception(exc)}")
    if pm.has_plugin(name):
        first = _distributions.get(name)
        return fail("another plugin " + (f"from distribution {first} " if first else "") + "is registered under that name")
    try:
        pm.register(plugin, name=name)
    except PLUGIN_FAILURES as exc:  # pluggy refuses a hook whose arguments the spec does not pass
        return fail(describe_exception(exc))
    # pluggy accepts a hook it has no spec for and never calls it, so a misspelt name would go unnoticed.
    unknown = _unknown_hooks(pm, plugin)
    if unknown:
        pm.unregister(name=name)
        return fail("; ".join(unknown))
    if distribution:
        _distributions[name] = distribution


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """One message per hook ``plugin`` implements that no spec declares (``optionalhook`` ones aside)."""
    callers = [c for c in vars(pm.hook).values() if isinstance(c, pluggy.HookCaller)]
    known = [c.name for c in callers if c.has_spec()]
    return [str(unknown_name("hook", c.name, known)) for c in callers
            if not c.has_spec() and any(i.plugin is plugin and not i.optionalhook for i in c.get_hookimpls())]


def describe_exception(exc: BaseException) -> str:
    """An exception as one warning line: its type and its message with the line breaks folded."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def register_plugin(plugin: ModuleType | object, name: str | None = None) -> None:
    """Register a plugin at run time (tests and notebooks); clears the cached registry.

    A plugin that cannot be registered is skipped and reported in ``get_registry().failures``, as at start-up.
    """
    pm = get_plugin_manager()
    _register(pm, name or pm.get_canonical_name(plugin), None, lambda: plugin)
    reset_registry()


def unregister_plugin(name: str) -> None:
    """Remove a run-time plugin, or forget that it failed."""
    pm = get_plugin_manager()
    pm.unregister(name=name)
    _distributions.pop(name, None)
    _load_failures[:] = [f for f in _load_failures if f.plugin != name]
    reset_registry()


def reset_plugin_manager() -> None:
    """Forget every plugin; the next use rebuilds from built-ins and entry points."""
    global _pm
    _pm = None
    _load_failures.clear()
    _distributions.clear()
    reset_registry()


def reset_registry() -> None:
    global _registry
    _registry = None


def get_registry() -> Registry:
    """The registry, collected from every plugin's hooks on first use."""
    global _registry
    if _registry is None:
        _registry = _collect(get_plugin_manager())
    return _registry


@dataclass(frozen=True)
class _Kind:
    """What one hook registers: its word in messages, where it goes, how it is checked (returns the name)."""

    word: str
    table: dict[str, Any]
    check: Callable[[object], str]


def _collect(pm: pluggy.PluginManager) -> Registry:
    reg = Registry(failures=list(_load_failures))
    kinds = {
        "register_methods": _Kind("method", reg.methods, validate_method_class),
        "register_datasets": _Kind("dataset", reg.datasets, _check_dataset),
        "register_noise_models": _Kind("noise model", reg.noise_families, _check_noise_family),
        "register_executors": _Kind("executor", reg.executors, _check_executor),
        "register_metrics": _Kind("metric", reg.metrics, _check_metric),
    }
    owners: dict[tuple[str, str], str] = {}  # (hook, name) -> the plugin that registered it, for duplicates
    for plugin_name, plugin in pm.list_name_plugin():  # registration order
        if plugin is None:  # blocked
            continue
        source = _label(plugin_name, _distributions.get(plugin_name))
        staged: dict[str, dict[str, Any]] = {hook: {} for hook in kinds}
        tried: set[str] = set()
        try:
            for hook_name, kind in kinds.items():
                for impl in getattr(pm.hook, hook_name).get_hookimpls():
                    if impl.plugin is plugin:
                        _call(impl, hook_name, kind, staged[hook_name], tried, owners, source)
        except BenchError as exc:  # the plugin is skipped whole: nothing of it is half-registered
            reg.failures.append(PluginFailure(plugin_name, str(exc), _distributions.get(plugin_name), frozenset(tried)))
            continue
        if plugin_name not in BUILTIN_PLUGINS:
            _name_callables(staged, source)
        for hook_name, kind in kinds.items():
            kind.table.update(staged[hook_name])
            owners.update({(hook_name, name): source for name in staged[hook_name]})
            reg.sources.update({(kind.word, name): source for name in staged[hook_name]})
            reg.origins.update({(kind.word, name): (plugin_name, _distributions.get(plugin_name)) for name in staged[hook_name]})
    return reg


def _name_callables(staged: dict[str, dict[str, Any]], source: str) -> None:
    """A plugin's noise samplers and metrics, each wrapped to keep the process's state and to name itself and its
    plugin in what it raises (``global_state.guarded``): a broken one fails a job as itself, not as the method
    that happened to call it. The built-ins' errors are this package's bugs and keep their tracebacks."""
    for name, family in staged["register_noise_models"].items():
        staged["register_noise_models"][name] = dataclasses.replace(
            family, sampler=guarded(family.sampler, f"noise model {name!r} of plugin {source}"))
    for name, metric in staged["register_metrics"].items():
        staged["register_metrics"][name] = dataclasses.replace(
            metric, compute=guarded(metric.compute, f"metric {name!r} of plugin {source}"))


def source_of(kind: str, name: str) -> str:
    """``method 'x' of plugin 'p' (distribution d)``: a registered name as a message about its code says it."""
    source = get_registry().sources.get((kind, name))
    return f"{kind} {name!r}" + (f" of plugin {source}" if source else "")


def _call(impl: pluggy.HookImpl, hook_name: str, kind: _Kind, staged: dict[str, Any], tried: set[str],
          owners: dict[tuple[str, str], str], source: str) -> None:
    """Call one hook implementation, staging what it registers; raises BenchError on the first thing wrong."""

    def register(obj: object) -> None:
        given = getattr(obj, "name", None)
        if isinstance(given, str) and given:
            tried.add(given)  # even if it fails the check, so that asking for it says why it is missing
        name = check_name(kind.word, kind.check(obj))
        owner = owners.get((hook_name, name)) or (source if name in staged else None)
        if owner:
            raise BenchError(f"{kind.word} {name!r} is already registered by plugin {owner}")
        staged[name] = obj

    try:
        with kept_state(hook_name):
            result = impl.function(register=register)
    except BenchError:
        raise
    except PLUGIN_FAILURES as exc:  # the plugin's own bug, reported as one line
        raise BenchError(f"{hook_name} raised {describe_exception(exc)}") from exc
    if result is not None:
        raise BenchError(f"{hook_name} must call register(...) and return None, it returned {type(result).__name__}")


# A registered name becomes part of file and folder names (sample crops, checkpoints, parts) and is typed
# in comma-separated lists and specs: letters, digits, '-', '_' and '.', from a letter or digit, without
# the '__' that separates the fields of a checkpoint's name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(kind: str, name: str) -> str:
    """``name`` if it can name a registered method, dataset, noise model or executor, else a BenchError saying why."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or "__" in name:
        raise BenchError(f"{kind} name {name!r} is not a name: use up to 64 letters, digits, '-', '_' and '.', "
                         "starting with a letter or digit, without '__' (it becomes part of file names)")
    return name


def _check_dataset(obj: object) -> str:
    if not (isinstance(obj, type) and issubclass(obj, Dataset)):
        raise BenchError(f"register_datasets expects a Dataset subclass, got {obj!r}")
    if not getattr(obj, "name", ""):
        raise BenchError(f"dataset class {obj.__name__} has no name")
    return obj.name


def _check_noise_family(obj: object) -> str:
    if not isinstance(obj, NoiseFamily):
        raise BenchError(f"register_noise_models expects a NoiseFamily, got {obj!r}")
    return obj.name


def _check_executor(obj: object) -> str:
    if not isinstance(obj, ExecutorKind):
        raise BenchError(f"register_executors expects an ExecutorKind, got {obj!r}")
    return obj.name


# A metric names record columns beside ``input_<name>`` and ``floor_<name>``: a lower-case identifier.
_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _check_metric(obj: object) -> str:
    if not isinstance(obj, Metric):
        raise BenchError(f"register_metrics expects a Metric, got {obj!r}")
    if not _METRIC_NAME.fullmatch(obj.name) or obj.name.startswith(("input_", "floor_")):
        raise BenchError(f"metric name {obj.name!r} is not a column name: use up to 32 lower-case letters, digits and "
                         "'_', starting with a letter, not with input_ or floor_")
    # Its scores go into a column of that name: one the suite already writes would take the metric's values
    # (or give it its own) without a word. PSNR and SSIM own theirs (schema.py writes them out).
    for what, columns in (("records", RECORD_COLUMNS), ("learning curves", CURVE_COLUMNS), ("jobs", JOB_COLUMNS)):
        if obj.name in columns and obj.name not in BUILTIN_METRICS:
            raise BenchError(f"metric name {obj.name!r} is already a column of {what} ({obj.name}): "
                             "give the metric another name")
    return obj.name
