"""``bench run``'s request options and request file, derived from the request's schema.

Each value of :class:`~denoise_bench.run.request.RunRequest` (:func:`denoise_bench.request_schema.leaves`)
becomes one click option, named, typed, defaulted and explained by its field's metadata; the values
click parses become the request again through the same schema. A request file (``--config``) holds
those flags as keys, so it reaches every field the command line does.
"""

from __future__ import annotations

import errno
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from denoise_bench.errors import BenchError, unknown_name
from denoise_bench.profiles import ALL_TEST_IMAGES
from denoise_bench.run.request import RunRequest, read_request_file
from denoise_bench.request_schema import Leaf, leaves, request_values

# The command's own KEY=VALUE option beside the request's tables (a request file gives it as a table).
EXECUTOR_OPTIONS = "executor_options"


class AbsolutePath(click.Path):
    """A path option made absolute as it is parsed, against the folder `bench` was started in: before any plugin
    runs, so that one changing the working directory (``os.chdir``) sends no output elsewhere than the user
    said, and every message names where things really are."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        converted = super().convert(value, param, ctx)
        if converted is None:
            return None
        path = Path(os.path.abspath(os.fsdecode(converted)))  # converted: str or a PathLike (path_type=Path)
        try:
            os.stat(path)
        except OSError as exc:  # not there is for the command to judge; a name no file can have is not
            if exc.errno == errno.ENAMETOOLONG:
                self.fail(f"{path}: {exc.strerror}: a name in it is longer than the file system takes", param, ctx)
        return path


class TestImages(click.ParamType):
    """How many test images to score: a positive whole number, or ``all`` (every image of each set)."""

    name = "N|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip().lower()
        if text == ALL_TEST_IMAGES:
            return ALL_TEST_IMAGES
        if text.isdigit() and int(text) > 0:
            return int(text)
        self.fail(f"{value!r} is neither a positive number of images nor '{ALL_TEST_IMAGES}'", param, ctx)


class PathOrUnset(AbsolutePath):
    """A path option whose empty text means "not given": ``--data-dir "$DENOISE_BENCH_DATA"`` with the variable
    unset must fall back as if the flag were absent, not read the working directory (click makes "" a ``Path('.')``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return super().convert(value, param, ctx)


def _click_option(leaf: Leaf) -> Callable[[Callable], Callable]:
    """The click option of one request value."""
    spec = leaf.option
    kwargs: dict[str, Any] = {"help": spec.help, "show_default": spec.show_default}
    if spec.metavar is not None:
        kwargs["metavar"] = spec.metavar
    default = leaf.default_for("cli")
    if leaf.base is bool and not spec.negatable:
        return click.option(f"--{leaf.flag}", leaf.name, is_flag=True, default=bool(default), **kwargs)
    if spec.negatable:
        return click.option(f"--{leaf.flag}/--no-{leaf.flag}", leaf.name, default=default, **kwargs)
    if spec.repeat:
        kwargs["multiple"] = True
        if leaf.is_list:
            kwargs["default"] = tuple(default)
    elif leaf.is_list:
        kwargs["default"] = ",".join(str(item) for item in default)
    else:
        kwargs["default"] = default
    if spec.choices is not None:
        kwargs["type"] = click.Choice(list(spec.choices))
    elif leaf.base is int:
        kwargs["type"] = int if spec.minimum is None else click.IntRange(min=spec.minimum)
    elif leaf.base is float:
        kwargs["type"] = float
    elif leaf.base is Path:
        path_type = PathOrUnset if spec.empty_is_unset else AbsolutePath
        kwargs["type"] = path_type(path_type=Path, file_okay=not spec.folder)
    return click.option(f"--{leaf.flag}", leaf.name, **kwargs)


def _with_options(command: Callable, chosen: list[Leaf]) -> Callable:
    for leaf in reversed(chosen):  # click lists the options a command's decorators add from the top down
        command = _click_option(leaf)(command)
    return command


def request_options(command: Callable) -> Callable:
    """Every request value with a flag as an option of ``command``, in the request's order."""
    return _with_options(command, [leaf for leaf in leaves(RunRequest) if not leaf.option.not_a_flag])


def engine_options(command: Callable) -> Callable:
    """--precision, --channels-last, --compile: how networks train (see denoise_bench.engine), for `bench perf` too."""
    return _with_options(command, [leaf for leaf in leaves(RunRequest) if leaf.group == "engine"])


# The request's values that make its grid: what is trained, on which noise and images, and how it is scored.
GRID = ("methods", "noises", "datasets", "train_dataset", "seeds", "protocol", "noise_policy", "method_options",
        "dataset_options")


def grid_flags(request: RunRequest) -> list[str]:
    """The flags of ``bench run`` that ask for ``request``'s grid again (:data:`GRID`), each left out where it
    is the command line's default; shell-quoted words."""
    by_name = {leaf.name: leaf for leaf in leaves(RunRequest)}
    words: list[str] = []
    for name in GRID:
        leaf, value = by_name[name], getattr(request, name)
        if value is None or value == leaf.default_for("cli"):
            continue
        flag = f"--{leaf.flag}"
        if leaf.option.pairs and leaf.option.pairs.startswith("METHOD:"):
            words += [part for method, opts in value.items() for key, text in opts.items()
                      for part in (flag, shlex.quote(f"{method}:{key}={text}"))]
        elif leaf.option.pairs:
            words += [part for key, text in value.items() for part in (flag, shlex.quote(f"{key}={text}"))]
        elif leaf.is_list:
            words += [flag, shlex.quote(",".join(str(item) for item in value))]
        else:
            words += [flag, shlex.quote(str(value))]
    return words


def request_of_options(values: dict[str, Any]) -> RunRequest:
    """The request that ``bench run``'s parsed options ask for; the others in ``values`` are the command's own."""
    names = {leaf.name for leaf in leaves(RunRequest)}
    given = {name: value for name, value in values.items() if name in names}
    return RunRequest(**request_values(RunRequest, given, lambda leaf: f"--{leaf.flag}", whole_groups=True))


_SCALARS = (str, int, float, bool)


def _file_value(param: click.Parameter, value: Any, where: str) -> Any:
    """A value from a request file as the flag would give it: lists joined by commas, tables as KEY=VALUE.

    A value of the wrong kind for its flag (a table for a number, 1.5 or true for a whole number, an
    array for a single value) is a BenchError naming ``where`` (the file and key), never converted.
    """
    by_name = {leaf.name: leaf for leaf in leaves(RunRequest)}
    leaf = by_name.get(param.name or "")
    tables = {name: entry.option.pairs for name, entry in by_name.items() if entry.option.pairs} | {EXECUTOR_OPTIONS: "KEY=VALUE"}

    def text(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    def wrong(expected: str) -> BenchError:
        return BenchError(f"{where} = {value!r}: expected {expected}")

    if param.name in tables and isinstance(value, dict):
        if tables[param.name].startswith("METHOD:"):
            if not all(isinstance(opts, dict) and all(isinstance(v, _SCALARS) for v in opts.values())
                       for opts in value.values()):
                raise wrong("a table of tables of values ([method-option.METHOD] KEY = VALUE)")
            return [f"{m}:{k}={text(v)}" for m, opts in value.items() for k, v in opts.items()]
        if not all(isinstance(v, _SCALARS) for v in value.values()):
            raise wrong("a table of values (KEY = VALUE)")
        return [f"{k}={text(v)}" for k, v in value.items()]
    if isinstance(value, dict):
        raise wrong("a value, not a table")
    multiple = getattr(param, "multiple", False)
    if multiple or (leaf is not None and leaf.is_list):  # a comma-separated list: the file may give an array
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, _SCALARS) for v in items):
            raise wrong("a value or an array of values")
        return [text(v) for v in items] if multiple else ",".join(text(v) for v in items)
    if isinstance(value, list):
        raise wrong("one value, not an array")
    if isinstance(param.type, click.types.BoolParamType) or getattr(param, "is_flag", False):
        expected, fits = "true or false", isinstance(value, bool)
    elif isinstance(param.type, click.types.IntParamType):
        expected, fits = "a whole number", isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(param.type, click.types.FloatParamType):
        expected, fits = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        expected, fits = "text", isinstance(value, str)
    if not fits:
        raise wrong(expected)
    return value


def load_request_file(ctx: click.Context, param: click.Parameter, path: Path | None) -> Path | None:
    """--config: the file's flags become this command's defaults, so the command line overrides each one."""
    if path is None:
        return None
    by_flag = {opt.lstrip("-"): p for p in ctx.command.params if isinstance(p, click.Option) and p is not param
               for opt in p.opts if opt.startswith("--")}
    defaults = {}
    for key, value in read_request_file(path).items():
        if key not in by_flag:
            raise BenchError(f"--config {path}: {unknown_name('key', key, by_flag)}")
        defaults[by_flag[key].name] = _file_value(by_flag[key], value, f"--config {path}: {key}")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path
