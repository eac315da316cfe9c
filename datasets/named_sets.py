"""The standard sets, read from a data directory (``--data-dir`` or ``$DENOISE_BENCH_DATA``).

The directory holds one folder per set (``BSD68/``, ``Set12/``, ...) and optionally a
``MANIFEST.csv`` with a sha256 per file; when the manifest is present every file is checked against
it, so a corrupt or altered image is refused with its name instead of silently changing a result,
and a folder must hold exactly the images it lists there: one missing, or one it does not list, is
refused too. A folder the manifest does not list must hold its set's number of images
(:data:`SET_SIZES`). Whatever passes, a run records a digest of the test images it scored, so that
two different sets are never ranked under one name (``denoise_bench.run.inputs``).

The BSD300 test split (downloadable) and Kodak24 live in ``remote_sets.py``.

Training splits follow the data README: grayscale sets train on Train400 (no overlap with BSD68 or
Set12); colour CBSD68/Set14 train on the 32 BSD300 test images that are not in CBSD68.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from typing_extensions import override

from denoise_bench.data import MANIFEST, TEST, TRAIN, CleanImage, Dataset, check_image_ids
from denoise_bench.download import sha256_file
from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.images import IMAGE_SUFFIXES, list_images, read_image

# The number of images of each standard folder, which a folder that MANIFEST.csv does not list must hold.
SET_SIZES = {"BSD68": 68, "Set12": 12, "CBSD68": 68, "Set14": 12, "Train400": 400, "BSD300_test": 100}


@lru_cache(maxsize=8)
def _manifest(data_dir: Path) -> dict[str, str]:
    path = data_dir / MANIFEST
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {row["file"]: row["sha256"] for row in csv.DictReader(fh)}


class NamedSet(Dataset):
    """A set stored as ``<data_dir>/<folder>/``; subclasses name the folders of each split."""

    folders: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Images of a folder to leave out of a split (e.g. test images inside a training folder).
    exclude: ClassVar[dict[str, str]] = {}

    def _folder(self, name: str) -> Path:
        if self.data_dir is None:
            raise BenchError(
                f"dataset {self.name!r} needs a data directory: pass --data-dir DIR or set "
                f"DENOISE_BENCH_DATA to a folder that contains {name}/ (no ../shared/data holding {MANIFEST} "
                "was found beside the checkout or the working directory)"
            )
        folder = self.data_dir / name
        if not folder.is_dir():
            # The folder as searched, absolute: a relative data directory says nothing about where it was looked for.
            raise BenchError(f"dataset {self.name!r}: folder {folder.absolute()} not found (the data directory "
                             f"{self.data_dir.absolute()} has no {name}/); pass --data-dir DIR or set "
                             f"DENOISE_BENCH_DATA to the folder that holds {name}/ (without either, the standard "
                             "sets are read from ../shared/data beside the checkout or the working directory)")
        return folder

    def _files(self, split: str) -> list[Path]:
        files: list[Path] = []
        for name in self.folders[split]:
            files.extend(self._complete(name))
        check_image_ids(files, self.name)
        if split in self.exclude:
            excluded = {p.stem for p in list_images(self._folder(self.exclude[split]))}
            files = [f for f in files if f.stem not in excluded]
        return files

    def _complete(self, name: str) -> list[Path]:
        """The images of folder ``name``, refused unless they are exactly those MANIFEST.csv lists under it
        (none missing, none it does not list) or, where it lists none, as many as the set has."""
        files = list_images(self._folder(name))
        assert self.data_dir is not None  # _folder() refuses a set without one
        found = {p.relative_to(self.data_dir).as_posix() for p in files}
        listed = {f for f in _manifest(self.data_dir)
                  if f.startswith(f"{name}/") and Path(f).suffix.lower() in IMAGE_SUFFIXES}
        where = f"dataset {self.name!r} in {self.data_dir}"
        if listed and listed != found:
            missing, extra = sorted(listed - found), sorted(found - listed)
            what = (f"{missing[0]} of {MANIFEST} is missing" if missing else f"{extra[0]} is not in {MANIFEST}")
            more = len(missing) + len(extra) - 1
            raise BenchError(f"{where}: {what}{f' ({more} more file(s) differ)' if more else ''}; {name}/ must hold "
                             f"exactly the images {MANIFEST} lists, or it is another set under the same name")
        if not listed and name in SET_SIZES and len(files) != SET_SIZES[name]:
            raise BenchError(f"{where}: {name}/ holds {len(files)} images, not the {SET_SIZES[name]} of {name}; "
                             f"a set with images missing or added is another set under the same name")
        return files

    @override
    def training_set_id(self) -> str:
        # The folders (and exclusions) fully determine the train split within one data directory.
        folders = "+".join(self.folders[TRAIN])
        return f"{folders}-minus-{self.exclude[TRAIN]}" if TRAIN in self.exclude else folders

    @override
    def check(self, split: str) -> None:
        self._files(split)

    @override
    def load(self, split: str) -> list[CleanImage]:
        manifest = _manifest(self.data_dir) if self.data_dir else {}
        images = []
        for path in self._files(split):
            key = path.relative_to(self.data_dir).as_posix() if self.data_dir else path.name
            expected = manifest.get(key)
            if expected is not None and sha256_file(path) != expected:
                raise BenchError(f"{path}: checksum does not match {MANIFEST} (corrupt or modified file)")
            images.append(CleanImage(path.stem, read_image(path, self.channels)))
        return images


class BSD68(NamedSet):
    name = "bsd68"
    description = "BSD68 gray test set (Roth & Black); trains on Train400"
    channels = 1
    folders = {TRAIN: ("Train400",), TEST: ("BSD68",)}


class Set12(NamedSet):
    name = "set12"
    description = "Set12 gray test set (DnCNN); trains on Train400"
    channels = 1
    folders = {TRAIN: ("Train400",), TEST: ("Set12",)}


class Train400(NamedSet):
    name = "train400"
    description = "Train400 gray training crops (180x180) as both splits, for smoke tests"
    channels = 1
    folders = {TRAIN: ("Train400",), TEST: ("Train400",)}


class CBSD68(NamedSet):
    name = "cbsd68"
    description = "CBSD68 colour test set; trains on the 32 BSD300 test images not in CBSD68"
    channels = 3
    folders = {TRAIN: ("BSD300_test",), TEST: ("CBSD68",)}
    exclude = {TRAIN: "CBSD68"}


class Set14(NamedSet):
    name = "set14"
    description = "Set14 colour (12 images, Neighbor2Neighbor copy); trains like cbsd68"
    channels = 3
    folders = {TRAIN: ("BSD300_test",), TEST: ("Set14",)}
    exclude = {TRAIN: "CBSD68"}


@hookimpl
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    for cls in (BSD68, Set12, CBSD68, Set14, Train400):
        register(cls)
