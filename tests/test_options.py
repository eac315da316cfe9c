"""Option text (--method-option, --executor-option) to typed values: one parser for both."""

from __future__ import annotations

import pytest

from denoise_bench.errors import BenchError
from denoise_bench.method import resolve_options
from denoise_bench.options import parse_option


@pytest.mark.parametrize("text,expected", [("600", 600), ("0.5", 0.5), ("1e-3", 1e-3), ("gpu", "gpu"), ("true", "true")])
def test_untyped_text_becomes_an_int_a_float_or_stays_text(text: str, expected: object) -> None:
    value = parse_option(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text,like,expected", [("3", 1, 3), ("3", 1.0, 3.0), ("x", "", "x"), ("yes", True, True),
                                                ("FALSE", True, False), ("0", False, False), ("1", False, True)])
def test_text_takes_the_type_of_the_default(text: str, like: object, expected: object) -> None:
    value = parse_option(text, like)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text,like", [("maybe", True), ("2.5", 1), ("abc", 0.1)])
def test_text_that_is_not_of_the_defaults_type_is_refused(text: str, like: object) -> None:
    with pytest.raises(ValueError):
        parse_option(text, like)


def test_a_method_option_of_the_wrong_type_names_the_method_and_option() -> None:
    assert resolve_options("iddp", {"stop_gradient": True, "alpha": 0.001}, {"alpha": "0.01"}) == \
        {"stop_gradient": True, "alpha": 0.01}
    with pytest.raises(BenchError, match=r"method 'iddp': option stop_gradient='maybe' is not a valid bool"):
        resolve_options("iddp", {"stop_gradient": True}, {"stop_gradient": "maybe"})
