"""`bulk-contacts serve` on a 20,000-row roster over 4,000 sites, in headless Chromium: from the
upload to the Fix grid drawn, and from "Make the plan" to the Plan page drawn; next to the CLI's
`validate` and `plan` on the same file against the same sandbox (whole processes), measured in
the same run. Also: scrolling the grid to its last row, and saving one corrected cell (the
whole roster validated again).

    python benchmarks/serve_bench.py [--rows 20000] [--sites 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import report, run_measured, sandbox_process
from roster_gen import write_roster

sys.path.insert(0, str(Path(__file__).parent.parent))
from bulk_contacts.web.server import WebServer
from tests.serving import chromium, wait_for  # the tests' own browser setup

DEALER = 12345


def write_seed(path: Path, sites: int) -> Path:
    """The sites the roster names (ACCT-00000...), each with no contacts yet."""
    seed = {
        "dealers": [
            {
                "dealer_id": DEALER,
                "sites": [
                    {"account_number": f"ACCT-{n:05d}", "name": f"Site {n}", "contacts": []}
                    for n in range(sites)
                ],
            }
        ]
    }
    path.write_text(json.dumps(seed))
    return path


def browser_timings(roster: Path, sandbox_url: str, folder: Path) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    server = WebServer(0, runs_dir=folder / "runs", mappings_file=folder / "mappings.json")
    server.start()
    browser = chromium(folder)
    try:
        browser.get(server.url)
        for name, value in (
            ("api_url", sandbox_url),
            ("dealer", str(DEALER)),
            ("client_id", "sandbox-client"),
            ("client_secret", "sandbox-secret"),
        ):
            browser.find_element(By.ID, name).send_keys(value)
        browser.find_element(By.ID, "use-settings").click()
        wait_for(lambda: "sites" in browser.find_element(By.CSS_SELECTOR, "table.check").text)

        browser.get(f"{server.base}/upload")
        started = time.perf_counter()
        browser.find_element(By.ID, "roster-file").send_keys(str(roster))
        browser.find_element(By.ID, "upload-button").click()
        wait_for(lambda: browser.current_url.endswith("/columns"), timeout=120)
        browser.find_element(By.ID, "columns-submit").click()
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#grid[data-ready=yes]"), 120)
        to_grid = time.perf_counter() - started

        started = time.perf_counter()
        browser.execute_script(
            "const t = window.rosterGrid; t.scrollToRow(t.getRows().at(-1), 'bottom', false)"
            ".then(() => { document.getElementById('grid').dataset.scrolled = 'yes'; });"
        )
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#grid[data-scrolled=yes]"))
        scroll = time.perf_counter() - started

        grid = browser.find_element(By.ID, "grid")
        started = time.perf_counter()
        browser.execute_script(
            "window.rosterGrid.getRows()[0].getCell('first_name').setValue('Corrected')"
        )
        wait_for(lambda: grid.get_attribute("data-saved") == "1", timeout=60)
        save_cell = time.perf_counter() - started

        browser.get(f"{server.base}/plan")
        browser.find_element(By.ID, "opt-skip-invalid").click()  # the generator's bad phones
        started = time.perf_counter()
        browser.find_element(By.ID, "make-plan").click()
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "li.card"), timeout=300)
        to_plan = time.perf_counter() - started
    finally:
        browser.quit()
        server.stop()
    return {"grid": to_grid, "scroll": scroll, "save_cell": save_cell, "plan": to_plan}


def measure_once(roster: Path, url: str, folder: Path) -> dict[str, float]:
    """The page's timings, then the CLI's on the same file (whole processes)."""
    folder.mkdir()
    timings = browser_timings(roster, url, folder)
    validate = [sys.executable, "-m", "bulk_contacts", "validate", str(roster), "-q"]
    plan = [*validate[:3], "plan", str(roster), "-q", "--no-progress", "--skip-invalid"]
    timings["cli_validate"] = run_measured(validate)[0]
    timings["cli_plan"], _, timings["plan_exit_code"] = run_measured(plan)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--sites", type=int, default=4_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        roster = write_roster(folder / "roster.xlsx", args.rows, args.sites)
        seed = write_seed(folder / "seed.json", args.sites)
        with sandbox_process(seed=seed) as url:
            os.environ.update(
                {
                    "CHEKT_API_URL": url,
                    "CHEKT_CLIENT_ID": "sandbox-client",
                    "CHEKT_CLIENT_SECRET": "sandbox-secret",
                    "CHEKT_DEALER_ID": str(DEALER),
                }
            )
            runs = [measure_once(roster, url, folder / str(n)) for n in range(args.repeat)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    web = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    report(
        f"serve: {args.rows:,}-row xlsx over {args.sites:,} sites, in headless Chromium "
        f"(median of {args.repeat})",
        [
            {
                "case": "upload to the Fix grid drawn",
                "seconds": round(web["grid"], 2),
                "baseline_seconds": round(web["cli_validate"], 2),
                "baseline_command": "bulk-contacts validate (whole process)",
            },
            {
                "case": "Make the plan to the Plan page drawn",
                "seconds": round(web["plan"], 2),
                "baseline_seconds": round(web["cli_plan"], 2),
                "baseline_command": "bulk-contacts plan --skip-invalid (whole process)",
                "plan_exit_code": int(web["plan_exit_code"]),
            },
            {"case": "grid scrolled to its last row", "seconds": round(web["scroll"], 3)},
            {
                "case": "one corrected cell saved, roster re-validated",
                "seconds": round(web["save_cell"], 2),
            },
        ],
    )


if __name__ == "__main__":
    main()
