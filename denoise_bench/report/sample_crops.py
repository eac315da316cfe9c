"""Sample crops for the page: the runs' saved crops of one test image (noisy, each method's
restoration, clean) copied beside the page, a 4x nearest-neighbour detail of each crop's centre, and
a caption with the PSNR of that image, gathered into one grid per dataset and test setting.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from denoise_bench.report.plots import oracles
from denoise_bench.results import method_label
from denoise_bench.store.sample_files import CLEAN, NOISY, sample_dir

ZOOM = 4  # the detail shows the central 1/ZOOM of a crop's side, enlarged ZOOM times
ZOOM_DIR = "zoom"  # beside the crops, so that a glob of the crops never picks the details up


@dataclass(frozen=True)
class SampleCell:
    caption: str
    src: str  # the crop, relative to the page
    detail: str  # its centre enlarged ZOOM times, relative to the page
    box: tuple[float, float, float, float]  # the detail's region in the crop: left, top, width, height (fractions)


@dataclass(frozen=True)
class SampleGrid:
    image: str  # the test image the crops are from
    cells: list[SampleCell]


def zoom_detail(crop: Path, target: Path, factor: int = ZOOM) -> tuple[float, float, float, float]:
    """Save the central 1/``factor`` of ``crop``'s side enlarged ``factor`` times, nearest neighbour so that
    pixels stay pixels; returns the region (left, top, width, height) as fractions of the crop."""
    with Image.open(crop) as image:
        width, height = image.size
        w, h = max(1, width // factor), max(1, height // factor)
        left, top = (width - w) // 2, (height - h) // 2
        detail = image.crop((left, top, left + w, top + h)).resize((w * factor, h * factor), Image.Resampling.NEAREST)
    target.parent.mkdir(parents=True, exist_ok=True)
    detail.save(target, format="PNG")
    return left / width, top / height, w / width, h / height


def _found_crops(run_dirs: list[Path], dataset: str, test_noise: str) -> dict[str, Path]:
    """Crop name (noisy, clean, method) -> PNG, from every run that saved some."""
    found: dict[str, Path] = {}
    for run_dir in run_dirs:
        source = sample_dir(run_dir, dataset, test_noise)
        if source.is_dir():
            found.update({p.stem: p for p in sorted(source.glob("*.png"))})
    return found


def _is_image(column: pd.Series, image: str) -> pd.Series:
    """Rows of test image ``image``; records.csv reads numeric-looking ids back as numbers (Set12's "01" as 1)."""
    same = column.astype(str) == image
    if image.isdigit():
        same |= pd.to_numeric(column, errors="coerce") == int(image)
    return same


def _crop_caption(name: str, block: pd.DataFrame, image: str, oracle: set[str]) -> str:
    """e.g. 'bm3d† 29.44 dB': the PSNR of the very image and noise draw the crop is from."""
    same = block[_is_image(block.image, image) & (block.repeat == 0)]
    if name == NOISY and len(same):
        return f"noisy {same.input_psnr.iloc[0]:.2f} dB"
    mine = same[same.method == name]
    return f"{method_label(name, name in oracle)} {mine.psnr.iloc[0]:.2f} dB" if len(mine) else name


def collect_samples(run_dirs: list[Path], records: pd.DataFrame, out: Path) -> dict[tuple[str, str], SampleGrid]:
    """Copy the runs' example crops into ``out`` and make their details; (dataset, test noise) -> grid,
    ordered noisy, methods best first, clean."""
    grids: dict[tuple[str, str], SampleGrid] = {}
    oracle = oracles(records)
    for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
        found = _found_crops(run_dirs, dataset, test_noise)
        if NOISY not in found:
            continue
        markers = [sample_dir(d, dataset, test_noise) / "image.txt" for d in run_dirs]
        image = next((m.read_text(encoding="utf-8").strip() for m in markers if m.is_file()), "")
        ranked = list(block.groupby("method").psnr.mean().sort_values(ascending=False).index)
        # Crops are saved under the method's own name, rows are named by experiment
        # (``dip [width=16]``): a row gets its method's crop unless another row of the same method
        # could have made it, which the crop file cannot tell apart.
        base = dict(zip(block.method, block.base_method)) if "base_method" in block else {}
        shared = {b for b in base.values() if list(base.values()).count(b) > 1}
        files = {NOISY: NOISY, CLEAN: CLEAN} | {n: base.get(n, n) for n in ranked if base.get(n, n) not in shared}
        target = sample_dir(out, dataset, test_noise)
        cells = []
        for name in [n for n in [NOISY, *ranked, CLEAN] if files.get(n) in found]:
            source = found[files[name]]
            target.mkdir(parents=True, exist_ok=True)
            crop = target / source.name
            shutil.copyfile(source, crop)
            box = zoom_detail(crop, target / ZOOM_DIR / crop.name)
            cells.append(SampleCell(_crop_caption(name, block, image, oracle), str(crop.relative_to(out)),
                                    str((target / ZOOM_DIR / crop.name).relative_to(out)), box))
        grids[(dataset, test_noise)] = SampleGrid(image, cells)
    return grids
