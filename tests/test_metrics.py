"""PSNR/SSIM against scikit-image, the evaluation protocol's scoring and padding, and test cases."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from denoise_bench import metrics
from denoise_bench.data import CleanImage
from denoise_bench.errors import BenchError
from denoise_bench.evaluate import evaluate, floor_scores, make_test_cases
from denoise_bench.method import MethodSetup
from denoise_bench.noise import NoiseFamily, parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.protocol import FLOAT, NB2NB, PAPER, PROTOCOLS, EvalProtocol, get_protocol, protocol_by_id, to_luma
from helpers import Median3


@pytest.fixture
def families() -> dict[str, NoiseFamily]:
    return get_registry().noise_families


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    return skimage.data.camera()[64:320, 96:352]  # (256, 256) uint8; cropped to stay fast


@pytest.fixture(scope="module")
def camera_full() -> np.ndarray:
    return skimage.data.camera()  # (512, 512): room for a 321x481 crop


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()[100:260, 150:330]  # (160, 180, 3) uint8; cropped to stay fast


def _noisy_u8(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """A deterministic Gaussian-noisy copy, clipped and quantised to uint8 like a saved image."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(clean + rng.normal(0.0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def _box_blur_u8(clean: np.ndarray) -> np.ndarray:
    """A 3x3 box blur (a structural, not noise-like, degradation) quantised to uint8."""
    pad = [(1, 1), (1, 1)] + [(0, 0)] * (clean.ndim - 2)
    p = np.pad(clean.astype(np.float64), pad, mode="edge")
    h, w = clean.shape[:2]
    out = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9
    return np.rint(out).astype(np.uint8)


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a if a.ndim == 3 else a[:, :, None]).permute(2, 0, 1).contiguous()


def _degraded(name: str, clean: np.ndarray) -> np.ndarray:
    return {"noisy10": lambda: _noisy_u8(clean, 10, 0), "noisy40": lambda: _noisy_u8(clean, 40, 1),
            "blur": lambda: _box_blur_u8(clean)}[name]()


@pytest.mark.parametrize("degradation", ["noisy10", "noisy40", "blur"])
@pytest.mark.parametrize("image_name", ["camera", "astronaut"])
def test_psnr_and_ssim_match_scikit_image(image_name: str, degradation: str, request: pytest.FixtureRequest) -> None:
    clean: np.ndarray = request.getfixturevalue(image_name)
    test = _degraded(degradation, clean)
    colour = clean.ndim == 3
    ours_psnr = metrics.psnr(_chw(test), _chw(clean), 255.0)
    ref_psnr = peak_signal_noise_ratio(clean, test, data_range=255)
    # Both are float64 MSE then 10 log10: they differ only by summation order (~1e-12 dB).
    assert ours_psnr == pytest.approx(ref_psnr, abs=1e-6)
    ours_ssim = metrics.ssim(_chw(test), _chw(clean), 255.0)
    ref_ssim = structural_similarity(
        clean, test, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=-1 if colour else None,
    )
    # Same 11x11 window (skimage truncates at 3.5 sigma: radius 5), same valid region, float64:
    # agreement is at rounding level, so 1e-6 needs no loosening.
    assert ours_ssim == pytest.approx(ref_ssim, abs=1e-6)
    assert 0.0 < ours_ssim < 1.0


def test_metrics_of_identical_images(camera: np.ndarray) -> None:
    x = _chw(camera[:64, :64])
    assert metrics.psnr(x, x, 255.0) == math.inf
    assert metrics.ssim(x, x, 255.0) == pytest.approx(1.0, abs=1e-12)


def test_ssim_refuses_images_smaller_than_the_window(camera: np.ndarray) -> None:
    x = _chw(camera[:10, :40])
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(x, x, 255.0)


# --- protocol scoring ----------------------------------------------------------------------------


