"""The conditions of a run (budget, engine) in words, field by field: what a leaderboard's refusal to
merge, its merge notes and its page's About block say when runs differ, so that a reader sees
``batch 8 vs batch 2`` rather than two whole budget dicts to compare by eye.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

# Field -> its value in words. The order is the order fields are listed in.
_BUDGET_WORDS: dict[str, Callable[[Any], str]] = {
    "iterations": "{} iterations".format,
    "batch_size": "batch {}".format,
    "crop_size": lambda v: f"{v}×{v} crops",
    "width": "width {}".format,
    "lr_rule": "lr rule {}".format,
    "lr_scale": "lr scale {}".format,
    "init": "init {}".format,
    "per_image_iterations": "{} steps per image for per-image methods".format,
    "test_images": lambda v: "all test images" if v is None else f"first {v} test image{'s' if v != 1 else ''}",
    "test_crop": lambda v: "full-size test images" if v is None else f"centre {v}×{v} test crops",
}
_ENGINE_WORDS: dict[str, Callable[[Any], str]] = {
    "precision": "precision {}".format,
    "channels_last": lambda v: f"channels-last {'on' if v else 'off'}",
    "compile": "torch.compile {}".format,
    "capture": lambda v: f"captured step {'on' if v else 'off'}",
}
WORDS: dict[str, Callable[[Any], str]] = _BUDGET_WORDS | _ENGINE_WORDS
TRAINING_FIELDS = tuple(k for k in _BUDGET_WORDS if not k.startswith("test_"))  # what training got
TEST_FIELDS = ("test_images", "test_crop")  # what was scored
ENGINE_FIELDS = tuple(_ENGINE_WORDS)


def field_text(name: str, value: Any) -> str:
    """One field in words, e.g. ``batch 8``; a field this module does not know as ``name value``."""
    words = WORDS.get(name)
    return words(value) if words else f"{name.replace('_', ' ')} {value}"


def fields_text(values: Mapping[str, Any], names: tuple[str, ...] | list[str]) -> str:
    """The ``names`` of ``values`` that are present, in words, comma-separated."""
    return ", ".join(field_text(k, values[k]) for k in names if k in values)


def condition_difference(mine: str, theirs: str) -> str:
    """How one recorded condition (as ``run_conditions`` writes it: JSON for a budget, engine or protocol,
    plain text for a profile or policy) differs from another, naming only the fields that differ:
    ``batch 8 vs batch 2, 64×64 crops vs 128×128 crops``."""
    a, b = _loaded(mine), _loaded(theirs)
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return f"{_plain(a)} vs {_plain(b)}"
    others = sorted((set(a) | set(b)) - set(WORDS))  # e.g. a protocol's fields
    changed = [k for k in (*WORDS, *others) if (k in a or k in b) and a.get(k) != b.get(k)]
    return ", ".join(f"{_side(a, k)} vs {_side(b, k)}" for k in changed)


def _side(values: dict, name: str) -> str:
    return field_text(name, values[name]) if name in values else f"no {name.replace('_', ' ')}"


def _loaded(condition: str) -> Any:
    try:
        return json.loads(condition)
    except json.JSONDecodeError:
        return condition


def _plain(value: Any) -> str:
    return "none" if value is None else str(value)
