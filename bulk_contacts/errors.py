"""Every failure of the program itself, under one base class, each with its exit code.

    BulkContactsError
    ├── ConfigError            a setting is missing or wrong (exit 2)
    │   └── SandboxError       the sandbox cannot start: seed file, key file, port (exit 2)
    │       └── SeedError      the seed file cannot be loaded (exit 2)
    ├── InputError             a file cannot be read or written as asked (exit 2)
    │   └── OutputExists       an output is there and may not be replaced (exit 2)
    ├── EmptyRoster            the roster has a header and no rows (exit 1)
    ├── JournalError           the journal cannot be written: nothing more is sent (exit 1)
    └── ApiError               CHeKT (or the sandbox) refused or failed a request (exit 1)
        ├── AuthError          401, or the token endpoint refused the credentials
        ├── PermissionDenied   403: the dealer is outside the credentials' scope
        ├── NotFound           404: unknown dealer, site or contact
        ├── Rejected           400/422: the request was invalid (see `field`)
        ├── Conflict           409: idempotency conflict, or two contacts share an external id
        ├── RateLimited        429 after every retry
        ├── ServerError        5xx after every retry (or a non-JSON error page)
        └── TransportError     no answer: connect/read timeout, dropped connection

Problems in a roster's data are not exceptions: they are collected as values (see `schema`), and
a guard's refusal of a plan is a value on the plan (see `guards`). Messages speak of values and
files; `setting` names the setting a message is about, so the command line can add its flag.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The command line's exit codes (README, "Exit codes")."""

    OK = 0
    FAILED = 1  # invalid rows, a refusal, failed operations, an API error
    USAGE = 2  # a usage, configuration or file error: nothing was done
    CHANGES = 3  # `plan --detailed-exitcode` with changes pending
    INTERRUPTED = 130  # Ctrl-C; whatever finished is recorded


class BulkContactsError(Exception):
    """Base class: catch this once to handle everything the library raises on purpose."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting  # the setting (or output) the message is about, if one is


class ConfigError(BulkContactsError):
    """A setting is missing or invalid. The message names the value and the variable to set."""

    exit_code = ExitCode.USAGE


class SandboxError(ConfigError):
    """The sandbox cannot start: a bad seed file, a key file, a database, or a port in use."""


class SeedError(SandboxError):
    """The seed file cannot be loaded; the message names the file and the bad entry."""


class InputError(BulkContactsError):
    """A file cannot be used at all. The message names the file and what to do."""

    exit_code = ExitCode.USAGE


class EmptyRoster(BulkContactsError):
    """The roster was read, and has no rows below its header: nothing to check or send. Exit 1
    like invalid rows: the file is readable, its content is what is wrong."""


class RunInProgress(BulkContactsError):
    """Another run is writing the journal this one must read and add to (a rollback of a run
    still in progress): exit 1; try again once it has ended, or `--wait`."""


class JournalError(BulkContactsError):
    """The journal cannot be written (a full disk, an I/O error): no write may be sent without
    its durable intent, so the run stops."""


class ApiError(BulkContactsError):
    """A request to the Partner API failed for good (after any retries)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        attempts: int = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.request_id = request_id
        self.trace_id = trace_id
        self.attempts = attempts
        self.method = method
        self.path = path
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        status = f"HTTP {self.status} " if self.status else ""
        code = f"{self.code}: " if self.code else ""
        field = f" (field {self.field})" if self.field else ""
        ids = ", ".join(
            f"{name} {value}"
            for name, value in (("request", self.request_id), ("trace", self.trace_id))
            if value
        )
        tries = f", after {self.attempts} attempts" if self.attempts > 1 else ""
        suffix = f" [{ids}{tries}]" if ids or tries else ""
        return f"{where}{status}{code}{self.message}{field}{suffix}"


class AuthError(ApiError):
    pass


class PermissionDenied(ApiError):
    pass


class NotFound(ApiError):
    pass


class Rejected(ApiError):
    pass


class Conflict(ApiError):
    pass


class RateLimited(ApiError):
    pass


class ServerError(ApiError):
    pass


class TransportError(ApiError):
    # What the OS said (`diagnose.cause_of`): refused, dns, tls, timeout or other.
    cause = "other"


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: Rejected,
    401: AuthError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: Rejected,
    429: RateLimited,
}


def error_class(status: int) -> type[ApiError]:
    if status >= 500:
        return ServerError
    return ERRORS_BY_STATUS.get(status, ApiError)
