"""Every `bench` command written in README.md and docs/*.md runs, so the docs cannot drift from the code.

The commands are collected when the tests are: each line of a fenced shell block (``bash``, ``sh``,
``shell``, ``console`` or no language) that starts with ``bench `` (or ``scripts/dev bench ``, or
``$ bench `` in a console block; a leading ``VAR=value`` is dropped), backslash continuations
joined. Each is run through the click CLI in-process, in a scratch folder of its page (commands of
one page run in order in one folder, so a ``bench run --out runs/x`` feeds a later ``bench table
runs/x``), at smoke budgets:

* ``bench run`` whose ``--out`` a later command of the same page reads runs for real at
  ``--profile smoke --test-images 1 --device cpu`` (budget values the doc gives are put back to
  smoke's); any other ``bench run`` is a ``--dry-run`` at smoke's sizes under the doc's profile (its
  grid is planned and checked, nothing trains). What cannot run here (``--executor slurm``,
  ``--device cuda``, ``--compile``: a dry run times compiled steps) has its options checked against
  ``bench COMMAND --help`` instead.
* a run folder a command reads (``bench table DIR``, ``bench leaderboard DIR...``, ``bench export
  DIR``, ``--run DIR``, ``--resume DIR``, ``--config DIR/config.json``) that is not there yet (the
  command was selected alone with ``-k``) is made by the page's earlier command that writes it, or
  else is a copy of one shared smoke run.
* ``bench perf`` times one step of one round on 32x32 crops; ``bench evaluate`` runs on the CPU.

The commands run as a newcomer's do (``newcomer``): in a clone beside ``../shared/data`` (the standard
sets), with none of the project's environment variables set, since the README sets none; an unset
``$DENOISE_BENCH_DATA`` expands to nothing, as in the shell. How to write a command so that it runs as
written: the named sets without ``--data-dir`` (they are found in ``../shared/data``), an image as
``../shared/data/Set12/01.png``, run folders under ``runs/`` made earlier on the page,
and a request file as a ``toml`` block whose first line is a comment naming it (``# run.toml``): the
block is written into the page's folder before its commands run. Commands with placeholders
(``...``, ``<x>``, ``/path/to``, ``RUN_DIR``, an unknown ``$VAR``) are skipped with the reason. The
example plugin ``tv`` (examples/denoise-bench-tv) is registered, since the docs install and use it.

Each test is named by its page and line (``README.md:42``), so a failure says where to look.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from denoise_bench import data, plugins
from denoise_bench.cli import commands as cli
from denoise_bench.data import DATA_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = REPO / "examples" / "denoise-bench-tv" / "src"
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "shell-session"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w-]*)")
# Tokens that stand for something the reader fills in: the command cannot run as written.
PLACEHOLDER = re.compile(r"\.\.\.|<[^>]*>|/path/to|^[A-Z][A-Z0-9]*_[A-Z0-9_]+$|\$\{?[A-Za-z_]")
ENV_ASSIGNMENTS = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)+(?=(?:scripts/dev )?bench )")
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>&1", "2>"}
# Options that name a run folder the command reads, by subcommand (positional arguments too, below).
RUN_FOLDER_OPTIONS = {"run": ("--resume",), "denoise": ("--run",), "evaluate": ("--run",)}
RUN_FOLDER_ARGUMENTS = ("table", "leaderboard", "export")  # their positional arguments are run folders
PERF_BUDGET = ["--steps", "1", "--rounds", "1", "--batches", "1", "--crop", "32", "--width", "8", "--no-compare",
               "--device", "cpu"]
# The smoke profile's sizes, which also put back the values a doc may have overridden (--iterations 500).
SMOKE_SIZES = ["--iterations", "30", "--batch-size", "2", "--crop-size", "64", "--width", "16", "--test-images", "1",
               "--device", "cpu"]
SMOKE_BUDGET = ["--profile", "smoke", *SMOKE_SIZES, "--no-progress"]


@dataclass(frozen=True)
class DocCommand:
    page: str  # path relative to the repository, e.g. docs/cli.md
    line: int  # 1-based line of the command's first line
    text: str  # the command as written, continuations joined
    index: int  # its position among the page's commands


@dataclass(frozen=True)
class RequestFile:
    name: str
    text: str


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def parse_page(path: Path, root: Path = REPO) -> tuple[list[DocCommand], list[RequestFile]]:
    """The `bench` commands of a page's shell blocks, and its named TOML blocks."""
    page = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    commands: list[DocCommand] = []
    files: list[RequestFile] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(2), opening.group(3).lower()
        start = i + 1
        i = start
        while i < len(lines) and not lines[i].strip().startswith(fence[0] * len(fence)):
            i += 1
        block = lines[start:i]
        i += 1
        if language == "toml" and block:
            named = re.match(r"#\s*([\w.-]+\.toml)\b", block[0].strip())
            if named:
                files.append(RequestFile(named.group(1), "\n".join(block) + "\n"))
        if language not in SHELL_LANGUAGES:
            continue
        j = 0
        while j < len(block):
            first = j
            text = block[j].strip()
            while text.endswith("\\") and j + 1 < len(block):
                j += 1
                text = text[:-1].rstrip() + " " + block[j].strip()
            j += 1
            if language in ("console", "shell-session"):
                if not text.startswith("$ "):
                    continue  # output, not a command
                text = text[2:].strip()
            text = ENV_ASSIGNMENTS.sub("", text)  # OMP_NUM_THREADS=1 bench ...: the variable is the shell's
            if text.startswith("scripts/dev "):
                text = text[len("scripts/dev "):].strip()
            if text.startswith("bench "):
                commands.append(DocCommand(page, start + first + 1, text, len(commands)))
    return commands, files


