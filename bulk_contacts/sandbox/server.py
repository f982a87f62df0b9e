"""Running the sandbox: on a socket of its own (the `sandbox` command) or in a background thread
(tests, the demo, scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn

from ..errors import SandboxError, SeedError
from .app import Frontdoor, create_app
from .config import Faults, SandboxConfig
from .faults import FaultPlan
from .holds import READS, WRITES, WriteHold
from .requestlog import RequestLog
from .seed import Seed, load_seed, read_seed
from .store import Store

__all__ = ["SandboxError", "SandboxServer", "serve"]


def open_store(config: SandboxConfig, preloaded: Seed | None = None) -> Store:
    """The database, seeded when asked (from the seed file, or `preloaded`: a clone). Errors
    name the file and what to do."""
    seed = read_seed(config.seed) if config.seed else preloaded
    if config.client_public_key:
        _check_public_key(config.client_public_key)
    try:
        store = Store(config.db)
    except Exception as error:  # sqlite3 errors: not a database, no permission
        raise SandboxError(f"database {config.db}: cannot be opened ({error})") from None
    if seed is not None:
        try:
            load_seed(store, seed, config.seed or Path("(the clone)"))
        except SeedError:
            store.close()
            raise
    return store


def _check_public_key(path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise SandboxError(
            f"client public key {path}: not a readable PEM public key ({error})"
        ) from None


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise SandboxError(
                f"port {port} on {host} is already in use: stop what holds it or choose "
                f"another port",
                setting="port",
            ) from None
        raise SandboxError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SandboxServer:
    """The sandbox served by uvicorn in a background thread, as a context manager:

    with SandboxServer(SandboxConfig(port=0)) as sandbox:
        ... sandbox.url ...
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.url = ""
        self._server: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._log: RequestLog | None = None
        self._frontdoor: Frontdoor | None = None

    def start(self, timeout: float = 10.0) -> SandboxServer:
        self.store = open_store(self.config)
        sock = bind(self.config.host, self.config.port)
        self.url = url_of(sock)
        self._log = RequestLog(self.config.request_log)
        app = create_app(self.config, self.store, self._log)
        self._frontdoor = app
        self._server = _Uvicorn(uvicorn_config(app))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="sandbox"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SandboxError("the sandbox did not start")
            time.sleep(0.01)
        return self

    def set_faults(self, faults: Faults) -> None:
        """Serve the next requests with these faults (latency, errors...) instead: a test slows
        the sandbox only for the part that needs it (a run to interrupt mid-way), not for the
        setup and checks around it. Requests already being answered keep their draw."""
        if self._frontdoor is None:
            raise SandboxError("the sandbox is not running")
        self.config = replace(self.config, faults=faults)
        self._frontdoor.faults = FaultPlan(faults) if faults.any else None

    def hold_writes(self, after: int = 0) -> WriteHold:
        """From now on, let the first `after` writes (POST, PUT, PATCH, DELETE under /partner/)
        through and hold the next ones at the door, before anything of theirs is done, until
        `release()`: a test stops a run at a point it knows (`hold.wait_held(n)`: n writes wait)
        instead of guessing it from the time that passed. `stop` releases them."""
        return self._hold(WriteHold(after, WRITES))

    def hold_reads(self, after: int = 0) -> WriteHold:
        """As `hold_writes`, for the reads (GET, HEAD under /partner/)."""
        return self._hold(WriteHold(after, READS))

    def _hold(self, hold: WriteHold) -> WriteHold:
        if self._frontdoor is None:
            raise SandboxError("the sandbox is not running")
        if self._frontdoor.hold is not None:
            self._frontdoor.hold.release()
        self._frontdoor.hold = hold
        return hold

    def wait_idle(self, timeout: float = 30) -> None:
        """Until the sandbox holds no connection open and answers no request: after a client was
        killed, the requests it left in flight have been answered (its connections close once
        the sandbox has read all it sent). A hang fails after `timeout`."""
        if self._server is None:
            raise SandboxError("the sandbox is not running")
        state = self._server.server_state
        deadline = time.monotonic() + timeout
        while state.connections or state.tasks:
            if time.monotonic() > deadline:
                raise SandboxError(f"the sandbox was still busy after {timeout} s")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._frontdoor is not None and self._frontdoor.hold is not None:
            self._frontdoor.hold.release()  # a held write would keep the shutdown waiting
        if self._server is not None and self._thread is not None:
            self._server.stop_now()
            self._thread.join(timeout=10)
        if self._log is not None:
            self._log.close()
        if self.store is not None:
            self.store.close()
        self._server = self._thread = self._log = self.store = None
        self._frontdoor = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, whose main loop `stop_now` wakes: it stops at once instead of at its
    next tick (a tenth of a second; a test suite starts and stops hundreds of sandboxes)."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    tick = 0.1  # seconds between uvicorn's housekeeping ticks, as in uvicorn

    async def main_loop(self) -> None:  # uvicorn's own, waiting on `_wake` between ticks
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's, less its fixed pause of 0.1 s after asking the connections to close (and
        its checks every 0.1 s): it waits only while a connection is still answering, up to
        the graceful timeout, then cancels what is left, as uvicorn does."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                while state.connections or state.tasks:
                    await asyncio.sleep(0.005)
                for server in self.servers:
                    await server.wait_closed()
        except TimeoutError:
            for task in state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()  # lifespan="off": nothing, as in uvicorn's

    def stop_now(self) -> None:
        self.should_exit = True
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)


def uvicorn_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


def serve(config: SandboxConfig, announce: Any = print, preloaded: Seed | None = None) -> None:
    """Run in the foreground until interrupted (the `sandbox` command); `preloaded` seeds an
    empty database (`sandbox --clone`)."""
    store = open_store(config, preloaded)
    sock = bind(config.host, config.port)
    log = RequestLog(config.request_log)
    url = url_of(sock)
    announce(url)
    try:
        uvicorn.Server(uvicorn_config(create_app(config, store, log))).run(sockets=[sock])
    finally:
        log.close()
        store.close()
