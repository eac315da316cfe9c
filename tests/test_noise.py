"""Noise families: their statistics, per-image range levels, determinism, and spec parsing."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from denoise_bench.errors import BenchError
from denoise_bench.noise import NoiseFamily, NoiseSpec, ParamValue, parse_spec, resolve_setting, split_noise_list
from denoise_bench.plugins import get_registry

# Clean intensities used for the moment checks: dark, mid and bright.
INTENSITIES = (0.2, 0.5, 0.8)
# 447 * 448 = 200,256 pixels per intensity.
SIDE_H, SIDE_W = 447, 448
N_PIXELS = SIDE_H * SIDE_W


@pytest.fixture
def families() -> dict[str, NoiseFamily]:
    # Fetched per test: conftest resets the registry after every test.
    return get_registry().noise_families


def _constant_batch(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(3, 1, H, W): image i is the constant INTENSITIES[i]."""
    values = torch.tensor(INTENSITIES, dtype=dtype).view(-1, 1, 1, 1)
    return values.expand(-1, 1, SIDE_H, SIDE_W).contiguous()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Expected per-pixel variance of y given the clean value x, for each fixed test spec.
SIGMA25, SIGMA10 = 25 / 255, 10 / 255
MOMENT_CASES: list[tuple[str, Callable[[float], float]]] = [
    ("gaussian:sigma=25", lambda x: SIGMA25**2),
    ("poisson:lam=30", lambda x: x / 30),
    ("speckle:v=0.1", lambda x: x * x * 0.1),
    ("poisson-gaussian:lam=30,sigma=10", lambda x: x / 30 + SIGMA10**2),
]


@pytest.mark.parametrize(("spec_text", "variance"), MOMENT_CASES, ids=[c[0] for c in MOMENT_CASES])
def test_noise_is_zero_mean_with_the_documented_variance(
    spec_text: str, variance: Callable[[float], float], families: Mapping[str, NoiseFamily]
) -> None:
    spec = parse_spec(spec_text, families)
    clean = _constant_batch()
    noisy, _ = spec.sample(clean, _gen(1234))
    for i, x in enumerate(INTENSITIES):
        y = noisy[i].double()
        var = variance(x)
        # The sample mean has std sqrt(var / N); 6 standard errors (N = 200k) cannot fail by chance
        # (p < 2e-9) yet is ~0.1% of x, far tighter than any bias a wrong formula would add.
        mean_tol = 6 * math.sqrt(var / N_PIXELS)
        assert abs(y.mean().item() - x) < mean_tol, (spec_text, x)
        # The sample variance has relative std sqrt((kurtosis - 1) / N); kurtosis <= 3.2 for every
        # law here (Gaussian 3, uniform 1.8, Poisson 3 + 1/(lam x) <= 3.17), so 6 * sqrt(2.2 / N)
        # = 2.0% relative is a 6-sigma bound. A wrong scale (e.g. sigma not divided by 255, lam
        # applied twice, uniform width a instead of sqrt(3v)) is off by far more.
        var_tol = 6 * math.sqrt(2.2 / N_PIXELS) * var
        assert abs(y.var(unbiased=True).item() - var) < var_tol, (spec_text, x, y.var().item(), var)


def test_speckle_noise_is_uniform_on_the_documented_interval(families: Mapping[str, NoiseFamily]) -> None:
    # n ~ U(-sqrt(3v), sqrt(3v)), so |y - x| <= x sqrt(3v) and the bound is (nearly) reached.
    v = 0.1
    half = math.sqrt(3 * v)
    clean = _constant_batch()
    noisy, _ = parse_spec(f"speckle:v={v}", families).sample(clean, _gen(5))
    rel = ((noisy.double() - clean.double()) / clean.double()).flatten()
    assert rel.abs().max().item() <= half * (1 + 1e-6)  # float32 slack only
    # With 600k uniform draws the extremes are within 1e-4 of the ends with overwhelming probability.
    assert rel.max().item() > 0.999 * half and rel.min().item() < -0.999 * half
    # A uniform law puts 10% of its mass in each tenth of the interval (6-sigma tolerance ~0.23%).
    counts = torch.histc(rel.float(), bins=10, min=-half, max=half) / rel.numel()
    assert torch.allclose(counts, torch.full_like(counts, 0.1), atol=0.0025)


RANGE_SPECS = ["gaussian:sigma=0-50", "poisson:lam=5-50", "speckle:v=0-0.2", "poisson-gaussian:lam=5-50,sigma=0-25"]


