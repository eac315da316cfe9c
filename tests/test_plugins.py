"""The plugin system: inline plugins, entry-point plugins, broken plugins, misspelt hooks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from denoise_bench import hookimpl, plugins
from denoise_bench.cli import main
from denoise_bench.errors import BenchError
from helpers import Median3, ToyPlugin


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


def test_plugin_whose_hook_raises_is_reported_and_skipped() -> None:
    class Exploding:
        @hookimpl
        def register_methods(self, register):
            raise RuntimeError("boom")

    plugins.register_plugin(Exploding(), name="exploding")
    reg = plugins.get_registry()
    assert "iddp" in reg.methods  # everything else still works
    assert [f.plugin for f in reg.failures] == ["exploding"]
    assert "boom" in reg.failures[0].error


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


def test_duplicate_name_is_reported() -> None:
    class Dup:
        @hookimpl
        def register_methods(self, register):
            register(Median3)

    plugins.register_plugin(Dup(), name="dup1")
    plugins.register_plugin(Dup(), name="dup2")
    reg = plugins.get_registry()
    assert "median3" in reg.methods
    assert [f.plugin for f in reg.failures] == ["dup2"]
    assert "already registered" in reg.failures[0].error


def test_misspelt_hook_fails_fast() -> None:
    class Misspelt:
        @hookimpl
        def register_method(self, register):  # missing the "s"
            pass

    with pytest.raises(BenchError, match="register_method"):
        plugins.register_plugin(Misspelt(), name="misspelt")
    plugins.unregister_plugin("misspelt")


@pytest.fixture
def installed_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Installs two packages with entry points into a temporary site folder: one good, one broken."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy_denoise_plugin.py").write_text(textwrap.dedent("""
        from helpers import ToyPlugin
        plugin = ToyPlugin()
    """))
    (site / "broken_denoise_plugin.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    for dist, ep in [("toy_denoise_plugin", "toy = toy_denoise_plugin:plugin"),
                     ("broken_denoise_plugin", "broken = broken_denoise_plugin")]:
        info = site / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[denoise_bench]\n{ep}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD")
    plugins.reset_plugin_manager()
    yield
    monkeypatch.setenv("DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins.reset_plugin_manager()


def test_entry_point_plugins_load_and_a_broken_one_is_skipped(installed_plugins) -> None:
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    assert "median3" in result.output and "iddp" in result.output
    assert "plugin 'broken' skipped: failed to load: ImportError: this plugin is broken on purpose" in result.output


def test_allow_list_limits_entry_points(installed_plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENOISE_BENCH_PLUGINS", "broken")
    plugins.reset_plugin_manager()
    reg = plugins.get_registry()
    assert "median3" not in reg.methods
    assert [f.plugin for f in reg.failures] == ["broken"]
