"""Shared fixtures: sandboxes served over real HTTP on 127.0.0.1, each stopped after its test."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

# Where bytecode writing is turned off (PYTHONDONTWRITEBYTECODE), every test process compiled
# the package and rewrote the tests' asserts anew (about 3.3 s of CPU a process) and every
# command the tests start compiled the modules it imports: the tests keep their bytecode in
# pytest's cache folder instead (`sys.pycache_prefix`; the checkout's source folders stay as they
# are), the test processes from here on (pytest honours it for the rewritten tests) and the
# commands they start (`own_state_folder`).
BYTECODE: str | None = None
if sys.dont_write_bytecode:
    BYTECODE = str(Path(__file__).parent.parent / ".pytest_cache" / "bytecode")
    sys.pycache_prefix, sys.dont_write_bytecode = BYTECODE, False

import httpx  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

from bulk_contacts.sandbox import SandboxConfig, SandboxServer  # noqa: E402

from .thorough import THOROUGH, examples  # noqa: E402

SandboxFactory = Callable[..., SandboxServer]

# Tests run in folders of their own (below): Hypothesis keeps its examples in the checkout's.
# The default run tries a few examples per property (`thorough.examples`); HYPOTHESIS_PROFILE=
# thorough, the full count (the README's thorough run).
EXAMPLES = DirectoryBasedExampleDatabase(Path(__file__).parent.parent / ".hypothesis" / "examples")
settings.register_profile("checkout", database=EXAMPLES, max_examples=examples(100))
settings.register_profile("thorough", database=EXAMPLES, max_examples=100)
settings.load_profile("thorough" if THOROUGH else "checkout")


@pytest.fixture(autouse=True, scope="session")
def own_state_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The run locks live in the user's state folder: the tests get one of their own (on Linux
    platformdirs reads XDG_STATE_HOME; subprocesses inherit it).

    The commands the tests start as processes run as in a user's install, without the test
    extras hypothesis and trio, which pandera and httpcore would import for nothing the command
    uses (`tests/user_install/sitecustomize.py`)."""
    user_install = str(Path(__file__).parent / "user_install")
    path = os.pathsep.join(p for p in (user_install, os.environ.get("PYTHONPATH")) if p)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        patch.setenv("PYTHONPATH", path)
        if BYTECODE is not None:
            patch.setenv("PYTHONPYCACHEPREFIX", BYTECODE)
            patch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        yield


@pytest.fixture(autouse=True, scope="session")
def warm_launcher() -> Iterator[None]:
    """The warm launcher of this test process (`tests/warm.py`), if a test started it, is
    stopped at the session's end, with anything it still runs."""
    yield
    from . import warm

    warm.stop()


@pytest.fixture(autouse=True)
def own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in a folder of its own: the run folders a command makes by default
    (bulk-contacts-runs/) and any file named relatively land there, never in the checkout, and
    tests running side by side (pytest -n) never share one."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def own_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads or writes the user's settings file or keychain: the config folder is the
    test's own (XDG_CONFIG_HOME, which platformdirs reads), and the keychain is keyring's
    documented no-backend one (`keyring.set_keyring`) unless a test sets another. No CHEKT_*
    variable of the shell running the tests reaches them."""
    import keyring
    from keyring.backends import fail

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    for name in list(os.environ):
        if name.startswith("CHEKT_"):
            monkeypatch.delenv(name)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def start_sandbox() -> Iterator[SandboxFactory]:
    """Start sandboxes on free ports: `start_sandbox(rate_limit=60, ...)`; all stop at teardown."""
    servers: list[SandboxServer] = []

    def start(config: SandboxConfig | None = None, **changes: object) -> SandboxServer:
        base = config or SandboxConfig(port=0)
        server = SandboxServer(replace(base, port=0, **changes)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox: SandboxFactory) -> SandboxServer:
    return start_sandbox()


@pytest.fixture(scope="session")
def shared_chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from .serving import SharedChromium

    shared = SharedChromium(tmp_path_factory.mktemp("chromium"))
    yield shared
    shared.quit()


@pytest.fixture
def browser(shared_chromium, tmp_path: Path):
    """Headless Chromium, fresh for this test (`serving.SharedChromium`): its downloads land in
    `browser.downloads`, a folder of the test's own."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    return shared_chromium.page(downloads)


def run_in_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A command run as the console script runs it, but in this process (a new interpreter
    costs about a second of imports): its exit code, stdout and stderr as `subprocess.run`
    gives them. For a test about a message, not about processes. An exception the command let
    through (a traceback, in a real process) fails the test."""
    from click.testing import CliRunner

    from bulk_contacts.cli import main

    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: a traceback, not a message") from result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


# The tests' own requests to a sandbox are plain http on 127.0.0.1: a TLS context that loads no
# CA bundle (httpx's default loads one: about 20 ms of CPU per client) and trusts nothing.
NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def get_token(url: str, client_id: str = "sandbox-client", secret: str = "sandbox-secret") -> str:
    response = httpx.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        verify=NO_TLS,
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An authenticated raw HTTP client for the default sandbox."""
    token = get_token(sandbox.url)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=sandbox.url, headers=headers, verify=NO_TLS) as client:
        yield client


# The files whose tests take longest (processes, a browser, many examples) are handed out first,
# so that on two cores (`-n auto`) the short ones fill in around them instead of waiting on them
# at the end. Within a file, the order is the file's.
LONG_FIRST = (
    "test_writes.py",
    "test_writes_model.py",
    "test_sandbox_openapi.py",
    "test_identity.py",
    "test_identity_qa.py",
    "test_serve_e2e.py",
    "test_reconcile.py",
    "test_export.py",
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (pyproject.toml): twice as many test processes as there are cores (4 on 2
    cores). A test spends part of its time waiting (for the process it started, a held write,
    a browser), and another process runs on the core a waiting one leaves idle; each process
    costs about 4 s of CPU to start and collect (on 2 cores, with the 1,258 tests of an earlier
    day: 148 s with 3 processes, 136 s with 4, 142 s with 6). The environment's
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set (pytest-xdist reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) * 2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order
