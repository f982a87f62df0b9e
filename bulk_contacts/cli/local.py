"""demo, sandbox and serve: what runs on this machine (a sandbox of the API, the browser
interface)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from ..errors import ExitCode
from ..sandbox import config as sandbox_defaults
from .common import (
    CONNECTION_ENV,
    LOCK_ENV,
    check_outputs,
    echo,
    environ,
    epilog,
    without_flags,
)
from .options import option_group


@click.command(
    epilog=epilog(
        (
            "bulk-contacts demo",
            "bulk-contacts demo --out demo-files --no-progress",
        ),
        "none: the demo's steps run with the sandbox's settings (CHEKT_* are neither read nor "
        "changed)",
    )
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo's files (sample roster, reports, results, export).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def demo(out: Path, no_progress: bool) -> ExitCode:
    """The whole job on the sample data, against a sandbox started for it on 127.0.0.1: no
    credentials, no network. Validate, plan with --prune (html, xlsx, json reports), apply,
    export."""
    import time

    from ..demo import FILES, started_demo
    from ..outputs import Output
    from . import invoke

    check_outputs([Output("--out", out, (), "folder")])
    started = time.perf_counter()
    with started_demo(out, progress=not no_progress) as run:
        echo(f"bulk-contacts demo: a sandbox on {run.url}, seeded from {run.seed}", "bold")
        for step in run.steps:
            echo()
            echo(f"== {step.title}: bulk-contacts {' '.join(step.args)}", "bold")
            code = invoke(step.args, run.environ)
            if code != ExitCode.OK:
                echo(f"error: the demo's step '{step.title}' ended with exit code {code}", err=True)
                return ExitCode.FAILED
    echo()
    echo(f"Demo finished in {time.perf_counter() - started:.1f} s. Files in {out}/:", "done")
    for name, what in FILES:
        echo(f"  {name:<22} {what}")
    echo()
    echo("The same job in a browser (upload, fix, plan, apply, rollback): bulk-contacts serve")
    return ExitCode.OK


def faults(**values: Any) -> Any:
    from ..sandbox import Faults

    return Faults(**values)


@click.command(
    epilog=epilog(
        (
            "bulk-contacts sandbox --seed sample_data/sandbox-seed.json",
            "bulk-contacts sandbox --db rehearsal.sqlite --port 8787",
            "bulk-contacts sandbox --error-rate 0.1 --latency-ms 50 --fault-seed 1",
        ),
        (("SANDBOX_CLIENT_SECRET", "the client's secret (--client-secret)"),),
    )
)
@click.option(
    "--host", default=sandbox_defaults.DEFAULT_HOST, show_default=True, help="Address to listen on."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=sandbox_defaults.DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file to keep the data in (default: in memory, gone at exit).",
)
@click.option(
    "--seed",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Seed file loaded into an empty database: JSON (format in the README), or an xlsx "
    "export made by `bulk-contacts export` (its sites and contacts).",
)
@click.option(
    "--clone",
    is_flag=True,
    help="Copy the dealer's sites and contacts from the live API (CHEKT_* settings, read-only) "
    "into the empty database first, ids and all, to rehearse on a faithful copy.",
)
@click.option(
    "--client-id",
    default=sandbox_defaults.DEFAULT_CLIENT_ID,
    show_default=True,
    help="The one OAuth client the sandbox knows.",
)
@click.option(
    "--client-secret",
    default=sandbox_defaults.DEFAULT_CLIENT_SECRET,
    envvar="SANDBOX_CLIENT_SECRET",
    help="That client's secret (SANDBOX_CLIENT_SECRET; default sandbox-secret). The flag shows "
    "in `ps`: use it only for throwaway rehearsals, the variable otherwise.",
)
@click.option(
    "--dealer",
    "dealers",
    type=int,
    multiple=True,
    help="Dealer id the client may reach; repeatable (default 12345).",
)
@click.option(
    "--client-public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM public key: enables the signed-JWT-assertion form of the token request.",
)
@click.option(
    "--token-ttl",
    type=click.IntRange(1),
    default=3600,
    show_default=True,
    help="Lifetime of an access token, in seconds.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(1),
    metavar="PER_MINUTE",
    help="Token-bucket limit per client on /partner/ calls (default: none).",
)
@click.option(
    "--burst",
    type=click.IntRange(1),
    help="Bucket size for --rate-limit (default: one second's worth).",
)
@option_group(
    "faults",
    lambda fault_seed, **rates: faults(seed=fault_seed, **rates),
    click.option(
        "--latency-ms", type=click.FloatRange(0), default=0, help="Added to every request."
    ),
    click.option(
        "--jitter-ms",
        type=click.FloatRange(0),
        default=0,
        help="Random extra latency, up to this much.",
    ),
    click.option(
        "--error-rate",
        type=click.FloatRange(0, 1),
        default=0,
        help="Share of /partner/ requests answered 500 or 503 without doing anything.",
    ),
    click.option(
        "--drop-rate",
        type=click.FloatRange(0, 1),
        default=0,
        help="Share of /partner/ requests whose connection is closed with no answer.",
    ),
    click.option(
        "--ack-loss-rate",
        type=click.FloatRange(0, 1),
        default=0,
        help="Share of writes that commit, then answer 500 or drop the connection.",
    ),
    click.option("--fault-seed", type=int, help="Seed for the fault draws (reproducible runs)."),
)
@click.option(
    "--request-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request (trace id, request id, status) here.",
)
@click.option(
    "--unmarked-replays",
    "mark_replays",
    is_flag=True,
    flag_value=False,
    default=True,
    help="Replay a stored answer without the Idempotency-Replayed header, as some servers do.",
)
def sandbox(dealers: tuple[int, ...], clone: bool, **options: Any) -> None:
    """Run a local emulation of the CHeKT Partner API, kept in SQLite."""
    from ..outputs import LINES_SUFFIXES, Output
    from ..sandbox import SandboxConfig, serve

    if options["request_log"] is not None:
        check_outputs([Output("--request-log", options["request_log"], LINES_SUFFIXES, "append")])
    if clone and options["seed"] is not None:
        raise click.UsageError("give --seed FILE or --clone, not both")
    preloaded, cloned_dealer = cloned() if clone else (None, None)
    if cloned_dealer is not None and not dealers:
        dealers = (cloned_dealer,)
    config = SandboxConfig(dealers=dealers or (sandbox_defaults.DEFAULT_DEALER,), **options)
    source = click.get_current_context().get_parameter_source("client_secret")
    secret = (
        {
            click.core.ParameterSource.ENVIRONMENT: "from SANDBOX_CLIENT_SECRET",
            click.core.ParameterSource.COMMANDLINE: "as given with --client-secret",
        }.get(source, "sandbox-secret (the default)")
        if source is not None
        else ""
    )

    def announce(url: str) -> None:
        echo(f"CHeKT sandbox listening on {url}")
        echo(f"  token URL:     {url}/oauth/token")
        echo(f"  client id:     {config.client_id}")
        echo(f"  client secret: {secret}")
        echo(f"  dealer(s):     {', '.join(str(d) for d in config.dealers)}")
        echo(f"  database:      {config.db or 'in memory'}")
        echo("Press Ctrl-C to stop.")

    serve(config, announce, preloaded)


def cloned() -> tuple[Any, int]:
    """`sandbox --clone`: the dealer's sites and contacts read from the API the CHEKT_*
    settings name (lists only), with a progress bar."""
    from ..client import ChektClient
    from ..sandbox.clone import clone_seed
    from ..settings import resolve_settings
    from ..terminal import Bars

    settings = resolve_settings(env=environ())
    dealer = settings.required_dealer()
    with ChektClient(settings) as client, Bars(True) as bars:
        seed = clone_seed(client, dealer, bars)
    sites = seed.dealers[0].sites
    count = sum(len(site.contacts) for site in sites)
    echo(
        f"cloned {len(sites)} sites and {count} contacts of dealer {dealer} from {settings.api_url}"
    )
    return seed, dealer


@click.command(
    epilog=epilog(
        (
            "bulk-contacts serve",
            "bulk-contacts serve --port 0 --no-browser   # print the URL, any free port",
        ),
        without_flags(CONNECTION_ENV) + LOCK_ENV,
    )
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8790,
    show_default=True,
    help="Port on 127.0.0.1 to listen on (0: any free port).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL but do not open a browser.")
def serve(port: int, no_browser: bool) -> ExitCode:
    """The whole job in a browser, on this machine only: connect, upload, columns, fix, plan,
    apply, runs (with rollback), export. Listens on 127.0.0.1; the printed URL carries the
    session's token."""
    from ..entry import stop_asked
    from ..web.server import WebServer, open_browser

    server = WebServer(port)
    stopped: list[bool] = []  # a stop Python dropped while it started: it stops at once

    def ready() -> None:
        if stop_asked():
            stopped.append(True)
            server.server.should_exit = True
            return
        echo(f"bulk-contacts serve: open {server.url}")
        echo("  (127.0.0.1 only; the token in the URL is this session's key)")
        echo(f"  runs are written under {server.workspace.runs_dir}")
        echo("Press Ctrl-C to stop.")
        if not no_browser:
            open_browser(server.url)

    if stop_asked():  # a Ctrl-C (SIGTERM) Python dropped (`entry.stop_asked`): nothing served
        server.close()
        raise KeyboardInterrupt
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how serve is stopped
        server.run(ready)
    if stopped:
        raise KeyboardInterrupt
    run = server.workspace.run
    if run is not None and run.report is not None and run.report.interrupted:
        echo(
            f"stopped during a {run.kind}: the changes in flight finished, the rest are "
            f"recorded as skipped in {run.folder}",
            err=True,
        )
        return ExitCode.INTERRUPTED
    echo("stopped; the uploaded files were removed")
    return ExitCode.OK
