"""Real noise (--noise real) and the FMD dataset, on a miniature FMD archive served from 127.0.0.1, and a
plugin's own family of captured noise."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from denoise_bench import hookimpl, plugins
from denoise_bench.cli.commands import main
from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset
from denoise_bench.datasets.fmd import FMD
from denoise_bench.errors import BenchError
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN, NoiseFamily
from denoise_bench.protocol import get_protocol
from denoise_bench.real_noise import RealScene, build_real_view
from denoise_bench.remote_set import RemoteFile
from denoise_bench.supervision import CleanBatch, NoisyBatch, NoisyPairBatch, Supervision
from test_download import Reply, serving
from helpers import DatasetPlugin

KIND = "Confocal_FISH"
SIZE = 64
CAPTURES = 4


def _clean(fov: int) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return (100 + 60 * np.sin(x / (5 + fov)) * np.cos(y / 7)).astype(np.uint8)


def _capture(fov: int, index: int) -> np.ndarray:
    """Capture ``index`` of a FOV: its reference plus a known offset (so tests can tell captures apart)."""
    return _clean(fov) + np.uint8(index)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _fmd_tar() -> bytes:
    """<type>/gt/<fov>/avg50.png and <type>/raw/<fov>/HV..._<k>.png for FOVs 1, 19 (test) and 20."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for fov in (1, 19, 20):
            files = {f"{KIND}/gt/{fov}/avg50.png": _png(_clean(fov))}
            files |= {f"{KIND}/raw/{fov}/HV140_P{index:04d}.png": _png(_capture(fov, index)) for index in range(CAPTURES)}
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _local_fmd(url: str) -> type[FMD]:
    class LocalFMD(FMD):
        name = "fmd-local"
        types_available = {KIND: "unused"}
        retries, timeout, backoff = 1, 5.0, 0.0

        def files(self) -> list[RemoteFile]:
            return [RemoteFile(TRAIN, f"{KIND}.tar", url)]

    return LocalFMD


def test_fmd_splits_follow_the_paper_and_load_offline_once_unpacked(tmp_path: Path) -> None:
    with serving() as server:
        cls = _local_fmd(server.route("/fmd.tar", Reply("ok", _fmd_tar())))
        train = cls(tmp_path, captures="3").real_scenes(TRAIN)
        assert sum(server.hits.values()) == 1
    assert [s.id for s in train] == [f"{KIND}_fov1", f"{KIND}_fov20"]  # FOV 19 is held out
    assert all(len(s.captures) == 3 for s in train)
    assert np.array_equal(train[1].captures[2][..., 0], _capture(20, 2)) and np.array_equal(train[1].clean[..., 0], _clean(20))
    # Offline now: the unpacked archive is reused. The test split is FOV 19; clean images are the references.
    test = cls(tmp_path).real_scenes(TEST)
    assert [s.id for s in test] == [f"{KIND}_fov19"] and len(test[0].captures) == CAPTURES
    assert [im.id for im in cls(tmp_path).images(TEST)] == [f"{KIND}_fov19"]
    with pytest.raises(BenchError, match="unknown type\\(s\\) Confocal_CATS"):
        cls(tmp_path, types="Confocal_CATS").real_scenes(TEST)
    with pytest.raises(BenchError, match="captures='none' must be a positive integer"):
        cls(tmp_path, captures="none").real_scenes(TEST)


def _scenes() -> list[RealScene]:
    return [RealScene(f"fov{fov}", tuple(_capture(fov, k)[..., None] for k in range(CAPTURES)), _clean(fov)[..., None])
            for fov in (1, 20)]


def test_real_views_hand_out_captures_pairs_of_captures_or_references_by_supervision() -> None:
    cpu = torch.device("cpu")
    none = build_real_view(Supervision.NONE, _scenes(), cpu, seed=0).sample(8, 32)
    assert type(none) is NoisyBatch  # a self-supervised method gets captures and nothing else
    pairs = build_real_view(Supervision.NOISY_PAIRS, _scenes(), cpu, seed=0).sample(8, 32)
    assert type(pairs) is NoisyPairBatch
    # Two different captures of one scene at one position: capture k+1 (or 0 after the last) minus capture k.
    step = (pairs.noisy2 - pairs.noisy).mul(255).round().flatten(1)
    assert all(set(row.tolist()) in ({1.0}, {float(1 - CAPTURES)}) for row in step)
    clean = build_real_view(Supervision.CLEAN, _scenes(), cpu, seed=0).sample(8, 32)
    assert type(clean) is CleanBatch
    offsets = (clean.noisy - clean.clean).mul(255).round().flatten(1)
    assert all(len(set(row.tolist())) == 1 and 0 <= row[0] < CAPTURES for row in offsets)


