"""Where a model row's weights come from: one module per ``source`` value of the model table.

Each source module (``htsr.weights.sources.<name>``) has the same small interface:

``COLUMNS``
    the table columns a row of this source must fill;
``problems(row) -> list[str]``
    what else is wrong with a row (all cells as strings), for the table's validation;
``suffix(row) -> str``
    the suffix of the file the pipeline keeps (``.pth``, ``.safetensors``, ``.pth.zip``,
    ``.hf.json``), so paths are known without network or torch;
``download(row, dest, *, endpoints, offline, retries, backoff_s, progress) -> dict``
    fetch and verify the weights to ``dest`` (:mod:`htsr.weights.download`);
``load(row, path)``
    what :func:`htsr.analyze` reads: an ``nn.Module`` or a mapping of tensors.

A new source is one new module in this package; :func:`get` finds it by name.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["cell", "get", "names", "single_file_download"]


def names() -> tuple[str, ...]:
    """The source names: the modules of this package, sorted."""
    return tuple(
        sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    )


def get(name: str) -> ModuleType:
    """The source module ``htsr.weights.sources.<name>``; ``ValueError`` naming the known ones."""
    if name not in names():
        raise ValueError(f"unknown source {name!r} (expected one of {', '.join(names())})")
    return importlib.import_module(f"{__name__}.{name}")


def cell(row: Any, column: str) -> str:
    """Value of a string cell of a table row, '' when absent, None or NaN."""
    value = row.get(column, "")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def single_file_download(resolve: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """The ``download`` of a source whose weights are one verified file: ``resolve(row,
    endpoints)`` gives its :class:`htsr.weights.download.WeightsSource`,
    :func:`htsr.weights.download.download`
    fetches and verifies it."""
    from htsr.weights.download import DEFAULT_ENDPOINTS, download

    def download_row(
        row: Mapping[str, Any], dest: Any, *, endpoints: Any = DEFAULT_ENDPOINTS, **options: Any
    ) -> dict[str, Any]:
        """Fetch and verify the row's file to ``dest`` (:func:`htsr.weights.download.download`)."""
        return download(resolve(row, endpoints), dest, endpoint=endpoints.hub, **options)

    return download_row
