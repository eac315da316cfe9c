"""Datasets downloaded on first use: manifests, checksums, trust on first use, archives.

A :class:`RemoteSet` is described by a manifest, one row per file: split, path inside the set's
folder, URL, sha256. Files live in ``<data dir>/<folder>/<path>`` when a data directory is given
(``--data-dir`` / ``$DENOISE_BENCH_DATA``), else in ``<cache>/<folder>/<path>`` (the cache is
``$DENOISE_BENCH_CACHE`` or ``~/.cache/denoise-bench``). A file already there with the right
sha256 is used as is; a missing one is fetched by :func:`denoise_bench.download.fetch` (verified,
retried, atomic). Without network the error names the URL and the exact file to put where.

A file that is present but has the wrong sha256 is **refused, never overwritten**: the folder may be
the user's own data directory, and a silently replaced image would change results. Delete the file
to have it downloaded again.

Pinned vs trust-on-first-use
----------------------------
A manifest row with a sha256 pins the file. A row without one (a set whose hashes could not be
checked when it was added) uses **trust on first use** (TOFU): the first time the file is downloaded
(or found in the folder with no record), its sha256 is written to ``<folder>/.sha256``
(``sha256sum`` format: ``sha256sum -c .sha256`` inside the folder checks it). Every later load
verifies against that record, so a file that changes afterwards - on disk or on the server - is
refused. TOFU protects against change, not against a first download that was already wrong; pin the
hashes in the manifest once they have been checked.

Archives
--------
An :class:`ArchiveSet` is published as archives: each is fetched and verified like any manifest file
(pinned or trust on first use), unpacked once into ``<folder>/unpacked/<archive stem>/`` (stamped
with the archive's sha256, so a changed archive is unpacked again) and images are found by a glob.

This is library code shared by dataset plugins (the built-in ``bsd300``, ``kodak24``, ``waterloo``
and ``fmd``, and any third-party set); it registers nothing itself.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import ClassVar

from denoise_bench import download
from denoise_bench.atomic import write_text_atomic
from denoise_bench.data import CleanImage, Dataset
from denoise_bench.errors import BenchError
from denoise_bench.images import read_image

MANIFEST_COLUMNS = ("split", "file", "url", "sha256")
SIDECAR = ".sha256"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a remote set. ``sha256`` None means trust on first use (see the module docstring)."""

    split: str
    path: str  # relative to the set's folder, '/'-separated
    url: str
    sha256: str | None = None

    def __post_init__(self) -> None:
        download.safe_relative(self.path, "manifest path")  # a manifest must not write outside its folder
        if self.sha256 is not None and not download.is_sha256(self.sha256):
            raise BenchError(f"manifest entry {self.path!r}: invalid sha256 {self.sha256!r}")


def read_manifest(name: str, package: str) -> list[RemoteFile]:
    """Parse ``manifests/<name>`` shipped inside the installed ``package`` (CSV: split,file,url,sha256)."""
    resource = resources.files(package).joinpath("manifests", name)
    try:
        text = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise BenchError(f"dataset manifest {name!r} is missing from the installed package ({exc})") from None
    return parse_manifest(text, name)


def parse_manifest(text: str, source: str = "manifest") -> list[RemoteFile]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
        raise BenchError(f"{source}: expected the columns {','.join(MANIFEST_COLUMNS)}, got {reader.fieldnames}")
    return [RemoteFile(row["split"], row["file"], row["url"], row["sha256"].lower() or None) for row in reader]


