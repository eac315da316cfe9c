"""One process at a time in a run folder: a second run is refused while the first lives; a killed one's lock is taken over."""

from __future__ import annotations

import errno
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from denoise_bench.run import lock as run_lock_module
from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.run.grid import units
from denoise_bench.results import PARTS
from denoise_bench.run.lock import LOCK, run_lock
from denoise_bench.run.runner import RunRequest, plan, run, run_unit

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and SIGSTOP are POSIX")

BM3D = ["run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--test-images", "1",
        "--no-progress"]
TRAIN_ARGS = ["--methods", "iddp", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--iterations", "30",
              "--width", "16", "--checkpoint-every", "5", "--test-images", "1", "--no-progress"]
STATE = "checkpoints/iddp__skimage__gaussian_sigma=25__seed0.train.pt"
HOLDER = """
import sys
from pathlib import Path
from denoise_bench.run.lock import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes the pipe (or kills this process)
"""


def _holding(folder: Path) -> subprocess.Popen:
    """A process that holds ``folder``'s lock until its stdin closes; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def test_a_run_into_a_folder_in_use_is_refused_before_touching_it_and_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = _holding(out)
    try:
        refused = CliRunner().invoke(main, [*BM3D, "--out", str(out)])
        assert refused.exit_code == 2, refused.output
        assert (f"error: run folder {out} is in use by pid {holder.pid} on host {socket.gethostname()} since "
                in refused.output)
        assert "; wait for it or use another --out" in refused.output
        assert "Traceback" not in refused.output
        assert sorted(p.name for p in out.iterdir()) == [LOCK]  # no config, records or checkpoints written
    finally:
        _kill(holder)  # the OS drops the lock; the file still names the dead holder

    taken = CliRunner().invoke(main, [*BM3D, "--out", str(out)])
    assert taken.exit_code == 0, taken.output
    assert f"taking over the lock of pid {holder.pid} on host {socket.gethostname()}" in taken.output
    assert (out / "records.csv").is_file()
    assert (out / LOCK).read_text() == ""  # released: the next run finds no holder to report


def test_a_second_bench_run_is_refused_while_the_first_trains_and_resume_takes_over_after_sigkill(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "denoise_bench.cli", "run", *TRAIN_ARGS, "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (out / STATE).exists():  # the first training state appears after 5 of 30 steps
            assert first.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)  # frozen mid-training, still holding the lock: no race with its end
        assert json.loads((out / LOCK).read_text())["pid"] == first.pid
        second = CliRunner().invoke(main, ["run", "--resume", str(out), "--no-progress"])
        assert second.exit_code == 2, second.output
        assert f"run folder {out} is in use by pid {first.pid} on host " in second.output
    finally:
        _kill(first)

    resumed = CliRunner().invoke(main, ["run", "--resume", str(out), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert f"taking over the lock of pid {first.pid}" in resumed.output
    assert "resuming from step" in resumed.output
    assert (out / "records.csv").is_file() and not (out / STATE).exists()


def test_the_lock_is_released_when_the_run_ends_or_fails(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with run_lock(out, echo=pytest.fail):
            raise RuntimeError("a job crashed the grid")
    with run_lock(out, echo=pytest.fail):  # free again, and the failed run left no holder to take over from
        holder = _probe(out)
        assert "is in use by pid" in holder  # held by this process, as another process sees it
    assert _probe(out) == "free"


def test_jobs_of_an_executor_write_their_parts_while_the_grid_holds_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = plan(RunRequest(methods=["iddp"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                        overrides={"iterations": 2, "test_images": 1}, progress=False, out=out))
    run(p, echo=lambda _: None, executor=_NoJobs())  # writes the run folder; submits nothing
    with run_lock(out, echo=lambda _: None):  # as the grid's process does while it waits for its jobs
        run_unit(str(out), units(p)[0])  # what a worker does: no lock taken, so no refusal and no wait
    assert (out / PARTS / units(p)[0].slug / "records.csv").is_file()


def test_a_file_system_without_locks_warns_and_runs_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock_module.fcntl, "flock", no_locks)
    said: list[str] = []
    with run_lock(tmp_path / "run", echo=said.append):
        pass
    assert said == [f"warning: the file system of {tmp_path / 'run'} cannot lock files; nothing stops a second "
                    f"run into this folder at the same time"]


def test_a_holder_that_has_not_written_its_name_yet_is_another_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = _holding(out)
    try:
        (out / LOCK).write_text("")  # the moment between taking the lock and writing who holds it
        with pytest.raises(BenchError, match=f"run folder {out} is in use by another process; wait for it"):
            with run_lock(out):
                pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


PROBE = """
import sys
from pathlib import Path
from denoise_bench.errors import BenchError
from denoise_bench.run.lock import run_lock
try:
    with run_lock(Path(sys.argv[1]), echo=print):
        print("free")
except BenchError as exc:
    print(exc)
"""


def _probe(folder: Path) -> str:
    """What another process finds when it tries the lock of ``folder``."""
    return subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True,
                          timeout=120).stdout.strip()


class _NoJobs:
    def run_units(self, run_dir, units, echo):
        return iter(())
