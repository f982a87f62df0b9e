"""bulk-contacts: move site-contact rosters between spreadsheets and the CHeKT Partner API.

The public API, in pipeline order: read and validate a roster, resolve settings and open a
client, plan, guard, apply (or roll back), export; the errors; the sandbox is
`bulk_contacts.sandbox`. Names are imported on first use, so that `import bulk_contacts` (and the
command line, which starts here) stays fast: pandas and httpx load when a name needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    # reading and validating
    "ReadOptions": ".pipeline",
    "load_validated": ".pipeline",
    "read_roster": ".roster",
    "validate_roster": ".schema",
    "ValidatedRoster": ".schema",
    "RosterIssue": ".schema",
    # settings and the API client
    "Settings": ".settings",
    "resolve_settings": ".settings",
    "Credentials": ".credentials",
    "ChektClient": ".client",
    "RetryPolicy": ".retries",
    "RunLog": ".runlog",
    "Site": ".models",
    "Contact": ".models",
    "NewContact": ".models",
    "WriteResult": ".models",
    # planning and the guards
    "PlanOptions": ".plan",
    "plan_roster": ".pipeline",
    "plan_path": ".pipeline",
    "Plan": ".plan",
    "SitePlan": ".plan",
    "Change": ".plan",
    "guarded": ".guards",
    "Refusal": ".guards",
    "InvalidRows": ".guards",
    "TooMuchChange": ".guards",
    "EmptiesSite": ".guards",
    "StaleSite": ".guards",
    # applying, rolling back, exporting, writing files
    "RunFiles": ".apply",
    "ApplyReport": ".apply",
    "apply_plan": ".apply",
    "check_freshness": ".apply",
    "load_saved_plan": ".apply",
    "read_journal": ".journal",
    "inverse_plan": ".rollback",
    "fetch_export": ".export",
    "write_export": ".export",
    "write_plan_report": ".plan_report",
    "write_validation_report": ".validation_report",
    "write_template": ".template",
    # errors
    "ExitCode": ".errors",
    "BulkContactsError": ".errors",
    "ConfigError": ".errors",
    "InputError": ".errors",
    "EmptyRoster": ".errors",
    "JournalError": ".errors",
    "ApiError": ".errors",
}
__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from .apply import ApplyReport, RunFiles, apply_plan, check_freshness, load_saved_plan
    from .client import ChektClient
    from .credentials import Credentials
    from .errors import (
        ApiError,
        BulkContactsError,
        ConfigError,
        EmptyRoster,
        ExitCode,
        InputError,
        JournalError,
    )
    from .export import fetch_export, write_export
    from .guards import EmptiesSite, InvalidRows, Refusal, StaleSite, TooMuchChange, guarded
    from .journal import read_journal
    from .models import Contact, NewContact, Site, WriteResult
    from .pipeline import ReadOptions, load_validated, plan_path, plan_roster
    from .plan import Change, Plan, PlanOptions, SitePlan
    from .plan_report import write_plan_report
    from .retries import RetryPolicy
    from .rollback import inverse_plan
    from .roster import read_roster
    from .runlog import RunLog
    from .schema import RosterIssue, ValidatedRoster, validate_roster
    from .settings import Settings, resolve_settings
    from .template import write_template
    from .validation_report import write_validation_report


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
