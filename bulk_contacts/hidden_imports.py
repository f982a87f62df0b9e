"""Libraries imported with an optional module of theirs hidden, when the tool never uses what it
brings: pandera imports hypothesis (to synthesize data) and httpcore imports trio (an async
backend) whenever they are installed, as they are in a test environment (hypothesis for the
tests, trio with selenium): about 0.3 s and 0.1 s of CPU in every command there."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def import_hiding(module: str, hidden: str) -> ModuleType:
    """`import module`, with `hidden` made unimportable meanwhile unless something already
    imported it. Other code may still import `hidden` later; only `module` goes without."""
    if hidden in sys.modules:
        return importlib.import_module(module)
    sys.modules[hidden] = None  # type: ignore[assignment]  # makes `import hidden` fail
    try:
        return importlib.import_module(module)
    finally:
        if sys.modules.get(hidden, 0) is None:
            del sys.modules[hidden]
