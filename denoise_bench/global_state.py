"""Process-wide state that plugin code must leave as it found it, put back where it did not, naming who.

A plugin's method, noise model, metric or import that calls ``torch.set_default_dtype(torch.float64)``,
turns gradients off, changes torch's thread count or the working directory changes them for everything
after it in the process: the next method's job would fail, or a relative output folder would move, and
the blame would fall on whoever ran next. :func:`kept_state` wraps a call of plugin code: what it
changed is put back, and a :class:`~denoise_bench.errors.BenchError` names the plugin and the change
(so its job fails, or its plugin is skipped, not the next one). :func:`guarded` wraps a plugin's
callable (a noise sampler, a metric) the same way, and names it in what it raises.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from denoise_bench.errors import BenchError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class GlobalState:
    """torch's default dtype, grad mode (of this thread) and thread count, and the working directory."""

    dtype: torch.dtype
    grad: bool
    threads: int
    cwd: str

    @staticmethod
    def now() -> "GlobalState":
        return GlobalState(torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(), os.getcwd())

    def changes(self) -> list[str]:
        """What differs now from this state, in words; empty if nothing does."""
        now = GlobalState.now()
        words = {"dtype": "torch's default dtype", "grad": "torch's grad mode", "threads": "torch's thread count",
                 "cwd": "the working directory"}
        return [f"{words[name]} from {_text(getattr(self, name))} to {_text(getattr(now, name))}"
                for name in words if getattr(now, name) != getattr(self, name)]

    def restore(self) -> None:
        if torch.get_default_dtype() != self.dtype:
            torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(self.grad)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)


def _text(value: object) -> str:
    return str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else repr(value)


@contextmanager
def kept_state(who: str) -> Iterator[None]:
    """Run plugin code named ``who`` (``method 'x' (plugin 'p')``); the state it changed is put back, and then a
    BenchError names it and the change. An error of its own goes on as it was, the state put back all the same."""
    before = GlobalState.now()
    try:
        yield
    except BaseException:
        before.restore()
        raise
    changed = before.changes()
    if changed:
        before.restore()
        raise BenchError(f"{who} changed {' and '.join(changed)} and did not set it back (set back now; it would "
                         "have changed what runs after it)")


def guarded(fn: F, who: str) -> F:
    """``fn`` run under :func:`kept_state`; an exception it raises (not a BenchError, which names its cause
    already) comes out as a BenchError naming ``who``, so that a job it fails does not read as its method's."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with kept_state(who):
            try:
                return fn(*args, **kwargs)
            except BenchError:
                raise
            except Exception as exc:
                raise BenchError(f"{who} raised {type(exc).__name__}: {' '.join(str(exc).split())}") from exc

    call.who = who  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]


def who_of(fn: Callable[..., Any], fallback: str) -> str:
    """The name :func:`guarded` gave ``fn``, else ``fallback``."""
    return getattr(fn, "who", fallback)
