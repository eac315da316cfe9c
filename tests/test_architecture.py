"""The architecture of docs/architecture.md, checked: the core never imports a plugin (built-in methods, datasets,
noise models and trackers are reached through the registry only), the layers import only downwards, no runtime
import cycle, every plugin module registered, and plugins import only the public top-level modules.

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


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (annotations only: never run)."""
    return {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
            for stmt in node.body for inner in ast.walk(stmt)}


def _imports(module: str, path: Path, *, runtime: bool = False, top_level: bool = False) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, at any depth of the file (lazy ones too).
    ``runtime`` leaves out imports under TYPE_CHECKING; ``top_level`` also those inside functions."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree) if runtime or top_level else set()
    nodes = ast.walk(tree) if not top_level else (
        inner for stmt in tree.body for inner in ([stmt] if not isinstance(stmt, ast.If) else ast.walk(stmt)))
    found = set()
    for node in nodes:
        if id(node) in skip:
            continue
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


# docs/architecture.md's layers, bottom first: a module imports only from its own layer and the layers below.
# The library is every top-level module (the public, plugin-facing import paths) and nets/.
LAYERS: dict[str, int] = {"library": 0, "models": 1, "store": 1, "run": 2, "report": 3, "cli": 4, "api": 4}

# Imports that point up on purpose, each documented in docs/architecture.md ("Exemptions").
# Imports under TYPE_CHECKING are not counted (they never run): denoise_bench/__init__.py's lazy names use that.
UPWARD_EXEMPT: set[tuple[str, str]] = set()


def _layer(module: str) -> str:
    parts = module.split(".")
    if module == f"{PACKAGE}.api":
        return "api"
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "library"


def _internal(names: set[str], modules: dict[str, Path]) -> set[str]:
    """The names that are modules of the core (``from pkg import name`` gives both pkg and pkg.name)."""
    return {name for name in names if name in modules}


def test_every_core_module_belongs_to_a_documented_layer() -> None:
    folders = {path.parent.name for path in (REPO / PACKAGE).glob("*/__init__.py")}
    assert folders - {"nets"} - set(_plugin_packages_short()) == set(LAYERS) - {"library", "api"}


def _plugin_packages_short() -> list[str]:
    return [name.rpartition(".")[2] for name in _plugin_packages()]


def test_imports_point_down_the_layers() -> None:
    modules = _core_modules()
    upward = sorted((module, target) for module, path in modules.items()
                    for target in _internal(_imports(module, path, runtime=True), modules)
                    if LAYERS[_layer(target)] > LAYERS[_layer(module)]
                    or (LAYERS[_layer(target)] == LAYERS[_layer(module)] and _layer(target) != _layer(module)
                        and "library" not in (_layer(target), _layer(module))))
    assert [pair for pair in upward if pair not in UPWARD_EXEMPT] == []


def test_no_import_cycle_at_run_time() -> None:
    """Imports that run (at import time or inside functions; not those under TYPE_CHECKING) form no cycle: a
    lazy import is no way out of a cycle, only a way to hide it."""
    modules = _core_modules()
    graph = {module: _internal(_imports(module, path, runtime=True), modules) - {module}
             for module, path in modules.items()}
    graph = {module: {t for t in targets if not module.startswith(t + ".")} for module, targets in graph.items()}
    cycles, state = [], {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"
    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_plugins_import_only_the_public_top_level_modules() -> None:
    """Plugins (built-in or third-party) see the library layer only: run/, report/, ... may change freely."""
    plugin_names = tuple(_plugin_packages())
    offenders = {}
    for package, folder in _plugin_packages().items():
        for path in folder.glob("*.py"):
            module = f"{package}.{path.stem}"
            bad = sorted(name for name in _imports(module, path) if name.startswith(f"{PACKAGE}.")
                         and not name.startswith(plugin_names) and name in _core_modules()
                         and _layer(name) != "library")
            if bad:
                offenders[module] = bad
    assert offenders == {}


def test_the_leaderboard_and_its_page_import_down_only() -> None:
    """Run folders merged, then tables, then the page, then the writer of the leaderboard folder: no module
    of that chain imports one above it, not even lazily or for type hints (a cycle there once needed a
    lazy import to load at all)."""
    chain = [f"{PACKAGE}.{name}" for name in ("report.leaderboard_merge", "report.leaderboard_tables",
                                              "report.about", "report.page", "report.leaderboard")]
    modules = _core_modules()
    upward = {module: sorted(set(_imports(module, modules[module])) & set(chain[i + 1:]))
              for i, module in enumerate(chain)}
    assert {module: above for module, above in upward.items() if above} == {}
