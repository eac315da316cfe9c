"""One process at a time in a run folder: an advisory lock on ``RUN_DIR/.lock``, held for the whole run.

``bench run`` takes the lock before it reads or writes anything else in the folder; a second run into
the same folder while the first is alive is refused with a :class:`BenchError` that names the holder
(pid, host, start time, as the holder wrote them into the lock file). The lock belongs to the open
file, not to the file's existence: the operating system drops it when the holder exits or is killed,
so the lock of a killed run is simply taken over, never guessed stale from a pid or an age. A run
that ends normally empties the file; one that finds a holder written there knows the run before it
was killed, and says so.

Jobs submitted through an executor (``runner.run_unit``) do not take the lock: they run on behalf of
the grid's process, which holds it while it waits for them, and each writes only its own part folder.

POSIX systems use ``fcntl.flock``; Windows locks one byte far past the holder text with
``msvcrt.locking``, so others can still read who holds it. On a file system that cannot lock (some
network mounts) the run goes on unguarded, with a warning.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from denoise_bench.errors import BenchError

LOCK = ".lock"
_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK}  # flock's, and msvcrt's
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

    _WINDOWS_BYTE = 1 << 20  # past any holder text: locked bytes cannot be read by others on Windows


@contextmanager
def run_lock(run_dir: Path, echo: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the lock of ``run_dir`` (created if missing) for the duration of the block.

    Raises :class:`BenchError` if another process holds it; nothing else in the folder is touched then.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    # Opened without truncating, so a refused run leaves the holder's text in place.
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    try:
        locked = _try_lock(fd)
        if locked is None:
            echo(f"warning: the file system of {run_dir} cannot lock files; nothing stops a second run "
                 f"into this folder at the same time")
            yield
            return
        if not locked:
            raise BenchError(f"run folder {run_dir} is in use by {_describe(_read(fd))}; "
                             f"wait for it or use another --out")
        left = _read(fd)
        if left:
            echo(f"run folder {run_dir}: taking over the lock of {_describe(left)}, a run that did not "
                 f"end normally (killed?)")
        _write(fd, json.dumps(_holder()))
        try:
            yield
        finally:
            _write(fd, "")  # a run that ended leaves no holder behind
            _unlock(fd)
    finally:
        os.close(fd)


def _holder() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(timespec="seconds")}


def _describe(text: str) -> str:
    """``pid N on host H since T`` from the lock file's text; the holder may not have written it yet."""
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (ValueError, TypeError, KeyError):
        return "another process"


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", errors="replace").strip()


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode("utf-8"))


def _try_lock(fd: int) -> bool | None:
    """Take the lock without waiting: False if another process holds it, None if locks are not supported."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as exc:
        if exc.errno in _HELD:
            return False
        if exc.errno in _UNSUPPORTED:
            return None
        raise
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
