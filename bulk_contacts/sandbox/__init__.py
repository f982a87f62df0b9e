"""A local emulation of CHeKT's Partner API, kept in SQLite, for rehearsals and tests.

Names are imported on first use, so that commands that never serve do not load the web stack.
Its errors are the tool's (`SandboxError` and `SeedError`, under `errors.ConfigError`); the
`app.ApiError` the emulated API answers with is private to `app`: it becomes an error body.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Faults": ".config",
    "SandboxConfig": ".config",
    "SandboxError": "..errors",
    "SandboxServer": ".server",
    "SeedError": "..errors",
    "Store": ".store",
    "create_app": ".app",
    "serve": ".server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
