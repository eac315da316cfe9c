"""Any folder of images: ``--dataset folder --dataset-option path=DIR`` (train/ and test/ inside, or
one flat folder used for both splits).

Each folder is its own dataset in records, tables and the leaderboard: ``folder:<name>``, where the
name is the folder's own (``--dataset-option name=...`` to choose another). That name is also its
training-set id, so models trained on two folders are never taken for one another.

Its images are read as their files are: a folder of gray files is a gray set, one of colour files a colour
set. Read as colour, a gray image would be three identical planes, each given noise of its own: three
noisy looks at one image, which no gray set gives. A folder mixing the two is refused unless
``--dataset-option channels=1`` (colour files converted to BT.601 luma) or ``channels=3`` (gray files
repeated in three planes) says how to read it; either option converts every file to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typing_extensions import override

from denoise_bench.data import CleanImage, Dataset, check_image_ids
from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.images import image_channels, list_images, read_image


class ImageFolder(Dataset):
    name = "folder"
    description = ("a folder of images, gray or colour as its files are (option path=DIR; train/ and test/ subfolders, "
                   "else the folder itself; name=NAME; channels=1|3 converts every file to gray or colour)")
    option_names = ("path", "channels", "name")

    def __init__(self, data_dir: Path | None = None, **options: str) -> None:
        super().__init__(data_dir, **options)
        if "path" not in options:
            raise BenchError("dataset 'folder' needs a path: --dataset-option path=DIR")
        self.root = Path(options["path"]).expanduser()
        if options.get("channels") is not None:
            if options["channels"] not in ("1", "3"):
                raise BenchError(f"dataset 'folder': channels must be 1 or 3, not {options['channels']!r}")
            self.channels = int(options["channels"])  # type: ignore[misc]
        self.name = f"folder:{options.get('name') or self.root.resolve().name or 'root'}"
        if options.get("channels") is None and self.root.is_dir():  # a missing folder is refused by check()
            self.channels = self._files_channels()  # type: ignore[misc]

    def _files_channels(self) -> int:
        """1 if every image file of the folder's splits is gray, 3 if every one is colour; a BenchError naming
        one of each kind if it holds both (nothing says which to convert to)."""
        kinds: dict[int, Path] = {}
        for split in self.splits:
            folder = self.root / split if (self.root / split).is_dir() else self.root
            for path in list_images(folder):
                kinds.setdefault(image_channels(path), path)
            if len(kinds) > 1:
                raise BenchError(
                    f"dataset {self.name!r}: {self.root} mixes gray and colour images ({kinds[1].name} is gray, "
                    f"{kinds[3].name} colour); say how to read them: --dataset-option channels=1 (colour converted "
                    "to gray, BT.601 luma) or channels=3 (gray repeated in three channels)")
        return next(iter(kinds), 3)

    @override
    def check(self, split: str) -> None:
        if not self.root.is_dir():
            raise BenchError(f"dataset {self.name!r}: {self.root} is not a folder")
        self._files(split)

    @override
    def load(self, split: str) -> list[CleanImage]:
        return [CleanImage(f.stem, read_image(f, self.channels)) for f in self._files(split)]

    def _files(self, split: str) -> list[Path]:
        """The image files of ``split``, each of an id of its own."""
        folder = self.root / split if (self.root / split).is_dir() else self.root
        files = list_images(folder)
        if not files:
            raise BenchError(f"dataset {self.name!r}: no image files in {folder}")
        check_image_ids(files, self.name)
        return files


@hookimpl
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    register(ImageFolder)
