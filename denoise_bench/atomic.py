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
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _new_temporary(path: Path) -> Path:
    """A new, empty, uniquely named file beside ``path``, created with the permissions the umask gives any new
    file (not mkstemp's 0600: results, checkpoints and exports are meant to be read by others where the umask says so)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # another writer's temporary file: draw another name
            continue


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, with the permissions of any new file
    (``0o666`` less the umask), even if the writer made the temporary file again with others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    mode = tmp.stat().st_mode & 0o777  # what the umask gave it
    try:
        yield tmp
        os.chmod(tmp, mode)  # safetensors' save_file replaces the file it is given with one of mode 0600
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: name the one being replaced
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_new(path: Path, data: bytes) -> None:
    """Write ``data`` as the new file ``path``, whole or not at all, and never over a file already there (one
    another process made meanwhile included): FileExistsError naming ``path`` then, and nothing changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    try:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc  # name the file, as replacing does
        try:
            os.link(tmp, path)  # atomic, and refused if path exists; its mode is the umask's, as tmp's
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        except OSError:  # no hard links here (some network and FAT file systems): claim the name, then fill it
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` is a write refused for want of space (a full disk, or a quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_text_atomic(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
