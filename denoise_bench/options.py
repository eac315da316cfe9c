"""Option values given as text (``--method-option``, ``--executor-option``) turned into typed values."""

from __future__ import annotations

from typing import Any

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_option(text: str, like: Any = None) -> Any:
    """``text`` as a value of ``like``'s type, or, without ``like``, as an int, else a float, else the text itself.

    A bool takes true/false, 1/0 or yes/no. Raises ValueError when ``text`` is not a value of ``like``'s type.
    """
    if like is None:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text
    if isinstance(like, bool):  # before int: bool("false") would be True
        if text.lower() not in TRUE + FALSE:
            raise ValueError(text)
        return text.lower() in TRUE
    return type(like)(text)
