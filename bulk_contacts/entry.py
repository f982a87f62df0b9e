"""The console script's entry point (`bulk-contacts`, and `python -m bulk_contacts`): small on
purpose. Loading the command line imports click, pandas, httpx...; Ctrl-C while that happens is
caught here, where nothing has been imported yet that could print a traceback: one line and
exit 130. A stop asked by SIGTERM (`kill`, a service manager) or, on Windows, Ctrl-Break is
made a Ctrl-C from the start, so it is handled the same way wherever it lands (an apply's
writes have their own handler: `cli.StopOnInterrupt`).

A stop asked for is also remembered (`stop_asked`): Python drops an exception raised while a
finalizer or a weakref callback runs, a KeyboardInterrupt too, and a signal may land there. The
run then went on and wrote; now it stops before its first write (`cli.common.confirmed`)."""

from __future__ import annotations

import signal
import sys

INTERRUPTED = 130  # errors.ExitCode.INTERRUPTED, not imported: this module imports nothing heavy


_stops: list[int] = []  # the signals that asked this run to stop


def _as_ctrl_c(number: int, frame: object) -> None:
    _stops.append(number)
    raise KeyboardInterrupt


def stop_asked() -> bool:
    """Whether Ctrl-C (SIGTERM, Ctrl-Break) came while the console script's handler was set,
    even one whose KeyboardInterrupt Python dropped: raised where a finalizer or weakref callback
    ran, it is "ignored" and the command goes on. Nothing ever goes on after a stop on purpose,
    so a command about to write checks this first."""
    return bool(_stops)


def _quiet_about_dropped_interrupts(unraisable: sys.UnraisableHookArgs) -> None:
    """A KeyboardInterrupt Python could not raise (see `stop_asked`) is no traceback on the
    user's screen: it is remembered, and the command stops before writing. Anything else
    unraisable is printed as Python prints it."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def run() -> None:
    # Ctrl-C even when started with SIGINT ignored (a shell's background job, `nohup`): Python
    # then leaves it ignored, and a `kill -INT` between the run's handlers would be lost.
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _as_ctrl_c)
    sys.unraisablehook = _quiet_about_dropped_interrupts
    try:
        try:
            from .cli import run as run_cli
        except KeyboardInterrupt:  # Ctrl-C while Python loads the program: nothing was done yet
            sys.stderr.write("interrupted: nothing was written\n")
            raise SystemExit(INTERRUPTED) from None
        run_cli()
    finally:
        _forget_handled_interrupts()


def _forget_handled_interrupts() -> None:
    """Exit with the code asked for (130 after Ctrl-C), never by a signal. CPython remembers a
    KeyboardInterrupt that passed through code run from a string (the methods a dataclass or a
    namedtuple generates, while a module is imported: where a signal may well land) and, run
    as `python -m bulk_contacts`, kills itself with SIGINT at exit even when the interrupt was
    handled (`_Py_UnhandledKeyboardInterrupt`, set in `run_eval_code_obj`). Running an empty
    string resets that memory. An interrupt that is really unhandled still sets it again, as
    it leaves the module."""
    exec("")
