"""Damaged or hand-edited run files, request files and folders, and a full disk: each is one line naming
the file and what is wrong (exit 2), never a traceback, and nothing finished is lost or rewritten."""

from __future__ import annotations

import csv
import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import Result

from denoise_bench.api import run_benchmark
from denoise_bench.errors import BenchError
from denoise_bench.run.lock import LOCK

from helpers import bench

GRID = ["--methods", "bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--test-images", "1", "--no-progress"]
KEPT = ("records.csv", "jobs.csv", "config.json")  # what a refused command must leave as it was



@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    result = bench("run", *GRID, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def one_line_error(result: Result, *named: str) -> str:
    """The output's last line: an error naming each of ``named``; no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: "), result.output
    for text in named:
        assert text in line, line
    return line


def _append(name: str, line: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        with (run / name).open("a") as handle:
            handle.write(line + "\n")
    return damage


def _set_cell(name: str, column: str, value: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        rows = list(csv.reader((run / name).open()))
        rows[1][rows[0].index(column)] = value
        with (run / name).open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return damage


def _replace(name: str, content: bytes) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_bytes(content)
    return damage


def _pending(run: Path) -> None:
    header = (run / "records.csv").read_text().splitlines()[0]
    (run / "pending.csv").write_text(f"{header}\nx,y\n")


DAMAGED_CSV = {
    "records: a row with too many fields": (_append("records.csv", ",".join("x" * 40)), "records.csv", "line 3"),
    "records: a row cut short": (_append("records.csv", "r,nb2nb-v1,smoke"), "records.csv", "line 3: no method"),
    "records: text for a PSNR": (_set_cell("records.csv", "psnr", "abc"), "records.csv", "line 2: psnr 'abc' is not a number"),
    "records: its header edited": (lambda run: (run / "records.csv").write_text(
        (run / "records.csv").read_text().replace("method", "methode", 1)), "records.csv", "no method column"),
    "jobs: a seed that is no number": (_set_cell("jobs.csv", "seed", "zero"), "jobs.csv", "line 2: seed 'zero'"),
    "jobs: an unknown status": (_set_cell("jobs.csv", "status", "Done"), "jobs.csv", "status 'Done'"),
    "jobs: empty": (_replace("jobs.csv", b""), "jobs.csv", "is empty"),
    "jobs: not text": (_replace("jobs.csv", b"\xff\xfe\x00\x01"), "jobs.csv", "not a readable CSV file"),
    "pending: a cut row": (_pending, "pending.csv", "line 2: no method"),
}


@pytest.mark.parametrize("case,command", [(case, command) for case in DAMAGED_CSV for command in ("table", "resume", "leaderboard")
                                          if command == "resume" or not case.startswith("pending")])  # read on resume only
def test_a_damaged_csv_file_of_a_run_is_one_line_naming_it_and_nothing_is_rewritten(
        run_dir: Path, tmp_path: Path, case: str, command: str) -> None:
    damage, name, what = DAMAGED_CSV[case]
    damage(run_dir)
    before = {n: (run_dir / n).read_bytes() for n in (*KEPT, name) if (run_dir / n).exists()}
    args = {"table": ["table", str(run_dir)], "resume": ["run", "--resume", str(run_dir), "--no-progress"],
            "leaderboard": ["leaderboard", str(run_dir), "--out", str(tmp_path / "board"), "--no-html"]}[command]
    one_line_error(bench(*args), str(run_dir / name), what)
    assert {n: (run_dir / n).read_bytes() for n in before} == before


def _edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        config = json.loads((run / "config.json").read_text())
        change(config)
        (run / "config.json").write_text(json.dumps(config))
    return edit


EDITED_CONFIG = {
    "an unknown request field": (lambda c: c["request"].update(bogus=1), "has no field 'bogus'"),
    "no request": (lambda c: c.pop("request"), "its request is null"),
    "a request that is text": (lambda c: c.update(request="x"), "request is text, not an object"),
    "seeds as text": (lambda c: c["request"].update(seeds="0"), "request field seeds is text"),
    "methods as text": (lambda c: c["request"].update(methods="bm3d"), "request field methods is text"),
    "no methods": (lambda c: c["request"].pop("methods"), "the request lacks methods"),
    "overrides null": (lambda c: c["request"].update(overrides=None), "request field overrides is null"),
    "a method option that is a number": (lambda c: c["request"].update(method_options={"bm3d": 3}),
                                         "request field method_options"),
    "noise as a number": (lambda c: c.update(noise=5), "noise is a number, not a list"),
    "a method entry without a name": (lambda c: c.update(methods=[{}]), "methods[0] is not an object with a name"),
    "a noise entry without tests": (lambda c: c.update(noise=[{"train": "gaussian:sigma=25"}]), "noise[0]"),
    # The request is the same, what it resolves to is not: resuming cannot help, so the error does not say to.
    "a test noise edited": (lambda c: c["noise"][0].update(tests=["gaussian:sigma=50"]), "records a run other than"),
}


@pytest.mark.parametrize("case", list(EDITED_CONFIG))
def test_a_hand_edited_config_json_is_one_line_on_resume_and_nothing_is_rewritten(run_dir: Path, case: str) -> None:
    change, what = EDITED_CONFIG[case]
    _edit_config(change)(run_dir)
    before = {n: (run_dir / n).read_bytes() for n in KEPT}
    line = one_line_error(bench("run", "--resume", str(run_dir), "--no-progress"), str(run_dir / "config.json"), what)
    assert "--resume" not in line  # never the hint to run the very command that failed
    assert {n: (run_dir / n).read_bytes() for n in KEPT} == before


REQUEST_FILES = {
    "a method option that is a number": ("method-option = {iddp = 3}", "method-option = {'iddp': 3}: expected a table"),
    "a method option holding an array": ("method-option = {iddp = [1]}", "expected a table of tables"),
    "a fraction of iterations": ("iterations = 1.5", "iterations = 1.5: expected a whole number"),
    "true for a number": ("iterations = true", "iterations = True: expected a whole number"),
    "a table for a number": ("iterations = {a = 1}", "expected a value, not a table"),
    "nested arrays of seeds": ("seeds = [[0]]", "expected a value or an array of values"),
    "an array for one value": ('profile = ["smoke"]', "expected one value, not an array"),
    "a date for a device": ("device = 1979-05-27T07:32:00Z", "device = datetime"),
    "text for a switch": ('progress = "yes"', "expected true or false"),
    "a number for a folder": ("out = 5", "out = 5: expected text"),
    "a nested dataset option": ("dataset-option = {path = {a = 1}}", "expected a table of values"),
    "not UTF-8": ("\udcff\udcfe", "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(REQUEST_FILES))
def test_a_request_file_value_of_the_wrong_kind_is_one_line_naming_the_file_and_key(tmp_path: Path, case: str) -> None:
    text, what = REQUEST_FILES[case]
    path = tmp_path / "request.toml"
    path.write_bytes(f'methods = ["bm3d"]\n{text}\n'.encode("utf-8", "surrogateescape"))
    one_line_error(bench("run", "--config", str(path), "--dry-run"), str(path), what)


def test_a_request_file_with_values_of_the_right_kinds_still_runs(tmp_path: Path) -> None:
    path = tmp_path / "request.toml"
    path.write_text('methods = ["bm3d", "n2n"]\nseeds = [0, 1]\niterations = 5\nlr-scale = 2\nprogress = false\n'
                    'noise = "gaussian:sigma=25"\n[method-option.n2n]\n')
    result = bench("run", "--config", str(path), "--dry-run", "--profile", "smoke")
    assert result.exit_code == 0, result.output
    assert "4 job(s)" in result.output


def test_a_config_json_whose_request_is_not_an_object_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text('{"request": 5}')
    one_line_error(bench("run", "--config", str(path), "--dry-run"), str(path), "its request is a number")


def test_a_lock_that_is_a_folder_is_one_line_and_the_run_folder_is_left_alone(run_dir: Path) -> None:
    (run_dir / LOCK).unlink()
    (run_dir / LOCK).mkdir()
    before = {n: (run_dir / n).read_bytes() for n in KEPT}
    one_line_error(bench("run", "--resume", str(run_dir), "--no-progress"), str(run_dir / LOCK), "is a folder")
    assert {n: (run_dir / n).read_bytes() for n in KEPT} == before


def test_an_out_that_is_a_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    file = tmp_path / "results.txt"
    file.write_text("mine\n")
    for command in (["run", *GRID], ["evaluate", "--run", str(tmp_path), "--dataset", "skimage"]):
        result = bench(*command, "--out", str(file))
        assert result.exit_code == 2 and "is a file" in result.output and "Traceback" not in result.output
    with pytest.raises(BenchError, match=f"run folder {file} is a file, not a folder"):
        run_benchmark("bm3d", "gaussian:sigma=25", profile="smoke", out=file)
    with pytest.raises(BenchError, match=f"cannot make the run folder {file / 'run'}"):
        run_benchmark("bm3d", "gaussian:sigma=25", profile="smoke", out=file / "run")
    assert file.read_text() == "mine\n"


def test_a_full_disk_stops_the_run_in_one_line_keeps_what_finished_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up when the second job saves its first training state; every write fails from then on."""
    full = []
    real_save, real_write_text = torch.save, Path.write_text

    def save(obj, f, *args, **kwargs):
        full.append(True)
        if isinstance(f, (str, Path)):  # torch writing a file itself reports a full disk as this
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        raise OSError(errno.ENOSPC, "No space left on device")  # a Python file's write says what it is

    def write_text(self, *args, **kwargs):
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "run"
    args = [*GRID, "--methods", "bm3d,n2n", "--iterations", "4", "--checkpoint-every", "2", "--out", str(out)]
    line = one_line_error(bench("run", *args), "No space left on device writing", str(out / "checkpoints" / "n2n__"))
    assert f"bench run --resume {out}" in line
    assert real_save is not save
    kept = (out / "records.csv").read_text()
    assert "bm3d" in kept and "n2n" not in kept and "failed" not in (out / "jobs.csv").read_text()
    monkeypatch.undo()  # space freed
    resumed = bench("run", "--resume", str(out), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert "1 job(s) already finished" in resumed.output
    records = (out / "records.csv").read_text().splitlines()
    assert records[1] == kept.splitlines()[1] and len(records) == 3  # bm3d's record as it was, then n2n's
