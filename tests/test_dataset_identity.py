"""What a dataset and a record are: one name never stands for two sets of pictures, one key for two records.

A run records with every image's scores a digest of its dataset's test images, and a leaderboard
refuses to rank two sets under one name; a named set whose folder lacks a file of its manifest, or
holds one that is not in it, is refused. Two images of one id (``a.png``, ``a.jpg``) and a request
that names a seed, method, dataset or training noise twice are refused when the run is planned.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from denoise_bench import plugins
from denoise_bench.data import TEST, CleanImage, Dataset
from denoise_bench.errors import BenchError
from denoise_bench.report.leaderboard import write_leaderboard
from helpers import ToyPlugin, bench_output

RUN = ["run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--no-progress"]


def _png(path: Path, seed: int, side: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(autouse=True)
def toy() -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")


# --- a dataset's identity ------------------------------------------------------------------------

def test_two_folders_of_one_name_are_never_ranked_as_one_dataset(tmp_path: Path) -> None:
    for seed in (1, 2):
        _png(tmp_path / "a" / "data" / f"im{seed}.png", seed)
        _png(tmp_path / "b" / "data" / f"im{seed}.png", seed + 10)  # other pictures, the same names
    shutil.copytree(tmp_path / "a" / "data", tmp_path / "copy" / "data")  # the same pictures elsewhere
    for folder, seed in (("a", "0"), ("b", "0"), ("copy", "1")):
        code, output = bench_output(*RUN, "--dataset", str(tmp_path / folder / "data"), "--seeds", seed,
                              "--out", str(tmp_path / f"run-{folder}"))
        assert code == 0, output
    digests = {folder: set(pd.read_csv(tmp_path / f"run-{folder}" / "records.csv", dtype=str).dataset_digest)
               for folder in ("a", "b", "copy")}
    assert len(digests["a"]) == 1 and digests["a"] == digests["copy"] and digests["a"] != digests["b"]
    with pytest.raises(BenchError) as info:
        write_leaderboard([tmp_path / "run-a", tmp_path / "run-b"], tmp_path / "board", html=False)
    assert "folder:data" in str(info.value) and "not the same test images" in str(info.value)
    assert str(tmp_path / "run-b") in str(info.value)
    markdown = write_leaderboard([tmp_path / "run-a", tmp_path / "run-copy"], tmp_path / "same", html=False)
    assert "## folder:data (gray), gaussian:sigma=25" in markdown


def _named_data_dir(root: Path, names: list[str], listed: list[str] | None = None) -> Path:
    """``root/Set12/`` holding tiny PNGs ``names``, and a MANIFEST.csv listing ``listed`` (None: no manifest)."""
    for i, name in enumerate(names):
        _png(root / "Set12" / name, i)
    if listed is not None:
        with (root / "MANIFEST.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["set", "file", "sha256"])
            for i, name in enumerate(listed):
                made = _png(root / "listed" / name, i)  # what the manifest's file holds
                writer.writerow(["Set12", f"Set12/{name}", hashlib.sha256(made.read_bytes()).hexdigest()])
    return root


@pytest.mark.parametrize("names, said", [
    (["01.png", "02.png"], "Set12/03.png of MANIFEST.csv is missing"),
    (["01.png", "02.png", "03.png", "foreign.png"], "Set12/foreign.png is not in MANIFEST.csv"),
    (["01.png", "02.png", "foreign.png"], "Set12/03.png of MANIFEST.csv is missing"),
])
def test_a_named_set_with_a_missing_or_foreign_file_is_refused(tmp_path: Path, names: list[str], said: str) -> None:
    listed = ["01.png", "02.png", "03.png"]
    intact = _named_data_dir(tmp_path / "intact", listed, listed)
    code, output = bench_output(*RUN, "--dataset", "set12", "--data-dir", str(intact), "--dry-run")
    assert code == 0, output
    tampered = _named_data_dir(tmp_path / "tampered", names, listed)
    code, output = bench_output(*RUN, "--dataset", "set12", "--data-dir", str(tampered), "--dry-run")
    assert code == 2 and output.count("\n") == 1 and said in output, output


def test_a_named_set_without_a_manifest_must_have_its_number_of_images(tmp_path: Path) -> None:
    root = _named_data_dir(tmp_path, [f"{i:02d}.png" for i in range(1, 12)])
    code, output = bench_output(*RUN, "--dataset", "set12", "--data-dir", str(root), "--dry-run")
    assert code == 2 and "Set12/ holds 11 images, not the 12 of Set12" in output, output


# --- one key, one record -------------------------------------------------------------------------

def test_two_images_of_one_name_in_a_folder_are_refused_when_planned(tmp_path: Path) -> None:
    _png(tmp_path / "data" / "a.png", 1)
    Image.open(_png(tmp_path / "b.png", 2)).save(tmp_path / "data" / "a.jpg")
    code, output = bench_output(*RUN, "--dataset", str(tmp_path / "data"), "--dry-run")
    assert code == 2 and output.count("\n") == 1, output
    assert "a.jpg and a.png are both image 'a'" in output


class Twice(Dataset):
    """A plugin dataset whose loader gives one id to two images."""

    name = "twice"
    channels = 1

    def load(self, split: str) -> list[CleanImage]:
        pixels = np.zeros((8, 8, 1), np.uint8)
        return [CleanImage("x", pixels), CleanImage("x", pixels + 1)]


def test_a_dataset_that_gives_one_id_to_two_images_is_refused() -> None:
    with pytest.raises(BenchError, match=re.escape("dataset 'twice': the 'test' split repeats image ids ['x']")):
        Twice().images(TEST)


@pytest.mark.parametrize("flags, said", [
    (["--seeds", "0,1,0"], "--seeds names 0 twice"),
    (["--methods", "median3,bm3d,median3"], "--methods names median3 twice"),
    (["--dataset", "skimage,skimage"], "--dataset names skimage twice"),
    (["--noise", "gaussian:sigma=25", "--noise", "gaussian:sigma=25"],
     "--noise gaussian:sigma=25 and gaussian:sigma=25 both train on gaussian:sigma=25"),
    (["--noise", "gaussian", "--noise", "gaussian:sigma=0-50"],
     "--noise gaussian and gaussian:sigma=0-50 both train on gaussian:sigma=0-50"),
])
def test_a_request_naming_a_job_twice_is_refused_when_planned(tmp_path: Path, flags: list[str], said: str) -> None:
    args = [*RUN, "--out", str(tmp_path / "run")]
    for flag in flags:
        if flag in args:  # replace RUN's value of this flag
            del args[args.index(flag):args.index(flag) + 2]
    code, output = bench_output(*args, *flags)
    assert code == 2 and output.count("\n") == 1 and said in output, output
    assert not (tmp_path / "run").exists()


def test_noise_draws_per_image_are_chosen_explicitly_and_the_tables_say_by_which_rule(tmp_path: Path) -> None:
    # The protocol's draws go by the set's name: a folder holding Kodak got one draw per image where kodak24
    # gets ten, and no table said so.
    _png(tmp_path / "kodak" / "kodim01.png", 1)
    by_name, chosen = tmp_path / "by-name", tmp_path / "chosen"
    for out, extra in ((by_name, []), (chosen, ["--repeats", "10"])):
        code, output = bench_output(*RUN, "--dataset", str(tmp_path / "kodak"), "--out", str(out), *extra)
        assert code == 0, output
    assert set(pd.read_csv(by_name / "records.csv").repeat) == {0}
    assert set(pd.read_csv(chosen / "records.csv").repeat) == set(range(10))
    assert ("Noise draws: protocol nb2nb-v1's rule by set name: kodak24 x10, bsd300 x3, set14 x20, any other set "
            "(a folder too) x1; --repeats N to choose.") in (by_name / "tables" / "psnr.md").read_text()
    assert "Noise draws: 10 per test image of every set (--repeats 10)." in (chosen / "tables" / "psnr.md").read_text()
    # The first draw is the same draw under either count: the ten extend the one.
    one, ten = (pd.read_csv(out / "records.csv").set_index("repeat") for out in (by_name, chosen))
    assert one.loc[0, "noise_seed"] == ten.loc[0, "noise_seed"] and one.loc[0, "psnr"] == ten.loc[0, "psnr"]
    board = write_leaderboard([chosen], tmp_path / "board", html=False)
    assert "Noise draws: 10 per test image of every set (--repeats 10)." in board
