"""The warm launcher (`tests/warm.py`): a command it starts is a real process that behaves as
one a new interpreter runs: the same exit codes, output, signals, descriptors and standard
streams (each compared with a new interpreter's), kill -9 and Ctrl-C; an exit status it lost is
an error, never a 0; nothing of it outlives its stop."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import warm
from .test_apply import run_on_a_terminal
from .test_messages import ROSTER, SAMPLES


def both(argv: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, ...]:
    """The same call run by a new interpreter and by the launcher."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    fresh = subprocess.run(argv, text=True, timeout=60, **streams)
    forked = warm.run(argv, text=True, timeout=60, **streams)
    return fresh, forked


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def outcome(done: subprocess.CompletedProcess) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


def gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.02)
    return False


def test_a_command_is_warm_and_its_exit_code_and_output_are_a_new_interpreters(tmp_path) -> None:
    argv = warm.command("validate", "nope.csv")
    with warm.WarmPopen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.warm, p.fresh_because
        p.communicate(timeout=60)
    fresh, forked = both(argv)
    assert outcome(forked) == outcome(fresh)
    assert forked.returncode == 2 and forked.stderr == "error: nope.csv: no such file\n"
    fresh, forked = both(warm.command("validate", ROSTER))
    assert outcome(forked) == outcome(fresh) and forked.returncode == 0


STATE = """
import os, signal, sys
print(sys.argv, sys.path[0] == ('' if sys.argv[0] == '-c' else os.getcwd()), os.getcwd())
print(sorted(int(fd) for fd in os.listdir('/proc/self/fd'))[:3])
print([str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE,
       signal.SIGCHLD, signal.SIGXFSZ, signal.SIGHUP)], signal.pthread_sigmask(0, []))
for stream in (sys.stdin, sys.stdout, sys.stderr):
    print(stream and (stream.encoding, stream.errors, stream.line_buffering,
          stream.write_through, type(stream.buffer).__name__, stream.mode, stream.isatty()))
print(os.environ.get('WARM_TEST'), os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid())
print(__name__, sorted(k for k in globals() if not k.startswith('__')))
"""


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"PYTHONIOENCODING": "cp1252"},
        {"PYTHONIOENCODING": "latin-1:replace", "PYTHONUNBUFFERED": ""},
        {"PYTHONIOENCODING": ":replace"},
        {"PYTHONUNBUFFERED": "1", "WARM_TEST": "x y"},
    ],
)
def test_the_process_starts_as_a_new_interpreters(tmp_path, env) -> None:
    """argv, sys.path[0], folder, descriptors, signal handlers and mask, the standard
    streams' encoding and buffering, the environment, a fresh __main__."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "WARM_TEST")}
    for stdin in (subprocess.DEVNULL, None):
        kwargs = {"env": {**environ, **env}, "cwd": tmp_path, "stdin": stdin}
        fresh, forked = both(python(STATE, "a b", "-x"), **kwargs)
        assert fresh.returncode == 0, fresh.stderr
        assert outcome(forked) == outcome(fresh)
    fresh, forked = both(python(STATE), start_new_session=True, stderr=subprocess.STDOUT)
    assert outcome(forked) == outcome(fresh)


@pytest.mark.parametrize(
    "code",
    [
        "import sys; sys.exit(3)",
        "import sys; sys.exit('a message')",
        "import atexit, sys; atexit.register(print, 'at exit'); print('no newline', end='')",
        "import threading, time; threading.Thread(target=lambda: (time.sleep(0.2), print('t')))"
        ".start()",
        "import sys; sys.stdout.write('x' * 100000)",
        "import os; os.write(1, b'raw'); os._exit(7)",
        "import sys; sys.stdout.write(sys.stdin.read().upper())",
    ],
)
def test_it_ends_as_a_new_interpreter_does(code) -> None:
    """Exit codes, SystemExit's message, atexit handlers, threads joined, output flushed."""
    fresh, forked = both(python(code), input="piped in")
    assert outcome(forked) == outcome(fresh)


def test_an_uncaught_exception_prints_its_traceback_and_exits_1() -> None:
    fresh, forked = both(python("def f():\n    raise ValueError('boom')\nf()"))
    assert forked.returncode == fresh.returncode == 1
    assert forked.stderr.startswith("Traceback (most recent call last):\n")
    assert forked.stderr.endswith(fresh.stderr.split("\n", 1)[1])  # the command's own frames


def test_kill_9_is_a_real_sigkill_of_the_real_pid(tmp_path) -> None:
    process = warm.WarmPopen(python("import time; print(1, flush=True); time.sleep(60)"),
                             stdout=subprocess.PIPE)  # fmt: skip
    assert process.warm and process.stdout.readline() == b"1\n"
    assert Path(f"/proc/{process.pid}/cmdline").exists()
    assert process.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.2)
    process.kill()
    assert process.wait(timeout=10) == -signal.SIGKILL
    process.stdout.close()
    assert gone(process.pid)


