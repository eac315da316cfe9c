"""A misbehaving plugin, an interrupt, a full disk or an odd path: each ends in one clear line, naming its cause."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from denoise_bench import hookimpl, plugins
from denoise_bench.data import CleanImage, Dataset
from denoise_bench.isolation import call_isolated
from denoise_bench.method import NoiseInfo
from helpers import DatasetPlugin, Median3, MethodPlugin, bench

# A per-image run of seconds: the smoke profile on one small test image.
QUICK = ["--profile", "smoke", "--test-images", "1", "--test-crop", "64", "--noise", "gaussian:sigma=25", "--no-progress"]


def _images(count: int = 2, side: int = 48) -> list[CleanImage]:
    rng = np.random.default_rng(0)
    return [CleanImage(f"im{i}", rng.integers(0, 256, (side, side, 1), dtype=np.uint8)) for i in range(count)]


class TinySet(Dataset):
    """Two gray 48x48 images in each split; ``loader`` decides what ``load`` does."""

    name = "tiny"
    description = "two small gray images (test plugin)"
    channels = 1
    loader: Callable[[], object] = staticmethod(_images)

    def load(self, split: str) -> list[CleanImage]:
        return self.loader()  # type: ignore[return-value]


def _tiny(loader: Callable[[], object]) -> None:
    """The tiny set with ``loader``, and the median filter to run on it."""
    plugins.register_plugin(DatasetPlugin(type("Tiny", (TinySet,), {"loader": staticmethod(loader)})), name="tiny-set")
    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")


def test_ctrl_c_reaches_a_caller_waiting_for_a_denoise_that_blocks() -> None:
    # The kernel may hand SIGINT to any thread not blocking it; here it lands on the isolated one, whose
    # call then blocks. The caller must still raise KeyboardInterrupt at once, not when the call returns.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    release = threading.Event()

    def blocks() -> None:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        release.wait(10)

    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            call_isolated(blocks)
        waited = time.monotonic() - start
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)
    assert waited < 3, f"Ctrl-C took {waited:.1f} s to reach the caller"


# --- a plugin's sys.exit is its failure, not the end of `bench` with status 0 -------------------------------

class Exits(Median3):
    name = "exits"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        raise SystemExit(0)


def test_a_method_calling_sys_exit_fails_its_job_and_the_grid_goes_on(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Exits, Median3), name="exits-plugin")
    result = bench("run", "--methods", "exits,median3", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    jobs = pd.read_csv(tmp_path / "run" / "jobs.csv").set_index("method")
    assert jobs.status.to_dict() == {"exits": "failed", "median3": "done"}
    assert jobs.error["exits"] == "SystemExit: 0"


class ExitsOnRegistering:
    @hookimpl
    def register_methods(self, register: Callable[[type], None]) -> None:
        raise SystemExit(0)


def test_a_hook_calling_sys_exit_skips_its_plugin() -> None:
    plugins.register_plugin(ExitsOnRegistering(), name="exits-on-registering")
    result = bench("list")
    assert result.exit_code == 0, result.output
    assert "warning: plugin 'exits-on-registering' skipped: register_methods raised SystemExit: 0" in result.output


def test_sys_exit_from_plugin_code_anywhere_else_is_one_line_and_not_status_0(tmp_path: Path) -> None:
    def load() -> list[CleanImage]:
        raise SystemExit(0)

    _tiny(load)
    result = bench("run", "--methods", "median3", "--dataset", "tiny", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    assert f"error: SystemExit(0) raised at {__file__}:" in result.output
    assert "Traceback" not in result.output


# --- global state a plugin changes is put back and blamed on it; paths are the user's --------------------------

class Float64(Median3):
    """Leaves torch's default dtype at float64, as a careless plugin does."""

    name = "float64"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        torch.set_default_dtype(torch.float64)
        return super().denoise(noisy, noise)


class NeedsFloat32(Median3):
    """Fails unless torch's default dtype is float32, as most code does one way or another."""

    name = "needs-float32"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        assert torch.get_default_dtype() == torch.float32, "default dtype changed under me"
        return super().denoise(noisy, noise)