class RemoteSet(Dataset):
    """A dataset whose files are listed in a manifest and downloaded when missing.

    Subclasses set ``folder`` and either ``manifest_name`` (a CSV in ``manifests/`` of the installed
    package ``manifest_package``, so a plugin package ships its own) or override :meth:`files`.
    Image ids are file stems, in manifest order.
    """

    folder: ClassVar[str] = ""
    manifest_name: ClassVar[str] = ""
    manifest_package: ClassVar[str] = ""  # e.g. "denoise_bench.datasets" for the built-in sets
    # Appended to the error for a split the manifest does not have (e.g. where to train instead).
    missing_split_hint: ClassVar[str] = ""
    # Download policy; tests use a subclass with backoff 0.
    retries: ClassVar[int] = 3
    timeout: ClassVar[float] = 30.0
    backoff: ClassVar[float] = 1.0

    def files(self) -> list[RemoteFile]:
        return read_manifest(self.manifest_name, self.manifest_package)

    def root(self) -> Path:
        return (self.data_dir if self.data_dir is not None else download.cache_dir()) / self.folder

    def check(self, split: str) -> None:
        # Planning time is the right time to download: a failure then costs no training.
        self.ensure(split)

    def load(self, split: str) -> list[CleanImage]:
        return [CleanImage(path.stem, read_image(path, self.channels)) for path in self.ensure(split)]

    def ensure(self, split: str) -> list[Path]:
        """The local, verified files of ``split``, downloading the missing ones."""
        entries = [f for f in self.files() if f.split == split]
        if not entries:
            raise BenchError(f"dataset {self.name!r} has no {split!r} split{self.missing_split_hint}")
        root = self.root()
        recorded = _read_sidecar(root / SIDECAR)
        return [self._ensure_file(entry, root, recorded) for entry in entries]

    def _ensure_file(self, entry: RemoteFile, root: Path, recorded: dict[str, str]) -> Path:
        dest = root / entry.path
        expected = entry.sha256 or recorded.get(entry.path)
        if dest.is_file():
            actual = download.sha256_file(dest)
            if expected is None:
                self._record(root, recorded, entry.path, actual)  # first use of a file placed by hand
            elif actual != expected:
                raise BenchError(self._changed_message(entry, dest, expected, actual, root))
            return dest
        try:
            download.fetch(entry.url, dest, expected, retries=self.retries, timeout=self.timeout, backoff=self.backoff)
        except BenchError as exc:
            raise BenchError(
                f"dataset {self.name!r}: {exc}{self._tofu_note(entry, root, expected)}; every file of this set goes "
                f"under {root}, named as in the manifest"
            ) from None
        if expected is None:
            self._record(root, recorded, entry.path, download.sha256_file(dest))
        return dest

    def _record(self, root: Path, recorded: dict[str, str], path: str, digest: str) -> None:
        recorded[path] = digest
        _write_sidecar(root / SIDECAR, recorded)

    def _changed_message(self, entry: RemoteFile, dest: Path, expected: str, actual: str, root: Path) -> str:
        origin = "pinned in the manifest" if entry.sha256 else f"recorded in {root / SIDECAR} on first use"
        return (
            f"dataset {self.name!r}: {dest} has sha256 {actual}, but {expected} is {origin}: the file was changed "
            f"or corrupted since. Delete it to download it again from {entry.url}"
        )

    def _tofu_note(self, entry: RemoteFile, root: Path, expected: str | None) -> str:
        if entry.sha256:
            return ""
        if expected:
            return (f" (no sha256 is pinned for this file; the one above was recorded in {root / SIDECAR} when it was "
                    f"first downloaded, so the server's copy has changed: remove its line there only if you trust the new file)")
        return f" (trust on first use: its sha256 is recorded in {root / SIDECAR} after the first download and checked on every later load)"


def _read_sidecar(path: Path) -> dict[str, str]:
    """The trust-on-first-use record: ``<sha256>  <path>`` per line, as written by ``sha256sum``."""
    if not path.is_file():
        return {}
    recorded: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or not download.is_sha256(digest) or not name:
            raise BenchError(f"{path}:{number}: expected '<sha256>  <file>', got {line!r}")
        recorded[name] = digest
    return recorded


def _write_sidecar(path: Path, recorded: dict[str, str]) -> None:
    # Written whole and renamed into place, so a crash never leaves a half-written record.
    write_text_atomic(path, "".join(f"{digest}  {name}\n" for name, digest in sorted(recorded.items())))


UNPACKED = "unpacked"
UNPACKED_STAMP = ".archive-sha256"  # inside UNPACKED: the sha256 of the archive it was unpacked from


class ArchiveSet(RemoteSet):
    """A set published as archives; ``members`` maps each split to a glob inside the unpacked archives.

    Each archive of :meth:`files` is unpacked into ``<folder>/unpacked/<archive stem>/``.
    """

    archive: ClassVar[RemoteFile | None] = None  # the one archive of most sets; override files() for several
    members: ClassVar[dict[str, str]] = {}

    def files(self) -> list[RemoteFile]:
        return [self.archive] if self.archive is not None else []

    def unpack_all(self) -> Path:
        """Fetch, verify and unpack every archive (each once); returns the folder they are unpacked in."""
        root = self.root()
        recorded = _read_sidecar(root / SIDECAR)
        for entry in self.files():
            archive = self._ensure_file(entry, root, recorded)
            _unpack_once(archive, root / UNPACKED / PurePosixPath(entry.path).stem)
        return root / UNPACKED

    def ensure(self, split: str) -> list[Path]:
        if split not in self.members:
            raise BenchError(f"dataset {self.name!r} has no {split!r} split{self.missing_split_hint}")
        unpacked = self.unpack_all()
        files = sorted(p for p in unpacked.glob(self.members[split]) if p.is_file())
        if not files:
            raise BenchError(f"dataset {self.name!r}: no file in {unpacked} matches {self.members[split]!r}; "
                             f"are the archives under {self.root()} the right ones?")
        return files


def _unpack_once(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest`` unless ``dest`` already holds this very archive (by sha256)."""
    digest = download.sha256_file(archive)
    stamp = dest / UNPACKED_STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    # Unpack next to the final folder and rename: a kill midway never leaves a half set that looks whole.
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    download.extract(archive, staging)
    (staging / UNPACKED_STAMP).write_text(digest + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
