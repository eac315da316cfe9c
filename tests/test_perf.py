"""bench perf: the report's structure on a tiny set-up, and the operation counts behind its bounds.

No timing is asserted here (a busy machine would make that flaky); the timings are what
``bench perf`` records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from denoise_bench.cli.commands import main
from denoise_bench.engine import bf16_matrix_flags
from denoise_bench.host_memory import host_memory_state
from denoise_bench.nets.unet import UNet
from denoise_bench.perf import PerfSettings, count_step

TINY = PerfSettings(methods=("iddp", "nb2nb", "n2v"), batches=(1,), crop=64, width=8, steps=2, rounds=1, eval_size=64)


def test_flop_counter_agrees_with_the_layer_by_layer_count() -> None:
    """2 x multiply-accumulates of every convolution, from its output shape, against torch's counter."""
    net = UNet(3, 3, width=48)
    macs = []

    def count(module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, torch.nn.ConvTranspose2d):  # each input pixel feeds a k-pixel output patch
            macs.append(inputs[0][0, 0].numel() * module.in_channels * module.out_channels * k)
        else:
            macs.append(output[0, 0].numel() * module.in_channels * module.out_channels * k)

    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(count)
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        net(torch.zeros(1, 3, 128, 128))
    assert flops.get_total_flops() == pytest.approx(2 * sum(macs), rel=1e-3)
    assert flops.get_total_flops() / 1e9 == pytest.approx(9.73, abs=0.01)  # colour, 128x128, width 48


def test_iteration_costs_scale_with_the_batch_and_the_method() -> None:
    iddp_1, iddp_ops = count_step("iddp", TINY, 1)
    iddp_2, _ = count_step("iddp", TINY, 2)
    nb2nb_1, _ = count_step("nb2nb", TINY, 1)
    assert iddp_2 == pytest.approx(2 * iddp_1, rel=0.02)  # convolutions dominate, linear in the batch
    # IDDP: two forwards with backward of its three-level network; Nb2Nb: one forward with backward of
    # the shared U-Net on its half-size sub-images (of the crop's size) plus a no-grad forward on its
    # double-size crop. Counted at this size: IDDP 0.60 of Nb2Nb.
    assert 0.45 < iddp_1 / nb2nb_1 < 0.75
    assert iddp_ops > 100  # every conv, activation, optimiser update of a U-Net iteration


def test_bench_perf_writes_a_complete_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["perf", "--batches", "1", "--crop", "64", "--width", "8", "--steps", "2",
                                       "--rounds", "1", "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "perf.json").read_text())
    assert [(r["method"], r["batch"]) for r in report["training"]] == [("iddp", 1), ("nb2nb", 1), ("n2v", 1)]
    for row in report["training"]:
        assert row["iterations_per_s"] > 0 and row["gflop_per_iteration"] > 0 and row["arithmetic_bound_ms"] is None
        assert row["launch_bound_ms"] == pytest.approx(row["operators_per_iteration"] * 0.01)
    assert report["suite_vs_bare"]["ratio"] > 0
    assert report["cpu_bf16_flags"] == bf16_matrix_flags() and report["host_memory"] == host_memory_state()
    text = (tmp_path / "perf.md").read_text()
    assert "ratio **" in text and f"CPU bf16 flags: {', '.join(bf16_matrix_flags()) or 'none'}." in text


def test_bench_perf_puts_the_chosen_engine_beside_fp32(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["perf", "--methods", "n2n", "--batches", "1", "--crop", "32", "--width", "8",
                                       "--steps", "1", "--rounds", "1", "--device", "cpu", "--channels", "1",
                                       "--precision", "bf16", "--channels-last", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "perf.json").read_text())
    assert report["engine"]["precision"] == "bf16" and report["baseline_engine"]["precision"] == "fp32"
    row = report["training"][0]
    assert row["speedup"] == pytest.approx(row["baseline_ms_per_iteration"] / row["ms_per_iteration"])
    assert "Engine comparison" in (tmp_path / "perf.md").read_text()
    plain = CliRunner().invoke(main, ["perf", "--methods", "n2n", "--batches", "1", "--crop", "32", "--width", "8",
                                      "--steps", "1", "--rounds", "1", "--device", "cpu", "--precision", "fp32",
                                      "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert json.loads((tmp_path / "plain" / "perf.json").read_text())["baseline_engine"] is None


def test_bench_perf_refuses_a_method_without_a_network(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["perf", "--methods", "bm3d", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: bench perf times network methods; 'bm3d' is not one" in result.output
