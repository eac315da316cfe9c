"""Noise2Void (Krull, Buchholz and Jug, CVPR 2019): blind-spot training on single noisy images.

    S = stratified random pixels of each patch, drawn independently per channel
    y~[p] = y[q(p)] for p in S (q(p) a random pixel of the window around p), y~ = y elsewhere
    L = sum_{p in S} (f(y~)[p] - y[p])^2 / |S|

The network never sees the value it is asked to predict, so with noise that is independent across
pixels and zero-mean, the best it can do is E[y[p] | neighbourhood] = the clean value. Unmasked
pixels contribute nothing to the loss (otherwise the identity would be optimal).

Masking follows the official ``N2V_DataWrapper`` / ``n2v_utils`` (juglab/n2v):

* the patch is tiled with boxes of side ``round(sqrt(100 / perc_pix))`` from its top-left corner, one
  uniformly random pixel per box, positions falling outside the patch dropped;
* a new set of positions for every channel of every patch;
* ``uniform_withCP`` (the library default, used for the paper): the replacement is a uniformly random
  pixel of the (2r+1) x (2r+1) window around the masked pixel, clipped at the patch border, and it may
  be the masked pixel itself (probability 1/(2r+1)^2 inside the patch), as in the reference;
  ``uniform_withoutCP`` excludes the centre. Replacement values are read from the unmasked patch.

Settings (official values where the shared benchmark allows them):

* ``perc_pix`` 1.5 %: the library default and the paper's 64 pixels per 64x64 patch (the BSD68
  notebook uses 0.198 %); with short budgets it also gives about 7.5 times more loss terms per step.
* ``radius`` 2: the 5x5 window of the paper and of the BSD68 notebook (the library default is 5).
* Adam 4e-4, MSE (the notebook's loss; the library default is MAE).
* Normalisation: as in the reference, inputs are normalised per channel by the mean and standard
  deviation of the noisy training data and predictions de-normalised with the same values. The
  method only sees noisy crops, so the statistics are estimated once, before training, from
  ``NORMALISATION_BATCHES`` training batches, then kept fixed and saved with the weights.
* Schedule: as in the reference, the rate is halved when the validation loss has not improved for
  10 epochs (ReduceLROnPlateau, factor 0.5, patience 10). An epoch is 1/200 of the run (the BSD68
  notebook's 200 epochs of 400 steps). The method only sees noisy crops, so its validation set is
  ``VALIDATION_BATCHES`` batches of noisy training crops drawn once before training, with masks
  drawn once from a generator seeded by the run's seed: the reference's masked loss on fixed
  validation patches. Under a budget's short-budget rule (``lr_rule="warmup-cosine"``) the rule
  replaces the plateau schedule, as it replaces every method's.
* Network: the shared U-Net (``denoise_bench.nets.unet``) and training loop, not the N2V paper's
  depth-2 U-Net with batch norm, so the comparison with the other methods isolates the loss (the
  colour N2V results usually compared against, Neighbor2Neighbor's Table 1, also come from a
  retraining in that paper's own pipeline).
  Batch size, crop size and iterations come from the shared budget; crops are not flipped or rotated
  (the reference adds the 8 flips/rotations of each patch), as for every method of the benchmark.
* Inference: one pass on the whole unmasked image, no test-time augmentation.

Options: ``perc_pix`` (1.5), ``radius`` (2), ``strategy`` (``uniform_withCP`` or ``uniform_withoutCP``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from typing_extensions import override

from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method, MethodSetup, NoiseInfo
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN
from denoise_bench.supervision import NoisyBatch, Supervision, TrainingView

STRATEGIES = ("uniform_withCP", "uniform_withoutCP")
NORMALISATION_BATCHES = 16
VALIDATION_BATCHES = 2
EPOCHS = 200  # the BSD68 notebook: 200 epochs x 400 steps
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 10  # ReduceLROnPlateau of the reference


def box_size(perc_pix: float) -> int:
    """Side of the stratification boxes: one masked pixel per box gives ``perc_pix`` percent."""
    return max(1, round(math.sqrt(100.0 / perc_pix)))


def check_settings(perc_pix: float, radius: int, strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise BenchError(f"n2v: unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if not 0 < perc_pix <= 100:
        raise BenchError(f"n2v: perc_pix must be in (0, 100], got {perc_pix}")
    if radius < 1:
        raise BenchError(f"n2v: radius must be at least 1, got {radius}")


def _uniform_below(n: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform integer in [0, n) for every element of the integer tensor ``n`` (all n >= 1)."""
    u = torch.rand(n.shape, generator=generator, device=n.device)
    return torch.minimum((u * n).long(), n - 1)  # u * n can round up to n in float32