def _expected_variance(family: str, levels: dict[str, torch.Tensor], x: float) -> torch.Tensor:
    if family == "gaussian":
        return (levels["sigma"].double() / 255) ** 2
    if family == "poisson":
        return x / levels["lam"].double()
    if family == "speckle":
        return x * x * levels["v"].double()
    return x / levels["lam"].double() + (levels["sigma"].double() / 255) ** 2


@pytest.mark.parametrize("spec_text", RANGE_SPECS)
def test_range_spec_draws_one_level_per_image(spec_text: str, families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec(spec_text, families)
    batch, side, x = 64, 64, 0.5
    clean = torch.full((batch, 1, side, side), x)
    noisy, levels = spec.sample(clean, _gen(7))
    for name, value in spec.values:
        level = levels[name]
        assert level.shape == (batch,)
        assert bool(((level >= value.low) & (level <= value.high)).all()), name
        assert len(torch.unique(level)) == batch, f"{name}: levels repeat across images"
        # 64 uniform draws: P(all in the lower or upper 80% of the range) = 2 * 0.8^64 ~ 1e-6.
        span = value.high - value.low
        assert level.min().item() < value.low + 0.2 * span and level.max().item() > value.high - 0.2 * span
    # Each image's empirical variance must follow *its own* recorded level. If levels were drawn per
    # pixel (or shared), every image would show the same pooled variance instead.
    # 4096 pixels: relative std of the sample variance <= sqrt(2.2/4096) = 2.3%, so 12% is ~5 sigma;
    # the absolute floor covers images whose level is ~0 (gaussian/speckle ranges start at 0).
    expected = _expected_variance(spec.name, levels, x)
    empirical = noisy.double().var(dim=(1, 2, 3))
    assert torch.allclose(empirical, expected, rtol=0.12, atol=1e-6), (empirical / expected)
    # And the level is shared by the whole image: its top and bottom halves agree too.
    halves = noisy.double().view(batch, 1, 2, side // 2, side).var(dim=(1, 3, 4))
    assert torch.allclose(halves, expected[:, None].expand(-1, 2), rtol=0.17, atol=1e-6)


def test_fixed_spec_gives_every_image_the_same_level(families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec("poisson-gaussian:lam=30,sigma=10", families)
    _, levels = spec.sample(torch.full((5, 1, 4, 4), 0.5), _gen(0))
    assert torch.equal(levels["lam"], torch.full((5,), 30.0))
    assert torch.equal(levels["sigma"], torch.full((5,), 10.0))


@pytest.mark.parametrize("spec_text", [c[0] for c in MOMENT_CASES] + RANGE_SPECS)
def test_sampling_is_deterministic_given_the_generator(spec_text: str, families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec(spec_text, families)
    clean = torch.rand(4, 3, 32, 32, generator=_gen(99))
    a, levels_a = spec.sample(clean, _gen(42))
    b, levels_b = spec.sample(clean, _gen(42))
    c, _ = spec.sample(clean, _gen(43))
    assert torch.equal(a, b)
    assert all(torch.equal(levels_a[k], levels_b[k]) for k in levels_a)
    assert not torch.equal(a, c)
    # The clean input is not modified in place.
    assert torch.equal(clean, torch.rand(4, 3, 32, 32, generator=_gen(99)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spec_text", [c[0] for c in MOMENT_CASES])
def test_sampling_preserves_shape_and_dtype(spec_text: str, dtype: torch.dtype, families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec(spec_text, families)
    clean = torch.rand(2, 3, 17, 23, generator=_gen(0)).to(dtype)
    noisy, levels = spec.sample(clean, _gen(1))
    assert noisy.shape == clean.shape and noisy.dtype == dtype
    assert all(v.shape == (2,) for v in levels.values())


def test_sampling_rejects_a_batch_that_is_not_4d(families: Mapping[str, NoiseFamily]) -> None:
    with pytest.raises(ValueError, match="expected a"):
        parse_spec("gaussian:sigma=25", families).sample(torch.zeros(3, 8, 8), _gen(0))


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("gaussian: sigma = 25", "gaussian:sigma=25"),
        ("  Gaussian:SIGMA=25.0 ", "gaussian:sigma=25"),
        ("poisson:lam=5-50", "poisson:lam=5-50"),
        ("poisson:lam = 5 - 50", "poisson:lam=5-50"),
        ("speckle:v=0.1", "speckle:v=0.1"),
        ("speckle:v=.05-2e-1", "speckle:v=0.05-0.2"),
        ("gaussian:sigma=25-25", "gaussian:sigma=25"),  # an empty range is a fixed value
        # Parameters come out in the family's order, whatever order they were given in.
        ("poisson-gaussian:sigma=10,lam=30", "poisson-gaussian:lam=30,sigma=10"),
    ],
)
def test_parse_spec_canonical_string_round_trips(text: str, canonical: str, families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec(text, families)
    assert str(spec) == canonical
    again = parse_spec(str(spec), families)
    assert again == spec and again.values == spec.values


def test_canonical_string_keeps_a_narrow_range_a_range(families: Mapping[str, NoiseFamily]) -> None:
    spec = parse_spec("gaussian:sigma=1.0000001-1.0000002", families)
    assert spec.is_range
    again = parse_spec(str(spec), families)
    assert again.is_range and again == spec


def test_parse_spec_values_and_range_flag(families: Mapping[str, NoiseFamily]) -> None:
    fixed = parse_spec("gaussian:sigma=25", families)
    ranged = parse_spec("poisson:lam=5-50", families)
    assert fixed.values == (("sigma", ParamValue(25.0, 25.0)),) and not fixed.is_range
    assert ranged.values == (("lam", ParamValue(5.0, 50.0)),) and ranged.is_range
    assert fixed.family is families["gaussian"] and ranged.name == "poisson"


@pytest.mark.parametrize(
    ("family", "train", "tests"),
    [
        ("gaussian", "gaussian:sigma=0-50", ("gaussian:sigma=25", "gaussian:sigma=0-50")),
        ("poisson", "poisson:lam=5-50", ("poisson:lam=30", "poisson:lam=5-50")),
        ("speckle", "speckle:v=0-0.2", ("speckle:v=0.1", "speckle:v=0-0.2")),
    ],
)
def test_resolve_setting_family_name_gives_the_paper_preset(
    family: str, train: str, tests: tuple[str, ...], families: Mapping[str, NoiseFamily]
) -> None:
    setting = resolve_setting(family, families)
    assert setting.label == family
    assert str(setting.train) == train
    assert tuple(str(t) for t in setting.tests) == tests
    assert setting.family is families[family]


def test_resolve_setting_full_spec_trains_and_tests_on_itself(families: Mapping[str, NoiseFamily]) -> None:
    setting = resolve_setting("Gaussian: sigma=15", families)
    assert setting.label == "gaussian:sigma=15"
    assert str(setting.train) == "gaussian:sigma=15"
    assert setting.tests == (setting.train,)


def test_plain_family_is_a_setting_but_not_a_spec(families: Mapping[str, NoiseFamily]) -> None:
    # --noise accepts a bare family (its preset); a spec must give every parameter.
    assert resolve_setting("gaussian", families).train.is_range
    with pytest.raises(BenchError, match="sigma=VALUE"):
        parse_spec("gaussian", families)


def test_unknown_family_lists_the_valid_ones(families: Mapping[str, NoiseFamily]) -> None:
    for call in (lambda: resolve_setting("laplace", families), lambda: parse_spec("laplace:b=1", families)):
        with pytest.raises(BenchError) as info:
            call()
        message = str(info.value)
        assert "laplace" in message
        assert all(name in message for name in ("gaussian", "poisson", "speckle", "poisson-gaussian"))


MALFORMED = [
    "gaussian",  # no parameters (a spec, unlike a setting, must give them)
    "gaussian:",
    "gaussian:sigma",
    "gaussian:sigma=",
    "gaussian:sigma=abc",
    "gaussian:sigma=-5",
    "gaussian:sigma=50-5",
    "gaussian:sigma=300",
    "gaussian:sigma=1e999",  # overflows to inf
    "poisson:lam=0",  # lam must be > 0
    "poisson:lam=0-10",
    "speckle:v=2",
    "gaussian:mu=3",
    "gaussian:sigma=25,sigma=30",
    "gaussian:sigma=25,",
    "poisson-gaussian:lam=30",  # sigma missing
    "laplace:b=1",
    ":sigma=25",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_spec_raises_bench_error_naming_it(text: str, families: Mapping[str, NoiseFamily]) -> None:
    with pytest.raises(BenchError) as info:
        parse_spec(text, families)
    assert text in str(info.value)


@pytest.mark.parametrize("text", [t for t in MALFORMED if ":" in t])
def test_resolve_setting_rejects_malformed_full_specs(text: str, families: Mapping[str, NoiseFamily]) -> None:
    with pytest.raises(BenchError) as info:
        resolve_setting(text, families)
    assert text in str(info.value)


# --- property tests ------------------------------------------------------------------------------

# Each built-in parameter's allowed interval (lam's lower end is exclusive).
_SIGMA = st.floats(min_value=0.0, max_value=255.0, allow_nan=False)
_LAM = st.floats(min_value=0.0, max_value=1e6, exclude_min=True, allow_nan=False)
_V = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_PARAM_STRATEGIES = {"sigma": _SIGMA, "lam": _LAM, "v": _V}
_FAMILY_PARAMS = {"gaussian": ("sigma",), "poisson": ("lam",), "speckle": ("v",), "poisson-gaussian": ("lam", "sigma")}


@st.composite
def _valid_values(draw: st.DrawFn) -> tuple[str, dict[str, tuple[float, float]]]:
    family = draw(st.sampled_from(sorted(_FAMILY_PARAMS)))
    values = {}
    for name in _FAMILY_PARAMS[family]:
        a, b = draw(_PARAM_STRATEGIES[name]), draw(_PARAM_STRATEGIES[name])
        values[name] = (min(a, b), max(a, b))
    return family, values


def _format(family: str, values: dict[str, tuple[float, float]], fmt: Callable[[float], str]) -> str:
    items = [f"{k}={fmt(lo)}" if lo == hi else f"{k}={fmt(lo)}-{fmt(hi)}" for k, (lo, hi) in values.items()]
    return f"{family}:" + ",".join(items)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_valid_values())
def test_property_formatted_valid_specs_parse_back(case: tuple[str, dict[str, tuple[float, float]]],
                                                   families: Mapping[str, NoiseFamily]) -> None:
    family, values = case
    # repr() of a float round-trips exactly, so the parsed values must be the inputs bit for bit.
    spec = parse_spec(_format(family, values, repr), families)
    parsed = dict(spec.values)
    assert set(parsed) == set(values)
    for name, (lo, hi) in values.items():
        assert (parsed[name].low, parsed[name].high) == (lo, hi)
    # The canonical string uses %g (6 significant digits): relative error <= 5e-6, so 1e-5 bounds it.
    canon = dict(parse_spec(str(spec), families).values)
    for name, (lo, hi) in values.items():
        assert math.isclose(canon[name].low, lo, rel_tol=1e-5)
        assert math.isclose(canon[name].high, hi, rel_tol=1e-5)


# Text built from the spec grammar's own characters reaches the deep branches; plain text the shallow ones.
_SPEC_ALPHABET = st.sampled_from(list("gaussian:poisson-speckle,sigma=lamv0123456789.eE+- \t"))
_SPEC_LIKE = st.one_of(
    st.text(),
    st.text(_SPEC_ALPHABET, max_size=40),
    st.builds(lambda f, rest: f + ":" + rest, st.sampled_from(sorted(_FAMILY_PARAMS)), st.text(_SPEC_ALPHABET, max_size=30)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_SPEC_LIKE)
def test_property_arbitrary_text_parses_or_raises_bench_error(text: str, families: Mapping[str, NoiseFamily]) -> None:
    try:
        spec = parse_spec(text, families)
    except BenchError:
        return
    # Anything accepted is a complete, in-range spec whose canonical form parses to itself.
    assert isinstance(spec, NoiseSpec)
    assert parse_spec(str(spec), families) == spec
    for name, value in spec.values:
        assert value.low <= value.high
        spec.family.param(name).check(value.low, text)
        spec.family.param(name).check(value.high, text)


@pytest.mark.parametrize("text,expected", [
    ("gaussian,poisson", ["gaussian", "poisson"]),
    ("gaussian:sigma=25, poisson:lam=30", ["gaussian:sigma=25", "poisson:lam=30"]),
    ("poisson-gaussian:lam=30,sigma=10,gaussian", ["poisson-gaussian:lam=30,sigma=10", "gaussian"]),
    ("speckle,poisson-gaussian:lam=5-50,sigma=0-25", ["speckle", "poisson-gaussian:lam=5-50,sigma=0-25"]),
    ("sigma=25,gaussian", ["sigma=25", "gaussian"]),  # left for the parser to reject by name
])
def test_a_noise_list_splits_between_settings_not_between_parameters(text: str, expected: list[str]) -> None:
    assert split_noise_list(text) == expected
