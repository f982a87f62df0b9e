"""What the commands share: the one print (`echo`), the settings they read, the files they
write, the plan they make, the question they ask, the locks they take, and their --help's end."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InputError
from ..terminal import printable, with_flags

if TYPE_CHECKING:
    from ..client import ChektClient
    from ..outputs import Output
    from ..pipeline import ReadOptions
    from ..plan import Plan, PlanOptions
    from ..runlog import RunLog
    from ..settings import Settings
    from .options import Connection

STYLES: dict[str, dict[str, Any]] = {
    "bold": {"bold": True},
    "create": {"fg": "green"},
    "update": {"fg": "yellow"},
    "delete": {"fg": "red"},
    "error": {"fg": "red"},
    "warning": {"fg": "yellow"},
    "ok": {"fg": "green"},
    "dim": {"dim": True},
    "done": {"fg": "green", "bold": True},
}


def echo(text: str = "", style: str = "", err: bool = False, nl: bool = True) -> None:
    """Every line the tool prints goes through here: escaped first (`terminal.printable`), so a
    value from a file, from CHeKT or from the environment cannot act on the terminal, then
    styled. `nl=False`: a prompt, the answer typed after it."""
    click.secho(printable(text), err=err, nl=nl, **STYLES.get(style, {}))


def echo_lines(lines: list[tuple[str, str]]) -> None:
    for text, style in lines:
        echo(text, style)


def warn(message: str) -> None:
    echo(message, "warning", err=True)


INTERRUPT_NOTE = "bulk_contacts.interrupt_note"


def on_interrupt(note: str) -> None:
    """What the one line printed after Ctrl-C says from here on (what was done, how to go on)."""
    click.get_current_context().meta[INTERRUPT_NOTE] = note


COMMAND_LINE = "bulk_contacts.command_line"


def same_command(*extra: str) -> str:
    """The command line as it was typed, quoted for a shell, with `extra` words the finishing
    run needs (a saved plan's --refresh): what "run the same command again" prints, so that it
    is the same command, with every option (the prune, the API URL, the dealer) kept."""
    words = list(click.get_current_context().meta.get(COMMAND_LINE, []))
    words += [word for word in extra if word not in words]
    return printable(shlex.join(["bulk-contacts", *words]))


@dataclass(frozen=True)
class Invocation:
    environ: Mapping[str, str] | None = None


def environ() -> Mapping[str, str]:
    """Where settings come from: the process's environment with the working folder's .env
    beneath it, unless `invoke` was given one."""
    invocation = click.get_current_context().find_object(Invocation)
    if invocation is None or invocation.environ is None:
        from ..profiles import layered_environ

        return layered_environ(os.environ)
    return invocation.environ


def connection_settings(connection: Connection) -> Settings:
    """Flag, then environment (with .env beneath it), then the active profile (its secret from
    the keychain), then default; what was corrected is printed as a note."""
    from ..errors import ConfigError
    from ..profiles import missing_secret_hint, with_profile
    from ..settings import resolve_settings

    layered = with_profile(environ(), connection.profile)
    try:
        settings = resolve_settings(
            api_url=connection.api_url,
            token_url=connection.token_url,
            dealer=connection.dealer,
            env=layered.environ,
            require_dealer=False,
            allow_insecure_http=connection.allow_insecure_http or None,
            ca_bundle=connection.ca_bundle,
        )
    except ConfigError as error:
        hint = missing_secret_hint(layered)
        if error.setting == "credentials" and hint and layered.environ.get("CHEKT_CLIENT_ID"):
            raise ConfigError(
                f"profile {layered.profile.name if layered.profile else ''}: no secret; {hint}",
                setting="credentials",
            ) from None
        raise
    for note in settings.notes:
        warn(note)
    return settings


def check_outputs(
    wanted: list[Output], overwrite: bool = False, reading: Path | None = None
) -> None:
    """Every output path of the command, checked before any network call or planning
    (`outputs.check_outputs`)."""
    from ..outputs import check_outputs as check

    check(wanted, overwrite, reading)


@contextlib.contextmanager
def writing_to(option: str, path: Path) -> Iterator[None]:
    """A writer's file that cannot be written is one line and exit 2. Writers write to a
    temporary name and rename it into place, so the file that was there is as it was. A stop
    asked for that Python dropped (`entry.stop_asked`) is one now: the file is not written."""
    from ..entry import stop_asked

    if stop_asked():
        raise KeyboardInterrupt
    try:
        yield
    except OSError as error:
        reason = error.strerror or error
        raise InputError(
            f"{option} {path}: cannot be written ({reason}); it was left as it was"
        ) from None


def open_client(connection: Connection) -> tuple[Settings, ChektClient, RunLog]:
    """Settings resolved once (flag, environment, profile, default), and the client."""
    from ..client import ChektClient
    from ..runlog import RunLog

    settings = connection_settings(connection)
    for url in settings.cleartext_urls:
        warn(
            f"warning: {url} is plain http:// to another machine (--allow-insecure-http): "
            f"the secret, tokens and contacts cross the network in clear"
        )
    log = RunLog(connection.log_file, verbose=connection.verbose, on_failure=_log_failed)
    client = ChektClient(
        settings,
        concurrency=connection.concurrency,
        rate=connection.rate,
        log=log,
        timeout=connection.timeout,
    )
    return settings, client, log


def _log_failed(path: Path, error: OSError) -> None:
    """The run log could not be written: said once; the run goes on (the log is for diagnosis;
    the journal and the results are the run's record)."""
    warn(
        f"warning: --log-file {path} cannot be written ({error.strerror or error}): the log "
        f"stops here; the run goes on (its journal and results record what it does)"
    )


def show_issues(validated: Any, verbose: bool) -> None:
    """The roster's problems found while planning; the plan says what becomes of them."""
    from ..terminal import validation_text

    if validated.issues:
        echo_lines(validation_text(validated, verbose, verdict=False))


def make_plan(
    roster: Path,
    read: ReadOptions,
    planning: PlanOptions,
    connection: Connection,
    client: ChektClient,
    settings: Settings,
) -> Plan:
    """Validate, fetch and reconcile; the roster's problems are shown."""
    from ..pipeline import plan_path

    options = dataclasses.replace(planning, dealer_id=settings.dealer_id)
    with connection.bars() as bars:
        validated, plan = plan_path(client, roster, options, read, bars)
    if not connection.quiet:
        show_issues(validated, connection.verbose)
    return plan


def confirmed(question: str, yes: bool) -> bool:
    """Ask on a terminal; without one, --yes is required. A Ctrl-C that came before and that
    Python dropped (`entry.stop_asked`) is one now: nothing has been written yet."""
    from ..entry import stop_asked

    if stop_asked():
        raise KeyboardInterrupt
    if yes:
        return True
    if not sys.stdin.isatty():
        raise InputError(
            "not on a terminal, so nothing is asked: pass --yes to go ahead without confirmation"
        )
    try:
        if ask_yes_no(question):
            return True
    except KeyboardInterrupt:  # Ctrl-C: exit 130 and one line, "interrupted: nothing was written"
        echo()
        raise
    except EOFError:  # the input closed
        echo()
    echo("Nothing was changed.")
    return False


def ask_yes_no(question: str) -> bool:
    """`question [y/N]: ` answered on the terminal; KeyboardInterrupt on Ctrl-C, EOFError when
    the input closes. Ctrl-C is never lost: `input()` can miss a SIGINT that lands between the
    prompt and its read (and then waits for Enter); here the signal also wakes the wait (the
    signal module's wakeup fd), wherever it lands. Windows: click's prompt."""
    if os.name == "nt":
        try:
            return click.confirm(printable(question), default=False)
        except click.Abort as abort:
            if isinstance(abort.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise EOFError from None
    import select
    import signal

    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    previous = signal.set_wakeup_fd(wake)
    try:
        while True:
            echo(f"{question} [y/N]: ", nl=False)
            while sys.stdin not in select.select([sys.stdin, woken], [], [])[0]:
                os.read(woken, 512)  # a signal woke it: its handler runs (Ctrl-C raises)
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            answer = line.strip().lower()
            if answer in ("", "n", "no"):
                return False
            if answer in ("y", "yes"):
                return True
            echo("Error: invalid input", err=True)
    finally:
        signal.set_wakeup_fd(previous)
        os.close(woken)
        os.close(wake)


def lock_dealers(dealers: set[int], api_url: str, wait: bool) -> Any:
    """This machine's lock on each dealer at this API: warns (or waits) when another run holds
    one."""
    from ..lock import DealerLocks

    def tell(message: str) -> None:
        warn(message if wait else with_flags(message, "wait"))

    return DealerLocks(dealers, api_url).acquire(wait, tell)


# each command's --help ends with its examples and the environment variables it reads

# What the commands that connect to CHeKT read (flags win over them; secrets only from here).
CONNECTION_ENV = (
    ("CHEKT_API_URL", "API base URL (--api-url); default https://api.chekt.com"),
    ("CHEKT_TOKEN_URL", "OAuth token URL (--token-url); default <api-url>/oauth/token"),
    ("CHEKT_DEALER_ID", "dealer id (--dealer), unless the roster has a dealer_id column"),
    ("CHEKT_CLIENT_ID", "client id, with one of:"),
    ("CHEKT_CLIENT_SECRET", "  its secret (never a flag), or"),
    ("CHEKT_PRIVATE_KEY_FILE", "  a PEM key for a signed JWT assertion (CHEKT_KEY_ID,"),
    ("", "  CHEKT_AUDIENCE optional)"),
    ("CHEKT_API_KEY", "or a long-lived API key instead"),
    ("CHEKT_ALLOW_INSECURE_HTTP", "=1: allow http:// to another machine (--allow-insecure-http)"),
    ("CHEKT_PROFILE", "the settings file's profile to use (--profile)"),
    ("CHEKT_CA_BUNDLE", "a CA bundle to trust (--ca-bundle); else SSL_CERT_FILE"),
    ("HTTPS_PROXY, NO_PROXY", "a proxy (read by httpx)"),
)


def without_flags(environment: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The variables without the flags they stand for: for a command that has no such flags
    (`serve` reads the variables, its Connect page takes the rest)."""
    return tuple((name, re.sub(r" \(--[a-z-]+\)", "", text)) for name, text in environment)


PROFILE_ENV = (
    ("CHEKT_PROFILE", "the profile, when --profile is not given"),
    ("XDG_CONFIG_HOME", "Linux: the settings file's folder (Windows: %LOCALAPPDATA%)"),
)
# Where apply and rollback keep their run locks (platformdirs' user state folder).
LOCK_ENV = (("XDG_STATE_HOME", "Linux: the run locks' folder (Windows: %LOCALAPPDATA%)"),)
NO_ENV = "none: nothing is sent anywhere"


def epilog(examples: tuple[str, ...], environment: tuple[tuple[str, str], ...] | str) -> str:
    """The end of a command's --help: examples, then the environment variables it reads (kept
    as written: click does not rewrap a paragraph that starts with \b)."""
    if isinstance(environment, str):
        variables = [f"  {environment}"]
    else:
        width = max(len(name) for name, _ in environment)
        variables = [f"  {name:<{width}}  {what}".rstrip() for name, what in environment]
    return "\n\n".join(
        [
            "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples),
            "\b\nEnvironment:\n" + "\n".join(variables),
        ]
    )
