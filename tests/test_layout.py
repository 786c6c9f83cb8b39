"""The package's shape (docs/architecture.md): one folder per stage, each importing only from the
stages below it, no import circles, and the old flat module paths still importing with a
``DeprecationWarning`` for one release (``htsr._deprecated``).

The import graph is read from the source with ``ast`` (imports at module level and inside
functions alike), so it holds whatever runs first.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "htsr"

#: The stages, lowest first: a module may import from its own stage and the ones before it.
STAGES = ("io", "spectral", "weights", "experiments", "studies", "guide", "figures", "cli")

#: Old module path -> (the name to look up there, the module that defines it now).
OLD_PATHS: dict[str, tuple[str, str]] = {
    "htsr.fit": ("fit_power_law", "htsr.spectral.fit"),
    "htsr.spectra": ("layer_matrices", "htsr.spectral.matrices"),
    "htsr.metrics": ("COLUMNS", "htsr.spectral.metrics"),
    "htsr.ww": ("ww_dims", "htsr.spectral.ww"),
    "htsr.checkpoints": ("load_state_dict", "htsr.weights.checkpoints"),
    "htsr.download": ("download", "htsr.weights.download"),
    "htsr.osmr": ("store_url", "htsr.weights.osmr"),
    "htsr.zoo": ("weights_path", "htsr.weights.zoo"),
    "htsr.sources": ("cell", "htsr.weights.sources"),
    "htsr.sources.hf": ("fetch_uri", "htsr.weights.sources.hf"),
    "htsr.sources.pytorchcv": ("store_url", "htsr.weights.sources.pytorchcv"),
    "htsr.sources.timm": ("resolve", "htsr.weights.sources.timm"),
    "htsr.sources.torchvision": ("weights_url", "htsr.weights.sources.torchvision"),
    "htsr.sources.trained": ("load", "htsr.weights.sources.trained"),
    "htsr.sources.url": ("resolve", "htsr.weights.sources.url"),
    "htsr.datasets": ("prepare", "htsr.experiments.datasets"),
    "htsr.nets": ("build", "htsr.experiments.nets"),
    "htsr.train": ("train", "htsr.experiments.train"),
    "htsr.table": ("read_model_table", "htsr.studies.table"),
    "htsr.trends": ("fit_trend", "htsr.studies.trends"),
    "htsr.predict": ("leave_one_out", "htsr.studies.predict"),
    "htsr.summary": ("answer_table", "htsr.studies.summary"),
    "htsr.paper": ("compare", "htsr.studies.paper"),
    "htsr.compare": ("compare_tables", "htsr.studies.compare"),
    "htsr.provenance": ("collect_provenance", "htsr.studies.provenance"),
    "htsr.plots": ("trend_figure", "htsr.figures.trends"),
}
#: Packages that took an old module's name: old name -> its new module.
OLD_MODULES_NOW_PACKAGES = {
    "htsr.studies": ("read_study", "htsr.studies.study"),
    "htsr.experiments": ("grid_table", "htsr.experiments.grids"),
}
#: Outside the stages: the package's lazy exports and the old paths' import hook.
EXEMPT = {"htsr", "htsr._deprecated"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def stage(module: str) -> str | None:
    """The stage of ``htsr.<stage>[.…]``; None for a module outside every stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def imported_modules(module: str) -> set[str]:
    """The htsr modules ``module`` imports, anywhere in its file (``from a import b`` is module
    ``a.b`` when that is a module, else ``a``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES or candidate in OLD_PATHS else base)
    return {m for m in found if m == "htsr" or m.startswith("htsr.")}


def import_graph() -> dict[str, set[str]]:
    """module -> the htsr modules it imports, exempt modules left out."""
    keep = set(MODULES) - EXEMPT
    return {m: imported_modules(m) & keep for m in sorted(keep)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_is_in_a_stage() -> None:
    outside = sorted(m for m in MODULES if m not in EXEMPT and stage(m) is None)
    assert not outside, f"modules outside the stages {STAGES}: {outside}"


def test_old_paths_are_not_files() -> None:
    """An old path is only a name of the import hook, so that git follows each file to its new
    place; the hook knows exactly the old paths listed here."""
    from htsr._deprecated import MOVED

    assert set(MOVED) == set(OLD_PATHS)
    assert not set(OLD_PATHS) & set(MODULES), sorted(set(OLD_PATHS) & set(MODULES))


def test_no_import_circles() -> None:
    graph = import_graph()
    assert len(graph) > 30, sorted(graph)  # the scan sees the package
    assert not cycles(graph), f"import circles: {cycles(graph)}"


def test_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_from_a_higher_stage() -> None:
    upward = []
    for module, targets in import_graph().items():
        for target in sorted(targets):
            if STAGES.index(stage(target)) > STAGES.index(stage(module)):
                upward.append(f"{module} ({stage(module)}) imports {target} ({stage(target)})")
    assert not upward, "imports from a higher stage:\n" + "\n".join(upward)


def test_library_does_not_import_old_paths() -> None:
    users = {
        module: sorted(imported_modules(module) & set(OLD_PATHS))
        for module in MODULES
        if imported_modules(module) & set(OLD_PATHS)
    }
    assert not users, f"modules importing deprecated paths: {users}"


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_path_imports_and_warns(old: str) -> None:
    name, new = OLD_PATHS[old]
    sys.modules.pop(old, None)  # a shim warns when it is imported
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*import .*{new}"):
        shim = importlib.import_module(old)
    assert getattr(shim, name) is getattr(importlib.import_module(new), name)
    assert name in dir(shim)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        shim.no_such_name  # noqa: B018


@pytest.mark.parametrize("old", sorted(OLD_MODULES_NOW_PACKAGES))
def test_old_module_names_resolve_in_its_package(old: str) -> None:
    name, new = OLD_MODULES_NOW_PACKAGES[old]
    package = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated.*from {new}"):
        found = getattr(package, name)
    assert found is getattr(importlib.import_module(new), name)


def test_old_paths_keep_their_behaviour() -> None:
    """``htsr.metrics.analyze`` still reads paths, ``htsr.checkpoints.open_checkpoint`` still
    takes ``hf://`` addresses: the shims map them to the weights stage's versions."""
    import htsr.weights.analysis

    with pytest.warns(DeprecationWarning):
        sys.modules.pop("htsr.metrics", None)
        import htsr.metrics
    with pytest.warns(DeprecationWarning):
        sys.modules.pop("htsr.checkpoints", None)
        import htsr.checkpoints
    assert htsr.metrics.analyze is htsr.weights.analysis.analyze
    assert htsr.checkpoints.open_checkpoint is htsr.weights.analysis.open_weights


def test_the_workflows_parse_does_not_import_torch() -> None:
    """The htsr imports of workflow/rules/common.smk load without torch: every Snakemake run
    parses the workflow, a Slurm job twice (its job step and srun's), and torch's import is
    about 2 s of CPU each time."""
    smk = (SRC.parent / "workflow" / "rules" / "common.smk").read_text()
    imports = re.findall(r"^(?:from htsr[\w.]* import .+|import htsr.*)$", smk, re.M)
    assert any("zoo" in line for line in imports), imports
    code = "\n".join(["import sys", *imports, "print('torch' in sys.modules)"])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=300)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "False", (imports, run.stderr[-2000:])
