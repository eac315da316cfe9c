"""Progress bars are drawn on a terminal only, unless --progress forces them (or --no-progress drops them):
a redirected log gets the line after each job, not bars."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from denoise_bench import download, plugins
from denoise_bench.cli.commands import _progress, main
from helpers import ToyPlugin

BAR = "%|"  # how tqdm draws a bar: "test median3 ...:  50%|#####     | 1/2"


def _run(tmp_path: Path, *flags: str) -> str:
    plugins.register_plugin(ToyPlugin(), name="toy")
    result = CliRunner().invoke(main, ["run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile",
                                       "smoke", "--out", str(tmp_path / "run"), *flags])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_run_into_a_log_draws_no_bars_unless_told_to(tmp_path: Path) -> None:
    assert BAR not in _run(tmp_path / "log")  # CliRunner's stderr is no terminal
    assert BAR in _run(tmp_path / "forced", "--progress")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("flag,terminal,drawn", [
    (None, False, False), (None, True, True), (True, False, True), (False, True, False)])
def test_bars_by_default_only_where_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch, flag: bool | None,
                                                         terminal: bool, drawn: bool) -> None:
    monkeypatch.setattr(sys, "stderr", _Terminal() if terminal else io.StringIO())
    assert _progress(flag) is drawn


def test_progress_forces_download_bars_too(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    monkeypatch.setattr(download, "tqdm", lambda **kwargs: made.append(kwargs["disable"]))
    for enabled in (True, False, None):
        with download.progress_bars(enabled):
            download._bar("http://example.org/a.bin", 10)
    assert made == [False, True, None]  # None: tqdm's own rule, a terminal only
