"""`bulk-contacts serve`: the whole job in a browser, on this machine only.

The pages call the same library as the command line (through `library`, the one adapter);
FastAPI with Jinja2 templates, htmx and Tabulator vendored in `static/vendor` (nothing loads
from the network). Names are imported on first use, so that other commands do not load it.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {"WebServer": ".server", "create_app": ".app", "DEFAULT_PORT": ".server"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
