"""bench evaluate: a run's trained models scored on other test sets and noises, without training, into a new
run folder that the leaderboard merges with the trained run."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import denoise_bench
from denoise_bench.cli.commands import main
from denoise_bench.evaluate import make_test_cases
from denoise_bench.report.leaderboard import write_leaderboard
from denoise_bench.noise import resolve_setting
from denoise_bench.plugins import get_registry
from denoise_bench.protocol import get_protocol

CROP = 72  # small and not a multiple of the U-Net's 32: padding as the evaluator pads
KEY = ["method", "image", "test_noise", "repeat"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run that trained unet and n2n on the Gaussian preset (train on the range, test on 25 and the range)."""
    out = tmp_path_factory.mktemp("evaluation") / "trained"
    denoise_bench.run_benchmark(["unet", "n2n", "bm3d"], "gaussian", "skimage", profile="smoke", out=out,
                                iterations=4, test_images=1, test_crop=CROP)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of colour PNGs (skimage's colour samples): read as gray for the gray models."""
    path = tmp_path_factory.mktemp("images")
    for image in get_registry().dataset("skimage-color")(None).images("test")[:2]:
        Image.fromarray(image.pixels).save(path / f"{image.id}.png")
    return path


def _evaluate(*args: str) -> Result:
    return CliRunner().invoke(main, ["evaluate", *args, "--no-progress"])


def _digests(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_the_trained_test_set_gives_the_runs_own_scores(trained: Path, tmp_path: Path) -> None:
    before = _digests(trained)
    out = tmp_path / "again"
    result = _evaluate("--run", str(trained), "--dataset", "skimage", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "left out (per-image, or without trained weights" in result.output and "bm3d" in result.output
    source, again = pd.read_csv(trained / "records.csv"), pd.read_csv(out / "records.csv")
    assert set(again.method) == {"unet", "n2n"}
    merged = source.merge(again, on=KEY, suffixes=("_trained", "_evaluated"))
    assert len(merged) == len(again) == len(source[source.method != "bm3d"])
    np.testing.assert_array_equal(merged.psnr_trained, merged.psnr_evaluated)  # the very weights, not retrained
    np.testing.assert_array_equal(merged.train_seconds_trained, merged.train_seconds_evaluated)
    assert (again.training_set == source.training_set.iloc[0]).all()
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())  # nothing trained
    assert _digests(trained) == before  # nothing written into the trained run


def test_a_run_scored_on_a_few_images_is_scored_on_all_of_them(trained: Path, tmp_path: Path) -> None:
    """--test-images all: every image of the set, the first one's score the trained run's own; the rows stay the
    trained run's experiments (a doubling control pairs them with runs that scored every image)."""
    out = tmp_path / "all"
    result = _evaluate("--run", str(trained), "--dataset", "skimage", "--methods", "unet", "--test-images", "all",
                       "--out", str(out))
    assert result.exit_code == 0, result.output
    source, everything = pd.read_csv(trained / "records.csv"), pd.read_csv(out / "records.csv")
    source = source[source.method == "unet"]
    n_images = len(get_registry().dataset("skimage")(None).images("test"))
    assert source.image.nunique() == 1 < n_images == everything.image.nunique()
    merged = source.merge(everything, on=KEY, suffixes=("_trained", "_evaluated"))
    assert len(merged) == len(source)
    np.testing.assert_array_equal(merged.psnr_trained, merged.psnr_evaluated)
    budgets = [json.loads((run / "config.json").read_text())["budget"] for run in (trained, out)]
    assert budgets[1]["test_images"] is None and budgets[0]["test_images"] == 1
    assert {k: v for k, v in budgets[0].items() if k != "test_images"} == \
        {k: v for k, v in budgets[1].items() if k != "test_images"}
    bad = _evaluate("--run", str(trained), "--dataset", "skimage", "--test-images", "0", "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "neither a positive number of images nor 'all'" in bad.output
    assert not (tmp_path / "bad").exists()


def test_an_evaluation_scores_under_another_protocol(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "paper"
    result = _evaluate("--run", str(trained), "--dataset", "skimage", "--protocol", "paper", "--out", str(out))
    assert result.exit_code == 0, result.output
    source, again = pd.read_csv(trained / "records.csv"), pd.read_csv(out / "records.csv")
    assert set(again.protocol) == {"paper-v1"} and set(source.protocol) == {"nb2nb-v1"}
    # Gray images: the paper's protocol scores them as nb2nb does, on the same noisy draws.
    merged = source.merge(again, on=KEY, suffixes=("_trained", "_evaluated"))
    assert len(merged) == len(again) > 0
    np.testing.assert_array_equal(merged.psnr_trained, merged.psnr_evaluated)
    np.testing.assert_array_equal(merged.floor_psnr_trained, merged.floor_psnr_evaluated)


def test_another_folder_at_another_noise(trained: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "folder"
    result = _evaluate("--run", str(trained), "--dataset", str(folder), "--noise", "gaussian:sigma=50",
                       "--methods", "unet", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "reading the folder's images as gray" in result.output
    records = pd.read_csv(out / "records.csv")
    assert set(records.test_noise) == {"gaussian:sigma=50"} and set(records.train_noise) == {"gaussian:sigma=0-50"}
    assert set(records.method) == {"unet"} and len(records) == 1  # the trained run's budget tests one image
    # The scores are those of the trained checkpoint on the same noisy inputs, loaded by hand.
    (weights,) = [p for p in (trained / "checkpoints").glob("unet__*.pt")]
    denoiser = denoise_bench.load_trained(weights)
    images = get_registry().dataset("folder")(None, path=str(folder), channels="1").images("test")
    spec = resolve_setting("gaussian:sigma=50", get_registry().noise_families).tests[0]
    protocol = get_protocol("nb2nb")
    for case in make_test_cases(f"folder:{folder.name}", images[:1], spec, protocol, CROP):
        psnr, _ = protocol.score(denoiser(case.noisy)[0], case.clean_u8)
        assert records.set_index("image").psnr[case.image_id] == pytest.approx(psnr, abs=1e-9)


def test_the_leaderboard_puts_an_evaluation_beside_its_run(trained: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    assert _evaluate("--run", str(trained), "--dataset", str(folder), "--out", str(out)).exit_code == 0
    # The same experiments: merged without --allow-mismatch, one unet row per (dataset, test noise).
    write_leaderboard([trained, out], tmp_path / "board", allow_mismatch=False, paper=False, html=False, exclude={})
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    unet = board[board.method == "unet"]
    assert set(unet.dataset) == {"skimage", f"folder:{folder.name}"}
    assert len(unet) == 4 and not unet.duplicated(["dataset", "test_noise"]).any()


def test_an_evaluation_writes_its_final_scores_as_tensorboard_events(trained: Path, folder: Path,
                                                                     tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    assert _evaluate("--run", str(trained), "--dataset", str(folder), "--methods", "unet", "--tensorboard",
                     "--out", str(out)).exit_code == 0
    records = pd.read_csv(out / "records.csv")
    (job,) = (out / "tensorboard").iterdir()
    events = EventAccumulator(str(job))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert not any(tag.startswith("train/") for tag in tags)  # loaded, not trained: no loss curve
    for test_noise, rows in records.groupby("test_noise"):
        (point,) = events.Scalars(f"final/psnr/{test_noise}")
        assert point.value == pytest.approx(rows.psnr.mean(), rel=1e-6)


def test_a_per_image_method_runs_beside_the_trained_ones(trained: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "with-bm3d"
    result = _evaluate("--run", str(trained), "--dataset", str(folder), "--methods", "n2n,bm3d",
                       "--noise", "gaussian:sigma=25", "--out", str(out))
    assert result.exit_code == 0, result.output
    records = pd.read_csv(out / "records.csv")
    assert set(records.method) == {"n2n", "bm3d"}
    bm3d = records[records.method == "bm3d"]
    assert (bm3d.psnr > bm3d.input_psnr + 3).all()  # BM3D really ran on these images


def test_an_interrupted_evaluation_resumes(trained: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    args = ["--run", str(trained), "--dataset", str(folder), "--noise", "gaussian:sigma=25", "--out", str(out)]
    assert _evaluate(*args).exit_code == 0
    full = pd.read_csv(out / "records.csv")
    jobs = pd.read_csv(out / "jobs.csv")
    jobs[jobs.method == "unet"].to_csv(out / "jobs.csv", index=False)  # as if killed before n2n's job ended
    full[full.method == "unet"].to_csv(out / "records.csv", index=False)
    resumed = CliRunner().invoke(main, ["run", "--resume", str(out), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert "1 job(s) already finished" in resumed.output
    again = pd.read_csv(out / "records.csv").sort_values(KEY).reset_index(drop=True)
    full = full.sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), full.drop(columns="seconds"))  # seconds: wall time
    replay = CliRunner().invoke(main, ["run", "--config", str(out / "config.json"), "--out", str(tmp_path / "x")])
    assert replay.exit_code == 2 and "records a `bench evaluate`" in replay.output


@pytest.mark.parametrize("args, message", [
    (["--methods", "b2u"], "did not train b2u; it trained unet, n2n"),
    (["--noise", "poisson"], "were trained on gaussian noise only"),
    (["--dataset-option", "channels=3"], "trained gray models for skimage; folder is colour"),
])
def test_what_the_run_cannot_give_is_named(trained: Path, folder: Path, tmp_path: Path, args: list[str],
                                           message: str) -> None:
    result = _evaluate("--run", str(trained), "--dataset", str(folder), "--out", str(tmp_path / "x"), *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "x").exists()  # refused before a folder was made


def test_a_run_without_its_weights_or_an_evaluation_is_refused(trained: Path, folder: Path, tmp_path: Path) -> None:
    copied = tmp_path / "published"
    shutil.copytree(trained, copied, ignore=shutil.ignore_patterns("checkpoints"))
    result = _evaluate("--run", str(copied), "--dataset", str(folder))
    assert result.exit_code == 2 and "has no trained weights to evaluate" in result.output, result.output
    named = _evaluate("--run", str(copied), "--dataset", str(folder), "--methods", "unet")
    assert named.exit_code == 2 and "no trained weights for unet at gaussian:sigma=0-50, seed 0" in named.output
    itself = _evaluate("--run", str(trained), "--dataset", "skimage", "--out", str(trained))
    assert itself.exit_code == 2 and "is the trained run itself" in itself.output
    first = tmp_path / "first"
    assert _evaluate("--run", str(trained), "--dataset", str(folder), "--methods", "unet", "--noise",
                     "gaussian:sigma=25", "--out", str(first)).exit_code == 0
    chained = _evaluate("--run", str(first), "--dataset", "skimage")
    assert chained.exit_code == 2 and "is itself an evaluation of the models of" in chained.output
