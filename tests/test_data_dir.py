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
from denoise_bench.request_schema import leaves, value_of
from denoise_bench.run.request import RunRequest
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


def test_an_empty_data_dir_is_not_given_so_the_sets_beside_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--data-dir "$DENOISE_BENCH_DATA"` with the variable unset passes "": the fallback applies, not the working directory."""
    checkout = _standard_sets(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "CHECKOUT", tmp_path / "elsewhere")
    monkeypatch.chdir(checkout)
    plugins.register_plugin(ToyPlugin(), name="toy")
    result = CliRunner().invoke(main, ["run", "--methods", "median3", "--dataset", "set12", "--noise", "gaussian:sigma=25",
                                       "--profile", "smoke", "--test-images", "1", "--no-progress", "--data-dir", "",
                                       "--out", "run"])
    assert result.exit_code == 0, result.output
    assert f"data folder: {(tmp_path / 'shared' / 'data').resolve()}" in result.output


def test_an_empty_data_dir_given_to_the_api_is_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_benchmark(data_dir=os.environ.get(...,"")) reads the request's schema as the flag does."""
    checkout = _standard_sets(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "CHECKOUT", checkout)
    leaf = next(leaf for leaf in leaves(RunRequest) if leaf.name == "data_dir")
    assert value_of(leaf, "", "data_dir") == (tmp_path / "shared" / "data").resolve()
    assert value_of(leaf, ".", "data_dir") == Path(".")  # a folder given is kept as given


def test_a_missing_set_folder_is_named_with_where_it_was_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "sets"))
    (tmp_path / "sets").mkdir()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--methods", "bm3d", "--dataset", "set12", "--noise", "gaussian:sigma=25",
                                       "--profile", "smoke", "--test-images", "1", "--no-progress", "--out", "run"])
    assert result.exit_code == 2, result.output
    message = result.output.strip().splitlines()[-1]
    assert str(tmp_path / "sets" / "Set12") in message
    assert "--data-dir DIR or set DENOISE_BENCH_DATA" in message
