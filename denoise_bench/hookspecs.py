"""Hook specifications: the whole plugin contract of denoise-bench.

A plugin is any module or object with functions named like the hooks below, decorated with
``denoise_bench.hookimpl``. Built-in plugins (``denoise_bench.methods.*``,
``denoise_bench.datasets.*`` and ``denoise_bench.noise``) are registered exactly like a third-party
package, which is found through the ``denoise_bench`` entry-point group.

Every hook receives a ``register`` callback, so one plugin can register zero, one or many objects.
All implementations are called (none "wins"); registering a name twice is an error. A plugin that
implements a hook not declared here (pluggy would accept it and never call it) is skipped and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from denoise_bench.data import Dataset
    from denoise_bench.method import Method
    from denoise_bench.noise import NoiseFamily

PROJECT = "denoise_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[[type[Method]], None]) -> None:
    """Register denoising methods.

    Call ``register(MethodClass)`` once per method. ``MethodClass`` subclasses
    :class:`denoise_bench.method.Method` and sets its class attributes ``name``, ``description``,
    ``citation`` and ``supervision``. Returns nothing.
    """


@hookspec
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    """Register datasets.

    Call ``register(DatasetClass)`` once per dataset. ``DatasetClass`` subclasses
    :class:`denoise_bench.data.Dataset` (class attributes ``name``, ``description``) and is
    instantiated with the data directory. Returns nothing.
    """


@hookspec
def register_noise_models(register: Callable[[NoiseFamily], None]) -> None:
    """Register noise families.

    Call ``register(family)`` with a :class:`denoise_bench.noise.NoiseFamily` instance, which
    names the family, its parameters, its statistical properties and the sampling function.
    Returns nothing.
    """
