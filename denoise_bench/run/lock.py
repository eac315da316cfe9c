"""One process at a time in a run folder: an advisory lock on ``RUN_DIR/.lock``, held for the whole run.

``bench run`` takes the lock before it reads or writes anything else in the folder; a second run into
the same folder while the first is alive is refused with a :class:`BenchError` that names the holder
(pid, host, start time, as the holder wrote them into the lock file). The lock belongs to the open
file, not to the file's existence: the operating system drops it when the holder exits or is killed,
so the lock of a killed run is simply taken over, never guessed stale from a pid or an age. A run
that ends normally empties the file; one that finds a holder written there knows the run before it
was killed, and says so.

Jobs submitted through an executor (``runner.run_unit``) do not take the run folder's lock: they run
on behalf of the grid's process, which holds it while it waits for them. Each takes the lock of its
own part folder (``parts/<unit>/.lock``) instead, waiting (``wait=True``) if another job of the same
unit holds it (one requeued, or resubmitted by a resume while the first still ran), so that a part is
written by one process at a time and a held part lock tells that its job is still alive.

A lock file that cannot be opened (a folder in its place, no permission) and a folder that cannot be
made (a file in its place) are refused with a :class:`BenchError` naming the path.

POSIX systems use ``fcntl.flock``; Windows locks one byte far past the holder text with
``msvcrt.locking``, so others can still read who holds it. On a file system that cannot lock (some
network mounts) the run goes on unguarded, with a warning.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
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
def run_lock(run_dir: Path, echo: Callable[[str], None] = print, *, wait: bool = False,
             what: str = "run folder") -> Iterator[None]:
    """Hold the lock of ``run_dir`` (created if missing) for the duration of the block.

    Raises :class:`BenchError` if another process holds it; nothing else in the folder is touched then.
    With ``wait``, says whom it waits for and waits until the holder ends instead. ``what`` names the
    folder in messages ("run folder", "part folder").
    """
    _make_folder(run_dir, what)
    fd, locked = _open_locked(run_dir, echo, wait, what)
    try:
        if locked is None:
            echo(f"warning: the file system of {run_dir} cannot lock files; nothing stops a second run "
                 f"into this folder at the same time")
            yield
            return
        left = _read(fd)
        if left:
            echo(f"{what} {run_dir}: taking over the lock of {_describe(left)}, a run that did not "
                 f"end normally (killed?)")
        _write(fd, json.dumps(_holder()))
        try:
            yield
        finally:
            _write(fd, "")  # a run that ended leaves no holder behind
            _unlock(fd)
    finally:
        os.close(fd)


def running_holder(run_dir: Path) -> str | None:
    """Who is running into ``run_dir`` now (``pid N on host H since T``), or None: its lock tried without waiting,
    and let go at once; nothing is made or written. For readers that must not take an unfinished run for a
    finished one (``bench leaderboard``)."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:  # no lock file (never run, or a folder made before locks): nobody holds it
        return None
    try:
        try:
            locked = _try_lock(fd)
        except OSError:
            return None
        if locked is False:
            return _describe(_read(fd))
        if locked:
            _unlock(fd)
        return None
    finally:
        os.close(fd)


def _make_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BenchError(f"{what} {folder} is a file, not a folder; choose another --out") from None
    except OSError as exc:
        raise BenchError(f"cannot make the {what} {folder}: {exc.strerror or exc}") from None


def _open_locked(folder: Path, echo: Callable[[str], None], wait: bool, what: str) -> tuple[int, bool | None]:
    """The open lock file of ``folder`` and whether it is locked (None: locks unsupported); refused or waited for
    if another process holds it. Retried if the file was replaced meanwhile (its folder removed and made again),
    so the lock held is always the one of the file now in place."""
    path = folder / LOCK
    while True:
        try:
            # Opened without truncating, so a refused run leaves the holder's text in place.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except IsADirectoryError:
            raise BenchError(f"{path} is a folder, not the lock file of the {what}; remove it") from None
        except OSError as exc:
            raise BenchError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
        try:
            locked = _try_lock(fd)
            if locked is False:
                holder = _describe(_read(fd))
                if not wait:
                    raise BenchError(f"{what} {folder} is in use by {holder}; wait for it or use another --out")
                echo(f"{what} {folder} is in use by {holder}; waiting for it to end")
                _lock_waiting(fd)
                locked = True
            if locked and not _same_file(fd, path):
                _unlock(fd)
                os.close(fd)
                continue
        except BaseException:
            os.close(fd)
            raise
        return fd, locked


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


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


def _lock_waiting(fd: int) -> None:
    """Take the lock, waiting for its holder to let go."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    while not _try_lock(fd):
        time.sleep(0.5)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
