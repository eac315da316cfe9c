"""Dataset plugins: the offline skimage sets, the named standard sets, the folder set, and bad inputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset
from denoise_bench.errors import BenchError
from denoise_bench.images import read_image, to_channels
from denoise_bench import plugins
from denoise_bench.plugins import get_registry
from helpers import ToyPlugin, bench


def _dataset(name: str, data_dir: Path | None = None, **options: str) -> Dataset:
    return get_registry().dataset(name)(data_dir, **options)


def _ids(images: list[CleanImage]) -> list[str]:
    return [image.id for image in images]


def _stems(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.png")}


# --- skimage (the offline default) ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "channels"), [("skimage", 1), ("skimage-color", 3)])
def test_skimage_sets_load_offline(name: str, channels: int) -> None:
    dataset = _dataset(name)
    train, test = dataset.images(TRAIN), dataset.images(TEST)
    assert train and test
    assert not set(_ids(train)) & set(_ids(test))  # no scene in both splits
    for image in train + test:
        assert image.pixels.dtype == np.uint8
        assert image.pixels.ndim == 3 and image.pixels.shape[2] == channels
        assert min(image.pixels.shape[:2]) >= 64
    assert dataset.channels == channels


def test_skimage_gray_is_the_luma_of_the_colour_image() -> None:
    # 'astronaut' is a colour test image in both sets: the gray one must be its BT.601 luma.
    gray = {i.id: i for i in _dataset("skimage").images(TEST)}["astronaut"].pixels
    colour = {i.id: i for i in _dataset("skimage-color").images(TEST)}["astronaut"].pixels
    assert np.array_equal(colour, skimage.data.astronaut())
    assert np.array_equal(gray, to_channels(colour, 1))


def test_unknown_split_is_a_bench_error() -> None:
    with pytest.raises(BenchError, match="validation"):
        _dataset("skimage").images("validation")


# --- the named standard sets ---------------------------------------------------------------------
# Loaded once per module: reading (and checksumming) ~600 PNGs is the slow part of this file.


@pytest.fixture(scope="module")
def bsd68_test(data_dir: Path) -> list[CleanImage]:
    return _dataset("bsd68", data_dir).images(TEST)


@pytest.fixture(scope="module")
def train400(data_dir: Path) -> list[CleanImage]:
    return _dataset("bsd68", data_dir).images(TRAIN)


@pytest.fixture(scope="module")
def cbsd68_test(data_dir: Path) -> list[CleanImage]:
    return _dataset("cbsd68", data_dir).images(TEST)


@pytest.fixture(scope="module")
def cbsd68_train(data_dir: Path) -> list[CleanImage]:
    return _dataset("cbsd68", data_dir).images(TRAIN)


def test_bsd68_test_split(bsd68_test: list[CleanImage], data_dir: Path) -> None:
    assert _ids(bsd68_test) == [f"test{i:03d}" for i in range(1, 69)]  # sorted, stable order
    for image in bsd68_test:
        assert image.pixels.dtype == np.uint8
        assert image.pixels.shape in {(321, 481, 1), (481, 321, 1)}
    # Pixels are the file's, untouched.
    with Image.open(data_dir / "BSD68" / "test004.png") as im:
        assert np.array_equal(bsd68_test[3].pixels[:, :, 0], np.asarray(im))


def test_bsd68_trains_on_train400(train400: list[CleanImage], bsd68_test: list[CleanImage]) -> None:
    assert len(train400) == 400
    assert _ids(train400)[0] == "test_001" and _ids(train400)[-1] == "test_400"
    assert all(image.pixels.shape == (180, 180, 1) and image.pixels.dtype == np.uint8 for image in train400)
    # Ids are not shared with the test set (Train400's names are test_NNN, BSD68's testNNN).
    assert not set(_ids(train400)) & set(_ids(bsd68_test))


def test_set12(data_dir: Path) -> None:
    dataset = _dataset("set12", data_dir)
    images = dataset.images(TEST)
    assert _ids(images) == [f"{i:02d}" for i in range(1, 13)]
    assert [im.pixels.shape for im in images] == [(256, 256, 1)] * 7 + [(512, 512, 1)] * 5
    assert dataset.folders[TRAIN] == ("Train400",)  # trains like bsd68 (not re-read here)


def test_cbsd68_train_is_bsd300_minus_cbsd68(cbsd68_train: list[CleanImage], cbsd68_test: list[CleanImage],
                                             data_dir: Path) -> None:
    test_ids = set(_ids(cbsd68_test))
    assert len(cbsd68_test) == 68 and test_ids == _stems(data_dir / "CBSD68")
    train_ids = _ids(cbsd68_train)
    assert len(train_ids) == 32 == len(set(train_ids))
    assert not set(train_ids) & test_ids
    assert set(train_ids) == _stems(data_dir / "BSD300_test") - _stems(data_dir / "CBSD68")
    for image in cbsd68_train + cbsd68_test:
        assert image.pixels.dtype == np.uint8 and image.pixels.shape[2] == 3
        assert image.pixels.shape[:2] in {(321, 481), (481, 321)}


def test_set14_test_images_are_colour(data_dir: Path, cbsd68_train: list[CleanImage]) -> None:
    dataset = _dataset("set14", data_dir)
    images = dataset.images(TEST)
    assert len(images) == 12 and "baboon" in _ids(images)
    for image in images:
        assert image.pixels.dtype == np.uint8 and image.pixels.shape[2] == 3
        # Real colour, not a replicated gray plane.
        assert not np.array_equal(image.pixels[:, :, 0], image.pixels[:, :, 1])
    # Set14 trains on the same 32 BSD300 images as CBSD68.
    assert _ids(dataset.images(TRAIN)) == _ids(cbsd68_train)


def test_bsd300_has_no_training_split(data_dir: Path) -> None:
    with pytest.raises(BenchError, match="train-dataset"):
        _dataset("bsd300", data_dir).images(TRAIN)


# Regression: NamedSet.load used to start with `assert self.data_dir is not None ...`, so a run
# without a data directory died with a bare AssertionError instead of this BenchError.
@pytest.mark.parametrize("name", ["bsd68", "set12", "cbsd68", "set14", "train400"])
def test_named_set_without_data_dir_says_how_to_set_one(name: str) -> None:
    dataset = _dataset(name, None)
    # Both the up-front check (run planning) and the load itself must say how to fix it.
    with pytest.raises(BenchError, match="DENOISE_BENCH_DATA"):
        dataset.check(TEST)
    with pytest.raises(BenchError, match="DENOISE_BENCH_DATA"):
        dataset.images(TEST)


def test_data_dir_without_the_set_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "Set12").mkdir()  # some other set is there, not BSD68
    with pytest.raises(BenchError) as info:
        _dataset("bsd68", tmp_path).images(TEST)
    assert "BSD68" in str(info.value) and str(tmp_path) in str(info.value)


# --- integrity checks ----------------------------------------------------------------------------

CORRUPT_FILES = ("test001.png", "test002.png")


def _mini_data_dir(root: Path, data_dir: Path) -> Path:
    """<root>/BSD68/ with two shared images and a MANIFEST.csv (same columns) listing them."""
    (root / "BSD68").mkdir(parents=True)
    with (data_dir / "MANIFEST.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        rows = [row for row in reader if row["file"] in {f"BSD68/{n}" for n in CORRUPT_FILES}]
    assert fields and len(rows) == 2
    with (root / "MANIFEST.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for name in CORRUPT_FILES:
        shutil.copyfile(data_dir / "BSD68" / name, root / "BSD68" / name)  # copyfile: writable copy
    return root


def test_checksum_mismatch_names_the_file(tmp_path: Path, data_dir: Path) -> None:
    root = _mini_data_dir(tmp_path / "data", data_dir)
    # Control: the intact copies load.
    assert _ids(_dataset("bsd68", root).images(TEST)) == ["test001", "test002"]
    victim = root / "BSD68" / CORRUPT_FILES[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, mid-file
    victim.write_bytes(bytes(data))
    with pytest.raises(BenchError) as info:
        _dataset("bsd68", root).images(TEST)
    assert CORRUPT_FILES[1] in str(info.value) and "checksum" in str(info.value)


def _write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def astronaut_crop() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[180:212, 200:248])  # (32, 48, 3), varied colours


@pytest.fixture(scope="module")
def camera_crop() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.camera()[100:132, 200:240])  # (32, 40)


def test_truncated_png_is_not_a_readable_image(tmp_path: Path, data_dir: Path, camera_crop: np.ndarray) -> None:
    _write_png(tmp_path / "good.png", camera_crop)
    whole = (data_dir / "BSD68" / "test003.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BenchError) as info:
        _dataset("folder", path=str(tmp_path), channels="1").images(TEST)
    assert "broken.png" in str(info.value) and "not a readable image" in str(info.value)


def test_empty_folder_is_a_bench_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")  # non-image files are ignored
    with pytest.raises(BenchError, match="no image files"):
        _dataset("folder", path=str(tmp_path)).images(TRAIN)


def test_16_bit_image_is_refused(tmp_path: Path) -> None:
    deep = Image.fromarray((np.arange(32 * 32, dtype=np.uint16) * 60).reshape(32, 32))
    assert deep.mode == "I;16"
    deep.save(tmp_path / "deep.png")
    with pytest.raises(BenchError) as info:
        _dataset("folder", path=str(tmp_path), channels="1").images(TEST)
    assert "deep.png: a 16-bit image; denoise-bench reads 8-bit images only" in str(info.value)


def test_missing_image_folder_is_a_bench_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="not found"):
        _dataset("folder", path=str(tmp_path / "nowhere")).images(TEST)


# --- the folder dataset --------------------------------------------------------------------------


def test_folder_uses_train_and_test_subfolders(tmp_path: Path, astronaut_crop: np.ndarray) -> None:
    _write_png(tmp_path / "train" / "a.png", astronaut_crop)
    _write_png(tmp_path / "train" / "b.png", astronaut_crop[::-1])
    _write_png(tmp_path / "test" / "c.png", astronaut_crop[:, ::-1])
    _write_png(tmp_path / "stray.png", astronaut_crop)  # next to the subfolders: not part of a split
    dataset = _dataset("folder", path=str(tmp_path))
    assert _ids(dataset.images(TRAIN)) == ["a", "b"]
    test = dataset.images(TEST)
    assert _ids(test) == ["c"] and np.array_equal(test[0].pixels, astronaut_crop[:, ::-1])


def test_flat_folder_serves_both_splits(tmp_path: Path, astronaut_crop: np.ndarray) -> None:
    _write_png(tmp_path / "z.png", astronaut_crop)
    _write_png(tmp_path / "y.png", astronaut_crop[::-1])
    dataset = _dataset("folder", path=str(tmp_path))
    assert _ids(dataset.images(TRAIN)) == _ids(dataset.images(TEST)) == ["y", "z"]  # sorted by name
    assert dataset.channels == 3


def test_folder_channels_1_converts_colour_with_bt601_luma(tmp_path: Path, astronaut_crop: np.ndarray) -> None:
    _write_png(tmp_path / "colour.png", astronaut_crop)
    (image,) = _dataset("folder", path=str(tmp_path), channels="1").images(TEST)
    assert image.pixels.shape == (*astronaut_crop.shape[:2], 1)
    for r, c in [(0, 0), (7, 30), (31, 47)]:
        red, green, blue = (float(v) for v in astronaut_crop[r, c])
        assert image.pixels[r, c, 0] == int(np.floor(0.299 * red + 0.587 * green + 0.114 * blue + 0.5))


def test_folder_channels_3_replicates_gray(tmp_path: Path, camera_crop: np.ndarray) -> None:
    _write_png(tmp_path / "gray.png", camera_crop)
    (image,) = _dataset("folder", path=str(tmp_path), channels="3").images(TEST)
    assert image.pixels.shape == (*camera_crop.shape, 3)
    assert all(np.array_equal(image.pixels[:, :, k], camera_crop) for k in range(3))


def test_two_folders_are_two_datasets(tmp_path: Path, astronaut_crop: np.ndarray) -> None:
    # Records, tables and shared trained models go by the instance's name and training-set id: two
    # folders named alike would be merged into one row of the leaderboard and share one model.
    for name in ("beach", "city"):
        _write_png(tmp_path / name / "a.png", astronaut_crop)
    beach, city = _dataset("folder", path=str(tmp_path / "beach")), _dataset("folder", path=str(tmp_path / "city"))
    assert (beach.name, city.name) == ("folder:beach", "folder:city")
    assert beach.training_set_id() != city.training_set_id()
    assert get_registry().dataset("folder")(None, path=str(tmp_path / "city"), name="street").name == "folder:street"
    assert type(beach).name == "folder"  # the registry's key is unchanged


def test_a_folder_of_gray_files_is_a_gray_set(tmp_path: Path, data_dir: Path) -> None:
    # Read as colour, each gray image became three identical planes with noise of their own in each: three
    # noisy looks at one image (+2.47 dB for a method over the named bsd68 on the same images).
    for name in ("test001.png", "test002.png"):
        shutil.copy(data_dir / "BSD68" / name, tmp_path / name)
    dataset = _dataset("folder", path=str(tmp_path))
    assert dataset.channels == 1
    named = {image.id: image.pixels for image in _dataset("bsd68", data_dir).images(TEST)}
    for image in dataset.images(TEST):
        assert np.array_equal(image.pixels, named[image.id])  # the very pixels the named set reads


def test_a_run_records_and_shows_how_it_read_each_set(tmp_path: Path, data_dir: Path) -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")
    for name in ("test001.png", "test002.png"):
        shutil.copy(data_dir / "BSD68" / name, tmp_path / name)
    out = tmp_path / "run"
    result = bench("run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--no-progress",
                   "--dataset", "folder", "--dataset-option", f"path={tmp_path}", "--dataset-option", "name=gray",
                   "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["dataset_channels"] == {"folder:gray": 1}
    assert "## folder:gray (gray), trained on gaussian:sigma=25" in (out / "tables" / "psnr.md").read_text()
    assert "test sets: folder:gray (gray)" in result.output  # said before its first job, not only in the tables


def test_a_folder_mixing_gray_and_colour_files_needs_to_be_told_how_to_read_them(
        tmp_path: Path, camera_crop: np.ndarray, astronaut_crop: np.ndarray) -> None:
    _write_png(tmp_path / "test" / "gray.png", camera_crop)
    _write_png(tmp_path / "train" / "colour.png", astronaut_crop)
    with pytest.raises(BenchError) as info:
        _dataset("folder", path=str(tmp_path))
    assert ("mixes gray and colour images (gray.png is gray, colour.png colour); say how to read them: "
            "--dataset-option channels=1") in str(info.value)
    for channels in ("1", "3"):
        dataset = _dataset("folder", path=str(tmp_path), channels=channels)
        assert {image.channels for image in dataset.images(TRAIN) + dataset.images(TEST)} == {int(channels)}


def test_folder_needs_a_path_and_valid_channels(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="path"):
        _dataset("folder")
    with pytest.raises(BenchError, match="channels"):
        _dataset("folder", path=str(tmp_path), channels="2")


# --- channel conversion --------------------------------------------------------------------------


def test_to_channels_round_trips(camera_crop: np.ndarray, astronaut_crop: np.ndarray) -> None:
    gray = to_channels(camera_crop, 1)
    assert gray.shape == (*camera_crop.shape, 1) and np.array_equal(gray[:, :, 0], camera_crop)
    # gray -> colour -> gray is lossless (the luma weights sum to 1).
    assert np.array_equal(to_channels(to_channels(gray, 3), 1), gray)
    assert np.array_equal(to_channels(astronaut_crop, 3), astronaut_crop)
    rgba = np.dstack([astronaut_crop, np.full(astronaut_crop.shape[:2], 7, np.uint8)])
    assert np.array_equal(to_channels(rgba, 3), astronaut_crop)  # alpha is dropped
    with pytest.raises(BenchError):
        to_channels(np.zeros((4, 4, 2), np.uint8), 3)


def test_luma_of_cbsd68_matches_bsd68(data_dir: Path) -> None:
    # Data README: BSD68 testNNN is the BT.601 luma of the NNN-th CBSD68 image in sorted order.
    colour_file = sorted((data_dir / "CBSD68").glob("*.png"))[1]  # 101087.png, which has +-1 rounding diffs
    luma = read_image(colour_file, 1).astype(int)
    gray = read_image(data_dir / "BSD68" / "test002.png", 1).astype(int)
    assert luma.shape == gray.shape
    diff = np.abs(luma - gray)
    assert (diff <= 1).mean() >= 0.99
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
