"""IDDP's extensions (warm starts, EMA teacher, clipping, loss weights beyond the paper): each does what it
says, and a row made with any of them is named for it, so that it never reads as the paper's method."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from denoise_bench.errors import BenchError
from denoise_bench.experiment import OURS, canonical_options, row_name
from denoise_bench.filters import box_filter
from denoise_bench.method import MethodSetup, TrainContext
from denoise_bench.methods.iddp import IDDP, IDDPSupervisedStart
from denoise_bench.profiles import get_profile
from denoise_bench.report.leaderboard_merge import name_experiments, with_experiments
from denoise_bench.results import method_labels
from denoise_bench.supervision import CleanBatch, NoisyBatch
from denoise_bench.training import train

SMOKE = get_profile("smoke").override(iterations=8, width=8, crop_size=32)


def iddp(cls: type[IDDP] = IDDP, budget=SMOKE, **options: str) -> IDDP:
    return cls(MethodSetup(channels=1, budget=budget, seed=0, options=options))


def _noisy(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


# --- names --------------------------------------------------------------------------------------------


def test_paper_values_keep_the_paper_s_name_and_extensions_join_it_marked_ours() -> None:
    assert row_name("iddp", canonical_options({}, IDDP.options, IDDP.identity_options), IDDP) == ("iddp", "")
    # the paper's values, given explicitly, are no extension
    assert row_name("iddp", canonical_options({"alpha": "0.001", "ema": "0"}, IDDP.options), IDDP)[0] == "iddp"
    recorded = canonical_options({"ema": "0.999", "clip": "1", "stop_gradient": "false"}, IDDP.options)
    assert row_name("iddp", recorded, IDDP) == ("iddp+ema(0.999)+clip(1.0)" + OURS, "stop_gradient=false")  # in the order of extensions
    recorded = canonical_options({"warm_start": "box3:1000", "alpha": "0.1"}, IDDP.options)
    assert row_name("iddp", recorded, IDDP)[0] == "iddp+warm_start(box3:1000)+alpha(0.1)" + OURS
    # the suite's own variant carries the mark at every value; a method no longer installed keeps its name
    assert row_name("iddp-sup-start", "warm_steps=1000", IDDPSupervisedStart)[0] == "iddp-sup-start" + OURS
    assert row_name("gone", "ema=0.5", None) == ("gone", "ema=0.5")


def _records(options: str) -> pd.DataFrame:
    return pd.DataFrame({"method": ["iddp", "bm3d"], "method_options": [options, ""], "uses_noise_level": [False, True],
                         "supervision": ["none", "none"], "dataset": "bsd68", "test_noise": "gaussian:sigma=25",
                         "train_noise": "gaussian:sigma=0-50", "training_set": "train400", "image": "01", "psnr": 20.0})


def test_run_tables_and_boards_name_an_extended_row_for_its_extensions() -> None:
    extended = canonical_options({"clip": "0.5"}, IDDP.options, IDDP.identity_options)
    assert list(method_labels(_records(extended))) == ["iddp+clip(0.5)" + OURS, "bm3d†"]
    faithful = canonical_options({}, IDDP.options, IDDP.identity_options)
    assert list(method_labels(_records(faithful)))[0] == "iddp"
    named = name_experiments(with_experiments(_records(extended), None))
    assert named.method.iloc[0] == "iddp+clip(0.5)" + OURS


# --- what each does -------------------------------------------------------------------------------------


def test_box3_warm_start_fits_the_anchor_alone_for_its_steps_then_the_paper_s_loss() -> None:
    method = iddp(warm_start="box3:4")
    y = _noisy()
    anchor = F.mse_loss(method.net(y), box_filter(y, 3))
    for step in range(4):
        torch.manual_seed(0)
        assert torch.allclose(method.training_loss(NoisyBatch(y), step / 8), anchor)
    torch.manual_seed(0)
    paper = method.training_loss(NoisyBatch(y), 4 / 8)
    torch.manual_seed(0)
    assert torch.allclose(paper, iddp().training_loss(NoisyBatch(y), 4 / 8))  # the same weights (seeded init)
    assert not torch.allclose(paper, anchor)


def test_supervised_start_fits_the_clean_image_then_the_paper_s_loss_on_the_noisy_one() -> None:
    method = iddp(IDDPSupervisedStart, warm_steps="3")
    assert IDDPSupervisedStart.supervision.value == "clean"  # the runner gives it clean images; iddp never gets them
    y, x = _noisy(0), _noisy(1)
    assert torch.allclose(method.training_loss(CleanBatch(y, x), 2 / 8), F.mse_loss(method.net(y), x))
    torch.manual_seed(0)
    after = method.training_loss(CleanBatch(y, x), 3 / 8)
    torch.manual_seed(0)
    assert torch.allclose(after, iddp().training_loss(NoisyBatch(y), 3 / 8))


def test_ema_teacher_moves_by_its_decay_and_gives_the_prior() -> None:
    method = iddp(ema="0.9")
    y = _noisy()
    method.training_loss(NoisyBatch(y), 0.0)  # the first step: the teacher starts as the network
    start = [p.detach().clone() for p in method.teacher.parameters()]
    with torch.no_grad():
        for p in method.net.parameters():
            p.add_(1.0)
    prior = method.prior(y, method.net(y))
    for before, now in zip(start, method.teacher.parameters()):
        assert torch.allclose(now, before + 0.1, atol=1e-6)  # 0.9 * before + 0.1 * (before + 1)
    assert torch.allclose(prior, method.teacher(y)) and not torch.allclose(prior, method.net(y))
    assert not any(p.requires_grad for p in method.teacher.parameters())


def test_ema_teacher_is_saved_with_the_training_state() -> None:
    method = iddp(ema="0.5")
    method.training_loss(NoisyBatch(_noisy()), 0.0)
    with torch.no_grad():
        next(method.teacher.parameters()).add_(3.0)
    again = iddp(ema="0.5")
    again.load_state_dict(method.state_dict())
    for mine, theirs in zip(again.teacher.parameters(), method.teacher.parameters()):
        assert torch.equal(mine, theirs)


class _ScaledView:
    """A training view of one fixed batch."""

    def __init__(self) -> None:
        self.batch = NoisyBatch(_noisy())

    def sample(self, batch_size: int, crop: int) -> NoisyBatch:
        return self.batch

    def rng_state(self) -> dict:
        return {}

    def set_rng_state(self, state: dict) -> None:
        pass


@pytest.mark.parametrize("clip", [None, 1e-4])
def test_training_loop_clips_the_gradient_norm_before_each_update(monkeypatch: pytest.MonkeyPatch, clip: float | None) -> None:
    norms: list[float] = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for g in self.param_groups
                                                                  for p in g["params"] if p.grad is not None]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    method = iddp(**({"clip": str(clip)} if clip else {}))
    assert method.gradient_clip_norm() == clip
    train(method, _ScaledView(), SMOKE.override(iterations=3), TrainContext())
    assert len(norms) == 3
    if clip:
        assert max(norms) <= clip * 1.0001
    else:
        assert min(norms) > 1e-3  # the unclipped gradient is far above the limit tested


@pytest.mark.parametrize("options, message", [
    ({"warm_start": "box3"}, "warm_start='box3'; valid: none, box3:N"),
    ({"warm_start": "supervised:10"}, "warm_start='supervised:10'"),
    ({"ema": "1"}, "ema is a decay in \\[0, 1\\)"),
    ({"ema": "0.9", "stop_gradient": "false"}, "ema needs stop_gradient=true"),
    ({"clip": "-1"}, "clip is a gradient-norm limit"),
    ({"alpha": "-0.1"}, "alpha must be at least 0"),
])
def test_bad_extension_values_are_refused_by_name(options: dict[str, str], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        iddp(**options)


def test_a_warm_start_as_long_as_the_budget_trains_the_warm_start_alone() -> None:
    # the time probe builds every method on a budget of a few steps: a longer warm start is no error
    method = iddp(warm_start="box3:1000")
    y = _noisy()
    assert torch.allclose(method.training_loss(NoisyBatch(y), 7 / 8), F.mse_loss(method.net(y), box_filter(y, 3)))
    assert iddp(IDDPSupervisedStart).warming(7 / 8)
    with pytest.raises(BenchError, match="warm_steps must be at least 0"):
        iddp(IDDPSupervisedStart, warm_steps="-1")
