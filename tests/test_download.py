"""Downloads (denoise_bench.download), downloaded sets (denoise_bench.remote_set) and the built-in ones (datasets/remote_sets.py).

Everything is served by a local ThreadingHTTPServer on 127.0.0.1; an autouse guard makes any
connection to another host fail at once (and records it), so no test can reach the internet.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
import tarfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denoise_bench import download
from denoise_bench.data import TEST, TRAIN
from denoise_bench import remote_set
from denoise_bench.datasets import remote_sets
from denoise_bench.datasets.remote_sets import MANIFEST_PACKAGE
from denoise_bench.remote_set import SIDECAR, RemoteFile, RemoteSet
from denoise_bench.download import cache_dir, extract, fetch, sha256_file
from denoise_bench.errors import BenchError
from denoise_bench.images import list_images
from denoise_bench.plugins import get_registry

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
N2N_RAW = "https://raw.githubusercontent.com/TaoHuang2018/Neighbor2Neighbor/e66389ebef1e64d306d8fcb95f096cf427243452/"


def _fetch(url: str, dest: Path, sha256: str | None, retries: int = 3) -> Path:
    """fetch() as every test calls it: no back-off sleeps, bounded socket waits."""
    return fetch(url, dest, sha256, retries=retries, timeout=5.0, backoff=0.0)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(seed: int, shape: tuple[int, int, int] = (6, 8, 3)) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue(), pixels


def _parts(folder: Path) -> list[Path]:
    return list(folder.rglob("*.part")) if folder.exists() else []


# --- the local server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    kind: str  # "ok": the body; "status": an error code; "short": Content-Length > body, then close; "hang";
    # "unsized": the body with no Content-Length (it ends when the connection closes)
    body: bytes = b""
    status: int = 200


class FileServer:
    """Routes to scripted replies (each request takes the next one; the last repeats); counts requests."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()  # lets "hang" handlers finish at shutdown
        self.lock = threading.Lock()
        self.port = 0

    def route(self, path: str, *replies: Reply) -> str:
        self.routes[path] = list(replies)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next_reply(self, path: str) -> Reply | None:
        with self.lock:
            self.hits[path] += 1
            replies = self.routes.get(path)
            if not replies:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server calls do_<METHOD>
            reply = state.next_reply(self.path)
            if reply is None:
                self.send_error(404)
            elif reply.kind == "status":
                self.send_error(reply.status)
            elif reply.kind == "hang":
                state.release.wait(5)  # longer than the client's timeout; bounded so shutdown never stalls
            else:
                declared = len(reply.body) + (1000 if reply.kind == "short" else 0)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if reply.kind != "unsized":
                    self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(reply.body[: len(reply.body) // 2] if reply.kind == "short" else reply.body)
            self.close_connection = True  # HTTP/1.0: one request per connection, so "short" really ends

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


@contextmanager
def serving() -> Iterator[FileServer]:
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving() as state:
        yield state


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Refuse (and record) every connection to a non-loopback host; keep the cache inside tmp_path."""
    blocked: list[str] = []
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        if address[0] not in LOOPBACK:
            blocked.append(address[0])
            raise ConnectionRefusedError(f"test guard: no connections to {address[0]}")
        return real(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", guarded)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # a proxy would turn 127.0.0.1 into a remote request
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    return blocked


# --- fetch ---------------------------------------------------------------------------------------


def test_good_file_is_verified_and_then_served_from_the_cache(server: FileServer, tmp_path: Path) -> None:
    body, _ = _png(0)
    url = server.route("/good.png", Reply("ok", body))
    dest = tmp_path / "sub" / "good.png"
    assert _fetch(url, dest, _sha(body)) == dest
    assert dest.read_bytes() == body
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # not a temp file's 0600: shared folders stay readable
    assert server.hits["/good.png"] == 1
    assert _fetch(url, dest, _sha(body).upper()) == dest  # cached: hex case does not matter
    assert server.hits["/good.png"] == 1  # no new request
    assert _parts(tmp_path) == []


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv(download.CACHE_ENV)
    assert cache_dir() == Path.home() / ".cache" / "denoise-bench"


def test_wrong_checksum_is_refused_deleted_and_not_retried(server: FileServer, tmp_path: Path) -> None:
    body = b"not the pinned bytes"
    url = server.route("/bad", Reply("ok", body))
    dest = tmp_path / "bad.bin"
    expected = _sha(b"the pinned bytes")
    with pytest.raises(BenchError, match="checksum mismatch") as err:
        _fetch(url, dest, expected, retries=3)
    message = str(err.value)
    assert url in message and expected in message and _sha(body) in message and str(dest) in message
    assert not dest.exists() and _parts(tmp_path) == []
    assert server.hits["/bad"] == 1


def test_a_stale_file_is_kept_until_a_verified_download_replaces_it(server: FileServer, tmp_path: Path) -> None:
    body = b"fresh"
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"stale")
    url = server.route("/f", Reply("status", status=404), Reply("ok", body))
    with pytest.raises(BenchError, match="left untouched"):
        _fetch(url, dest, _sha(body))
    assert dest.read_bytes() == b"stale"
    _fetch(url, dest, _sha(body))
    assert dest.read_bytes() == body


def test_server_errors_are_retried_until_success(server: FileServer, tmp_path: Path) -> None:
    body = b"x" * 5000
    url = server.route("/flaky", Reply("status", status=500), Reply("status", status=503), Reply("ok", body))
    dest = _fetch(url, tmp_path / "flaky.bin", _sha(body), retries=3)
    assert dest.read_bytes() == body
    assert server.hits["/flaky"] == 3


def test_persistent_server_error_gives_the_offline_message(server: FileServer, tmp_path: Path) -> None:
    url = server.route("/down", Reply("status", status=500))
    dest = tmp_path / "data" / "down.png"
    with pytest.raises(BenchError) as err:
        _fetch(url, dest, _sha(b"abc"), retries=2)
    message = str(err.value)
    assert server.hits["/down"] == 3  # 1 + retries, no more
    for part in (url, "HTTP 500", "3 attempts", "without network", str(dest), _sha(b"abc")):
        assert part in message
    assert not dest.exists() and _parts(tmp_path) == []


def test_client_errors_are_not_retried(server: FileServer, tmp_path: Path) -> None:
    url = server.url("/missing")  # unrouted: 404
    with pytest.raises(BenchError, match="HTTP 404.*not retried"):
        _fetch(url, tmp_path / "missing", None, retries=3)
    assert server.hits["/missing"] == 1


def test_interrupted_transfer_is_retried(server: FileServer, tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    url = server.route("/cut", Reply("short", body), Reply("ok", body))
    dest = _fetch(url, tmp_path / "cut.bin", _sha(body), retries=1)
    assert dest.read_bytes() == body
    assert server.hits["/cut"] == 2


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "unpinned"])
def test_always_interrupted_transfer_fails_without_a_partial_file(server: FileServer, tmp_path: Path, pinned: bool) -> None:
    # Unpinned too: the Content-Length check alone must catch a short body.
    body = bytes(range(256)) * 40
    url = server.route("/cut", Reply("short", body))
    dest = tmp_path / "cut.bin"
    with pytest.raises(BenchError, match="interrupted") as err:
        _fetch(url, dest, _sha(body) if pinned else None, retries=2)
    assert str(dest) in str(err.value)
    assert server.hits["/cut"] == 3
    assert not dest.exists() and _parts(tmp_path) == []


def test_connection_refused_gives_the_offline_message(tmp_path: Path) -> None:
    # A bound socket that never listens: connecting to it is refused, and nobody else can take the port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x.png"
        dest = tmp_path / "x.png"
        with pytest.raises(BenchError) as err:
            _fetch(url, dest, _sha(b"x"), retries=1)
    message = str(err.value)
    assert "refused" in message.lower() and url in message and f"put it at {dest}" in message and _sha(b"x") in message
    assert not dest.exists() and _parts(tmp_path) == []


def test_a_silent_server_times_out_and_the_retries_are_bounded(server: FileServer, tmp_path: Path) -> None:
    url = server.route("/slow", Reply("hang"))
    start = time.monotonic()
    with pytest.raises(BenchError, match="timed out"):
        fetch(url, tmp_path / "slow", None, retries=1, timeout=0.3, backoff=0.0)
    assert time.monotonic() - start < 4
    assert server.hits["/slow"] == 2


class Bar:
    """Stands in for tqdm in download: records the bars made and the bytes they were told of."""

    made: list["Bar"] = []

    def __init__(self, **kwargs: object) -> None:
        self.kwargs, self.n = kwargs, 0
        Bar.made.append(self)

    def update(self, n: int) -> None:
        self.n += n

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("kind", ["ok", "unsized"])
def test_a_download_shows_a_bar_over_its_bytes_on_a_terminal_unless_progress_is_off(
        server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setattr(download, "tqdm", Bar)
    Bar.made = []
    body = bytes(range(256)) * 1000  # several chunks
    url = server.route("/big.bin", Reply(kind, body))
    _fetch(url, tmp_path / "big.bin", _sha(body))
    (bar,) = Bar.made
    assert bar.kwargs["total"] == (len(body) if kind == "ok" else None)  # Content-Length, when the server sends it
    assert bar.n == len(body) and bar.kwargs["unit"] == "B" and bar.kwargs["desc"] == "download big.bin"
    assert bar.kwargs["disable"] is None  # tqdm's own rule: shown on a terminal, not in a log file
    with download.progress_bars(False):
        _fetch(url, tmp_path / "again.bin", _sha(body))
    assert Bar.made[-1].kwargs["disable"] is True


def test_only_http_urls_are_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    with pytest.raises(BenchError, match="only http and https"):
        _fetch(secret.as_uri(), tmp_path / "copy", None)
    with pytest.raises(BenchError, match="invalid sha256"):
        _fetch("http://127.0.0.1:1/x", tmp_path / "copy", "abc")


# --- extract -------------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type, info.linkname = tarfile.SYMTYPE, symlink[1]
            tf.addfile(info)
    return path


@pytest.mark.parametrize("make", [_zip, _tar], ids=["zip", "tar.gz"])
def test_extract_unpacks_a_good_archive(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    archive = make(tmp_path / "good.archive", {"set/a.png": b"A", "set/sub/b.png": b"B"})
    out = tmp_path / "out"
    assert extract(archive, out) == [(out / "set/a.png").resolve(), (out / "set/sub/b.png").resolve()]
    assert (out / "set/sub/b.png").read_bytes() == b"B"


@pytest.mark.parametrize("bad", ["../evil", "set/../../evil", "/tmp/evil", "..\\evil", "C:/evil"])
@pytest.mark.parametrize("make", [_zip, _tar], ids=["zip", "tar.gz"])
def test_extract_refuses_path_traversal(tmp_path: Path, make, bad: str) -> None:  # type: ignore[no-untyped-def]
    archive = make(tmp_path / "bad.archive", {"set/ok.png": b"ok", bad: b"evil"})
    out = tmp_path / "a" / "out"
    with pytest.raises(BenchError, match="unsafe"):
        extract(archive, out)
    assert not out.exists()  # checked before anything is written
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()


def test_extract_refuses_links_and_non_archives(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "link.tar.gz", {"ok.png": b"ok"}, symlink=("set/link", "/etc/passwd"))
    with pytest.raises(BenchError, match="not a regular file"):
        extract(archive, tmp_path / "out")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"just bytes")
    with pytest.raises(BenchError, match="not a zip, tar or rar archive"):
        extract(plain, tmp_path / "out")


# --- RemoteSet -----------------------------------------------------------------------------------


def _tiny_set(files: list[RemoteFile]) -> type[RemoteSet]:
    class Tiny(RemoteSet):
        name = "tiny-remote"
        description = "two tiny PNGs from the local test server"
        channels = 3
        folder = "Tiny"
        missing_split_hint = " (test only)"
        retries = 1
        timeout = 5.0
        backoff = 0.0

        def files(self) -> list[RemoteFile]:
            return files

    return Tiny


def _serve_images(server: FileServer, pinned: bool) -> tuple[list[RemoteFile], dict[str, np.ndarray]]:
    files, pixels = [], {}
    for seed, stem in enumerate(("b_img", "a_img")):  # manifest order, not name order, is the image order
        body, pixels[stem] = _png(seed)
        url = server.route(f"/{stem}.png", Reply("ok", body))
        files.append(RemoteFile(TEST, f"imgs/{stem}.png", url, _sha(body) if pinned else None))
    return files, pixels


def test_remote_set_downloads_then_loads_offline_from_the_cache(tmp_path: Path) -> None:
    with serving() as server:
        files, pixels = _serve_images(server, pinned=True)
        dataset = _tiny_set(files)(tmp_path / "data")
        dataset.check(TEST)
        images = dataset.images(TEST)
        assert sum(server.hits.values()) == 2  # check() downloaded; images() did not ask again
    assert [i.id for i in images] == ["b_img", "a_img"]
    for image in images:
        assert np.array_equal(image.pixels, pixels[image.id])
    assert (tmp_path / "data" / "Tiny" / "imgs" / "a_img.png").is_file()

    # The server is gone: everything needed is cached, so no network is needed.
    again = _tiny_set(files)(tmp_path / "data").images(TEST)
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, again))
    with pytest.raises(BenchError, match="no 'train' split \\(test only\\)"):
        _tiny_set(files)(tmp_path / "data").images(TRAIN)


def test_remote_set_uses_the_cache_folder_without_a_data_dir(server: FileServer, tmp_path: Path) -> None:
    files, _ = _serve_images(server, pinned=True)
    _tiny_set(files)(None).check(TEST)
    assert (tmp_path / "cache" / "Tiny" / "imgs" / "b_img.png").is_file()


def test_remote_set_offline_names_the_file_to_put_where(tmp_path: Path) -> None:
    with serving() as server:
        files, _ = _serve_images(server, pinned=True)
    with pytest.raises(BenchError) as err:  # server shut down before the first download
        _tiny_set(files)(tmp_path).images(TEST)
    message = str(err.value)
    assert "tiny-remote" in message and files[0].url in message and files[0].sha256 in message  # type: ignore[operator]
    assert str(tmp_path / "Tiny" / "imgs" / "b_img.png") in message


def test_remote_set_refuses_a_changed_pinned_file_instead_of_overwriting_it(server: FileServer, tmp_path: Path) -> None:
    files, _ = _serve_images(server, pinned=True)
    dataset = _tiny_set(files)(tmp_path)
    dataset.check(TEST)
    changed = tmp_path / "Tiny" / "imgs" / "a_img.png"
    changed.write_bytes(_png(99)[0])
    with pytest.raises(BenchError, match="pinned in the manifest.*Delete it"):
        dataset.images(TEST)
    assert changed.read_bytes() == _png(99)[0]  # the user's file is left alone
    assert sum(server.hits.values()) == 2


def test_trust_on_first_use_records_and_then_enforces_hashes(server: FileServer, tmp_path: Path) -> None:
    files, pixels = _serve_images(server, pinned=False)
    dataset = _tiny_set(files)(tmp_path)
    assert [i.id for i in dataset.images(TEST)] == ["b_img", "a_img"]
    folder = tmp_path / "Tiny"
    record = dict(reversed(line.split("  ")) for line in (folder / SIDECAR).read_text().splitlines())
    assert record == {f"imgs/{s}.png": sha256_file(folder / "imgs" / f"{s}.png") for s in ("a_img", "b_img")}

    # A file changed on disk after the first download is refused.
    original = (folder / "imgs" / "a_img.png").read_bytes()
    (folder / "imgs" / "a_img.png").write_bytes(_png(7)[0])
    with pytest.raises(BenchError, match=f"recorded in .*{SIDECAR} on first use"):
        dataset.images(TEST)

    # Deleted, and the server now serves different bytes: the re-download is refused against the record.
    (folder / "imgs" / "a_img.png").unlink()
    server.route("/a_img.png", Reply("ok", _png(8)[0]))
    with pytest.raises(BenchError, match="checksum mismatch.*server's copy has changed"):
        dataset.images(TEST)
    assert not (folder / "imgs" / "a_img.png").exists()

    # The original bytes are accepted again.
    server.route("/a_img.png", Reply("ok", original))
    images = {i.id: i.pixels for i in dataset.images(TEST)}
    assert np.array_equal(images["a_img"], pixels["a_img"])


def test_manifest_paths_and_hashes_are_validated() -> None:
    with pytest.raises(BenchError, match="unsafe"):
        RemoteFile(TEST, "../outside.png", "http://127.0.0.1/x")
    with pytest.raises(BenchError, match="invalid sha256"):
        RemoteFile(TEST, "x.png", "http://127.0.0.1/x", "123")
    with pytest.raises(BenchError, match="columns"):
        remote_set.parse_manifest("file,url\nx.png,http://127.0.0.1/x\n")


# --- the registered sets -------------------------------------------------------------------------


def test_remote_sets_are_registered_with_manifests_from_the_installed_package() -> None:
    reg = get_registry()
    assert {"bsd300", "kodak24"} <= set(reg.datasets) and reg.failures == []
    text = resources.files("denoise_bench.datasets").joinpath("manifests", "bsd300.csv").read_text()
    assert text.startswith("split,file,url,sha256\n")

    bsd = remote_set.read_manifest("bsd300.csv", MANIFEST_PACKAGE)
    assert len(bsd) == 100 and len({f.path for f in bsd}) == 100
    assert all(f.split == TEST and f.sha256 and f.url == f"{N2N_RAW}validation/BSD300/test/{f.path}" for f in bsd)
    kodak = remote_set.read_manifest("kodak24.csv", MANIFEST_PACKAGE)
    assert [f.path for f in kodak] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert all(f.sha256 is None and f.url == f"{N2N_RAW}validation/Kodak/{f.path}" for f in kodak)


def test_bsd300_download_uses_a_verified_local_copy_without_network(data_dir: Path, loopback_only: list[str]) -> None:
    with (data_dir / "MANIFEST.csv").open(newline="") as fh:
        shared = {Path(r["file"]).name: r["sha256"] for r in csv.DictReader(fh) if r["set"] == "BSD300_test"}
    assert {f.path: f.sha256 for f in remote_set.read_manifest("bsd300.csv", MANIFEST_PACKAGE)} == shared

    dataset = get_registry().dataset("bsd300")(data_dir)
    paths = dataset.ensure(TEST)  # type: ignore[attr-defined]
    assert [p.stem for p in paths] == [p.stem for p in list_images(data_dir / "BSD300_test")]  # same order as 'bsd300'
    assert loopback_only == []  # every file was found and verified locally
    with pytest.raises(BenchError, match="no 'train' split.*--train-dataset"):
        dataset.check(TRAIN)


def test_kodak24_offline_says_which_file_to_put_where(loopback_only: list[str], tmp_path: Path) -> None:
    class OfflineKodak(remote_sets.Kodak24):
        retries, backoff = 0, 0.0

    with pytest.raises(BenchError) as err:
        OfflineKodak(None).check(TEST)
    message = str(err.value)
    assert loopback_only == ["raw.githubusercontent.com"]  # tried once, refused by the guard
    assert f"{N2N_RAW}validation/Kodak/kodim01.png" in message
    assert str(tmp_path / "cache" / "Kodak24" / "kodim01.png") in message
    assert "trust on first use" in message and SIDECAR in message


# --- ArchiveSet: one archive, unpacked once ------------------------------------------------------


def _archive_set(url: str, sha256: str | None) -> type[remote_set.ArchiveSet]:
    class TinyArchive(remote_set.ArchiveSet):
        name = "tiny-archive"
        description = "two tiny PNGs in one zip from the local test server"
        channels = 3
        folder = "TinyArchive"
        archive = RemoteFile(TRAIN, "set.zip", url, sha256)
        members = {TRAIN: "**/pristine_images/*.png"}
        missing_split_hint = " (a training set)"
        retries, timeout, backoff = 1, 5.0, 0.0

    return TinyArchive


def test_archive_set_downloads_unpacks_once_then_works_offline(tmp_path: Path) -> None:
    (a, a_pixels), (b, _) = _png(1), _png(2)
    body = _zip(tmp_path / "set.zip", {"db/pristine_images/a.png": a, "db/pristine_images/b.png": b,
                                       "db/readme.txt": b"not an image"}).read_bytes()
    with serving() as server:
        cls = _archive_set(server.route("/set.zip", Reply("ok", body)), None)
        images = cls(tmp_path / "data").images(TRAIN)
        assert sum(server.hits.values()) == 1
    assert [i.id for i in images] == ["a", "b"] and np.array_equal(images[0].pixels, a_pixels)
    root = tmp_path / "data" / "TinyArchive"
    assert (root / "unpacked" / "set" / remote_set.UNPACKED_STAMP).read_text().strip() == _sha(body)
    assert _sha(body) in (root / SIDECAR).read_text()  # trust on first use, as for single files
    # Offline, from the unpacked copy; a stale stamp (another archive) makes it unpack again.
    (root / "unpacked" / "set" / remote_set.UNPACKED_STAMP).write_text("0" * 64)
    (root / "unpacked" / "set" / "db" / "pristine_images" / "b.png").unlink()
    assert [i.id for i in cls(tmp_path / "data").images(TRAIN)] == ["a", "b"]
    with pytest.raises(BenchError, match="no 'test' split \\(a training set\\)"):
        cls(tmp_path / "data").images(TEST)


def test_archive_set_with_a_wrong_checksum_keeps_nothing(server: FileServer, tmp_path: Path) -> None:
    body = _zip(tmp_path / "set.zip", {"db/pristine_images/a.png": _png(1)[0]}).read_bytes()
    cls = _archive_set(server.route("/set.zip", Reply("ok", body)), "0" * 64)
    with pytest.raises(BenchError, match="sha256"):
        cls(tmp_path / "data").check(TRAIN)
    root = tmp_path / "data" / "TinyArchive"
    assert not (root / "set.zip").exists() and not (root / "unpacked").exists()


def _fake_rar(tmp_path: Path) -> Path:
    archive = tmp_path / "set.rar"
    archive.write_bytes(download.RAR_MAGIC + b"\x00 not really compressed")
    return archive


def test_a_rar_archive_without_a_rar_tool_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(BenchError) as err:
        extract(_fake_rar(tmp_path), tmp_path / "out")
    assert "RAR archive" in str(err.value) and "libarchive-tools" in str(err.value) and "unrar" in str(err.value)
    assert str(tmp_path / "out") in str(err.value)


def _fake_bsdtar(bin_dir: Path, listing: list[str]) -> None:
    """A stand-in for bsdtar that lists ``listing`` and 'unpacks' one file per listed name."""
    bin_dir.mkdir(exist_ok=True)
    names = " ".join(f"'{n}'" for n in listing)
    script = bin_dir / "bsdtar"
    script.write_text(f"""#!/bin/sh
if [ "$1" = "-tf" ]; then for n in {names}; do echo "$n"; done; exit 0; fi
if [ "$1" = "-xf" ]; then for n in {names}; do mkdir -p "$4/$(dirname "$n")"; echo data > "$4/$n"; done; exit 0; fi
exit 2
""")
    script.chmod(0o755)


def test_a_rar_archive_is_listed_checked_and_unpacked_with_bsdtar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bsdtar(tmp_path / "bin", ["db/pristine_images/a.bmp", "db/pristine_images/b.bmp"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")  # the stand-in comes first
    out = tmp_path / "out"
    assert extract(_fake_rar(tmp_path), out) == [(out / f"db/pristine_images/{n}.bmp").resolve() for n in "ab"]


def test_a_rar_member_leaving_its_folder_is_refused_before_unpacking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bsdtar(tmp_path / "bin", ["db/ok.bmp", "../evil.bmp"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")  # the stand-in comes first
    with pytest.raises(BenchError, match="unsafe"):
        extract(_fake_rar(tmp_path), tmp_path / "a" / "out")
    assert not (tmp_path / "a").exists() and not (tmp_path / "evil.bmp").exists()


def test_waterloo_offline_says_which_archive_to_put_where(loopback_only: list[str], tmp_path: Path) -> None:
    class OfflineWaterloo(remote_sets.Waterloo):
        retries, backoff = 0, 0.0

    with pytest.raises(BenchError) as err:
        OfflineWaterloo(None).check(TRAIN)
    message = str(err.value)
    assert loopback_only == ["ece.uwaterloo.ca"]
    assert "https://ece.uwaterloo.ca/~k29ma/dataset/exploration_database_and_code.rar" in message
    assert str(tmp_path / "cache" / "Waterloo" / "exploration_database_and_code.rar") in message
    with pytest.raises(BenchError, match="no 'test' split.*--train-dataset waterloo"):
        OfflineWaterloo(None).check(TEST)
