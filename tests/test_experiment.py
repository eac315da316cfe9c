"""One experiment identity: the leaderboard never averages records of different experiments.

Each test reproduces a merge that ``bench leaderboard`` once made silently: a method at two option
values, the IDDP ablation beside IDDP, Noise2Noise trained on two noises, and one method under two
budgets. The identity itself, resuming and an executor's job use the same definition.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.experiment import Experiment, canonical_options, config_experiments, run_conditions
from denoise_bench.report.leaderboard_merge import experiment_label
from denoise_bench.run.grid import units
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.migration import upgrade_config
from denoise_bench.run.planning import plan, run_config
from denoise_bench.run.request import RunRequest
from denoise_bench.results import CONFIG, RECORDS, write_frame, write_json
from denoise_bench.run.folder import ResultSink, _comparable
from denoise_bench.schema import RECORD_COLUMNS
from denoise_bench.supervision import Supervision
from denoise_bench.run.unit_runner import UnitRunner
from helpers import MethodPlugin, run_folder_config, todays_options

IMAGES = [f"img{i:02d}" for i in range(6)]


class Smooth(Method):
    """A per-image method with an option that changes its numbers: ``iterations`` 3x3 box blurs."""

    name = "smooth"
    description = "repeated 3x3 box blur (test plugin)"
    citation = "test"
    supervision = Supervision.NONE
    trainable = False
    options = {"iterations": 30}

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        x = noisy
        for _ in range(self.opts["iterations"] // 10):  # a tenth of the steps: the test stays fast
            x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
        return x


def _board(tmp_path: Path, *args: str) -> pd.DataFrame:
    out = tmp_path / "board"
    result = CliRunner().invoke(main, ["leaderboard", *args, "--no-html", "--no-paper", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "leaderboard.csv")


def _config(methods: dict[str, dict], **changes: object) -> dict:
    return run_folder_config(methods, **({"budget": {"iterations": 800, "test_images": 6}} | changes))


def _write_run(path: Path, rows: list[dict], config: dict, columns: list[str] = RECORD_COLUMNS) -> Path:
    """A run folder of hand-made records: each row dict gives method, train noise, seed, offset (and options)."""
    records = []
    for spec in rows:
        for i, image in enumerate(IMAGES):
            row = dict.fromkeys(RECORD_COLUMNS) | {
                "run_id": path.name, "protocol": "nb2nb-v1", "profile": "quick", "method": spec["method"],
                "supervision": spec.get("supervision", "none"), "uses_noise_level": False,
                "train_noise": spec.get("train_noise", "gaussian:sigma=0-50"), "test_noise": "gaussian:sigma=25",
                "dataset": "bsd68", "image": image, "repeat": 0, "seed": spec.get("seed", 0),
                "psnr": 25.0 + i * 0.1 + spec.get("offset", 0.0), "ssim": 0.8, "input_psnr": 20.0,
                "input_ssim": 0.4, "seconds": 0.1, "train_seconds": 60.0, "iterations": 800, "device": "cpu",
                "method_options": spec.get("options", ""), "training_set": "train400"}
            records.append({k: row[k] for k in columns})
    path.mkdir(parents=True)
    write_json(path / CONFIG, config)
    write_frame(path / RECORDS, pd.DataFrame(records, columns=columns))
    return path


def test_the_identity_has_one_stable_key_and_reads_options_against_their_defaults() -> None:
    defaults = {"stop_gradient": True, "alpha": 0.001}
    assert canonical_options({"stop_gradient": "false"}, defaults) == "stop_gradient=false"
    assert canonical_options({"stop_gradient": "true", "alpha": "0.001"}, defaults) == ""  # the defaults: no option
    assert canonical_options({"b": "2", "a": "x"}) == "a=x,b=2"  # sorted; kept as written without defaults
    conditions = run_conditions(_config({}))
    a = Experiment("iddp", "", "gaussian:sigma=0-50", "train400", "none", **conditions)
    b = Experiment("iddp", "stop_gradient=false", "gaussian:sigma=0-50", "train400", "none", **conditions)
    assert Experiment.from_key(a.key) == a and a.key != b.key
    assert experiment_label(b) == "iddp [stop_gradient=false]" and b.differences(a) == ["method_options"]


def test_a_method_at_two_option_values_is_two_rows_not_one_of_four_records(tmp_path: Path) -> None:
    """An external method run at 30 and at 100 iterations (seeds 0 and 1) was one row of 4 records."""
    plugins.register_plugin(MethodPlugin(Smooth), name="smooth")
    args = ["run", "--methods", "smooth", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--no-progress"]
    for name, seed, iterations in (("a", "0", "30"), ("b", "1", "100")):
        result = CliRunner().invoke(main, [*args, "--seeds", seed, "--method-option", f"smooth:iterations={iterations}",
                                           "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    records = pd.read_csv(tmp_path / "b" / RECORDS, keep_default_na=False)
    assert set(records.method_options) == {"iterations=100"} and set(records.training_set) == {""}  # trains on nothing
    assert set(pd.read_csv(tmp_path / "a" / RECORDS, keep_default_na=False).method_options) == {""}  # the default
    table = _board(tmp_path, str(tmp_path / "a"), str(tmp_path / "b")).set_index("method")
    assert {"smooth", "smooth [iterations=100]"} <= set(table.index)
    assert table.loc["smooth", "records"] == 2 and table.loc["smooth [iterations=100]", "records"] == 2
    assert table.loc["smooth", "psnr"] != table.loc["smooth [iterations=100]", "psnr"]


def test_the_iddp_ablation_is_a_row_of_its_own_beside_iddp(tmp_path: Path) -> None:
    """``iddp:stop_gradient=false`` and iddp, same seed: refused as one job twice, or averaged across seeds."""
    today, ablation = todays_options("iddp"), todays_options("iddp", stop_gradient="false")
    a = _write_run(tmp_path / "a", [{"method": "iddp", "options": today, "offset": 1.0}], _config({"iddp": {}}))
    b = _write_run(tmp_path / "b", [{"method": "iddp", "options": ablation}], _config({"iddp": {"stop_gradient": "false"}}))
    table = _board(tmp_path, str(a), str(b)).set_index("method")
    assert list(table.index) == ["iddp", "iddp [stop_gradient=false]", "noisy input"]
    assert table.loc["iddp", "psnr"] - table.loc["iddp [stop_gradient=false]", "psnr"] == pytest.approx(1.0, abs=0.01)
    assert set(table.loc[["iddp", "iddp [stop_gradient=false]"], "records"]) == {len(IMAGES)}


def test_records_from_before_options_were_recorded_take_them_from_the_config(tmp_path: Path) -> None:
    old = [c for c in RECORD_COLUMNS if c not in ("method_options", "training_set")]
    a = _write_run(tmp_path / "a", [{"method": "iddp", "seed": 0, "offset": 1.0}], _config({"iddp": {}}, format_version=1),
                   old)
    b = _write_run(tmp_path / "b", [{"method": "iddp", "seed": 1}],
                   _config({"iddp": {"stop_gradient": "false"}}, format_version=1), old)
    table = _board(tmp_path, str(a), str(b)).set_index("method")
    # Made before IDDP's open choices were recorded: read with the defaults of their time.
    former = "beta1=0.9,clamp=false,init=kaiming0.1,network=unet"
    assert list(table.index) == [f"iddp [{former}]", f"iddp [{former},stop_gradient=false]", "noisy input"]


def test_n2n_trained_on_two_noises_is_two_rows_with_their_training_noise(tmp_path: Path) -> None:
    """n2n trained on sigma=25 and on sigma in (0, 50], both tested at 25, was one n2n row."""
    run = _write_run(tmp_path / "a", [
        {"method": "n2n", "supervision": "noisy-pairs", "train_noise": "gaussian:sigma=25", "offset": 0.5},
        {"method": "n2n", "supervision": "noisy-pairs", "train_noise": "gaussian:sigma=0-50"}], _config({"n2n": {}}))
    table = _board(tmp_path, str(run)).set_index("method")
    fixed, ranged = "n2n (trained on gaussian:sigma=25)", "n2n (trained on gaussian:sigma=0-50)"
    assert list(table.index) == [fixed, ranged, "noisy input"]
    assert table.loc[fixed, "train noise"] == "gaussian:sigma=25"
    assert table.loc[ranged, "train noise"] == "gaussian:sigma=0-50"
    assert table.loc[fixed, "records"] == table.loc[ranged, "records"] == len(IMAGES)


def test_a_method_under_two_budgets_is_refused_or_kept_apart_never_averaged(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", [{"method": "unet", "supervision": "clean", "offset": 1.0}], _config({"unet": {}}))
    b = _write_run(tmp_path / "b", [{"method": "unet", "supervision": "clean", "seed": 1}], _config(
        {"unet": {}}, budget={"iterations": 30, "test_images": 6}))
    result = CliRunner().invoke(main, ["leaderboard", str(a), str(b), "--no-html", "--out", str(tmp_path / "refused")])
    assert result.exit_code == 2 and "budget of" in result.output and "allow-mismatch" in result.output
    table = _board(tmp_path, str(a), str(b), "--allow-mismatch").set_index("method")
    assert list(table.index) == ["unet (iterations=800)", "unet (iterations=30)", "noisy input"]
    assert set(table.loc[["unet (iterations=800)", "unet (iterations=30)"], "records"]) == {len(IMAGES)}


def test_resume_compares_experiments_and_reads_older_configs_as_what_they_ran_under(tmp_path: Path) -> None:
    p = plan(RunRequest(methods=["bm3d"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                        out=tmp_path / "run", engine={"precision": "fp32"}))
    config = run_config(p)
    assert [(e.method, e.train_noise) for e in config_experiments(config)] == [("bm3d", "gaussian:sigma=25")]
    # Folders from before engines and per-method budgets were recorded: fp32 eager, the run's budget for all.
    older = {k: v for k, v in config.items() if k not in ("engine", "budgets")} | {"format_version": 1}
    assert config["engine"] == {"precision": "fp32", "channels_last": False, "compile": "off"}
    assert _comparable(upgrade_config(older, 1)) == _comparable(config)
    other = json.loads(json.dumps(config))
    other["methods"][0]["options"] = {"sigma_scale": "2"}
    assert _comparable(other) != _comparable(config)
    other = json.loads(json.dumps(config))
    other["budgets"]["bm3d"]["iterations"] = 1
    assert _comparable(other) != _comparable(config)


def test_an_executor_job_refuses_a_unit_of_another_experiment(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Smooth), name="smooth")
    request = RunRequest(methods=["smooth"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         out=tmp_path / "run", progress=False)
    submitted = units(plan(RunRequest(**{**request.__dict__, "method_options": {"smooth": {"iterations": "100"}}})))[0]
    assert Experiment.from_key(submitted.experiment).method_options == "iterations=100"
    runner = UnitRunner(plan(request), lambda _: None)
    with pytest.raises(BenchError, match="submitted for another experiment .*method_options"):
        runner.run_unit(submitted, ResultSink(tmp_path / "part"), finished=set())
    same = units(plan(request))[0]
    sink = ResultSink(tmp_path / "part")
    runner.run_unit(same, sink, finished=set())
    assert {j["status"] for j in sink.jobs} == {"done"}
    assert not np.isnan(sink.records[0]["psnr"])
