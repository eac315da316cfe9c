"""How each field of the run request is given: the schema that every way of asking for a run reads.

A field of the request dataclasses (:mod:`denoise_bench.run.request`) carries an :class:`Option` in its
metadata: its help text, its flag name, the command line's and the Python API's defaults where they
differ from the dataclass's, its choices, and how text becomes its value. ``bench run``'s options
(:mod:`denoise_bench.cli.request_options`), the request file (whose keys are those flags), the keywords of
:func:`denoise_bench.api.run_benchmark` and the recorded config (``RunRequest.recorded``) are all
derived from it, so a field added to the dataclass is reachable from each of them. A field that is
deliberately left out of one says so, with why (the device is not recorded: it says where a run goes,
not what it computes).

A field whose ``group`` is a dataclass (the budget overrides, the engine switches) is a dict of that
dataclass's fields, each given on its own (``--iterations 500``, ``iterations=500``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from denoise_bench.errors import BenchError

_SAME = object()  # a surface's default that is the dataclass's own


@dataclass(frozen=True)
class Option:
    """How one request field is given; see the module docstring."""

    help: str | None = None
    flag: str | None = None  # `bench run`'s flag and the request file's key, without dashes (default: the name)
    cli_default: Any = _SAME  # where the command line's default differs from the dataclass's
    api_default: Any = _SAME  # where run_benchmark()'s does
    show_default: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None  # what `bench run --help` calls the value (default: its type, e.g. FLOAT)
    minimum: int | None = None  # a whole number at least this
    folder: bool = False  # a path that must not name a file
    # An empty text is the value not given (its default, its fallbacks), not the working directory: what the
    # shell passes for `--data-dir "$DENOISE_BENCH_DATA"` when the variable is unset.
    empty_is_unset: bool = False
    split: Callable[[str], list[str]] | None = None  # a list's text into items (default: at commas)
    repeat: bool = False  # the flag may be given several times (each time a text to split)
    negatable: bool = False  # --flag/--no-flag, unset (None) when neither is given
    pairs: str | None = None  # a table given as KEY=VALUE or METHOD:KEY=VALUE texts
    group: type | None = None  # a dict of this dataclass's fields, each given on its own
    check: Callable[[Any], str | None] | None = None  # what is wrong with a value, or None
    finish: Callable[[Any], Any] | None = None  # the value as the request holds it (a data folder found)
    not_recorded: str | None = None  # why config.json leaves the field out
    not_a_flag: str | None = None  # why `bench run` has no flag for it (nor the request file a key)


def option(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, **spec: Any) -> Any:
    """A dataclass field with its :class:`Option` (``factory``: a list or dict default)."""
    metadata = {"option": Option(**spec)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Leaf:
    """One value a user gives: a request field, or one key of a grouped field (``iterations`` of ``overrides``)."""

    name: str  # the field's (or key's) name: run_benchmark()'s keyword and the recorded key
    option: Option
    hint: Any  # its type annotation
    default: Any  # the dataclass's default (MISSING: none)
    group: str | None = None  # the request field that holds it

    @property
    def flag(self) -> str:
        return self.option.flag or self.name.replace("_", "-")

    @property
    def base(self) -> Any:
        """The annotation without ``| None``."""
        args = [a for a in typing.get_args(self.hint) if a is not type(None)]
        union = typing.get_origin(self.hint) in (typing.Union, types.UnionType)
        return args[0] if union and len(args) == 1 else self.hint

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.base) is list

    def default_for(self, surface: str) -> Any:
        """The default on the command line (``cli``) or in run_benchmark() (``api``); MISSING where required."""
        given = self.option.cli_default if surface == "cli" else self.option.api_default
        return self.default if given is _SAME else given


def option_of(field: dataclasses.Field) -> Option:
    return field.metadata.get("option", Option())  # a field declared without one is given by its name


def _default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not MISSING:
        return field.default_factory()
    return field.default


def leaves(request_cls: type) -> list[Leaf]:
    """Every value of a request a user gives, in the order ``bench run --help`` lists them."""
    hints = typing.get_type_hints(request_cls)
    out = []
    for field in dataclasses.fields(request_cls):
        spec = option_of(field)
        if spec.group is None:
            out.append(Leaf(field.name, spec, hints[field.name], _default_of(field)))
            continue
        group_hints = typing.get_type_hints(spec.group)
        out += [Leaf(key.name, dataclasses.replace(option_of(key), not_recorded=spec.not_recorded,
                                                   not_a_flag=spec.not_a_flag),
                     group_hints[key.name], _default_of(key), group=field.name)
                for key in dataclasses.fields(spec.group)]
    return out


def request_values(request_cls: type, given: dict[str, Any], where: Callable[[Leaf], str],
                   whole_groups: bool) -> dict[str, Any]:
    """The request's fields from the values of its leaves (``given``: leaf name -> value, texts from the
    command line or Python values); leaves not given keep the dataclass's defaults.

    ``whole_groups``: a grouped field records every key (the command line's: unset ones as None), else
    only the keys given (run_benchmark()'s, as it always recorded them). ``where`` names a leaf in errors.
    """
    fields: dict[str, Any] = {}
    for leaf in leaves(request_cls):
        if leaf.group is not None:
            group = fields.setdefault(leaf.group, {})
            if leaf.name in given or whole_groups:
                group[leaf.name] = value_of(leaf, given.get(leaf.name, leaf.default), where(leaf))
        elif leaf.name in given:
            fields[leaf.name] = value_of(leaf, given[leaf.name], where(leaf))
    return fields


def value_of(leaf: Leaf, value: Any, where: str) -> Any:
    """``value`` (a flag's text, or what Python code passed) as the request field holds it."""
    spec = leaf.option
    if spec.empty_is_unset and isinstance(value, str) and not value.strip():
        value = None
    if value is not None and leaf.is_list:
        value = _list_of(leaf, value, where)
    elif value is not None and spec.pairs:
        value = _table_of(spec.pairs, value, where)
    elif value is not None and leaf.base is Path:
        value = Path(value)
    problem = spec.check(value) if spec.check and value is not None else None
    if problem:
        raise BenchError(f"{where} {problem}")
    return spec.finish(value) if spec.finish else value


def _list_of(leaf: Leaf, value: Any, where: str) -> list[Any]:
    """A comma-separated text (or several, or a sequence of values) as the list's items."""
    split = leaf.option.split or split_commas
    texts = [value] if isinstance(value, str) else list(value)
    items = [part for text in texts for part in (split(text) if isinstance(text, str) else [text])]
    item_type = typing.get_args(leaf.base)[0]
    if item_type is int:
        try:
            return [int(item) for item in items]
        except (TypeError, ValueError):
            shown = value if isinstance(value, str) else ",".join(str(t) for t in texts)
            raise BenchError(f"{where} {shown!r} must be comma-separated integers") from None
    return items


def split_commas(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _table_of(form: str, value: Any, where: str) -> dict[str, Any]:
    """KEY=VALUE texts (or METHOD:KEY=VALUE), or a dict of values from Python, as a table of texts."""
    nested = form.startswith("METHOD:")
    if isinstance(value, dict):
        if nested:
            return {m: {k: _text(v) for k, v in opts.items()} for m, opts in value.items()}
        return {k: _text(v) for k, v in value.items()}
    out: dict[str, Any] = {}
    for pair in value:
        target = out
        if nested:
            method, colon, pair = pair.partition(":")
            if not colon:
                raise BenchError(f"{where} {method!r} is not of the form {form}")
            target = out.setdefault(method.strip(), {})
        key, eq, text = pair.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"{where} {pair!r} is not of the form KEY=VALUE")
        target[key.strip()] = text.strip()
    return out


def recorded_value(value: Any) -> Any:
    """A field's value as config.json keeps it (paths as text)."""
    return str(value) if isinstance(value, Path) else value
