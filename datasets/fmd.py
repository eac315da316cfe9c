"""FMD: the Fluorescence Microscopy Denoising dataset (Zhang et al., CVPR 2019), real microscope noise.

12 image types (microscope x sample: Confocal_BPAE_B ... WideField_BPAE_R), each 20 fields of view
(FOVs) of 50 raw 512x512 gray captures, and a reference per FOV: the average of the 50
(``gt/<fov>/avg50.png``). The noise is the microscopes' own shot and read noise (Poisson-Gaussian).

Splits follow the FMD paper: FOV 19 of every type is the test set, the other 19 FOVs train. With
``--noise real`` the captures are the noisy images (see ``denoise_bench.real_noise``); with a
synthetic noise the references serve as clean images.

The authors publish one tar per type on Google Drive; each is downloaded on first use into the
cache (or found under ``--data-dir``/FMD), its sha256 recorded on first use (the hashes could not be
checked here) and unpacked once. Dataset options: ``types=Confocal_FISH,TwoPhoton_MICE`` (default:
all 12, about 12 GB of archives) and ``captures=N`` (the first N captures per FOV; default 50).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from typing_extensions import override

from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset
from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.images import list_images, read_image
from denoise_bench.real_noise import RealScene
from denoise_bench.remote_set import ArchiveSet, RemoteFile

# Google Drive file ids of the authors' per-type archives (linked from github.com/yinhaoz/denoising-fluorescence).
DRIVE_IDS = {
    "Confocal_BPAE_B": "1juaumcGn5QlFRXRQyrqfbZBhF7oX__iW",
    "Confocal_BPAE_G": "1Zofz11VmI1JfRIMF7rq40RVjpzM6A9vg",
    "Confocal_BPAE_R": "1QoD_vMvFdFg7yREfen3t-SGLFcnLg9YQ",
    "Confocal_FISH": "1SxmsythWfxnfKJfGWpT_7Adebi8jUK98",
    "Confocal_MICE": "11aflcrcatFRkv7EabjWjdlpT0DYRbUDZ",
    "TwoPhoton_BPAE_B": "1yVD_H_ZfNNSma5vtHZM_DTnSv1Bo1tfk",
    "TwoPhoton_BPAE_G": "125nqTfQQG1-YVUs256b2vTwt4aUNCgBt",
    "TwoPhoton_BPAE_R": "1rwxG6LYcKeiBKNT3Oq9lvwKu8mV3rz9P",
    "TwoPhoton_MICE": "1lhsFAlXsXk26yqHzT0_-3R8MUb7G0NVa",
    "WideField_BPAE_B": "19rl8zFzfXIZ2drgodCGutLPLzL4kJq6d",
    "WideField_BPAE_G": "1H67O6GqIkIlQSX-n0vfMWGPwmd4zOHQr",
    "WideField_BPAE_R": "19HXb2Ftrb-M7Lr9ZlHWMcnNT0Sbu85YL",
}
# Drive's direct download endpoint; confirm=t skips the page that warns about files too large to scan.
DRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
FOVS = range(1, 21)
TEST_FOV = 19  # the FMD paper's test field of view
REFERENCE = "avg50.png"


class FMD(ArchiveSet):
    name = "fmd"
    description = ("Fluorescence Microscopy Denoising: real Poisson-Gaussian microscope noise (--noise real), 12 types "
                   "x 20 fields of view x 50 gray 512x512 captures; test on FOV 19; downloaded per type, sha256 "
                   "trusted on first use (options types=..., captures=N)")
    channels = 1
    option_names = ("types", "captures")
    folder = "FMD"
    timeout = 120.0
    types_available: ClassVar[dict[str, str]] = DRIVE_IDS

    def types(self) -> list[str]:
        given = self.options.get("types")
        names = [t.strip() for t in given.split(",") if t.strip()] if given else list(self.types_available)
        unknown = [t for t in names if t not in self.types_available]
        if unknown:
            raise BenchError(f"dataset 'fmd': unknown type(s) {', '.join(unknown)}; types: {', '.join(self.types_available)}")
        return names

    def captures(self) -> int:
        raw = self.options.get("captures", "50")
        if not raw.isdigit() or int(raw) < 1:
            raise BenchError(f"dataset 'fmd': captures={raw!r} must be a positive integer")
        return int(raw)

    @override
    def files(self) -> list[RemoteFile]:
        return [RemoteFile(TRAIN, f"{t}.tar", DRIVE_URL.format(id=self.types_available[t])) for t in self.types()]

    @override
    def ensure(self, split: str) -> list[Path]:
        return [self._reference(base, fov) for _, base, fov in self._fields(split)]

    @override
    def load(self, split: str) -> list[CleanImage]:
        return [CleanImage(scene_id, read_image(self._reference(base, fov), 1)) for scene_id, base, fov in self._fields(split)]

    def real_scenes(self, split: str) -> list[RealScene]:
        scenes = []
        for scene_id, base, fov in self._fields(split):
            folder = base / "raw" / str(fov)
            captures = list_images(folder)[: self.captures()] if folder.is_dir() else []
            if not captures:
                raise BenchError(f"dataset 'fmd': no raw captures in {folder}")
            scenes.append(RealScene(scene_id, tuple(read_image(c, 1) for c in captures),
                                    read_image(self._reference(base, fov), 1)))
        return scenes

    def _fields(self, split: str) -> list[tuple[str, Path, int]]:
        """(scene id, type folder, FOV) of every field of view in ``split``, types in the given order."""
        if split not in (TRAIN, TEST):
            raise BenchError(f"dataset 'fmd' has no {split!r} split (it has train, test)")
        unpacked = self.unpack_all()
        fovs = [TEST_FOV] if split == TEST else [f for f in FOVS if f != TEST_FOV]
        fields: list[tuple[str, Path, int]] = []
        for kind in self.types():
            # The tar holds <type>/{raw,gt,avg2,...}/<fov>/; accept it unpacked with or without that top folder.
            base = next((b for b in (unpacked / kind / kind, unpacked / kind) if (b / "gt").is_dir()), None)
            if base is None:
                raise BenchError(f"dataset 'fmd': {unpacked / kind} has no gt/ folder; is {kind}.tar the FMD archive?")
            fields.extend((f"{kind}_fov{fov}", base, fov) for fov in fovs if (base / "gt" / str(fov)).is_dir())
        return fields

    @staticmethod
    def _reference(base: Path, fov: int) -> Path:
        path = base / "gt" / str(fov) / REFERENCE
        if not path.is_file():
            raise BenchError(f"dataset 'fmd': reference {path} is missing")
        return path


@hookimpl
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    register(FMD)