def _collect() -> list[DocCommand]:
    return [command for page in doc_pages() for command in parse_page(page)[0]]


COMMANDS = _collect()


def _words(text: str) -> list[str]:
    """The command's words after the shell's quoting and ``$DENOISE_BENCH_DATA`` (as the shell expands it: empty
    where it is unset, as in a newcomer's shell), without ``bench``."""
    value = os.environ.get(DATA_DIR_ENV, "")
    expanded = text.replace("${DENOISE_BENCH_DATA}", value).replace("$DENOISE_BENCH_DATA", value)
    words = shlex.split(expanded, comments=True)
    for k, word in enumerate(words):
        if word in SHELL_OPERATORS:
            words = words[:k]
            break
    return words[1:]


def _placeholders(words: list[str]) -> list[str]:
    return [w for w in words if PLACEHOLDER.search(w.split("=", 1)[-1] if w.startswith("--") else w)]


def _option_values(words: list[str], name: str) -> list[str]:
    values = []
    for k, word in enumerate(words):
        if word == name and k + 1 < len(words):
            values.append(words[k + 1])
        elif word.startswith(name + "="):
            values.append(word.split("=", 1)[1])
    return values


def _positionals(words: list[str]) -> list[str]:
    """Arguments that are not options or option values, by the command's own click parameters."""
    command = cli.main.commands[words[0]]
    flags = {opt for p in command.params if isinstance(p, click.Option) and p.is_flag
             for opt in (*p.opts, *p.secondary_opts)}
    out, k = [], 1
    while k < len(words):
        word = words[k]
        if word.startswith("--"):
            k += 1 if ("=" in word or word in flags) else 2
            continue
        out.append(word)
        k += 1
    return out


def run_folders_read(words: list[str]) -> list[str]:
    """The run folders a command reads (which must exist before it runs)."""
    sub = words[0] if words else ""
    if sub not in cli.main.commands:
        return []
    read = [v for opt in RUN_FOLDER_OPTIONS.get(sub, ()) for v in _option_values(words, opt)]
    if sub in RUN_FOLDER_ARGUMENTS:
        read += _positionals(words)
    read += [str(Path(v).parent) for v in _option_values(words, "--config") if Path(v).name == "config.json"]
    return read


