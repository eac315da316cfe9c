"""A method's option out of its range or choices stops the run when it is planned (exit 2, nothing written),
not inside its job after the other methods of the grid have trained (Method.check_options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from denoise_bench.errors import BenchError
from denoise_bench.plugins import get_registry
from helpers import bench

GRID = ["--noise", "gaussian:sigma=25", "--dataset", "skimage", "--profile", "smoke", "--no-progress"]


@pytest.mark.parametrize(("methods", "option", "message"), [
    ("unet,s2s", "s2s:keep=2", "s2s: keep must be in (0, 1), got 2"),
    ("unet,iddp", "iddp:blur_kernel=4", "iddp: blur_kernel must be an odd positive side, got 4"),
    ("unet,iddp", "iddp:warm_start=box5:10", "iddp: warm_start='box5:10'"),
    ("n2n,n2v", "n2v:strategy=median", "n2v: unknown strategy 'median'"),
    ("n2n,iddp-sup-start", "iddp-sup-start:warm_steps=-1", "iddp-sup-start: warm_steps must be at least 0, got -1"),
])
def test_a_bad_option_is_refused_before_any_job(tmp_path: Path, methods: str, option: str, message: str) -> None:
    out = tmp_path / "run"
    result = bench("run", "--methods", methods, *GRID, "--method-option", option, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()  # nothing trained, nothing written


@pytest.mark.parametrize("name", sorted(get_registry().methods))
def test_every_methods_own_defaults_pass_its_check(name: str) -> None:
    method = get_registry().method(name)
    method.check_options(dict(method.options))  # raises if a default were out of its own range
    if method.smoke_options:
        method.check_options(dict(method.options) | dict(method.smoke_options))


def test_a_value_out_of_range_is_refused_by_the_class_alone() -> None:
    """The check needs no built method (planning has none): the class and the resolved options."""
    s2s = get_registry().method("s2s")
    with pytest.raises(BenchError, match="dropout must be in"):
        s2s.check_options(dict(s2s.options) | {"dropout": 1.5})
