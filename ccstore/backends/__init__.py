"""Backends and the registry that maps URL schemes to them.

A backend module provides ``from_url(url, options) -> (backend, prefix)``: it builds a Backend
from a URL, pops the options it understands from ``options`` and returns the key prefix the
URL names. Third-party packages register schemes through the ``ccstore.backends`` entry-point
group (``scheme = "package.module:from_url"``) or ``register_backend``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from importlib.metadata import entry_points

from .base import (
    Backend,
    ByteRange,
    ObjectStat,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
)

__all__ = [
    "Backend",
    "ByteRange",
    "ObjectStat",
    "OffsetByteRequest",
    "RangeByteRequest",
    "SuffixByteRequest",
    "backend_from_url",
    "register_backend",
]

Factory = Callable[[str, dict], "tuple[Backend, str]"]

_FACTORIES: dict[str, str | Factory] = {
    "file": "ccstore.backends.local:from_url",
    "memory": "ccstore.backends.memory:from_url",
    "s3": "ccstore.backends.s3:from_url",
    "gdrive": "ccstore.backends.gdrive:from_url",
}
_EXTRAS = {"s3": "s3", "gdrive": "gdrive"}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def register_backend(scheme: str, factory: str | Factory) -> None:
    """Make ``ccstore.open("<scheme>://...")`` use ``factory`` (a callable or "module:attr")."""
    _FACTORIES[scheme] = factory


def _load(scheme: str) -> Factory:
    factory = _FACTORIES.get(scheme)
    if factory is None:
        for ep in entry_points(group="ccstore.backends"):
            if ep.name == scheme:
                factory = _FACTORIES[scheme] = ep.load()
                break
        else:
            known = ", ".join(sorted(_FACTORIES))
            raise ValueError(f"no ccstore backend for URL scheme {scheme!r} (known: {known})")
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            extra = _EXTRAS.get(scheme)
            hint = f"; install it with: pip install 'ccstore[{extra}]'" if extra else ""
            raise ImportError(f"the {scheme}:// backend needs {e.name}{hint}") from e
        factory = _FACTORIES[scheme] = getattr(module, attr)
    return factory


def backend_from_url(url: str, options: dict) -> tuple[Backend, str]:
    """Build the backend a URL names; pops the backend's own options from ``options``.

    A URL without a scheme (``data/arrays``, ``/abs/path``) is a local directory.
    """
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else "file"
    return _load(scheme)(url, options)
