"""Noise2Void's blind-spot masking and loss, and Deep Image Prior's per-image fit, checked directly."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from denoise_bench.data import CleanImage
from denoise_bench.engine import Engine
from denoise_bench.errors import BenchError
from denoise_bench.evaluate import evaluate, make_test_cases
from denoise_bench.method import MethodSetup, NoiseInfo
from denoise_bench.methods.dip import Backtracking, DeepImagePrior, fit_to_image
from denoise_bench.methods.n2v import Noise2Void, box_size, masked_mse, n2v_mask
from denoise_bench.nets.hourglass import Hourglass
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import get_profile
from denoise_bench.protocol import NB2NB
from denoise_bench.supervision import NoisyBatch, Supervision, TrainingView

SMOKE = get_profile("smoke")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def position_coded(b: int, c: int, h: int, w: int) -> torch.Tensor:
    """A batch whose every value is distinct and tells where it came from (exact in float64)."""
    return torch.arange(b * c * h * w, dtype=torch.float64).view(b, c, h, w)


# --- Noise2Void: masking ---------------------------------------------------------------------------

def test_box_side_gives_the_requested_percentage() -> None:
    assert box_size(1.5) == 8 and box_size(0.198) == 22  # the library default and the BSD68 notebook


@pytest.mark.parametrize("perc_pix,size", [(1.5, 64), (0.198, 88)])
def test_one_masked_pixel_per_box(perc_pix: float, size: int) -> None:
    box = box_size(perc_pix)
    _, mask = n2v_mask(torch.rand(6, 3, size, size), perc_pix, 2, generator=gen(0))
    per_box = mask.view(6, 3, size // box, box, size // box, box).sum(dim=(3, 5))
    assert (per_box == 1).all()
    assert mask.float().mean().item() * 100 == pytest.approx(perc_pix, rel=0.05)


def test_partial_boxes_at_the_border_lose_the_positions_that_fall_outside() -> None:
    h, w = 60, 70  # 8-pixel boxes: the last row and column of boxes are cut to 4 and 6 pixels
    _, mask = n2v_mask(torch.rand(64, 1, h, w), 1.5, 2, generator=gen(1))
    full = mask[..., :56, :64].reshape(64, 7, 8, 8, 8).sum(dim=(2, 4))
    assert (full == 1).all()
    # Each cut box keeps its position with probability (cut area) / 64, as the reference's dropping gives.
    expected = 7 * 8 + 8 * 4 / 8 + 7 * 6 / 8 + 4 * 6 / 64  # full boxes, bottom row, right column, corner
    assert mask.sum().item() / 64 == pytest.approx(expected, rel=0.015)


def test_positions_are_uniform_in_the_box_and_independent_per_channel_and_patch() -> None:
    _, mask = n2v_mask(torch.rand(64, 3, 64, 64), 1.5, 2, generator=gen(2))
    assert not torch.equal(mask[:, 0], mask[:, 1]) and not torch.equal(mask[0], mask[1])
    # Histogram of the within-box offset over 64 x 3 x 64 boxes: 192 expected per offset, std ~14.
    offsets = mask.view(64, 3, 8, 8, 8, 8).sum(dim=(0, 1, 2, 4))
    assert offsets.min() > 130 and offsets.max() < 260


@pytest.mark.parametrize("strategy", ["uniform_withCP", "uniform_withoutCP"])
def test_replacements_come_from_the_clipped_window_of_the_same_patch_and_channel(strategy: str) -> None:
    b, c, h, w, radius = 32, 3, 48, 48, 2
    y = position_coded(b, c, h, w)
    masked, mask = n2v_mask(y, 1.5, radius, strategy, generator=gen(3))
    assert torch.equal(masked[~mask], y[~mask])
    where = mask.nonzero()
    source = masked[mask].long()
    src_plane, src_row, src_col = source // (h * w), source // w % h, source % w
    assert torch.equal(src_plane, where[:, 0] * c + where[:, 1])
    dy, dx = src_row - where[:, 2], src_col - where[:, 3]
    assert dy.abs().max() == radius and dx.abs().max() == radius
    centre = (dy == 0) & (dx == 0)
    interior = ((where[:, 2:] >= radius) & (where[:, 2:] < h - radius)).all(dim=1)
    if strategy == "uniform_withCP":
        # The centre is one of 25 window pixels: 1/25 = 4 % of ~3000 interior draws (std ~0.35 %).
        assert centre[interior].float().mean().item() == pytest.approx(1 / 25, abs=0.012)
    else:
        assert not centre.any()
    window = torch.stack([dy[interior], dx[interior]], dim=1).unique(dim=0)
    assert len(window) == (25 if strategy == "uniform_withCP" else 24)


def test_blind_spot_hides_a_pixel_from_its_own_prediction() -> None:
    """With uniform_withoutCP the input at a masked pixel never carries that pixel's value, so the
    prediction there is unchanged while its target moves; with uniform_withCP it sometimes does."""
    y = torch.rand(1, 1, 64, 64, generator=gen(4))
    masked, mask = n2v_mask(y, 1.5, 2, "uniform_withoutCP", generator=gen(5))
    net = Noise2Void(MethodSetup(channels=1, budget=SMOKE.override(width=8))).net.eval()
    hidden = 0
    for p in mask[0, 0].nonzero().tolist():
        y2 = y.clone()
        y2[0, 0, p[0], p[1]] += 1.0
        masked2, mask2 = n2v_mask(y2, 1.5, 2, "uniform_withoutCP", generator=gen(5))
        assert torch.equal(mask2, mask)
        changed = masked2 != masked
        assert not changed[0, 0, p[0], p[1]] and not (changed & ~mask).any()
        if changed.any():
            continue  # another masked pixel copied p's value; its input differs elsewhere
        hidden += 1
        if hidden <= 5:  # the whole network input is unchanged, so the prediction is too; the loss is not
            with torch.no_grad():
                assert torch.equal(net(masked2), net(masked))
                assert masked_mse(net(masked2), y2, mask) != masked_mse(net(masked), y, mask)
    assert hidden > 40

    leaked = 0
    for seed in range(20):
        masked, mask = n2v_mask(y, 1.5, 2, "uniform_withCP", generator=gen(seed))
        leaked += int((masked[mask] == y[mask]).sum())
    assert leaked > 0  # "with central pixel": the reference sometimes keeps the value itself


# --- Noise2Void: loss, normalisation, state ------------------------------------------------------

def test_masked_mse_depends_only_on_masked_pixels() -> None:
    target = torch.rand(2, 3, 16, 16)
    _, mask = n2v_mask(target, 1.5, 2, generator=gen(6))
    prediction = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss = masked_mse(prediction, target, mask)
    loss.backward()
    assert (prediction.grad[~mask] == 0).all() and (prediction.grad[mask] != 0).all()
    assert loss.item() == pytest.approx(((prediction - target)[mask] ** 2).mean().item())
    with torch.no_grad():
        moved = prediction + 10.0 * (~mask)
    assert masked_mse(moved, target, mask).item() == loss.item()


def _n2v(channels: int = 1, **options: str) -> Noise2Void:
    return Noise2Void(MethodSetup(channels=channels, budget=SMOKE.override(width=8), options=options))


def test_training_loss_is_the_masked_mse_of_the_normalised_blind_spot_input() -> None:
    method = _n2v(strategy="uniform_withoutCP", radius="3")
    method.mean, method.std = torch.full((1, 1, 1, 1), 0.4), torch.full((1, 1, 1, 1), 0.2)
    y = torch.rand(2, 1, 64, 64, generator=gen(7))
    torch.manual_seed(8)
    loss = method.training_loss(NoisyBatch(y), 0.0)
    torch.manual_seed(8)
    z = (y - 0.4) / 0.2
    masked, mask = n2v_mask(z, 1.5, 3, "uniform_withoutCP")
    with torch.no_grad():
        expected = ((method.net(masked) - z)[mask] ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


class _FakeView(TrainingView):
    """Noisy crops with known per-channel mean and standard deviation."""

    def __init__(self, means: list[float], stds: list[float]) -> None:
        g = gen(9)
        m, s = torch.tensor(means).view(1, -1, 1, 1), torch.tensor(stds).view(1, -1, 1, 1)

        def draw(batch_size: int, crop_size: int) -> NoisyBatch:
            return NoisyBatch(m + s * torch.randn(batch_size, len(means), crop_size, crop_size, generator=g))

        super().__init__(Supervision.NONE, len(means), 1, torch.device("cpu"), draw, dict, lambda state: None)


def test_normalisation_uses_noisy_training_statistics_and_is_saved() -> None:
    method = _n2v(channels=3)
    method.estimate_normalisation(_FakeView([0.2, 0.5, 0.7], [0.1, 0.3, 0.05]))
    assert method.mean.flatten().tolist() == pytest.approx([0.2, 0.5, 0.7], abs=0.005)
    assert method.std.flatten().tolist() == pytest.approx([0.1, 0.3, 0.05], rel=0.02)

    restored = _n2v(channels=3)
    restored.load_state_dict(method.state_dict())
    assert torch.equal(restored.mean, method.mean) and torch.equal(restored.std, method.std)
    state = method.state_dict()
    del state["normalisation"]
    with pytest.raises(BenchError, match="normalisation"):
        restored.load_state_dict(state)

    y = torch.rand(1, 3, 32, 32)
    method.net = nn.Identity()
    assert torch.allclose(method.denoise(y), y, atol=1e-6)  # de-normalised with the same statistics
    method.net = ZeroNet()
    assert torch.allclose(method.denoise(y), method.mean.expand_as(y))


class ZeroNet(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_n2v_refuses_settings_without_a_blind_spot() -> None:
    with pytest.raises(BenchError, match="unknown strategy"):
        _n2v(strategy="median")
    with pytest.raises(BenchError, match="radius"):
        _n2v(radius="0")


# --- Deep Image Prior ------------------------------------------------------------------------------

def test_hourglass_has_the_official_size_and_a_sigmoid_output() -> None:
    assert sum(p.numel() for p in Hourglass(32, 3, 128).parameters()) == 2_217_831
    out = Hourglass(32, 3, 16)(torch.randn(1, 32, 64, 96) * 10)
    assert out.shape == (1, 3, 64, 96) and out.min() > 0 and out.max() < 1
    for bad in [(64, 80), (32, 64)]:
        with pytest.raises(ValueError, match="multiples of 32 and at least 64"):
            Hourglass(32, 1, 8)(torch.zeros(1, 32, *bad))


def _dip(seed: int = 0, iterations: int = 4, **options: str) -> DeepImagePrior:
    options = {"width": "8"} | options
    return DeepImagePrior(MethodSetup(channels=1, budget=SMOKE.override(per_image_iterations=iterations),
                                      seed=seed, options=options))


def _noisy(seed: int) -> torch.Tensor:
    clean = torch.from_numpy(skimage.data.camera()[200:264, 200:264].astype(np.float32) / 255)[None, None]
    return clean + 25 / 255 * torch.randn(clean.shape, generator=gen(seed))


def test_dip_estimate_is_a_function_of_the_noisy_image_and_the_seed_only() -> None:
    noisy = _noisy(0)
    rng = torch.get_rng_state()
    first = _dip(seed=1).denoise(noisy)
    assert torch.equal(torch.get_rng_state(), rng)  # seeded locally; the global stream is untouched
    torch.manual_seed(123)  # whatever the global state, the same answer
    assert torch.equal(_dip(seed=1).denoise(noisy), first)
    info = NoiseInfo(parse_spec("gaussian:sigma=25", get_registry().noise_families), {"sigma": 25.0})
    assert torch.equal(_dip(seed=1).denoise(noisy, info), first)  # the noise level is not used
    assert not torch.equal(_dip(seed=2).denoise(noisy), first)
    assert not torch.equal(_dip(seed=1).denoise(_noisy(1)), first)
    assert first.shape == noisy.shape and not first.requires_grad and 0 < first.min() and first.max() < 1


class _Spy(DeepImagePrior):
    """Records what the evaluator passes to denoise and how often the network runs."""

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        self.calls: list[tuple[torch.Tensor, NoiseInfo | None]] = []
        self.forwards = 0

    def build_net(self, channels: int) -> nn.Module:
        net = super().build_net(channels)
        net.register_forward_hook(lambda *_: setattr(self, "forwards", self.forwards + 1))
        return net

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        self.calls.append((noisy.clone(), noise))
        return super().denoise(noisy, noise)


def test_dip_receives_only_the_padded_noisy_image_and_runs_its_budget() -> None:
    spec = parse_spec("gaussian:sigma=25", get_registry().noise_families)
    image = CleanImage("camera", skimage.data.camera()[100:180, 150:230, None].copy())  # 80 x 80
    cases = make_test_cases("camera", [image], spec, NB2NB)
    spy = _Spy(MethodSetup(channels=1, budget=SMOKE.override(per_image_iterations=7), options={"width": "8"}))
    record = next(evaluate(spy, cases, NB2NB, torch.device("cpu")))
    (received, info), = spy.calls
    assert info is None
    assert torch.equal(received, NB2NB.pad(cases[0].noisy, 32, square=True)) and received.shape[-2:] == (96, 96)
    assert spy.forwards == 7  # one forward pass per iteration, none after (the estimate is the average)
    assert np.isfinite(record["psnr"])


def test_estimate_is_the_exponential_average_of_the_outputs() -> None:
    torch.manual_seed(0)
    net = Hourglass(4, 1, 8)
    outputs: list[torch.Tensor] = []
    net.register_forward_hook(lambda module, args, out: outputs.append(out.detach().clone()))
    z = torch.rand(1, 4, 64, 64)
    estimate = fit_to_image(net, _noisy(0), z, 5, lr=0.01, reg_noise_std=1 / 30, ema_weight=0.9, generator=gen(0))
    expected = outputs[0]
    for out in outputs[1:]:
        expected = 0.9 * expected + 0.1 * out
    assert len(outputs) == 5 and torch.allclose(estimate, expected, atol=1e-7)
    assert not torch.allclose(outputs[0], outputs[-1])  # the parameters did move


def test_backtracking_restores_the_parameters_stored_before_a_collapse() -> None:
    param = nn.Parameter(torch.zeros(3))
    guard = Backtracking([param])
    assert not guard.update(30.0)  # stored: zeros at 30 dB
    param.data.fill_(1.0)
    assert not guard.update(26.0)  # a 4 dB drop is tolerated; ones are stored at 26 dB
    param.data.fill_(2.0)
    assert guard.update(20.5)  # 5.5 dB below 26: back to the ones
    assert torch.equal(param.detach(), torch.ones(3))
    param.data.fill_(3.0)
    assert guard.update(float("nan"))
    assert torch.equal(param.detach(), torch.ones(3))
    assert not guard.update(21.5) and guard.stored_psnr == 21.5  # within 5 dB of 26: stored again


def test_dip_fit_uses_adam_on_the_mse_to_the_noisy_image() -> None:
    noisy = _noisy(0)
    torch.manual_seed(0)
    net = Hourglass(4, 1, 8)
    z = torch.rand(1, 4, 64, 64)
    before = F.mse_loss(net(z), noisy).item()
    fit_to_image(net, noisy, z, 12, lr=0.01, reg_noise_std=0.0, ema_weight=0.99, generator=gen(0))
    assert F.mse_loss(net(z), noisy).item() < 0.6 * before  # 0.37 measured


# --- registration ----------------------------------------------------------------------------------

def test_both_methods_are_registered_as_builtins() -> None:
    methods = get_registry().methods
    assert methods["n2v"] is Noise2Void and methods["dip"] is DeepImagePrior
    assert Noise2Void.trainable and not DeepImagePrior.trainable
    assert not Noise2Void.uses_noise_level and not DeepImagePrior.uses_noise_level
    assert Noise2Void.supervision == DeepImagePrior.supervision == Supervision.NONE
    assert DeepImagePrior.input_multiple == 32
    assert DeepImagePrior(MethodSetup(channels=3, budget=SMOKE)).state_dict() == {"method": "dip"}


def test_dip_fits_with_the_training_engine() -> None:
    """The per-image fit is DIP's training: bf16 autocast runs it, the estimate stays fp32 and close."""
    noisy = _noisy(0)
    z = torch.rand(1, 4, 64, 64, generator=gen(1))
    fits = {}
    for engine in (Engine(), Engine("bf16", channels_last=True)):
        torch.manual_seed(0)
        net = Hourglass(4, 1, 8)
        fits[engine.precision] = fit_to_image(net, noisy, z, 12, lr=0.01, reg_noise_std=0.0, ema_weight=0.99,
                                              generator=gen(0), engine=engine)
        assert all(p.dtype == torch.float32 and p.is_contiguous() for p in net.parameters())
    assert fits["bf16"].dtype == torch.float32
    assert not torch.equal(fits["bf16"], fits["fp32"])  # autocast really ran in bf16 ...
    assert (fits["bf16"] - fits["fp32"]).abs().mean() < 0.02  # ... and fitted the same image