def n2v_mask(y: torch.Tensor, perc_pix: float, radius: int, strategy: str = "uniform_withCP",
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Blind-spot input for a (B, C, H, W) batch: ``(masked_input, mask)``.

    ``mask`` is a bool tensor of y's shape, true at the replaced pixels; ``masked_input`` equals ``y``
    except there, where it holds the value of a random pixel of the surrounding window. Random numbers
    come from ``generator``, or from torch's global generator on y's device when None.
    """
    check_settings(perc_pix, radius, strategy)
    b, c, h, w = y.shape
    box = box_size(perc_pix)
    boxes_y, boxes_x = -(-h // box), -(-w // box)
    # One uniform position per box, independently for every (patch, channel).
    offsets = torch.randint(0, box, (b, c, boxes_y, boxes_x, 2), generator=generator, device=y.device)
    rows = torch.arange(boxes_y, device=y.device).view(-1, 1) * box + offsets[..., 0]
    cols = torch.arange(boxes_x, device=y.device).view(1, -1) * box + offsets[..., 1]
    inside = (rows < h) & (cols < w)
    bi, ci, _, _ = inside.nonzero(as_tuple=True)
    rows, cols = rows[inside], cols[inside]

    # The window around each masked pixel, clipped at the patch border ([lo, hi) on each axis).
    top, bottom = (rows - radius).clamp(min=0), (rows + radius + 1).clamp(max=h)
    left, right = (cols - radius).clamp(min=0), (cols + radius + 1).clamp(max=w)
    height, width = bottom - top, right - left
    if strategy == "uniform_withCP":
        src_rows = top + _uniform_below(height, generator)
        src_cols = left + _uniform_below(width, generator)
    else:
        # Uniform over the window's pixels in raster order, skipping the centre's index.
        centre = (rows - top) * width + (cols - left)
        k = _uniform_below(height * width - 1, generator)
        k = k + (k >= centre).long()
        src_rows, src_cols = top + k // width, left + k % width

    masked = y.clone()
    masked[bi, ci, rows, cols] = y[bi, ci, src_rows, src_cols]
    mask = torch.zeros_like(y, dtype=torch.bool)
    mask[bi, ci, rows, cols] = True
    return masked, mask


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked entries only (the reference's ``n2v_mse``)."""
    return F.mse_loss(prediction[mask], target[mask])


class PlateauSchedule:
    """ReduceLROnPlateau on a validation loss measured at the end of every epoch of ``epoch_steps`` steps.

    Stepped once per training step like any scheduler; its state (step count, plateau counters) is
    saved with the training state, so a resumed run halves the rate at the same steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, epoch_steps: int, validation_loss: Callable[[], float]) -> None:
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE)
        self.epoch_steps = max(1, epoch_steps)
        self.validation_loss = validation_loss
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps % self.epoch_steps == 0:
            self.plateau.step(self.validation_loss())

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.plateau.load_state_dict(state["plateau"])


class Noise2Void(NetworkMethod):
    name = "n2v"
    description = "Noise2Void: predict randomly replaced (blind-spot) pixels from their neighbours"
    citation = "Krull, Buchholz and Jug, Noise2Void - Learning Denoising from Single Noisy Images, CVPR 2019"
    capture_unsupported = ("its masks have data-dependent shapes (nonzero and boolean indexing pick the masked pixels, "
                           "as the reference does)")
    supervision = Supervision.NONE
    requires = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT})
    learning_rate = 4e-4
    options = {"perc_pix": 1.5, "radius": 2, "strategy": "uniform_withCP"}
    # The BSD68 notebook: 200 epochs x 400 steps of batch 128, 64x64 patches.
    official_budget = {"iterations": 80_000, "batch_size": 128, "crop_size": 64}

    @override
    @classmethod
    def check_options(cls, opts: dict[str, Any]) -> None:
        check_settings(opts["perc_pix"], opts["radius"], opts["strategy"])

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        shape = (1, setup.channels, 1, 1)
        self.mean = torch.zeros(shape, device=setup.device)
        self.std = torch.ones(shape, device=setup.device)
        self.validation: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (masked, mask, target)

    def estimate_normalisation(self, view: TrainingView) -> None:
        """Per-channel mean and standard deviation of noisy training crops."""
        budget = self.setup.budget
        crops = torch.cat([view.sample(budget.batch_size, budget.crop_size).noisy for _ in range(NORMALISATION_BATCHES)])
        values = crops.transpose(0, 1).reshape(crops.shape[1], -1).double()
        self.mean = values.mean(dim=1).float().view(self.mean.shape).to(self.setup.device)
        self.std = values.std(dim=1, correction=0).clamp(min=1e-6).float().view(self.std.shape).to(self.setup.device)

    def draw_validation(self, view: TrainingView) -> None:
        """Fixed validation crops and masks for the plateau schedule (noisy crops only)."""
        budget = self.setup.budget
        generator = torch.Generator(device=self.setup.device).manual_seed(self.setup.seed)
        self.validation = []
        for _ in range(VALIDATION_BATCHES):
            y = (view.sample(budget.batch_size, self.training_crop().side).noisy - self.mean) / self.std
            masked, mask = n2v_mask(y, self.opts["perc_pix"], self.opts["radius"], self.opts["strategy"], generator)
            self.validation.append((masked, mask, y))

    def validation_loss(self) -> float:
        self.net.eval()
        with torch.no_grad():
            loss = sum(float(masked_mse(self.net(masked), y, mask)) for masked, mask, y in self.validation)
        self.net.train()
        return loss / len(self.validation)

    @override
    def own_schedule(self, optimizer: torch.optim.Optimizer, total: int, view: TrainingView) -> Any:
        # Called right after prepare, so the validation crops come next from the view, as they always
        # did; a resumed run draws them again the same way (the view is seeded) before loading its state.
        self.draw_validation(view)
        return PlateauSchedule(optimizer, total // EPOCHS, self.validation_loss)

    @override
    def prepare(self, view: TrainingView) -> None:
        # Before the shared loop: a resumed run recomputes the same values (the view is seeded) and
        # then loads the statistics again from its training state.
        self.estimate_normalisation(view)

    @override
    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        y = (batch.noisy - self.mean) / self.std
        masked, mask = n2v_mask(y, self.opts["perc_pix"], self.opts["radius"], self.opts["strategy"])
        return masked_mse(self.net(masked), y, mask)

    @override
    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad():
            return self.net((noisy - self.mean) / self.std) * self.std + self.mean

    @override
    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"normalisation": {"mean": self.mean.cpu(), "std": self.std.cpu()}}

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "normalisation" not in state:
            raise BenchError("n2v checkpoint has no normalisation statistics")
        self.mean = state["normalisation"]["mean"].to(self.setup.device).view(self.mean.shape)
        self.std = state["normalisation"]["std"].to(self.setup.device).view(self.std.shape)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(Noise2Void)
