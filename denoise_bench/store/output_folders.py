"""Where the suite may write: a folder only if it is new, empty, or one the suite made for the same purpose.

Each kind of output folder holds a file the suite writes into every folder of that kind (a run
folder its ``config.json``, a leaderboard its ``leaderboard.json``). A folder that holds other files
but not that one is somebody else's: nothing is written into it, so nothing the suite did not write
is ever overwritten or deleted there.
"""

from __future__ import annotations

import errno
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from denoise_bench.atomic import out_of_space
from denoise_bench.errors import BenchError


def claim_folder(folder: Path, marker: str, kind: str, ignored: Collection[str] = ()) -> None:
    """Refuse to write into ``folder`` unless it does not exist yet, holds ``marker`` (it is a ``kind`` the
    suite made), or holds nothing but empty folders and the names in ``ignored`` (what the suite writes
    there first, such as a run's ``.lock``). A file where the folder should be is left to the writer to name."""
    if not folder.is_dir() or (folder / marker).exists():
        return
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in ignored and not _empty_folder(p))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise BenchError(f"--out {folder} holds files and is no {kind} (it has no {marker}; it holds {shown}): "
                         f"nothing is written into it; choose a new or empty folder")


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


# What a file system answers a write it will not take: read-only, or not the user's to write; or a folder to
# make where a file (or a broken link) is.
_REFUSED = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOTDIR}


@contextmanager
def writing_into(out: Path, then: str = "free some space, then run it again") -> Iterator[None]:
    """A write at, under or above ``out`` (a folder, or a file, made with its parents) that the file system
    refuses ends as one line naming the path and why, not a traceback; other errors pass as they are. A full
    disk's line ends with ``then``: what to do next."""
    try:
        yield
    except OSError as exc:
        if out_of_space(exc):  # a full disk, or a quota; the file may be named or not
            raise BenchError(f"No space left on device writing {exc.filename or out}; {then}") from None
        if exc.errno not in _REFUSED or not exc.filename:
            raise
        where = Path(str(exc.filename))
        if where != out and where not in out.parents and out not in where.parents and out.parent not in where.parents:
            raise  # not the output (an input it could not read, say): its own error says so
        if where.name.startswith(".") and where.name.endswith(".tmp"):  # atomic.replacing's temporary file
            where = where.parent
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            blocker = next((p for p in (where, *where.parents) if p.is_symlink() or p.exists()), where)
            if not blocker.is_dir():
                what = "a broken symbolic link" if blocker.is_symlink() and not blocker.exists() else "a file"
                raise BenchError(f"cannot write in {where}: {blocker} is {what}, not a folder; "
                                 "choose another --out") from None
        raise BenchError(f"cannot write in {where}: {exc.strerror or exc}; choose an --out where you can write") from None
