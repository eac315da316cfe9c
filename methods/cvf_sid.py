"""CVF-SID (Neshatavar, Yavartanoo, Son and Lee, CVPR 2022): cyclic multivariate function for self-supervised denoising.

The network ``f`` (``denoise_bench.nets.cvf``) splits a noisy image into a clean part ``c``, a
signal-dependent noise ``w`` and a signal-independent noise ``b`` with ``x = c + c^gamma * w + b``;
training asks that splitting each recombination again returns its parts (the cyclic function):

    f(x) = (w, b, c);   f(c) = (w1, b1, c1);   f(c + c*w) = (w2, b2, c2);   f(b) = (w3, b3, c3)
    L_main = |c + c*w + b - x|^2 + |c1 - c|^2 + |b3 - b|^2 + |w2 - w|^2 + |c2 - c|^2
           + |c3|^2 + |w1|^2 + |b1|^2 + |b2|^2 + |sigma_hat - std|^2
    sigma_hat = sqrt(mean(avgpool6(c)^(2 gamma)) sigma_w^2 + sigma_b^2)   (per image and channel)
    seven augmentations c +- c*w +- b, c +- b, c - c*w: each must return c and the signed parts
    (``AUGMENTATIONS``), weighted 0.1 each

All eleven passes carry gradients. ``std`` is the noise-level target the official code computes from
the noisy image itself: the mean over positions of the standard deviation in every 6x6 window.

From the official code (``Reyhanehne/CVF-SID_PyTorch``): every loss a mean squared error of weight 1,
gamma 1; each 40x40 training patch reflect-padded by 20 (the losses are taken on the padded 80x80
maps), every recombined input cropped back and reflect-padded again; random flips and rot90 of the
patches; Adam at 1e-4 with amsgrad and weight decay 1e-9, the rate times 0.99 every 10 epochs of 20
steps (200 steps); batch 64, 100,000 steps (``official_budget``); test images reflect-padded by 20,
the clean part clamped to [0, 1].

Implementation choices, stated in the methods table:

* The noise-level target is computed on each training patch (before padding), where the official
  code computes it once per whole training image and caches it in a file (``std.npy``) that it
  reuses even when the images change. The window statistics are local, so the two agree in
  expectation; nothing is cached.
* Flips and rot90 are drawn per patch (the official code draws them per image before cropping).
* The rate's decay keeps its shape at any budget: x0.99 every 1/500 of the run (every 200 steps of 100,000).
* ``transductive=true`` (the official release's setting: it trains on the noisy images it is tested
  on) fits a freshly initialised network, seeded as the run, to each noisy test image for the
  budget's ``iterations`` (batches of its crops, at most the image's side), then splits that image;
  nothing is learned from the training set. The official code fits one network to the whole test
  set; the method contract hands a method one test image at a time, so here each image is its own
  test set. Off by default, so the method trains on the training split as every other method.

``cvf-sid-oracle`` (a diagnostic, marked as told the true noise level) replaces the noise-level
target by the true standard deviation of each training image's noise, to tell the estimator's error
from the rest: the training noise's fixed level (a range is refused: its drawn levels are not given
to training), or under ``transductive=true`` the test image's own level. It needs noise whose
variance does not depend on the signal.

Options: ``width`` (64; 16 under the ``smoke`` profile, unless given), ``gamma`` (1.0), ``transductive`` (false).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from denoise_bench.crops import CropSampler
from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method, MethodSetup, NoiseInfo, TrainContext, TrainingCrop
from denoise_bench.nets.cvf import CVFNet
from denoise_bench.nets.init import initialise_
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import SIGNAL_INDEPENDENT, ZERO_MEAN, Levels, NoiseFamily
from denoise_bench.supervision import NoisyBatch, Supervision, TrainingView

PAD = 20
WINDOW = 6  # the noise-level target's and sigma_hat's window
AUGMENTATION_WEIGHT = 0.1
DECAY_STEPS = 500  # x0.99 every 200 of the official 100,000 steps
# The seven augmented recombinations c + sw * c^gamma * w + sb * b, with the signs (sw, sb), in the
# official trainer's order; each must split back into c, sw * w and sb * b (a zero sign: no such part).
AUGMENTATIONS = ((1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (-1, 0), (1, 1))


def pad(image: torch.Tensor) -> torch.Tensor:
    return F.pad(image, (PAD, PAD, PAD, PAD), mode="reflect")


def repad(image: torch.Tensor) -> torch.Tensor:
    """The official padr_crop: cut the padding off and reflect-pad the centre again."""
    return pad(image[..., PAD:-PAD, PAD:-PAD])


def window_std_target(noisy: torch.Tensor) -> torch.Tensor:
    """Per image and channel, the mean over positions of the population std in every 6x6 window,
    with the official loop's range (windows starting at 0 .. H-7, 0 .. W-7): shape (N, C)."""
    mean = F.avg_pool2d(noisy, WINDOW, stride=1)[..., :-1, :-1]
    mean_sq = F.avg_pool2d(noisy * noisy, WINDOW, stride=1)[..., :-1, :-1]
    return (mean_sq - mean * mean).clamp(min=0).sqrt().mean(dim=(-2, -1))


