"""The defining mechanisms of the built-in methods, checked without long training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import torch
import torch.nn.functional as F

from denoise_bench.errors import BenchError
from denoise_bench.method import MethodSetup, NoiseInfo
from denoise_bench.methods.bm3d import BM3D, anscombe, inverse_anscombe_unbiased, log_uniform_moments
from denoise_bench.methods.iddp import IDDP, box_filter, random_signs
from denoise_bench.methods.n2n import Noise2Noise
from denoise_bench.methods.unet import SupervisedUNet
from denoise_bench.nets.unet import UNet
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import get_profile
from denoise_bench.schedules import constant_then_linear_decay, cosine_squared_rampdown, halve_every_fifth
from denoise_bench.supervision import CleanBatch, NoisyBatch, NoisyPairBatch

SMOKE = get_profile("smoke")


def setup(channels: int = 1, **options: str) -> MethodSetup:
    return MethodSetup(channels=channels, budget=SMOKE, seed=0, options=options)


def test_unet_matches_the_official_parameter_counts() -> None:
    # Counted from the official layer lists: Neighbor2Neighbor ~1.26 M, Blind2Unblind (nearest) ~1.10 M.
    assert sum(p.numel() for p in UNet(3, 3, 48).parameters()) == 1_259_475
    assert sum(p.numel() for p in UNet(3, 3, 48, upsample="nearest", slope=0.1).parameters()) == 1_102_371
    with pytest.raises(ValueError, match="multiples of 32"):
        UNet(1, 1, 8)(torch.zeros(1, 1, 40, 64))


# --- IDDP ---------------------------------------------------------------------------------------

def _iddp_grads(stop_gradient: bool) -> list[torch.Tensor]:
    method = IDDP(setup(stop_gradient=str(stop_gradient).lower()))
    # PyTorch's default init (not the 0.1-scaled one) so the prior F(y) is far from zero, as after training.
    torch.manual_seed(5)
    method.net = UNet(1, 1, 16, ne2ne_init=False)
    y = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(7)  # same sign mask in both variants
    loss = method.training_loss(NoisyBatch(y), 0.0)
    loss.backward()
    return [p.grad.clone() for p in method.net.parameters()]


def test_iddp_stop_gradient_ablation_changes_the_gradient() -> None:
    with_sg, without_sg = _iddp_grads(True), _iddp_grads(False)
    diff = max((a - b).abs().max().item() for a, b in zip(with_sg, without_sg))
    scale = max(a.abs().max().item() for a in with_sg)
    assert diff > 0.05 * scale


def test_iddp_loss_matches_the_paper_formula() -> None:
    method = IDDP(setup())
    y = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(11)
    loss = method.training_loss(NoisyBatch(y), 0.0)
    # Recompute independently with the same mask draw.
    torch.manual_seed(11)
    with torch.no_grad():
        prior = method.net(y)
        mask = torch.where(torch.rand_like(y) < 0.5, -1.0, 1.0)
        y2 = prior + mask * (y - prior)
        blurred = torch.from_numpy(scipy.ndimage.uniform_filter(y.numpy(), size=(1, 1, 3, 3), mode="mirror"))
        expected = 0.001 * F.mse_loss(prior, blurred) + F.mse_loss(method.net(y2), prior)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_identity_mapping_is_not_free_for_iddp() -> None:
    # If F = id the re-noised input equals y and the consistency term vanishes; the blur anchor must not.
    method = IDDP(setup())
    method.net = torch.nn.Identity()
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    loss = method.training_loss(NoisyBatch(y), 0.0)
    assert loss.item() == pytest.approx(0.001 * F.mse_loss(y, box_filter(y, 3)).item(), rel=1e-6)
    assert loss.item() > 0


def test_sign_mask_is_plus_minus_one_fair_and_redrawn() -> None:
    like = torch.zeros(1, 3, 128, 128)
    a, b = random_signs(like), random_signs(like)
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    assert abs(a.mean().item()) < 0.02  # 49k draws: std of the mean ~0.0045
    assert not torch.equal(a, b)
    assert (a[:, 0] != a[:, 1]).any()  # drawn per element, not per pixel


def test_box_filter_is_a_reflect_padded_mean() -> None:
    y = torch.rand(1, 2, 17, 23, dtype=torch.float64)
    for k in (3, 5):
        expected = scipy.ndimage.uniform_filter(y.numpy(), size=(1, 1, k, k), mode="mirror")
        np.testing.assert_allclose(box_filter(y, k).numpy(), expected, atol=1e-12)


def test_unknown_or_malformed_method_option_is_refused() -> None:
    with pytest.raises(BenchError, match="no option"):
        IDDP(setup(stop_gradients="false"))
    with pytest.raises(BenchError, match="stop_gradient='maybe'"):
        IDDP(setup(stop_gradient="maybe"))


# --- losses of the baselines -------------------------------------------------------------------

def test_supervised_and_n2n_losses_use_their_targets() -> None:
    x = torch.rand(2, 1, 32, 32)
    y = x + 0.1 * torch.randn_like(x)
    y2 = x + 0.1 * torch.randn_like(x)
    unet, n2n = SupervisedUNet(setup()), Noise2Noise(setup())
    with torch.no_grad():
        assert unet.training_loss(CleanBatch(y, x), 0).item() == pytest.approx(F.mse_loss(unet.net(y), x).item())
        assert n2n.training_loss(NoisyPairBatch(y, y2), 0).item() == pytest.approx(F.mse_loss(n2n.net(y), y2).item())


def test_schedules_keep_their_published_shapes() -> None:
    assert constant_then_linear_decay(0.0) == constant_then_linear_decay(0.49) == 1.0
    assert constant_then_linear_decay(0.75) == pytest.approx(0.5)
    assert constant_then_linear_decay(1.0) == 0.0
    assert [halve_every_fifth(t) for t in (0.0, 0.2, 0.4, 0.6, 0.8, 0.99)] == [1, 0.5, 0.25, 0.125, 0.0625, 0.0625]
    assert cosine_squared_rampdown(0.69) == 1.0
    assert cosine_squared_rampdown(0.85) == pytest.approx(0.25)
    assert cosine_squared_rampdown(1.0) == pytest.approx(0.0)


def test_state_dict_round_trip_and_mismatch_errors() -> None:
    a, b = IDDP(setup()), IDDP(MethodSetup(channels=1, budget=SMOKE, seed=1))
    x = torch.rand(1, 1, 64, 64)
    assert not torch.equal(a.denoise(x), b.denoise(x))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.denoise(x), b.denoise(x))
    with pytest.raises(BenchError, match="checkpoint is for method 'unet'"):
        a.load_state_dict(SupervisedUNet(setup()).state_dict())
    wider = IDDP(MethodSetup(channels=1, budget=SMOKE.override(width=24)))
    with pytest.raises(BenchError, match="does not match"):
        a.load_state_dict(wider.state_dict())


# --- BM3D -----------------------------------------------------------------------------------

def test_exact_unbiased_inverse_anscombe_recovers_the_mean() -> None:
    rng = np.random.default_rng(0)
    for mu in (2.0, 5.0, 20.0, 100.0):
        expected_transform = anscombe(rng.poisson(mu, size=400_000)).mean()
        assert inverse_anscombe_unbiased(np.array(expected_transform)) == pytest.approx(mu, rel=0.02)
        # the algebraic inverse is biased at low counts; the unbiased one must do better
        algebraic = expected_transform**2 / 4 - 3 / 8
        assert abs(inverse_anscombe_unbiased(np.array(expected_transform)) - mu) < abs(algebraic - mu)


def test_log_uniform_moments_match_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    for v in (0.01, 0.1, 0.2):
        a = math.sqrt(3 * v)
        sample = np.log1p(rng.uniform(-a, a, size=1_000_000))
        mean, std = log_uniform_moments(v)
        assert mean == pytest.approx(sample.mean(), abs=2e-3)
        assert std == pytest.approx(sample.std(), rel=5e-3)


def _noisy_crop(spec_text: str, channels: int) -> tuple[torch.Tensor, torch.Tensor, NoiseInfo]:
    image = skimage.data.astronaut() if channels == 3 else skimage.data.camera()
    crop = image[96:192, 160:256]
    clean = torch.from_numpy(crop.astype(np.float32) / 255)
    clean = clean.permute(2, 0, 1)[None] if channels == 3 else clean[None, None]
    spec = parse_spec(spec_text, get_registry().noise_families)
    noisy, levels = spec.sample(clean, torch.Generator().manual_seed(0))
    return clean, noisy, NoiseInfo.from_levels(spec, levels)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / F.mse_loss(a.clamp(0, 1).double(), b.double()).item())


# Margins measured on these 96x96 crops (gain in dB over the noisy input): gray gaussian 8.41, gray
# poisson 8.21, gray speckle 8.75, colour gaussian 10.47, colour poisson 11.76; asserted at about two
# thirds of that, so a broken transform (wrong sigma scale, biased inverse) fails and noise does not.
@pytest.mark.parametrize("spec,channels,margin", [("gaussian:sigma=25", 1, 5.5), ("poisson:lam=30", 1, 5.5),
                                                  ("speckle:v=0.1", 1, 5.5), ("gaussian:sigma=25", 3, 7.0),
                                                  ("poisson:lam=30", 3, 7.5)])
def test_bm3d_denoises_real_images(spec: str, channels: int, margin: float) -> None:
    clean, noisy, info = _noisy_crop(spec, channels)
    estimate = BM3D(setup(channels)).denoise(noisy, info)
    assert estimate.shape == noisy.shape and estimate.dtype == noisy.dtype
    assert _psnr(estimate, clean) > _psnr(noisy, clean) + margin


def test_bm3d_needs_the_noise_level_and_refuses_unknown_families() -> None:
    _, noisy, _ = _noisy_crop("gaussian:sigma=25", 1)
    with pytest.raises(BenchError, match="noise level"):
        BM3D(setup()).denoise(noisy, None)
    family = get_registry().noise_families["poisson-gaussian"]
    assert "no variance-stabilising treatment" in BM3D.incompatibility(family)
