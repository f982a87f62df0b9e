"""Real `bulk-contacts` processes for the tests without a new interpreter's imports each.

A command started as `python -m bulk_contacts ...` spends about a second of CPU importing
pandas, pandera, httpx... before it does anything. `WarmPopen` (a `subprocess.Popen`) and `run`
(a `subprocess.run`) start it instead as a fork of a launcher that has imported all that once
(`tests/warm_server.py`, one per test process, started at its first use and stopped at the
end of the session): a real process with a pid of its own, that a test kills with SIGKILL,
interrupts with SIGINT, runs beside another, and whose exit status, stdout and stderr are
those of the command. `wait`, `poll`, `communicate`, `kill`, `send_signal`, `returncode` and
`with` work as for any Popen; the exit status is the real one, read by the launcher (a status
the launcher lost is an error, never a 0).

What a warm command does not exercise, so that the tests about these keep a new interpreter
(plain `subprocess`): the interpreter's start (its imports and their time, `sys.flags`, the
site and sitecustomize modules, `-X` options, hash randomisation: every warm command has the
launcher's hash seed), a Ctrl-C while the program loads (`entry.run`'s first lines are reached
with everything imported), the console script's wrapper, and module-level code that depends on
the environment at import time (the launcher imported with the environment of the first
command; bulk_contacts reads none at import time). numpy and Arrow start without their helper
threads (OPENBLAS_NUM_THREADS=1, no jemalloc background thread: a fork copies only the thread
that forks), and what was imported before the fork is frozen out of the garbage collector
(`gc.freeze`, which each command does at its end anyway). A call whose start the launcher
cannot reproduce is started as a new interpreter, as `subprocess` does, silently: another
executable or argv than `-m bulk_contacts` or `-c CODE`, `preexec_fn`, `pass_fds`, `shell`, a
user or group, `close_fds=False`, or an environment whose PYTHON*, LANG/LC_ALL/LC_CTYPE, LD_*
or MALLOC_* variables (those an interpreter reads when it starts) differ from the launcher's;
PYTHONIOENCODING and PYTHONUNBUFFERED are honoured per command. `process.warm` says which it
was.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from .warm_server import HEADER, PID, STATUS

SERVER = str(Path(__file__).with_name("warm_server.py"))
HONOURED = ("PYTHONIOENCODING", "PYTHONUNBUFFERED")
# CPU seconds of the warm commands this process started (they are not its children: the
# launcher's CPU profile adds them, `commands_cpu`)
_commands_cpu = 0.0


def commands_cpu() -> float:
    return _commands_cpu


def startup_variables(env: dict[str, str]) -> dict[str, str]:
    """The variables a new interpreter reads as it starts (not the ones a command reads)."""
    return {
        name: value
        for name, value in env.items()
        if (name.startswith(("PYTHON", "LD_", "MALLOC_")) and name not in HONOURED)
        or name in ("LANG", "LC_ALL", "LC_CTYPE")
    }


class LauncherLost(ChildProcessError):
    """The launcher's keeper of a command ended without its exit status."""


class Launcher:
    """One warm server; started when first needed, again if it died."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.folder: str | None = None
        self.startup: dict[str, str] = {}
        self.lock = threading.Lock()

    @property
    def path(self) -> str:
        assert self.folder is not None
        return os.path.join(self.folder, "socket")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure(self) -> None:
        with self.lock:
            if not self.running():
                self._stop()
                self._start()

    def _start(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="bulk-contacts-warm-")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}
        # single-threaded while importing: numpy's BLAS and Arrow's allocator start threads
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env["JE_ARROW_MALLOC_CONF"] = "background_thread:false"
        log = open(os.path.join(self.folder, "log"), "wb")  # noqa: SIM115
        with log:
            self.process = subprocess.Popen(
                [sys.executable, SERVER, self.path],
                env=env,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.startup = startup_variables(dict(os.environ))
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        line = self.process.stdout.readline() if ready else b""
        self.process.stdout.close()
        if line != b"ready\n":
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the warm launcher did not start: {self.log()}")

    def log(self) -> str:
        try:
            return Path(self.folder or "", "log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        with self.lock:
            self._stop()

    def _stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # the server stops its commands too
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def connect(self) -> socket.socket:
        for attempt in (1, 2):
            self.ensure()
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.connect(self.path)
                return connection
            except OSError:
                connection.close()
                if attempt == 2:
                    raise
                self.stop()  # it died between the check and the call: a new one
        raise AssertionError("unreachable")


_launchers: dict[int, Launcher] = {}


def launcher() -> Launcher:
    """This process's launcher (a forked test process gets its own)."""
    return _launchers.setdefault(os.getpid(), Launcher())


