"""The ``bench`` command line and the run folder it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from denoise_bench import plugins
from denoise_bench.method import Method, MethodSetup, TrainContext
from denoise_bench.methods.iddp import IDDP
from denoise_bench.profiles import get_profile
from denoise_bench.results import FLOOR, low_budget_warnings
from denoise_bench.schema import RECORD_COLUMNS
from denoise_bench.supervision import Supervision
from helpers import MethodPlugin, bench



@pytest.mark.parametrize("args,expected", [
    (["--methods", "iddp,nope"], "error: unknown method 'nope'; valid methods: b2u, bm3d, cvf-sid, cvf-sid-oracle, dip, iddp, iddp-sup-start, n2n, n2v, nb2nb, s2s, unet, zsn2n"),
    (["--methods", "nb2b"], "error: unknown method 'nb2b' (did you mean 'nb2nb'?); valid methods: b2u, bm3d, cvf-sid"),
    (["--dataset", "imagenet"], "error: unknown dataset 'imagenet'; valid datasets: bsd300, bsd68, cbsd68, fmd, folder"),
    (["--noise", "laplace"], "error: unknown noise 'laplace'; valid noise families: gaussian, poisson, poisson-gaussian, real, speckle"),
    (["--noise", "gaussian:sigma=-3"], "error: noise spec 'gaussian:sigma=-3': sigma=-3 is out of range [0, 255]"),
    (["--noise", "poisson:lam=0"], "error: noise spec 'poisson:lam=0': lam=0 is out of range (0, 1e+06]"),
    (["--seeds", "one"], "error: --seeds 'one' must be comma-separated integers"),
    (["--method-option", "iddp:alpha"], "error: --method-option 'alpha' is not of the form KEY=VALUE"),
    (["--method-option", "iddp:stop_gradient=maybe"], "error: method 'iddp': option stop_gradient='maybe' is not a valid bool"),
    (["--method-option", "iddp:dropout=0.1"], "error: method 'iddp' has no option(s) dropout; options: alpha, beta, beta1, blur_kernel"),
    (["--checkpoint-every", "-1"], "error: --checkpoint-every must be >= 0, got -1"),
    (["--lr-scale", "inf"], "error: --lr-scale inf: expected a finite number above 0"),
    (["--lr-scale", "nan"], "error: --lr-scale nan: expected a finite number above 0"),
    (["--lr-scale", "0"], "error: --lr-scale 0: expected a finite number above 0"),
    (["--lr-scale", "-2"], "error: --lr-scale -2: expected a finite number above 0"),
    (["--resume", "/nonexistent"], "error: /nonexistent is not a run folder (no config.json)"),
    (["--dataset", "bsd68", "--data-dir", "/nonexistent"], "error: dataset 'bsd68': folder /nonexistent/BSD68 not found"),
])
def test_bad_input_gives_one_line_and_exit_2(args: list[str], expected: str, tmp_path: Path) -> None:
    result = bench("run", "--profile", "smoke", "--no-progress", "--out", str(tmp_path / "r"), *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith(expected), result.output
    assert "Traceback" not in result.output


def test_smoke_run_writes_a_complete_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = bench("run", "--methods", "iddp,unet,n2n,bm3d", "--noise", "gaussian", "--profile", "smoke", "--iterations", "4",
                   "--out", str(out), "--no-progress", "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    records = pd.read_csv(out / "records.csv")
    assert list(records.columns) == RECORD_COLUMNS
    # 4 methods x 2 seeds x 2 test settings x 2 smoke test images, one repeat each
    assert len(records) == 4 * 2 * 2 * 2
    assert set(records.test_noise) == {"gaussian:sigma=25", "gaussian:sigma=0-50"}
    assert set(records.train_noise) == {"gaussian:sigma=0-50"}
    assert set(records.protocol) == {"nb2nb-v1"}
    assert records.psnr.notna().all() and records.ssim.between(-1, 1).all()
    # Every method saw exactly the same noisy test inputs.
    per_method = records.groupby("method")[["noise_seed", "input_psnr", "floor_psnr"]].apply(lambda f: tuple(map(tuple, f.values)))
    assert per_method.nunique() == 1 and records.floor_psnr.notna().all()
    config = json.loads((out / "config.json").read_text())
    assert config["budget"]["iterations"] == 4 and config["protocol"]["id"] == "nb2nb-v1"
    assert config["noise"][0]["tests"] == ["gaussian:sigma=25", "gaussian:sigma=0-50"]
    env = json.loads((out / "environment.json").read_text())
    assert env["device"] == "cpu" and env["versions"]["torch"]
    # Trained methods leave loadable checkpoints, each with its training time; per-image methods none.
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("*.pt"))
    assert len(checkpoints) == 3 * 2 and not any(c.startswith("bm3d") for c in checkpoints)
    timings = {p.stem: json.loads(p.read_text())["train_seconds"] for p in (out / "checkpoints").glob("*.json")}
    assert sorted(f"{t}.pt" for t in timings) == checkpoints and all(t > 0 for t in timings.values())
    state = torch.load(out / "checkpoints" / [c for c in checkpoints if c.startswith("iddp")][0], weights_only=True)
    IDDP(MethodSetup(channels=1, budget=get_profile("smoke").override(iterations=4))).load_state_dict(state)
    # Tables: rows are test settings, columns the noisy input, the floor and each method; bm3d marked as oracle.
    table = pd.read_csv(out / "tables" / "psnr.csv")
    assert list(table["test noise"]) == ["gaussian:sigma=25", "gaussian:sigma=0-50"]
    assert list(table.columns[3:]) == ["noisy input", FLOOR, "iddp", "unet", "n2n", "bm3d†"]
    markdown = (out / "tables" / "psnr.md").read_text()
    assert "| test noise" in markdown and "bm3d†" in markdown
    assert "gaussian:sigma=25" in result.output  # tables printed
    # Four training steps rank nothing, and the tables say so, naming the profile.
    assert markdown.startswith("# PSNR (protocol nb2nb-v1, profile smoke)")
    assert "> **Warning:** smoke profile" in markdown and "**Warning:** smoke profile" in result.output


def test_table_command_rerenders_from_records(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert bench("run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--out", str(out),
                 "--no-progress").exit_code == 0
    (out / "tables" / "psnr.md").unlink()
    records = pd.read_csv(out / "records.csv")
    result = bench("table", str(out))
    assert result.exit_code == 0, result.output
    assert f"{records.psnr.mean():.2f}" in (out / "tables" / "psnr.md").read_text()
    assert bench("table", str(tmp_path / "missing")).exit_code == 2


class Failing(Method):
    name = "failing"
    description = "raises during training (test plugin)"
    citation = "none"
    supervision = Supervision.NONE

    def fit(self, view, context: TrainContext) -> None:
        raise RuntimeError("deliberate failure")

    def denoise(self, noisy, noise=None):
        return noisy


def test_a_failing_method_is_recorded_and_the_grid_goes_on(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Failing), name="failing")
    out = tmp_path / "run"
    result = bench("run", "--methods", "failing,bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--out", str(out),
                   "--no-progress")
    assert result.exit_code == 1
    assert "FAILED failing" in result.output and "1 job(s) failed" in result.output
    jobs = pd.read_csv(out / "jobs.csv")
    assert dict(zip(jobs.method, jobs.status)) == {"failing": "failed", "bm3d": "done"}
    assert "deliberate failure" in jobs.set_index("method").loc["failing", "error"]
    assert set(pd.read_csv(out / "records.csv").method) == {"bm3d"}
    assert "failed" in (out / "tables" / "psnr.md").read_text()


def test_list_shows_descriptions_and_presets() -> None:
    result = bench("list")
    assert result.exit_code == 0
    assert "iddp" in result.output and "Lin et al." in result.output
    assert "preset: train poisson:lam=5-50; test poisson:lam=30; poisson:lam=5-50" in result.output
    assert "supervision=clean" in result.output and "uses noise level" in result.output
    # Each method's published budget, as the official profile trains it, so a user sees its cost before a run.
    assert "official budget (--profile official): 150,000 steps per image" in result.output  # s2s
    assert "100,000 steps of batch 64 on 40x40 crops" in result.output  # cvf-sid
    assert "3,000 steps per image" in result.output  # zsn2n, dip


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    result = bench("run", "--device", "cuda", "--profile", "smoke", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "error: device 'cuda' requested but CUDA is not available here; use --device cpu" in result.output


def test_folder_dataset_runs_end_to_end(tmp_path: Path) -> None:
    import numpy as np
    import skimage.data
    from PIL import Image

    for split, names in {"train": ["brick", "grass"], "test": ["camera"]}.items():
        (tmp_path / "imgs" / split).mkdir(parents=True)
        for name in names:
            Image.fromarray(np.asarray(getattr(skimage.data, name)())[:160, :160]).save(tmp_path / "imgs" / split / f"{name}.png")
    out = tmp_path / "run"
    result = bench("run", "--methods", "iddp", "--noise", "poisson:lam=30", "--dataset", "folder", "--dataset-option",
                   f"path={tmp_path / 'imgs'}", "--dataset-option", "channels=1", "--profile", "smoke", "--iterations", "2",
                   "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    records = pd.read_csv(out / "records.csv")
    assert set(records.image) == {"camera"} and set(records.dataset) == {"folder:imgs"}
    assert set(records.test_noise) == {"poisson:lam=30"}


def test_training_image_smaller_than_the_crop_is_named(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / "imgs" / split).mkdir(parents=True)
    Image.fromarray(np.full((40, 50), 128, np.uint8)).save(tmp_path / "imgs" / "train" / "tiny.png")
    Image.fromarray(np.full((96, 96), 128, np.uint8)).save(tmp_path / "imgs" / "test" / "t.png")
    out = tmp_path / "run"
    result = bench("run", "--methods", "iddp", "--noise", "gaussian:sigma=25", "--dataset", "folder", "--dataset-option",
                   f"path={tmp_path / 'imgs'}", "--dataset-option", "channels=1", "--profile", "smoke", "--out", str(out),
                   "--no-progress")
    assert result.exit_code == 1
    error = pd.read_csv(out / "jobs.csv").error[0]
    assert "training image 'tiny' of 'folder:imgs' is 40x50, smaller than the 64x64 crop" in error


def test_datasets_with_one_training_set_share_one_trained_model(tmp_path: Path, data_dir: Path) -> None:
    """BSD68 and Set12 both train on Train400: one training per method, and the shared model scores
    exactly what a run on Set12 alone trains and scores."""
    common = ["--methods", "n2n", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--iterations", "3",
              "--test-images", "1", "--data-dir", str(data_dir), "--no-progress"]
    both, alone = tmp_path / "both", tmp_path / "alone"
    assert bench("run", "--dataset", "bsd68,set12", "--out", str(both), *common).exit_code == 0
    assert bench("run", "--dataset", "set12", "--out", str(alone), *common).exit_code == 0
    assert [p.name for p in (both / "checkpoints").glob("*.pt")] == ["n2n__Train400__gaussian_sigma=25__seed0.pt"]
    jobs = pd.read_csv(both / "jobs.csv")
    assert list(jobs.dataset) == ["bsd68", "set12"] and set(jobs.status) == {"done"}
    records = pd.read_csv(both / "records.csv")
    assert records.groupby("dataset").train_seconds.first().nunique() == 1  # both carry the one training's cost
    shared = records[records.dataset == "set12"].reset_index(drop=True)
    solo = pd.read_csv(alone / "records.csv")
    pd.testing.assert_series_equal(shared.psnr, solo.psnr)


def _records(profile: str, psnr: float, input_psnr: float, iterations: int = 100) -> pd.DataFrame:
    return pd.DataFrame([{"method": "n2n", "dataset": "set12", "train_noise": "gaussian:sigma=25",
                          "test_noise": "gaussian:sigma=25", "profile": profile, "iterations": iterations,
                          "psnr": psnr, "input_psnr": input_psnr}])


def test_tables_warn_when_a_trained_method_scores_below_its_noisy_input() -> None:
    assert low_budget_warnings(_records("cpu", 29.0, 20.0)) == []
    assert low_budget_warnings(_records("cpu", 19.5, 20.0)) == [
        "n2n scores below its noisy input on set12, gaussian:sigma=25 (19.50 < 20.00 dB): under-trained or broken."]
    assert low_budget_warnings(_records("cpu", 19.5, 20.0, iterations=0)) == []  # a per-image method is not trained
    assert any("quick profile" in w for w in low_budget_warnings(_records("quick", 29.0, 20.0)))
