"""Peak memory (max RSS) of `validate`, `plan` and `apply` on a large CSV roster, each a whole
process, against plain `pandas.read_csv` of the same file (every cell as text) measured in the
same run: the least any reader that holds the file as a table needs.

The roster is generated: 1,000,000 rows (about 72 MB) over 2,000 sites by default, names drawn
from a seeded pool, phones in the shapes people type (about 8% blank, a few foreign), 20% of the
rows without an e-mail. `plan` runs against a sandbox seeded with the sites (which hold no
contacts: every row is a create) with `--skip-invalid`; `apply` is the same without `--yes` off a
terminal, so it plans, prints the plan and stops before sending anything (exit 2).

A real apply (`--real`, the number of rows, several sizes separated by commas to show how memory
grows per row sent): the first N rows of a roster made the same way, sent with `--yes` to a
sandbox seeded with the sites (`apply ROSTER --yes`), then planned against a second, fresh
sandbox with `plan -o PLAN.json` and sent from the saved plan (`apply PLAN.json --yes`); beside
them, `apply ROSTER` of the same rows stopped at the confirmation (what sending adds to it). Each
figure is the peak RSS of the `bulk-contacts` process alone (the sandbox is another process).
A million real creates take about 20 minutes on an idle 2-core machine, so real applies are
smaller, and none run by default (each takes minutes); `--interrupt SECONDS` also sends the
whole file (`apply ROSTER --yes`, and `apply PLAN.json --yes` of a plan `plan -o` saved) and
stops it with Ctrl-C (SIGINT) that many seconds after its first outcome: every change planned
or read, a part of them sent (the verification does not run).

    python benchmarks/memory_bench.py [--rows 1000000] [--sites 2000] [--skip plan,apply,real]
        [--keep roster.csv | --roster roster.csv] [--real 50000,100000] [--interrupt 120]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import report, sandbox_process

DEALER = 12345
HEADER = ["Account #", "External Contact ID", "First Name", "Last Name", "Phone", "E-mail"]
AREA_CODES = ["202", "212", "305", "312", "415", "503", "617", "646", "702", "713", "718", "801"]
DOMAINS = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "web.de", "orange.fr"]


def name_pools(seed: int) -> tuple[list[str], list[str]]:
    from faker import Faker

    fake = Faker(["en_US", "es_MX", "fr_FR", "de_DE"])
    fake.seed_instance(seed)
    firsts = sorted({fake.first_name() for _ in range(3000)})
    lasts = sorted({fake.last_name() for _ in range(3000)})
    return firsts, lasts


def phone(rng: random.Random) -> str:
    area, exchange, line = rng.choice(AREA_CODES), rng.randint(200, 999), rng.randint(0, 9999)
    shape = rng.random()
    if shape < 0.3:
        return f"({area}) {exchange}-{line:04d}"
    if shape < 0.5:
        return f"{area}-{exchange}-{line:04d}"
    if shape < 0.65:
        return f"+1 {area} {exchange} {line:04d}"
    if shape < 0.8:
        return f"{area}{exchange}{line:04d}"
    if shape < 0.92:
        return ""
    return rng.choice(["+44 20 7946 0958", "+33 1 42 68 53 00", "+49 30 901820"])


def write_csv_roster(path: Path, rows: int, sites: int, seed: int = 7) -> Path:
    """A CSV roster of `rows` rows over `sites` sites (ACCT-00000...)."""
    rng = random.Random(seed)
    firsts, lasts = name_pools(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(1, rows + 1):
            first, last = rng.choice(firsts), rng.choice(lasts)
            local = f"{first}.{last}{n}".replace(" ", "").replace("'", "").lower()
            email = "" if rng.random() < 0.2 else f"{local}@{rng.choice(DOMAINS)}"
            writer.writerow([f"ACCT-{n % sites:05d}", f"C{n:07d}", first, last, phone(rng), email])
    return path


def write_seed(path: Path, sites: int) -> Path:
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


def measure(
    args: list[str],
    env: dict[str, str] | None = None,
    interrupt: tuple[Path, float] | None = None,
) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one process; with `interrupt` (a results
    file, seconds), sent a SIGINT (Ctrl-C: the writes in flight finish) that many seconds after
    the first outcome is in the results file."""
    started = time.perf_counter()
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=Path(__file__).parent
    )
    if interrupt is not None:
        threading.Thread(target=interrupt_later, args=(process, *interrupt), daemon=True).start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if code not in (0, 1, 2, 3, 130) or "Traceback" in error:
        raise RuntimeError(f"{args} failed ({code}): {error[-2000:]}")
    if code == 1 and error.strip():  # failed changes, a refused plan: say why
        print(f"{args[3]} exited 1: {error.strip().splitlines()[-1]}", file=sys.stderr)
    return elapsed, usage.ru_maxrss / 1024, code


def interrupt_later(process: subprocess.Popen, results: Path, seconds: float) -> None:
    """SIGINT `seconds` after the results file holds a first outcome (sending has started)."""
    while process.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") > 1:
            time.sleep(seconds)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            return
        time.sleep(0.5)


def sandbox_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CHEKT_API_URL": url,
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_DEALER_ID": str(DEALER),
        # the runs' dealer locks apart from other runs of this user (other benchmarks, tests)
        "XDG_STATE_HOME": str(Path(tempfile.gettempdir()) / f"memory-bench-{os.getpid()}"),
    }


