"""The old module paths of htsr (one flat folder, before the stages of issue 20), kept working
for one release: each old module is a shim that warns once, on import, with a
``DeprecationWarning`` naming its new place, and finds every name there.

>>> import htsr.fit  # doctest: +SKIP
DeprecationWarning: htsr.fit is deprecated; import htsr.spectral.fit instead
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


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
    return the ``__getattr__`` and ``__dir__`` of the shim: a name is looked up in ``renamed``
    (``name -> "module"`` or ``"module:attribute"``), then in each of ``new`` in turn."""
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
