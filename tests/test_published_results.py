"""Published run folders in results/ stay readable and their tables stay what their records say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from denoise_bench.report.leaderboard import write_leaderboard
from denoise_bench.results import read_config, write_tables

PUBLISHED = sorted(p for p in (Path(__file__).resolve().parents[1] / "results").iterdir() if (p / "config.json").is_file())


def test_there_is_a_published_run() -> None:
    assert PUBLISHED


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda p: p.name)
def test_published_tables_rerender_identically(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    read_config(copy)  # written by this results format
    rendered = write_tables(copy)
    for metric in ("psnr", "ssim"):
        assert rendered[metric] == (folder / "tables" / f"{metric}.md").read_text()
        assert (copy / "tables" / f"{metric}.csv").read_text() == (folder / "tables" / f"{metric}.csv").read_text()


BOARDS = sorted(p for p in (Path(__file__).resolve().parents[1] / "results").iterdir() if (p / "leaderboard.json").is_file())


@pytest.mark.parametrize("folder", BOARDS, ids=lambda p: p.name)
def test_published_leaderboards_remake_identically(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = json.loads((folder / "leaderboard.json").read_text())
    monkeypatch.chdir(folder.parents[1])  # run folders are recorded relative to the repository root
    markdown = write_leaderboard([Path(d) for d in inputs["runs"]], tmp_path, inputs["allow_mismatch"], inputs["paper"],
                                 exclude=inputs.get("exclude"), findings=inputs.get("findings"),
                                 controls=[Path(d) for d in inputs.get("controls", [])])
    assert markdown == (folder / "leaderboard.md").read_text()
    for name in ("leaderboard.csv", "pairs.csv"):
        assert (tmp_path / name).read_text() == (folder / name).read_text()