def _expected_nb2nb_psnr(estimate: np.ndarray, clean_u8: np.ndarray) -> float:
    """The NB2NB evaluator written out with numpy: clamp, uint8(floor(255 p + 0.5)), PSNR on all values."""
    q = np.floor(255.0 * np.clip(estimate.astype(np.float64), 0.0, 1.0) + 0.5).astype(np.uint8)
    mse = np.mean((q.astype(np.float64) - clean_u8.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


def _expected_float_psnr(estimate: np.ndarray, clean_u8: np.ndarray) -> float:
    p = 255.0 * np.clip(estimate.astype(np.float64), 0.0, 1.0)
    return 10 * math.log10(255.0**2 / np.mean((p - clean_u8.astype(np.float64)) ** 2))


@pytest.mark.parametrize("image_name", ["camera", "astronaut"])
def test_nb2nb_score_is_clamped_8bit_psnr(image_name: str, request: pytest.FixtureRequest) -> None:
    clean = _chw(request.getfixturevalue(image_name)[:128, :160])
    rng = np.random.default_rng(3)
    # A float estimate with values outside [0, 1] and off the 8-bit grid, like a network output.
    estimate = clean.numpy() / 255.0 + rng.normal(0.0, 0.08, clean.shape)
    estimate = estimate.astype(np.float32)
    assert estimate.min() < 0 and estimate.max() > 1
    psnr, ssim = NB2NB.score(torch.from_numpy(estimate), clean)
    assert psnr == pytest.approx(_expected_nb2nb_psnr(estimate, clean.numpy()), abs=1e-9)
    # SSIM is computed on the same quantised estimate (checked here against scikit-image).
    q = np.floor(255.0 * np.clip(estimate.astype(np.float64), 0, 1) + 0.5).astype(np.uint8)
    ref_ssim = structural_similarity(clean.numpy(), q, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=0)
    assert ssim == pytest.approx(ref_ssim, abs=1e-6)
    # FLOAT scores the clamped estimate without rounding to the 8-bit grid.
    assert FLOAT.score(torch.from_numpy(estimate), clean)[0] == pytest.approx(
        _expected_float_psnr(estimate, clean.numpy()), abs=1e-9)


@pytest.mark.parametrize("protocol", [NB2NB, FLOAT], ids=lambda p: p.name)
def test_estimates_outside_the_unit_range_are_clamped(protocol: EvalProtocol, astronaut: np.ndarray) -> None:
    clean = _chw(astronaut[:64, :64])
    above, one = torch.full(clean.shape, 1.3), torch.ones(clean.shape)
    below, zero = torch.full(clean.shape, -0.2), torch.zeros(clean.shape)
    assert protocol.score(above, clean) == protocol.score(one, clean)
    assert protocol.score(below, clean) == protocol.score(zero, clean)
    # And the clamped score is the PSNR of a white image, not of 1.3 * 255.
    assert protocol.score(above, clean)[0] == pytest.approx(_expected_float_psnr(np.ones(clean.shape), clean.numpy()))


def test_float_protocol_does_not_quantise(camera: np.ndarray) -> None:
    clean = _chw(camera[:96, :96])
    base = _chw(_noisy_u8(camera[:96, :96], 15, 4)).float() / 255  # on the 8-bit grid
    nudged = base + 0.2 / 255  # less than half a gray level: rounds back to the same uint8 values
    assert NB2NB.score(nudged, clean)[0] == NB2NB.score(base, clean)[0]
    assert FLOAT.score(nudged, clean)[0] != pytest.approx(FLOAT.score(base, clean)[0], abs=1e-6)


def _opencv_luma(rgb_u8: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit RGB -> YCrCb luma (cv2.cvtColor(..., COLOR_BGR2YCrCb)[..., 0]) written out: 14-bit
    fixed point, rounded; channels first."""
    r, g, b = (rgb_u8[i].astype(np.int64) for i in range(3))
    return (4899 * r + 9617 * g + 1868 * b + 8192) >> 14


def test_luma_is_opencvs_rounding_of_full_range_bt601() -> None:
    # Colours where OpenCV's fixed point and rounding 0.299 R + 0.587 G + 0.114 B differ (211 and 212 for
    # the first), read off cv2 4.14; and black and white: full range, no +16 offset.
    colours = torch.tensor([[232, 240, 11], [167, 46, 233], [41, 48, 176], [0, 0, 0], [255, 255, 255]],
                           dtype=torch.float64).T.reshape(3, 1, 5)
    assert to_luma(colours, quantize_8bit=True).flatten().tolist() == [211, 104, 61, 0, 255]
    assert to_luma(colours).flatten().tolist() == pytest.approx([211.502, 103.497, 60.499, 0, 255])


def test_paper_protocol_scores_colour_images_on_8bit_luma(astronaut: np.ndarray) -> None:
    clean = _chw(astronaut[:96, :128])
    rng = np.random.default_rng(5)
    estimate = (clean.numpy() / 255.0 + rng.normal(0.0, 0.08, clean.shape)).astype(np.float32)
    q = np.floor(255.0 * np.clip(estimate.astype(np.float64), 0.0, 1.0) + 0.5).astype(np.uint8)
    y_est, y_ref = _opencv_luma(q).astype(np.uint8), _opencv_luma(clean.numpy()).astype(np.uint8)
    psnr, ssim = PAPER.score(torch.from_numpy(estimate), clean)
    assert psnr == pytest.approx(peak_signal_noise_ratio(y_ref, y_est, data_range=255), abs=1e-9)
    assert ssim == pytest.approx(structural_similarity(y_ref, y_est, gaussian_weights=True, sigma=1.5,
                                                       use_sample_covariance=False, data_range=255), abs=1e-6)
    assert psnr != pytest.approx(NB2NB.score(torch.from_numpy(estimate), clean)[0], abs=0.1)


def test_paper_protocol_is_nb2nb_on_gray_images_with_the_same_noise(camera: np.ndarray) -> None:
    clean = _chw(camera[:64, :64])
    estimate = _chw(_noisy_u8(camera[:64, :64], 20, 6)).float() / 255 + 0.3 / 255
    assert PAPER.score(estimate, clean) == NB2NB.score(estimate, clean)
    key = ("bsd300", "102061", "gaussian:sigma=25", 2)
    assert PAPER.noise_seed(*key) == NB2NB.noise_seed(*key) and PAPER.repeats == NB2NB.repeats
    assert PAPER.padding == NB2NB.padding and PAPER.color == "y" and "luma" in PAPER.description
    assert PAPER.scores_like(NB2NB, colour=False) and not PAPER.scores_like(NB2NB, colour=True)
    assert not FLOAT.scores_like(NB2NB, colour=False)  # unquantised


# --- the floor: a 3x3 box filter of the noisy input --------------------------------------------


def test_the_floor_is_the_score_of_a_box3_of_the_noisy_input(camera: np.ndarray, families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec("gaussian:sigma=25", families)
    cases = make_test_cases("bsd68", [CleanImage("camera", np.ascontiguousarray(camera[:20, :24, None]))], spec, NB2NB)
    (record,) = evaluate(Median3(MethodSetup(channels=1, budget=None)), cases, NB2NB, torch.device("cpu"))  # type: ignore[arg-type]
    noisy, clean = cases[0].noisy[0, 0].numpy(), cases[0].clean_u8[0].numpy()
    padded = np.pad(noisy, 1, mode="reflect")  # mirrored without repeating the edge, as the floor pads
    box = sum(padded[i:i + 20, j:j + 24] for i in range(3) for j in range(3)) / 9
    assert record["floor_psnr"] == pytest.approx(_expected_nb2nb_psnr(box, clean), abs=1e-9)
    q = np.floor(255.0 * np.clip(box.astype(np.float64), 0, 1) + 0.5).astype(np.uint8)
    assert record["floor_ssim"] == pytest.approx(structural_similarity(
        clean, q, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255), abs=1e-6)
    assert record["input_psnr"] < record["floor_psnr"]  # at sigma=25 the box filter does denoise


def test_an_image_too_small_to_pad_has_no_floor() -> None:
    scores = floor_scores(torch.zeros(1, 1, 1, 12), torch.zeros(1, 1, 12, dtype=torch.uint8), NB2NB, [metrics.PSNR, metrics.SSIM])
    assert list(scores) == ["psnr", "ssim"] and all(math.isnan(v) for v in scores.values())


# --- padding -------------------------------------------------------------------------------------


def _image(camera: np.ndarray, h: int, w: int) -> torch.Tensor:
    return torch.from_numpy(camera[:h, :w].astype(np.float32) / 255)[None, None]


@pytest.mark.parametrize(
    ("protocol", "size", "multiple", "expected"),
    [
        (NB2NB, (321, 481), 32, (512, 512)),
        (NB2NB, (481, 321), 32, (512, 512)),
        (NB2NB, (30, 20), 32, (32, 32)),
        (NB2NB, (5, 3), 32, (32, 32)),  # pad (27, 29) far exceeds the sides: repeated reflection
        (NB2NB, (64, 64), 32, (64, 64)),  # already a multiple: nothing to add
        (FLOAT, (321, 481), 32, (352, 512)),
        (FLOAT, (30, 20), 32, (32, 32)),
        (FLOAT, (5, 3), 8, (8, 8)),
    ],
    ids=lambda v: getattr(v, "name", None) or str(v),
)
def test_pad_reflects_to_the_protocol_size(protocol: EvalProtocol, size: tuple[int, int], multiple: int,
                                           expected: tuple[int, int], camera_full: np.ndarray) -> None:
    image = _image(camera_full, *size)
    padded = protocol.pad(image, multiple, square=True)
    assert padded.shape[-2:] == expected
    h, w = size
    assert torch.equal(padded[..., :h, :w], image)  # the image itself is untouched, top-left
    # Reflection without repeating the edge, continued periodically when the pad exceeds the side:
    # exactly numpy's 'reflect' mode, which handles pads larger than the array the same way.
    ref = np.pad(image[0, 0].numpy(), ((0, expected[0] - h), (0, expected[1] - w)), mode="reflect")
    assert np.array_equal(padded[0, 0].numpy(), ref)


def test_pad_keeps_batch_and_channels(astronaut: np.ndarray) -> None:
    image = torch.from_numpy(astronaut[:30, :20]).permute(2, 0, 1)[None].float() / 255
    padded = NB2NB.pad(image, 32, square=True)
    assert padded.shape == (1, 3, 32, 32)
    for c in range(3):  # each channel is padded on its own
        assert np.array_equal(padded[0, c].numpy(), np.pad(image[0, c].numpy(), ((0, 2), (0, 12)), mode="reflect"))


@pytest.mark.parametrize("protocol", [NB2NB, FLOAT], ids=lambda p: p.name)
def test_pad_with_multiple_one_is_a_no_op(protocol: EvalProtocol, camera_full: np.ndarray) -> None:
    image = _image(camera_full, 321, 481)
    padded = protocol.pad(image, 1)
    assert torch.equal(padded, image) and padded.data_ptr() != image.data_ptr()  # the method's own copy


# --- protocol identity, seeds, repeats -----------------------------------------------------------


def test_protocol_ids_and_lookup() -> None:
    assert NB2NB.id == "nb2nb-v1"
    assert FLOAT.id == "float-v1"
    assert PAPER.id == "paper-v1"
    assert get_protocol("nb2nb") is NB2NB and set(PROTOCOLS) == {"nb2nb", "float", "paper"}
    assert protocol_by_id("paper-v1") is PAPER and protocol_by_id("nb2nb-v0") is None
    assert NB2NB.as_dict()["id"] == "nb2nb-v1" and NB2NB.as_dict()["seed"] == 101
    with pytest.raises(BenchError, match="nb2nb"):
        get_protocol("dip")


@pytest.mark.parametrize(("dataset", "repeats"), [("bsd300", 3), ("set14", 20), ("kodak24", 10), ("bsd68", 1), ("cbsd68", 1)])
def test_repeats_for(dataset: str, repeats: int) -> None:
    assert NB2NB.repeats_for(dataset) == repeats
    assert FLOAT.repeats_for(dataset) == 1


def test_noise_seed_depends_on_every_input_and_is_stable() -> None:
    base = ("bsd68", "test001", "gaussian:sigma=25", 0)
    seed = NB2NB.noise_seed(*base)
    assert seed == NB2NB.noise_seed(*base)  # a pure function of its inputs
    assert 0 <= seed < 2**63
    variants = [
        ("set12", "test001", "gaussian:sigma=25", 0),
        ("bsd68", "test002", "gaussian:sigma=25", 0),
        ("bsd68", "test001", "gaussian:sigma=50", 0),
        ("bsd68", "test001", "gaussian:sigma=25", 1),
    ]
    seeds = {NB2NB.noise_seed(*v) for v in variants}
    assert seed not in seeds and len(seeds) == len(variants)
    # The protocol's base seed enters too; FLOAT shares it, so equal inputs give equal seeds.
    assert FLOAT.noise_seed(*base) == seed


# --- test cases ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_images() -> list[CleanImage]:
    """Two real gray images, cropped small (the noise is drawn for every pixel)."""
    camera = skimage.data.camera()[100:196, 200:296, None]
    coins = skimage.data.coins()[96:192, 128:256, None]  # has near-black gaps and bright coins
    return [CleanImage("camera", np.ascontiguousarray(camera)), CleanImage("coins", np.ascontiguousarray(coins))]


def test_make_test_cases_is_reproducible_and_unclipped(test_images: list[CleanImage],
                                                      families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec("gaussian:sigma=25", families)
    first = make_test_cases("bsd300", test_images, spec, NB2NB)
    second = make_test_cases("bsd300", test_images, spec, NB2NB)
    assert len(first) == len(test_images) * 3  # bsd300: three draws per image
    assert [(c.image_id, c.repeat) for c in first] == [(i.id, r) for i in test_images for r in range(3)]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.noisy, b.noisy) and a.noise_seed == b.noise_seed
    for case in first:
        image = next(i for i in test_images if i.id == case.image_id)
        assert case.noisy.shape == (1, 1, *image.pixels.shape[:2]) and case.noisy.dtype == torch.float32
        assert torch.equal(case.clean_u8, torch.from_numpy(image.pixels).permute(2, 0, 1))
        assert case.noise_seed == NB2NB.noise_seed("bsd300", case.image_id, "gaussian:sigma=25", case.repeat)
        # Noisy inputs are never clipped: sigma=25 around dark and bright pixels leaves [0, 1].
        assert case.noisy.min().item() < 0 and case.noisy.max().item() > 1
        # And never quantised: the values are off the 8-bit grid.
        assert not torch.equal(case.noisy * 255, torch.round(case.noisy * 255))
        assert json.loads(case.level_text) == {"sigma": 25.0}
    # The repeats of one image are different draws.
    assert not torch.equal(first[0].noisy, first[1].noisy)


def test_test_case_noise_does_not_depend_on_the_other_images(test_images: list[CleanImage],
                                                             families: Mapping[str, NoiseFamily]) -> None:
    # Evaluating a subset (e.g. --test-images 1) must reproduce the same bits for the images it keeps.
    spec = parse_spec("poisson:lam=30", families)
    both = make_test_cases("bsd68", test_images, spec, NB2NB)
    alone = make_test_cases("bsd68", test_images[1:], spec, NB2NB)
    assert len(both) == 2 and len(alone) == 1
    assert torch.equal(both[1].noisy, alone[0].noisy)


def test_range_setting_records_each_drawn_level(test_images: list[CleanImage],
                                                families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec("gaussian:sigma=0-50", families)
    cases = make_test_cases("set14", test_images, spec, NB2NB)
    assert len(cases) == len(test_images) * 20
    levels = [json.loads(c.level_text)["sigma"] for c in cases]
    assert all(0.0 <= s <= 50.0 for s in levels)
    assert len(set(levels)) == len(cases)  # one fresh level per (image, repeat)
    for case, sigma in zip(cases, levels, strict=True):
        assert sigma == pytest.approx(float(case.levels["sigma"][0]), abs=1e-6)
        # The recorded level is the one used: the residual's std matches it (9216+ pixels: ~1.5%
        # relative std; 8% plus 0.5 gray levels of slack covers clean-image rounding and sigma ~ 0).
        residual_std = (case.noisy[0] - case.clean_u8.float() / 255).std().item() * 255
        assert residual_std == pytest.approx(sigma, rel=0.08, abs=0.5)


def test_make_test_cases_crops_the_centre(test_images: list[CleanImage], families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec("gaussian:sigma=25", families)
    (case, _) = make_test_cases("bsd68", test_images, spec, NB2NB, crop=32)
    pixels = test_images[0].pixels  # 96x96 -> rows/cols 32..63
    assert case.noisy.shape == (1, 1, 32, 32)
    assert torch.equal(case.clean_u8, torch.from_numpy(pixels[32:64, 32:64]).permute(2, 0, 1))


def test_a_method_without_the_square_convention_is_padded_side_by_side(camera_full: np.ndarray) -> None:
    """input_multiple=2 on a 321x481 image adds one row and one column, not a 482x482 square."""
    image = _image(camera_full, 321, 481)
    assert NB2NB.pad(image, 2).shape[-2:] == (322, 482)
    assert NB2NB.pad(image, 2, square=True).shape[-2:] == (482, 482)  # the built-in networks' convention
