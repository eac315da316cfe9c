"""Each trained method denoises real images: BSD68 crops, trained on Train400, through the runner.

One short run trains every built-in network method with the same small budget at a fixed Gaussian
sigma=25 and evaluates the centre 128x128 crops of the first three BSD68 images.

300 steps are about 1/7000 of the paper's schedule. With the official 0.1-scaled initialisation
the networks spend their first few hundred steps just learning to reproduce the image level, so the
test multiplies each method's own learning rate by LR_SCALE (schedule shapes and losses unchanged):
the point is that the *loss* teaches denoising, which is what could break.

Measured with exactly this set-up on a 2-core CPU (mean gain over the noisy input, dB; smallest
per-image gain in brackets): iddp 2.31 (0.87), n2n 3.16 (1.94), unet 1.93 (0.44); every method also
raised SSIM on every image. The asserted margins are about two thirds of the means.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from denoise_bench.methods.iddp import IDDP
from denoise_bench.methods.n2n import Noise2Noise
from denoise_bench.methods.unet import SupervisedUNet
from denoise_bench.runner import RunRequest, plan, run

BUDGET = {"iterations": 300, "batch_size": 4, "crop_size": 64, "width": 32, "test_images": 3, "test_crop": 128}
LR_SCALE = 3.0
MARGIN = {"iddp": 1.6, "n2n": 2.0, "unet": 1.3}


@pytest.fixture(scope="module")
def records(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("denoising") / "run"
    request = RunRequest(methods=list(MARGIN), noises=["gaussian:sigma=25"], datasets=["bsd68"], profile="smoke",
                         overrides=BUDGET, data_dir=data_dir, out=out, progress=False)
    with pytest.MonkeyPatch.context() as mp:
        for cls in (IDDP, SupervisedUNet, Noise2Noise):
            mp.setattr(cls, "learning_rate", cls.learning_rate * LR_SCALE)
        result = run(plan(request), echo=lambda _: None)
    assert result.failed.empty, result.failed
    return result.records


@pytest.mark.parametrize("method", sorted(MARGIN))
def test_method_beats_the_noisy_input(records: pd.DataFrame, method: str) -> None:
    rows = records[records.method == method]
    assert len(rows) == BUDGET["test_images"]
    gain = (rows.psnr - rows.input_psnr).mean()
    assert gain > MARGIN[method], f"{method} gains only {gain:.2f} dB over the noisy input"
    assert (rows.ssim > rows.input_ssim).all()
