"""The warm launcher's server (started by `tests/warm.py`, one per test process): a Python that
has imported the command line and what its commands import, then forks a command per request.

Run as `python tests/warm_server.py SOCKET`. Each connection on the Unix socket SOCKET carries one
request: a length, pickled {argv, env, cwd, session, process_group, umask, rlimits, ignored
signals}, and the three descriptors that become the command's 0, 1 and 2 (`socket.send_fds`).
The server forks a *keeper* per request, which forks the command, sends back `P pid`, waits
for the command to end and sends `S status cpu` (the raw wait status, as `os.waitpid` gives it,
and the command's CPU seconds), and reaps the command only once the client hung up (until then
the dead command stays a zombie: its pid cannot be reused under a `kill` the client sends).
The server itself stays single-threaded (a fork copies only the thread that forks) and never
runs anything of the commands but their imports.

The command process, in the fork, becomes what `python -m bulk_contacts ARGS` (or `python -c
CODE ARGS`) is right after the interpreter started: descriptors 0-2 and no other, the working
folder, os.environ, sys.argv, sys.path[0], a fresh `__main__`, the signal handlers a new
interpreter has, sys.stdin/stdout/stderr built as a new interpreter builds them for those
descriptors. It then returns to this module's top level and runs the module or the code
there, so that it ends as an interpreter does: an uncaught exception printed by the
interpreter (exit 1; a KeyboardInterrupt kills it with SIGINT), SystemExit's code, non-daemon
threads joined, atexit handlers, the standard streams flushed (exit 120 when that fails).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import pkgutil
import signal
import socket
import struct
import sys
import time

# Everything the commands import, imported once here. The sandbox and the web page's server
# (`bulk-contacts sandbox`, `serve`) are commands too.
MODULES = (
    "bulk_contacts",
    "pandas",
    "pandera",
    "httpx",
    "openpyxl",
    "xlsxwriter",
    "python_calamine",
    "jinja2",
    "phonenumbers",
    "email_validator",
    "tqdm",
    "pyarrow",
    "fastapi",
    "uvicorn",
    "keyring",
    "platformdirs",
    "click",
)

HEADER = struct.Struct("<I")
PID = struct.Struct("<ci")
STATUS = struct.Struct("<cid")


def import_everything() -> None:
    for name in MODULES:
        # not installed: a command that needs it fails as it would anyway
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import bulk_contacts

    for found in pkgutil.walk_packages(bulk_contacts.__path__, "bulk_contacts."):
        if found.name.rsplit(".", 1)[-1] != "__main__":  # a __main__ runs its command
            importlib.import_module(found.name)


def threads() -> list[str]:
    return sorted(os.listdir("/proc/self/task"))


def open_descriptors() -> set[int]:
    listed = {int(name) for name in os.listdir("/proc/self/fd")}
    return {fd for fd in listed if fd_open(fd)}  # not the one listdir used


def fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def receive(connection: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, HEADER.size, 3)
    while len(data) < HEADER.size:
        more = connection.recv(HEADER.size - len(data))
        if not more:
            raise EOFError
        data += more
    (size,) = HEADER.unpack(data)
    payload = b""
    while len(payload) < size:
        more = connection.recv(size - len(payload))
        if not more:
            raise EOFError
        payload += more
    return pickle.loads(payload), fds


def cpu_seconds(pid: int) -> float:
    """utime + stime of a dead, unreaped command (/proc keeps them until it is reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def raw_status(info: os.waitid_result) -> int:
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    if info.si_code == os.CLD_DUMPED:
        return info.si_status | 0x80
    return info.si_status  # CLD_KILLED


def keep(connection: socket.socket, request: dict, fds: list[int]) -> tuple[dict, list[int]]:
    """The keeper: start the command, report it, wait for it. Returns only in the command."""
    try:
        os.chdir(request["cwd"])
    except OSError as error:
        connection.sendall(b"E" + pickle.dumps((error.errno, error.strerror, request["cwd"])))
        os._exit(0)
    command = 0
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def stop(number: int, frame: object) -> None:  # the server is stopping: so is the command
        if command:
            os.kill(command, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    command = os.fork()
    if command == 0:
        return request, fds
    for fd in fds:
        os.close(fd)
    connection.sendall(PID.pack(b"P", command))
    while True:
        try:
            info = os.waitid(os.P_PID, command, os.WEXITED | os.WNOWAIT)
            break
        except InterruptedError:
            continue
    if info is not None:
        status, cpu = raw_status(info), cpu_seconds(command)
        try:
            connection.sendall(STATUS.pack(b"S", status, cpu))
            connection.recv(1)  # the client hangs up once it has the status
        except OSError:
            pass
    os.waitpid(command, 0)
    os._exit(0)


def serve(path: str) -> tuple[dict, list[int], socket.socket]:
    """Serve until SIGTERM; returns only in a command process, with its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    keepers: set[int] = set()
    parent = os.getppid()

    def stop(number: int, frame: object) -> None:
        for keeper in keepers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(keeper, signal.SIGTERM)
        for keeper in keepers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(keeper, 0)
        os.unlink(path)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    listener.settimeout(1.0)
    os.write(1, b"ready\n")
    while True:
        for keeper in list(keepers):
            if os.waitpid(keeper, os.WNOHANG)[0]:
                keepers.discard(keeper)
        if os.getppid() != parent:  # the test process died without stopping us
            stop(0, None)
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        try:
            try:
                connection.settimeout(10)
                request, fds = receive(connection)
                connection.settimeout(None)
            except (OSError, EOFError, pickle.UnpicklingError) as error:
                sys.stderr.write(f"warm launcher: a bad request: {error!r}\n")
                continue
            here = threads()
            if len(here) != 1:  # a fork copies one thread: refuse rather than start half a process
                connection.sendall(b"E" + pickle.dumps((0, f"threads {here}", "")))
                continue
            keeper = os.fork()
            if keeper == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                listener.detach()
                request, fds = keep(connection, request, fds)
                return request, fds, connection
            keepers.add(keeper)
            for fd in fds:
                os.close(fd)
        finally:
            connection.close()


def become(request: dict, fds: list[int], connection: socket.socket) -> None:
    """In the command's process: become a new interpreter's state for the request."""
    connection.detach()
    if request["session"]:
        os.setsid()
    elif request["process_group"] is not None:
        os.setpgid(0, request["process_group"])
    if request["umask"] >= 0:
        os.umask(request["umask"])
    for which, limits in request["rlimits"].items():
        import resource

        resource.setrlimit(which, limits)
    # signals as a new interpreter started by the test process has them: what the test process
    # ignores stays ignored; SIGPIPE and SIGXFSZ ignored (by Python); SIGINT raises
    # KeyboardInterrupt unless ignored; every other one at its default
    ignored = set(request["ignored"])
    for number in signal.valid_signals():
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if number in ignored or number in (signal.SIGPIPE, signal.SIGXFSZ):
            handler = signal.SIG_IGN
        elif number == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # descriptors: the three sent (a closed one stays closed), nothing else
    sent = iter(fds)
    streams = [next(sent) if present else -1 for present in request["present"]]
    for target, fd in enumerate(streams):
        if fd >= 0:
            os.dup2(fd, target, inheritable=True)
        else:
            os.close(target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    # environment
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    standard_streams(request["env"], request["stdio"])
    import types

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    argv = request["argv"]
    sys.orig_argv = [sys.executable, *argv]
    if argv[0] == "-m":
        sys.path[0] = os.getcwd()
        sys.argv = [argv[1], *argv[2:]]  # runpy puts the module's file in sys.argv[0]
    else:
        sys.path[0] = ""
        sys.argv = ["-c", *argv[2:]]


def standard_streams(env: dict[str, str], defaults: tuple[str, str]) -> None:
    """sys.stdin, stdout and stderr as CPython's create_stdio makes them (Python/pylifecycle.c):
    encoding and errors from PYTHONIOENCODING or the locale, line buffering on a terminal
    (stderr always), unbuffered and write-through under PYTHONUNBUFFERED."""
    import codecs
    import io

    encoding, errors = defaults
    setting = env.get("PYTHONIOENCODING", "")
    if setting:  # "encoding:errors", either part may be empty
        name, _, handler = setting.partition(":")
        if name:  # as CPython names it (latin-1: iso8859-1), and then strict by default
            encoding, errors = codecs.lookup(name).name, "strict"
        errors = handler or errors
    buffered = not env.get("PYTHONUNBUFFERED")
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            stream = None
        else:
            writing = fd != 0
            size = -1 if buffered or not writing else 0
            raw = open(fd, "wb" if writing else "rb", buffering=size, closefd=False)  # noqa: SIM115
            terminal = os.isatty(fd)
            stream = io.TextIOWrapper(
                raw,
                encoding=encoding,
                errors="backslashreplace" if fd == 2 else errors,
                newline="\n",
                line_buffering=buffered and (terminal or fd == 2),
                write_through=not buffered,
            )
            stream.mode = "w" if writing else "r"
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


if __name__ == "__main__":
    STDIO = (sys.stdout.encoding, sys.stdout.errors)  # this interpreter's, with no PYTHONIOENCODING
    import_everything()
    # What was imported is never garbage: the collector leaves it alone (as the commands do at
    # their end, `cli.run`), in the server and in each command, where walking it would copy
    # every page the fork shares (about 0.3 s of CPU a command)
    import gc

    gc.collect()
    gc.freeze()
    assert len(threads()) == 1, f"the warm launcher must be single-threaded: {threads()}"
    assert open_descriptors() <= {0, 1, 2}, f"descriptors left open: {open_descriptors()}"
    _request, _fds, _connection = serve(sys.argv[1])
    _request["stdio"] = STDIO
    become(_request, _fds, _connection)
    del _request, _fds, _connection
    if sys.orig_argv[1] == "-m":
        import runpy

        runpy._run_module_as_main(sys.argv[0])  # type: ignore[attr-defined]  # python -m's own
    else:
        exec(compile(sys.orig_argv[2], "<string>", "exec"), sys.modules["__main__"].__dict__)