def _normal(path: str) -> str:
    return os.path.normpath(path.rstrip("/"))


def _read_later(command: DocCommand) -> set[str]:
    """Run folders read by the commands after this one on its page."""
    later = [c for c in COMMANDS if c.page == command.page and c.index > command.index]
    read: set[str] = set()
    for c in later:
        read.update(_normal(p) for p in run_folders_read(_words(c.text)))
    return read


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One tiny finished run folder, copied wherever a command reads a run folder its page did not make."""
    out = tmp_path_factory.mktemp("docs-smoke") / "run"
    result = CliRunner().invoke(cli.main, ["run", "--methods", "unet,bm3d", "--noise", "gaussian", "--dataset", "bsd68",
                                           "--data-dir", str(data_dir), "--out", str(out), *SMOKE_BUDGET])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def page_folders(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    """One scratch clone per page, beside a ``../shared/data`` that is the standard sets, as a fresh clone sits;
    its commands run there in order, so earlier outputs feed later ones."""
    folders: dict[str, Path] = {}
    for page in doc_pages():
        name = page.relative_to(REPO).as_posix()
        place = tmp_path_factory.mktemp("docs-" + re.sub(r"\W", "-", name))
        (place / "shared").mkdir()
        (place / "shared" / "data").symlink_to(data_dir, target_is_directory=True)
        folder = place / "clone"
        folder.mkdir()
        for request in parse_page(page)[1]:
            (folder / request.name).write_text(request.text, encoding="utf-8")
        folders[name] = folder
    return folders


@pytest.fixture
def example_plugin():
    """The example package's method ``tv``, registered as its entry point would, for the pages that use it."""
    sys.path.insert(0, str(EXAMPLE_PLUGIN))
    try:
        import denoise_bench_tv
        plugins.register_plugin(denoise_bench_tv, name="tv")
        yield
    finally:
        sys.path.remove(str(EXAMPLE_PLUGIN))


def forced(words: list[str], command: DocCommand) -> list[str]:
    """The command at a smoke budget (see the module docstring)."""
    sub = words[0]
    if sub == "run" and not _option_values(words, "--resume"):
        outs = [_normal(o) for o in _option_values(words, "--out")]
        if outs and set(outs) & _read_later(command):
            return [*words, *SMOKE_BUDGET]
        # The doc's profile is kept (and checked); the sizes are smoke's, which keep the dry run's
        # planning (and any timing of a few steps) cheap.
        return [*words, *SMOKE_SIZES, "--dry-run"]
    if sub == "run":
        return [*words, "--no-progress"]
    if sub == "perf":
        return [*words, *PERF_BUDGET]
    if sub == "evaluate":
        return [*words, "--device", "cpu", "--no-progress"]
    return words


def cannot_run_here(words: list[str]) -> bool:
    """A Slurm executor needs a cluster, a CUDA device a GPU, and compilation takes minutes even to plan
    (a dry run times a few compiled steps): for these the options are checked, not run."""
    return words[0] in ("run", "perf") and (
        "slurm" in _option_values(words, "--executor")
        or any(v.startswith("cuda") for v in _option_values(words, "--device"))
        or any(v != "off" for v in _option_values(words, "--compile")))


def _check_options_exist(words: list[str]) -> None:
    """For commands that cannot run here: the words parse as the command's options and values (names,
    choices, types), without invoking it."""
    command = cli.main.commands[words[0]]
    try:
        command.make_context(words[0], list(words[1:]))
    except click.UsageError as exc:
        pytest.fail(f"bench {shlex.join(words)}: {exc.format_message()}")


def test_the_docs_hold_commands() -> None:
    pages = {c.page for c in COMMANDS}
    assert "README.md" in pages
    assert any(c.text.startswith("bench run") for c in COMMANDS if c.page == "README.md")
    assert any(c.text.startswith("bench leaderboard") for c in COMMANDS if c.page == "README.md")


