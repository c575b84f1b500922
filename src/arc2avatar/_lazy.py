"""Lazy package exports: a package names its public API without importing it, so importing one
light module of the package (a config, a dataset checker) does not load torch or diffusers."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``name`` from ``package + "." + table[name]`` on first use."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def lazy_dir(namespace: Mapping[str, Any], table: Mapping[str, str]) -> Callable[[], list[str]]:
    """A module ``__dir__`` listing the module's own names and its lazy exports, so ``dir()`` and
    tab completion show the public API before any of it is imported."""

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __dir__
