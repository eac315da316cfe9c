"""Deep Image Prior (Ulyanov, Vedaldi and Lempitsky, CVPR 2018 / IJCV 2020): fit a network to one image.

    theta* = argmin_theta ||f_theta(z + delta_t) - y||^2,   delta_t ~ N(0, reg_noise_std^2) fresh at every step
    estimate = EMA_0.99 of f_theta(z + delta_t) over the iterations

Nothing is learned from a training set: for every test image a freshly initialised skip hourglass
(``denoise_bench.nets.hourglass``) is fitted to the noisy image from a fixed random input ``z``, and
the regularisation comes only from the architecture and from stopping after a fixed number of steps
(before the network starts reproducing the noise).

Settings of the official denoising notebook (F16, sigma = 25), all kept:

* ``z = U(0, 1) * 0.1`` of shape (1, 32, H, W), fixed; every step feeds ``z + N(0, 1) * reg_noise_std``
  with ``reg_noise_std = 1/30`` (the notebook uses 1/20 for sigma = 50);
* Adam, lr 0.01, mean squared error to the noisy image, parameters only (the input is not optimised);
* 3000 iterations: the budget's ``per_image_iterations``, 3000 in the standard and paper profiles;
* the estimate is the exponential moving average (weight 0.99, starting from the first output) of the
  outputs, the notebook's "smoothed" result, which is less noisy than the last iterate;
* backtracking: when the PSNR of the output against the *noisy* image falls by more than 5 dB from
  the last stored value, the parameters stored at that value are restored; otherwise the current
  ones are stored. As in the notebook the step of that iteration is still taken (from the restored
  parameters), and that iteration's output still enters the average. The notebook skips the check
  every 100th iteration (its plotting interval); here it runs at every iteration, and a non-finite
  loss counts as a drop.

Implementation choices:

* The iteration count is fixed in advance. Choosing the iteration (or stopping) by the PSNR against
  the clean image would be an oracle; the method never sees the clean image (``denoise`` receives
  only the noisy tensor, and ``uses_noise_level`` is false, so it is not told the noise level either).
* The notebook clips its noisy image to [0, 1]; the benchmark's noisy images are not clipped (its
  protocol), and the fit uses them as they are. The sigmoid output lies in (0, 1) regardless.
* The evaluator reflect-pads the image to a multiple of 32 (``input_multiple``) instead of cropping it
  as the notebook does; the padded image is what is fitted.
* Seeding: the network initialisation, ``z`` and the input jitter come from ``setup.seed`` through
  generators local to this call, so the estimate depends only on the noisy image and the seed, and
  the global random state is left as it was.

Options: ``width`` (128; channels of every scale, smaller to run on a CPU; 16 under the ``smoke`` profile,
unless given), ``input_depth`` (32),
``reg_noise_std`` (1/30), ``lr`` (0.01), ``ema`` (0.99).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from typing_extensions import override

from denoise_bench.engine import Engine
from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.nets.hourglass import DOWNSAMPLE_FACTOR, Hourglass
from denoise_bench.noise import ZERO_MEAN
from denoise_bench.supervision import Supervision

INPUT_SCALE = 0.1  # z ~ U(0, 1) * 0.1, the notebook's get_noise(..., 'noise') with var = 1/10
BACKTRACK_DROP_DB = 5.0
SKIP_CHANNELS = 4


class Backtracking:
    """The notebook's divergence guard on the fit to the noisy image.

    :meth:`update` is called once per iteration with the PSNR of the current output against the
    noisy image. A drop of more than ``drop_db`` below the last stored PSNR (or a non-finite PSNR)
    restores the parameters stored with it and returns True; otherwise the current parameters and
    PSNR are stored.
    """

    def __init__(self, parameters: Iterable[nn.Parameter], drop_db: float = BACKTRACK_DROP_DB) -> None:
        self.parameters = list(parameters)
        self.drop_db = drop_db
        self.stored: list[torch.Tensor] | None = None
        self.stored_psnr = -math.inf

    def update(self, psnr: float) -> bool:
        diverged = not math.isfinite(psnr) or psnr < self.stored_psnr - self.drop_db
        if diverged and self.stored is not None:
            with torch.no_grad():
                for param, saved in zip(self.parameters, self.stored):
                    param.copy_(saved)
            return True
        if math.isfinite(psnr):
            self.stored = [p.detach().clone() for p in self.parameters]
            self.stored_psnr = psnr
        return False


def fit_to_image(net: nn.Module, noisy: torch.Tensor, z: torch.Tensor, iterations: int, *, lr: float,
                 reg_noise_std: float, ema_weight: float, generator: torch.Generator,
                 engine: Engine | None = None, progress: bool = False) -> torch.Tensor:
    """Fit ``net(z + jitter)`` to ``noisy`` for ``iterations`` Adam steps; returns the EMA of the outputs.

    The fit is this method's training, so it runs with the run's training ``engine`` (bf16 autocast
    and channels-last on CPUs with AMX under ``--precision auto``); the average and
    the loss stay fp32. ``progress``: a bar over the iterations (minutes per image on a CPU).
    """
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    engine = engine or Engine()
    device = noisy.device
    net.train()  # batch statistics of the one image throughout, as in the notebook
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    guard = Backtracking(net.parameters())
    average: torch.Tensor | None = None
    with engine.training(net, device):
        for _ in tqdm(range(iterations), desc="dip fit", unit="it", leave=False, disable=not progress):
            net_input = z
            if reg_noise_std > 0:
                net_input = z + reg_noise_std * torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            with engine.autocast(device):
                out = net(net_input)
            out = out.float()
            average = out.detach() if average is None else ema_weight * average + (1.0 - ema_weight) * out.detach()
            loss = F.mse_loss(out, noisy)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # PSNR against the noisy image with peak 1, as the notebook's compare_psnr on [0, 1] floats.
            mse = loss.item()
            guard.update(-10.0 * math.log10(mse) if mse != 0 else math.inf)  # NaN stays NaN
            optimizer.step()
    assert average is not None
    return average


class DeepImagePrior(Method):
    name = "dip"
    description = "Deep Image Prior: fit a randomly initialised hourglass to each noisy image, stop after a fixed budget"
    citation = "Ulyanov, Vedaldi and Lempitsky, Deep Image Prior, CVPR 2018 / IJCV 2020"
    supervision = Supervision.NONE
    # The early, smooth part of the fit averages the noise out; that is the clean image only for zero-mean noise.
    requires = frozenset({ZERO_MEAN})
    trainable = False
    input_multiple = DOWNSAMPLE_FACTOR
    pads_to_square = True  # the convention its results were scored under
    options = {"width": 128, "input_depth": 32, "reg_noise_std": 1.0 / 30.0, "lr": 0.01, "ema": 0.99}
    official_budget = {"per_image_iterations": 3000}  # the denoising notebook's num_iter for sigma = 25
    # Its width-128 hourglass made a smoke job 23 s on one core; width 16 takes 6 s.
    smoke_options = {"width": 16}

    def build_net(self, channels: int) -> nn.Module:
        """A freshly initialised hourglass (from the global RNG, which the caller seeds)."""
        return Hourglass(self.opts["input_depth"], channels, width=self.opts["width"], skip_channels=SKIP_CHANNELS)

    @override
    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        device = noisy.device
        seed = self.setup.seed
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG left untouched
            torch.manual_seed(seed)
            net = self.build_net(noisy.shape[1]).to(device)
        generator = torch.Generator(device=device).manual_seed(seed)
        z = INPUT_SCALE * torch.rand((1, self.opts["input_depth"], *noisy.shape[-2:]), generator=generator, device=device)
        with torch.enable_grad():  # the fit needs gradients even if the caller runs under no_grad
            estimate = fit_to_image(net, noisy.float(), z, self.setup.budget.per_image_iterations,
                                    lr=self.opts["lr"], reg_noise_std=self.opts["reg_noise_std"],
                                    ema_weight=self.opts["ema"], generator=generator, engine=self.setup.engine,
                                    progress=self.setup.progress)
        return estimate.to(noisy.dtype)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(DeepImagePrior)
