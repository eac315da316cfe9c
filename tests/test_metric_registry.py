"""Metrics are registered like methods: a plugin's metric is scored, tabled, drawn and ranked beside PSNR and SSIM."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from denoise_bench import hookimpl, plugins
from denoise_bench.report.leaderboard import write_leaderboard
from denoise_bench.metric import Metric
from denoise_bench.registered_metrics import metrics
from denoise_bench.protocol import NB2NB, EvalProtocol
from denoise_bench.results import CURVES, ORACLE_MARK, RECORDS, TABLES, read_records, write_tables
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.schema import CURVE_COLUMNS, RECORD_COLUMNS
from helpers import bench


def _mae(estimate: torch.Tensor, clean: torch.Tensor, protocol: EvalProtocol) -> float:
    return float((estimate - clean).abs().mean())


MAE = Metric("mae", "mean absolute error on the 0-255 scale", _mae, higher_is_better=False, decimals=3)


class MaePlugin:
    @hookimpl
    def register_metrics(self, register: Callable[[Metric], None]) -> None:
        register(MAE)


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_psnr_and_ssim_are_the_first_metrics_and_keep_their_columns() -> None:
    assert [(m.name, m.higher_is_better, m.decimals) for m in metrics()] == [("psnr", True, 2), ("ssim", True, 4)]
    plugins.register_plugin(MaePlugin(), name="mae-plugin")
    assert [m.name for m in metrics()] == ["psnr", "ssim", "mae"]


def test_a_metric_of_a_plugin_reaches_records_tables_curves_and_the_leaderboard(tmp_path: Path) -> None:
    plugins.register_plugin(MaePlugin(), name="mae-plugin")
    run_dir = tmp_path / "run"
    request = RunRequest(methods=["unet", "bm3d"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         out=run_dir, progress=False, eval_every=15,
                         tensorboard=importlib.util.find_spec("tensorboard") is not None)
    result = run(plan(request), echo=lambda _: None)
    assert result.failed.empty, result.failed

    records = pd.read_csv(run_dir / RECORDS)
    # PSNR and SSIM keep their columns where they were; the new metric's follow.
    assert list(records.columns) == RECORD_COLUMNS + ["mae", "input_mae", "floor_mae"]
    case = records[records.method == "bm3d"].iloc[0]
    assert 0 < case.mae < case.floor_mae < case.input_mae  # BM3D beats the box filter, which beats the noise

    table = pd.read_csv(run_dir / TABLES / "mae.csv").set_index("test noise")
    assert table.loc["gaussian:sigma=25", f"bm3d{ORACLE_MARK}"] == round(records[records.method == "bm3d"].mae.mean(), 3)
    assert "# MAE" in (run_dir / TABLES / "mae.md").read_text()

    curves = pd.read_csv(run_dir / CURVES)
    assert list(curves.columns) == CURVE_COLUMNS + ["mae"]
    last = curves[curves.step == curves.step.max()]
    assert last.mae.iloc[0] == pytest.approx(records[records.method == "unet"].mae.mean(), rel=1e-9)

    if request.tensorboard:
        unet = records[records.method == "unet"]
        scalars = _scalars(run_dir / "tensorboard" / "unet__skimage__gaussian_sigma=25__seed0")
        assert set(curves.method) == {"unet"}  # the one method that trains
        assert scalars["curve/mae/gaussian:sigma=25"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in zip(curves.step, curves.mae)]
        assert scalars["final/mae/gaussian:sigma=25"] == [(30, pytest.approx(unet.mae.mean(), rel=1e-6))]

    write_leaderboard([run_dir], tmp_path / "board", html=False)
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("method")
    assert list(board.columns[board.columns.get_loc("psnr"):][:3]) == ["psnr", "ssim", "mae"]
    assert board.loc["unet", "mae"] == round(records[records.method == "unet"].mae.mean(), 3)
    assert board.loc["noisy input", "mae"] == round(records.drop_duplicates("image").input_mae.mean(), 3)
    assert re.search(r"\| +ssim \| +mae \|", (tmp_path / "board" / "leaderboard.md").read_text())

    listing = bench("list").output
    assert "mae" in listing and "lower is better; from 'mae-plugin'" in listing


def test_a_metric_under_a_name_no_column_can_have_is_refused() -> None:
    bad = Metric("input_mae", "clashes with the input's column of a metric mae", _mae)

    class BadPlugin:
        @hookimpl
        def register_metrics(self, register: Callable[[Metric], None]) -> None:
            register(bad)

    plugins.register_plugin(BadPlugin(), name="bad-metric")
    assert [m.name for m in metrics()] == ["psnr", "ssim"]
    assert "not a column name" in str(plugins.get_registry().failures[0])


def test_the_protocol_prepares_what_every_metric_scores() -> None:
    clean = torch.full((1, 16, 16), 100, dtype=torch.uint8)
    estimate = torch.full((1, 16, 16), 2.0)  # clamped to 1.0 -> 255 before any metric sees it
    assert NB2NB.scores(estimate, clean, [MAE]) == {"mae": 155.0}


def test_a_run_scored_before_a_metric_was_installed_renders_as_it_did(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    request = RunRequest(methods=["bm3d"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         out=run_dir, progress=False)
    assert run(plan(request), echo=lambda _: None).failed.empty
    before = write_tables(run_dir)
    write_leaderboard([run_dir], tmp_path / "before", html=False)

    plugins.register_plugin(MaePlugin(), name="mae-plugin")
    assert read_records(run_dir).mae.isna().all()  # read back with the metric's columns, empty
    assert write_tables(run_dir) == before and not (run_dir / TABLES / "mae.csv").exists()
    write_leaderboard([run_dir], tmp_path / "after", html=False)
    for name in ("leaderboard.md", "leaderboard.csv"):
        assert (tmp_path / "after" / name).read_text() == (tmp_path / "before" / name).read_text()


@pytest.mark.parametrize("column", ["seconds", "noise_level", "step", "status"])
def test_a_metric_named_like_a_column_the_suite_writes_is_refused(column: str) -> None:
    # Its scores would be written into (and read back from) the suite's own column: the run's seconds, say.
    clash = Metric(column, "a metric under the name of a record, curve or job column", _mae)

    class ClashPlugin:
        @hookimpl
        def register_metrics(self, register: Callable[[Metric], None]) -> None:
            register(clash)

    plugins.register_plugin(ClashPlugin(), name="clash-metric")
    assert [m.name for m in metrics()] == ["psnr", "ssim"]
    failure = str(plugins.get_registry().failures[0])
    assert "'clash-metric'" in failure and f"metric name {column!r} is already a column of" in failure
