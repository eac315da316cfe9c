"""Training recipes: each method's official settings, the short-budget rule, and the profiles that pick them."""

from __future__ import annotations

import math

import pytest
import skimage.data
import torch
from torch import nn

from denoise_bench.training import make_optimizer, make_schedule
from denoise_bench.errors import BenchError
from denoise_bench.experiment import run_conditions
from denoise_bench.method import MethodSetup, TrainContext, TrainingInfo
from denoise_bench.methods.b2u import Blind2Unblind
from denoise_bench.methods.iddp import IDDP
from denoise_bench.methods.n2n import Noise2Noise
from denoise_bench.methods.n2v import EPOCHS, PLATEAU_PATIENCE, Noise2Void, PlateauSchedule
from denoise_bench.methods.nb2nb import Neighbor2Neighbor
from denoise_bench.methods.unet import SupervisedUNet
from denoise_bench.migration import upgrade_config
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import WARMUP_FRACTION, Budget, get_profile, method_budget
from denoise_bench.run.runner import RunRequest, plan
from denoise_bench.supervision import NoisePolicy, Supervision, build_view
from denoise_bench.training import train

SMOKE = get_profile("smoke")
CPU = torch.device("cpu")


def _setup(budget: Budget = SMOKE, train_noise: str | None = None, **options: str) -> MethodSetup:
    spec = parse_spec(train_noise, get_registry().noise_families) if train_noise else None
    return MethodSetup(channels=1, budget=budget, seed=0, options=options, training=TrainingInfo(noise=spec))


def _view(supervision: Supervision, side: int = 256):
    image = torch.from_numpy(skimage.data.camera()[:side, :side].copy()).unsqueeze(0)
    spec = parse_spec("gaussian:sigma=25", get_registry().noise_families)
    return build_view(supervision, [image], spec, NoisePolicy.FRESH, CPU, seed=0)


# --- (a) the supervised U-Net and Noise2Noise differ by their target alone -----------------------

def test_unet_and_n2n_share_the_official_noise2noise_recipe() -> None:
    unet, n2n = SupervisedUNet(_setup()), Noise2Noise(_setup())
    for attribute in ("learning_rate", "adam_betas", "weight_decay", "unet_options", "official_budget"):
        assert getattr(unet, attribute) == getattr(n2n, attribute), attribute
    assert n2n.adam_betas == (0.9, 0.99) and n2n.learning_rate == 3e-4
    progress = [i / 100 for i in range(100)]
    assert [unet.lr_factor(t) for t in progress] == [n2n.lr_factor(t) for t in progress]
    assert unet.lr_factor(0.5) == 1.0 and unet.lr_factor(0.85) == pytest.approx(0.25)  # cosine-squared ramp-down
    assert unet.net.config == n2n.net.config
    groups = make_optimizer(unet).param_groups[0], make_optimizer(n2n).param_groups[0]
    assert groups[0]["betas"] == groups[1]["betas"] == (0.9, 0.99)


# --- (b) Neighbor2Neighbor's network sees crops of the budget's size -----------------------------

class _Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.sides: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sides.append((x.shape[-1], torch.is_grad_enabled()))
        return self.conv(x)


def test_nb2nb_cuts_double_crops_so_its_network_trains_on_the_budget_crop() -> None:
    budget = SMOKE.override(crop_size=64, iterations=1, batch_size=1)
    method = Neighbor2Neighbor(_setup(budget))
    assert method.training_crop().side == 128
    method.net = _Recorder()
    train(method, _view(Supervision.NONE), budget, TrainContext())
    assert sorted(method.net.sides) == [(64, True), (128, False)]  # sub-images of 64 with gradient; f(y) on 128


@pytest.mark.parametrize("side, crop", [(None, 256), (300, 256), (256, 256), (180, 128), (64, 64)])
def test_nb2nb_fits_its_double_crop_into_small_training_images(side: int | None, crop: int) -> None:
    # Train400 is 180x180: the cpu profile's 2 x 128 does not fit, the largest crop halving to a
    # multiple of 32 does (128, a 64x64 network input).
    method = Neighbor2Neighbor(MethodSetup(channels=1, budget=SMOKE.override(crop_size=128), training=TrainingInfo(shortest_side=side)))
    assert method.training_crop().side == crop
    assert (method.training_crop().note is None) == (crop == 256)  # the log tells where the crop was fitted


def test_nb2nb_refuses_training_images_too_small_for_any_crop() -> None:
    method = Neighbor2Neighbor(MethodSetup(channels=1, budget=SMOKE.override(crop_size=128), training=TrainingInfo(shortest_side=40)))
    with pytest.raises(BenchError, match="training images of side 40 are too small"):
        method.training_crop()