def test_a_method_leaving_torchs_default_dtype_changed_is_blamed_and_the_next_runs_as_usual(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Float64, NeedsFloat32), name="dtype-plugin")
    try:
        result = bench("run", "--methods", "float64,needs-float32", *QUICK, "--out", str(tmp_path / "run"))
        assert torch.get_default_dtype() == torch.float32
    finally:
        torch.set_default_dtype(torch.float32)
    jobs = pd.read_csv(tmp_path / "run" / "jobs.csv").set_index("method")
    assert jobs.status.to_dict() == {"float64": "failed", "needs-float32": "done"}, result.output
    assert jobs.error["float64"] == ("BenchError: method 'float64' of plugin 'dtype-plugin' changed torch's default dtype "
                                     "from float32 to float64 and did not set it back (set back now; it would have "
                                     "changed what runs after it)")


def _noise_plugin(sampler: Callable[..., torch.Tensor]) -> None:
    from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN, NoiseFamily, Param

    family = NoiseFamily(name="plugged", description="test plugin", params=(Param("sigma", "std", 0.0, 255.0),),
                         sampler=sampler, properties=frozenset({PIXEL_INDEPENDENT, ZERO_MEAN}))

    class NoisePlugin:
        @hookimpl
        def register_noise_models(self, register: Callable[[object], None]) -> None:
            register(family)

    plugins.register_plugin(NoisePlugin(), name="noise-plugin")
    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")


def test_test_noise_drawn_from_torchs_global_generator_is_refused_naming_the_plugin(tmp_path: Path) -> None:
    def sampler(clean: torch.Tensor, levels: dict, generator: torch.Generator) -> torch.Tensor:
        return clean + levels["sigma"].to(clean).view(-1, 1, 1, 1) / 255 * torch.randn(clean.shape)  # no generator

    _noise_plugin(sampler)
    args = [a if a != "gaussian:sigma=25" else "plugged:sigma=25" for a in QUICK]
    result = bench("run", "--methods", "median3", *args, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        "error: noise model 'plugged' of plugin 'noise-plugin': two draws of plugged:sigma=25 with the same seed differ, "
        "so its test noise would change from run to run under the same recorded noise_seed; its sampler must draw only "
        "from the generator it is given (generator=...), not from torch's global one")