def _per_channel_std(noise: torch.Tensor) -> torch.Tensor:
    return noise.flatten(2).std(dim=-1)  # unbiased, as torch.std in the official loss


def noise_level(clean: torch.Tensor, noise_w: torch.Tensor, noise_b: torch.Tensor, gamma: float) -> torch.Tensor:
    """sigma_hat of the official loss_main, per image and channel."""
    blurred = F.avg_pool2d(clean, WINDOW, stride=1, padding=WINDOW // 2)
    signal = (blurred.pow(gamma) ** 2).flatten(2).mean(dim=-1)
    return torch.sqrt(signal * _per_channel_std(noise_w) ** 2 + _per_channel_std(noise_b) ** 2)


def random_dihedral(batch: torch.Tensor) -> torch.Tensor:
    """Each (square) patch flipped left-right and up-down with p = 1/2 each and turned by k * 90 degrees."""
    out = []
    for patch in batch:
        if torch.rand(()) < 0.5:
            patch = patch.flip(-1)
        if torch.rand(()) < 0.5:
            patch = patch.flip(-2)
        out.append(torch.rot90(patch, int(torch.randint(0, 4, ())), dims=(-2, -1)))
    return torch.stack(out)


def cvf_loss(net: nn.Module, noisy: torch.Tensor, std: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """The official trainer's loss_total on already padded ``noisy`` (N, C, H + 40, W + 40)."""
    mse = F.mse_loss
    noise_w, noise_b, clean = net(noisy)
    dependent = clean.pow(gamma) * noise_w
    noise_w1, noise_b1, clean1 = net(repad(clean))
    noise_w2, noise_b2, clean2 = net(repad(clean + dependent))
    _, noise_b3, clean3 = net(repad(noise_b))
    main = (mse(clean + dependent + noise_b, noisy) + mse(clean1, clean) + mse(noise_b3, noise_b)
            + mse(noise_w2, noise_w) + mse(clean2, clean) + mse(clean3, torch.zeros_like(clean3))
            + mse(noise_w1, torch.zeros_like(noise_w1)) + mse(noise_b1, torch.zeros_like(noise_b1))
            + mse(noise_b2, torch.zeros_like(noise_b2)) + mse(noise_level(clean, noise_w, noise_b, gamma), std))
    augmented = noisy.new_zeros(())
    for sign_w, sign_b in AUGMENTATIONS:
        w, b, c = net(repad(clean + sign_w * dependent + sign_b * noise_b))
        # the official loss_aug: mse(c, clean) + mse(w, sign_w * noise_w) + mse(b, sign_b * noise_b),
        # with a zero sign the part itself (a zero map) as the target
        augmented = augmented + mse(c, clean) + mse(w, sign_w * noise_w) + mse(b, sign_b * noise_b)
    return main + AUGMENTATION_WEIGHT * augmented


def true_std(family: NoiseFamily, levels: Levels, like: torch.Tensor) -> torch.Tensor:
    """The noise's standard deviation per image and channel, (N, C), for noise whose variance does not
    depend on the signal (so that evaluating it on ``like``, not the clean image, is exact)."""
    if family.variance is None:
        raise BenchError(f"cvf-sid-oracle needs the variance of {family.name} noise, which it does not declare")
    return family.variance(like, levels).mean(dim=(-2, -1)).sqrt()


def noisy_view(noisy: torch.Tensor, seed: int) -> TrainingView:
    """Random crops of one noisy (1, C, H, W) image: the training view of a transductive fit."""
    sampler = CropSampler([[noisy[0]]], torch.Generator().manual_seed(seed))

    def draw(batch_size: int, crop_size: int) -> NoisyBatch:
        return NoisyBatch(sampler.sample(batch_size, crop_size)[0].to(noisy.device))

    generator = sampler.generator

    def set_rng_state(state: dict) -> None:
        generator.set_state(state["crop"])

    return TrainingView(Supervision.NONE, noisy.shape[1], 1, noisy.device, draw,
                        lambda: {"crop": generator.get_state()}, set_rng_state)


class CVFSID(NetworkMethod):
    name = "cvf-sid"
    description = "CVF-SID: split the noisy image into clean, signal-dependent and signal-independent parts, cyclically"
    citation = "Neshatavar, Yavartanoo, Son and Lee, CVF-SID: Cyclic Multi-Variate Function for Self-Supervised Image Denoising, CVPR 2022"
    batch_denoise = False  # the transductive option fits the network to each test image
    capture_unsupported = ("its per-patch flips and rotations branch in Python on random numbers read back to the host "
                           "(the official augmentation)")
    supervision = Supervision.NONE
    # Both noise maps are made zero-mean per image: noise with a non-zero mean would end in the clean part.
    requires = frozenset({ZERO_MEAN})
    input_multiple = 1  # no down-sampling
    learning_rate = 1e-4
    weight_decay = 1e-9
    amsgrad = True  # the official code's Adam(..., amsgrad=True)
    options = {"width": 64, "gamma": 1.0, "transductive": False}
    # Where it trained (the training split, or each test image) is part of every result's identity.
    identity_options = ("transductive",)
    official_budget = {"iterations": 100_000, "batch_size": 64, "crop_size": 40}
    # Eleven passes of a width-64 network per step took 4 s a step on one core: 2 minutes for a smoke job.
    smoke_options = {"width": 16}

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        self._image_side: int | None = None  # the test image's shorter side, while a transductive fit runs

    @override
    def build_network(self) -> nn.Module:
        return CVFNet(self.setup.channels, width=int(self.opts["width"]))

    @override
    def network_init(self) -> str:
        return "xavier_uniform"

    @override
    def lr_factor(self, progress: float) -> float:
        return 0.99 ** int(progress * DECAY_STEPS)

    @override
    def training_crop(self) -> TrainingCrop:
        # a transductive fit cuts crops of the test image, which may be smaller than the budget's
        return TrainingCrop(min(self.setup.budget.crop_size, self._image_side or self.setup.budget.crop_size))

    def noise_level_target(self, patches: torch.Tensor) -> torch.Tensor:
        """L10's target per patch and channel: the official estimate from the noisy patch itself."""
        return window_std_target(patches)

    @override
    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        patches = random_dihedral(batch.noisy)
        return cvf_loss(self.net, pad(patches), self.noise_level_target(patches), float(self.opts["gamma"]))

    @override
    def fit(self, view: TrainingView, context: TrainContext) -> None:
        if not self.opts["transductive"]:  # a transductive network is fitted to each test image instead
            super().fit(view, context)

    def fit_to_test_image(self, noisy: torch.Tensor, noise: NoiseInfo | None) -> None:
        """The transductive fit: a fresh network, seeded as the run, trained on ``noisy``'s own crops."""
        with torch.random.fork_rng(devices=[noisy.device] if noisy.device.type == "cuda" else []):
            torch.manual_seed(self.setup.seed)
            init = "pytorch" if self.setup.budget.init == "pytorch" else self.network_init()
            self.net.load_state_dict(initialise_(self.build_network(), init).state_dict())
            self._image_side = min(noisy.shape[-2:])
            with torch.enable_grad():  # the fit needs gradients even if the caller runs under no_grad
                super().fit(noisy_view(noisy.float(), self.setup.seed), TrainContext())

    @override
    def test_fit_budget(self) -> str | None:
        return "iterations" if self.opts["transductive"] else None  # each test image is fitted for the whole budget

    @override
    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        if self.opts["transductive"]:
            self.fit_to_test_image(noisy, noise)
        self.net.eval()
        with torch.no_grad():
            _, _, clean = self.net(pad(noisy.float()))
        return clean[..., PAD:-PAD, PAD:-PAD].clamp(0.0, 1.0).to(noisy.dtype)


class CVFSIDOracle(CVFSID):
    name = "cvf-sid-oracle"
    description = "CVF-SID with the true noise level as its noise-level target (a diagnostic of its estimator)"
    uses_noise_level = True
    # The true level is a standard deviation per image only when the noise's variance is the same everywhere.
    requires = frozenset({ZERO_MEAN, SIGNAL_INDEPENDENT})

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        self._known: tuple[NoiseFamily, Levels] | None = None  # the true level(s) of what it trains on

    def _training_levels(self) -> tuple[NoiseFamily, Levels]:
        spec = self.setup.training.noise
        if spec is None or spec.is_range:
            given = "unknown" if spec is None else f"{spec}, a range whose drawn levels training does not see"
            raise BenchError(f"{self.name} trains on one known noise level; the training noise is {given}: "
                             f"train at a fixed level or set --method-option {self.name}:transductive=true")
        return spec.family, {name: torch.tensor([value.low]) for name, value in spec.values}

    @override
    def fit(self, view: TrainingView, context: TrainContext) -> None:
        if not self.opts["transductive"]:
            self._known = self._training_levels()
        super().fit(view, context)

    @override
    def fit_to_test_image(self, noisy: torch.Tensor, noise: NoiseInfo | None) -> None:
        if noise is None:
            raise BenchError(f"{self.name} is told each test image's noise level, and was given none")
        self._known = noise.spec.family, {k: torch.tensor([v]) for k, v in noise.levels.items()}
        super().fit_to_test_image(noisy, noise)

    @override
    def noise_level_target(self, patches: torch.Tensor) -> torch.Tensor:
        assert self._known is not None, "fit sets the known level before the first step"
        family, levels = self._known
        return true_std(family, levels, patches).expand(patches.shape[0], -1)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(CVFSID)
    register(CVFSIDOracle)
