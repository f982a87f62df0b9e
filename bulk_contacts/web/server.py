"""Running `bulk-contacts serve`: 127.0.0.1 only, a URL with a random token, a private temporary
folder for uploads and downloads that is removed at exit, and a run in progress stopped at exit
as Ctrl-C stops one (the changes in flight finish, the journal is complete)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path

import uvicorn

from ..sandbox.server import bind, uvicorn_config
from .app import create_app
from .security import Session
from .workspace import Workspace

HOST = "127.0.0.1"
DEFAULT_PORT = 8790
RUNS_DIR = Path("bulk-contacts-runs")  # the CLI's own default, so both list the same runs


def default_mappings_file() -> Path:
    """Saved column mappings, in the user's configuration folder."""
    import platformdirs

    return platformdirs.user_config_path("bulk-contacts") / "column-mappings.json"


class WebServer:
    """The interface served by uvicorn: in the foreground (`run`, the command) or in a thread
    (`start`/`stop`, tests and scripts). `url` carries the session's token."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        runs_dir: Path = RUNS_DIR,
        mappings_file: Path | None = None,
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bulk-contacts-serve-"))  # mode 0700
        self.session = Session()
        self.workspace = Workspace(
            self.folder, runs_dir.resolve(), mappings_file or default_mappings_file()
        )
        try:
            self._socket = bind(HOST, port)
        except Exception:
            self._remove_folder()
            raise
        self.session.port = self._socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(create_app(self.workspace, self.session)))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.session.url

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.session.port}"

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until interrupted (Ctrl-C), then clean up."""
        if ready is not None:
            threading.Thread(target=self._when_started, args=(ready,), daemon=True).start()
        try:
            self.server.run(sockets=[self._socket])
        finally:
            self.close()

    def start(self, timeout: float = 10.0) -> WebServer:
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="serve"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web interface did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        self.workspace.close()
        self._socket.close()
        self._remove_folder()

    def _remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _when_started(self, ready: Callable[[], None]) -> None:
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.server.started:
            ready()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def open_browser(url: str) -> None:
    webbrowser.open(url)
