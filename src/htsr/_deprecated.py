"""The old module paths of htsr (one flat folder, before the stages of issue 20), kept working
for one release.

No file stays at an old path (so that git follows each module to its new place); instead an
import hook, installed by ``htsr/__init__.py``, makes each old path of :data:`MOVED` a small
module that warns once, on import, with a ``DeprecationWarning`` naming its new place, and finds
every name there. ``htsr.studies`` and ``htsr.experiments``, old modules that are now packages,
resolve the old names in their ``__init__`` (:func:`moved_names`).

>>> import htsr.fit  # doctest: +SKIP
DeprecationWarning: htsr.fit is deprecated and will be removed in the next release; import
htsr.spectral.fit instead (see the README's changelog)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

_FIGURES = tuple(
    f"htsr.figures.{m}"
    for m in ("common", "trends", "spectra", "studies", "experiments", "commands")
)
#: Old module path -> (the modules its names are now in, looked up in turn; the names whose new
#: home differs, ``name -> "module"`` or ``"module:attribute"``).
MOVED: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "htsr.fit": (("htsr.spectral.fit",), {}),
    "htsr.spectra": (("htsr.spectral.matrices", "htsr.spectral.eigen"), {}),
    "htsr.metrics": (("htsr.spectral.metrics",), {"analyze": "htsr.weights.analysis"}),
    "htsr.ww": (("htsr.spectral.ww",), {"ww_row": "htsr.spectral.metrics"}),
    "htsr.checkpoints": (
        ("htsr.weights.checkpoints",),
        {
            "open_checkpoint": "htsr.weights.analysis:open_weights",  # it read hf:// addresses too
            "OUTPUT_HEADS": "htsr.spectral.matrices",
        },
    ),
    "htsr.download": (("htsr.weights.download",), {}),
    "htsr.osmr": (("htsr.weights.osmr",), {}),
    "htsr.zoo": (("htsr.weights.zoo", "htsr.studies.table"), {}),
    "htsr.sources": (("htsr.weights.sources",), {}),
    **{
        f"htsr.sources.{s}": ((f"htsr.weights.sources.{s}",), {})
        for s in ("hf", "pytorchcv", "timm", "torchvision", "trained", "url")
    },
    "htsr.datasets": (("htsr.experiments.datasets",), {}),
    "htsr.nets": (("htsr.experiments.nets",), {}),
    "htsr.train": (("htsr.experiments.train",), {}),
    "htsr.table": (("htsr.studies.table",), {}),
    "htsr.trends": (("htsr.studies.trends",), {}),
    "htsr.predict": (("htsr.studies.predict",), {}),
    "htsr.summary": (("htsr.studies.summary",), {}),
    "htsr.paper": (("htsr.studies.paper",), {}),
    "htsr.compare": (("htsr.studies.compare",), {}),
    "htsr.provenance": (("htsr.studies.provenance",), {}),
    "htsr.plots": (_FIGURES, {}),
}
#: Old paths that were packages (their submodules are old paths too).
PACKAGES = ("htsr.sources",)


def _find(old: str, name: str, new: tuple[str, ...], renamed: Mapping[str, str]) -> Any:
    if name in renamed:
        module, _, attr = renamed[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    for module in new:
        found = importlib.import_module(module)
        if hasattr(found, name):
            return getattr(found, name)
        if hasattr(found, "__path__"):  # a package: its submodule of that name
            try:
                return importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                pass
    raise AttributeError(f"module {old!r} has no attribute {name!r}")


def moved(
    old: str, *new: str, renamed: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Warn that module ``old`` moved to ``new`` (one module, or several it was split into), and
    return the ``__getattr__`` and ``__dir__`` of its stand-in: a name is looked up in
    ``renamed`` (``name -> "module"`` or ``"module:attribute"``), then in each of ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; import "
        f"{' or '.join(new)} instead (see the README's changelog)",
        DeprecationWarning,
        stacklevel=3,
    )
    renamed = dict(renamed or {})

    def __getattr__(name: str) -> Any:
        return _find(old, name, new, renamed)

    def __dir__() -> list[str]:
        names = set(renamed)
        for module in new:
            names.update(n for n in dir(importlib.import_module(module)) if not n.startswith("__"))
        return sorted(names)

    return __getattr__, __dir__


class _MovedLoader(importlib.abc.Loader):
    """Makes the stand-in module of an old path (see :data:`MOVED`)."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        new, renamed = MOVED[module.__name__]
        module.__getattr__, module.__dir__ = moved(module.__name__, *new, renamed=renamed)  # type: ignore[method-assign]
        module.__doc__ = f"Deprecated: {module.__name__} moved to {', '.join(new)}."


class MovedFinder(importlib.abc.MetaPathFinder):
    """The import hook of the old paths: finds exactly the names of :data:`MOVED`."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(
            fullname, _MovedLoader(), is_package=fullname in PACKAGES
        )


def install() -> None:
    """Put :class:`MovedFinder` on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())


def moved_names(package: str, old: str, new: str, names: tuple[str, ...]) -> Callable[[str], Any]:
    """The ``__getattr__`` of a package that took the name of an old module ``old``: each of
    that module's ``names`` is found in ``new``, with a ``DeprecationWarning``; any other name is
    an ``AttributeError`` (so that the package's submodules import as usual)."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} is deprecated and will be removed in the next release; import it "
            f"from {new} instead (see the README's changelog)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)

    return __getattr__
