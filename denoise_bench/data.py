"""The dataset contract: a name, splits, and clean 8-bit images.

Datasets only ever yield *clean* images; noise is added by the runner (for training, through a
supervision-limited view; for testing, with a fixed seed per image and setting).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import reprlib
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from denoise_bench.errors import BenchError

DATA_DIR_ENV = "DENOISE_BENCH_DATA"
# The file that marks a folder of the standard sets (a sha256 per image; see datasets/named_sets.py).
MANIFEST = "MANIFEST.csv"
# Where the standard sets sit when nobody says: a shared/data folder next to the checkout (../shared/data).
SHARED_DATA = Path("shared", "data")
CHECKOUT = Path(__file__).resolve().parents[1]  # the source tree this package runs from (editable installs)
TRAIN, TEST = "train", "test"


@dataclass(frozen=True)
class CleanImage:
    """A clean image: a stable id (file stem) and (H, W, C) uint8 pixels."""

    id: str
    pixels: np.ndarray

    def __post_init__(self) -> None:
        if isinstance(self.id, str):  # another type is refused where a dataset's images are listed
            object.__setattr__(self, "id", readable_name(self.id))

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


def readable_name(name: str) -> str:
    """A name taken from a file name, as its bytes spell it in UTF-8 whatever the locale says.

    Under a C/POSIX locale without UTF-8 mode Python decodes file names as ASCII, keeping each other byte as
    a lone surrogate ('é.png' becomes '\\udcc3\\udca9.png'), which no UTF-8 file (records, digests) can hold;
    an image's id is then the same in every locale, so its records and test noise are too. Bytes that are no
    UTF-8 at all are written as escapes ('\\xe9'), so two such names stay two."""
    if not any("\udc80" <= c <= "\udcff" for c in name):
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def resolve_data_dir(flag: str | Path | None, beside: Sequence[Path] | None = None) -> Path | None:
    """The data directory: ``--data-dir`` (``flag``), else ``$DENOISE_BENCH_DATA``, else the standard sets'
    ``../shared/data`` beside one of ``beside`` (default: the checkout, then the working directory) that holds
    their ``MANIFEST.csv``; None if none. The tests find their data the same way (tests/conftest.py)."""
    value = flag if flag else os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    for place in beside if beside is not None else (CHECKOUT, Path.cwd()):
        # Only a folder that is recognisably the standard sets: any other shared/data is somebody else's.
        candidate = (place.parent / SHARED_DATA).resolve()
        if (candidate / MANIFEST).is_file():
            return candidate
    return None


def check_dataset_options(classes: Sequence[type["Dataset"]], options: Mapping[str, str]) -> None:
    """Refuse a ``--dataset-option`` key that none of ``classes`` reads (``Dataset.option_names``): a
    misspelt key (``chanels=1``) would otherwise be ignored without a word."""
    known = {key for cls in classes for key in cls.option_names}
    unknown = sorted(set(options) - known)
    if not unknown:
        return
    takes = "; ".join(f"{cls.name} takes {', '.join(cls.option_names) or 'none'}" for cls in dict.fromkeys(classes))
    close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise BenchError(f"--dataset-option {', '.join(unknown)}: no dataset of this run reads it ({takes}){hint}")


def repeated(items: Iterable[Hashable]) -> Hashable | None:
    """The first item of ``items`` that was there before, or None if each is there once."""
    seen: set[Hashable] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def images_digest(images: Iterable[tuple[str, Sequence[np.ndarray]]]) -> str:
    """What makes a set of images that set: a sha256 (its first 16 hex digits) over each image's id and the
    shape and bytes of its pixel arrays, in the order of the ids. Two sets share it only if they hold the
    same pictures under the same ids, whatever their files' formats or folders' names."""
    digest = hashlib.sha256()
    for image_id, arrays in sorted(images, key=lambda item: item[0]):
        digest.update(f"{image_id}\0{len(arrays)}\0".encode())
        for array in arrays:
            digest.update(f"{array.shape}{array.dtype}\0".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def check_image_ids(files: Sequence[Path], dataset: str) -> None:
    """Refuse two image files of one id: an image's id is its file name without the suffix (``a.png`` and
    ``a.jpg`` are both ``a``), and records and test noise draws are keyed by it."""
    first: dict[str, Path] = {}
    for path in sorted(files):
        if path.stem in first:
            other = first[path.stem]
            where = f"in {path.parent}" if other.parent == path.parent else f"in {other.parent} and {path.parent}"
            raise BenchError(f"dataset {dataset!r}: {other.name} and {path.name} are both image {path.stem!r} ({where}; "
                             "an image's id is its file name without the suffix): rename or remove one")
        first[path.stem] = path


class Dataset(ABC):
    """Base class for dataset plugins.

    Subclasses set ``name``, ``description`` and ``channels`` (1 gray, 3 colour) and implement
    :meth:`load`. Instances are created by the runner with the data directory (may be None).
    """

    # The registry key. An instance may name itself more exactly (a folder: ``folder:<dir>``); records,
    # tables and noise seeds use the instance's name.
    name: str = ""
    description: ClassVar[str] = ""
    channels: ClassVar[int] = 3
    splits: ClassVar[tuple[str, ...]] = (TRAIN, TEST)
    # The --dataset-option keys it reads; a run whose datasets read none of a given key refuses it.
    option_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data_dir: Path | None = None, **options: str) -> None:
        self.data_dir = data_dir
        self.options = options

    def check(self, split: str) -> None:
        """Raise BenchError now if ``split`` cannot be loaded (missing folder, no data directory).

        Called when a run is planned, so a missing dataset fails before any training starts.
        """

    @abstractmethod
    def load(self, split: str) -> list[CleanImage]:
        """All clean images of ``split``, in a fixed order."""

    def images(self, split: str) -> list[CleanImage]:
        """Checked wrapper around :meth:`load`: known split, at least one image, right channels."""
        if split not in self.splits:
            raise BenchError(f"dataset {self.name!r} has no {split!r} split (it has {', '.join(self.splits)})")
        images = self._loaded(split)
        if not images:
            raise BenchError(f"dataset {self.name!r}: the {split!r} split has no images")
        ids = [image.id for image in images]
        if repeated(ids) is not None:  # records and test noise draws are keyed by the id: one would take the other's
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise BenchError(f"dataset {self.name!r}: the {split!r} split repeats image ids {twice} (records and test "
                             "noise draws are keyed by id: each image needs its own)")
        for image in images:
            if (not isinstance(image.pixels, np.ndarray) or image.pixels.dtype != np.uint8 or image.pixels.ndim != 3
                    or image.channels != self.channels):
                raise BenchError(
                    f"dataset {self.name!r}: image {image.id!r} must be (H, W, {self.channels}) uint8, "
                    f"got {getattr(image.pixels, 'shape', type(image.pixels).__name__)} {getattr(image.pixels, 'dtype', '')}"
                )
        return images

    def checked(self, split: str) -> None:
        """:meth:`check`, what it raises as one error naming the dataset (see :meth:`_loaded`)."""
        try:
            self.check(split)
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(f"{self._who()}: checking its {split!r} split raised {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())}") from exc

    def _who(self) -> str:
        """The dataset as a message names it: with the module of a plugin's class."""
        module = type(self).__module__
        return f"dataset {self.name!r}" + ("" if module.startswith("denoise_bench.") else f" (from {module})")

    def _loaded(self, split: str) -> list[CleanImage]:
        """What :meth:`load` returns, checked to be a list of :class:`CleanImage`; what it raises (a plugin's
        dataset that cannot reach its server, say) as one error naming the dataset, not the run that asked."""
        who = self._who()
        try:
            loaded = self.load(split)
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(f"{who}: loading its {split!r} split raised {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())}") from exc
        if not isinstance(loaded, (list, tuple)):  # a generator would be used up by the first reader
            raise BenchError(f"{who}: load({split!r}) returned a {type(loaded).__name__!r} object, not a list of CleanImage"
                             + (" (return a list of them)" if isinstance(loaded, Iterable) else ""))
        for index, image in enumerate(loaded):
            if not isinstance(image, CleanImage):
                raise BenchError(f"{who}: load({split!r}) returned a {type(image).__name__!r} object "
                                 f"({reprlib.repr(image)}) as its image {index}, not a CleanImage")
            if not isinstance(image.id, str) or not image.id.strip():  # records keep it; a blank one reads as none
                raise BenchError(f"{who}: load({split!r}) returned image {index} with id {image.id!r} "
                                 f"({type(image.id).__name__}); an image's id is a str that is not blank")
        return list(loaded)

    def training_set_id(self) -> str:
        """Names the images of the train split; datasets that return the same id share trained models.

        The runner trains each method once per (training set, noise, seed) and evaluates that model on
        every test set with the same training set (BSD68 and Set12 both train on Train400). The default,
        the dataset's own name, never shares; override it only when the train split really is identical.
        """
        return self.name

    def describe(self) -> str:
        kind = "gray" if self.channels == 1 else "colour"
        return f"{self.description} [{kind}]"
