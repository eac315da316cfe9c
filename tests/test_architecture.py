"""The core never imports a plugin: built-in methods, datasets, noise models and trackers are reached through
the registry only.

Plugin packages are found where pyproject.toml maps them (``denoise_bench.methods`` -> ``methods/``,
``denoise_bench.datasets`` -> ``datasets/``, ``noises/``, ``trackers/``); every other module of the package is core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "denoise_bench"


def _plugin_packages() -> dict[str, Path]:
    """Package name -> folder of every package pyproject.toml maps outside ``denoise_bench/``."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {name: (REPO / folder).resolve() for name, folder in mapping.items() if name.startswith(f"{PACKAGE}.")}


def _core_modules() -> dict[str, Path]:
    """Module name -> file of every module under ``denoise_bench/`` that is not inside a plugin package."""
    plugin_folders = set(_plugin_packages().values())
    modules = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        if any(path.resolve().is_relative_to(folder) for folder in plugin_folders):
            continue  # e.g. a development symlink denoise_bench/methods -> ../methods
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(module: str, path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, at any depth of the file (lazy ones too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return found


def test_the_plugin_packages_are_the_mapped_plugin_folders() -> None:
    assert set(_plugin_packages()) == {f"{PACKAGE}.{folder}" for folder in ("methods", "datasets", "noises", "trackers")}
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert set(_plugin_packages()) <= set(config["tool"]["setuptools"]["packages"])  # mapped and installed
    assert f"{PACKAGE}.run.runner" in _core_modules() and not any(".methods" in m for m in _core_modules())


def test_no_core_module_imports_a_plugin_module() -> None:
    plugins = tuple(_plugin_packages())
    offenders = {module: sorted(name for name in _imports(module, path) if name.startswith(plugins))
                 for module, path in _core_modules().items()}
    assert {module: names for module, names in offenders.items() if names} == {}


def test_every_plugin_module_is_registered_as_a_built_in() -> None:
    """A module dropped into methods/, datasets/, noises/ or trackers/ but missing from BUILTIN_PLUGINS would be
    installed and never loaded: its method, dataset or noise model silently absent from `bench list` and every
    grid, its tracker never called."""
    from denoise_bench.plugins import BUILTIN_PLUGINS

    modules = {f"{package}.{path.stem}" for package, folder in _plugin_packages().items()
               for path in folder.glob("*.py") if path.stem != "__init__"}
    assert {package.rpartition(".")[2] for package in _plugin_packages()} >= {"noises", "trackers"}
    assert sorted(modules - set(BUILTIN_PLUGINS)) == []


def test_the_moved_built_ins_keep_their_old_import_paths() -> None:
    """Third-party code that imported a built-in family from the contract modules still finds it."""
    from denoise_bench import noise, real_noise
    from denoise_bench.noises import real, synthetic

    assert noise.GAUSSIAN is synthetic.GAUSSIAN and noise.SIGMA is synthetic.SIGMA and real_noise.REAL is real.REAL
    with pytest.raises(AttributeError):
        noise.NOT_A_FAMILY


def test_the_leaderboard_and_its_page_import_down_only() -> None:
    """Run folders merged, then tables, then the page, then the writer of the leaderboard folder: no module
    of that chain imports one above it, not even lazily or for type hints (a cycle there once needed a
    lazy import to load at all)."""
    chain = [f"{PACKAGE}.{name}" for name in ("leaderboard_merge", "leaderboard_tables", "report_about", "report",
                                              "leaderboard")]
    modules = _core_modules()
    upward = {module: sorted(set(_imports(module, modules[module])) & set(chain[i + 1:]))
              for i, module in enumerate(chain)}
    assert {module: above for module, above in upward.items() if above} == {}