def test_a_broken_noise_model_is_named_not_the_method_that_drew_from_it(tmp_path: Path) -> None:
    def sampler(clean: torch.Tensor, levels: dict, generator: torch.Generator) -> torch.Tensor:
        raise RuntimeError("broken on purpose")

    _noise_plugin(sampler)
    args = [a if a != "gaussian:sigma=25" else "plugged:sigma=25" for a in QUICK]
    result = bench("run", "--methods", "median3", *args, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == ("error: noise model 'plugged' of plugin 'noise-plugin' raised "
                                              "RuntimeError: broken on purpose")


def test_a_broken_metric_is_named_in_the_jobs_it_fails(tmp_path: Path) -> None:
    from denoise_bench.metric import Metric

    def compute(estimate: torch.Tensor, clean: torch.Tensor, protocol: object) -> float:
        raise ValueError("broken on purpose")

    class MetricPlugin:
        @hookimpl
        def register_metrics(self, register: Callable[[object], None]) -> None:
            register(Metric("broken", "test plugin", compute))

    plugins.register_plugin(MetricPlugin(), name="metric-plugin")
    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")
    result = bench("run", "--methods", "median3", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    [error] = pd.read_csv(tmp_path / "run" / "jobs.csv").error
    assert error == "BenchError: metric 'broken' of plugin 'metric-plugin' raised ValueError: broken on purpose"


@pytest.mark.parametrize("value", ["high", None, torch.tensor([1.0, 2.0])])
def test_a_metric_returning_no_number_is_named_in_the_jobs_it_fails(tmp_path: Path, value: object) -> None:
    from denoise_bench.metric import Metric

    class MetricPlugin:
        @hookimpl
        def register_metrics(self, register: Callable[[object], None]) -> None:
            register(Metric("odd", "test plugin", lambda estimate, clean, protocol: value))

    plugins.register_plugin(MetricPlugin(), name="metric-plugin")
    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")
    result = bench("run", "--methods", "median3", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    [error] = pd.read_csv(tmp_path / "run" / "jobs.csv").error
    assert error == (f"BenchError: metric 'odd' of plugin 'metric-plugin' returned {value!r} ({type(value).__name__}), "
                     "not a number")


class Wanders(Median3):
    """Changes the working directory while it denoises."""

    name = "wanders"
    elsewhere = ""

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        import os

        os.chdir(self.elsewhere)
        return super().denoise(noisy, noise)


def test_a_relative_out_stays_where_the_user_was_when_a_plugin_changes_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    plugins.register_plugin(MethodPlugin(type("W", (Wanders,), {"elsewhere": str(elsewhere)}), Median3), name="wanders")
    result = bench("run", "--methods", "wanders,median3", *QUICK, "--out", "relrun")
    assert Path.cwd() == tmp_path
    assert list(elsewhere.iterdir()) == []  # nothing of the run went there
    jobs = pd.read_csv(tmp_path / "relrun" / "jobs.csv").set_index("method")
    assert jobs.status.to_dict() == {"wanders": "failed", "median3": "done"}, result.output
    assert "changed the working directory" in jobs.error["wanders"]
    assert f"records: {tmp_path / 'relrun' / 'records.csv'}" in result.output


class ChdirOnRegistering:
    @hookimpl
    def register_methods(self, register: Callable[[type], None]) -> None:
        import os

        os.chdir("/")
        register(Median3)


def test_a_plugin_changing_directory_as_it_registers_is_skipped_and_named(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plugins.register_plugin(ChdirOnRegistering(), name="chdir-plugin")
    result = bench("list")
    assert Path.cwd() == tmp_path
    assert (f"warning: plugin 'chdir-plugin' skipped: register_methods changed the working directory from "
            f"'{tmp_path}' to '/' and did not set it back") in result.output


def test_an_evaluation_of_a_run_still_running_is_refused(tmp_path: Path) -> None:
    from denoise_bench.run.lock import run_lock

    run = tmp_path / "run"
    assert bench("run", "--methods", "n2v", "--iterations", "1", "--width", "8", *QUICK, "--out", str(run)).exit_code == 0
    with run_lock(run, print):  # as a `bench run` into it still training its other methods holds it
        result = bench("evaluate", "--run", str(run), "--dataset", "skimage", "--out", str(tmp_path / "eval"),
                       "--no-progress")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {run} is still running (pid ")
    assert result.output.rstrip().endswith("an evaluation now would score only the models it has trained so far: "
                                           "wait for it to end")
    assert not (tmp_path / "eval").exists()


# --- a full disk while a checkpoint is saved stops the run with one line naming the file ----------------------

def test_a_full_disk_while_saving_a_checkpoint_stops_the_run_naming_the_file(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import io

    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = Path.open

    def open_(self: Path, mode: str = "r", *args: object, **kwargs: object):
        if self.parent.name == "checkpoints" and self.name.endswith(".tmp") and "w" in mode:
            return Full()  # as the 1 MB tmpfs this was first seen on: the checkpoint's bytes do not fit
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    out = tmp_path / "run"
    result = bench("run", "--methods", "n2v", "--iterations", "2", "--width", "8", *QUICK, "--out", str(out))
    assert result.exit_code == 2, result.output
    state = out / "checkpoints" / "n2v__skimage__gaussian_sigma=25__seed0.train.pt"  # the first one it saves
    assert result.output.splitlines()[-1] == (
        f"error: No space left on device writing {state}; the run stopped, what finished is saved in {out}: "
        f"free some space, then continue it with `bench run --resume {out}`")
    assert not any(p.name.endswith(".tmp") for p in (out / "checkpoints").iterdir())


# --- a run still running is not published as if it were finished ---------------------------------------------

def test_a_leaderboard_of_a_run_still_running_is_refused(tmp_path: Path) -> None:
    from denoise_bench.run.lock import run_lock

    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")
    run = tmp_path / "run"
    assert bench("run", "--methods", "median3", *QUICK, "--out", str(run)).exit_code == 0
    with run_lock(run, print):  # as a `bench run` into it (a resume, or one still training) holds it
        result = bench("leaderboard", str(run), "--out", str(tmp_path / "board"), "--no-html")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {run} is still running (pid ")
    assert "wait for it to end" in result.output
    assert not (tmp_path / "board").exists()
    assert bench("leaderboard", str(run), "--out", str(tmp_path / "board"), "--no-html").exit_code == 0  # once it ended


# --- an --out the file system will not write ----------------------------------------------------------------

def _read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``folder`` as on a read-only file system: nothing can be made in it (os.mkdir, os.open creating, open writing)."""
    import builtins
    import errno
    import os

    def refuse(path: object) -> None:
        if Path(os.fspath(path)).is_relative_to(folder):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

    real_mkdir, real_os_open, real_open = os.mkdir, os.open, builtins.open

    def mkdir(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(os.fspath(path)).parent.is_dir():  # else the kernel's answer is ENOENT, as usual
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)


@pytest.mark.parametrize("command", ["leaderboard", "leaderboard-into-it", "denoise", "export"])
def test_an_out_on_a_read_only_file_system_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 command: str) -> None:
    from PIL import Image

    run = tmp_path / "run"
    assert bench("run", "--methods", "n2v", "--iterations", "1", "--width", "8", *QUICK, "--out", str(run)).exit_code == 0
    image = tmp_path / "noisy.png"
    Image.fromarray(np.full((40, 40), 128, dtype=np.uint8)).save(image)
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(ro, monkeypatch)
    args, where = {
        "leaderboard": (["leaderboard", str(run), "--out", str(ro / "board" / "new"), "--no-html"], ro / "board"),
        "leaderboard-into-it": (["leaderboard", str(run), "--out", str(ro), "--no-html"], ro),
        "denoise": (["denoise", str(image), "--run", str(run), "--method", "n2v", "--out", str(ro / "o")], ro / "o"),
        "export": (["export", str(run), "--method", "n2v", "--out", str(ro / "n2v.safetensors")], ro),
    }[command]
    result = bench(*args)
    assert result.exit_code == 2, result.output
    said = (f"error: cannot write in {where}: Read-only file system; choose an --out where you can write"
            if command != "leaderboard-into-it" else  # the folder exists: its lock is the first file it would write
            f"error: cannot open the lock file {ro / '.lock'}: Read-only file system")
    assert result.output.splitlines()[-1] == said
    assert list(ro.iterdir()) == []


# --- image names a C/POSIX locale cannot decode -------------------------------------------------------------

def test_an_image_name_decoded_under_a_c_locale_is_the_name_its_bytes_spell() -> None:
    pixels = np.zeros((4, 4, 1), dtype=np.uint8)
    assert CleanImage("\udcc3\udca9", pixels).id == "é"  # 'é.png' listed under LC_ALL=C without UTF-8 mode
    assert CleanImage("\udce9", pixels).id == "\\xe9"  # a Latin-1 'é': no UTF-8, so kept apart as an escape
    assert CleanImage("é", pixels).id == "é"


def test_a_folder_of_non_ascii_image_names_runs_under_a_c_locale(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(folder / "é.png")
    env = os.environ | {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "denoise_bench.cli", "run", "--methods", "bm3d", "--dataset",
                           str(folder), *QUICK, "--out", str(out)], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert pd.read_csv(out / "records.csv", encoding="utf-8").image.tolist() == ["é"]


# --- more threads than cores ----------------------------------------------------------------------------------

def test_more_threads_than_cores_are_refused_naming_the_cores() -> None:
    from denoise_bench.errors import BenchError
    from denoise_bench.threads import choose_threads

    with pytest.raises(BenchError, match=r"^--threads=100000: this process may use 2 core\(s\) \(its CPU affinity\); "
                                         r"give at most 2 threads$"):
        choose_threads(100000, env={}, cores=lambda: 2)
    with pytest.raises(BenchError, match="^DENOISE_BENCH_THREADS=3: this process may use 2 core"):
        choose_threads(None, env={"DENOISE_BENCH_THREADS": "3"}, cores=lambda: 2)
    capped = choose_threads(None, env={"OMP_NUM_THREADS": "100000"}, cores=lambda: 2)
    assert (capped.count, capped.why) == (2, "OMP_NUM_THREADS=100000, capped at 2 cores")
    assert choose_threads(2, env={}, cores=lambda: 2).count == 2


def test_threads_beyond_the_cores_end_bench_run_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from denoise_bench.threads import usable_cores

    # In a process of its own: asking torch for them crashed the process (a MemoryError, or worse).
    done = subprocess.run([sys.executable, "-m", "denoise_bench.cli", "run", "--methods", "bm3d", *QUICK, "--threads",
                           "100000", "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [f"error: --threads=100000: this process may use {usable_cores()} core(s) "
                                        f"(its CPU affinity); give at most {usable_cores()} threads"]
    assert not (tmp_path / "run").exists()


# --- a dataset plugin's load that raises or returns something else than images ------------------------------

def _generator() -> object:
    return (image for image in _images())


@pytest.mark.parametrize(("loader", "says"), [
    (lambda: (_ for _ in ()).throw(OSError("cannot reach the server")),
     "loading its 'test' split raised OSError: cannot reach the server"),
    (_generator, "load('test') returned a 'generator' object, not a list of CleanImage (return a list of them)"),
    (lambda: [1, 2], "load('test') returned a 'int' object (1) as its image 0, not a CleanImage"),
    (lambda: [CleanImage(7, _images()[0].pixels)],  # type: ignore[arg-type]
     "load('test') returned image 0 with id 7 (int); an image's id is a str that is not blank"),
    (lambda: [CleanImage("", _images()[0].pixels)],  # the run's own records.csv would then be refused as damaged
     "load('test') returned image 0 with id '' (str); an image's id is a str that is not blank"),
    (lambda: [CleanImage("im0", "not pixels")],  # type: ignore[arg-type]
     "image 'im0' must be (H, W, 1) uint8, got str "),
])
def test_a_dataset_plugin_that_fails_to_give_images_is_named_in_one_line(tmp_path: Path, loader: Callable[[], object],
                                                                         says: str) -> None:
    _tiny(loader)
    result = bench("run", "--methods", "median3", "--dataset", "tiny", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("error: dataset 'tiny'"), result.output
    assert says in last, last
    assert "Traceback" not in result.output


def test_a_dataset_plugin_whose_check_raises_is_named_in_one_line(tmp_path: Path) -> None:
    class Unreachable(TinySet):
        def check(self, split: str) -> None:
            raise OSError("cannot reach the server")

    plugins.register_plugin(DatasetPlugin(Unreachable), name="tiny-set")
    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")
    result = bench("run", "--methods", "median3", "--dataset", "tiny", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (f"error: dataset 'tiny' (from {__name__}): checking its 'test' split "
                                              "raised OSError: cannot reach the server")


def test_a_dataset_plugin_may_return_a_tuple(tmp_path: Path) -> None:
    _tiny(lambda: tuple(_images()))
    result = bench("run", "--methods", "median3", "--dataset", "tiny", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["leaderboard", "denoise"])
@pytest.mark.parametrize("place", ["under-a-file", "broken-link"])
def test_an_out_where_a_file_or_a_broken_link_is_is_one_line_naming_it(tmp_path: Path, command: str, place: str) -> None:
    from PIL import Image

    run = tmp_path / "run"
    assert bench("run", "--methods", "n2v", "--iterations", "1", "--width", "8", *QUICK, "--out", str(run)).exit_code == 0
    image = tmp_path / "noisy.png"
    Image.fromarray(np.full((40, 40), 128, dtype=np.uint8)).save(image)
    (tmp_path / "afile").write_text("mine\n")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    out, blocker, what = {"under-a-file": (tmp_path / "afile" / "out", tmp_path / "afile", "a file"),
                          "broken-link": (tmp_path / "link", tmp_path / "link", "a broken symbolic link")}[place]
    args = {"leaderboard": ["leaderboard", str(run), "--out", str(out), "--no-html"],
            "denoise": ["denoise", str(image), "--run", str(run), "--method", "n2v", "--out", str(out)]}[command]
    result = bench(*args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (f"error: cannot write in {out}: {blocker} is {what}, not a folder; "
                                              "choose another --out")
    assert (tmp_path / "afile").read_text() == "mine\n" and (tmp_path / "link").is_symlink()


# --- a full disk under bench leaderboard, denoise and export ------------------------------------------------

def _disk_with(folder: Path, free: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files opened for writing under ``folder`` share ``free`` bytes, as on a small disk: a write beyond them
    puts what fits and raises ENOSPC."""
    import builtins
    import errno
    import io
    import os

    real_open = io.open
    left = {"bytes": free}

    class Limited:
        def __init__(self, handle: object) -> None:
            self._handle = handle

        def write(self, data: object) -> int:
            size = len(data) if not isinstance(data, memoryview) else data.nbytes  # type: ignore[arg-type]
            if size > left["bytes"]:
                self._handle.write(data[:left["bytes"]])  # type: ignore[attr-defined, index]
                left["bytes"] = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            left["bytes"] -= size
            return self._handle.write(data)  # type: ignore[attr-defined]

        def __getattr__(self, name: str) -> object:
            return getattr(self._handle, name)

        def __enter__(self) -> "Limited":
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()  # type: ignore[attr-defined]

    def open_(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        handle = real_open(file, mode, *args, **kwargs)
        writes = any(c in mode for c in "wax+")
        if writes and isinstance(file, (str, os.PathLike)) and Path(os.fspath(file)).is_relative_to(folder):
            return Limited(handle)
        return handle

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


def test_a_full_disk_under_bench_denoise_keeps_whole_images_only_and_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    run = tmp_path / "run"
    assert bench("run", "--methods", "n2v", "--iterations", "1", "--width", "8", *QUICK, "--out", str(run)).exit_code == 0
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(images / f"{name}.png")
    args = ["denoise", str(images), "--run", str(run), "--method", "n2v", "--format", "npy"]
    assert bench(*args, "--out", str(tmp_path / "roomy")).exit_code == 0
    first = (tmp_path / "roomy" / "a.npy").stat().st_size
    small = tmp_path / "small"
    _disk_with(small, first + 100, monkeypatch)  # room for a.npy, not for b.npy
    result = bench(*args, "--out", str(small))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"error: No space left on device writing {small / 'b.npy'}; the images before it are in {small}: "
        "free some space, then denoise the rest into another --out")
    assert sorted(p.name for p in small.iterdir()) == ["a.npy"]  # no truncated b.npy, no temporary file
    assert np.array_equal(np.load(small / "a.npy"), np.load(tmp_path / "roomy" / "a.npy"))


@pytest.mark.parametrize("command", ["export", "leaderboard"])
def test_a_full_disk_under_bench_export_or_leaderboard_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   command: str) -> None:
    run = tmp_path / "run"
    assert bench("run", "--methods", "n2v", "--iterations", "1", "--width", "8", *QUICK, "--out", str(run)).exit_code == 0
    full = tmp_path / "full"
    full.mkdir()
    _disk_with(full, 0, monkeypatch)
    out = {"export": full / "n2v.safetensors", "leaderboard": full / "board"}[command]
    args = {"export": ["export", str(run), "--method", "n2v", "--out", str(out)],
            "leaderboard": ["leaderboard", str(run), "--out", str(out), "--no-html"]}[command]
    result = bench(*args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith(f"error: No space left on device writing {out}")
    assert result.output.splitlines()[-1].endswith("; free some space, then run it again")
    assert not (full / "n2v.safetensors").exists()


def test_a_second_leaderboard_into_a_folder_being_written_is_refused(tmp_path: Path) -> None:
    from denoise_bench.run.lock import run_lock

    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")
    run, board = tmp_path / "run", tmp_path / "board"
    assert bench("run", "--methods", "median3", *QUICK, "--out", str(run)).exit_code == 0
    assert bench("leaderboard", str(run), "--out", str(board), "--no-html").exit_code == 0
    before = {p.name: p.read_bytes() for p in board.iterdir()}
    with run_lock(board, print, what="leaderboard folder"):  # as another `bench leaderboard` writing it holds it
        result = bench("leaderboard", str(run), "--out", str(board), "--no-html")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: leaderboard folder {board} is in use by pid ")
    assert {p.name: p.read_bytes() for p in board.iterdir()} == before
    assert bench("leaderboard", str(run), "--out", str(board), "--no-html").exit_code == 0  # once it is free


# --- two bench denoise into one --out --------------------------------------------------------------------------

def test_create_new_never_writes_over_a_file(tmp_path: Path) -> None:
    from denoise_bench.atomic import create_new

    create_new(tmp_path / "a.png", b"first")
    with pytest.raises(FileExistsError) as raised:
        create_new(tmp_path / "a.png", b"second")
    assert raised.value.filename == str(tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left


def test_an_image_another_denoise_wrote_meanwhile_is_left_as_it_is(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from denoise_bench.models import denoise_files

    run = tmp_path / "run"
    assert bench("run", "--methods", "n2v", "--iterations", "1", "--width", "8", *QUICK, "--out", str(run)).exit_code == 0
    image = tmp_path / "noisy.png"
    Image.fromarray(np.full((40, 40), 128, dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    real = denoise_files.read_image

    def meanwhile(*args: object, **kwargs: object) -> object:  # after the check that out/noisy.png is new
        out.mkdir()
        (out / "noisy.png").write_bytes(b"the other one's")
        return real(*args, **kwargs)

    monkeypatch.setattr(denoise_files, "read_image", meanwhile)
    result = bench("denoise", str(image), "--run", str(run), "--method", "n2v", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"error: {out / 'noisy.png'} appeared while this bench denoise ran (another one writing to the same --out?); "
        "it is left as it is, and nothing more is written: choose another --out")
    assert (out / "noisy.png").read_bytes() == b"the other one's"
    assert [p.name for p in out.iterdir()] == ["noisy.png"]


# --- an image of more pixels than Pillow opens ---------------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "denoise"])
def test_an_image_too_large_to_open_is_named_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         command: str) -> None:
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((64, 64), 128, dtype=np.uint8)).save(images / "big.png")
    run = tmp_path / "run"
    if command == "denoise":
        assert bench("run", "--methods", "n2v", "--iterations", "1", "--width", "8", *QUICK, "--out",
                     str(run)).exit_code == 0
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 is then past twice the limit: a "decompression bomb"
    args = {"run": ["run", "--methods", "bm3d", "--dataset", str(images), *QUICK, "--out", str(tmp_path / "r2")],
            "denoise": ["denoise", str(images / "big.png"), "--run", str(run), "--method", "n2v", "--out",
                        str(tmp_path / "o")]}[command]
    result = bench(*args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith(f"error: {images / 'big.png'}: not a readable image (Image size "
                                                     "(4096 pixels) exceeds limit of 2000 pixels")


@pytest.mark.parametrize("command", ["run", "leaderboard", "denoise", "export"])
def test_an_out_with_a_name_too_long_for_the_file_system_is_refused_as_a_bad_value(tmp_path: Path,
                                                                                  command: str) -> None:
    long = tmp_path / ("x" * 300)
    args = {"run": ["run", "--methods", "bm3d", *QUICK, "--out", str(long)],
            "leaderboard": ["leaderboard", str(tmp_path), "--out", str(long), "--no-html"],
            "denoise": ["denoise", str(tmp_path), "--run", str(tmp_path), "--method", "n2v", "--out", str(long)],
            "export": ["export", str(tmp_path), "--method", "n2v", "--out", f"{long}.safetensors"]}[command]
    result = bench(*args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith("Error: Invalid value for '--out': ")
    assert result.output.rstrip().endswith("File name too long: a name in it is longer than the file system takes")