def test_commands_are_parsed_as_written(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("""text
```bash
OMP_NUM_THREADS=1 bench run --methods iddp \\
    --noise poisson   # a comment
pip install x
scripts/dev bench list
```
```console
$ bench table runs/a
[1/2 jobs] output, not a command
```
```python
bench = 1
```
```toml
# run.toml: a request file
methods = ["iddp"]
```
""")
    commands, files = parse_page(page, root=tmp_path)
    assert [(c.line, c.text) for c in commands] == [
        (3, "bench run --methods iddp --noise poisson   # a comment"),
        (6, "bench list"),
        (9, "bench table runs/a"),
    ]
    assert files == [RequestFile("run.toml", '# run.toml: a request file\nmethods = ["iddp"]\n')]
    assert _words(commands[0].text) == ["run", "--methods", "iddp", "--noise", "poisson"]
    leaderboard = _words("bench leaderboard runs/a runs/b --no-html --out board")
    assert run_folders_read(leaderboard) == ["runs/a", "runs/b"]
    assert run_folders_read(_words("bench run --config runs/a/config.json --out runs/c")) == ["runs/a"]
    assert _placeholders(_words("bench table RUN_DIR")) == ["RUN_DIR"]
    assert _placeholders(_words('bench run --data-dir "$DENOISE_BENCH_DATA"')) == []


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.page}:{c.line}" for c in COMMANDS])
def test_doc_command_runs(command: DocCommand, page_folders: dict[str, Path], example_plugin: None,
                          monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    folder = page_folders[command.page]
    newcomer(monkeypatch, folder)
    words = _words(command.text)
    assert words and words[0] in (*cli.main.commands, "--version", "--help"), \
        f"{command.page}:{command.line}: `{command.text}` is no bench command"
    placeholders = _placeholders(words)
    if placeholders:
        pytest.skip(f"{command.page}:{command.line} has placeholders {placeholders}: write it to run as written")
    if cannot_run_here(words):
        _check_options_exist(words)
        return
    make_inputs(command, words, folder, request)
    run_forced(command, words)


def newcomer(monkeypatch: pytest.MonkeyPatch, clone: Path) -> None:
    """The shell of someone who cloned the project beside ``../shared`` and followed the README: in the clone,
    none of the project's variables set (the README sets none), the package running from the clone. The
    download cache alone is kept in the scratch folder, so that no test writes under the home folder; the
    test suite's own switch that keeps installed plugins out stays."""
    for name in [n for n in os.environ if n.startswith("DENOISE_BENCH_")]:
        if name != "DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DENOISE_BENCH_CACHE", str(clone / ".cache"))
    monkeypatch.setattr(data, "CHECKOUT", clone)  # the checkout the package runs from: the clone
    monkeypatch.chdir(clone)


def run_forced(command: DocCommand, words: list[str]) -> None:
    args = forced(words, command)
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, (f"{command.page}:{command.line}: `{command.text}` ran as `bench {shlex.join(args)}` "
                                   f"and exited {result.exit_code}:\n{result.output[-3000:]}\n{result.exception!r}")


def make_inputs(command: DocCommand, words: list[str], folder: Path, request: pytest.FixtureRequest) -> None:
    """The run folders the command reads that are not there yet (it was selected alone, or an earlier
    command failed): made by the earlier command of the page that writes them, or else copied from the
    shared smoke run."""
    missing = [read for read in run_folders_read(words) if not (folder / read).exists()]
    if words[0] == "table" and not _positionals(words) and not (folder / "runs").is_dir():
        missing.append("runs/smoke")
    for read in missing:
        producers = [c for c in COMMANDS if c.page == command.page and c.index < command.index
                     and _normal(read) in {_normal(o) for o in _option_values(_words(c.text), "--out")}]
        if producers:
            producer = producers[-1]
            producer_words = _words(producer.text)
            make_inputs(producer, producer_words, folder, request)
            run_forced(producer, producer_words)
        else:
            shutil.copytree(request.getfixturevalue("smoke_run"), folder / read)
