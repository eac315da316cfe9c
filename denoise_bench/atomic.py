"""Replacing files atomically: a kill at any moment leaves the old file or the new one, never half of one.

Every file the suite writes while a run may be interrupted (records, tables, checkpoints, sample
crops, download records) goes through :func:`replacing`: the content is written to a uniquely named
temporary file in the same folder and renamed over the target, so concurrent writers (executor jobs
saving the same crop) never share a temporary file either. A write that fails (a full disk) leaves the
old file as it was, and its error names the file it was writing.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHARED = 0o644  # mkstemp creates 0600; results are meant to be read by others


@contextmanager
def replacing(path: Path, mode: int | None = SHARED) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` (with ``mode``, unless None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: name the one being replaced
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` is a write refused for want of space (a full disk, or a quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_text_atomic(path: Path, text: str, mode: int | None = SHARED) -> None:
    with replacing(path, mode) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