def stop() -> None:
    """Stop this process's launcher, and any command it still runs."""
    found = _launchers.pop(os.getpid(), None)
    if found is not None:
        found.stop()


atexit.register(stop)


def command(*args: str) -> list[str]:
    """The argv of `python -m bulk_contacts ARGS`."""
    return [sys.executable, "-m", "bulk_contacts", *args]


class WarmPopen(subprocess.Popen):
    """`subprocess.Popen` whose `python -m bulk_contacts` / `python -c` is a warm fork.

    `rlimits={resource.RLIMIT_X: (soft, hard)}` sets limits in the command (instead of a
    `preexec_fn`, which cannot be sent to the launcher)."""

    def __init__(self, args: Any, *, rlimits: dict[int, tuple[int, int]] | None = None, **kw: Any):
        self.warm = False
        self.fresh_because = ""
        self._rlimits = dict(rlimits or {})
        self._launcher_connection: socket.socket | None = None
        self._status_bytes = b""
        super().__init__(args, **kw)

    def _fresh_because(self, argv, executable, preexec_fn, pass_fds, env, shell, ids, close_fds):
        if executable is not None or shell:
            return "executable or shell"
        if len(argv) < 3 or os.fspath(argv[0]) != sys.executable:
            return "not this interpreter"
        if not (argv[1:3] == ["-m", "bulk_contacts"] or argv[1] == "-c"):
            return "neither -m bulk_contacts nor -c"
        if preexec_fn is not None or pass_fds or not close_fds or any(x is not None for x in ids):
            return "preexec_fn, pass_fds, close_fds=False, user or group"
        if any(not os.path.isabs(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p):
            return "a relative PYTHONPATH (an interpreter resolves it in its own folder)"
        launched = launcher()
        launched.ensure()
        if startup_variables(env) != launched.startup:
            return "the environment an interpreter starts with differs"
        return ""

    def _execute_child(  # type: ignore[override]  # Popen's private hook, untyped
        self,
        args,
        executable,
        preexec_fn,
        close_fds,
        pass_fds,
        cwd,
        env,
        startupinfo,
        creationflags,
        shell,
        p2cread,
        p2cwrite,
        c2pread,
        c2pwrite,
        errread,
        errwrite,
        restore_signals,
        gid,
        gids,
        uid,
        umask,
        start_new_session,
        process_group,
    ):
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        argv = [os.fsdecode(a) for a in argv]
        environ = (
            dict(os.environ)
            if env is None
            else {os.fsdecode(k): os.fsdecode(v) for k, v in env.items()}
        )
        ids = (gid, gids, uid)
        self.fresh_because = self._fresh_because(
            argv, executable, preexec_fn, pass_fds, environ, shell, ids, close_fds
        )
        if self.fresh_because:
            if self._rlimits:
                assert preexec_fn is None, "rlimits and preexec_fn"
                preexec_fn = self._set_rlimits
            return super()._execute_child(
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                restore_signals, gid, gids, uid, umask, start_new_session, process_group,
            )  # fmt: skip
        try:
            self._launch(
                argv, environ, cwd, (p2cread, c2pwrite, errwrite), umask, start_new_session,
                process_group,
            )  # fmt: skip
        finally:
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)

    def _set_rlimits(self) -> None:
        import resource

        for which, limits in self._rlimits.items():
            resource.setrlimit(which, limits)

    def _launch(self, argv, env, cwd, streams, umask, new_session, process_group) -> None:
        fds = []
        for given, own in zip(streams, (0, 1, 2), strict=True):
            fd = given if given != -1 else own
            try:
                os.fstat(fd)
            except OSError:
                fd = -1  # closed here: closed in the command too
            fds.append(fd)
        ignored = [
            number
            for number in signal.valid_signals()
            if number not in (signal.SIGPIPE, signal.SIGXFSZ)
            and signal.getsignal(number) == signal.SIG_IGN
        ]
        request = {
            "argv": argv[1:],  # -m bulk_contacts ARGS, or -c CODE ARGS
            "env": env,
            "cwd": os.fsdecode(cwd) if cwd is not None else os.getcwd(),
            "session": bool(new_session),
            "process_group": process_group if process_group not in (None, -1) else None,
            "umask": umask,
            "rlimits": self._rlimits,
            "ignored": ignored,
            "present": [fd != -1 for fd in fds],
        }
        payload = pickle.dumps(request)
        connection = launcher().connect()
        try:
            connection.settimeout(120)
            socket.send_fds(connection, [HEADER.pack(len(payload))], [f for f in fds if f != -1])
            connection.sendall(payload)
            answer = self._receive(connection, PID.size)
            if answer[:1] == b"E":
                answer += _read_all(connection)
                number, text, name = pickle.loads(answer[1:])
                if number:
                    raise OSError(number, text, name)
                raise RuntimeError(f"the warm launcher refused: {text}")
            kind, pid = PID.unpack(answer)
            assert kind == b"P", answer
            connection.settimeout(None)
        except BaseException:
            connection.close()
            raise
        self.pid = pid
        self._child_created = True
        self.warm = True
        self._launcher_connection = connection

    @staticmethod
    def _receive(connection: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = connection.recv(size - len(data))
            if not more:
                if data[:1] == b"E":
                    return data
                raise LauncherLost("the warm launcher did not start the command")
            data += more
            if data[:1] == b"E":
                return data
        return data

    def _read_status(self, block: bool) -> int | None:
        """The command's raw wait status once it ended; None while it runs."""
        global _commands_cpu
        connection = self._launcher_connection
        if connection is None:
            raise LauncherLost(f"the status of pid {self.pid} was already read")
        while len(self._status_bytes) < STATUS.size:
            if not block:
                ready, _, _ = select.select([connection], [], [], 0)
                if not ready:
                    return None
            more = connection.recv(STATUS.size - len(self._status_bytes))
            if not more:  # not ours any more: no status, no returncode, and no __del__ warning
                connection.close()
                self._launcher_connection, self._child_created = None, False
                raise LauncherLost(
                    f"the warm launcher lost command pid {self.pid}: its exit status is unknown"
                )
            self._status_bytes += more
        kind, status, cpu = STATUS.unpack(self._status_bytes)
        assert kind == b"S", self._status_bytes
        _commands_cpu += cpu
        return status

    def _handle_exitstatus(self, sts, *args: Any) -> None:  # type: ignore[override]  # private
        super()._handle_exitstatus(sts, *args)
        if self._launcher_connection is not None:  # the keeper reaps the command now
            self._launcher_connection.close()
            self._launcher_connection = None

    def _try_wait(self, wait_flags):
        if not self.warm:
            return super()._try_wait(wait_flags)
        status = self._read_status(block=not wait_flags & os.WNOHANG)
        return (0, 0) if status is None else (self.pid, status)

    def _internal_poll(self, _deadstate=None, **_: Any):
        if not self.warm:
            return super()._internal_poll(_deadstate=_deadstate)
        if self.returncode is None:
            if not self._waitpid_lock.acquire(False):
                return None
            try:
                if self.returncode is None:
                    status = self._read_status(block=False)
                    if status is not None:
                        self._handle_exitstatus(status)
            finally:
                self._waitpid_lock.release()
        return self.returncode


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def run(
    *popenargs: Any,
    input: Any = None,
    capture_output: bool = False,
    timeout: float | None = None,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess:
    """`subprocess.run`, with a `WarmPopen`."""
    if input is not None:
        if kwargs.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        kwargs["stdin"] = subprocess.PIPE
    if capture_output:
        if kwargs.get("stdout") is not None or kwargs.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used with capture_output.")
        kwargs["stdout"] = subprocess.PIPE
        kwargs["stderr"] = subprocess.PIPE
    with WarmPopen(*popenargs, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            exc.stdout, exc.stderr = process.communicate()
            raise
        except BaseException:
            process.kill()
            raise
        retcode = process.poll()
        if check and retcode:
            raise subprocess.CalledProcessError(retcode, process.args, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(process.args, retcode, stdout, stderr)
