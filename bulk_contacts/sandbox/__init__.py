"""A local emulation of CHeKT's Partner API, kept in SQLite, for rehearsals and tests."""

from .app import create_app
from .config import Faults, SandboxConfig
from .seed import SeedError
from .server import SandboxError, SandboxServer, serve
from .store import Store

__all__ = [
    "Faults",
    "SandboxConfig",
    "SandboxError",
    "SandboxServer",
    "SeedError",
    "Store",
    "create_app",
    "serve",
]