def test_runner_fits_nb2nb_crops_to_the_training_set(tmp_path) -> None:
    from denoise_bench.run.runner import run
    request = RunRequest(methods=["nb2nb"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         out=tmp_path / "run", progress=False, overrides={"crop_size": 256, "iterations": 1})
    lines: list[str] = []
    result = run(plan(request), echo=lines.append)
    assert result.failed.empty, result.failed.error.tolist()
    assert any(line.startswith("nb2nb: the shortest training image side is") and "cutting 128x128" in line
               for line in lines), lines


def test_other_methods_train_on_the_budget_crop() -> None:
    assert SupervisedUNet(_setup(SMOKE.override(crop_size=64))).training_crop().side == 64


# --- (c) Noise2Void halves its rate on a validation plateau --------------------------------------

def test_plateau_schedule_halves_after_patience_epochs_without_improvement() -> None:
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=4e-4)
    losses = iter([1.0] + [1.0] * 40)
    schedule = PlateauSchedule(optimizer, epoch_steps=3, validation_loss=lambda: next(losses))
    for _ in range(3 * (PLATEAU_PATIENCE + 1)):
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == 4e-4  # patience 10: not yet
    for _ in range(3):
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    restored = PlateauSchedule(optimizer, epoch_steps=3, validation_loss=lambda: 1.0)
    restored.load_state_dict(schedule.state_dict())
    assert restored.steps == schedule.steps and restored.plateau.num_bad_epochs == schedule.plateau.num_bad_epochs


def test_n2v_trains_with_the_plateau_rule_on_fixed_noisy_validation_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = EPOCHS * (PLATEAU_PATIENCE + 3)  # one-step epochs: enough for one halving on a flat loss
    budget = SMOKE.override(iterations=steps, batch_size=1, crop_size=32, width=8)
    method = Noise2Void(_setup(budget))
    monkeypatch.setattr(Noise2Void, "validation_loss", lambda self: 1.0)  # a plateau from the start
    optimizer = make_optimizer(method)
    schedule = make_schedule(method, optimizer, steps, _view(Supervision.NONE))
    assert isinstance(schedule, PlateauSchedule) and schedule.epoch_steps == steps // EPOCHS
    for _ in range(steps):
        schedule.step()
    assert optimizer.param_groups[0]["lr"] < method.learning_rate
    # The validation crops are noisy training crops with masks drawn once: the same every epoch.
    method.draw_validation(_view(Supervision.NONE))
    masked, mask, target = method.validation[0]
    assert mask.any() and not torch.equal(masked[mask], target[mask])


# --- (d) Blind2Unblind's t1 follows the training noise -------------------------------------------

@pytest.mark.parametrize("train_noise,t1", [("gaussian:sigma=25", 0.8), ("poisson:lam=30", 0.8),
                                            ("gaussian:sigma=0-50", 0.4), ("poisson:lam=5-50", 0.4), (None, 0.4)])
def test_b2u_t1_is_the_official_value_for_the_training_noise(train_noise: str | None, t1: float) -> None:
    assert Blind2Unblind(_setup(train_noise=train_noise)).t1 == t1
    assert Blind2Unblind(_setup(train_noise=train_noise, t1="0.6")).t1 == 0.6  # an explicit value wins


# --- (e) the official profile gives each method its published budget -----------------------------

def test_official_profile_gives_each_method_its_own_budget() -> None:
    names = ["nb2nb", "b2u", "n2n", "unet", "iddp", "n2v", "dip"]
    p = plan(RunRequest(methods=names, noises=["gaussian"], datasets=["skimage"], profile="official"))
    got = {name: p.budget_of(get_registry().method(name)) for name in names}
    assert (got["nb2nb"].iterations, got["nb2nb"].batch_size, got["nb2nb"].crop_size) == (1_108_200, 4, 128)
    assert (got["b2u"].iterations, got["b2u"].batch_size, got["b2u"].crop_size) == (1_108_200, 4, 128)
    assert (got["n2n"].iterations, got["n2n"].batch_size, got["n2n"].crop_size) == (300_000, 4, 256)
    assert got["unet"] == got["n2n"]
    assert (got["iddp"].iterations, got["iddp"].batch_size, got["iddp"].crop_size) == (2_000_000, 1, 128)
    assert (got["n2v"].iterations, got["n2v"].batch_size, got["n2v"].crop_size) == (80_000, 128, 64)
    assert got["dip"].per_image_iterations == 3000
    # Outside the official profile every method gets the run's budget; overrides always win.
    quick = plan(RunRequest(methods=names, noises=["gaussian"], datasets=["skimage"], profile="quick"))
    assert {quick.budget_of(get_registry().method(n)) for n in names} == {get_profile("quick")}
    short = plan(RunRequest(methods=["iddp"], noises=["gaussian"], datasets=["skimage"], profile="official",
                            overrides={"iterations": 10}))
    assert short.budget_of(IDDP).iterations == 10 and short.budget_of(IDDP).batch_size == 1


