"""The conda env files agree with pyproject.toml's pins and cover what their rules import.

pyproject.toml is the one place that holds the versions. Each ``envs/*.yaml`` installs Python and
pip from conda-forge and every package with pip at exactly pyproject's pin. A rule that declares
``conda: "<env>.yaml"`` runs its ``script:`` in that env: the packages the script imports, directly
or through the ``htsr`` modules it imports, must be in the env.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
ENV_NAMES = ("download", "spectra", "analysis", "experiments")
SRC = ROOT / "src"
#: Conda packages an env file may hold besides pip-installed pins: the interpreter and pip.
CONDA_BASE = {"python", "pip"}
#: Importable without being installed in the env: the env's own interpreter and Snakemake,
#: whose script preamble puts the running Snakemake on ``sys.path``.
PROVIDED = set(sys.stdlib_module_names) | {"snakemake", "__future__"}


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name: lower case, runs of ``-_.`` become ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _parse_pin(spec: str, where: str) -> tuple[str, str]:
    """``name==version`` → (normalized name, version); else an error naming ``where``."""
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*", spec)
    if m is None:
        raise AssertionError(f"{where}: {spec!r} is not pinned as name==version")
    return normalize(m.group(1)), m.group(2)


@cache
def pyproject_pins() -> dict[str, str]:
    """Pins of ``[project].dependencies`` and the ``workflow`` extra: normalized name → version."""
    project = pyproject()["project"]
    specs = list(project["dependencies"]) + list(project["optional-dependencies"]["workflow"])
    return dict(_parse_pin(s, "pyproject.toml") for s in specs)


def read_env(name: str) -> tuple[list[str], list[str]]:
    """(conda dependencies, pip dependencies) of ``envs/<name>.yaml``."""
    path = ENVS / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict) and "dependencies" in doc, f"{path}: no dependencies list"
    conda: list[str] = []
    pip: list[str] = []
    for dep in doc["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path}: unexpected mapping {dep}"
            pip.extend(dep["pip"])
        else:
            conda.append(str(dep))
    return conda, pip


def env_packages(name: str) -> dict[str, str]:
    """The env's pip pins: normalized name → version."""
    return dict(_parse_pin(s, f"envs/{name}.yaml") for s in read_env(name)[1])


# --------------------------------------------------------------------------- rules → imports


def workflow_files() -> list[Path]:
    """The Snakefile(s) and rule files of the pipeline."""
    files = [p for p in (ROOT / "Snakefile", ROOT / "workflow" / "Snakefile") if p.is_file()]
    files += sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    return files


_RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
_DIRECTIVE = r"^\s+{}:\s*(?:\n\s*)?(?:f?r?)([\"'])(.+?)\1"


def rule_directives(path: Path) -> dict[str, dict[str, Path]]:
    """``{rule: {"conda": env file, "script": script}}`` read from one Snakefile / .smk file.

    Paths are resolved like Snakemake does: relative to the directory of the file that holds the
    rule. Only string-literal directives are read.
    """
    text = path.read_text()
    starts = [(m.start(), m.group(1)) for m in _RULE.finditer(text)]
    out: dict[str, dict[str, Path]] = {}
    for i, (start, rule) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        # A rule's body ends at the next unindented, non-comment line.
        body_lines = text[start:end].splitlines()
        body = [body_lines[0]]
        for line in body_lines[1:]:
            if line.strip() and not line[0].isspace() and not line.startswith("#"):
                break
            body.append(line)
        block = "\n".join(body)
        found: dict[str, Path] = {}
        for key in ("conda", "script"):
            m = re.search(_DIRECTIVE.format(key), block, re.M)
            if m:
                found[key] = (path.parent / m.group(2)).resolve()
        out[rule] = found
    return out


@cache
def all_rules() -> dict[str, dict[str, Path]]:
    rules: dict[str, dict[str, Path]] = {}
    for f in workflow_files():
        rules.update(rule_directives(f))
    return rules


def _module_file(module: str) -> Path | None:
    """Source file of an ``htsr`` module under src/, or None if ``module`` is not one."""
    rel = Path(*module.split("."))
    for candidate in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_optional_import_block(node: ast.AST) -> bool:
    """``try: import x`` / ``except ImportError:``: the code works without ``x``."""
    if not isinstance(node, ast.Try):
        return False
    caught = set()
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        caught.update(t.id for t in types if isinstance(t, ast.Name))
    return bool(caught & {"ImportError", "ModuleNotFoundError"})


