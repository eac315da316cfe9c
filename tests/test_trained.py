"""Trained checkpoints outside their run: they describe themselves, load anywhere, export to safetensors;
and the Python API (run_benchmark, Benchmark, load_trained) as a user calls it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import denoise_bench
from denoise_bench.checkpoints import load_checkpoint, save_checkpoint
from denoise_bench.errors import BenchError
from denoise_bench.evaluate import make_test_cases
from denoise_bench.noise import resolve_setting
from denoise_bench.plugins import get_registry
from denoise_bench.protocol import get_protocol
from denoise_bench.results import method_label
from denoise_bench.models.trained import build_method

from helpers import bench

NOISE = "gaussian:sigma=25"
CROP = 90  # not a multiple of the U-Net's 32: the denoiser must pad as the evaluator does


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> denoise_bench.Benchmark:
    out = tmp_path_factory.mktemp("api") / "run"
    return denoise_bench.run_benchmark(["unet", "bm3d"], NOISE, "skimage", profile="smoke", out=out,
                                       iterations=2, test_images=1, test_crop=CROP)


def _test_case():
    registry = get_registry()
    image = registry.dataset("skimage")(None).images("test")[0]
    spec = resolve_setting(NOISE, registry.noise_families).tests[0]
    return make_test_cases("skimage", [image], spec, get_protocol("nb2nb"), CROP)[0]


def _checkpoint(bench: denoise_bench.Benchmark) -> Path:
    (path,) = [p for p in (bench.run_dir / "checkpoints").glob("unet__*.pt") if not p.name.endswith(".train.pt")]
    return path


def test_run_benchmark_returns_records_and_tables(bench_run: denoise_bench.Benchmark) -> None:
    assert isinstance(bench_run.records, pd.DataFrame)
    assert set(bench_run.records.method) == {"unet", "bm3d"}
    row = bench_run.tables["psnr"].loc[("skimage", NOISE, NOISE)]
    assert row[method_label("bm3d", oracle=True)] > row["noisy input"]
    again = denoise_bench.Benchmark.read(bench_run.run_dir)
    pd.testing.assert_frame_equal(again.table("ssim"), bench_run.table("ssim"))


def test_run_benchmark_refuses_a_bad_name(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="nosuchmethod"):
        denoise_bench.run_benchmark("nosuchmethod", NOISE, "skimage", profile="smoke", out=tmp_path / "r")


def test_checkpoint_describes_itself(bench_run: denoise_bench.Benchmark) -> None:
    about = load_checkpoint(_checkpoint(bench_run))["about"]
    assert about["method"] == "unet" and about["channels"] == 1 and about["train_noise"] == NOISE
    assert about["budget"]["iterations"] == 2 and about["protocol"] == "nb2nb"
    assert about["package_version"] == denoise_bench.__version__


def test_moved_checkpoint_reproduces_the_runs_score(bench_run: denoise_bench.Benchmark, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "model.pt"
    moved.parent.mkdir()
    shutil.copy(_checkpoint(bench_run), moved)
    denoiser = denoise_bench.load_trained(moved)
    case = _test_case()
    estimate = denoiser(case.noisy)
    assert estimate.shape == case.noisy.shape
    psnr, _ = get_protocol("nb2nb").score(estimate[0], case.clean_u8)
    recorded = bench_run.records[bench_run.records.method == "unet"].psnr.iloc[0]
    assert psnr == pytest.approx(recorded, abs=1e-9)
    # The weights matter: the same network untrained gives another image.
    rng = torch.get_rng_state()
    untrained = build_method(denoiser.about, torch.device("cpu"), get_registry(), "x")
    assert torch.equal(torch.get_rng_state(), rng)  # building leaves the caller's generator alone
    assert not torch.allclose(untrained.denoise(get_protocol("nb2nb").pad(case.noisy, 32, square=True))[..., :CROP, :CROP], estimate)


def test_denoiser_takes_arrays_and_tensors(bench_run: denoise_bench.Benchmark) -> None:
    denoiser = bench_run.denoiser("unet")
    noisy = _test_case().noisy
    as_array = denoiser(noisy[0].permute(1, 2, 0).numpy())
    assert isinstance(as_array, np.ndarray) and as_array.shape == (CROP, CROP, 1)
    np.testing.assert_allclose(as_array[:, :, 0], denoiser(noisy)[0, 0].numpy(), atol=1e-6)
    assert denoiser(noisy[0, 0].numpy()).shape == (CROP, CROP)  # (H, W) in, (H, W) out
    assert denoiser(noisy[0]).shape == noisy[0].shape
    with pytest.raises(BenchError, match="1-channel images; this image has 3"):
        denoiser(np.zeros((40, 40, 3), np.float32))


def test_headerless_checkpoint_says_what_is_missing(bench_run: denoise_bench.Benchmark, tmp_path: Path) -> None:
    state = load_checkpoint(_checkpoint(bench_run))
    del state["about"]
    old = tmp_path / "old.pt"
    save_checkpoint(state, old)
    with pytest.raises(BenchError, match="does not describe itself.*options, channels, budget and training noise"):
        denoise_bench.load_trained(old)


def test_export_to_safetensors_loads_back(bench_run: denoise_bench.Benchmark, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from denoise_bench.cli.commands import main

    out = tmp_path / "unet.safetensors"
    result = CliRunner().invoke(main, ["export", str(bench_run.run_dir), "--method", "unet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() in result.output
    case = _test_case()
    exported = denoise_bench.load_trained(out)
    assert exported.about == bench_run.denoiser("unet").about
    assert torch.equal(exported(case.noisy), denoise_bench.load_trained(_checkpoint(bench_run))(case.noisy))
    for method, message in (("n2n", "did not run 'n2n' (methods there: unet, bm3d)"),
                            ("bm3d", "has no trained 'bm3d' (trained methods there: unet)")):
        missing = CliRunner().invoke(main, ["export", str(bench_run.run_dir), "--method", method, "--out", str(out)])
        assert missing.exit_code == 2 and message in missing.output, missing.output


# --- bench denoise -------------------------------------------------------------------------------

def _noisy_png(folder: Path, channels: int = 1) -> tuple[Path, np.ndarray]:
    """A noisy gray (or colour) image written as an 8-bit PNG, and its clean pixels in [0, 1]."""
    from PIL import Image

    case = _test_case()
    clean = case.clean_u8[0].numpy()
    noisy = np.clip(np.floor(case.noisy[0, 0].numpy() * 255 + 0.5), 0, 255).astype(np.uint8)
    path = folder / ("noisy.png" if channels == 1 else "colour.png")
    Image.fromarray(noisy if channels == 1 else np.stack([noisy] * 3, axis=2)).save(path)
    return path, clean.astype(np.float64) / 255.0


def _bench(*args: str):
    return bench("denoise", *args)


def test_denoise_writes_what_the_trained_method_gives(bench_run: denoise_bench.Benchmark, tmp_path: Path) -> None:
    from PIL import Image

    path, _ = _noisy_png(tmp_path)
    result = _bench(str(path), "--run", str(bench_run.run_dir), "--method", "unet", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    written = np.array(Image.open(tmp_path / "o" / "noisy.png"))
    pixels = np.array(Image.open(path)).astype(np.float32) / 255.0
    expected = np.floor(np.clip(bench_run.denoiser("unet")(pixels), 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(written, expected)
    result = _bench(str(tmp_path), "--run", str(bench_run.run_dir), "--method", "unet", "--out", str(tmp_path / "f"),
                    "--format", "npy")  # a folder in, float out
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "f" / "noisy.npy").dtype == np.float32


def test_denoise_with_bm3d_given_or_estimating_the_level(bench_run: denoise_bench.Benchmark, tmp_path: Path) -> None:
    import tifffile
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    path, clean = _noisy_png(tmp_path)
    noisy = np.array(Image.open(path)) / 255.0
    for extra, said in ((["--sigma", "25"], "sigma 25 (given)"), ([], "(estimated from the image)")):
        out = tmp_path / ("given" if extra else "estimated")
        result = _bench(str(path), "--run", str(bench_run.run_dir), "--method", "bm3d", "--out", str(out),
                        "--format", "tiff", *extra)
        assert result.exit_code == 0 and said in result.output, result.output
        estimate = tifffile.imread(out / "noisy.tif").astype(np.float64)
        assert peak_signal_noise_ratio(clean, estimate, data_range=1) > peak_signal_noise_ratio(clean, noisy, data_range=1) + 3
    level = float(result.output.split("[sigma ")[1].split()[0])
    assert 18 < level < 32  # the image's noise is sigma 25


def test_denoise_errors_name_the_problem(bench_run: denoise_bench.Benchmark, tmp_path: Path) -> None:
    gray, _ = _noisy_png(tmp_path)
    colour, _ = _noisy_png(tmp_path, channels=3)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    run = ["--run", str(bench_run.run_dir), "--out", str(tmp_path / "o")]
    for args, message in (([str(gray), *run, "--method", "n2n"], "did not run 'n2n' (methods there: unet, bm3d)"),
                          ([str(colour), *run, "--method", "unet"], "colour.png has 3 channel(s); unet was trained on 1-channel"),
                          ([str(broken), *run, "--method", "unet"], "broken.png: not a readable image")):
        result = _bench(*args)
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_headerless_checkpoint_in_its_run_folder_is_read_with_the_run_config(bench_run: denoise_bench.Benchmark,
                                                                            tmp_path: Path) -> None:
    from denoise_bench.models.denoise_files import run_denoiser

    old_run = tmp_path / "old-run"
    shutil.copytree(bench_run.run_dir, old_run)
    path = _checkpoint(denoise_bench.Benchmark.read(old_run))
    state = load_checkpoint(path)
    del state["about"]
    save_checkpoint(state, path)
    noisy = _test_case().noisy
    assert torch.equal(run_denoiser(old_run, "unet")(noisy), bench_run.denoiser("unet")(noisy))
    # Exported from its run, it describes itself like a new one.
    from click.testing import CliRunner

    from denoise_bench.cli.commands import main

    out = tmp_path / "old.safetensors"
    result = CliRunner().invoke(main, ["export", str(old_run), "--method", "unet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert torch.equal(denoise_bench.load_trained(out)(noisy), bench_run.denoiser("unet")(noisy))


@pytest.mark.parametrize("command", ["export", "denoise"])
def test_a_checkpoint_holding_another_method_than_its_name_is_refused(bench_run: denoise_bench.Benchmark,
                                                                    tmp_path: Path, command: str) -> None:
    """n2n weights copied over unet's file: asked for unet, nothing else is loaded, exported or run."""
    from click.testing import CliRunner

    from denoise_bench.cli.commands import main

    run = tmp_path / "run"
    shutil.copytree(bench_run.run_dir, run)
    checkpoint = run / "checkpoints" / _checkpoint(bench_run).name
    state = load_checkpoint(checkpoint)
    state["about"]["method"] = "n2n"  # the same network: its weights would load into unet without a word
    save_checkpoint(state, checkpoint)
    noisy, _ = _noisy_png(tmp_path)
    args = {"export": ["export", str(run), "--method", "unet", "--out", str(tmp_path / "unet.safetensors")],
            "denoise": ["denoise", str(noisy), "--run", str(run), "--method", "unet", "--out", str(tmp_path / "o")]}
    result = CliRunner().invoke(main, args[command])
    assert result.exit_code == 2, result.output
    assert f"{checkpoint}: its header says method 'n2n', its file name 'unet'" in result.output
    assert not (tmp_path / "unet.safetensors").exists() and not (tmp_path / "o").exists()


