"""Where the standard sets are found: --data-dir, else $DENOISE_BENCH_DATA, else ../shared/data beside the
checkout or the working directory (recognised by its MANIFEST.csv), as the tests' own conftest finds them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from denoise_bench import data, plugins
from denoise_bench.cli.commands import main
from denoise_bench.data import DATA_DIR_ENV, resolve_data_dir
from helpers import ToyPlugin


def _standard_sets(root: Path) -> Path:
    """root/shared/data holding a two-image Set12 and the MANIFEST.csv that lists it; returns root/checkout."""
    sets = root / "shared" / "data"
    (sets / "Set12").mkdir(parents=True)
    rows = ["set,file,sha256"]
    for i in range(2):
        path = sets / "Set12" / f"0{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 48), dtype=np.uint8)).save(path)
        rows.append(f"Set12,Set12/{path.name},{hashlib.sha256(path.read_bytes()).hexdigest()}")
    (sets / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    (root / "checkout").mkdir()
    return root / "checkout"


def test_the_flag_wins_then_the_environment_then_shared_data_beside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = _standard_sets(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert resolve_data_dir(None, beside=(checkout,)) == (tmp_path / "shared" / "data").resolve()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(None, beside=(checkout,)) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "flag", beside=(checkout,)) == tmp_path / "flag"


def test_a_shared_data_folder_without_the_manifest_is_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = _standard_sets(tmp_path)
    (tmp_path / "shared" / "data" / "MANIFEST.csv").unlink()
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert resolve_data_dir(None, beside=(checkout,)) is None


def test_bench_run_finds_the_sets_beside_the_working_directory_and_says_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = _standard_sets(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "CHECKOUT", tmp_path / "elsewhere")  # not the real checkout's ../shared/data
    monkeypatch.chdir(checkout)
    plugins.register_plugin(ToyPlugin(), name="toy")
    result = CliRunner().invoke(main, ["run", "--methods", "median3", "--dataset", "set12", "--noise", "gaussian:sigma=25",
                                       "--profile", "smoke", "--test-images", "1", "--no-progress", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert f"data folder: {(tmp_path / 'shared' / 'data').resolve()}" in result.output