def _body(node: ast.Try) -> list[ast.AST]:
    return [n for stmt in node.body for n in ast.walk(stmt)]


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in a Python file (``from a import b`` gives ``a``
    and ``a.b``; ``htsr.name`` attribute uses resolve lazy re-exports), except optional imports
    guarded by ``except ImportError``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    guarded = [node for node in ast.walk(tree) if _is_optional_import_block(node)]
    optional = {id(inner) for node in guarded for inner in _body(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "htsr"
        ):
            names.add(f"htsr.{node.attr}")
    return names


def _htsr_module_of(name: str) -> str | None:
    """The htsr module that defines ``name`` (a module path or a re-exported attribute)."""
    if _module_file(name) is not None:
        return name
    parent, _, attr = name.rpartition(".")
    parent_file = _module_file(parent) if parent else None
    if parent_file is not None and parent_file.name != "__init__.py":
        return parent  # a name defined in (or imported into) that module: scan the module
    if parent_file is not None:
        # A package's lazy re-export (htsr.analyze): the defining module says where it lives.
        obj = getattr(importlib.import_module(parent), attr, None)
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.split(".")[0] == "htsr":
            return module
        return parent
    return None


def third_party_imports(script: Path) -> dict[str, str]:
    """Top-level third-party modules a script needs → the file that imports each.

    Follows the ``htsr`` modules it imports (transitively, imports inside functions included).
    """
    needed: dict[str, str] = {}
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "htsr":
                module = _htsr_module_of(name)
                if module is not None:
                    todo.append(_module_file(module))  # type: ignore[arg-type]
            elif top not in PROVIDED:
                needed.setdefault(top, str(path.relative_to(ROOT)))
    return needed


@cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """Normalized distribution names that provide a top-level module (from installed metadata)."""
    return {normalize(d) for d in _packages_distributions().get(module, [])}


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("env", ENV_NAMES)
def test_env_pins_match_pyproject(env: str) -> None:
    conda, pip = read_env(env)
    assert pip, f"envs/{env}.yaml installs nothing with pip"
    for dep in conda:
        name = re.split(r"[=<>! ]", dep, maxsplit=1)[0]
        assert name in CONDA_BASE, (
            f"envs/{env}.yaml: conda package {dep!r}; install it under pip: pinned as in "
            "pyproject.toml so that one place holds the versions"
        )
    python = next((d for d in conda if d.startswith("python")), None)
    assert python is not None, f"envs/{env}.yaml does not pin python"
    version = python.split("=")[-1]
    required = pyproject()["project"]["requires-python"]
    assert required.startswith(">="), required
    assert tuple(map(int, version.split("."))) >= tuple(map(int, required[2:].split("."))), (
        f"envs/{env}.yaml: python {version} does not satisfy requires-python {required}"
    )
    pins = pyproject_pins()
    for name, version in env_packages(env).items():
        assert name in pins, f"envs/{env}.yaml pins {name}=={version}, which pyproject lacks"
        assert version == pins[name], (
            f"envs/{env}.yaml pins {name}=={version} but pyproject.toml pins {pins[name]}"
        )


def test_rules_use_only_the_three_envs() -> None:
    rules = all_rules()
    assert rules, f"no rules found in {[str(p) for p in workflow_files()]}"
    used = {d["conda"] for d in rules.values() if "conda" in d}
    expected = {(ENVS / f"{e}.yaml").resolve() for e in ENV_NAMES}
    assert used <= expected, f"rules refer to env files other than envs/{ENV_NAMES}: {used}"
    assert used == expected, f"env files no rule uses: {sorted(map(str, expected - used))}"
    for rule, d in rules.items():
        if "script" in d:
            assert "conda" in d, f"rule {rule} runs {d['script'].name} but declares no conda env"
            assert d["script"].is_file(), f"rule {rule}: script {d['script']} does not exist"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_env_covers_its_rules_imports(env: str) -> None:
    env_file = (ENVS / f"{env}.yaml").resolve()
    scripts = {
        rule: d["script"]
        for rule, d in all_rules().items()
        if d.get("conda") == env_file and "script" in d
    }
    assert scripts, f"no rule runs a script in envs/{env}.yaml"
    have = set(env_packages(env))
    missing = []
    for rule, script in sorted(scripts.items()):
        for module, importer in sorted(third_party_imports(script).items()):
            dists = distributions_of(module)
            assert dists, f"{importer} imports {module!r}, which no installed package provides"
            if not dists & have:
                missing.append(f"{module} ({'/'.join(sorted(dists))}; rule {rule}, {importer})")
    assert not missing, f"envs/{env}.yaml lacks: " + "; ".join(missing)


def test_import_scan_follows_htsr_modules(tmp_path: Path) -> None:
    """The scanner sees through ``htsr`` to the third-party packages its modules import."""
    script = tmp_path / "script.py"
    script.write_text(
        "import json\nimport htsr\nfrom htsr.studies.trends import fit_trend\nhtsr.analyze\n"
        "try:\n    import not_installed_anywhere\nexcept ImportError:\n    pass\n"
    )
    needed = third_party_imports(script)
    assert "json" not in needed and "not_installed_anywhere" not in needed
    # htsr.trends imports scipy; htsr.analyze lives in htsr.weights.analysis, which imports torch.
    assert {"scipy", "torch", "pandas", "numpy"} <= set(needed), needed
    assert distributions_of("yaml") == {"pyyaml"}
