"""The pages of `bulk-contacts serve`, one per step: Connect, Upload, Columns, Fix, Plan, Apply,
Runs, Export. Every step is a library call (through `library`); the pages only show and ask.

A page that changes something posts with htmx (which adds the CSRF header) and is answered with
`HX-Redirect` to the page to show next (post, redirect, get); messages go with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader
from starlette.staticfiles import StaticFiles

from ..errors import BulkContactsError, InputError
from ..guards import Refusal
from ..outputs import visible_value
from ..words import plural
from . import library
from .connection import check_connection, sandbox_connection, settings_connection
from .runs import find_run, past_runs, start_run
from .security import Gate, Session
from .workspace import Workspace, file_issues

HERE = Path(__file__).parent
STEPS = (
    ("connect", "Connect"),
    ("upload", "Upload"),
    ("columns", "Columns"),
    ("fix", "Fix"),
    ("plan", "Plan"),
    ("apply", "Apply"),
    ("runs", "Runs"),
    ("export", "Export"),
)
PLAN_REPORTS = {"json": "plan.json", "xlsx": "plan.xlsx", "html": "plan.html", "csv": "plan.csv"}
RUN_FILES = {"results": "results", "journal": "journal", "failed": "failed_rows"}
# The plan options a refusal can name (`Refusal.passed_by`): (flag, form control id, label).
PLAN_FLAGS = {
    "prune": ("--prune", "prune-yes", "Delete contacts not in the roster (prune)"),
    "skip_invalid": ("--skip-invalid", "opt-skip-invalid", "Skip invalid rows"),
    "force": ("--force", "opt-force", "Force past the delete guard"),
    "max_deletes": ("--max-deletes", "opt-max-deletes", "Refuse more deletes than"),
    "allow_empty_sites": ("--allow-empty-sites", "opt-allow-empty-sites", "Allow empty sites"),
}
CHANGES_SHOWN = 1000  # change rows rendered on a page; the reports hold them all
SITES_SHOWN = 500


def create_app(workspace: Workspace, session: Session) -> Any:
    """The application behind its gate (host, token, CSRF: see `security`)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.workspace, app.state.session = workspace, session
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    pages = Pages(workspace, session)
    for route in pages.routes():
        app.add_api_route(*route[:2], methods=[route[2]], response_model=None)
    return Gate(app, session)


def redirect(url: str) -> Response:
    """What a POST from htmx answers: go to that page."""
    return Response(status_code=200, headers={"HX-Redirect": url})


def passing_options(refusal: Refusal) -> list[tuple[str, str, str]]:
    """The plan options that go past a refusal, as (flag, form control id, label)."""
    return [PLAN_FLAGS[name] for name in refusal.passed_by if name in PLAN_FLAGS]


