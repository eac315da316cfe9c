"""The plugin system: inline plugins, entry-point plugins, broken plugins, misspelt hooks."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from denoise_bench import hookimpl, plugins
from denoise_bench.cli.commands import main
from denoise_bench.supervision import Supervision
from helpers import Median3, MethodPlugin, ToyPlugin, bench



def warnings_of(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def test_builtins_are_registered_as_plugins() -> None:
    reg = plugins.get_registry()
    assert {"iddp", "unet", "n2n", "bm3d"} <= set(reg.methods)
    assert {"skimage", "bsd68", "folder"} <= set(reg.datasets)
    assert {"gaussian", "poisson", "speckle", "poisson-gaussian"} <= set(reg.noise_families)
    assert reg.failures == []
    # Built-ins go through the same plugin manager a third-party package does.
    names = {name for name, _ in plugins.get_plugin_manager().list_name_plugin()}
    assert set(plugins.BUILTIN_PLUGINS) <= names


def test_inline_plugin_appears_in_list_and_in_a_run(tmp_path: Path) -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    assert "median3" in result.output and "salt" in result.output

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    records = pd.read_csv(out / "records.csv")
    assert set(records.method) == {"median3"}
    # A median filter is a (weak) denoiser: it must beat the noisy input on the smoke images.
    assert (records.psnr > records.input_psnr + 2.0).all()


def test_incompatible_noise_is_skipped_with_reason(tmp_path: Path) -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "n2n,median3", "--noise", "salt:p=0.05", "--profile", "smoke",
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "skip n2n on salt:p=0.05: n2n assumes zero-mean noise; salt is not" in result.output
    jobs = pd.read_csv(out / "jobs.csv")
    assert dict(zip(jobs.method, jobs.status)) == {"n2n": "skipped", "median3": "done"}
    assert "skipped" in (out / "tables" / "psnr.md").read_text()


@pytest.mark.parametrize("bad", [object(), int, "iddp"])
def test_plugin_registering_wrong_type_is_reported(bad) -> None:
    class Wrong:
        @hookimpl
        def register_methods(self, register):
            register(bad)

    plugins.register_plugin(Wrong(), name="wrong")
    reg = plugins.get_registry()
    assert [f.plugin for f in reg.failures] == ["wrong"]
    assert "expects a Method subclass" in reg.failures[0].error


def test_plugin_returning_a_value_is_reported() -> None:
    class Returns:
        @hookimpl
        def register_methods(self, register):
            return [Median3]

    plugins.register_plugin(Returns(), name="returns")
    assert "must call register" in plugins.get_registry().failures[0].error


class NoName(Median3):
    name = ""


class WeakSupervision(Median3):
    name = "weak"
    supervision = "weakly"  # type: ignore[assignment]


class UnknownProperty(Median3):
    name = "odd"
    requires = frozenset({"zero-mean", "gaussian"})


@pytest.mark.parametrize("bad, reason", [
    (NoName, "method class NoName must set a non-empty name"),
    (WeakSupervision, "method 'weak': unknown supervision 'weakly'; valid supervisions: "
                      + ", ".join(sorted(s.value for s in Supervision))),
    (UnknownProperty, "method 'odd': unknown noise property 'gaussian'; valid noise properties: "
                      "pixel-independent, signal-independent, symmetric, zero-mean"),
])
def test_a_class_failing_validation_skips_its_whole_plugin(bad: type, reason: str, tmp_path: Path) -> None:
    class ToyAndBad(ToyPlugin):
        @hookimpl
        def register_methods(self, register):
            register(Median3)
            register(bad)

    plugins.register_plugin(ToyAndBad(), name="toy-and-bad")
    listed = bench("list")
    assert listed.exit_code == 0, listed.output
    # Nothing of a broken plugin is half-loaded: its noise model goes with its methods.
    assert "median3" not in listed.stdout and "salt" not in listed.stdout and "iddp" in listed.stdout
    assert warnings_of(listed) == [f"warning: plugin 'toy-and-bad' skipped: {reason}"]

    ran = bench("run", "--methods", "median3", "--profile", "smoke", "--out", str(tmp_path / "run"), "--no-progress")
    assert ran.exit_code == 2
    assert warnings_of(ran) == warnings_of(listed)
    assert f"error: method 'median3' was not loaded: plugin 'toy-and-bad' failed: {reason}" in ran.stderr


@pytest.mark.parametrize("first, owner", [
    (MethodPlugin(Median3), "plugin 'dup1'"),
    (None, "plugin 'denoise_bench.methods.iddp' (distribution denoise-bench)"),
])
def test_duplicate_name_says_who_registered_it_first(first: MethodPlugin | None, owner: str) -> None:
    class Iddp(Median3):
        name = "iddp"

    if first is not None:
        plugins.register_plugin(first, name="dup1")
    plugins.register_plugin(MethodPlugin(Median3 if first else Iddp), name="dup2")
    result = bench("list")
    assert result.exit_code == 0, result.output
    name = "median3" if first else "iddp"
    assert warnings_of(result) == [f"warning: plugin 'dup2' skipped: method {name!r} is already "
                                   f"registered by {owner}"]


class Misspelt:
    @hookimpl
    def register_method(self, register):  # missing the "s"
        pass


class MisspeltLifecycle:
    @hookimpl
    def job_finish(self, job):  # missing the "ed"
        pass


class Tracking:
    """A plugin of lifecycle hooks only, each taking the arguments it needs."""

    @hookimpl
    def run_started(self, run_dir):
        pass

    @hookimpl
    def job_finished(self, job, error):
        pass


VALID_HOOKS = ("job_finished, learning_curve_point, register_datasets, register_executors, register_methods, register_metrics, "
               "register_noise_models, run_finished, run_started, training_step")


def test_a_plugin_of_lifecycle_hooks_only_is_accepted() -> None:
    plugins.register_plugin(Tracking(), name="tracking")
    assert plugins.get_plugin_manager().has_plugin("tracking")
    assert plugins.get_registry().failures == []


class WrongArgument:
    @hookimpl
    def register_methods(self, reg):  # the hook passes "register"
        pass


@pytest.mark.parametrize("plugin, reason", [
    (Misspelt(), f"unknown hook 'register_method' (did you mean 'register_methods'?); valid hooks: {VALID_HOOKS}"),
    (MisspeltLifecycle(), f"unknown hook 'job_finish' (did you mean 'job_finished'?); valid hooks: {VALID_HOOKS}"),
    (WrongArgument(), "hookimpl definition: register_methods(reg) Argument(s) {'reg'} are declared in the hookimpl"),
])
def test_inline_plugin_with_a_bad_hook_is_reported_and_skipped(plugin: object, reason: str) -> None:
    plugins.register_plugin(plugin, name="bad")
    result = bench("list")
    assert result.exit_code == 0, result.output
    assert "iddp" in result.stdout
    [warning] = warnings_of(result)
    assert warning.startswith("warning: plugin 'bad' skipped: ") and reason in warning
    assert not plugins.get_plugin_manager().has_plugin("bad")
    plugins.unregister_plugin("bad")  # forgets the failure too
    assert plugins.get_registry().failures == []


def write_distribution(site: Path, dist: str, entry_point: str, source: str) -> None:
    """The module ``dist`` holding ``source`` and its dist-info with one ``denoise_bench`` entry point, in ``site``."""
    (site / f"{dist}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[denoise_bench]\n{entry_point}\n")


@contextmanager
def site_installer(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str, str], None]]:
    """Installs packages into the site folder ``site``, found through their entry points as ``bench`` finds them.

    ``install(dist, entry_point, source)`` writes the module ``dist`` holding ``source`` and a dist-info
    with one ``denoise_bench`` entry point (e.g. ``"toy = toy_plugin:plugin"``). Only the entry points installed
    here load (``DENOISE_BENCH_PLUGINS``, the allow-list): a plugin installed in the environment, such as the
    README's ``pip install -e examples/denoise-bench-tv``, would add its methods and warnings to what the tests
    assert. The conftest rebuilds the plugin manager, autoload off again, after the test.
    """
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD")
    installed: list[str] = []
    names: list[str] = []

    def _install(dist: str, entry_point: str, source: str) -> None:
        write_distribution(site, dist, entry_point, source)
        installed.append(dist)
        names.append(entry_point.split("=")[0].strip())
        monkeypatch.setenv("DENOISE_BENCH_PLUGINS", ",".join(names))
        importlib.invalidate_caches()
        plugins.reset_plugin_manager()

    try:
        yield _install
    finally:
        for dist in installed:
            sys.modules.pop(dist, None)


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str, str], None]]:
    """:func:`site_installer` on a scratch site folder."""
    with site_installer(tmp_path / "site", monkeypatch) as _install:
        yield _install


TOY = """
    from helpers import ToyPlugin
    plugin = ToyPlugin()