def test_a_plugin_official_budget_with_unknown_fields_is_refused() -> None:
    with pytest.raises(BenchError, match="official_budget may set"):
        method_budget("official", get_profile("official"), {"width": 64}, {})


# --- the short-budget rule -------------------------------------------------------------------------

def test_warmup_cosine_rule_replaces_every_method_schedule_alike() -> None:
    budget = get_profile("cpu").override(iterations=1000, width=8)
    warmup = int(WARMUP_FRACTION * 1000)
    for method_cls in (SupervisedUNet, Noise2Noise, IDDP, Neighbor2Neighbor, Blind2Unblind, Noise2Void):
        method = method_cls(_setup(budget))
        optimizer = make_optimizer(method)
        schedule = make_schedule(method, optimizer, 1000, _view(Supervision(method.supervision)))
        rates = []
        for _ in range(1000):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        peak = method_cls.learning_rate  # the rule keeps each method's own rate as its peak
        assert rates[0] < 0.05 * peak, method_cls.name
        assert max(rates) == pytest.approx(peak) and rates.index(max(rates)) == warmup
        assert rates[-1] < 1e-3 * peak
        assert rates[warmup + 1:] == sorted(rates[warmup + 1:], reverse=True)  # decays monotonically


def test_lr_scale_multiplies_every_method_peak_alike_under_the_short_budget_rule_only() -> None:
    scaled = get_profile("cpu").override(iterations=100, width=8, lr_scale=3.0)
    for method_cls in (SupervisedUNet, IDDP, Noise2Void):
        short = make_optimizer(method_cls(_setup(scaled))).param_groups[0]["lr"]
        official = make_optimizer(method_cls(_setup(scaled.override(lr_rule="official")))).param_groups[0]["lr"]
        assert short == pytest.approx(3.0 * method_cls.learning_rate), method_cls.name
        assert official == pytest.approx(method_cls.learning_rate), method_cls.name
    with pytest.raises(BenchError, match="lr_scale must be a finite number above 0"):
        get_profile("cpu").override(lr_scale=0.0)


def test_pytorch_init_rule_drops_the_scaled_kaiming_initialisation() -> None:
    official = SupervisedUNet(_setup(SMOKE))
    pytorch = SupervisedUNet(_setup(SMOKE.override(init="pytorch")))
    assert not official.net.enc0.bias.any() and pytorch.net.enc0.bias.abs().sum() > 0
    ratio = pytorch.net.enc1.weight.std() / official.net.enc1.weight.std()
    assert 3 < ratio < 30  # the official init scales Kaiming by 0.1


def test_budget_rejects_unknown_rules() -> None:
    with pytest.raises(BenchError, match="unknown learning-rate rule 'linear'; valid: official, warmup-cosine"):
        SMOKE.override(lr_rule="linear")
    with pytest.raises(BenchError, match="unknown initialisation 'xavier'; valid: own, pytorch"):
        SMOKE.override(init="xavier")


def test_the_init_rule_formerly_named_official_reads_as_own() -> None:
    # Run folders and request files from before the rename recorded "official" for each network's own init.
    assert SMOKE.override(init="official").init == "own"
    old, new = _config_with_init("official"), _config_with_init("own")
    assert run_conditions(upgrade_config(old, 1)) == run_conditions(upgrade_config(new, 1))


def _config_with_init(init: str) -> dict:
    return {"format_version": 1, "profile": "cpu", "budget": get_profile("cpu").as_dict() | {"init": init},
            "protocol": {"id": "nb2nb-v1"}}


def test_the_cpu_profile_records_its_rule_in_the_run_config() -> None:
    p = plan(RunRequest(methods=["unet", "bm3d"], noises=["gaussian"], datasets=["skimage"], profile="cpu"))
    assert p.budget.lr_rule == "warmup-cosine" and p.budget.init == "own"
    assert p.budget.crop_size >= 128  # 64x64 crops gave the five-level U-Net a 2x2 bottleneck and biased outputs
    assert math.isclose(get_profile("cpu").iterations, p.budget_of(SupervisedUNet).iterations)


def test_the_training_rule_can_be_overridden_from_the_command_line(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from denoise_bench.cli.commands import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "iddp", "--noise", "gaussian:sigma=25", "--profile", "cpu",
                                       "--iterations", "2", "--test-images", "1", "--width", "8", "--init", "own",
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    budget = json.loads((out / "config.json").read_text())["budget"]
    assert (budget["lr_rule"], budget["init"]) == ("warmup-cosine", "own")
    bad = CliRunner().invoke(main, ["run", "--init", "xavier"])
    assert bad.exit_code == 2 and "'xavier' is not one of 'own', 'pytorch'" in bad.output
