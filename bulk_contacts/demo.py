"""`bulk-contacts demo`: the whole job on the sample data, against a sandbox started for it.

The demo's steps are the commands a user would type, run in this process. They get the
sandbox's own public rehearsal settings as their environment (`Demo.environ`): the user's
`CHEKT_*` variables are neither read nor changed, so a demo can never reach a real account.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .samples import write_samples
from .sandbox import SandboxConfig, SandboxServer

# What the demo leaves in its folder, and what each file is.
FILES = (
    ("sample_data/", "the sample roster, a roster with mistakes, the seed"),
    ("plan.html", "the plan, to open in a browser"),
    ("plan.xlsx", "the plan for review in Excel"),
    ("plan.json", "the plan file that apply took"),
    ("apply/results.csv", "one line per change made"),
    ("apply/journal.jsonl", "the journal (bulk-contacts rollback takes it)"),
    ("contacts-after.xlsx", "the export: edit it and plan/apply it back"),
)


@dataclass(frozen=True)
class Step:
    title: str
    args: list[str]  # the command line, after `bulk-contacts`


@dataclass(frozen=True)
class Demo:
    url: str  # the sandbox's
    seed: Path
    environ: dict[str, str]  # the settings each step runs with
    steps: list[Step]


@contextmanager
def started_demo(out: Path, progress: bool = True) -> Iterator[Demo]:
    """The sample files written to `out/sample_data`, a sandbox seeded with them on 127.0.0.1
    (stopped at the end of the block), and the steps to run against it. The folder is the
    demo's own: each run replaces the files of the last one. A journal is never replaced, but
    the last demo's is of a sandbox that is gone, so it goes."""
    samples = write_samples(out / "sample_data")
    roster, seed = samples["roster.xlsx"], samples["sandbox-seed.json"]
    (out / "apply").mkdir(exist_ok=True)
    (out / "apply" / "journal.jsonl").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        config = SandboxConfig(port=0, db=Path(scratch) / "sandbox.db", seed=seed)
        with SandboxServer(config) as sandbox:
            environ = {
                "CHEKT_API_URL": sandbox.url,
                "CHEKT_CLIENT_ID": config.client_id,
                "CHEKT_CLIENT_SECRET": config.client_secret,
                "CHEKT_DEALER_ID": str(config.dealers[0]),
            }
            yield Demo(sandbox.url, seed, environ, demo_steps(out, roster, progress))


def demo_steps(out: Path, roster: Path, progress: bool = True) -> list[Step]:
    """Validate, plan with --prune (three reports), apply the saved plan, export, plan again."""
    quiet = [] if progress else ["--no-progress"]
    apply_folder = out / "apply"
    return [
        Step("validate the sample roster", ["validate", str(roster)]),
        Step(
            "plan it with --prune",
            [
                "plan",
                str(roster),
                "--prune",
                *quiet,
                *("--report", str(out / "plan.html"), "--report", str(out / "plan.xlsx")),
                *("-o", str(out / "plan.json"), "--overwrite"),
            ],
        ),
        Step(
            "apply the saved plan",
            [
                "apply",
                str(out / "plan.json"),
                "--yes",
                *quiet,
                *("--results", str(apply_folder / "results.csv")),
                *("--journal", str(apply_folder / "journal.jsonl"), "--overwrite"),
            ],
        ),
        Step(
            "export what CHeKT now holds",
            ["export", "-o", str(out / "contacts-after.xlsx"), "--overwrite", *quiet],
        ),
        Step(
            "plan again: nothing left to do",
            ["plan", str(roster), "--prune", "-q", "--detailed-exitcode"],
        ),
    ]
