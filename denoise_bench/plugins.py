"""The plugin manager: built-in plugins, entry-point plugins, and the registry they fill.

Built-ins are registered by module name exactly as a third-party package would be. Third-party
packages declare an entry point in the ``denoise_bench`` group. A plugin that fails to import, whose
hook raises, or that registers something of the wrong type is reported by name in
``Registry.failures`` and skipped; everything else keeps working.

Environment variables:
  DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD  if set, entry points are not loaded (tests use this so that
                                         whatever happens to be installed cannot leak in).
  DENOISE_BENCH_PLUGINS                  comma-separated allow-list of entry-point names to load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from denoise_bench import hookspecs
from denoise_bench.data import Dataset
from denoise_bench.errors import BenchError, unknown_name
from denoise_bench.method import Method, validate_method_class
from denoise_bench.noise import NoiseFamily

BUILTIN_PLUGINS: tuple[str, ...] = (
    "denoise_bench.noise",
    "denoise_bench.real_noise",
    "denoise_bench.methods.iddp",
    "denoise_bench.methods.unet",
    "denoise_bench.methods.n2n",
    "denoise_bench.methods.nb2nb",
    "denoise_bench.methods.b2u",
    "denoise_bench.methods.bm3d",
    "denoise_bench.methods.n2v",
    "denoise_bench.methods.dip",
    "denoise_bench.datasets.skimage_samples",
    "denoise_bench.datasets.folder",
    "denoise_bench.datasets.named_sets",
    "denoise_bench.datasets.remote_sets",
    "denoise_bench.datasets.fmd",
)


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} skipped: {self.error}"


@dataclass
class Registry:
    """Everything the plugins registered, by name, plus the plugins that failed."""

    methods: dict[str, type[Method]] = field(default_factory=dict)
    datasets: dict[str, type[Dataset]] = field(default_factory=dict)
    noise_families: dict[str, NoiseFamily] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def method(self, name: str) -> type[Method]:
        if name not in self.methods:
            raise unknown_name("method", name, self.methods)
        return self.methods[name]

    def dataset(self, name: str) -> type[Dataset]:
        if name not in self.datasets:
            raise unknown_name("dataset", name, self.datasets)
        return self.datasets[name]


_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None
_load_failures: list[PluginFailure] = []


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for module_name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        if not os.environ.get("DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD"):
            _load_entry_points(pm)
        _check_pending(pm)
        _pm = pm
    return _pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allow = os.environ.get("DENOISE_BENCH_PLUGINS")
    allowed = {a.strip() for a in allow.split(",")} if allow else None
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        if allowed is not None and ep.name not in allowed:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not break the others
            _load_failures.append(PluginFailure(ep.name, f"failed to load: {type(exc).__name__}: {exc}"))


def _check_pending(pm: pluggy.PluginManager) -> None:
    """Fail fast on a misspelt hook implementation instead of silently never calling it."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise BenchError(f"a plugin implements an unknown hook: {exc}") from None


def register_plugin(plugin: ModuleType | object, name: str | None = None) -> None:
    """Register a plugin at run time (tests and notebooks); clears the cached registry."""
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    _check_pending(pm)
    reset_registry()


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    pm.unregister(name=name)
    reset_registry()


def reset_plugin_manager() -> None:
    """Forget every plugin; the next use rebuilds from built-ins and entry points."""
    global _pm
    _pm = None
    _load_failures.clear()
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


def _collect(pm: pluggy.PluginManager) -> Registry:
    reg = Registry(failures=list(_load_failures))
    _call_each(pm, "register_methods", reg, reg.methods, _check_method)
    _call_each(pm, "register_datasets", reg, reg.datasets, _check_dataset)
    _call_each(pm, "register_noise_models", reg, reg.noise_families, _check_noise_family)
    return reg


def _call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    reg: Registry,
    target: dict[str, Any],
    check: Callable[[object], str],
) -> None:
    """Call each implementation on its own, so one failing plugin does not hide the rest."""
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order (pluggy calls them in reverse)
        staged: dict[str, Any] = {}

        def register(obj: object, _staged: dict[str, Any] = staged) -> None:
            name = check(obj)
            if name in target or name in _staged:
                raise BenchError(f"{hook_name}: the name {name!r} is already registered")
            _staged[name] = obj

        try:
            result = impl.function(register=register)
            if result is not None:
                raise BenchError(f"{hook_name} must call register(...) and return None, it returned {type(result).__name__}")
        except Exception as exc:
            reg.failures.append(PluginFailure(impl.plugin_name, f"{hook_name} failed: {exc}"))
            continue
        target.update(staged)


def _check_method(obj: object) -> str:
    return validate_method_class(obj)


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