def test_a_real_noise_run_trains_on_captures_tests_on_references_and_skips_oracles(tmp_path: Path) -> None:
    with serving() as server:
        cls = _local_fmd(server.route("/fmd.tar", Reply("ok", _fmd_tar())))
        plugins.get_plugin_manager().register(DatasetPlugin(cls), name="fmd-local")
        plugins.reset_registry()
        out = tmp_path / "run"
        result = CliRunner().invoke(main, ["run", "--methods", "n2n,iddp,bm3d", "--noise", "real", "--dataset", "fmd-local",
                                           "--data-dir", str(tmp_path / "data"), "--profile", "smoke", "--iterations", "2",
                                           "--crop-size", "32", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    jobs = pd.read_csv(out / "jobs.csv").set_index("method")
    assert list(jobs.status) == ["done", "done", "skipped"]
    assert jobs.error["bm3d"].startswith("bm3d has no variance-stabilising treatment for real noise")
    records = pd.read_csv(out / "records.csv")
    assert set(records.test_noise) == {"real"} and set(records.image) == {f"{KIND}_fov19"}
    assert sorted(records[records.method == "n2n"].repeat) == list(range(CAPTURES))  # one record per capture
    # The noisy input's score is that of the capture against the FOV's reference.
    protocol = get_protocol("nb2nb")
    for _, row in records[records.method == "n2n"].iterrows():
        capture = torch.from_numpy(_capture(19, int(row["repeat"]))).float().div(255)[None]
        expected, _ = protocol.score(capture, torch.from_numpy(_clean(19))[None])
        assert row.input_psnr == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("args,message", [
    (["--noise", "real", "--dataset", "skimage"],
     "error: noise 'real' needs a dataset of real noisy captures (e.g. fmd); 'skimage' has clean images only"),
    (["--noise", "real:sigma=3"], "error: noise spec 'real:sigma=3': real takes no parameters"),
])
def test_real_noise_on_the_wrong_dataset_or_with_parameters_is_named(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["run", "--methods", "n2n", *args])
    assert result.exit_code == 2 and result.output.strip() == message


def test_a_method_told_the_noise_level_is_incompatible_with_real_noise() -> None:
    from denoise_bench.noises.real import REAL
    from helpers import Median3

    class Oracle(Median3):
        name = "oracle-median"
        uses_noise_level = True

    assert Oracle.incompatibility(REAL) == "oracle-median is told the true noise level; real noise has none"
    assert Median3.incompatibility(REAL) is None


def _no_sampler(clean: torch.Tensor, levels: dict, generator: torch.Generator) -> torch.Tensor:
    raise AssertionError("captured noise is never drawn")


# Another family of captured noise, registered by a plugin: the runner must handle it like 'real',
# by what the family declares and not by its name.
SENSOR = NoiseFamily(name="sensor", description="a camera's own captures (test plugin)", params=(),
                     sampler=_no_sampler, properties=frozenset({ZERO_MEAN, PIXEL_INDEPENDENT}),
                     preset_train="sensor", preset_tests=("sensor",), captured=True)


class Captures(Dataset):
    """Two scenes per split, each CAPTURES noisy gray captures and a reference, made in memory."""

    name = "captures"
    description = "in-memory captures (test plugin)"
    channels = 1

    def load(self, split: str) -> list[CleanImage]:
        return [CleanImage(scene.id, scene.clean) for scene in self.real_scenes(split)]

    def real_scenes(self, split: str) -> list[RealScene]:
        fovs = (19, 20) if split == TEST else (1, 2)
        return [RealScene(f"{split}{fov}", tuple(_capture(fov, k)[..., None] for k in range(CAPTURES)),
                          _clean(fov)[..., None]) for fov in fovs]


class SensorPlugin:
    @hookimpl
    def register_noise_models(self, register: Callable[[NoiseFamily], None]) -> None:
        register(SENSOR)

    @hookimpl
    def register_datasets(self, register: Callable[[type[Dataset]], None]) -> None:
        register(Captures)


def test_a_plugins_captured_noise_trains_and_tests_on_the_datasets_captures(tmp_path: Path) -> None:
    plugins.get_plugin_manager().register(SensorPlugin(), name="sensor-plugin")
    plugins.reset_registry()
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "n2n", "--noise", "sensor", "--dataset", "captures",
                                       "--profile", "smoke", "--iterations", "2", "--crop-size", "32", "--out", str(out),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    records = pd.read_csv(out / "records.csv")
    assert set(records.test_noise) == {"sensor"} and set(records.image) == {"test19", "test20"}
    assert sorted(records[records.image == "test19"].repeat) == list(range(CAPTURES))  # one record per capture
    refused = CliRunner().invoke(main, ["run", "--methods", "n2n", "--noise", "sensor", "--dataset", "skimage"])
    assert refused.exit_code == 2
    assert refused.output.strip() == ("error: noise 'sensor' needs a dataset of real noisy captures (e.g. fmd); "
                                      "'skimage' has clean images only")
