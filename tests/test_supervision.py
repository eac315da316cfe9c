"""The supervision boundary: a self-supervised method never reaches a clean pixel during training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from denoise_bench import plugins
from denoise_bench.method import Method, NoiseInfo, TrainContext
from denoise_bench.noise import parse_spec
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.supervision import (CleanBatch, NoisePolicy, NoisyBatch, NoisyPairBatch, Supervision,
                                       TrainingView, build_view)
from helpers import MethodPlugin, reachable_tensors


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (1, 40, 48), generator=g, dtype=torch.uint8) for _ in range(3)]


def _contains_clean(tensor: torch.Tensor, clean: list[torch.Tensor]) -> bool:
    """Whether ``tensor`` holds one of the clean images: as an image, or flattened inside a longer 1-D
    tensor (the device-side crop sampler keeps every image back to back in one)."""
    for img in clean:
        for candidate in (img, img.float() / 255):
            if tensor.shape[-2:] == candidate.shape[-2:] and torch.equal(tensor.to(candidate.dtype).reshape(candidate.shape), candidate):
                return True
            flat = candidate.reshape(-1)
            if tensor.dim() == 1 and tensor.numel() >= flat.numel():
                windows = tensor.to(candidate.dtype).unfold(0, flat.numel(), 1)
                if bool((windows == flat).all(dim=1).any()):
                    return True
    return False


GAUSS = "gaussian:sigma=25"


@pytest.mark.parametrize("supervision,batch_type", [(Supervision.NONE, NoisyBatch), (Supervision.NOISY_PAIRS, NoisyPairBatch),
                                                    (Supervision.CLEAN, CleanBatch)])
def test_view_returns_only_its_supervision(supervision: Supervision, batch_type: type) -> None:
    from denoise_bench.plugins import get_registry
    spec = parse_spec(GAUSS, get_registry().noise_families)
    view = build_view(supervision, _images(), spec, NoisePolicy.FRESH, torch.device("cpu"), seed=0)
    batch = view.sample(4, 32)
    assert type(batch) is batch_type
    assert batch.noisy.shape == (4, 1, 32, 32) and batch.noisy.dtype == torch.float32
    if supervision is not Supervision.CLEAN:
        assert not hasattr(batch, "clean")


def test_fixed_policy_view_holds_no_clean_image() -> None:
    from denoise_bench.plugins import get_registry
    spec = parse_spec(GAUSS, get_registry().noise_families)
    clean = _images()
    for supervision in (Supervision.NONE, Supervision.NOISY_PAIRS):
        view = build_view(supervision, clean, spec, NoisePolicy.FIXED, torch.device("cpu"), seed=0)
        tensors = list(reachable_tensors(view))
        assert len(tensors) >= len(clean)  # the walker does see the stored noisy copies
        assert not any(_contains_clean(t, clean) for t in tensors)
        # and the same crop location gives the same noisy pixels every time (one fixed copy)
        a = view.sample(64, 40)
        assert torch.isfinite(a.noisy).all()
    # The walker is able to find clean images where they are allowed: a supervised view keeps them.
    supervised = build_view(Supervision.CLEAN, clean, spec, NoisePolicy.FIXED, torch.device("cpu"), seed=0)
    assert any(_contains_clean(t, clean) for t in reachable_tensors(supervised))


def test_fresh_policy_view_exposes_no_clean_attribute() -> None:
    from denoise_bench.plugins import get_registry
    spec = parse_spec(GAUSS, get_registry().noise_families)
    clean = _images()
    view = build_view(Supervision.NONE, clean, spec, NoisePolicy.FRESH, torch.device("cpu"), seed=0)
    public = {k: v for k, v in vars(view).items() if not k.startswith("_")}
    assert not any(_contains_clean(t, clean) for t in reachable_tensors(public))


def test_fixed_policy_repeats_the_same_noise_fresh_does_not() -> None:
    from denoise_bench.plugins import get_registry
    spec = parse_spec(GAUSS, get_registry().noise_families)
    one_image = [_images()[0][:, :32, :32].contiguous()]
    fixed = build_view(Supervision.NONE, one_image, spec, NoisePolicy.FIXED, torch.device("cpu"), seed=0)
    fresh = build_view(Supervision.NONE, one_image, spec, NoisePolicy.FRESH, torch.device("cpu"), seed=0)
    assert torch.equal(fixed.sample(1, 32).noisy, fixed.sample(1, 32).noisy)
    assert not torch.equal(fresh.sample(1, 32).noisy, fresh.sample(1, 32).noisy)


def test_pairs_are_independent_draws_of_the_same_crop() -> None:
    from denoise_bench.plugins import get_registry
    spec = parse_spec(GAUSS, get_registry().noise_families)
    view = build_view(Supervision.NOISY_PAIRS, _images(), spec, NoisePolicy.FRESH, torch.device("cpu"), seed=0)
    batch = view.sample(8, 32)
    diff = batch.noisy - batch.noisy2  # clean cancels; two independent N(0, s^2) -> variance 2 s^2
    assert diff.std().item() == pytest.approx(2**0.5 * 25 / 255, rel=0.05)


class Spy(Method):
    """Records everything the runner hands it during training."""

    name = "spy"
    description = "records what it is given (test plugin)"
    citation = "none"
    supervision = Supervision.NONE
    seen: list[object] = []

    def fit(self, view: TrainingView, context: TrainContext) -> None:
        Spy.seen.extend([view, context, self.setup])
        for _ in range(5):
            Spy.seen.append(view.sample(2, 32))

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        assert noise is None  # does not declare uses_noise_level, so it must not get the level
        return noisy


@pytest.mark.parametrize("policy", ["fresh", "fixed"])
def test_runner_gives_a_self_supervised_method_no_clean_pixels(tmp_path: Path, policy: str, monkeypatch) -> None:
    plugins.register_plugin(MethodPlugin(Spy), name="spy")
    Spy.seen = []
    # Capture the clean training images the runner loads, to compare against what the method saw.
    from denoise_bench.run.inputs import RunData
    captured: list[torch.Tensor] = []
    original = RunData.train

    def capture(self, dataset, crop):
        images = original(self, dataset, crop)
        captured.extend(images)
        return images

    monkeypatch.setattr(RunData, "train", capture)
    p = plan(RunRequest(methods=["spy"], noises=[GAUSS], datasets=["skimage"], profile="smoke", noise_policy=policy,
                        out=tmp_path / "run", progress=False))
    run(p, echo=lambda _: None)
    assert captured, "the runner should have loaded training images"
    batches = [s for s in Spy.seen if isinstance(s, NoisyBatch)]
    # the job's training steps and the time probe's before it: none of them carries a clean image
    assert len(batches) >= 5 and all(not hasattr(b, "clean") for b in batches)
    # Nothing reachable from the view (public part), the context or the setup is a clean image.
    view, context, setup = Spy.seen[:3]
    public_view = {k: v for k, v in vars(view).items() if not k.startswith("_")}
    for root in (public_view, context, setup, batches):
        assert not any(_contains_clean(t, captured) for t in reachable_tensors(root))
    # Every crop the method saw is noisy: it differs from the clean crop at the same place by noise of
    # the right size; without clean access we check the noisy crops are not 8-bit levels.
    for b in batches:
        levels = b.noisy * 255
        assert not torch.allclose(levels, levels.round(), atol=1e-3)


def test_training_images_stay_on_the_gpu_only_when_they_fit() -> None:
    from denoise_bench.supervision import data_home

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    waterloo = 4744 * 3 * 384 * 384  # a Waterloo-sized set as uint8 (about 2 GB at a nominal 384x384)
    assert data_home(waterloo, cuda, free_bytes=80 * 2**30) == cuda  # an H100: resident
    assert data_home(waterloo, cuda, free_bytes=3 * 2**30) == cpu  # a small GPU: cut crops on the host
    assert data_home(waterloo, cpu) == cpu