"""


def test_a_plugin_installed_in_the_environment_stays_out_of_these_tests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the tests of entry points assert (valid method lists, warnings) holds whatever else is installed,
    e.g. the example plugin after the README's `pip install -e examples/denoise-bench-tv`."""
    environment = tmp_path / "environment"
    environment.mkdir()
    write_distribution(environment, "stray_plugin", "stray = stray_plugin:plugin", """
        from helpers import Median3, MethodPlugin

        class Stray(Median3):
            name = "stray"

        plugin = MethodPlugin(Stray)
    """)
    monkeypatch.syspath_prepend(str(environment))
    try:
        with monkeypatch.context() as autoload:
            autoload.delenv("DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD")
            plugins.reset_plugin_manager()
            assert "stray" in plugins.get_registry().methods  # it is installed: bench would load it
        with site_installer(tmp_path / "site", monkeypatch) as install:  # what the tests below get
            install("toy_plugin", "toy = toy_plugin:plugin", TOY)
            registry = plugins.get_registry()
            assert "median3" in registry.methods and "stray" not in registry.methods
            assert registry.failures == []
    finally:
        sys.modules.pop("stray_plugin", None)


def test_entry_point_plugins_load_and_a_broken_one_is_skipped(install) -> None:
    install("toy_plugin", "toy = toy_plugin:plugin", TOY)
    install("broken_plugin", "broken = broken_plugin", "raise ImportError('this plugin is broken on purpose')\n")
    result = bench("list")
    assert result.exit_code == 0, result.output
    assert "median3" in result.stdout and "iddp" in result.stdout
    assert warnings_of(result) == ["warning: plugin 'broken' (distribution broken_plugin) skipped: "
                                   "importing it raised ImportError: this plugin is broken on purpose"]