class Pages:
    def __init__(self, workspace: Workspace, session: Session) -> None:
        self.ws, self.session = workspace, session
        self.templates = Environment(
            loader=PackageLoader("bulk_contacts.web", "templates"),
            autoescape=True,
            finalize=visible_value,  # a name holding ESC or U+202E is shown as \x1b, \u202e
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            passing_options=passing_options,
            letter=library.column_letter,
            form_values=library.form_values,
            plural=plural,
        )

    def routes(self) -> list[tuple[str, Any, str]]:
        return [
            ("/", self.home, "GET"),
            ("/connect", self.connect_page, "GET"),
            ("/connect/sandbox", self.connect_sandbox, "POST"),
            ("/connect/settings", self.connect_settings, "POST"),
            ("/connect/check", self.connect_check, "POST"),
            ("/upload", self.upload_page, "GET"),
            ("/upload", self.upload_file, "POST"),
            ("/upload/sample", self.upload_sample, "POST"),
            ("/upload/options", self.upload_options, "POST"),
            ("/columns", self.columns_page, "GET"),
            ("/columns", self.columns_set, "POST"),
            ("/columns/save", self.columns_save, "POST"),
            ("/columns/use", self.columns_use, "POST"),
            ("/fix", self.fix_page, "GET"),
            ("/fix/rows", self.fix_rows, "GET"),
            ("/fix/cell", self.fix_cell, "POST"),
            ("/fix/check", self.fix_check, "POST"),
            ("/fix/corrected.xlsx", self.fix_download, "GET"),
            ("/plan", self.plan_page, "GET"),
            ("/plan", self.plan_make, "POST"),
            ("/plan/download/{kind}", self.plan_download, "GET"),
            ("/apply", self.apply_page, "GET"),
            ("/apply", self.apply_start, "POST"),
            ("/run/stop", self.run_stop, "POST"),
            ("/run/events", self.run_events, "GET"),
            ("/runs", self.runs_page, "GET"),
            ("/runs/{name}/rollback", self.rollback_page, "GET"),
            ("/runs/{name}/rollback", self.rollback_start, "POST"),
            ("/runs/{name}/{which}", self.run_file, "GET"),
            ("/export", self.export_page, "GET"),
            ("/export/contacts.xlsx", self.export_download, "GET"),
        ]

    # rendering

    def page(self, template: str, current: str, **context: Any) -> HTMLResponse:
        ws = self.ws
        html = self.templates.get_template(template).render(
            csrf=self.session.csrf,
            steps=STEPS,
            current=current,
            done=self.steps_done(),
            ws=ws,
            messages=ws.take_messages(),
            **context,
        )
        return HTMLResponse(html)

    def steps_done(self) -> set[str]:
        ws, done = self.ws, set()
        if ws.connection is not None and ws.checks and all(s.ok for s in ws.checks):
            done.add("connect")
        if ws.upload is not None:
            done.add("upload")
        if ws.roster is not None:
            done.add("columns")
        if ws.validated is not None and ws.validated.valid:
            done.add("fix")
        if ws.plan is not None:
            done.add("plan")
        if ws.run is not None and not ws.run.running:
            done.add("apply")
        return done

    def failed(self, error: BulkContactsError | OSError, back: str) -> Response:
        self.ws.say("error", str(error))
        return redirect(back)

    # 1. connect

    def home(self) -> Response:
        return Response(status_code=303, headers={"Location": "/connect"})

    def connect_page(self) -> HTMLResponse:
        from ..profiles import active_name, layered_environ

        environ = layered_environ(os.environ)
        env = {name: environ.get(name, "") for name in ENV_FIELDS}
        secret_set = bool(environ.get("CHEKT_CLIENT_SECRET") or environ.get("CHEKT_API_KEY"))
        profiles, problem = profile_rows()
        chosen = self.ws.connection.profile if self.ws.connection else None
        return self.page(
            "connect.html.j2",
            "connect",
            env=env,
            env_secret=secret_set,
            profiles=profiles,
            profiles_problem=problem,
            chosen_profile=chosen or active_name(None, environ) or "",
            report=self.ws.check_report,
        )

    def connect_sandbox(self) -> Response:
        with self.ws.lock:
            try:
                connection = sandbox_connection(self.ws.folder / "sandbox")
                self.ws.connect(connection, check_connection(connection))
            except (BulkContactsError, OSError) as error:
                return self.failed(error, "/connect")
            except Exception as error:  # SandboxError, SeedError: the sandbox's own
                return self.failed(InputError(f"the sandbox did not start: {error}"), "/connect")
        return redirect("/connect")

    def connect_settings(
        self,
        api_url: str = Form(""),
        token_url: str = Form(""),
        dealer: str = Form(""),
        client_id: str = Form(""),
        client_secret: str = Form(""),
        profile: str = Form(""),
    ) -> Response:
        overrides = {
            "CHEKT_API_URL": api_url.strip(),
            "CHEKT_TOKEN_URL": token_url.strip(),
            "CHEKT_DEALER_ID": dealer.strip(),
            "CHEKT_CLIENT_ID": client_id.strip(),
        }
        with self.ws.lock:
            try:
                connection = settings_connection(
                    overrides, client_secret or None, profile=profile.strip() or None
                )
                self.ws.connect(connection, check_connection(connection))
            except BulkContactsError as error:
                return self.failed(error, "/connect")
            if connection.secret_note:
                self.ws.say("ok", connection.secret_note)
        return redirect("/connect")

    def connect_check(self) -> Response:
        with self.ws.lock:
            if self.ws.connection is None:
                return self.failed(InputError("not connected"), "/connect")
            self.ws.checked(check_connection(self.ws.connection))
        return redirect("/connect")

    # 2. upload

    def upload_page(self) -> HTMLResponse:
        return self.page("upload.html.j2", "upload")

    async def upload_file(self, request: Request) -> Response:
        """The file as the request's body (streamed to the private folder, never to memory as a
        whole); its name in X-File-Name."""
        from urllib.parse import unquote

        name = unquote(request.headers.get("x-file-name", "roster"))
        path = self.ws.new_upload_path(name)
        size = 0
        with path.open("wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > library.MAX_UPLOAD_BYTES:
                    handle.close()
                    path.unlink()
                    return JSONResponse(
                        {"error": f"{path.name}: larger than the 200 MB a roster may be"}, 413
                    )
                handle.write(chunk)
        return JSONResponse({"redirect": await run_in_threadpool(self._loaded, path, None)})

    def _loaded(self, path: Path, sheet: str | None) -> str:
        with self.ws.lock:
            try:
                self.ws.load(path, sheet)
            except (BulkContactsError, OSError) as error:
                self.ws.say("error", str(error))
                return "/upload"
        assert self.ws.upload is not None  # just loaded
        self.ws.say("ok", f"{path.name}: {plural(len(self.ws.upload.table.cells), 'row')} read")
        return "/columns"

    def upload_sample(self) -> Response:
        connection = self.ws.connection
        if connection is None or "roster.xlsx" not in connection.samples:
            return self.failed(InputError("the sample roster comes with the sandbox"), "/upload")
        source = connection.samples["roster.xlsx"]
        path = self.ws.new_upload_path(source.name)
        path.write_bytes(source.read_bytes())
        return redirect(self._loaded(path, None))

    async def upload_options(self, request: Request) -> Response:
        if refused := self.ws.other_roster(request.headers.get("x-roster")):
            return self.failed(InputError(refused), "/upload")
        form = {key: str(value) for key, value in (await request.form()).items()}
        return await run_in_threadpool(self._upload_options, form)

    def _upload_options(self, form: dict[str, str]) -> Response:
        """The sheet, the phone reading, and the layout options (the command line's, read by
        its parser: `library.reading_options`)."""
        ws = self.ws
        sheet, region = form.get("sheet", ""), form.get("region", "US")
        phone_format = form.get("phone_format", "e164")
        with ws.lock:
            try:
                read = library.reading_options(form)
                if ws.upload is not None and (
                    read != ws.read or (sheet and sheet != ws.upload.table.details.get("sheet"))
                ):
                    ws.region, ws.phone_format = region.upper() or "US", phone_format
                    previous, ws.read = ws.read, read
                    try:
                        ws.load(ws.upload.path, sheet or ws.upload.table.details.get("sheet"))
                    except BulkContactsError:
                        ws.read = previous  # the file as it was read stays
                        raise
                ws.read = read
                ws.set_reading(region.strip() or "US", phone_format)
            except BulkContactsError as error:
                return self.failed(error, "/upload")
        return redirect("/columns" if ws.upload else "/upload")

    # 3. columns

    def columns_page(self) -> HTMLResponse:
        ws = self.ws
        rows = []
        if ws.upload is not None:
            table = ws.upload.table
            for position, header in enumerate(table.headers):
                sample = (
                    "(hidden: a passcode column, never read nor shown)"
                    if library.is_secret(header)
                    else next((v for v in table.cells[position].head(50) if str(v).strip()), "")
                )
                rows.append(
                    {
                        "position": position,
                        "letter": library.column_letter(position),
                        "header": header,
                        "detected": library.detected_column(header),
                        "choice": ws.choices.get(position),
                        "export_only": library.is_export_column(header),
                        "sample": sample,
                    }
                )
        return self.page(
            "columns.html.j2",
            "columns",
            rows=rows,
            fields=library.CHOICES,
            saved=sorted(ws.saved_mappings()),
        )

    async def columns_set(self, request: Request) -> Response:
        if refused := self.ws.other_roster(request.headers.get("x-roster")):
            return self.failed(InputError(refused), "/columns")
        form = await request.form()
        choices: dict[int, str | None] = {}
        for key, value in form.items():
            if key.startswith("col-") and key[4:].isdigit():
                choices[int(key[4:])] = value if value in library.CHOICES else None
        return await run_in_threadpool(self._set_columns, choices)

    def _set_columns(self, choices: dict[int, str | None]) -> Response:
        ws = self.ws
        with ws.lock:
            if ws.upload is None:
                return self.failed(InputError("no roster: upload one first"), "/upload")
            valid = {p: c for p, c in choices.items() if p < len(ws.upload.table.headers)}
            ws.set_choices({**ws.choices, **valid})
            if ws.roster_error:
                ws.say("error", ws.roster_error)
                return redirect("/columns")
        return redirect("/fix")

    def columns_save(self, name: str = Form("")) -> Response:
        with self.ws.lock:
            try:
                self.ws.save_mapping(name)
            except (BulkContactsError, OSError) as error:
                return self.failed(error, "/columns")
        self.ws.say("ok", f"mapping {name.strip()!r} saved")
        return redirect("/columns")

    def columns_use(self, request: Request, name: str = Form("")) -> Response:
        with self.ws.lock:
            if refused := self.ws.other_roster(request.headers.get("x-roster")):
                return self.failed(InputError(refused), "/columns")
            try:
                self.ws.use_mapping(name)
            except BulkContactsError as error:
                return self.failed(error, "/columns")
        self.ws.say("ok", f"mapping {name!r} applied")
        return redirect("/columns")

    # 4. fix

    def fix_page(self) -> HTMLResponse:
        ws = self.ws
        return self.page(
            "fix.html.j2",
            "fix",
            counts=ws.counts(),
            file_issues=file_issues(ws.validated),
        )

    def fix_rows(self) -> JSONResponse:
        with self.ws.lock:
            return JSONResponse({**self.ws.grid(), "counts": self.ws.counts()})

    async def fix_cell(self, request: Request) -> JSONResponse:
        """Save a corrected cell; the rows whose problems changed."""
        return await self._on_cell(request, self.ws.edit)

    async def fix_check(self, request: Request) -> JSONResponse:
        """Check a cell as it is typed, without saving it."""
        return await self._on_cell(request, lambda *cell: {"issues": self.ws.check(*cell)})

    async def _on_cell(self, request: Request, action: Any) -> JSONResponse:
        try:
            body = await request.json()
            row, field, value = int(body["row"]), str(body["field"]), str(body["value"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send {row, field, value}"}, 400)

        def act() -> JSONResponse:
            with self.ws.lock:
                if refused := self.ws.other_roster(request.headers.get("x-roster")):
                    return JSONResponse({"error": refused}, 409)
                try:
                    return JSONResponse(action(row, field, value))
                except BulkContactsError as error:
                    return JSONResponse({"error": self.ws.shown(str(error))}, 400)

        return await run_in_threadpool(act)

    def fix_download(self) -> Response:
        ws = self.ws
        with ws.lock:
            if ws.validated is None or ws.upload is None:
                return Response("no roster to download\n", 404, media_type="text/plain")
            stem = Path(ws.upload.name).stem
            path = ws.folder / "downloads" / f"{stem}-corrected.xlsx"
            library.write_corrected_roster(ws.validated, path)
        return FileResponse(path, filename=path.name)

    # 5. plan

    def plan_page(self) -> HTMLResponse:
        ws = self.ws
        plan = ws.plan
        return self.page(
            "plan.html.j2",
            "plan",
            plan=plan,
            summary=plan.summary() if plan else {},
            form=ws.plan_form,
            counts=ws.counts(),
            changes_shown=CHANGES_SHOWN,
            sites_shown=SITES_SHOWN,
            left_alone=left_alone(plan) if plan else {},
        )

    def plan_make(
        self,
        prune: str = Form("no"),
        blanks: str = Form("keep"),
        skip_invalid: str = Form(""),
        max_deletes: str = Form(""),
        force: str = Form(""),
        allow_empty_sites: str = Form(""),
        allow_unreachable: str = Form(""),
        exact_ids: str = Form(""),
        repair_ids: str = Form(""),
    ) -> Response:
        ws = self.ws
        with ws.lock:
            ws.plan_form = {
                "prune": prune == "yes",
                "blanks": "clear" if blanks == "clear" else "keep",
                "skip_invalid": bool(skip_invalid),
                "max_deletes": max_deletes.strip(),
                "force": bool(force),
                "allow_empty_sites": bool(allow_empty_sites),
                "allow_unreachable": bool(allow_unreachable),
                "exact_ids": bool(exact_ids),
                "repair_ids": bool(repair_ids),
            }
            if ws.connection is None:
                return self.failed(InputError("not connected: connect first"), "/connect")
            if ws.validated is None:
                return self.failed(InputError("no roster: upload one first"), "/upload")
            if not re.fullmatch(r"[0-9]{0,9}", ws.plan_form["max_deletes"]):
                return self.failed(InputError("max deletes: a whole number, or empty"), "/plan")
            try:
                validated = library.validate_for_plan(ws.roster, ws.region, ws.phone_format)
                ws.plan = library.make_plan(ws.connection.client, validated, self.options())
                ws.plan_number += 1
            except BulkContactsError as error:
                return self.failed(error, "/plan")
        return redirect("/plan")

    def options(self) -> library.PlanOptions:
        ws, form = self.ws, self.ws.plan_form
        assert ws.connection is not None
        return library.PlanOptions(
            dealer_id=ws.connection.settings.dealer_id,
            region=ws.region,
            phone_format=ws.phone_format,
            blanks=form["blanks"],
            prune=form["prune"],
            max_deletes=int(form["max_deletes"]) if form["max_deletes"] else None,
            force=form["force"],
            allow_empty_sites=form["allow_empty_sites"],
            skip_invalid=form["skip_invalid"],
            allow_unreachable=form.get("allow_unreachable", False),
            exact_ids=form.get("exact_ids", False),
            repair_ids=form.get("repair_ids", False),
            match_by=ws.read.match_by,
        )

    def plan_download(self, kind: str) -> Response:
        ws = self.ws
        if kind not in PLAN_REPORTS or ws.plan is None:
            return Response("no such plan report\n", 404, media_type="text/plain")
        path = ws.folder / "downloads" / PLAN_REPORTS[kind]
        with ws.lock:
            library.write_plan(ws.plan, path)
        return FileResponse(path, filename=path.name)

    # 6. apply

    def apply_page(self) -> HTMLResponse:
        ws = self.ws
        return self.page(
            "apply.html.j2",
            "apply",
            plan=ws.plan,
            summary=ws.plan.summary() if ws.plan else {},
            run=ws.run,
            progress=ws.run.snapshot() if ws.run else None,
            run_name=ws.run.folder.name if ws.run else "",
        )

    def apply_start(self, shown: str = Form("", alias="plan")) -> Response:
        ws = self.ws
        with ws.lock:
            plan, connection = ws.plan, ws.connection
            if plan is None or connection is None:
                return self.failed(InputError("no plan: make one first"), "/plan")
            if shown != str(ws.plan_number):
                return self.failed(
                    InputError(
                        "the plan that page confirmed is no longer the plan at hand (another "
                        "tab or window made another since): nothing was applied; review this "
                        "plan, then apply it"
                    ),
                    "/plan",
                )
            if ws.run is not None and ws.run.running:
                return self.failed(InputError("a run is already in progress"), "/apply")
            if plan.refused or not plan.changes:
                return self.failed(InputError("this plan has nothing to apply"), "/plan")
            try:
                stale = library.stale_sites(connection.client, plan)
            except BulkContactsError as error:
                return self.failed(error, "/apply")
            if stale:
                names = ", ".join(site.label for site in stale)
                ws.plan = None
                return self.failed(
                    InputError(
                        f"{plural(len(stale), 'site')} changed in CHeKT since the plan was made "
                        f"({names}): "
                        f"nothing was applied; make the plan again"
                    ),
                    "/plan",
                )
            ws.run = start_run(
                connection, plan, ws.runs_dir, "apply", lambda text: ws.say("warning", text)
            )
            ws.plan = None  # applied: a new plan is needed for anything more
        return redirect("/apply")

    def run_stop(self) -> Response:
        run = self.ws.run
        if run is not None and run.running:
            run.stop.set()
        return Response(status_code=204)

    async def run_events(self, request: Request) -> Response:
        """The run's tally as server-sent events, a few times a second, until it ends."""
        run = self.ws.run
        if run is None:
            return Response("no run\n", 404, media_type="text/plain")

        async def stream():
            last = None
            while not await request.is_disconnected():
                snapshot = run.snapshot()
                if snapshot != last:
                    yield f"data: {json.dumps(snapshot)}\n\n"
                    last = snapshot
                if snapshot["finished"]:
                    yield "event: finished\ndata: {}\n\n"
                    return
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream")

    # 7. runs

    def runs_page(self) -> HTMLResponse:
        return self.page("runs.html.j2", "runs", runs=past_runs(self.ws.runs_dir))

    def rollback_page(self, name: str, force: bool = False) -> HTMLResponse:
        ws = self.ws
        past = find_run(ws.runs_dir, name)
        plan, problem = None, ""
        if past is None:
            problem = f"no run named {name!r}"
        elif ws.connection is None:
            problem = "not connected: connect to the CHeKT this run wrote to first"
        elif past.api_url and past.api_url != ws.connection.settings.api_url:
            problem = (
                f"this run wrote to {past.api_url}, but you are connected to "
                f"{ws.connection.settings.api_url}: connect there to roll it back"
            )
        else:
            try:
                with ws.lock:
                    plan = library.rollback_plan(ws.connection.client, past.journal, force)
            except BulkContactsError as error:
                problem = ws.shown(str(error))
        return self.page(
            "rollback.html.j2",
            "runs",
            past=past,
            plan=plan,
            summary=plan.summary() if plan else {},
            problem=problem,
            force=force,
            changes_shown=CHANGES_SHOWN,
            sites_shown=SITES_SHOWN,
            left_alone={},
        )

    def rollback_start(self, name: str, force: str = Form("")) -> Response:
        ws = self.ws
        with ws.lock:
            past, connection = find_run(ws.runs_dir, name), ws.connection
            if past is None or connection is None:
                return self.failed(InputError("no such run, or not connected"), "/runs")
            if past.api_url and past.api_url != connection.settings.api_url:
                return self.failed(InputError("connected to another CHeKT than the run"), "/runs")
            if ws.run is not None and ws.run.running:
                return self.failed(InputError("a run is already in progress"), "/apply")
            try:
                plan = library.rollback_plan(connection.client, past.journal, bool(force))
            except BulkContactsError as error:
                return self.failed(error, f"/runs/{name}/rollback")
            if not plan.changes:
                ws.say("ok", "nothing to undo: CHeKT is already as it was before that run")
                return redirect("/runs")
            ws.run = start_run(
                connection, plan, ws.runs_dir, "rollback", lambda text: ws.say("warning", text)
            )
        return redirect("/apply")

    def run_file(self, name: str, which: str) -> Response:
        past = find_run(self.ws.runs_dir, name)
        if past is None or which not in RUN_FILES:
            return Response("no such file\n", 404, media_type="text/plain")
        path = {"results": past.results, "journal": past.journal, "failed": past.failed_rows}[which]
        if path is None or not path.is_file():
            return Response("no such file\n", 404, media_type="text/plain")
        return FileResponse(path, filename=f"{name}-{path.name}")

    # 8. export

    def export_page(self) -> HTMLResponse:
        ws, sites, problem = self.ws, [], ""
        connection = ws.connection
        if connection is None:
            problem = "not connected: connect first"
        elif connection.settings.dealer_id is None:
            problem = "no dealer id: give one on the Connect page"
        else:
            try:
                sites = connection.client.list_sites(connection.settings.dealer_id)
            except BulkContactsError as error:
                problem = str(error)
        return self.page("export.html.j2", "export", sites=sites, problem=problem)

    def export_download(self, request: Request) -> Response:
        ws, connection = self.ws, self.ws.connection
        if connection is None or connection.settings.dealer_id is None:
            return Response("not connected\n", 409, media_type="text/plain")
        picked = request.query_params.getlist("site")
        if not all(value.isdigit() for value in picked):
            return Response("site ids are numbers\n", 400, media_type="text/plain")
        dealer = connection.settings.dealer_id
        path = ws.folder / "downloads" / f"contacts-{dealer}.xlsx"
        try:
            library.export_contacts(connection.client, dealer, tuple(int(v) for v in picked), path)
        except BulkContactsError as error:
            ws.say("error", str(error))
            return Response(status_code=303, headers={"Location": "/export"})
        return FileResponse(path, filename=path.name)


def profile_rows() -> tuple[list[dict[str, str]], str]:
    """The settings file's profiles as the Connect page lists them (never a secret: whether
    the keychain holds one), and a problem reading the file, if any."""
    from ..profiles import keychain_problem, load_profiles, secret_state

    try:
        found = load_profiles()
    except BulkContactsError as error:
        return [], str(error)
    no_keychain = keychain_problem()
    rows = []
    for name, profile in sorted(found.items()):
        secret = secret_state(name, profile, no_keychain)
        rows.append(
            {
                "name": name,
                "api_url": profile.api_url or "(default)",
                "dealer": profile.dealer or "(none)",
                "secret": secret,
            }
        )
    return rows, ""


ENV_FIELDS = ("CHEKT_API_URL", "CHEKT_TOKEN_URL", "CHEKT_DEALER_ID", "CHEKT_CLIENT_ID")


def left_alone(plan: library.Plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for site in plan.sites:
        for item in site.listed:
            counts[item.why] = counts.get(item.why, 0) + 1
    return counts