def test_ctrl_c_is_the_clis_130_and_message(start_sandbox) -> None:
    """At the confirmation (the main thread waits on the terminal: no race with what else the
    command does when the signal lands), as `tests/test_messages.py` checks it."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    code, output = run_on_a_terminal(server, ["apply", ROSTER, "--no-progress"], None)
    assert code == 130, output
    assert "interrupted: nothing was written: no change was sent to CHeKT" in output, output
    assert "Traceback" not in output, output


def test_an_uncaught_ctrl_c_kills_with_sigint_as_in_a_new_interpreter() -> None:
    code = "import sys, time; print('go', flush=True); time.sleep(60)"
    seen = []
    for start in (subprocess.Popen, warm.WarmPopen):
        process = start(python(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout.readline() == "go\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        seen.append((process.returncode, stderr.splitlines()[-1]))
    assert seen[0] == seen[1] == (-signal.SIGINT, "KeyboardInterrupt"), seen


def test_on_a_terminal(tmp_path) -> None:
    code = "import sys; print([s.isatty() for s in (sys.stdin, sys.stdout, sys.stderr)]); " \
        "print(sys.stdout.line_buffering, input('answer? '))"  # fmt: skip
    seen = []
    for start in (subprocess.Popen, warm.WarmPopen):
        leader, follower = pty.openpty()
        process = start(python(code), stdin=follower, stdout=follower, stderr=follower)
        os.close(follower)
        output = b""
        try:
            while b"answer? " not in output:
                assert select.select([leader], [], [], 30)[0], output
                output += os.read(leader, 4096)
            os.write(leader, b"yes\n")
            assert process.wait(timeout=30) == 0
            while select.select([leader], [], [], 0.2)[0]:
                try:
                    output += os.read(leader, 4096)
                except OSError:
                    break
        finally:
            process.kill()
            os.close(leader)
        seen.append(output)
    assert seen[0] == seen[1] and b"[True, True, True]\r\n" in seen[1], seen


def test_two_at_once(tmp_path) -> None:
    code = (
        "import os, sys, time\nwhile not os.path.exists('go'): time.sleep(0.01)\nprint(sys.argv[1])"
    )
    first, second = (
        warm.WarmPopen(python(code, name), cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for name in ("first", "second")
    )
    assert first.pid != second.pid and first.poll() is None and second.poll() is None
    (tmp_path / "go").touch()
    assert first.communicate(timeout=30) == ("first\n", None)
    assert second.communicate(timeout=30) == ("second\n", None)
    assert first.returncode == second.returncode == 0


def test_a_missing_folder_is_refused_as_popen_refuses_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        warm.WarmPopen(python("pass"), cwd=tmp_path / "missing")


def test_what_it_cannot_reproduce_runs_in_a_new_interpreter(tmp_path) -> None:
    calls = [
        ({"preexec_fn": os.getpid}, "preexec_fn"),
        ({"env": {"PATH": os.environ["PATH"]}}, "environment"),
        ({"shell": False, "executable": sys.executable}, "executable"),
    ]
    for kwargs, why in calls:
        with warm.WarmPopen(python("print(1)"), stdout=subprocess.PIPE, **kwargs) as process:
            assert process.communicate(timeout=60) == (b"1\n", None)
        assert not process.warm and why in process.fresh_because
    limits = {__import__("resource").RLIMIT_FSIZE: (1000, 1000)}
    write = "with open('f', 'w') as f: f.write('x' * 2000)"
    done = warm.run(python(write), cwd=tmp_path, rlimits=limits, capture_output=True, text=True)
    assert done.returncode == 1 and "File too large" in done.stderr


def test_a_lost_status_is_an_error_never_an_exit_code() -> None:
    process = warm.WarmPopen(python("import time; time.sleep(60)"))
    keeper = int(Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(keeper, signal.SIGKILL)
    try:
        with pytest.raises(warm.LauncherLost):
            process.wait(timeout=10)
        assert process.returncode is None
    finally:
        os.kill(process.pid, signal.SIGKILL)


def test_a_dead_launcher_is_started_again_and_its_commands_still_report() -> None:
    running = warm.WarmPopen(python("import sys; sys.exit(sys.stdin.read() == 'go' and 5)"),
                             stdin=subprocess.PIPE)  # fmt: skip
    launched = warm.launcher()
    first = launched.process
    assert first is not None
    first.kill()
    first.wait()
    again = warm.run(python("print('again')"), capture_output=True, text=True, timeout=60)
    assert again.stdout == "again\n" and launched.process is not first
    running.communicate(b"go", timeout=30)
    assert running.returncode == 5


def test_stopping_the_launcher_stops_what_it_runs() -> None:
    process = warm.WarmPopen(python("import time; time.sleep(60)"))
    server = warm.launcher().process
    assert server is not None
    warm.stop()
    assert gone(process.pid) and gone(server.pid)
    with pytest.raises(warm.LauncherLost):
        process.wait(timeout=10)
    assert warm.run(python("pass"), timeout=60).returncode == 0  # a new one, when asked