def test_two_distributions_with_one_entry_point_name_say_who_has_it(install) -> None:
    install("toy_plugin", "toy = toy_plugin:plugin", TOY)
    install("toy_fork", "toy = toy_fork:plugin", TOY)
    result = bench("list")
    assert result.exit_code == 0, result.output
    assert "median3" in result.stdout
    [warning] = warnings_of(result)  # which one is found first is up to the file system
    first, second = ("toy_plugin", "toy_fork") if "(distribution toy_fork)" in warning else ("toy_fork", "toy_plugin")
    assert warning == (f"warning: plugin 'toy' (distribution {second}) skipped: "
                       f"another plugin from distribution {first} is registered under that name")


def test_misspelt_hook_is_reported_with_a_suggestion_and_the_rest_loads(install, tmp_path: Path) -> None:
    install("toy_plugin", "toy = toy_plugin:plugin", TOY)
    install("misspelt_plugin", "misspelt = misspelt_plugin", """
        from denoise_bench import hookimpl

        @hookimpl
        def register_method(register):  # missing the "s"
            pass
    """)
    reason = ("unknown hook 'register_method' (did you mean 'register_methods'?); "
              f"valid hooks: {VALID_HOOKS}")
    listed = bench("list")
    assert listed.exit_code == 0, listed.output
    assert "median3" in listed.stdout and "iddp" in listed.stdout
    assert warnings_of(listed) == [f"warning: plugin 'misspelt' (distribution misspelt_plugin) skipped: {reason}"]

    # A method named like the skipped plugin is attributed to it; any other unknown name points at it.
    out = str(tmp_path / "run")
    ran = bench("run", "--methods", "misspelt", "--profile", "smoke", "--out", out, "--no-progress")
    assert ran.exit_code == 2
    assert warnings_of(ran) == warnings_of(listed)
    assert (f"error: method 'misspelt' was not loaded: plugin 'misspelt' (distribution misspelt_plugin) failed: {reason}"
            in ran.stderr)
    ran = bench("run", "--methods", "mine", "--profile", "smoke", "--out", out, "--no-progress")
    assert ran.exit_code == 2
    assert ("error: unknown method 'mine'; valid methods: b2u, bm3d, cvf-sid, cvf-sid-oracle, dip, iddp, iddp-sup-start, median3, n2n, n2v, nb2nb, s2s, unet, zsn2n "
            "(skipped plugins, which may provide it: 'misspelt' (distribution misspelt_plugin))" in ran.stderr)