def real_applies(
    folder: Path, roster: Path, size: int, sites: int
) -> dict[str, tuple[float, float, int]]:
    """`apply ROSTER` of the roster's first `size` rows against a sandbox seeded with the
    sites, stopped at the confirmation, then with `--yes`: what sending adds; then
    `plan -o PLAN.json` and `apply PLAN.json --yes` against a fresh one."""
    part = folder / f"roster-{size}.csv"
    with roster.open(encoding="utf-8") as source, part.open("w", encoding="utf-8") as target:
        for n, line in enumerate(source):
            if n > size:
                break
            target.write(line)
    seed = write_seed(folder / "seed.json", sites)
    cli = [sys.executable, "-m", "bulk_contacts"]
    common = ["-q", "--no-progress"]
    found = {}
    with sandbox_process(seed=seed) as url:
        found[f"apply, stopped at the confirmation ({size:,} rows)"] = measure(
            [*cli, "apply", str(part), "--skip-invalid", *common], sandbox_env(url)
        )
        found[f"apply --yes ({size:,} rows sent)"] = measure(
            [
                *cli,
                "apply",
                str(part),
                "--yes",
                "--skip-invalid",
                *common,
                "--results",
                str(folder / f"results-{size}.csv"),
            ],
            sandbox_env(url),
        )
    plan = folder / f"plan-{size}.json"
    with sandbox_process(seed=seed) as url:
        found[f"plan -o PLAN.json ({size:,} rows)"] = measure(
            [*cli, "plan", str(part), "--skip-invalid", *common, "-o", str(plan)],
            sandbox_env(url),
        )
        found[f"apply PLAN.json --yes ({size:,} rows sent)"] = measure(
            [
                *cli,
                "apply",
                str(plan),
                "--yes",
                *common,
                "--results",
                str(folder / f"results-plan-{size}.csv"),
            ],
            sandbox_env(url),
        )
    for path in (part, plan):
        path.unlink()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=2_000)
    parser.add_argument("--skip", default="", help="commands not to run: plan, apply, real")
    parser.add_argument(
        "--real",
        default="",
        help="sizes (rows) of real applies, comma-separated (e.g. 50000,100000); none by default",
    )
    parser.add_argument(
        "--interrupt",
        type=float,
        default=0,
        help="also apply the whole file with --yes, interrupted (SIGINT) after this many seconds",
    )
    parser.add_argument("--keep", type=Path, help="write the roster here and keep it")
    parser.add_argument(
        "--roster", type=Path, help="measure this roster (one --keep wrote) instead of a new one"
    )
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        roster = args.roster or write_csv_roster(
            args.keep or folder / "roster.csv", args.rows, args.sites
        )
        size_mb = roster.stat().st_size / 2**20
        python = sys.executable
        read_csv = (
            "import sys, pandas; "
            "pandas.read_csv(sys.argv[1], dtype=str, keep_default_na=False, na_filter=False)"
        )
        baseline = measure([python, "-c", read_csv, str(roster)])
        cli = [python, "-m", "bulk_contacts"]
        results = {"validate": measure([*cli, "validate", str(roster), "-q"])}
        if not {"plan", "apply"} <= skip or args.interrupt:
            seed = write_seed(folder / "seed.json", args.sites)
            with sandbox_process(seed=seed) as url:
                env = sandbox_env(url)
                common = [str(roster), "-q", "--no-progress", "--skip-invalid"]
                for command in ("plan", "apply"):
                    if command not in skip:
                        results[command] = measure([*cli, command, *common], env)
                if args.interrupt:
                    # sending, interrupted: the whole plan queued, a part of it sent
                    sent = folder / "sent.csv"
                    results[f"apply --yes, Ctrl-C {args.interrupt:g} s into sending"] = measure(
                        [*cli, "apply", *common, "--yes", "--results", str(sent)],
                        env,
                        (sent, args.interrupt),
                    )
        if args.interrupt:
            with sandbox_process(seed=seed) as url:  # a fresh one: the plan's sites are empty
                env = sandbox_env(url)
                plan = folder / "plan.json"
                results["plan -o PLAN.json"] = measure(
                    [*cli, "plan", *common, "-o", str(plan)], env
                )
                sent = folder / "sent-plan.csv"
                results[f"apply PLAN.json --yes, Ctrl-C {args.interrupt:g} s into sending"] = (
                    measure(
                        [*cli, "apply", str(plan), *common[1:3], "--yes", "--results", str(sent)],
                        env,
                        (sent, args.interrupt),
                    )
                )
                plan.unlink()
        if "real" not in skip:
            for size in (int(n) for n in args.real.split(",") if n.strip() and int(n)):
                results.update(real_applies(folder, roster, size, args.sites))
    report(
        f"memory: a {args.rows:,}-row CSV ({size_mb:.0f} MB) over {args.sites:,} sites, "
        f"whole process",
        [
            {
                "case": command,
                "seconds": round(seconds, 1),
                "peak_mb": round(peak),
                "exit_code": code,
                "file_mb": round(size_mb),
                "baseline": "pandas.read_csv(dtype=str) of the file",
                "baseline_peak_mb": round(baseline[1]),
                "ratio": round(peak / baseline[1], 2),
            }
            for command, (seconds, peak, code) in results.items()
        ],
    )


if __name__ == "__main__":
    main()
