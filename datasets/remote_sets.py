"""Named sets that are downloaded on first use: ``bsd300``, ``kodak24`` and ``waterloo``.

How a downloaded set is fetched, verified and unpacked is ``denoise_bench.remote_set``; this module
only describes the sets. Their manifests ship in ``manifests/`` of this package.

``bsd300`` pins every sha256 (``manifests/bsd300.csv``, copied from the data README's
``MANIFEST.csv``: the Neighbor2Neighbor repository at commit e66389e, ``validation/BSD300/test``).

``kodak24`` cannot be pinned here: its hashes could not be checked without network, so the manifest
leaves them empty and the loader trusts each file on first use (see ``denoise_bench.remote_set``).

``waterloo`` (the IDDP paper's training set) is one ~2 GB ``.rar``: unpacking it needs ``bsdtar``
(Debian/Ubuntu: ``libarchive-tools``) or ``unrar``.

``fmd`` (real microscope noise, one tar per image type) is in ``fmd.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from denoise_bench.data import TRAIN, Dataset
from denoise_bench.hookspecs import hookimpl
from denoise_bench.remote_set import ArchiveSet, RemoteFile, RemoteSet

# The installed package the manifests ship in (datasets/ is installed as denoise_bench.datasets).
MANIFEST_PACKAGE = "denoise_bench.datasets"

NO_TRAIN_SPLIT = (
    " (test images only; the IDDP paper trains on the Waterloo Exploration Database): pass --train-dataset, "
    "e.g. --train-dataset cbsd68"
)


class BSD300(RemoteSet):
    name = "bsd300"
    description = "BSD300 test split, 100 colour images (the IDDP paper's test set); downloaded, sha256-pinned, if not in the data directory"
    channels = 3
    folder = "BSD300_test"  # the folder of the standard data directory, so an existing local copy is used as is
    manifest_name = "bsd300.csv"
    manifest_package = MANIFEST_PACKAGE
    missing_split_hint = NO_TRAIN_SPLIT


class Kodak24(RemoteSet):
    name = "kodak24"
    description = "Kodak24, 24 colour images (kodim01-24), downloaded; sha256 trusted on first use"
    channels = 3
    folder = "Kodak24"
    manifest_name = "kodak24.csv"
    manifest_package = MANIFEST_PACKAGE
    missing_split_hint = NO_TRAIN_SPLIT


class Waterloo(ArchiveSet):
    name = "waterloo"
    description = ("Waterloo Exploration Database, 4744 colour images (the IDDP paper's training set; train split "
                   "only): one ~2 GB .rar, downloaded and unpacked once (needs bsdtar or unrar); sha256 trusted on first use")
    channels = 3
    folder = "Waterloo"
    archive = RemoteFile(TRAIN, "exploration_database_and_code.rar",
                         "https://ece.uwaterloo.ca/~k29ma/dataset/exploration_database_and_code.rar")
    members = {TRAIN: "**/pristine_images/*.bmp"}
    missing_split_hint = " (a training set: test on bsd300, kodak24 or cbsd68 with --train-dataset waterloo)"
    timeout = 120.0


@hookimpl
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    for cls in (BSD300, Kodak24, Waterloo):
        register(cls)
