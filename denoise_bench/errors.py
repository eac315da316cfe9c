"""The one exception type for mistakes a user can make.

Anything raised as :class:`BenchError` is printed by the CLI as a single line (no traceback) and
exits with status 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A problem with the user's input: a name, a spec, a file, a plugin."""


# What plugin code may raise that is its own failure, recorded or reported as such, rather than the end of the
# process: ``SystemExit`` too, since a plugin's ``sys.exit(0)`` would otherwise end `bench` with status 0 and no
# word. ``KeyboardInterrupt`` is the user's and still stops the run.
PLUGIN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)


def unknown_name(kind: str, name: object, valid: Iterable[str], plural: str | None = None) -> BenchError:
    """The error for a name that is not registered, listing the names that are and the closest one to a typo."""
    valid = sorted(valid)
    # A high cutoff suggests only near-misses (a dropped letter), not a name that merely shares a word
    # ("imagenet" is 0.67 like "skimage"; "register_method" is 0.97 like "register_methods").
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.8) if isinstance(name, str) else []
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    names = ", ".join(valid) or "(none registered)"
    return BenchError(f"unknown {kind} {name!r}{guess}; valid {plural or kind + 's'}: {names}")
