"""The one exception type for mistakes a user can make.

Anything raised as :class:`BenchError` is printed by the CLI as a single line (no traceback) and
exits with status 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class BenchError(Exception):
    """A problem with the user's input: a name, a spec, a file, a plugin."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> BenchError:
    """The error for a name that is not registered, listing the names that are."""
    names = ", ".join(sorted(valid)) or "(none registered)"
    return BenchError(f"unknown {kind} {name!r}; valid {kind}s: {names}")