def test_a_noise_model_of_a_skipped_plugin_is_blamed_on_it(install, tmp_path: Path) -> None:
    install("grain_plugin", "grain = grain_plugin", "raise ImportError('grain is broken on purpose')\n")
    for noise in ("grain", "grain:amount=0.1"):  # a family alone, or a spec of it
        ran = bench("run", "--methods", "bm3d", "--noise", noise, "--profile", "smoke", "--out", str(tmp_path / "run"),
                    "--no-progress")
        assert ran.exit_code == 2
        assert ("error: noise model 'grain' was not loaded: plugin 'grain' (distribution grain_plugin) failed: "
                "importing it raised ImportError: grain is broken on purpose") in ran.stderr
        assert not (tmp_path / "run").exists()


def test_hook_that_raises_skips_its_plugin_and_run_says_why(install, tmp_path: Path) -> None:
    install("half_plugin", "half = half_plugin", """
        from denoise_bench import hookimpl
        from helpers import Median3

        @hookimpl
        def register_methods(register):
            register(Median3)
            raise RuntimeError("boom")
    """)
    reason = "register_methods raised RuntimeError: boom"
    listed = bench("list")
    assert listed.exit_code == 0, listed.output
    assert "median3" not in listed.stdout and "iddp" in listed.stdout
    assert warnings_of(listed) == [f"warning: plugin 'half' (distribution half_plugin) skipped: {reason}"]

    ran = bench("run", "--methods", "iddp,median3", "--profile", "smoke", "--out", str(tmp_path / "run"), "--no-progress")
    assert ran.exit_code == 2
    assert warnings_of(ran) == warnings_of(listed)  # once, not once per lookup
    assert f"error: method 'median3' was not loaded: plugin 'half' (distribution half_plugin) failed: {reason}" in ran.stderr


def test_allow_list_limits_entry_points(install, monkeypatch: pytest.MonkeyPatch) -> None:
    install("toy_plugin", "toy = toy_plugin:plugin", TOY)
    install("broken_plugin", "broken = broken_plugin", "raise ImportError('this plugin is broken on purpose')\n")
    monkeypatch.setenv("DENOISE_BENCH_PLUGINS", "broken")
    plugins.reset_plugin_manager()
    reg = plugins.get_registry()
    assert "median3" not in reg.methods
    assert [f.plugin for f in reg.failures] == ["broken"]