# --- a checkpoint of another run copied into a run folder ------------------------------------------------

@pytest.fixture(scope="module")
def n2v_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs of n2v alike in method, data, noise and seed, trained for 2 and for 1 iteration(s)."""
    folder = tmp_path_factory.mktemp("n2v")
    for name, iterations in (("run", 2), ("other", 1)):
        denoise_bench.run_benchmark("n2v", NOISE, "skimage", profile="smoke", out=folder / name, iterations=iterations,
                                    width=8, test_images=1, test_crop=64)
    return folder / "run", folder / "other"


def _n2v_checkpoint(run: Path) -> Path:
    return run / "checkpoints" / "n2v__skimage__gaussian_sigma=25__seed0.pt"


def _refused(run: Path, command: str, tmp_path: Path) -> str:
    from click.testing import CliRunner

    from denoise_bench.cli.commands import main

    noisy, _ = _noisy_png(tmp_path)
    args = {"export": ["export", str(run), "--method", "n2v", "--out", str(tmp_path / "n2v.safetensors")],
            "denoise": ["denoise", str(noisy), "--run", str(run), "--method", "n2v", "--out", str(tmp_path / "o")]}
    result = CliRunner().invoke(main, args[command])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "n2v.safetensors").exists() and not (tmp_path / "o").exists()
    [line] = result.output.splitlines()
    return line


@pytest.mark.parametrize("command", ["export", "denoise"])
def test_a_checkpoint_of_another_run_with_another_budget_is_refused(n2v_runs: tuple[Path, Path], tmp_path: Path,
                                                                    command: str) -> None:
    """Same method, data, noise and seed, so the file name fits; but it trained 1 iteration, the run 2."""
    run, other = n2v_runs
    copied = tmp_path / "run"
    shutil.copytree(run, copied)
    shutil.copy(_n2v_checkpoint(other), _n2v_checkpoint(copied))
    assert _refused(copied, command, tmp_path) == (
        f"error: {_n2v_checkpoint(copied)}: its header says budget iterations 1, the run's config.json 2: the file "
        "was trained by another run and copied over this one's; nothing was loaded")


@pytest.mark.parametrize(("field", "value", "says"), [
    ("options", {"perc_pix": 1.5, "radius": 3, "strategy": "uniform_withCP"}, "option radius 3, the run's config.json 2"),
    ("channels", 3, "channels 3, the run's config.json 1"),
    ("protocol", "float", "protocol 'float', the run's config.json 'nb2nb'"),
])
def test_a_checkpoint_whose_header_differs_from_the_run_is_refused_naming_the_field(
        n2v_runs: tuple[Path, Path], tmp_path: Path, field: str, value: object, says: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(n2v_runs[0], run)
    state = load_checkpoint(_n2v_checkpoint(run))
    state["about"][field] = value
    save_checkpoint(state, _n2v_checkpoint(run))
    assert _refused(run, "denoise", tmp_path).startswith(f"error: {_n2v_checkpoint(run)}: its header says {says}: ")


def test_an_option_at_a_default_of_another_version_is_not_held_against_its_checkpoint(
        n2v_runs: tuple[Path, Path], tmp_path: Path) -> None:
    """The run gave n2v no options: one that version's default may differ from today's; the file is the run's."""
    from denoise_bench.models.denoise_files import run_denoiser

    run = tmp_path / "run"
    shutil.copytree(n2v_runs[0], run)
    state = load_checkpoint(_n2v_checkpoint(run))
    state["about"]["options"]["radius"] = 3
    state["about"]["package_version"] = "0.0.1"
    save_checkpoint(state, _n2v_checkpoint(run))
    assert run_denoiser(run, "n2v").method.opts["radius"] == 3
