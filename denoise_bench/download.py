"""Downloading data files: sha256-verified, retried, atomic, with an offline fallback message.

:func:`fetch` is the one way this package reads a file from the network. Its guarantees:

* **Nothing partial at the destination.** The body is streamed into a uniquely named ``*.part`` file
  next to ``dest`` and moved into place with :func:`os.replace` only once it is complete and
  verified, so an interrupted run, a crash or a second process never sees half a file at ``dest``.
* **Verified.** The sha256 is computed while streaming. A body shorter than the server's
  ``Content-Length`` is an interrupted transfer (retried). A complete body whose sha256 differs from
  the pinned one is deleted and refused with a :class:`BenchError` naming the URL and both hashes;
  it is **not** retried, because the server delivered everything it meant to and would hand the same
  wrong bytes over again.
* **Cached.** If ``dest`` already holds the pinned sha256, no request is made. (With no pinned hash,
  an existing ``dest`` is returned as is: verifying it is the caller's business, see
  ``remote_set``'s trust-on-first-use record.)
* **Retried, within bounds.** HTTP 5xx, 408, 429, connection errors, timeouts and interrupted
  transfers are retried ``retries`` times (so at most ``retries + 1`` requests) with exponential
  back-off ``backoff * 2**n`` seconds; other 4xx answers are final. ``timeout`` bounds every socket
  operation (connect, each read).
* **An offline way out.** When the last attempt fails, the error says which URL failed and why, and
  exactly which file to put where (``dest``, and its sha256) to carry on without network.
* **A progress bar** over the bytes (against ``Content-Length`` when the server sends one), by default
  on a terminal only: a log file gets no bar. ``bench run --no-progress`` turns it off and
  ``--progress`` on through :func:`progress_bars`, which the planning of a run (where datasets are
  downloaded) sets, so that the dataset plugins that call :func:`fetch` need not pass it along.

The network is reached with the standard library only (``urllib.request``); the bar is tqdm's, which the
package depends on anyway.

:func:`extract` unpacks ``.zip`` and ``.tar[.gz|.bz2|.xz]`` archives, refusing any member that would
land outside the target folder (absolute paths, ``..``, links, devices) before writing anything.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import logging
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm.auto import tqdm

from denoise_bench.errors import BenchError

CACHE_ENV = "DENOISE_BENCH_CACHE"
CHUNK_BYTES = 1 << 16
# Answers that say "try again later" rather than "this will never work".
RETRY_STATUSES = frozenset({408, 429})


def _user_agent() -> str:
    try:
        return f"denoise-bench/{importlib.metadata.version('denoise-bench')}"
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "denoise-bench"


USER_AGENT = _user_agent()
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

log = logging.getLogger(__name__)

# Whether downloads show a bar: None, only on a terminal (outside a run); True or False, as a run's --progress says.
_PROGRESS: ContextVar[bool | None] = ContextVar("download_progress", default=None)


@contextmanager
def progress_bars(enabled: bool | None) -> Iterator[None]:
    """Downloads inside show a progress bar (``enabled``), none (False), or one on a terminal only (None)."""
    token = _PROGRESS.set(enabled)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def cache_dir() -> Path:
    """Where downloads go when no data directory is given: ``$DENOISE_BENCH_CACHE`` or ``~/.cache/denoise-bench``."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "denoise-bench"


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (data files can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_sha256(value: str) -> bool:
    return bool(_SHA256_RE.match(value))


class _Transient(Exception):
    """A failure worth another attempt: server error, dropped connection, timeout, short body."""


class _Final(Exception):
    """A failure that another attempt will not fix (a 4xx answer, an unsupported URL)."""


def fetch(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    retries: int = 3,
    timeout: float = 30,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` (verified against ``sha256`` when given) and return ``dest``.

    See the module docstring for the guarantees. Raises :class:`BenchError` on any failure; the
    message names the URL, the reason, and the file to place by hand to proceed offline.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if expected is not None and not is_sha256(expected):
        raise BenchError(f"invalid sha256 {sha256!r} for {url} (expected 64 hex digits)")
    if dest.is_file() and (expected is None or sha256_file(dest) == expected):
        return dest  # cached: no network at all
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise BenchError(f"cannot download {url}: only http and https URLs are supported")
    if retries < 0:
        raise BenchError(f"retries must be >= 0, got {retries}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the folder for {dest}: {exc}") from None

    reason = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            log.warning("retrying %s in %.1f s (%s)", url, delay, reason)
            time.sleep(delay)
        try:
            _download_verified(url, dest, expected, timeout)
            return dest
        except _Transient as exc:
            reason = str(exc)
        except _Final as exc:
            raise BenchError(_offline_message(url, dest, expected, str(exc), attempt + 1)) from None
    raise BenchError(_offline_message(url, dest, expected, reason, retries + 1))


def _download_verified(url: str, dest: Path, expected: str | None, timeout: float) -> None:
    """One attempt: stream into a fresh ``.part`` file, verify, move into place; never leave the part behind."""
    # A unique name (two processes may fetch the same file), opened exclusively; not mkstemp, whose
    # 0600 mode would make a file in a shared data folder unreadable to others.
    part = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        fh = part.open("xb")
    except OSError as exc:
        raise BenchError(f"cannot write a temporary file next to {dest}: {exc}") from None
    try:
        with fh:
            actual = _stream(url, fh, timeout)
        if expected is not None and actual != expected:
            raise BenchError(
                f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; the download was "
                f"deleted and nothing was written to {dest} (not retried: the server sent a complete file "
                f"that is not the pinned one). To proceed, put a file with sha256 {expected} at {dest}"
            )
        os.replace(part, dest)  # atomic on one filesystem: dest is either absent/old or complete
    except OSError as exc:
        # Network errors were turned into _Transient inside _stream; an OSError here is local (disk full,
        # permissions), which retrying will not fix.
        raise BenchError(f"cannot write {dest}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)


def _stream(url: str, fh: BinaryIO, timeout: float) -> str:
    """GET ``url`` into the open binary file ``fh``; return the sha256 of what was received.

    Raises _Transient / _Final for network problems, so the caller can tell them from local I/O errors.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        # A fresh opener per call (not urlopen's process-wide one) so the current proxy settings apply.
        response = urllib.request.build_opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        status = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in RETRY_STATUSES:
            raise _Transient(status) from None
        raise _Final(f"{status} (not retried)") from None
    except ValueError as exc:  # a malformed URL never gets better
        raise _Final(f"invalid URL: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError: refused, unreachable, DNS, timeout
        raise _Transient(_describe(exc)) from None

    digest = hashlib.sha256()
    received = 0
    with response:
        declared = _content_length(response)
        with _bar(url, declared) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                    raise _Transient(f"transfer interrupted after {received} bytes: {_describe(exc)}") from None
                if not chunk:
                    break
                digest.update(chunk)
                fh.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if declared is not None and received != declared:
        raise _Transient(f"transfer interrupted: received {received} of {declared} bytes")
    return digest.hexdigest()


def _bar(url: str, total: int | None) -> tqdm:
    """Bytes received of ``total`` (None: unknown); shown as :func:`progress_bars` says, by default on a terminal
    only (tqdm's ``disable=None``)."""
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name or url
    return tqdm(total=total, desc=f"download {name}", unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                disable=None if _PROGRESS.get() is None else not _PROGRESS.get())


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # a malformed header is no evidence either way; the sha256 still decides


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc_reason = exc.reason
        return f"{type(exc_reason).__name__}: {exc_reason}" if isinstance(exc_reason, BaseException) else str(exc_reason)
    return f"{type(exc).__name__}: {exc}"


def _offline_message(url: str, dest: Path, expected: str | None, reason: str, attempts: int) -> str:
    """One line (the CLI prints BenchErrors without a traceback) that tells the user how to go on offline."""
    checksum = f"with sha256 {expected}" if expected else "(no sha256 is pinned for it)"
    stale = " (the file there now has a different sha256 and was left untouched)" if dest.exists() else ""
    return (
        f"could not download {url}: {reason} ({attempts} attempt{'s' if attempts != 1 else ''}). "
        f"To proceed without network, fetch that file elsewhere and put it at {dest} {checksum}{stale}"
    )


# --- archives ------------------------------------------------------------------------------------


def safe_relative(name: str, what: str = "path") -> PurePosixPath:
    """``name`` as a relative path that stays inside its folder, or a BenchError.

    Refuses absolute paths (``/x``, ``\\x``, ``C:x``), any ``..`` component and empty names, with
    either slash, so an archive or a manifest can never write outside the folder it is unpacked into.
    """
    normal = name.replace("\\", "/")
    path = PurePosixPath(normal)
    if not normal.strip("/") or normal.startswith("/") or re.match(r"^[A-Za-z]:", normal) or ".." in path.parts:
        raise BenchError(f"refusing unsafe {what} {name!r} (absolute, or leaves its folder with '..')")
    return path


def extract(archive: Path, into: Path) -> list[Path]:
    """Unpack a .zip, .tar[.gz|.bz2|.xz] or .rar into ``into``; return the extracted files, sorted.

    Every member is checked before anything is written, so an archive with one bad member (absolute
    path, ``..``, a symlink/hardlink/device in a tar) is refused as a whole with a BenchError.
    """
    archive, into = Path(archive), Path(into)
    if not archive.is_file():
        raise BenchError(f"archive not found: {archive}")
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, into)
    if tarfile.is_tarfile(archive):
        return _extract_tar(archive, into)
    if is_rar(archive):
        return _extract_rar(archive, into)
    raise BenchError(f"{archive}: not a zip, tar or rar archive")


RAR_MAGIC = b"Rar!\x1a\x07"  # RAR 4 (then 0x00) and RAR 5 (then 0x01 0x00)
# External programs that read RAR, in order of preference: (program, list members, extract into {into}).
RAR_TOOLS = (
    ("bsdtar", ["-tf"], ["-xf", "{archive}", "-C", "{into}"]),  # libarchive (Debian: libarchive-tools)
    ("unrar", ["lb"], ["x", "-o+", "-idq", "{archive}", "{into}/"]),
)


def is_rar(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(RAR_MAGIC)) == RAR_MAGIC


def _extract_rar(archive: Path, into: Path) -> list[Path]:
    """RAR has no reader in the standard library: list and unpack it with bsdtar or unrar."""
    found = next(((name, program, listing, unpack) for name, listing, unpack in RAR_TOOLS
                  if (program := shutil.which(name))), None)
    if found is None:
        raise BenchError(f"{archive} is a RAR archive: unpacking it needs bsdtar (Debian/Ubuntu: apt install "
                         f"libarchive-tools) or unrar on PATH; or unpack it by hand into {into}")
    name, program, listing, unpack = found
    listed = _run_tool([program, *listing, str(archive)], archive, name)
    for member in filter(None, (line.strip() for line in listed.splitlines())):
        _check_inside(into, safe_relative(member, f"member of {archive}"), archive)
    into.mkdir(parents=True, exist_ok=True)
    _run_tool([program, *(a.format(archive=archive, into=into) for a in unpack)], archive, name)
    files = []
    for path in sorted(into.rglob("*")):
        if path.is_symlink():  # a link can point anywhere: refuse the whole archive, as for tar
            shutil.rmtree(into, ignore_errors=True)
            raise BenchError(f"{archive}: refusing member {path.relative_to(into)} (a link, not a regular file)")
        if path.is_file():
            files.append(path.resolve())
    return files


def _run_tool(command: list[str], archive: Path, name: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BenchError(f"{archive}: {name} could not read it ({detail[-1] if detail else f'exit {result.returncode}'})")
    return result.stdout


def _check_inside(into: Path, member: PurePosixPath, archive: Path) -> Path:
    # Belt and braces after safe_relative: also catches a symlinked folder already inside ``into``.
    target = (into / member).resolve()
    if not target.is_relative_to(into.resolve()):
        raise BenchError(f"{archive}: member {str(member)!r} would be written outside {into}")
    return target


def _extract_zip(archive: Path, into: Path) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        members = [safe_relative(info.filename, f"member of {archive}") for info in infos]
        files = [_check_inside(into, m, archive) for m, info in zip(members, infos) if not info.is_dir()]
        into.mkdir(parents=True, exist_ok=True)
        zf.extractall(into)
    return sorted(files)


def _extract_tar(archive: Path, into: Path) -> list[Path]:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        files: list[Path] = []
        for info in members:
            rel = safe_relative(info.name, f"member of {archive}")
            if not (info.isfile() or info.isdir()):
                # Links can point anywhere and devices are never data: refuse rather than skip silently.
                raise BenchError(f"{archive}: refusing member {info.name!r} (not a regular file or folder)")
            target = _check_inside(into, rel, archive)
            if info.isfile():
                files.append(target)
        into.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the standard library's own safety net too
            tf.extractall(into, members=members, filter="data")
        else:  # pragma: no cover - older Pythons; the checks above already refused anything unsafe
            tf.extractall(into, members=members)
    return sorted(files)
