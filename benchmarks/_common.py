"""Helpers shared by the benchmarks: a sandbox in its own process, peak memory, a table."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def sandbox_process(*options: str, seed: Path | None = None) -> Iterator[str]:
    """`bulk-contacts sandbox` on a free 127.0.0.1 port, in its own process; yields its URL."""
    args = [sys.executable, "-m", "bulk_contacts", "sandbox", "--port", "0", *options]
    if seed is not None:
        args += ["--seed", str(seed)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        if match is None:
            raise RuntimeError(f"sandbox did not start: {line}{process.stderr.read()}")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def token_for(url: str) -> str:
    response = httpx.post(
        f"{url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    )
    response.raise_for_status()
    return response.json()["access_token"]


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def report(name: str, rows: list[dict[str, object]]) -> None:
    """Print a table, and one JSON line per row for run_all.py to collect."""
    print(f"\n{name}")
    for row in rows:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    for row in rows:
        print("RESULT " + json.dumps({"benchmark": name, **row}))


def run_measured(args: list[str]) -> tuple[float, float, int]:
    """Run a command; (wall seconds, peak RSS in MB of that process, exit code)."""
    import os

    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1, 3):
        raise RuntimeError(f"{args} failed: {process.stderr.read().decode()[-2000:]}")
    process.stderr.close()
    return elapsed, usage.ru_maxrss / 1024, process.returncode


def median_of(runs: int, measure):
    """`measure()` `runs` times: the run with the median first figure (its other figures, such
    as its peak memory, come with it). One run can be slowed by the machine; the median is the
    figure the README gives."""
    results = sorted((measure() for _ in range(runs)), key=lambda result: result[0])
    return results[len(results) // 2]
