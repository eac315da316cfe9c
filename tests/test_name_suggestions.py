"""A misspelt noise name, noise parameter or --config key gets the closest valid one suggested."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.noise import parse_spec, resolve_setting
from denoise_bench.plugins import get_registry


@pytest.mark.parametrize("text,suggested", [
    ("gausian", "gaussian"),  # a family alone: its preset
    ("possion", "poisson"),
    ("gausian:sigma=25", "gaussian"),  # a spec's family
    ("gaussian:sigam=25", "sigma"),  # a spec's parameter
])
def test_a_misspelt_noise_name_suggests_the_registered_one(text: str, suggested: str) -> None:
    with pytest.raises(BenchError, match=f"did you mean '{suggested}'\\?"):
        resolve_setting(text, get_registry().noise_families)


def test_a_noise_name_far_from_every_family_lists_them_without_a_guess() -> None:
    with pytest.raises(BenchError) as caught:
        parse_spec("laplace:b=1", get_registry().noise_families)
    assert "did you mean" not in str(caught.value) and "valid noise families: gaussian," in str(caught.value)


def test_a_misspelt_config_key_suggests_the_flag(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('iteration = 10\n')
    result = CliRunner().invoke(main, ["run", "--config", str(tmp_path / "run.toml"), "--dry-run"])
    assert result.exit_code == 2
    assert "unknown key 'iteration' (did you mean 'iterations'?); valid keys: batch-size," in result.output, result.output


def test_a_misspelt_noise_flag_suggests_the_family(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--noise", "gausian", "--dry-run", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "(did you mean 'gaussian'?)" in result.output, result.output
